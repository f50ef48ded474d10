#!/usr/bin/env bash
# Spiking-network accuracy on full Fashion-MNIST (issue 15): snn-vgg with direct encoding, T
# steps, the default recipe (AdamW 1e-3, wd 1e-4, cosine, 5% warm-up) for EPOCHS epochs in FP32;
# then 4-bit LSQ weights fine-tuned from that checkpoint for FT_EPOCHS epochs at lr 1e-4 (8-bit
# first and last layers, the default); then the 4-bit model's integer form against its float one
# on the 10,000 test images and its export's size. About 1.5 hours on 2 cores at T 4.
# Usage: bench/snn/accuracy.sh [OUTDIR]   (LOWBIT=binary, THREADS=n, T=4, EPOCHS=8, FT_EPOCHS=2)
# A step whose OUTDIR/<name>.done exists is skipped (a rerun continues).
set -eu
out=${1:-bench/snn/runs}
bin=${LOWBIT:-build/release/lowbit}
threads=${THREADS:-2}
T=${T:-4}
epochs=${EPOCHS:-8}
ft=${FT_EPOCHS:-2}
mkdir -p "$out"
run() { # name, options...
    local name=$1
    shift
    [ -f "$out/$name.done" ] && return 0
    /usr/bin/time -v "$bin" train --model snn-vgg --timesteps "$T" --threads "$threads" \
        --out "$out/$name.st" "$@" >"$out/$name.log" 2>&1
    touch "$out/$name.done"
}
run fp32 --epochs "$epochs"
run w4 --init "$out/fp32.st" --quant lsq --wbits 4 --lr 1e-4 --epochs "$ft"
if [ ! -f "$out/w4.int.done" ]; then
    /usr/bin/time -v "$bin" eval "$out/w4.st" --integer --compare --threads "$threads" \
        >"$out/w4.int.log" 2>&1
    touch "$out/w4.int.done"
fi
"$bin" export "$out/w4.st" -o "$out/w4.export" >"$out/w4.export.log" 2>&1
grep -h "^epoch\|accuracy\|agreement\|Elapsed\|Maximum resident\|flash\|RAM" "$out"/fp32.log \
    "$out"/w4.log "$out"/w4.int.log "$out"/w4.export.log
