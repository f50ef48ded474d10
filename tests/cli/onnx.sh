#!/usr/bin/env bash
# ONNX import (issue 16, docs/onnx.md): PyTorch 1.13 exports cnn and resnet20 (the zoo twins of
# ../shared/peer), gemmnet (a graph not in the zoo), torchvision's MobileNetV2 (width 0.5, a
# 1-channel stem) and asym (asymmetric pads lowbit can take) to
# ONNX (tests/onnx/onnx_models.py); `lowbit import` reads them and `lowbit eval --dump-logits`
# must give PyTorch's logits on real Fashion-MNIST images within 1e-4 relative. An imported model
# fine-tunes with --init (the .onnx itself, and the imported checkpoint with LSQ W4A4) and
# resumes; a truncated or garbage file, an unsupported op, asymmetric pads lowbit cannot take, a
# missing external-data file and two inputs each give one error naming the file or node and a
# non-zero exit. Usage: onnx.sh path/to/lowbit. Sanitizer builds: fewer images.
set -u
L=${1:?usage: onnx.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
PY=${LOWBIT_PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
GEN="$HERE/tests/onnx/onnx_models.py"
. "$(dirname "$0")/common.bash"
nimg=500 ntrain=2048
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then nimg=64 ntrain=256; fi
[ -d "$DATA" ] || { bad data "data set $DATA missing (scripts/deps.sh)"; finish; }
"$PY" -c 'import torch, onnx' 2>"$T/py.err" || { bad python "$PY lacks torch/onnx (scripts/deps.sh: python3-onnx)" "$T/py.err"; finish; }
"$PY" "$GEN" make "$T" "$DATA" "$nimg" >"$T/make.log" 2>&1 || { bad export "PyTorch export failed" "$T/make.log"; finish; }

"$PY" -c 'import torchvision' 2>/dev/null || bad torchvision "$PY lacks torchvision (scripts/deps.sh: python3-torchvision)"
for m in cnn resnet20 gemmnet asym mbv2; do
    [ "$m" = mbv2 ] && [ ! -f "$T/mbv2.onnx" ] && continue
    norm=()
    [ "$m" = gemmnet ] || [ "$m" = mbv2 ] && norm=(--mean 0.2860 --std 0.3530)
    if "$L" import "$T/$m.onnx" -o "$T/$m.ckpt" "${norm[@]}" >"$T/$m.imp" 2>&1 &&
        "$L" eval "$T/$m.ckpt" --data "$DATA" --test-limit "$nimg" --dump-logits "$T/$m.lg" \
            >"$T/$m.eval" 2>&1; then ok; else bad "$m import+eval" "exit $?" "$T/$m.imp"; continue; fi
    if "$PY" "$GEN" compare "$T/$m.ref" "$T/$m.lg" >"$T/$m.cmp" 2>&1; then
        ok
        sed 's/^/    /' "$T/$m.cmp"
    else bad "$m logits" "lowbit differs from PyTorch" "$T/$m.cmp"; fi
done
if "$L" info "$T/gemmnet.ckpt" >"$T/info" 2>&1 && grep -q '^model: graph' "$T/info" &&
    grep -q '^training state: none' "$T/info" && grep -q 'mean 0.286' "$T/info"; then ok; else
    bad "info of an import" "not a weights-only graph model with the given normalization" "$T/info"
fi

# fine-tuning: from the .onnx directly (FP32), then from the import with LSQ W4A4, then resume
tr() { # name, options...
    local name=$1
    shift
    "$L" train --data "$DATA" --out "$T/$name.ckpt" --train-limit "$ntrain" --test-limit "$nimg" \
        --on-collapse warn "$@" >"$T/$name.train" 2>&1
}
if tr ft --init "$T/gemmnet.onnx" --epochs 1 && grep -q '^accuracy:' "$T/ft.train"; then ok; else
    bad "train --init gemmnet.onnx" "exit $?" "$T/ft.train"
fi
if tr ftq --init "$T/cnn.ckpt" --quant lsq --epochs 1 && "$L" info "$T/ftq.ckpt" >"$T/ftq.info" 2>&1 &&
    grep -q '^model: graph' "$T/ftq.info" && grep -q '^quant: lsq' "$T/ftq.info"; then ok; else
    bad "train --init cnn import --quant lsq" "exit $?" "$T/ftq.train"
fi
if tr ftq --resume "$T/ftq.ckpt" --epochs 2 && grep -q '^accuracy:' "$T/ftq.train"; then ok; else
    bad "resume a graph model" "exit $?" "$T/ftq.train"
fi

# export of FP32 models (--onnx): a zoo resnet20 (option-A shortcuts) and the fine-tuned import;
# lowbit re-imports each (normalization from the file's metadata) with the same logits, and
# onnxruntime, where $ORT_PY has it (not a Debian package: pip install onnxruntime), agrees
# within 1e-4; a quantized checkpoint without --onnx-form is refused (its forms: onnx_quant.sh)
ORT_PY=${LOWBIT_ORT_PYTHON:-$PY}
tr zoo --model resnet20 --epochs 1 || bad "train resnet20" "exit $?" "$T/zoo.train"
for m in zoo ft; do
    if "$L" export "$T/$m.ckpt" --onnx "$T/$m.x.onnx" >"$T/$m.x" 2>&1 &&
        "$L" eval "$T/$m.ckpt" --data "$DATA" --test-limit "$nimg" --dump-logits "$T/$m.x.lg" >/dev/null 2>&1 &&
        "$L" import "$T/$m.x.onnx" -o "$T/$m.x.ckpt" >>"$T/$m.x" 2>&1 &&
        "$L" eval "$T/$m.x.ckpt" --data "$DATA" --test-limit "$nimg" --dump-logits "$T/$m.xx.lg" >/dev/null 2>&1 &&
        "$PY" "$GEN" compare "$T/$m.x.lg" "$T/$m.xx.lg" >>"$T/$m.x" 2>&1; then ok; else
        bad "$m export --onnx, re-import" "logits differ or exit $?" "$T/$m.x"
    fi
    "$ORT_PY" "$GEN" ort "$T/$m.x.onnx" "$DATA" "$nimg" "$T/$m.x.lg" >"$T/$m.ort" 2>&1
    case $? in
    0) ok && sed 's/^/    onnxruntime: /' "$T/$m.ort" ;;
    77) echo "    $m: onnxruntime not installed for $ORT_PY, not compared (LOWBIT_ORT_PYTHON)" ;;
    *) bad "$m onnxruntime" "logits differ" "$T/$m.ort" ;;
    esac
