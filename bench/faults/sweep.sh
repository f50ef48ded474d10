#!/usr/bin/env bash
# The faulty-chip sweep of issue 12 ("Must show: the sweep"): Fashion-MNIST cnn and resnet20,
# W4A4 with reg learned levels (the base model) and LSQ, bit-fault rates 0..20% and variability
# 0..40%, 5 chips a point, before fine-tuning and after each method (lowbit, inject, qfalt), two
# epochs of the training set per chip and method (the issue's most). Not run by the suite (hours of CPU); the table
# and plots go to bench/RESULTS.md by hand, with this command.
#
# usage: bench/faults/sweep.sh [RUNDIR]          (RUNDIR default: $RUNDIR, else bench/faults/runs)
#
# Environment (all optional):
#   DATA     Fashion-MNIST directory          (default /usr/share/datasets/fashion-mnist)
#   MODELS   "cnn resnet20"
#   QUANTS   "reg lsq"     reg: --quant reg --levels learned; lsq: --quant lsq (both W4A4)
#   RATES    "0,0.01,0.02,0.05,0.1,0.15,0.2"   the rate sweep (variability 0)
#   VARS     "0,0.1,0.2,0.3,0.4"               the variability sweep (rate 0, --var-dist gauss)
#   CHIPS    5
#   FT_EPOCHS 2                                 epochs per chip and method (the issue allows 2)
#   FT_LR    ""   fine-tune peak rate (--lr of the sweeps; default: finetune's own)
#   SA1      0    share of stuck cells stuck at 1 (--sa1-share; 0: SA0 only, the reference's)
#   LAYERS   body first and last coded layers spared (body, the reference's setting) or on the
#                 chip too (all); docs/faults.md
#   REG_ENC  index  how reg layers store their level index: index (the seed's offset binary) or
#                 twos (two's complement, docs/faults.md "Encodings"); the rate sweep's
#                 directory gets a _twos suffix. LSQ keeps its own encoding (two's complement)
#   FT_LIMIT ""   fine-tune on the first N training images only (--train-limit of the sweeps,
#                 not of the base training): a fraction of an epoch per chip and method
#   METHODS  "lowbit,inject,qfalt"
#   THREADS  2    threads of each lowbit process
#   JOBS     1    points run at once: with JOBS > 1 every point (rate x variability) of a sweep
#                 is its own `lowbit faults sweep` process into <sweep>.points/r<R>_v<V>/ (log
#                 beside it), JOBS at a time, each with THREADS threads (JOBS=2 THREADS=1 on two
#                 cores); then their cells and maps are copied into the sweep's directory and
#                 `faults sweep --collect` writes the joint tables and plots, computing nothing
#   EXTRA    ""   appended to every lowbit command (smoke tests only, e.g. "--train-limit 512
#                 --test-limit 256"); keep smoke runs in their own RUNDIR
#   LOWBIT   the binary (default <repo>/build/release/lowbit)
#   DRY_RUN  1: print the commands, run nothing
#
# Layout of RUNDIR, per model and quant <m>_<q>:
#   <m>_<q>.safetensors (+ .metrics.jsonl, .log)   the base model, default training recipe;
#       <m>_<q>.done marks a finished training (an interrupted one is resumed with --resume).
#       To sweep a model trained elsewhere, link it there and create the .done file.
#   <m>_<q>_rates/   lowbit faults sweep over RATES: sweep.csv, sweep.json, sweep_rate.svg/.png
#   <m>_<q>_var/     lowbit faults sweep over VARS: sweep.csv, sweep.json, sweep_var.svg/.png
# Both sweeps are resumable (finished cells are not redone): rerun the same command.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
RUNDIR=${1:-${RUNDIR:-$here/runs}}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
MODELS=${MODELS:-cnn resnet20}
QUANTS=${QUANTS:-reg lsq}
RATES=${RATES:-0,0.01,0.02,0.05,0.1,0.15,0.2}
VARS=${VARS:-0,0.1,0.2,0.3,0.4}
CHIPS=${CHIPS:-5}
FT_EPOCHS=${FT_EPOCHS:-2}
FT_LR=${FT_LR:-}
SA1=${SA1:-0}
LAYERS=${LAYERS:-body}
REG_ENC=${REG_ENC:-index}
FT_LIMIT=${FT_LIMIT:-}
METHODS=${METHODS:-lowbit,inject,qfalt}
THREADS=${THREADS:-2}
JOBS=${JOBS:-1}
EXTRA=${EXTRA:-}
LOWBIT=${LOWBIT:-$repo/build/release/lowbit}
DRY_RUN=${DRY_RUN:-0}

