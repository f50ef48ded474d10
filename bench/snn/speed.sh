#!/usr/bin/env bash
# Speed of lowbit's spiking training step (snn-vgg, direct encoding) against its PyTorch + snnTorch
# twin (peer_snn.py), same machine, threads, T, batch and weights, run alternately ROUNDS times
# per configuration; prints each side's median img/s and the median of the per-round ratios
# lowbit/peer. Then the cost of one time step against the equivalent CNN step (snn-vgg at T=1
# without the spiking overhead is the cnn's conv stack: the cnn's step time over T gives it).
# Never run it beside other work.
# Usage: bench/snn/speed.sh [LOWBIT] [T:wbits ...] (default 8:0 8:4 4:0). Env: ROUNDS (5),
# STEPS (10), THREADS (2), BATCH (128).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
L=${1:-$here/../../build/release/lowbit}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- 8:0 8:4 4:0
R=${ROUNDS:-5} S=${STEPS:-10} TH=${THREADS:-2} B=${BATCH:-128}
q() { [ "$1" = 0 ] && echo "" || echo "--quant lsq --wbits $1"; }
lb() { # shellcheck disable=SC2046
    "$L" bench --model snn-vgg --timesteps "$1" $(q "$2") --batch "$B" --threads "$TH" \
        --steps "$S" --warmup 3 | sed -n 's/^train_img_per_s: //p'; }
pt() { /usr/bin/python3 "$here/peer_snn.py" --timesteps "$1" --wbits "$2" --batch "$B" \
    --threads "$TH" --steps "$S" | sed -n 's/^train_img_per_s: //p'; }
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
echo "| T | weights | lowbit img/s | snnTorch img/s | lowbit/snnTorch (paired median) |"
echo "|---|---|---:|---:|---:|"
for cfg in "$@"; do
    IFS=: read -r t w <<<"$cfg"
    as=() bs=() rs=()
    for _ in $(seq "$R"); do
        a=$(lb "$t" "$w") b=$(pt "$t" "$w")
        as+=("$a") bs+=("$b") rs+=("$(awk -v x="$a" -v y="$b" 'BEGIN{print x/y}')")
    done
    printf '| %s | %s | %.1f | %.1f | %.2f |\n' "$t" "$([ "$w" = 0 ] && echo fp32 || echo "${w}-bit")" \
        "$(med "${as[@]}")" "$(med "${bs[@]}")" "$(med "${rs[@]}")"
done
c=$("$L" bench --model cnn --batch "$B" --threads "$TH" --steps "$S" --warmup 3 |
    sed -n 's/^train_img_per_s: //p')
s=$(lb 8 0)
awk -v c="$c" -v s="$s" 'BEGIN { printf "cnn step: %.1f img/s; snn-vgg T=8: %.1f img/s; one time step costs %.2fx a cnn step\n", c, s, (c / s) / 8 }'
