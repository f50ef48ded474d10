#!/usr/bin/env bash
# `--quant reg` end to end on real Fashion-MNIST (docs/reg.md): a short cnn run with fixed levels
# must reach an accuracy floor with its snapped weights, apply the lambda schedule per epoch (the
# metrics' lambda values), report the snapped accuracy in `lowbit eval` and agree with its integer
# model; learned levels resume bit for bit and agree with their integer model;
# FP32 -> reg fine-tuning with --init works; `lowbit info` prints levels; checkpoints with
# non-finite or unordered levels are refused naming the file and the layer. Not the errors of
# the options (errors.sh) nor the exported C (export.sh). Usage: reg.sh path/to/lowbit.
set -u
L=${1:?usage: reg.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
. "$(dirname "$0")/common.bash"
if [ ! -d "$DATA" ]; then
    bad "data" "data set $DATA missing"
    finish
fi
# ASan/UBSan run about 15x slower: fewer samples, no accuracy floor.
ntrain=2000 ntest=1000 floor=0.60
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then ntrain=256 ntest=128 floor=0; fi
C=(--data "$DATA" --model cnn --batch 128 --on-collapse warn)
field() { # file, line number, key: a number from a metrics line
    "$PY" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2])-1])[sys.argv[3]])' "$@"
}

# ---- fixed levels: accuracy floor, schedule, eval, integer ---------------------------------
# 6-bit first/last layers: 8-bit fixed levels have 9-bit codes, which the integer path refuses.
# A one-epoch warm-up (docs/robust.md, short schedules): with the default's 3 steps of this
# 32-step run the fc step reached its floor on an AMD EPYC and the run ended at chance.
if "$L" train "${C[@]}" --quant reg --levels fixed --first-bits 6 --last-bits 6 \
    --reg-lambda 10 --reg-lambda-max 100 --reg-ramp-start 0.5 --epochs 2 --warmup 1 \
    --train-limit $ntrain --test-limit $ntest --out "$T/fx.ckpt" >"$T/fx.train" 2>&1; then ok; else
    bad "fixed train" "exit $?" "$T/fx.train"
    finish
fi
grep -v '"event"' "$T/fx.ckpt.metrics.jsonl" >"$T/fx.m"
# E = 2, ramp 0.5: E_s = 1, lambda0 in epoch 1, lambda_max in the last
l1=$(field "$T/fx.m" 1 lambda) l2=$(field "$T/fx.m" 2 lambda)
if [ "$l1" = 10 ] && [ "$l2" = 100 ]; then ok; else bad "lambda schedule" "got $l1, $l2 (10, 100)"; fi
snap=$(field "$T/fx.m" 2 snapped_acc) tacc=$(field "$T/fx.m" 2 test_acc)
for k in reg level_dist_steps near_level_share float_acc; do
    v=$(field "$T/fx.m" 2 $k 2>/dev/null) || v=missing
    if "$PY" -c "import sys; v=float(sys.argv[1]); sys.exit(not (v >= 0))" "$v" 2>/dev/null; then
        ok
    else bad "metrics $k" "got '$v'"; fi
done
if [ "$snap" = "$tacc" ] && "$PY" -c "import sys; sys.exit(not float(sys.argv[1]) >= $floor)" \
    "$snap"; then ok; else bad "snapped accuracy" "snapped_acc $snap (test_acc $tacc), floor $floor"; fi
"$L" eval "$T/fx.ckpt" --data "$DATA" --test-limit $ntest >"$T/fx.eval" 2>&1
acc=$(sed -n 's/^accuracy: //p' "$T/fx.eval")
if "$PY" -c "import sys; sys.exit(abs(float(sys.argv[1]) - float(sys.argv[2])) > 1e-4)" \
    "$acc" "$snap" 2>/dev/null; then ok; else
    bad "eval = snapped" "eval says '$acc', metrics snapped_acc $snap" "$T/fx.eval"
fi
"$L" eval "$T/fx.ckpt" --data "$DATA" --test-limit $ntest --integer --compare >"$T/fx.int" 2>&1
agree=$(sed -n 's/^agreement: \([0-9.]*\) .*/\1/p' "$T/fx.int")
if "$PY" -c "import sys; sys.exit(not float(sys.argv[1]) >= 0.99)" "$agree" 2>/dev/null; then
    ok
else bad "eval --integer vs snapped float" "agreement '$agree'" "$T/fx.int"; fi
"$L" info "$T/fx.ckpt" >"$T/fx.info" 2>&1
if grep -qE '^  conv2 +reg fixed/mse levels \(by index k\): (-?[0-9.e-]+ ){15}-?[0-9.e-]+$' \
    "$T/fx.info" && grep -q '^reg: levels fixed  form mse  lambda 10 -> 100' "$T/fx.info"; then
    ok
