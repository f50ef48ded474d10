#!/usr/bin/env bash
# Choosing a fine-tune setting on held-out chips: map seeds no sweep uses (the sweeps' chips are
# seeds 1..CHIPS), so a default chosen here is then checked on the sweeps' chips without having
# been tuned on them. One `lowbit finetune` per chip and setting, at 1 thread; the accuracies go
# to OUT/acc.tsv (kind, seed, method, lambda, chip accuracy). Not run by the suite (minutes a run).
# This is how lowbit's lambda on a chip with variability was chosen (docs/faults.md, "The pull's
# strength on a chip with variability"; bench/RESULTS.md has the table).
#
# usage: bench/faults/heldout.sh CKPT OUT
#
# Environment (all optional):
#   LOWBIT   the binary                       (default build/release/lowbit)
#   SEEDS    "101 102 103"                    map seeds of the held-out chips
#   KINDS    "v40 v20 r20"   v<P>: P% Gaussian variability, no stuck cells; r<P>: P% BFR, SA0;
#                            r<P>v<Q>: both on one chip
#   RUNS     "lowbit:0 lowbit:100 lowbit:30 qfalt:0"   method:lambda (0: the method's default)
#   FT_EPOCHS 2 ; FT_LR ""  (finetune's --epochs and --lr; lr default: finetune's own)
#   LIMITS   ""   e.g. "--train-limit 256 --test-limit 256": a quick check of the script
#   JOBS     2               runs at once
set -u
CK=${1:?usage: heldout.sh CKPT OUT}
OUT=${2:?usage: heldout.sh CKPT OUT}
export L=${LOWBIT:-build/release/lowbit} CK OUT
export FT_EPOCHS=${FT_EPOCHS:-2} FT_LR=${FT_LR:-} LIMITS=${LIMITS:-}
[ -x "$L" ] || { echo "heldout.sh: $L missing (make)" >&2; exit 2; }
[ -f "$CK" ] || { echo "heldout.sh: $CK: no such checkpoint" >&2; exit 2; }
mkdir -p "$OUT/maps" "$OUT/runs" || exit 1

one() { # kind seed method lambda
    local k=$1 s=$2 m=$3 la=$4 map="$OUT/maps/$1_s$2.lbmap" o="$OUT/runs/$1_s$2_$3_l$4"
    [ -s "$o.acc" ] && return 0
    local r=0 v=0
    if [[ $k =~ ^r([0-9.]+)v([0-9.]+)$ ]]; then r=${BASH_REMATCH[1]} v=${BASH_REMATCH[2]}
    elif [[ $k =~ ^r([0-9.]+)$ ]]; then r=${BASH_REMATCH[1]}
    elif [[ $k =~ ^v([0-9.]+)$ ]]; then v=${BASH_REMATCH[1]}
    else echo "heldout.sh: kind '$k': expected v<P>, r<P> or r<P>v<Q>" >&2; return 2; fi
    local opt=(--rate "$(awk -v p="$r" 'BEGIN { print p / 100 }')")
    [ "$r" != 0 ] && opt+=(--sa1-share 0)
    [ "$v" != 0 ] && opt+=(--variability "$(awk -v p="$v" 'BEGIN { print p / 100 }')" --var-dist gauss)
    # maps are drawn once per kind and seed, atomically by lowbit; concurrent runs of one map
    # draw the same bits
    [ -s "$map" ] || "$L" faults map "$CK" "${opt[@]}" --seed "$s" -o "$map" >/dev/null || return 1
    local ft=(--epochs "$FT_EPOCHS" --method "$m" --seed 1 --threads 1)
    [ "$la" != 0 ] && ft+=(--lambda "$la")
    [ -n "$FT_LR" ] && ft+=(--lr "$FT_LR")
    # shellcheck disable=SC2206 # LIMITS is a list of options
    ft+=($LIMITS)
    if "$L" finetune "$CK" --chip "$map" "${ft[@]}" -o "$o.safetensors" >"$o.log" 2>&1; then
        sed -n 's/^accuracy: //p' "$o.log" | tail -1 >"$o.acc.tmp" && mv "$o.acc.tmp" "$o.acc"
        printf '%s\t%s\t%s\t%s\t%s\n' "$k" "$s" "$m" "$la" "$(cat "$o.acc")" >>"$OUT/acc.tsv"
    else
        echo "heldout.sh: $o failed (see $o.log)" >&2
    fi
    rm -f "$o.safetensors"
}
export -f one
for k in ${KINDS:-v40 v20 r20}; do
    for s in ${SEEDS:-101 102 103}; do
        for r in ${RUNS:-lowbit:0 lowbit:100 lowbit:30 qfalt:0}; do echo "$k $s ${r%%:*} ${r##*:}"; done
    done
done | xargs -P "${JOBS:-2}" -L1 bash -c 'one "$@"' _
sort -u "$OUT/acc.tsv" 2>/dev/null
