#!/usr/bin/env bash
# Image folders end to end: the first 1,000 training and 250 test images of Fashion-MNIST written
# as a PNG tree (train/<n>_<name>/<index>.png: folder names sort in label order, file names in
# data order) and as raw idx files; one epoch on each with the same seed and options must give
# the same accuracy exactly (same pixels, same order, same normalization: the same run). Then
# eval, info and predict on the PNG model (predict's top class must equal eval's prediction), an
# RGB JPEG folder without test/ (held-out split), and every bad input: one stderr line naming the
# file, non-zero exit, no crash. Usage: imgdir.sh path/to/lowbit. With a sanitizer build (or
# LOWBIT_QUICK=1) fewer images. Not the decoder unit tests (tests/test_imgdir.c).
set -u
L=${1:?usage: imgdir.sh path/to/lowbit}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
FM=/usr/share/datasets/fashion-mnist
T=$(mktemp -d "${TMPDIR:-/tmp}/lowbit_imgdir.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
ntrain=1000 ntest=250 njpg=300
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then ntrain=256 ntest=64 njpg=120; fi
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL $1: $2"
    [ -f "$T/err" ] && sed 's/^/    stderr: /' "$T/err" | head -5
}

"$PY" - "$FM" "$T" "$ntrain" "$ntest" "$njpg" <<'EOF' || { echo "FAIL: cannot write the image trees (numpy, PIL)"; exit 1; }
import gzip, os, sys
import numpy as np
from PIL import Image
fm, out = sys.argv[1], sys.argv[2]
ntrain, ntest, njpg = (int(a) for a in sys.argv[3:6])
names = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
         "ankle_boot"]
def idx(kind, split, n):
    with gzip.open(f"{fm}/{split}-{kind}-ubyte.gz") as f:
        b = f.read()
    if kind.startswith("images"):
        return np.frombuffer(b, np.uint8, offset=16)[: n * 784].reshape(n, 28, 28)
    return np.frombuffer(b, np.uint8, offset=8)[:n]
os.makedirs(f"{out}/idx")
for split, n in (("train", ntrain), ("t10k", ntest)):
    x, y = idx("images-idx3", split, n), idx("labels-idx1", split, n)
    with open(f"{out}/idx/{split}-images-idx3-ubyte", "wb") as f:
        f.write(np.array([0x803, n, 28, 28], ">u4").tobytes() + x.tobytes())
    with open(f"{out}/idx/{split}-labels-idx1-ubyte", "wb") as f:
        f.write(np.array([0x801, n], ">u4").tobytes() + y.tobytes())
    sub = "train" if split == "train" else "test"
    for i in range(n):
        d = f"{out}/png/{sub}/{y[i]}_{names[y[i]]}"
        os.makedirs(d, exist_ok=True)
        Image.fromarray(x[i], "L").save(f"{d}/{i:05d}.png")
