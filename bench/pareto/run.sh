#!/usr/bin/env bash
# Pareto fronts and budgets of issue 14 (docs/mixed.md): per model, fine-tuned from an FP32
# checkpoint on Fashion-MNIST, test accuracy against the exported model's weight + activation
# bytes (`lowbit info`'s weight_bytes / activation_bytes, the exporter's own figures):
#   uniform  LSQ at W2A2, W3A3, W4A4, W8A8 (first/last layers 8 bits);
#   sliced   --quant sliced under 5 budgets: the weight and activation bytes of uniform W2, W3
#            and W4, and the midpoints W2.5 and W3.5 (the mean of the two neighbours' weight
#            bytes, the lower one's activation bytes): each run must end within its budget (the
#            trainer lowers slices at the fine-tune if the mixed phase did not get there; exit 4
#            otherwise, reported);
#   adaqat   --learn-bits adaqat from 4 bits with --bits-lambda 0.005, 0.02, 0.05.
# Writes RUNDIR/results.json, RUNDIR/pareto.svg/.png (lowbit plot pareto), RUNDIR/table.md and
# RUNDIR/goal.md (issue 14's goal judged by bench/pareto/goal.py).
# Not part of the suite: hours of CPU.
#
# usage: bench/pareto/run.sh [RUNDIR]            (RUNDIR default: $RUNDIR, else bench/pareto/runs)
# Environment (all optional):
#   MODELS     "resnet20 mobilenetv2"
#   FP32_resnet20, FP32_mobilenetv2   FP32 checkpoints to start from (default: bench/compare's
#              runs if there, else trained here: 15 epochs, recipe B)
#   EPOCHS     3 (every fine-tune); PHASES "1,1,1" (sliced: fixed-bit, mixed, fine-tune)
#   METHODS    "uniform sliced adaqat" (the cells to run; uniform's must exist for sliced)
#   SLICED     "2 2.5 3 3.5 4" (sliced budgets: uniform widths or midpoints between two)
#   THREADS 1; EXTRA; LOWBIT; DATA; DRY_RUN as bench/compare/run.sh (two copies share the cells)
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
RUNDIR=${1:-${RUNDIR:-$here/runs}}
MODELS=${MODELS:-resnet20 mobilenetv2}
EPOCHS=${EPOCHS:-3}
PHASES=${PHASES:-1,1,1}
THREADS=${THREADS:-1}
EXTRA=${EXTRA:-}
LOWBIT=${LOWBIT:-$repo/build/release/lowbit}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
DRY_RUN=${DRY_RUN:-0}
METHODS=${METHODS:-uniform sliced adaqat}
SLICED=${SLICED:-2 2.5 3 3.5 4}
die() { echo "pareto: $*" >&2; exit 2; }
[ -x "$LOWBIT" ] || die "no lowbit binary at $LOWBIT (set LOWBIT)"
mkdir -p "$RUNDIR" || die "cannot create $RUNDIR"
# shellcheck disable=SC2206
extra=($EXTRA)
. "$here/../cells.bash"

has() { case " $METHODS " in *" $1 "*) return 0 ;; esac; return 1; }
bytes() { # checkpoint, weight|activation -> bytes of the exported model
    "$LOWBIT" info "$1" 2>/dev/null | sed -n "s/^$2_bytes: \([0-9]*\)/\1/p"
}

