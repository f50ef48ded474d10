#!/usr/bin/env bash
# Speed of lowbit's `--quant reg` training step against its PyTorch twin (peer_reg.py), same
# machine, threads, model, batch and W4A4 plan, run alternately ROUNDS times per configuration;
# prints each side's median img/s and the median of the per-round ratios lowbit/PyTorch (a slow
# phase of a shared host moves both of a round). Never run it beside other work.
# Usage: bench/reg/speed.sh [LOWBIT] [model:levels ...]   (default cnn:fixed resnet20:fixed
#        cnn:learned resnet20:learned). Env: ROUNDS (5), STEPS (20), THREADS (2), BATCH (128).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
L=${1:-$here/../../build/release/lowbit}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- cnn:fixed resnet20:fixed cnn:learned resnet20:learned
R=${ROUNDS:-5} S=${STEPS:-20} T=${THREADS:-2} B=${BATCH:-128}
lb() { "$L" bench --model "$1" --quant reg --levels "$2" --batch "$B" --threads "$T" \
    --steps "$S" --warmup 5 | sed -n 's/^train_img_per_s: //p'; }
pt() { /usr/bin/python3 "$here/peer_reg.py" --model "$1" --levels "$2" --batch "$B" \
    --threads "$T" --steps "$S" | sed -n 's/^train_img_per_s: //p'; }
med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
echo "| model | levels | lowbit img/s | PyTorch img/s | lowbit/PyTorch (paired median) |"
echo "|---|---|---:|---:|---:|"
for cfg in "$@"; do
    IFS=: read -r m lv <<<"$cfg"
    as=() bs=() rs=()
    for _ in $(seq "$R"); do
        a=$(lb "$m" "$lv") b=$(pt "$m" "$lv")
        as+=("$a") bs+=("$b") rs+=("$(awk -v x="$a" -v y="$b" 'BEGIN{print x/y}')")
    done
    printf '| %s | %s | %.0f | %.0f | %.2f |\n' "$m" "$lv" "$(med "${as[@]}")" \
        "$(med "${bs[@]}")" "$(med "${rs[@]}")"
done