else bad "info levels" "no levels line for conv2" "$T/fx.info"; fi

# ---- learned levels: resume bit for bit, integer refusal ------------------------------------
LR=("${C[@]}" --quant reg --levels learned --reg-kind gauss --levels-lr 1e-4 --epochs 2
    --train-limit 256 --test-limit 128 --no-augment)
if "$L" train "${LR[@]}" --out "$T/lf.ckpt" >"$T/lf.train" 2>&1 &&
    "$L" train "${LR[@]}" --out "$T/lr.ckpt" --stop-after 1 >"$T/lr1.train" 2>&1 &&
    "$L" train --data "$DATA" --resume "$T/lr.ckpt" --out "$T/lr.ckpt" >"$T/lr2.train" 2>&1 &&
    cmp -s "$T/lf.ckpt" "$T/lr.ckpt"; then ok; else
    bad "learned resume" "a resumed run differs from the full run" "$T/lr2.train"
fi
# learned levels are deployed on a power-of-two grid: the integer model holds them exactly. The
# first and last layers of a reg model are LSQ (docs/reg.md, "Plan"): the 8-bit fc runs as integer
# (8-bit learned levels there were refused: int16 codes x 8-bit inputs over 3136 weights)
if "$L" eval "$T/lf.ckpt" --data "$DATA" --integer --test-limit 16 >"$T/lf8.int" 2>&1 &&
    "$L" info "$T/lf.ckpt" | grep -qE '^  fc +linear .*W: lsq 8-bit'; then ok; else
    bad "learned, 8-bit LSQ fc --integer" "refused, or fc not LSQ" "$T/lf8.int"
fi
if "$L" train "${C[@]}" --quant reg --levels learned --levels-lr 1e-5 --last-bits 7 --epochs 2 \
    --reg-lambda 10 --reg-lambda-max 100 --train-limit $ntrain --test-limit $ntest \
    --out "$T/ln.ckpt" >"$T/ln.train" 2>&1; then ok; else
    bad "learned train" "exit $?" "$T/ln.train"
fi
"$L" eval "$T/ln.ckpt" --data "$DATA" --test-limit $ntest --integer --compare >"$T/ln.int" 2>&1
agree=$(sed -n 's/^agreement: \([0-9.]*\) .*/\1/p' "$T/ln.int")
if "$PY" -c "import sys; sys.exit(not float(sys.argv[1]) >= 0.99)" "$agree" 2>/dev/null; then
    ok
else bad "learned eval --integer vs snapped float" "agreement '$agree'" "$T/ln.int"; fi

# ---- FP32 -> reg fine-tuning -----------------------------------------------------------------
if "$L" train "${C[@]}" --epochs 1 --train-limit 256 --test-limit 128 --out "$T/fp.ckpt" \
    >"$T/fp.train" 2>&1 &&
    "$L" train "${C[@]}" --init "$T/fp.ckpt" --quant reg --levels step --epochs 1 \
        --train-limit 256 --test-limit 128 --out "$T/ft.ckpt" >"$T/ft.train" 2>&1 &&
    grep -q '"lambda":' "$T/ft.ckpt.metrics.jsonl"; then ok; else
    bad "--init fp32 --quant reg" "fine-tuning failed" "$T/ft.train"
fi

# ---- damaged levels are refused on load ---------------------------------------------------------
# poke(file, tensor, index, value): one float32 of a safetensors tensor
poke() {
    "$PY" - "$@" <<'EOF'
import json, struct, sys
path, name, idx, val = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
b = bytearray(open(path, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
off = 8 + n + h[name]['data_offsets'][0] + 4 * idx
if val == 'half1':  # R_1 := R_0 / 2: level 2 below level 1
    val = struct.unpack('<f', b[off - 4:off])[0] / 2
struct.pack_into('<f', b, off, float(val))
open(path, 'wb').write(b)
EOF
}
cp "$T/fx.ckpt" "$T/nan.ckpt" && poke "$T/nan.ckpt" conv2.wq.state 1 nan
"$L" eval "$T/nan.ckpt" --data "$DATA" --test-limit 16 >"$T/nan.out" 2>&1
if [ $? -eq 1 ] && grep -q "$T/nan.ckpt: layer 'conv2': reg levels of channel 0 are not finite" \
    "$T/nan.out"; then ok; else bad "NaN levels" "not refused by name" "$T/nan.out"; fi
cp "$T/fx.ckpt" "$T/ord.ckpt" && poke "$T/ord.ckpt" conv3.wq.state 2 half1
"$L" info "$T/ord.ckpt" >"$T/ord.out" 2>&1
if [ $? -eq 1 ] && grep -q "$T/ord.ckpt: layer 'conv3'.*not ordered" "$T/ord.out"; then ok; else
    bad "unordered levels" "not refused by name" "$T/ord.out"
fi
finish
