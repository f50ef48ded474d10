#!/usr/bin/env bash
# Collapse detection end to end on real Fashion-MNIST (docs/robust.md): an absurd --lr is reported
# ("collapse" on stderr, a {"event":"collapse"} line in the metrics) and, by default, stops the run
# after its first epoch at chance with exit status 3 and that epoch's checkpoint written;
# --on-collapse warn keeps training; a poisoned batch (a NaN pixel, LOWBIT_POISON_STEP) is reported
# and skipped, and the run still learns; the classifier's rate is measured, printed, recorded and
# refused when a resume would change it. Not the option errors (errors.sh) or the detection rules
# one by one (tests/test_train.c). Usage: collapse.sh path/to/lowbit.
set -u
L=${1:?usage: collapse.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
. "$(dirname "$0")/common.bash"
check() { # name, condition (a command), why, [file]
    local name=$1 why=$3 file=${4:-}
    if eval "$2"; then ok; else bad "$name" "$why" "$file"; fi
}
# metrics NAME FILE EPOCHS EVENT_KIND: the JSONL parses, has EPOCHS epoch lines and a collapse
# event of that kind (or none when EVENT_KIND is "-"); prints the last epoch's skipped_steps
metrics() {
    "$PY" - "$2" "$3" "$4" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]).read().splitlines()]
epochs = [r for r in lines if "event" not in r]
events = [r for r in lines if r.get("event") == "collapse"]
assert len(epochs) == int(sys.argv[2]), f"{len(epochs)} epoch lines, expected {sys.argv[2]}"
kind = sys.argv[3]
if kind == "-":
    assert not events, f"unexpected collapse events: {events}"
else:
    assert any(e["kind"] == kind for e in events), f"no '{kind}' event in {events}"
    for e in events:
        assert e["message"].startswith("collapse:") and isinstance(e["step"], int)
print(sum(r["skipped_steps"] for r in epochs))
PY
}

# 16 steps an epoch: the first epoch is long enough for a verdict (docs/robust.md). ASan/UBSan
# runs about 15x slower: fewer test images.
ntest=500
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then ntest=200; fi
RUN=(train --data "$DATA" --train-limit 512 --test-limit "$ntest" --batch 32 --epochs 2 --threads 2)

# ---- an absurd learning rate, default --on-collapse stop ---------------------------------------
"$L" "${RUN[@]}" --lr 100 --warmup 0 --out "$T/lr.ckpt" >"$T/lr.out" 2>"$T/lr.err"
rc=$?
check "absurd lr: exit 3" '[ "$rc" -eq 3 ]' "exit $rc" "$T/lr.err"
check "absurd lr: warning" 'grep -q "WARNING: collapse:" "$T/lr.err"' "no warning" "$T/lr.err"
check "absurd lr: stop message" 'tail -n 1 "$T/lr.err" | grep -q "stopped after epoch 1 at chance"' \
    "last line does not say it stopped" "$T/lr.err"
check "absurd lr: checkpoint of epoch 1" '[ -s "$T/lr.ckpt" ]' "no checkpoint"
if metrics lr "$T/lr.ckpt.metrics.jsonl" 1 epoch_at_chance >"$T/m.out" 2>&1; then ok; else
    bad "absurd lr: metrics" "see below" "$T/m.out"
fi

# ---- the same with --on-collapse warn: warned, trained to the end, exit 0 -----------------------
"$L" "${RUN[@]}" --lr 100 --warmup 0 --on-collapse warn --out "$T/w.ckpt" >"$T/w.out" 2>"$T/w.err"
rc=$?
check "warn: exit 0" '[ "$rc" -eq 0 ]' "exit $rc" "$T/w.err"
check "warn: warnings" '[ "$(grep -c "WARNING: collapse:" "$T/w.err")" -ge 2 ]' "fewer than 2" "$T/w.err"
if metrics warn "$T/w.ckpt.metrics.jsonl" 2 epoch_at_chance >"$T/m.out" 2>&1; then ok; else
    bad "warn: metrics" "see below" "$T/m.out"
fi

