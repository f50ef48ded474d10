#!/usr/bin/env bash
# The robustness sweep (issue 10, part 4): trains lowbit with DEFAULT options on every
# set x seed x model x quant and leaves one checkpoint, metrics file and log per cell.
#
# usage: bench/robust/sweep.sh [RUNDIR]          (RUNDIR default: $RUNDIR, else bench/robust/runs)
#
# Environment (all optional):
#   DATA     directory holding the sets made by make_sets.py   (default /work/data/robust)
#   SETS     "glyphs digits colour tiny"
#   SEEDS    "1 2 3 4 5"
#   MODELS   "cnn resnet20"
#   QUANTS   "fp32 w4a4 w2a2"   fp32: no options; wAaB: --quant lsq --wbits A --abits B
#   THREADS  2                   passed as --threads
#   EXTRA    ""                  appended verbatim to every command (smoke tests only, e.g.
#                                "--epochs 1 --train-limit 512 --test-limit 256"); keep smoke
#                                runs in their own RUNDIR: a finished cell is never redone
#   LOWBIT   the binary          (default <repo>/build/release/lowbit)
#   REPO     the checkout whose commit the logs record (default: the one holding this script;
#            set it when running a copy of the script from elsewhere)
#   DRY_RUN  1: print the commands, run nothing
#
# Per cell <set>_<model>_<quant>_s<seed> in RUNDIR:
#   <name>.safetensors            checkpoint (--out)
#   <name>.safetensors.metrics.jsonl   lowbit's per-epoch metrics (and collapse events)
#   <name>.log                    header (# command, # git, ...), stdout+stderr, "# exit N"
#   <name>.cmd                    the exact command line
# The log is written as <name>.log.part and renamed when lowbit exits (any exit status), so a
# cell counts as done when its checkpoint and <name>.log exist; a rerun skips it. A cell that was
# interrupted (no .log) is started again from scratch: its partial checkpoint and metrics are
# removed first (lowbit appends to the metrics file). A done cell whose recorded command differs
# from the current one is reported as STALE and still skipped: delete its files to redo it.
# Then: /usr/bin/python3 bench/robust/table.py RUNDIR
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=${REPO:-$(cd "$here/../.." && pwd)}
RUNDIR=${1:-${RUNDIR:-$here/runs}}
DATA=${DATA:-/work/data/robust}
SETS=${SETS:-glyphs digits colour tiny}
SEEDS=${SEEDS:-1 2 3 4 5}
MODELS=${MODELS:-cnn resnet20}
QUANTS=${QUANTS:-fp32 w4a4 w2a2}
THREADS=${THREADS:-2}
EXTRA=${EXTRA:-}
LOWBIT=${LOWBIT:-$repo/build/release/lowbit}
DRY_RUN=${DRY_RUN:-0}

die() { echo "sweep: $*" >&2; exit 2; }
[ -x "$LOWBIT" ] || die "no lowbit binary at $LOWBIT (set LOWBIT)"
mkdir -p "$RUNDIR" || die "cannot create $RUNDIR"

quant_opts() {
    case "$1" in
        fp32) echo "" ;;
        w[2-8]a[2-8]) echo "--quant lsq --wbits ${1:1:1} --abits ${1:3:1}" ;;
        *) die "unknown quant '$1' (fp32 | wNaM, e.g. w4a4 w2a2)" ;;
    esac
}

for s in $SETS; do [ -d "$DATA/$s" ] || die "no data set $DATA/$s (run make_sets.py $DATA)"; done
for q in $QUANTS; do quant_opts "$q" >/dev/null; done

total=0; done_n=0; ran=0; failed=0; stale=0
rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null | wc -l)
bin_sum=$(sha256sum "$LOWBIT" | cut -c1-16)

for set in $SETS; do
  for model in $MODELS; do
    for quant in $QUANTS; do
      for seed in $SEEDS; do
        total=$((total + 1))
        name="${set}_${model}_${quant}_s${seed}"
        out="$RUNDIR/$name.safetensors"
        log="$RUNDIR/$name.log"
        # shellcheck disable=SC2206
        cmd=("$LOWBIT" train --data "$DATA/$set" --model "$model" $(quant_opts "$quant")
             --seed "$seed" --threads "$THREADS" --out "$out" $EXTRA)
        cmdline="${cmd[*]}"
        if [ -f "$out" ] && [ -f "$log" ]; then
            done_n=$((done_n + 1))
            if [ -f "$RUNDIR/$name.cmd" ] && [ "$(cat "$RUNDIR/$name.cmd")" != "$cmdline" ]; then
                stale=$((stale + 1))
                echo "STALE $name: done with another command (see $name.cmd); delete to redo"
            fi
            continue
        fi
        if [ "$DRY_RUN" = 1 ]; then echo "$cmdline"; continue; fi
        rm -f "$out" "$out.metrics.jsonl" "$log.part"
        printf '%s\n' "$cmdline" > "$RUNDIR/$name.cmd"
        {
            echo "# command: $cmdline"
            echo "# git: $rev ($dirty modified tracked files)  lowbit sha256: $bin_sum"
            echo "# host: $(hostname)  started: $(date -u +%FT%TZ)"
        } > "$log.part"
        echo "[$(date +%T)] run  $name"
        t0=$(date +%s)
        "${cmd[@]}" >> "$log.part" 2>&1
        rc=$?
        t1=$(date +%s)
        echo "# exit $rc  wall_s $((t1 - t0))  ended: $(date -u +%FT%TZ)" >> "$log.part"
        mv "$log.part" "$log"
        ran=$((ran + 1))
        if [ "$rc" -ne 0 ]; then
            failed=$((failed + 1))
            echo "[$(date +%T)] exit $rc: $name (see $log)"
        else
            echo "[$(date +%T)] done $name: $(grep -E '^accuracy:' "$log" | tail -1) ($((t1 - t0)) s)"
        fi
        if [ ! -f "$out" ]; then
            # no checkpoint: not done, a rerun will try again
            mv "$log" "$log.failed"
        fi
      done
    done
  done
done
echo "sweep: $total cells: $done_n already done ($stale stale), $ran run now ($failed non-zero exit)"
echo "next: /usr/bin/python3 $here/table.py $RUNDIR"