run() { # prints the command; runs it unless DRY_RUN
    echo "+ $*"
    [ "$DRY_RUN" = 1 ] && return 0
    "$@"
}

# One sweep over RATES x VARS (comma lists) into OUT: one process, or with JOBS > 1 one process per
# point, JOBS at a time, merged with --collect (bench/faults/README.md).
grid() { # CKPT OUT RATES VARS [faults sweep options...]
    local ck=$1 out=$2 rates=$3 vars=$4
    shift 4
    if [ "$JOBS" -le 1 ]; then
        run "$LOWBIT" faults sweep "$ck" --rates "$rates" --variability "$vars" "$@" -o "$out"
        return
    fi
    local pts="$out.points" n=0 fail=0 r v
    mkdir -p "$pts"
    for r in ${rates//,/ }; do
        for v in ${vars//,/ }; do
            local log="$pts/r${r}_v$v.log"
            [ "$DRY_RUN" = 1 ] && log=/dev/stdout
            run "$LOWBIT" faults sweep "$ck" --rates "$r" --variability "$v" "$@" --no-plot \
                -o "$pts/r${r}_v$v" >"$log" 2>&1 &
            n=$((n + 1))
            if [ "$n" -ge "$JOBS" ]; then
                wait -n || fail=1
                n=$((n - 1))
            fi
        done
    done
    while [ "$n" -gt 0 ]; do
        wait -n || fail=1
        n=$((n - 1))
    done
    [ "$fail" = 0 ] || { echo "a point of $out failed: see $pts/*.log" >&2; return 1; }
    [ "$DRY_RUN" = 1 ] || {
        mkdir -p "$out/cells" "$out/maps" &&
            for d in "$pts"/r*/; do
                cp -n "$d"cells/* "$out/cells/" && cp -n "$d"maps/* "$out/maps/" || return 1
            done
    }
    run "$LOWBIT" faults sweep "$ck" --rates "$rates" --variability "$vars" "$@" --collect -o "$out"
}

[ "$DRY_RUN" = 1 ] || [ -x "$LOWBIT" ] || { echo "no $LOWBIT: run make first" >&2; exit 1; }
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "JOBS must be a positive integer, not '$JOBS'" >&2; exit 2; }
mkdir -p "$RUNDIR"
# shellcheck disable=SC2206
extra=($EXTRA)
for m in $MODELS; do
    for q in $QUANTS; do
        case $q in
        reg) qopt=(--quant reg --levels learned --wbits 4 --abits 4) ;;
        lsq) qopt=(--quant lsq --wbits 4 --abits 4) ;;
        *) echo "unknown quant '$q' (reg, lsq)" >&2; exit 2 ;;
        esac
        base="$RUNDIR/${m}_$q"
        if [ ! -e "$base.done" ]; then
            if [ -e "$base.safetensors" ]; then
                run "$LOWBIT" train --resume "$base.safetensors" --out "$base.safetensors" \
                    --data "$DATA" --threads "$THREADS" 2>&1 | tee -a "$base.log" || exit 1
            else
                run "$LOWBIT" train --model "$m" "${qopt[@]}" --data "$DATA" --threads "$THREADS" \
                    --out "$base.safetensors" "${extra[@]}" 2>&1 | tee "$base.log" || exit 1
            fi
            [ "$DRY_RUN" = 1 ] || touch "$base.done"
        fi
        common=(--chips "$CHIPS" --finetune-epochs "$FT_EPOCHS" --methods "$METHODS"
            --sa1-share "$SA1" --layers "$LAYERS" --data "$DATA" --threads "$THREADS" "${extra[@]}")
        [ -n "$FT_LIMIT" ] && common+=(--train-limit "$FT_LIMIT")
        [ -n "$FT_LR" ] && common+=(--lr "$FT_LR")
        enc=() sfx=""
        if [ "$q" = reg ] && [ "$REG_ENC" != index ]; then enc=(--reg-encoding "$REG_ENC") sfx="_$REG_ENC"; fi
        grid "$base.safetensors" "${base}_rates$sfx" "$RATES" 0 "${common[@]}" "${enc[@]}" || exit 1
        grid "$base.safetensors" "${base}_var" 0 "$VARS" --var-dist gauss "${common[@]}" || exit 1
    done
done
echo "done: tables and plots in $RUNDIR/*_rates and $RUNDIR/*_var"