# ---- a poisoned batch: reported, skipped, and the run goes on learning --------------------------
LOWBIT_POISON_STEP=3 "$L" "${RUN[@]}" --out "$T/p.ckpt" >"$T/p.out" 2>"$T/p.err"
rc=$?
check "poisoned: exit 0" '[ "$rc" -eq 0 ]' "exit $rc" "$T/p.err"
check "poisoned: warning names the step" \
    'grep -qE "WARNING: collapse: the (loss|gradient of .*) is not finite at step 3" "$T/p.err"' \
    "no warning" "$T/p.err"
if skipped=$(metrics poisoned "$T/p.ckpt.metrics.jsonl" 2 nonfinite 2>"$T/m.out"); then
    check "poisoned: one step skipped" '[ "$skipped" = 1 ]' "skipped_steps total $skipped"
else
    bad "poisoned: metrics" "see below" "$T/m.out"
fi
acc=$(tail -n 1 "$T/p.out" | sed -n 's/^accuracy: //p')
check "poisoned: still learns" '"$PY" -c "import sys; sys.exit(not float(\"${acc:-0}\") > 0.5)"' \
    "accuracy ${acc:-none}" "$T/p.out"
# the run without the poison is not warned about
"$L" "${RUN[@]}" --out "$T/c.ckpt" >"$T/c.out" 2>"$T/c.err"
rc=$?
check "clean: exit 0, no warning" '[ "$rc" -eq 0 ] && ! grep -q collapse "$T/c.err"' \
    "exit $rc or a warning" "$T/c.err"

# ---- the classifier's rate (docs/robust.md): measured on the clean run above, recorded, kept -----
check "head rate: start line" 'grep -qE "^head rate: layer .fc. learns at 0\.[0-9]+x the rate: the loss.s curvature there is" "$T/c.err"' \
    "no head-rate line with a scale below 1" "$T/c.err"
# the checkpoint records the scale it trained with (safetensors: 8-byte length, JSON header)
rec=$("$PY" - "$T/c.ckpt" <<'PY'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
meta = json.loads(raw[8:8 + n])["__metadata__"]
t = json.loads(meta["lowbit.train"])
print(t["head_lr"], t["head_lr_scale"])
PY
)
check "head rate: recorded" '"$PY" -c "import sys; a, s = map(float, \"$rec\".split()); sys.exit(not (a < 0 and 0 < s < 1))"' \
    "head_lr, head_lr_scale: '$rec'"
# a fixed scale is taken as given and printed; 1 prints nothing
"$L" "${RUN[@]}" --epochs 1 --head-lr 0.5 --out "$T/h.ckpt" >"$T/h.out" 2>"$T/h.err"
check "head rate: --head-lr 0.5" 'grep -q "^head rate: layer .fc. learns at 0.5x the rate (--head-lr)" "$T/h.err"' \
    "no fixed-scale line" "$T/h.err"
"$L" "${RUN[@]}" --epochs 1 --head-lr 1 --out "$T/h1.ckpt" >"$T/h1.out" 2>"$T/h1.err"
check "head rate: --head-lr 1" '! grep -q "head rate" "$T/h1.err"' "a head-rate line at 1x" "$T/h1.err"
# bad values and a resume that would change it: clear errors, exit 2
for v in 0 -1 abc 2000; do
    "$L" "${RUN[@]}" --head-lr "$v" --out "$T/bad.ckpt" >/dev/null 2>"$T/bad.err"
    rc=$?
    check "head rate: --head-lr $v refused" '[ "$rc" -eq 2 ] && grep -q -- "--head-lr" "$T/bad.err" && [ ! -e "$T/bad.ckpt" ]' \
        "exit $rc" "$T/bad.err"
done
"$L" train --resume "$T/c.ckpt" --data "$DATA" --head-lr 1 --out "$T/r.ckpt" >/dev/null 2>"$T/r.err"
rc=$?
check "head rate: resume with another --head-lr" '[ "$rc" -eq 2 ] && grep -q "head-lr 1 contradicts the checkpoint" "$T/r.err"' \
    "exit $rc" "$T/r.err"

