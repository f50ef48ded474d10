#!/usr/bin/env bash
# DoReFa weights and PACT activations end to end on real Fashion-MNIST (docs/quantizers.md): a
# short cnn run with `--quant dorefa` must reach an accuracy floor well above chance, `lowbit
# info` must show both quantizers, the integer model must agree with the float one on >= 99.8% of
# the test subset, and the exported C must print exactly `lowbit eval --integer`'s logits; the
# mixed selections (--wquant dorefa --aquant lsq, --quant lsq --aquant pact) train and become
# integer; nonsense selections and 8-bit DoReFa export are clear errors with nothing written.
# Usage: dorefa.sh path/to/lowbit. With a sanitizer build (or LOWBIT_QUICK=1) fewer samples.
set -u
L=${1:?usage: dorefa.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
CC99=${CC99:-cc}
. "$(dirname "$0")/common.bash"
if [ ! -d "$DATA" ]; then
    bad "data" "data set $DATA missing"
    finish
fi
# ASan/UBSan run about 15x slower: fewer samples, no accuracy floor.
ntrain=3000 ntest=1000 nimg=200 floor=0.55
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then
    ntrain=256 ntest=64 nimg=40 floor=0
fi
C=(--data "$DATA" --model cnn --batch 64 --lr 0.02 --on-collapse warn --test-limit "$ntest")
gunzip -c "$DATA/t10k-images-idx3-ubyte.gz" | head -c $((16 + nimg * 784)) >"$T/t10k.idx"

# ---- --quant dorefa: accuracy, info, integer agreement, exported C ---------------------------
if "$L" train "${C[@]}" --out "$T/d.ckpt" --quant dorefa --first-bits 7 --last-bits 7 \
    --train-limit "$ntrain" --epochs 1 >"$T/d.train" 2>&1; then ok; else
    bad "dorefa train" "exit $?" "$T/d.train"
    finish
fi
acc=$(sed -n 's/^accuracy: //p' "$T/d.train")
if awk -v a="$acc" -v f="$floor" 'BEGIN { exit !(a >= f) }'; then ok; else
    bad "dorefa accuracy" "$acc below $floor (chance 0.10)" "$T/d.train"
fi
"$L" info "$T/d.ckpt" >"$T/d.info" 2>&1
if grep -q '^quantizers: weights dorefa  activations pact' "$T/d.info" &&
    grep -qE '^  conv2 .*W: dorefa 4-bit step 0.066667  A: pact 4-bit unsigned' "$T/d.info" &&
    grep -qE '^  fc .*W: lsq 7-bit' "$T/d.info"; then ok; else
    bad "dorefa info" "quantizers not shown" "$T/d.info"
fi
integer() { # name: eval --integer --compare on the test subset, agreement >= 0.998
    local name=$1
    if "$L" eval "$T/$name.ckpt" --data "$DATA" --integer --compare --test-limit "$ntest" \
        >"$T/$name.eval" 2>&1; then ok; else
        bad "$name eval --integer" "exit $?" "$T/$name.eval"
        return
    fi
    local ag
    ag=$(sed -n 's/^agreement: \([0-9.]*\) .*/\1/p' "$T/$name.eval")
    if awk -v a="$ag" 'BEGIN { exit !(a >= 0.998) }'; then ok; else
        bad "$name agreement" "integer vs float agreement '$ag' < 0.998" "$T/$name.eval"
    fi
}
integer d
"$L" eval "$T/d.ckpt" --data "$DATA" --integer --test-limit "$nimg" --dump-logits "$T/d.int" \
    >"$T/d.eval2" 2>&1
if "$L" export "$T/d.ckpt" -o "$T/ex" --data "$DATA" >"$T/d.export" 2>&1 &&
    "$CC99" -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$T/ex/model.c" "$T/ex/main.c" \
        -o "$T/ex/model" >"$T/d.cc" 2>&1 &&
    "$T/ex/model" "$T/t10k.idx" "$nimg" >"$T/d.c.out" 2>"$T/d.c.err" &&
    cmp -s "$T/d.c.out" "$T/d.int"; then ok; else
    bad "dorefa exported C" "logits differ from lowbit eval --integer (or export failed)" \
        "$T/d.export"
fi

if grep -nwE 'float|double|malloc|calloc|free|math\.h' "$T/ex/model.c" "$T/ex/model_data.h" \
    >"$T/d.grep"; then
    bad "dorefa no float/malloc" "found in the inference source" "$T/d.grep"
else ok; fi

# ---- each side alone ------------------------------------------------------------------------
for sel in "wd --wquant dorefa --aquant lsq --per-channel" "ap --quant lsq --aquant pact"; do
    read -r name opts <<<"$sel"
    # shellcheck disable=SC2086
    if "$L" train "${C[@]}" --out "$T/$name.ckpt" $opts --first-bits 7 --last-bits 7 \
        --train-limit $((ntrain / 3)) --epochs 1 >"$T/$name.train" 2>&1; then
        ok
        integer "$name"
    else
        bad "$name train" "exit $?" "$T/$name.train"
    fi
done

# ---- errors: before anything is read or written ----------------------------------------------
expect_fail "pact weights" "--wquant pact: PACT quantizes activations" \
    "$L" train "${C[@]}" --out "$T/e1.ckpt" --wquant pact
expect_fail "dorefa activations" "--aquant dorefa: dorefa quantizes weights only" \
    "$L" train "${C[@]}" --out "$T/e2.ckpt" --quant lsq --aquant dorefa
expect_fail "reg activations" "--aquant reg" \
    "$L" train "${C[@]}" --out "$T/e3.ckpt" --quant lsq --aquant reg
expect_fail "quant pact" "--quant pact: PACT quantizes activations only" \
    "$L" train "${C[@]}" --out "$T/e4.ckpt" --quant pact
expect_fail "unknown wquant" "--wquant: expected none, fixed, lsq, dorefa, roundclip, msqe-po2, grad-po2, sliced, got 'tanh'" \
    "$L" train "${C[@]}" --out "$T/e5.ckpt" --wquant tanh
expect_fail "unknown aquant" "--aquant: expected none, fixed, lsq, pact, roundclip, msqe-po2, grad-po2, sliced, got 'relu'" \
    "$L" train "${C[@]}" --out "$T/e6.ckpt" --aquant relu
ls "$T"/e*.ckpt >/dev/null 2>&1 && bad "errors" "a checkpoint was written" || ok
# default first/last bits (8): those layers are LSQ, so the default DoReFa model exports; 8-bit
# DoReFa weights in the body have 9-bit codes: no integer form, refused naming the layer
if "$L" train "${C[@]}" --out "$T/d8.ckpt" --quant dorefa --train-limit 64 --epochs 1 \
    >"$T/d8.train" 2>&1 &&
    "$L" export "$T/d8.ckpt" -o "$T/exd" --data "$DATA" >"$T/d8.export" 2>&1 &&
    "$L" info "$T/d8.ckpt" | grep -qE '^  conv1 .*W: lsq 8-bit'; then ok; else
    bad "dorefa default export" "train/export failed or conv1 not LSQ" "$T/d8.export"
fi
# ... and its exported C prints exactly eval --integer's logits, as every exportable model must
"$L" eval "$T/d8.ckpt" --data "$DATA" --integer --test-limit "$nimg" --dump-logits "$T/d8.int" \
    >"$T/d8.eval" 2>&1
if "$CC99" -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$T/exd/model.c" "$T/exd/main.c" \
    -o "$T/exd/model" >"$T/d8.cc" 2>&1 &&
    "$T/exd/model" "$T/t10k.idx" "$nimg" >"$T/d8.c.out" 2>"$T/d8.c.err" &&
    cmp -s "$T/d8.c.out" "$T/d8.int"; then ok; else
    bad "dorefa default exported C" "logits differ from lowbit eval --integer" "$T/d8.cc"
fi
if "$L" train "${C[@]}" --out "$T/w8.ckpt" --quant dorefa --wbits 8 --abits 8 --train-limit 64 \
    --epochs 1 >"$T/w8.train" 2>&1; then
    expect_fail "dorefa 8-bit export" "8-bit DoReFa weights" \
        "$L" export "$T/w8.ckpt" -o "$T/ex8" --data "$DATA"
    [ ! -e "$T/ex8" ] && ok || bad "dorefa 8-bit export" "output created"
else
    bad "dorefa 8-bit train" "exit $?" "$T/w8.train"
fi
finish
