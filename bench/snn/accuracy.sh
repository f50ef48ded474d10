#!/usr/bin/env bash
# Spiking-network accuracy on full Fashion-MNIST (issue 15): snn-vgg, T 8, direct encoding, the
# default recipe (AdamW 1e-3, 15 epochs, membrane readout), FP32 and 4-bit LSQ weights, then the
# 4-bit model's integer form against its float one on all 10,000 test images. Long: hours on 2
# cores. Usage: bench/snn/accuracy.sh [OUTDIR] (LOWBIT=path to the binary, THREADS=n).
set -eu
out=${1:-bench/snn/runs}
bin=${LOWBIT:-build/release/lowbit}
threads=${THREADS:-2}
mkdir -p "$out"
run() { # name, options...
    local name=$1; shift
    [ -f "$out/$name.done" ] && return 0
    /usr/bin/time -v "$bin" train --model snn-vgg --timesteps 8 --threads "$threads" \
        --out "$out/$name.st" "$@" >"$out/$name.log" 2>&1
    touch "$out/$name.done"
}
run fp32
run w4 --quant lsq --wbits 4
"$bin" eval "$out/w4.st" --integer --compare --threads "$threads" >"$out/w4.int.log" 2>&1
grep -h "accuracy\|agreement\|Elapsed\|Maximum resident" "$out"/*.log
