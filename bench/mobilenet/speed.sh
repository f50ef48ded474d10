#!/usr/bin/env bash
# MobileNet training speed, lowbit against its PyTorch twin (issue 13: mobilenetv1/v2 training
# >= 1.5x PyTorch, FP32 and W4A4): per configuration `lowbit bench` and
# bench/mobilenet/peer_mobilenet.py alternate, each in its own process, ROUNDS times (same model,
# batch 128, threads, real Fashion-MNIST batch); prints "round model quant lowbit_img_s
# torch_img_s" lines, then per configuration the medians and the median of the per-round ratios.
# Run it on an idle machine. usage: bench/mobilenet/speed.sh
# Environment: LOWBIT (build/release/lowbit), ROUNDS (3), STEPS (5), WARMUP (2), THREADS (2),
#   BATCH (128), WIDTH (1), MODELS ("mobilenetv1 mobilenetv2"), QUANTS ("fp32 lsq")
set -u -o pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
L=${LOWBIT:-build/release/lowbit}
ROUNDS=${ROUNDS:-3} STEPS=${STEPS:-5} WARMUP=${WARMUP:-2} THREADS=${THREADS:-2}
BATCH=${BATCH:-128} WIDTH=${WIDTH:-1}
MODELS=${MODELS:-mobilenetv1 mobilenetv2} QUANTS=${QUANTS:-fp32 lsq}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$ROUNDS"); do
    for m in $MODELS; do
        for q in $QUANTS; do
            lq=$q
            [ "$q" = fp32 ] && lq=fp32
            a=$("$L" bench --model "$m" --width-mult "$WIDTH" --batch "$BATCH" --threads "$THREADS" \
                --steps "$STEPS" --warmup "$WARMUP" --quant "$lq" 2>&1 |
                sed -n 's/^train_img_per_s: //p')
            b=$(/usr/bin/python3 "$here/peer_mobilenet.py" "$m" "$q" --batch "$BATCH" \
                --threads "$THREADS" --steps "$STEPS" --warmup "$WARMUP" --width-mult "$WIDTH" |
                /usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["img_per_s"])')
            echo "$r $m $q ${a:-nan} ${b:-nan}"
        done
    done
done | tee "$tmp/all"
/usr/bin/python3 - "$tmp/all" <<'PY'
import statistics, sys
v = {}
for line in open(sys.argv[1]):
    r, m, q, a, b = line.split()
    v.setdefault((m, q), []).append((float(a), float(b)))
print("\n| model | quant | lowbit img/s | PyTorch img/s | lowbit/PyTorch (median of paired ratios) |")
print("|---|---|---:|---:|---:|")
for (m, q), rs in v.items():
    print("| %s | %s | %.1f | %.1f | **%.2f** |" % (m, "W4A4 (LSQ)" if q == "lsq" else "FP32",
          statistics.median(a for a, _ in rs), statistics.median(b for _, b in rs),
          statistics.median(a / b for a, b in rs)))
PY
