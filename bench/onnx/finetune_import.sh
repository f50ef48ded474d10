#!/usr/bin/env bash
# Issue 16, "import is exact": a trained FP32 cnn goes out as ONNX (`lowbit export --onnx`), comes
# back as an imported graph (`lowbit import`), and is fine-tuned with LSQ W4A4 in the zoo model's
# own recipe (bench/RESULTS.md, issue 10's rerun: 3 epochs, lr 0.01, no warm-up, label smoothing
# 0.1, flip, no crop, 1 thread, seed 1). Prints both runs' epochs; the zoo run's log is REF.
# Usage: bench/onnx/finetune_import.sh FP32.safetensors REF_W4A4.log [OUTDIR] (LOWBIT=binary)
set -eu
fp32=${1:?usage: finetune_import.sh FP32.safetensors REF_W4A4.log [OUTDIR]}
ref=${2:?usage: finetune_import.sh FP32.safetensors REF_W4A4.log [OUTDIR]}
out=${3:-build/ft_import}
L=${LOWBIT:-build/release/lowbit}
mkdir -p "$out"
C=(--threads 1 --seed 1 --label-smoothing 0.1 --flip)
"$L" export "$fp32" --onnx "$out/fp32.onnx" >"$out/export.log" 2>&1
"$L" import "$out/fp32.onnx" -o "$out/fp32_imported.st" >"$out/import.log" 2>&1
"$L" eval "$out/fp32_imported.st" >"$out/eval_imported.log" 2>&1
"$L" train --quant lsq --wbits 4 --abits 4 --epochs 3 --lr 0.01 --warmup 0 --crop-pad 0 "${C[@]}" \
    --init "$out/fp32_imported.st" --out "$out/imp_w4a4.st" >"$out/imp_w4a4.log" 2>&1
echo "imported FP32: $(grep '^accuracy' "$out/eval_imported.log")"
echo "imported, LSQ W4A4:"
grep '^epoch\|^accuracy' "$out/imp_w4a4.log"
echo "zoo model, same recipe ($ref):"
grep '^epoch\|^accuracy' "$ref"
