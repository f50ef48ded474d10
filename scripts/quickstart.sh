#!/usr/bin/env bash
# The main job end to end on a fresh Debian 12 machine (root): install what is missing, build,
# train the cnn with LSQ W4A4 (first/last layer 8-bit) on Fashion-MNIST, evaluate the checkpoint.
# EPOCHS (default 3) and MODEL (default cnn) may be set in the environment.
set -eu
cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -j"$(nproc)" lib cli >/dev/null
out=runs/${MODEL:-cnn}_w4a4.safetensors
mkdir -p runs
build/release/lowbit train --model "${MODEL:-cnn}" --quant lsq --wbits 4 --abits 4 \
    --epochs "${EPOCHS:-3}" --out "$out"
build/release/lowbit info "$out"
build/release/lowbit eval "$out"
