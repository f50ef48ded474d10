#!/usr/bin/env bash
# Spiking-network accuracy on DVS-emulated Fashion-MNIST events (issue 15): snn-vgg, T steps,
# `--encoding events` (every image turned into saccade events by the emulator, docs/events.md,
# binned into T two-polarity frames of 34x34), the default recipe for EPOCHS epochs in FP32, 4-bit
# LSQ weights fine-tuned from it for FT_EPOCHS epochs at lr 1e-4, then the 4-bit model's integer
# form against its float one on the 10,000 test images. About an hour on 2 cores at T 4.
# Usage: bench/snn/accuracy_events.sh [OUTDIR]  (LOWBIT=binary, THREADS=n, T=4, EPOCHS=3,
# FT_EPOCHS=1, EXTRA="options for both training runs", e.g. "--train-limit 12000" for a shorter
# run). A step whose OUTDIR/<name>.done exists is skipped.
set -eu
out=${1:-bench/snn/runs}
bin=${LOWBIT:-build/release/lowbit}
threads=${THREADS:-2}
T=${T:-4}
epochs=${EPOCHS:-3}
ft=${FT_EPOCHS:-1}
extra=${EXTRA:-}
mkdir -p "$out"
run() { # name, options...
    local name=$1
    shift
    [ -f "$out/$name.done" ] && return 0
    /usr/bin/time -v "$bin" train --model snn-vgg --timesteps "$T" --encoding events \
        --threads "$threads" --out "$out/$name.st" "$@" $extra >"$out/$name.log" 2>&1
    touch "$out/$name.done"
}
run ev_fp32 --epochs "$epochs"
run ev_w4 --init "$out/ev_fp32.st" --quant lsq --wbits 4 --lr 1e-4 --epochs "$ft"
if [ ! -f "$out/ev_w4.int.done" ]; then
    /usr/bin/time -v "$bin" eval "$out/ev_w4.st" --integer --compare --threads "$threads" \
        >"$out/ev_w4.int.log" 2>&1
    touch "$out/ev_w4.int.done"
fi
grep -h "^epoch\|accuracy\|agreement\|Elapsed\|Maximum resident" "$out"/ev_fp32.log \
    "$out"/ev_w4.log "$out"/ev_w4.int.log