# RGB JPEGs, 36x30 (not the model's size), no test/ folder: a held-out split
x, y = idx("images-idx3", "train", njpg), idx("labels-idx1", "train", njpg)
for i in range(njpg):
    d = f"{out}/jpg/{names[y[i]]}"
    os.makedirs(d, exist_ok=True)
    rgb = np.stack([x[i], x[i] // 2, 255 - x[i]], -1)
    Image.fromarray(rgb, "RGB").resize((30, 36)).save(f"{d}/{i:04d}.jpg", quality=90)
EOF

expect_error() { # name, what (fixed string), cmd...
    local name=$1 what=$2 rc
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if grep -qE 'Sanitizer|runtime error' "$T/err"; then
        bad "$name" "sanitizer report"
    elif [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then
        bad "$name" "exit $rc"
    elif [ "$(awk 'END { print NR }' "$T/err")" -ne 1 ] || ! grep -qF -- "$what" "$T/err"; then
        bad "$name" "expected one line naming '$what'"
    else
        ok
    fi
}
G=(--epochs 1 --seed 3 --threads 2 --batch 64 --lr 0.005)
acc_of() { sed -n 's/^accuracy: //p' "$1" | tail -1; }

# ---- same images as idx and as PNG: the same run ----------------------------------------------
"$L" train --data "$T/idx" "${G[@]}" --out "$T/idx.ckpt" >"$T/idx.out" 2>"$T/err" ||
    bad "train on idx" "exit $?"
"$L" train --data "$T/png" "${G[@]}" --out "$T/png.ckpt" >"$T/png.out" 2>"$T/err" ||
    bad "train on the PNG tree" "exit $?"
a=$(acc_of "$T/idx.out") b=$(acc_of "$T/png.out")
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok; else bad "idx vs PNG accuracy" "'$a' vs '$b'"; fi
grep -q "image folder .*$ntrain training, $ntest test images as 28x28 grey (the most common size)" \
    "$T/err" && ok || bad "train note" "no data line naming size and counts"

# ---- eval / info / predict ---------------------------------------------------------------------
"$L" eval "$T/png.ckpt" --data "$T/png" --dump-logits "$T/logits" >"$T/ev.out" 2>"$T/err" ||
    bad "eval on PNG" "exit $?"
c=$(acc_of "$T/ev.out")
[ -n "$c" ] && [ "$c" = "$b" ] && ok || bad "eval = training's test accuracy" "'$c' vs '$b'"
grep -q "^classes (10): 0_t-shirt 1_trouser .* 9_ankle_boot$" "$T/ev.out" && ok ||
    bad "eval prints classes" "$(head -3 "$T/ev.out")"
"$L" eval "$T/png.ckpt" --data "$T/idx" >"$T/ev2.out" 2>"$T/err" && [ "$(acc_of "$T/ev2.out")" = "$b" ] &&
    ok || bad "PNG model on the idx files" "$(acc_of "$T/ev2.out") vs $b"
"$L" info "$T/png.ckpt" >"$T/info.out" 2>"$T/err" && grep -q "^classes (10): 0_t-shirt" "$T/info.out" &&
    ok || bad "info prints classes" "exit or output"
files=()
for i in 0 1 2 3 4; do files+=("$(ls "$T"/png/test/*/0000$i.png)"); done
"$L" predict "$T/png.ckpt" "${files[@]}" --top 3 >"$T/pred.out" 2>"$T/err" || bad "predict" "exit $?"
for i in 0 1 2 3 4; do
    p=$(sed -n "$((i + 1))p" "$T/logits" | cut -d' ' -f1)
    want=$(sed -n 's/^classes (10): //p' "$T/ev.out" | tr ' ' '\n' | sed -n "$((p + 1))p")
    line=$(sed -n "$((i + 1))p" "$T/pred.out")
    case "$line" in
    "${files[$i]}: $want "[0-9].[0-9]*", "*", "*) ok ;;
    *) bad "predict image $i" "'$line', eval predicted $want" ;;
    esac
done

# ---- RGB JPEGs, odd size, held-out split ----------------------------------------------------------
J=(--data "$T/jpg" --epochs 2 --seed 5 --threads 2 --batch 32 --test-split 0.25 --image-size 32x32)
"$L" train "${J[@]}" --out "$T/jpg.ckpt" >"$T/jpg.out" 2>"$T/err" || bad "train on JPEGs" "exit $?"
# interrupted after epoch 1 and resumed: the same run (size and split from the checkpoint)
"$L" train "${J[@]}" --stop-after 1 --out "$T/r.ckpt" >/dev/null 2>"$T/err" &&
    "$L" train --resume "$T/r.ckpt" --data "$T/jpg" --out "$T/r.ckpt" >"$T/r.out" 2>"$T/err" &&
    [ "$(acc_of "$T/r.out")" = "$(acc_of "$T/jpg.out")" ] && ok ||
    bad "resume on an image folder" "$(acc_of "$T/r.out") vs $(acc_of "$T/jpg.out")"
grep -q "image folder .* test images as 32x32 RGB (as given)" "$T/err" && ok ||
    bad "JPEG note" "no '32x32 RGB'"
"$L" eval "$T/jpg.ckpt" --data "$T/jpg" >"$T/ev3.out" 2>"$T/err" &&
    [ "$(acc_of "$T/ev3.out")" = "$(acc_of "$T/jpg.out")" ] && ok ||
    bad "eval uses the recorded split" "$(acc_of "$T/ev3.out") vs $(acc_of "$T/jpg.out")"
j=$(ls "$T"/jpg/*/*.jpg | head -1)
mv "$T/jpg/bag" "$T/jpg/bags"
expect_error "resume with renamed class folders" "class folders changed" "$L" train \
    --resume "$T/r.ckpt" --data "$T/jpg" --out "$T/r2.ckpt"
mv "$T/jpg/bags" "$T/jpg/bag"
"$L" predict "$T/jpg.ckpt" "$j" --top 2 >"$T/p2.out" 2>"$T/err" &&
    grep -qE "^$j: [a-z_-]+ [01]\.[0-9]{4}, [a-z_-]+ [01]\.[0-9]{4}$" "$T/p2.out" && ok ||
    bad "predict a JPEG" "$(cat "$T/p2.out")"

# ---- bad input ------------------------------------------------------------------------------------
mkdir -p "$T/b1/train/a" "$T/b1/train/b"
cp "${files[0]}" "$T/b1/train/a/1.png"
expect_error "empty class folder" "b1/train/b: empty class folder" "$L" train --data "$T/b1" \
    "${G[@]}" --out "$T/x.ckpt"
head -c 100 "${files[1]}" >"$T/b1/train/b/2.png"
expect_error "truncated PNG" "b1/train/b/2.png: corrupt PNG" "$L" train --data "$T/b1" "${G[@]}" \
    --out "$T/x.ckpt"
echo "hello" >"$T/b1/train/b/2.png"
expect_error "not an image" "b1/train/b/2.png: not a PNG or JPEG" "$L" train --data "$T/b1" \
    "${G[@]}" --out "$T/x.ckpt"
cp "${files[1]}" "$T/b1/train/b/2.png"
mkdir -p "$T/b1/test/c"
cp "${files[2]}" "$T/b1/test/c/3.png"
expect_error "test class not in train" "b1/test/c: class 'c' has no training folder" "$L" train \
    --data "$T/b1" "${G[@]}" --out "$T/x.ckpt"
mkdir -p "$T/b2/train"
expect_error "no images" "b2/train: no class folders" "$L" train --data "$T/b2" "${G[@]}" \
    --out "$T/x.ckpt"
expect_error "predict: missing file" "$T/nope.png: cannot open" "$L" predict "$T/png.ckpt" \
    "${files[0]}" "$T/nope.png"
expect_error "predict: truncated JPEG" "$T/t.jpg: corrupt JPEG" \
    bash -c "head -c 300 '$j' >'$T/t.jpg' && exec '$L' predict '$T/jpg.ckpt' '$T/t.jpg'"
rm -r "$T/b1/test/c" && mkdir -p "$T/b1/test/a" && cp "${files[2]}" "$T/b1/test/a/3.png"
expect_error "eval: other class folders" "class 0 is '0_t-shirt' in the checkpoint but 'a'" \
    "$L" eval "$T/png.ckpt" --data "$T/b1"
expect_error "--image-size on idx" "image folders only" "$L" train --data "$T/idx" "${G[@]}" \
    --image-size 32 --out "$T/x.ckpt"

expect_error "predict without an image" "IMAGE" "$L" predict "$T/png.ckpt"
"$L" predict --help >"$T/out" 2>"$T/err" && grep -q usage "$T/out" && ! [ -s "$T/err" ] && ok ||
    bad "predict --help" "exit or output"

echo "imgdir.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
