# Shared by the long benches (bench/compare/run.sh, bench/pareto/run.sh): one resumable training
# cell per name in RUNDIR. Expects RUNDIR, LOWBIT, DATA, THREADS, DRY_RUN, repo and the array
# extra set by the caller. A cell is done when RUNDIR/<name>.log exists (written as .log.part,
# renamed when lowbit exits, any status); a lock directory keeps two copies of a script apart;
# an interrupted cell (lock, no .log) is redone after its lock is removed by hand.

# cell NAME ARGS...: lowbit train ARGS --out RUNDIR/NAME.safetensors, once
cell() {
    local name=$1
    shift
    local out="$RUNDIR/$name"
    [ -e "$out.log" ] && return 0
    if [ "$DRY_RUN" = 1 ]; then
        echo "+ $LOWBIT train $* --out $out.safetensors"
        return 0
    fi
    mkdir "$out.lock" 2>/dev/null || return 0 # another copy runs it
    rm -f "$out.safetensors" "$out.safetensors.metrics.jsonl"
    {
        echo "# command: $LOWBIT train $* --data $DATA --threads $THREADS ${extra[*]} --out $out.safetensors"
        echo "# git: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null)  started: $(date -u +%FT%TZ)"
    } >"$out.log.part"
    OPENBLAS_NUM_THREADS=1 "$LOWBIT" train "$@" --data "$DATA" --threads "$THREADS" \
        "${extra[@]}" --out "$out.safetensors" >>"$out.log.part" 2>&1
    echo "# exit $?  ended: $(date -u +%FT%TZ)" >>"$out.log.part"
    mv "$out.log.part" "$out.log"
    rmdir "$out.lock"
}

# wait_for RUNDIR/NAME: until another copy has finished that cell; true when it exited 0
wait_for() {
    [ "$DRY_RUN" = 1 ] && return 0
    while [ ! -e "$1.log" ] && [ -d "$1.lock" ]; do sleep 30; done
    [ -e "$1.log" ] && grep -q '^# exit 0' "$1.log"
}
