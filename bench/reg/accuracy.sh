#!/usr/bin/env bash
# Issue 11's accuracy table (docs/reg.md): reg fixed / step / learned levels against LSQ at
# W4A4, W3A3 and W2A2, fine-tuned from FP32 on full Fashion-MNIST (first/last layers LSQ 8-bit),
# for the cnn and resnet20; then the integer model against the snapped float model and the
# exported C against `eval --integer` (bench/int_agree.sh) for every W4A4 and W2A2 checkpoint.
# Recipes: the FP32 runs are bench/RESULTS.md's recipes A (cnn) and B (resnet20); the fine-tunes
# use the LSQ fine-tune recipe of issue 2 (SGD, no warm-up, label smoothing 0.1, flip; cnn lr 0.01
# without crop, resnet20 lr 0.02), the reg defaults otherwise (lambda 100 -> 1000 from half the
# run, levels-lr 1e-6), epochs per bit-width EPOCHS_cnn / EPOCHS_resnet20 ("4:3 3:4 2:5" /
# "4:2 3:3 2:4"). Not part of the suite: hours of CPU. Resumable; two copies share the cells.
#
# usage: bench/reg/accuracy.sh [RUNDIR]      (default: $RUNDIR, else bench/reg/runs)
# Environment: MODELS ("cnn resnet20"), FP32_cnn / FP32_resnet20 (FP32 checkpoints to start from;
#   else trained here), CN (exported-C images per checkpoint, default 1000), THREADS (1), EXTRA,
#   LOWBIT, DATA, DRY_RUN as bench/compare/run.sh.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
RUNDIR=${1:-${RUNDIR:-$here/runs}}
MODELS=${MODELS:-cnn resnet20}
EPOCHS_cnn=${EPOCHS_cnn:-4:3 3:4 2:5}
EPOCHS_resnet20=${EPOCHS_resnet20:-4:2 3:3 2:4}
CN=${CN:-1000}
THREADS=${THREADS:-1}
EXTRA=${EXTRA:-}
LOWBIT=${LOWBIT:-$repo/build/release/lowbit}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
DRY_RUN=${DRY_RUN:-0}
die() { echo "reg accuracy: $*" >&2; exit 2; }
[ -x "$LOWBIT" ] || die "no lowbit binary at $LOWBIT (set LOWBIT)"
mkdir -p "$RUNDIR" || die "cannot create $RUNDIR"
# shellcheck disable=SC2206
extra=($EXTRA)
. "$here/../cells.bash"

common=(--seed 1 --label-smoothing 0.1 --flip)
cks=()
for m in $MODELS; do
    case $m in
    cnn) fp=(--lr 0.05 --warmup 1 --crop-pad 0) ft=(--lr 0.01 --warmup 0 --crop-pad 0) ;;
    resnet20) fp=(--lr 0.1 --warmup 1) ft=(--lr 0.02 --warmup 0) ;;
    *) die "unknown model '$m' (cnn resnet20)" ;;
    esac
    var=FP32_$m
    base=${!var:-}
    if [ -z "$base" ]; then
        cell "${m}_fp32" --model "$m" --epochs 15 "${fp[@]}" "${common[@]}"
        wait_for "$RUNDIR/${m}_fp32" || { echo "reg accuracy: $m FP32 failed" >&2; continue; }
        base=$RUNDIR/${m}_fp32.safetensors
    fi
    var=EPOCHS_$m
    for pe in ${!var}; do
        b=${pe%%:*} e=${pe#*:}
        a=(--model "$m" --init "$base" --epochs "$e" --wbits "$b" --abits "$b" "${ft[@]}"
            "${common[@]}")
        cell "${m}_lsq_w$b" "${a[@]}" --quant lsq
        for k in fixed step learned; do
            cell "${m}_reg_${k}_w$b" "${a[@]}" --quant reg --levels "$k"
            [ "$b" != 3 ] && cks+=("$RUNDIR/${m}_reg_${k}_w$b.safetensors")
        done
    done
done
[ "$DRY_RUN" = 1 ] && exit 0
ready=()
for c in "${cks[@]}"; do [ -e "${c%.safetensors}.log" ] && ready+=("$c"); done
[ ${#ready[@]} -gt 0 ] &&
    CN=$CN bash "$repo/bench/int_agree.sh" -l "$LOWBIT" -o "$RUNDIR/int_agree" "${ready[@]}"
# the accuracy table: last epoch's snapped accuracy (reg) / test accuracy (others) per cell
/usr/bin/python3 - "$RUNDIR" <<'EOF'
import json, os, sys
d = sys.argv[1]
print("| model | quant | W4A4 | W3A3 | W2A2 |\n|---|---|---|---|---|")
for m in ("cnn", "resnet20"):
    for q in ("lsq", "reg_fixed", "reg_step", "reg_learned"):
        row = []
        for b in (4, 3, 2):
            f = os.path.join(d, "%s_%s_w%d.safetensors.metrics.jsonl" % (m, q, b))
            if not os.path.exists(f):
                row.append("-")
                continue
            last = [json.loads(l) for l in open(f)][-1]
            acc = last.get("snapped_acc", last["test_acc"])
            row.append("%.2f%% (%d ep)" % (100 * acc, last["epoch"]))
        if any(r != "-" for r in row):
            print("| %s | %s | %s |" % (m, q.replace("_", " "), " | ".join(row)))
EOF
