#!/usr/bin/env bash
# Issue 16 item 3 on the whole of Fashion-MNIST: the 70,000 images written as a PNG folder tree
# (train/<class>/NNNNN.png, test/<class>/NNNNN.png, numbered so the tree keeps the idx order), then
# the same training run on the idx files and on the tree (cnn, EPOCHS epochs, seed 1, 2 threads):
# the accuracies must be equal (same pixels, same order, same normalization: the same run).
# Usage: bench/imgdir/full.sh [OUTDIR]   (LOWBIT=binary, EPOCHS=1)
set -eu
out=${1:-build/imgdir_full}
L=${LOWBIT:-build/release/lowbit}
E=${EPOCHS:-1}
FM=/usr/share/datasets/fashion-mnist
mkdir -p "$out"
if [ ! -f "$out/png.done" ]; then
    /usr/bin/python3 - "$FM" "$out/png" <<'PY'
import gzip, os, sys
import numpy as np
from PIL import Image
fm, out = sys.argv[1], sys.argv[2]
names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
         "ankle_boot"]
for split, sub in (("train", "train"), ("t10k", "test")):
    with gzip.open(f"{fm}/{split}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(f"{fm}/{split}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    for i in range(len(y)):
        d = f"{out}/{sub}/{y[i]}_{names[y[i]]}"
        os.makedirs(d, exist_ok=True)
        Image.fromarray(x[i], "L").save(f"{d}/{i:05d}.png")
PY
    touch "$out/png.done"
fi
G=(--model cnn --epochs "$E" --seed 1 --threads 2)
/usr/bin/time -v "$L" train --data "$FM" "${G[@]}" --out "$out/idx.st" >"$out/idx.log" 2>&1
/usr/bin/time -v "$L" train --data "$out/png" "${G[@]}" --out "$out/png.st" >"$out/png.log" 2>&1
for r in idx png; do
    echo "$r: $(grep '^accuracy' "$out/$r.log") $(grep 'Elapsed' "$out/$r.log" | sed 's/.*): //')"
done