# ---- the float phase (--quant-delay, docs/robust.md) ------------------------------------------
# LSQ from random weights gets one by default (the warm-up's steps), printed with the schedule
"$L" "${RUN[@]}" --quant lsq --wbits 2 --abits 2 --epochs 1 --out "$T/qa.ckpt" >/dev/null 2>"$T/qa.err"
check "float phase: default for LSQ" 'grep -q "quantizers off for the first [0-9]* steps (default: the warm-up" "$T/qa.err"' \
    "not in the schedule line" "$T/qa.err"
# an epoch inside it: evaluated as the float net, marked; eval and export refuse its checkpoint
Q=("${RUN[@]}" --quant lsq --wbits 2 --abits 2 --epochs 3 --quant-delay 1.5)
"$L" "${Q[@]}" --out "$T/qf.ckpt" >/dev/null 2>"$T/qf.err"
"$L" "${Q[@]}" --stop-after 1 --out "$T/qs.ckpt" >/dev/null 2>"$T/qs.err"
check "float phase: epoch 1 marked" 'grep -q "^epoch 1/3 .*(float phase: quantizers not started yet)" "$T/qs.err" && grep -q "\"float_phase\":true" "$T/qs.ckpt.metrics.jsonl"' \
    "no float-phase mark" "$T/qs.err"
for cmd in "eval --data $DATA" "export -o $T/qx"; do
    "$L" $cmd "$T/qs.ckpt" >/dev/null 2>"$T/qx.err"
    rc=$?
    check "float phase: ${cmd%% *} refuses" '[ "$rc" -ne 0 ] && grep -q "saved in its float phase (step [0-9]* of --quant-delay" "$T/qx.err"' \
        "exit $rc" "$T/qx.err"
done
# resumed across the phase's end: the uninterrupted run's bytes; then a quantized model exists
"$L" train --resume "$T/qs.ckpt" --data "$DATA" --out "$T/qs.ckpt" >/dev/null 2>"$T/qr.err"
check "float phase: resume bit for bit" 'cmp -s "$T/qf.ckpt" "$T/qs.ckpt"' "checkpoints differ" "$T/qr.err"
check "float phase: last epoch quantized" '! grep -q "^epoch 3/3 .*float phase" "$T/qf.err" && "$L" eval "$T/qf.ckpt" --data "$DATA" --test-limit 64 >/dev/null 2>&1' \
    "epoch 3 still float, or eval refused" "$T/qf.err"
"$L" "${RUN[@]}" --quant lsq --epochs 2 --quant-delay 2 --out "$T/qb.ckpt" >/dev/null 2>"$T/qb.err"
rc=$?
check "float phase: as long as the run refused" '[ "$rc" -ne 0 ] && grep -q "quantizers would never start" "$T/qb.err" && [ ! -e "$T/qb.ckpt" ]' \
    "exit $rc" "$T/qb.err"
# the auto phase stays open while the net has not started to learn (a rate that teaches nothing):
# to half the run (32 of 64 steps), said once; resumed from inside it, the same bytes
O=("${RUN[@]}" --quant lsq --wbits 2 --abits 2 --epochs 4 --lr 0.000001 --on-collapse warn)
"$L" "${O[@]}" --out "$T/qo.ckpt" >/dev/null 2>"$T/qo.err"
check "open float phase: to half the run" 'grep -q "^float phase: .* at half the run: the quantizers start after step 32" "$T/qo.err" && grep -q "^epoch 2/4 .*(float phase" "$T/qo.err" && ! grep -q "^epoch 3/4 .*float phase" "$T/qo.err"' \
    "no note, or the wrong epochs in the phase" "$T/qo.err"
"$L" "${O[@]}" --stop-after 1 --out "$T/qp.ckpt" >/dev/null 2>"$T/qp.err"
"$L" train --resume "$T/qp.ckpt" --data "$DATA" --on-collapse warn --out "$T/qp.ckpt" >/dev/null 2>"$T/qp2.err"
check "open float phase: resume bit for bit" 'cmp -s "$T/qo.ckpt" "$T/qp.ckpt"' "checkpoints differ" "$T/qp2.err"

