#!/usr/bin/env bash
# Spiking-network accuracy on DVS-emulated Fashion-MNIST events (issue 15): snn-vgg, T 8,
# `--encoding events` (every image turned into saccade events by the emulator, docs/events.md,
# binned into 8 two-polarity frames of 34x34), the default recipe, FP32 and 4-bit LSQ weights, then
# the 4-bit model's integer form against its float one on the 10,000 test images. Long: hours on
# 2 cores. Usage: bench/snn/accuracy_events.sh [OUTDIR] (LOWBIT=binary, THREADS=n).
set -eu
out=${1:-bench/snn/runs}
bin=${LOWBIT:-build/release/lowbit}
threads=${THREADS:-2}
mkdir -p "$out"
run() { # name, options...
    local name=$1; shift
    [ -f "$out/$name.done" ] && return 0
    /usr/bin/time -v "$bin" train --model snn-vgg --timesteps 8 --encoding events \
        --threads "$threads" --out "$out/$name.st" "$@" >"$out/$name.log" 2>&1
    touch "$out/$name.done"
}
run ev_fp32
run ev_w4 --quant lsq --wbits 4
"$bin" eval "$out/ev_w4.st" --integer --compare --threads "$threads" >"$out/ev_w4.int.log" 2>&1
grep -h "accuracy\|agreement\|Elapsed\|Maximum resident" "$out"/ev_*.log
