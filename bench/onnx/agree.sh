#!/usr/bin/env bash
# Quantized ONNX export against lowbit on all 10,000 Fashion-MNIST test images (issue 16 items 2b,
# 2c; docs/onnx.md): each checkpoint is exported with `lowbit export --onnx --onnx-form qdq` and
# `--onnx-form int` and run in onnxruntime (scripts/deps.sh installs it for /usr/bin/python3;
# LOWBIT_ORT_PYTHON for another); the QDQ model's predictions are compared with `lowbit eval`
# (the float fake-quant model; must agree on >= 99.8%, with onnxruntime's graph optimizations on
# and off) and the integer-op model's int32 logits with `lowbit eval --integer --dump-logits`
# (must be equal on every image). Configurations with no integer model (float first/last layers)
# report that and compare the QDQ form only. Prints a markdown table, also OUT/summary.md.
# N=... limits the images (default 0: all). Not run by the suite (tests/cli/onnx_quant.sh is the
# quick version).
# Usage: bench/onnx/agree.sh [-l path/to/lowbit] [-o OUT] CKPT...
set -u
L=build/release/lowbit
OUT=build/onnx_agree
while getopts "l:o:" o; do
    case $o in
    l) L=$OPTARG ;;
    o) OUT=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,13p' "$0"; exit 2; }
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
ORT_PY=${LOWBIT_ORT_PYTHON:-/usr/bin/python3}
N=${N:-0}
HERE=$(cd "$(dirname "$0")/../.." && pwd)
ORT="$HERE/tests/onnx/ort_quant.py"
[ -x "$L" ] || { echo "agree: $L not found (make cli)"; exit 1; }
"$ORT_PY" -c 'import onnxruntime' 2>/dev/null || { echo "agree: onnxruntime missing for $ORT_PY (scripts/deps.sh)"; exit 1; }
mkdir -p "$OUT" || exit 1
S="$OUT/summary.md"
lim=()
[ "$N" != 0 ] && lim=(--test-limit "$N")
{
    echo "| checkpoint | model | lowbit acc | int acc | QDQ agree (ORT opt) | QDQ agree (no opt) | int logits equal |"
    echo "|---|---|---|---|---|---|---|"
} | tee "$S"
rc=0
field() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" "$2" | head -1; }
for c in "$@"; do
    b=$OUT/$(basename "${c%.*}")
    model=$("$L" info "$c" 2>/dev/null | sed -n 's/^model: \([^ ]*\).*/\1/p' | head -1)
    quant=$("$L" info "$c" 2>/dev/null | sed -n 's/^quant: \([^ ]*\) *\([^ ]*\)  first \([0-9]*\)  last \([0-9]*\)  per_channel \([01]\).*/\1 \2 first \3 last \4 pc \5/p' | head -1)
    "$L" eval "$c" --data "$DATA" "${lim[@]}" --dump-logits "$b.f.lg" >"$b.eval" 2>&1 || { echo "agree: eval $c failed"; rc=1; continue; }
    acc=$(sed -n 's/^accuracy: //p' "$b.eval" | tail -1)
    q1=- q0=- ia=- ie=-
    if "$L" export "$c" --onnx "$b.qdq.onnx" --onnx-form qdq >"$b.qdq.x" 2>&1; then
        "$ORT_PY" "$ORT" qdq "$b.qdq.onnx" "$DATA" "$N" "$b.f.lg" >"$b.qdq.ort" 2>"$b.qdq.err" || rc=1
        LOWBIT_ORT_OPT=0 "$ORT_PY" "$ORT" qdq "$b.qdq.onnx" "$DATA" "$N" "$b.f.lg" >"$b.qdq0.ort" 2>"$b.qdq0.err" || rc=1
        q1=$(field "predictions agree" "$b.qdq.ort") q0=$(field "predictions agree" "$b.qdq0.ort")
    else
        q1="refused: $(cat "$b.qdq.x")"
    fi
    if "$L" export "$c" --onnx "$b.int.onnx" --onnx-form int >"$b.int.x" 2>&1; then
        "$L" eval "$c" --data "$DATA" "${lim[@]}" --integer --dump-logits "$b.i.lg" >"$b.ieval" 2>&1
        ia=$(sed -n 's/^integer: accuracy \([0-9.]*\).*/\1/p' "$b.ieval")
        "$ORT_PY" "$ORT" int "$b.int.onnx" "$DATA" "$N" "$b.i.lg" >"$b.int.ort" 2>"$b.int.err" || rc=1
        ie=$(sed -n 's/.* \([0-9]*\) images, logits equal on \([0-9]*\).*/\2 of \1/p' "$b.int.ort")
    else
        ie="no int form: $(sed 's/^lowbit export: //' "$b.int.x")"
    fi
    echo "| $(basename "$c") | $model $quant | $acc | $ia | $q1 | $q0 | $ie |" | tee -a "$S"
done
exit $rc