# ---- two imbalanced classes (docs/robust.md): chance is the majority share, not 1/classes ----
# An idx set of Fashion-MNIST's T-shirts (label 0, 90%) and trousers (label 1, 10%): 2 classes
# (idx has as many as its labels say), and a collapsed run that predicts the majority (accuracy
# 0.9, loss at the shares' entropy) is stopped as at chance, not taken for a learning run.
# 500 test images: a healthy run's 96% is clear of chance (0.9 + 3 binomial sd = 0.94).
"$PY" - "$DATA" "$T/imb" <<'PY'
import gzip, os, struct, sys
src, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
def read(split):
    def idx(kind):
        for n in (f"{split}-{kind}-ubyte.gz", f"{split}-{kind}-ubyte"):
            p = os.path.join(src, n)
            if os.path.exists(p):
                return (gzip.open if p.endswith(".gz") else open)(p, "rb").read()
        raise SystemExit(f"no {split} {kind} in {src}")
    return idx("images-idx3"), idx("labels-idx1")
for split, n0, n1 in (("train", 540, 60), ("t10k", 450, 50)):
    img, lab = read(split)
    rows, cols = struct.unpack(">II", img[8:16])
    sz = rows * cols
    keep, c = [], {0: 0, 1: 0}
    for i, y in enumerate(lab[8:]):
        if y in c and c[y] < (n0 if y == 0 else n1):
            keep.append(i)
            c[y] += 1
    keep.sort(key=lambda i: (i * 7919) % 1009)  # mixed, deterministically
    with open(os.path.join(out, f"{split}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(keep), rows, cols))
        f.write(b"".join(img[16 + i * sz:16 + (i + 1) * sz] for i in keep))
    with open(os.path.join(out, f"{split}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(keep)) + bytes(lab[8 + i] for i in keep))
PY
IMB=(train --data "$T/imb" --batch 32 --epochs 2 --threads 2)
"$L" "${IMB[@]}" --lr 50 --head-lr 1 --warmup 0 --out "$T/imb.ckpt" >/dev/null 2>"$T/imb.err"
rc=$?
check "imbalanced: stopped at chance, exit 3" '[ "$rc" -eq 3 ] && grep -q "ends at chance: .*majority class 0.9000 in the test split and 0.9000 in the training split" "$T/imb.err"' \
    "exit $rc" "$T/imb.err"
check "imbalanced: 2 classes" 'grep -q "ln(2) = 0.693" "$T/imb.err" && "$L" info "$T/imb.ckpt" | grep -q "classes 2"' \
    "not a 2-class model" "$T/imb.err"
"$L" "${IMB[@]}" --out "$T/imb2.ckpt" >/dev/null 2>"$T/imb2.err"
rc=$?
check "imbalanced: a healthy run is not stopped" '[ "$rc" -eq 0 ] && ! grep -q "collapse" "$T/imb2.err"' \
    "exit $rc" "$T/imb2.err"
# labels that fit a checkpoint's classes keep its classifier; labels beyond them are refused
"$L" eval "$T/lr.ckpt" --data "$T/imb" >/dev/null 2>"$T/imb3.err"
rc=$?
check "imbalanced: a 10-class model evaluates the 2-class set" '[ "$rc" -eq 0 ]' "exit $rc" "$T/imb3.err"
"$L" train --init "$T/imb2.ckpt" --data "$DATA" --train-limit 64 --test-limit 64 --epochs 1 \
    --out "$T/imb4.ckpt" >/dev/null 2>"$T/imb4.err"
rc=$?
check "imbalanced: --init of a 2-class model on 10 classes refused" '[ "$rc" -ne 0 ] && grep -q "labels up to 9, but the checkpoint.s model has 2 classes" "$T/imb4.err" && [ ! -e "$T/imb4.ckpt" ]' \
    "exit $rc" "$T/imb4.err"
"$L" eval "$T/imb2.ckpt" --data "$DATA" --test-limit 64 >/dev/null 2>"$T/imb5.err"
rc=$?
check "imbalanced: eval of a 2-class model on 10 classes refused" '[ "$rc" -ne 0 ] && grep -q "with 10 classes does not fit the model" "$T/imb5.err"' \
    "exit $rc" "$T/imb5.err"

finish
