#!/usr/bin/env bash
# A/B of two lowbit builds on `lowbit bench` (the trainer's own step, medians of timed steps):
# the two run alternately, ROUNDS times per configuration; prints each build's median img/s and
# the median of the per-round ratios B/A (a slow phase of a shared host moves both of a round).
# Usage: bench/ab_lowbit.sh OLD_LOWBIT NEW_LOWBIT [CONFIG...]   CONFIG = model:quant:batch
# Env: ROUNDS (3), STEPS (20), THREADS (2).
set -eu
A=${1:?usage: ab_lowbit.sh OLD NEW [model:quant:batch ...]} B=${2:?}
shift 2
[ $# -gt 0 ] || set -- cnn:fp32:128 cnn:lsq:128 resnet20:fp32:128 resnet20:lsq:128
R=${ROUNDS:-3} S=${STEPS:-20} T=${THREADS:-2}
rate() { # exe model quant batch
    local q=(--quant fp32)
    [ "$3" = fp32 ] || q=(--quant "$3" --wbits 4 --abits 4)
    "$1" bench --model "$2" --batch "$4" --threads "$T" --steps "$S" --warmup 5 "${q[@]}" |
        sed -n 's/^train_img_per_s: //p'
}
echo "| model | quant | batch | A img/s | B img/s | B/A (paired median) |"
echo "|---|---|---:|---:|---:|---:|"
for cfg in "$@"; do
    IFS=: read -r m q b <<<"$cfg"
    as=() bs=() rs=()
    for _ in $(seq "$R"); do
        a=$(rate "$A" "$m" "$q" "$b") bb=$(rate "$B" "$m" "$q" "$b")
        as+=("$a") bs+=("$bb") rs+=("$(awk -v x="$bb" -v y="$a" 'BEGIN{print x/y}')")
    done
    med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
    printf '| %s | %s | %s | %.0f | %.0f | %.3f |\n' "$m" "$q" "$b" "$(med "${as[@]}")" \
        "$(med "${bs[@]}")" "$(med "${rs[@]}")"
done
