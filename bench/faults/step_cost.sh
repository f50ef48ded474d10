#!/usr/bin/env bash
# Step cost of fine-tuning for a chip (issue 12, "Fast"): the training throughput of `lowbit
# finetune --method lowbit` (fault-aware regularizer over every coded layer, periodic resets) on a
# 10% SA0 chip against a plain `--quant reg` training step of the same model (its own
# regularizer), alternating, ROUNDS rounds. Both are lb_train_step on the same data and batch;
# img/s is over the training steps of the epoch (train's and finetune's epoch lines). Prints
# "round model kind img_per_s" lines, then per model the median of the per-round ratios.
# Run it on an idle machine.
# usage: bench/faults/step_cost.sh CNN_REG_CKPT [RESNET20_REG_CKPT]
#   (reg learned W4A4 checkpoints, e.g. from bench/reg/accuracy.sh or bench/faults/sweep.sh)
# Environment: LOWBIT (default build/release/lowbit), ROUNDS (5), N (training images, 12800),
#   THREADS (2), DATA (Fashion-MNIST)
set -u -o pipefail
L=${LOWBIT:-build/release/lowbit}
ROUNDS=${ROUNDS:-5}
N=${N:-12800}
THREADS=${THREADS:-2}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
[ $# -ge 1 ] || { sed -n 2,12p "$0"; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ips() { sed -n 's/^epoch 1\/1 .* \([0-9.]*\) img\/s.*/\1/p' "$1" | tail -1; }
for ck in "$@"; do
    m=$("$L" info "$ck" | sed -n 's/^model: \([^ ]*\).*/\1/p')
    "$L" faults map "$ck" --rate 0.1 --seed 1 -o "$tmp/$m.lbmap" >/dev/null || exit 1
    for r in $(seq 1 "$ROUNDS"); do
        "$L" train --model "$m" --quant reg --levels learned --wbits 4 --abits 4 --init "$ck" \
            --data "$DATA" --epochs 1 --train-limit "$N" --test-limit 256 --threads "$THREADS" \
            --out "$tmp/p.st" >"$tmp/p.out" 2>&1 || { cat "$tmp/p.out"; exit 1; }
        echo "$r $m reg $(ips "$tmp/p.out")"
        "$L" finetune "$ck" --chip "$tmp/$m.lbmap" --data "$DATA" --train-limit "$N" \
            --test-limit 256 --threads "$THREADS" -o "$tmp/f.st" >"$tmp/f.out" 2>&1 ||
            { cat "$tmp/f.out"; exit 1; }
        echo "$r $m fault-aware $(ips "$tmp/f.out")"
        rm -f "$tmp"/*.st*
    done
done | tee "$tmp/all"
/usr/bin/python3 - "$tmp/all" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    r, m, k, x = line.split()
    v.setdefault(m, {}).setdefault(r, {})[k] = float(x)
for m, rounds in v.items():
    ratios = [d["reg"] / d["fault-aware"] for d in rounds.values()]
    print("%s: fault-aware step / reg step, median of %d paired ratios: %.3f (%s)"
          % (m, len(ratios), statistics.median(ratios), ", ".join("%.3f" % x for x in ratios)))
PY
