#!/usr/bin/env bash
# The CLI end to end on real Fashion-MNIST: a tiny `lowbit train` run writes a checkpoint and a
# metrics JSONL whose every line parses with Python's json and carries epoch, train_loss,
# train_acc, test_loss, test_acc, img_per_s; `lowbit info` describes the result; `lowbit eval`
# reloads it and reports the same test accuracy as the run's last epoch; `lowbit bench` prints
# its throughput line. Not a test of accuracy (tests/test_train.c) or of errors (errors.sh).
# Usage: train.sh path/to/lowbit. With a sanitizer build (or LOWBIT_QUICK=1) fewer samples.
set -u
L=${1:?usage: train.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
. "$(dirname "$0")/common.bash"

# ASan/UBSan run about 15x slower: the same checks on fewer samples.
ntrain=512 ntest=256
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then ntrain=128 ntest=128; fi
if [ ! -d "$DATA" ]; then
    echo "FAIL data set $DATA missing (scripts/deps.sh installs dataset-fashion-mnist)"
    echo "train.sh: 0 passed, 1 failed"
    exit 1
fi

# ---- train ------------------------------------------------------------------------------------
ck="$T/tiny.ckpt"
"$L" train --data "$DATA" --out "$ck" --train-limit "$ntrain" --test-limit "$ntest" --epochs 2 \
    --batch 64 >"$T/train.out" 2>"$T/train.err"
rc=$?
if [ "$rc" -ne 0 ] || [ ! -s "$ck" ]; then
    bad "train" "exit $rc, checkpoint ${ck} $([ -s "$ck" ] && echo present || echo missing)" \
        "$T/train.err"
else
    ok
fi
if tail -n 1 "$T/train.out" | grep -qE '^accuracy: [01]\.[0-9]{4}$'; then ok; else
    bad "train output" "last line is not 'accuracy: X.XXXX'" "$T/train.out"
fi

# ---- metrics JSONL ----------------------------------------------------------------------------
metrics="$ck.metrics.jsonl"
if "$PY" - "$metrics" >"$T/metrics.out" 2>&1 <<'EOF'; then ok; else bad "metrics" "invalid" "$T/metrics.out"; fi
import json, math, sys

fields = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "img_per_s")
# collapse warnings are lines of their own ({"event": "collapse", ...}; tests/cli/collapse.sh)
lines = [l for l in open(sys.argv[1]).read().splitlines() if '"event"' not in l]
assert len(lines) == 2, f"{len(lines)} epoch lines, expected one per epoch (2)"
for i, line in enumerate(lines):
    rec = json.loads(line)
    assert isinstance(rec, dict), f"line {i + 1} is not an object"
    for k in fields:
        v = rec.get(k)
        assert isinstance(v, (int, float)) and not isinstance(v, bool), f"line {i + 1}: {k} = {v!r}"
        assert math.isfinite(v), f"line {i + 1}: {k} = {v}"
    assert rec["epoch"] == i + 1, f"line {i + 1}: epoch {rec['epoch']}"
    for k in ("train_acc", "test_acc"):
        assert 0 <= rec[k] <= 1, f"line {i + 1}: {k} = {rec[k]}"
    assert rec["train_loss"] >= 0 and rec["test_loss"] >= 0, f"line {i + 1}: negative loss"
    assert rec["img_per_s"] > 0, f"line {i + 1}: img_per_s = {rec['img_per_s']}"
print(f"{rec['test_acc']:.4f}")
EOF
last_acc=$(tail -n 1 "$T/metrics.out")

# ---- info -------------------------------------------------------------------------------------
# the normalization is the model's, recorded from the training split (Fashion-MNIST's constants)
if "$L" info "$ck" >"$T/info.out" 2>"$T/info.err" && grep -q '^model: cnn' "$T/info.out" &&
    grep -q '^epoch: 2/2' "$T/info.out" && grep -qE '^ +fc +linear' "$T/info.out" &&
    grep -qE '^norm: mean 0\.286 +std 0\.353 ' "$T/info.out"; then
    ok
else
    bad "info" "exit status or content (model: cnn, epoch: 2/2, the fc layer, norm)" "$T/info.out"
fi

# ---- eval: same data and batching as the run's own evaluation, so the same accuracy -----------
"$L" eval "$ck" --data "$DATA" --test-limit "$ntest" --batch 64 >"$T/eval.out" 2>"$T/eval.err"
rc=$?
acc=$(tail -n 1 "$T/eval.out")
if [ "$rc" -eq 0 ] && [[ "$acc" =~ ^accuracy:\ 0\.[0-9]{4}$ ]]; then ok; else
    bad "eval" "exit $rc, last line '$acc'" "$T/eval.err"
fi
if [ "$acc" = "accuracy: $last_acc" ]; then ok; else
    bad "eval vs training" "'$acc' after reload, the run's last epoch had test_acc $last_acc"
fi

# ---- bench ------------------------------------------------------------------------------------
"$L" bench --data "$DATA" --model cnn --batch 32 --quant lsq --threads 2 --steps 3 --warmup 1 \
    >"$T/bench.out" 2>"$T/bench.err"
rc=$?
if [ "$rc" -eq 0 ] && tail -n 1 "$T/bench.out" | grep -qE '^train_img_per_s: '; then ok; else
    bad "bench" "exit $rc, last line '$(tail -n 1 "$T/bench.out")'" "$T/bench.err"
fi

finish
