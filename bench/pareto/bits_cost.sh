#!/usr/bin/env bash
# Step cost of learning bit-widths over plain LSQ QAT (issue 14, "Fast"), measured as a training
# run sees it: `lowbit train --init FP32` for N images with --quant lsq, with --learn-bits adaqat
# (its two probe forwards every step counted), and with --quant sliced (quantizer updates every
# --sliced-every steps, the whole run in the mixed phase: the costliest phase), alternating in
# each of ROUNDS rounds. img/s is the epoch line's, over the training steps. Prints "round kind
# img_per_s", then per kind the median of the per-round ratios of LSQ's img/s to its own (the
# step-time ratio; goal <= 1.25 for sliced). Run it on an idle machine.
# usage: bench/pareto/bits_cost.sh FP32_CKPT   (e.g. a resnet20 FP32 run on Fashion-MNIST)
# Environment: LOWBIT (build/release/lowbit), ROUNDS (5), N (12800), THREADS (2), DATA
set -u -o pipefail
L=${LOWBIT:-build/release/lowbit}
ROUNDS=${ROUNDS:-5}
N=${N:-12800}
THREADS=${THREADS:-2}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
[ $# -eq 1 ] || { sed -n 2,10p "$0"; exit 2; }
ck=$1
m=$("$L" info "$ck" | sed -n 's/^model: \([^ ]*\).*/\1/p')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ips() { sed -n 's/^epoch 1\/1 .* \([0-9.]*\) img\/s.*/\1/p' "$1" | tail -1; }
for r in $(seq 1 "$ROUNDS"); do
    for k in lsq adaqat sliced; do
        case $k in
        lsq) o=(--quant lsq) ;;
        adaqat) o=(--quant lsq --learn-bits adaqat) ;;
        sliced) o=(--quant sliced) ;;
        esac
        "$L" train --model "$m" "${o[@]}" --wbits 4 --abits 4 --init "$ck" --data "$DATA" \
            --epochs 1 --train-limit "$N" --test-limit 256 --threads "$THREADS" \
            --out "$tmp/t.st" >"$tmp/t.out" 2>&1 || { cat "$tmp/t.out"; exit 1; }
        echo "$r $k $(ips "$tmp/t.out")"
        rm -f "$tmp"/t.st*
    done
done | tee "$tmp/all"
/usr/bin/python3 - "$tmp/all" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    r, k, x = line.split()
    v.setdefault(r, {})[k] = float(x)
for k in ("adaqat", "sliced"):
    ratios = [d["lsq"] / d[k] for d in v.values()]
    print("%s step / lsq step, median of %d paired ratios: %.3f (%s)"
          % (k, len(ratios), statistics.median(ratios), ", ".join("%.3f" % x for x in ratios)))
PY