done
if "$L" export "$T/ftq.ckpt" --onnx "$T/q.onnx" >"$T/q.x" 2>&1; then bad "export --onnx of lsq" "exit 0"
elif grep -q 'is quantized (lsq W4A4): choose its ONNX form with --onnx-form qdq' "$T/q.x" && [ ! -e "$T/q.onnx" ]; then ok; else
    bad "export --onnx of lsq" "message" "$T/q.x"
fi

# bad input: one line naming the file or node, exit 1, no crash
err() { # name, file, pattern the message must match
    "$L" import "$T/$2" -o "$T/bad.ckpt" >"$T/$1.out" 2>&1
    local rc=$?
    if [ "$rc" -eq 1 ] && [ "$(wc -l <"$T/$1.out")" -eq 1 ] && grep -qE "$3" "$T/$1.out" &&
        [ ! -e "$T/bad.ckpt" ]; then ok; else bad "$1" "exit $rc, or the message lacks /$3/" "$T/$1.out"; fi
}
err truncated truncated.onnx 'truncated\.onnx: not an ONNX model'
err garbage garbage.onnx 'garbage\.onnx: not an ONNX model'
err unsupported sigmoid.onnx "sigmoid\.onnx: node '/Sigmoid' \(Sigmoid\): unsupported op; lowbit imports Conv"
err extdata extdata.onnx "extdata\.onnx: tensor '.*': external data file .*extdata\.bin"
err asymbad asymbad.onnx "asymbad\.onnx: node 'conv' \(Conv\): pads \[1,1,2,2\]: lowbit pads all four sides alike"
err twoinputs twoinputs.onnx "twoinputs\.onnx: the graph has two inputs \('a', 'b'\)"
err missing nothere.onnx 'nothere\.onnx: cannot open'
if "$L" train --data "$DATA" --init "$T/sigmoid.onnx" --out "$T/bad.ckpt" >"$T/tinit.out" 2>&1; then
    bad "train --init of a bad model" "exit 0" "$T/tinit.out"
elif grep -q "node '/Sigmoid'" "$T/tinit.out"; then ok; else bad "train --init of a bad model" "message" "$T/tinit.out"; fi
finish
