#!/usr/bin/env bash
# MaQD end to end on real Fashion-MNIST (docs/quantizers.md "MaQD", docs/models.md "--norm"): a
# short cnn run with the scaled round-clip quantizer (15 weight / 16 activation states), weight
# standardization and Layer-Batch Norm must train above chance, `lowbit info` must show the
# options, the integer model (LBN folded like BN) must agree with the float one on >= 99.8% of
# the test subset and the exported C must print exactly `lowbit eval --integer`'s logits; states
# out of range, unknown surrogates and norms are clear errors before anything is read or
# written, and a mirrored activation grid too wide for int8 trains but is refused at export. An
# FP32 model with WS and LBN exported as ONNX re-imports with the same logits.
# Usage: maqd.sh path/to/lowbit. With a sanitizer build (or LOWBIT_QUICK=1) fewer samples.
set -u
L=${1:?usage: maqd.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
CC99=${CC99:-cc}
. "$(dirname "$0")/common.bash"
if [ ! -d "$DATA" ]; then
    bad "data" "data set $DATA missing"
    finish
fi
# ASan/UBSan run about 15x slower: fewer samples, no accuracy floor.
ntrain=1000 ntest=500 nimg=100 floor=0.4
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then
    ntrain=256 ntest=64 nimg=40 floor=0
fi
C=(--data "$DATA" --batch 64 --lr 0.02 --on-collapse warn --test-limit "$ntest")
M=(--quant roundclip --wstates 15 --astates 16 --weight-std --norm lbn)
gunzip -c "$DATA/t10k-images-idx3-ubyte.gz" | head -c $((16 + nimg * 784)) >"$T/t10k.idx"

# ---- round-clip + WS + LBN: accuracy, info, integer agreement, exported C --------------------
if "$L" train "${C[@]}" --model cnn "${M[@]}" --out "$T/m.ckpt" --train-limit "$ntrain" \
    --epochs 1 >"$T/m.train" 2>&1; then ok; else
    bad "maqd train" "exit $?" "$T/m.train"
    finish
fi
acc=$(sed -n 's/^accuracy: //p' "$T/m.train")
if awk -v a="$acc" -v f="$floor" 'BEGIN { exit !(a >= f) }'; then ok; else
    bad "maqd accuracy" "$acc below $floor (chance 0.10)" "$T/m.train"
fi
"$L" info "$T/m.ckpt" >"$T/m.info" 2>&1
if grep -q '^roundclip: wstates 15  astates 16 (0: from the bits)  surrogate ste' "$T/m.info" &&
    grep -q '^maqd: norm lbn  weight_std 1' "$T/m.info" &&
    grep -qE '^  conv2 .*W: roundclip 4-bit .*A: roundclip 4-bit unsigned' "$T/m.info"; then ok; else
    bad "maqd info" "options not shown" "$T/m.info"
fi
if "$L" eval "$T/m.ckpt" --data "$DATA" --integer --compare --test-limit "$ntest" \
    >"$T/m.eval" 2>&1; then ok; else
    bad "maqd eval --integer" "exit $?" "$T/m.eval"
fi
ag=$(sed -n 's/^agreement: \([0-9.]*\) .*/\1/p' "$T/m.eval")
if awk -v a="$ag" 'BEGIN { exit !(a >= 0.998) }'; then ok; else
    bad "maqd agreement" "integer vs float agreement '$ag' < 0.998" "$T/m.eval"
fi
"$L" eval "$T/m.ckpt" --data "$DATA" --integer --test-limit "$nimg" --dump-logits "$T/m.int" \
    >"$T/m.eval2" 2>&1
if "$L" export "$T/m.ckpt" -o "$T/ex" --data "$DATA" >"$T/m.export" 2>&1 &&
    "$CC99" -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$T/ex/model.c" "$T/ex/main.c" \
        -o "$T/ex/model" >"$T/m.cc" 2>&1 &&
    "$T/ex/model" "$T/t10k.idx" "$nimg" >"$T/m.c.out" 2>"$T/m.c.err" &&
    cmp -s "$T/m.c.out" "$T/m.int"; then ok; else
    bad "maqd exported C" "logits differ from lowbit eval --integer (or export failed)" \
        "$T/m.export"
fi

# ---- the other surrogates and a side alone train ---------------------------------------------
for sel in "tri --quant roundclip --surrogate triangle --wstates 7 --layer-states conv3=9/6" \
    "id --quant lsq --aquant roundclip --astates 6 --surrogate identity --norm lbn"; do
    read -r name opts <<<"$sel"
    # shellcheck disable=SC2086
    if "$L" train "${C[@]}" --model cnn --out "$T/$name.ckpt" $opts --train-limit 256 \
        --epochs 1 >"$T/$name.train" 2>&1 &&
        "$L" eval "$T/$name.ckpt" --data "$DATA" --integer --compare --test-limit 64 \
            >"$T/$name.eval" 2>&1; then ok; else
        bad "$name train + integer" "exit $?" "$T/$name.train"
    fi
done

# ---- FP32 with WS + LBN as ONNX: the standardized weights and LBN's BN form; re-imported, the
# same logits bit for bit (the same kernels run the imported graph) ----------------------------
if "$L" train "${C[@]}" --model cnn --weight-std --norm lbn --out "$T/f.ckpt" --train-limit 256 \
    --epochs 1 >"$T/f.train" 2>&1 &&
    "$L" export "$T/f.ckpt" --onnx "$T/f.onnx" >"$T/f.x" 2>&1 &&
    "$L" import "$T/f.onnx" -o "$T/fi.ckpt" >>"$T/f.x" 2>&1 &&
    "$L" eval "$T/f.ckpt" --data "$DATA" --test-limit "$nimg" --dump-logits "$T/f.lg" \
        >>"$T/f.x" 2>&1 &&
    "$L" eval "$T/fi.ckpt" --data "$DATA" --test-limit "$nimg" --dump-logits "$T/fi.lg" \
        >>"$T/f.x" 2>&1 &&
    cmp -s "$T/f.lg" "$T/fi.lg"; then ok; else
    bad "ws+lbn export --onnx, re-import" "logits differ or exit $?" "$T/f.x"
fi

# ---- errors: before anything is read or written ----------------------------------------------
expect_fail() { # name, pattern in stderr, command...
    local name=$1 pat=$2
    shift 2
    "$@" >"$T/err.out" 2>"$T/err.txt"
    local rc=$?
    if [ "$rc" -ne 0 ] && grep -q -- "$pat" "$T/err.txt" && ! grep -q '^epoch' "$T/err.out"; then
        ok
    else
        bad "$name" "exit $rc, want non-zero and '$pat'" "$T/err.txt"
    fi
}
expect_fail "even wstates" "--wstates 16: round-clip weights have 2K+1 states, an odd number" \
    "$L" train "${C[@]}" --out "$T/e1.ckpt" --quant roundclip --wstates 16
expect_fail "wstates too many" "--wstates 257" \
    "$L" train "${C[@]}" --out "$T/e2.ckpt" --quant roundclip --wstates 257
expect_fail "astates too many" "--astates 300: round-clip activations have K+1 states, 2..256" \
    "$L" train "${C[@]}" --out "$T/e3.ckpt" --quant roundclip --astates 300
expect_fail "astates one" "--astates 1" \
    "$L" train "${C[@]}" --out "$T/e4.ckpt" --quant roundclip --astates 1
expect_fail "wstates without roundclip" "--wstates needs round-clip weights" \
    "$L" train "${C[@]}" --out "$T/e5.ckpt" --quant lsq --wstates 15
expect_fail "layer-states unknown layer" "--layer-states 'conv9=7/8': names a layer" \
    "$L" train "${C[@]}" --out "$T/e9.ckpt" --quant roundclip --layer-states conv9=7/8
expect_fail "layer-states even" "--layer-states conv2=8/8" \
    "$L" train "${C[@]}" --out "$T/e10.ckpt" --quant roundclip --layer-states conv2=8/8
expect_fail "unknown surrogate" "--surrogate: unknown 'sigmoid'" \
    "$L" train "${C[@]}" --out "$T/e6.ckpt" --quant roundclip --surrogate sigmoid
expect_fail "unknown norm" "--norm: expected bn or lbn, got 'gn'" \
    "$L" train "${C[@]}" --out "$T/e7.ckpt" --norm gn
expect_fail "weight-std with reg" "--weight-std with --quant reg" \
    "$L" train "${C[@]}" --out "$T/e8.ckpt" --quant reg --weight-std
ls "$T"/e*.ckpt >/dev/null 2>&1 && bad "errors" "a checkpoint was written" || ok
# a mirrored activation grid (MobileNetV2's block inputs can be negative) of 200 states has
# codes -199..199: it trains, and the integer model refuses it naming the layer
if "$L" train "${C[@]}" --model mobilenetv2 --width-mult 0.25 --out "$T/w.ckpt" \
    --quant roundclip --astates 200 --train-limit 64 --test-limit 64 --epochs 1 \
    >"$T/w.train" 2>&1; then
    expect_fail "wide grid export" "round-clip activation codes -199..199 do not fit" \
        "$L" export "$T/w.ckpt" -o "$T/exw" --data "$DATA"
    [ ! -e "$T/exw" ] && ok || bad "wide grid export" "output created"
else
    bad "wide grid train" "exit $?" "$T/w.train"
fi
# chips code the raw weights: a weight-standardized model has no fault map yet
if "$L" train "${C[@]}" --model cnn --quant lsq --weight-std --out "$T/l.ckpt" --train-limit 64 \
    --test-limit 64 --epochs 1 >"$T/l.train" 2>&1; then
    expect_fail "ws fault map" "weight standardization (--weight-std) has no fault map form" \
        "$L" faults map "$T/l.ckpt" -o "$T/l.lbmap" --rate 0.01
    [ ! -e "$T/l.lbmap" ] && ok || bad "ws fault map" "map written"
else
    bad "ws lsq train" "exit $?" "$T/l.train"
fi
finish
