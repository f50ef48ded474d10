#!/usr/bin/env bash
# Quantized ONNX export (issue 16 items 2b, 2c; docs/onnx.md): short-trained LSQ W4A4 models (cnn
# per-tensor, resnet20 per-channel, the imported gemmnet graph with average and padded max pools,
# ReLU6 and a MatMul head; a cnn with learned reg levels, int16 codes) exported with
# `lowbit export --onnx F --onnx-form qdq|int`. Every file passes onnx.checker; where onnxruntime
# is installed ($ORT_PY, default /usr/bin/python3: scripts/deps.sh) the QDQ model's predictions
# agree with `lowbit eval` (the float fake-quant model) on >= 99.8% of real Fashion-MNIST test
# images and the integer-op model's int32 logits equal `lowbit eval --integer --dump-logits` on
# every image. Bad input: an unknown form, a quantized checkpoint with no form (or float), a
# form for an FP32 one, float weights in the int form, a spiking network: one clear error each,
# nothing written. The full 10,000-image check is bench/onnx/agree.sh. Usage: onnx_quant.sh
# path/to/lowbit. Sanitizer builds: fewer images.
set -u
L=${1:?usage: onnx_quant.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
PY=${LOWBIT_PYTHON:-/usr/bin/python3}
ORT_PY=${LOWBIT_ORT_PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
ORT="$HERE/tests/onnx/ort_quant.py"
. "$(dirname "$0")/common.bash"
nimg=500 ntrain=1024
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then nimg=64 ntrain=256; fi
[ -d "$DATA" ] || { bad data "data set $DATA missing (scripts/deps.sh)"; finish; }
"$PY" -c 'import onnx' 2>"$T/py.err" || { bad python "$PY lacks onnx (scripts/deps.sh: python3-onnx)" "$T/py.err"; finish; }
have_ort=1
"$ORT_PY" -c 'import onnxruntime' 2>/dev/null || {
    have_ort=0
    echo "    onnxruntime not installed for $ORT_PY (scripts/deps.sh, LOWBIT_ORT_PYTHON): exports checked with onnx.checker only"
}

tr() { # name, options...
    local name=$1
    shift
    "$L" train --data "$DATA" --out "$T/$name.ckpt" --train-limit "$ntrain" --test-limit "$nimg" \
        --epochs 1 --on-collapse warn "$@" >"$T/$name.train" 2>&1 || bad "train $name" "exit $?" "$T/$name.train"
}
tr cnn --model cnn --quant lsq --wbits 4 --abits 4
tr r20 --model resnet20 --quant lsq --wbits 4 --abits 4 --per-channel
tr regl --model cnn --quant reg --levels learned --wbits 4 --abits 4
if "$PY" "$HERE/tests/onnx/onnx_models.py" make "$T" "$DATA" 8 >"$T/make.log" 2>&1 &&
    "$L" import "$T/gemmnet.onnx" -o "$T/gm.fp32" --mean 0.2860 --std 0.3530 >"$T/gm.imp" 2>&1; then
    tr gm --init "$T/gm.fp32" --quant lsq --wbits 4 --abits 4
else bad "gemmnet import" "PyTorch export or import failed" "$T/make.log"; fi

for m in cnn r20 gm regl; do
    [ -f "$T/$m.ckpt" ] || continue
    for f in qdq int; do
        if "$L" export "$T/$m.ckpt" --onnx "$T/$m.$f.onnx" --onnx-form "$f" >"$T/$m.$f.x" 2>&1 &&
            grep -q "ONNX opset 13" "$T/$m.$f.x" &&
            "$PY" -c 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]))' "$T/$m.$f.onnx" >>"$T/$m.$f.x" 2>&1
        then ok; else bad "$m export --onnx-form $f" "exit $? or onnx.checker" "$T/$m.$f.x"; continue; fi
    done
    [ "$have_ort" = 1 ] || continue
    "$L" eval "$T/$m.ckpt" --data "$DATA" --test-limit "$nimg" --dump-logits "$T/$m.f.lg" >/dev/null 2>&1 ||
        bad "$m eval" "exit $?"
    "$L" eval "$T/$m.ckpt" --data "$DATA" --test-limit "$nimg" --integer --dump-logits "$T/$m.i.lg" >/dev/null 2>&1 ||
        bad "$m eval --integer" "exit $?"
    for f in qdq int; do
        lg=$T/$m.f.lg
        [ "$f" = int ] && lg=$T/$m.i.lg
        if "$ORT_PY" "$ORT" "$f" "$T/$m.$f.onnx" "$DATA" "$nimg" "$lg" >"$T/$m.$f.ort" 2>"$T/$m.$f.err"; then
            ok && sed 's/^/    onnxruntime: /' "$T/$m.$f.ort"
        else bad "$m $f in onnxruntime" "differs from lowbit" "$T/$m.$f.ort"; fi
    done