common=(--seed 1 --label-smoothing 0.1 --flip)
for m in $MODELS; do
    var=FP32_${m//-/_}
    base=${!var:-}
    cmp=$repo/bench/compare/runs
    case $m in resnet20) guess=$cmp/r20_fp32 ;; *) guess=$cmp/${m}_fp32 ;; esac
    if [ -z "$base" ] && [ -e "$guess.log" ] && grep -q '^# exit 0' "$guess.log"; then
        base=$guess.safetensors
    fi
    if [ -z "$base" ]; then
        wu=1
        [ "$EPOCHS" -gt 1 ] || wu=0
        cell "${m}_fp32" --model "$m" --epochs 15 --lr 0.1 --warmup $wu "${common[@]}"
        wait_for "$RUNDIR/${m}_fp32" || { echo "pareto: $m FP32 failed" >&2; continue; }
        base=$RUNDIR/${m}_fp32.safetensors
    fi
    ft=(--model "$m" --init "$base" --epochs "$EPOCHS" --lr 0.02 --warmup 0 "${common[@]}")
    has uniform && for b in 2 3 4 8; do
        cell "${m}_uniform_w$b" "${ft[@]}" --quant lsq --wbits $b --abits $b
    done
    has sliced && for b in $SLICED; do
        lo=${b%.*} ws=${b%.*}
        [ "$lo" = "$b" ] || ws="$lo $((lo + 1))" # a midpoint: between W<lo> and W<lo+1>
        wb=0 ab= n=0
        for u in $ws; do
            u="$RUNDIR/${m}_uniform_w$u"
            wait_for "$u" || { echo "pareto: $u failed: no budget from it" >&2; continue 2; }
            if [ "$DRY_RUN" = 1 ]; then wb=W$b-weights ab=W$b-acts; continue; fi
            w=$(bytes "$u.safetensors" weight) a=$(bytes "$u.safetensors" activation)
            [ -n "$w" ] && [ -n "$a" ] || { echo "pareto: no bytes for $u" >&2; continue 2; }
            wb=$((wb + w)) ab=${ab:-$a} n=$((n + 1))
        done
        if [ "$DRY_RUN" != 1 ]; then
            # kB = 1000 bytes, rounded down: the budget is at most uniform's own bytes
            wb=$(awk -v x="$wb" -v n="$n" 'BEGIN { printf "%.3f", int(x / n) / 1000 }')
            ab=$(awk -v x="$ab" 'BEGIN { printf "%.3f", int(x) / 1000 }')
        fi
        cell "${m}_sliced_w$b" "${ft[@]}" --quant sliced --per-channel --wbits 4 --abits 4 \
            --phases "$PHASES" --budget-weights "$wb" --budget-acts "$ab"
    done
    has adaqat && for lam in 0.005 0.02 0.05; do
        cell "${m}_adaqat_l$lam" "${ft[@]}" --quant lsq --wbits 4 --abits 4 \
            --learn-bits adaqat --bits-lambda "$lam"
    done
done
[ "$DRY_RUN" = 1 ] && exit 0

# results.json: every finished cell with an exported size; budgets checked on the same figures
/usr/bin/python3 - "$RUNDIR" "$LOWBIT" <<'EOF'
import json, os, re, subprocess, sys
rundir, lowbit = sys.argv[1], sys.argv[2]
pts, rows = [], []
for name in sorted(os.listdir(rundir)):
    if not name.endswith(".log") or "_fp32" in name:
        continue
    cell = name[:-4]
    m = re.match(r"(.+)_(uniform|sliced|adaqat)_(\w[\w.]*)$", cell)
    if not m:
        continue
    model, method, tag = m.groups()
    log = open(os.path.join(rundir, name)).read()
    code = re.search(r"^# exit (\d+)", log, re.M)
    code = int(code.group(1)) if code else -1
    acc = re.findall(r"^accuracy: ([0-9.]+)", log, re.M)
    ck = os.path.join(rundir, cell + ".safetensors")
    info = subprocess.run([lowbit, "info", ck], capture_output=True, text=True).stdout
    wb = re.search(r"^weight_bytes: (\d+)", info, re.M)
    ab = re.search(r"^activation_bytes: (\d+)", info, re.M)
    budget = re.search(r"--budget-weights ([0-9.]+) --budget-acts ([0-9.]+)", log)
    within = None
    if budget and wb and ab:
        within = int(wb.group(1)) <= float(budget.group(1)) * 1000 and \
            int(ab.group(1)) <= float(budget.group(2)) * 1000
    rows.append((model, method, tag, code, acc[-1] if acc else "-", wb.group(1) if wb else "-",
                 ab.group(1) if ab else "-", budget.groups() if budget else None, within))
    if code in (0, 4) and acc and wb and ab:
        pt = {"model": model, "method": method, "label": tag,
              "weight_bytes": int(wb.group(1)), "activation_bytes": int(ab.group(1)),
              "accuracy": float(acc[-1])}
        if budget:  # the bytes it was allowed (a uniform model's): where goal.py compares it
            pt["budget_bytes"] = sum(round(float(x) * 1000) for x in budget.groups())
        pts.append(pt)
tmp = os.path.join(rundir, "results.json.part")
json.dump({"points": pts}, open(tmp, "w"), indent=1)
os.replace(tmp, os.path.join(rundir, "results.json"))
with open(os.path.join(rundir, "table.md"), "w") as f:
    f.write("| model | method | run | exit | test acc | weight bytes | activation bytes | budget kB (w / a) | within |\n")
    f.write("|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        b = "%s / %s" % r[7] if r[7] else "-"
        w = "-" if r[8] is None else ("yes" if r[8] else "**no**")
        f.write("| %s | %s | %s | %d | %s | %s | %s | %s | %s |\n" % (r[0], r[1], r[2], r[3], r[4], r[5], r[6], b, w))
print(open(os.path.join(rundir, "table.md")).read())
EOF
/usr/bin/python3 "$here/goal.py" "$RUNDIR/results.json" | tee "$RUNDIR/goal.md"
"$LOWBIT" plot pareto "$RUNDIR/results.json" -o "$RUNDIR/pareto.svg" && echo "plot: $RUNDIR/pareto.svg"