done
# the QDQ model of the resnet20 also with onnxruntime's graph optimizations off (its default
# level fuses Q/DQ pairs into integer kernels where it can)
if [ "$have_ort" = 1 ] && [ -f "$T/r20.f.lg" ]; then
    if LOWBIT_ORT_OPT=0 "$ORT_PY" "$ORT" qdq "$T/r20.qdq.onnx" "$DATA" "$nimg" "$T/r20.f.lg" >"$T/r20.noopt" 2>&1; then
        ok && sed 's/^/    onnxruntime (no graph optimization): /' "$T/r20.noopt"
    else bad "r20 qdq, no graph optimization" "differs" "$T/r20.noopt"; fi
fi

# bad input: exit status, one message naming the problem, no file written
x() { # name, want exit, pattern, export arguments...
    local name=$1 rc=$2 pat=$3
    shift 3
    rm -f "$T/bad.onnx"
    "$L" export "$@" --onnx "$T/bad.onnx" >"$T/$name.out" 2>&1
    local got=$?
    if [ "$got" -eq "$rc" ] && [ "$(wc -l <"$T/$name.out")" -eq 1 ] && grep -qE -- "$pat" "$T/$name.out" &&
        [ ! -e "$T/bad.onnx" ]; then ok; else bad "$name" "exit $got (want $rc), or the message lacks /$pat/" "$T/$name.out"; fi
}
x unknown-form 2 "unknown --onnx-form 'int4' \(float, qdq or int" "$T/cnn.ckpt" --onnx-form int4
x no-form 1 "cnn\.ckpt is quantized \(lsq W4A4\): choose its ONNX form with --onnx-form qdq .* or --onnx-form int" "$T/cnn.ckpt"
x float-of-quant 1 "--onnx-form float would drop its quantizers; use qdq or int" "$T/cnn.ckpt" --onnx-form float
if "$L" export "$T/cnn.ckpt" --onnx-form int >"$T/noonnx.out" 2>&1; then bad "--onnx-form without --onnx" "exit 0"
elif grep -q -- "--onnx-form needs --onnx FILE" "$T/noonnx.out"; then ok; else bad "--onnx-form without --onnx" "message" "$T/noonnx.out"; fi
tr fp32 --model cnn --quant fp32 --train-limit 64 --test-limit 64
x qdq-of-fp32 1 "has no quantizers \(fp32\): --onnx-form qdq is for quantized checkpoints; use float" "$T/fp32.ckpt" --onnx-form qdq
# float first and last layers: QDQ carries them (float Conv/Gemm), the integer model has none
tr first0 --model cnn --quant lsq --first-bits 0 --last-bits 0 --train-limit 64 --test-limit 64
if "$L" export "$T/first0.ckpt" --onnx "$T/first0.onnx" --onnx-form qdq >"$T/first0.out" 2>&1; then ok; else
    bad "qdq of float first/last layers" "exit $?" "$T/first0.out"
fi
x int-float-weights 1 "no integer model, so no --onnx-form int: layer 'conv1' \(conv\): float weights" "$T/first0.ckpt" --onnx-form int
tr snn --model snn-vgg --quant lsq --train-limit 64 --test-limit 32
x snn-qdq 1 "a spiking network has no ONNX form; export it as C" "$T/snn.ckpt" --onnx-form qdq
x snn-int 1 "a spiking network has no ONNX form \(time steps, membranes\)" "$T/snn.ckpt" --onnx-form int
finish
