#!/usr/bin/env bash
# Power-of-two scales end to end (docs/quantizers.md): short cnn runs with `--quant msqe-po2`
# (per channel, --log-scales) and `--quant grad-po2` (per tensor, stable-scale freeze, moments
# off) train above a floor, `lowbit info` shows them, the integer model agrees with the float
# evaluation, the exported C equals `lowbit eval --integer` byte for byte with the fc's
# requantization a shift, a MobileNet (non-quick) has every add/quant requantization a shift,
# `lowbit plot scales` writes SVG and PNG; then the errors, each before anything is written.
# Usage: po2x.sh path/to/lowbit. With a sanitizer build (or LOWBIT_QUICK=1) fewer samples.
set -u
L=${1:?usage: po2x.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
CC99=${CC99:-cc}
. "$(dirname "$0")/common.bash"
if [ ! -d "$DATA" ]; then
    bad "data" "data set $DATA missing"
    finish
fi
ntrain=2000 ntest=500 nimg=200 floor=0.55 quick=0 every=10
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then
    ntrain=256 ntest=64 nimg=40 floor=0 quick=1 every=1
fi
C=(--data "$DATA" --model cnn --batch 64 --lr 0.02 --on-collapse warn --test-limit "$ntest"
    --first-bits 7 --last-bits 7 --epochs 1)
gunzip -c "$DATA/t10k-images-idx3-ubyte.gz" | head -c $((16 + nimg * 784)) >"$T/t10k.idx"

integer() { # name: eval --integer --compare agreement >= 0.998
    local name=$1 ag
    if "$L" eval "$T/$name.ckpt" --data "$DATA" --integer --compare --test-limit "$ntest" \
        >"$T/$name.eval" 2>&1; then ok; else
        bad "$name eval --integer" "exit $?" "$T/$name.eval"
        return
    fi
    ag=$(sed -n 's/^agreement: \([0-9.]*\) .*/\1/p' "$T/$name.eval")
    if awk -v a="$ag" 'BEGIN { exit !(a >= 0.998) }'; then ok; else
        bad "$name agreement" "integer vs float agreement '$ag' < 0.998" "$T/$name.eval"
    fi
}
exported() { # name: the exported C's logits == eval --integer's, no float in it
    local name=$1 ex="$T/ex_$1"
    "$L" eval "$T/$name.ckpt" --data "$DATA" --integer --test-limit "$nimg" \
        --dump-logits "$T/$name.int" >"$T/$name.eval2" 2>&1
    if "$L" export "$T/$name.ckpt" -o "$ex" --data "$DATA" >"$T/$name.export" 2>&1 &&
        "$CC99" -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$ex/model.c" "$ex/main.c" \
            -o "$ex/model" >"$T/$name.cc" 2>&1 &&
        "$ex/model" "$T/t10k.idx" "$nimg" >"$T/$name.c.out" 2>"$T/$name.c.err" &&
        cmp -s "$T/$name.c.out" "$T/$name.int"; then ok; else
        bad "$name exported C" "logits differ from lowbit eval --integer (or export failed)" \
            "$T/$name.export"
    fi
    if grep -nwE 'float|double|malloc|calloc|free|math\.h' "$ex/model.c" "$ex/model_data.h" \
        >"$T/$name.grep"; then
        bad "$name no float/malloc" "found in the inference source" "$T/$name.grep"
    else ok; fi
}

# ---- msqe-po2, per channel, scale log ---------------------------------------------------------
if "$L" train "${C[@]}" --out "$T/m.ckpt" --quant msqe-po2 --per-channel --log-scales "$every" \
    --train-limit "$ntrain" >"$T/m.train" 2>&1; then ok; else
    bad "msqe-po2 train" "exit $?" "$T/m.train"
    finish
fi
acc=$(sed -n 's/^accuracy: //p' "$T/m.train")
if awk -v a="$acc" -v f="$floor" 'BEGIN { exit !(a >= f) }'; then ok; else
    bad "msqe-po2 accuracy" "$acc below $floor (chance 0.10)" "$T/m.train"
fi
"$L" info "$T/m.ckpt" >"$T/m.info" 2>&1
# --quant msqe-po2: searched weight exponents, grad-po2's learned ones on the activations
if grep -q '^po2 scales: weights msqe-po2  activations grad-po2  msqe-outlier on  msqe-moments on' \
    "$T/m.info" && grep -qE '^  conv2 .*W: msqe-po2 4-bit step [0-9.e-]+  A: grad-po2 4-bit' \
    "$T/m.info"; then ok; else
    bad "msqe-po2 info" "quantizers not shown" "$T/m.info"
fi
steps=$(((ntrain + 63) / 64))
nrec=$(grep -c '"event":"scales"' "$T/m.ckpt.metrics.jsonl")
if [ "$nrec" -eq $((steps / every)) ] &&
    grep -q '"layer":"conv2","q":"w","kind":"msqe-po2","po2":1,"log2_step":\[-\?[0-9]' \
        "$T/m.ckpt.metrics.jsonl"; then ok; else
    bad "scale log" "$nrec scale records for $steps steps every $every" "$T/m.ckpt.metrics.jsonl"
fi
integer m
exported m
if grep -qE 'shift\): 1 of 5 conv/linear' "$T/m.export" &&
    [ "$(grep -c 'power-of-two scales: requantized by shifts only' "$T/ex_m/model_data.h")" -eq 1 ] &&
    [ "$(grep -c 'static const int32_t lbm_m' "$T/ex_m/model_data.h")" -eq 4 ]; then ok; else
    bad "msqe-po2 fc shift" "the fc is not requantized by shifts only (no multiplier table)" \
        "$T/m.export"
fi

# ---- plot ------------------------------------------------------------------------------------
if "$L" plot scales "$T/m.ckpt.metrics.jsonl" -o "$T/sc.svg" >"$T/plot.out" 2>&1 &&
    [ -s "$T/sc.svg" ] && [ -s "$T/sc.png" ]; then ok; else
    if grep -q 'matplotlib is not installed' "$T/plot.out"; then
        echo "SKIP plot: no python3 with matplotlib"
    else
        bad "plot scales" "no SVG/PNG" "$T/plot.out"
    fi
fi
printf '#!/bin/sh\nexit 1\n' >"$T/nopy" && chmod +x "$T/nopy"
LOWBIT_PYTHON="$T/nopy" "$L" plot scales "$T/m.ckpt.metrics.jsonl" -o "$T/n.svg" >"$T/e.out" 2>&1
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'matplotlib is not installed' "$T/e.out" && [ ! -e "$T/n.svg" ]; then
    ok
else bad "plot without matplotlib" "exit $rc" "$T/e.out"; fi
grep -v '"event":"scales"' "$T/m.ckpt.metrics.jsonl" >"$T/noscales.jsonl"
"$L" plot scales "$T/noscales.jsonl" -o "$T/n.svg" >"$T/e.out" 2>&1
rc=$?
if [ "$rc" -eq 1 ] && grep -q 'no scale records' "$T/e.out" && [ ! -e "$T/n.svg" ]; then ok; else
    bad "plot without records" "exit $rc" "$T/e.out"
fi

# ---- grad-po2 per tensor, stable freeze, ceil, moments off -------------------------------------
if "$L" train "${C[@]}" --out "$T/g.ckpt" --quant grad-po2 --po2-stable-after 20 \
    --po2-round ceil --msqe-moments off --train-limit "$ntrain" >"$T/g.train" 2>&1; then ok; else
    bad "grad-po2 train" "exit $?" "$T/g.train"
fi
acc=$(sed -n 's/^accuracy: //p' "$T/g.train")
if awk -v a="$acc" -v f="$floor" 'BEGIN { exit !(a >= f) }'; then ok; else
    bad "grad-po2 accuracy" "$acc below $floor" "$T/g.train"
fi
"$L" info "$T/g.ckpt" >"$T/g.info" 2>&1
if grep -q 'msqe-moments off  po2-round ceil  po2-stable-after 20' "$T/g.info"; then ok; else
    bad "grad-po2 info" "switches not shown" "$T/g.info"
fi
integer g
exported g

# ---- MobileNet: every add/quant requantization a shift ------------------------------------------
if [ "$quick" = 0 ]; then
    if "$L" train --data "$DATA" --out "$T/mn.ckpt" --train-limit 512 --test-limit 16 --epochs 1 \
        --batch 64 --lr 0.02 --on-collapse warn --model mobilenetv1 --width-mult 0.25 \
        --quant grad-po2 --per-channel >"$T/mn.train" 2>&1; then ok; else
        bad "mobilenet train" "exit $?" "$T/mn.train"
    fi
    exported mn
    if grep -qE 'shift\): [1-9][0-9]* of [0-9]+ conv/linear layers, ([0-9]+) of \1 add/quant' \
        "$T/mn.export"; then ok; else
        bad "mobilenet shifts" "not every add/quant requantization is a shift" "$T/mn.export"
    fi
    # the exported C: every add and quant call is shifts only, no multiplier passed
    if ! grep -E '^    lbm_(add|quant)\(' "$T/ex_mn/model.c" | grep -qv 'shift'; then ok; else
        bad "mobilenet exported shifts" "an add/quant requantization with a multiplier" \
            "$T/ex_mn/model.c"
    fi
fi

# ---- errors: before anything is read or written -------------------------------------------------
expect_fail() { # name, exit status, pattern in stderr, command...
    local name=$1 want=$2 pat=$3
    shift 3
    "$@" >"$T/err.out" 2>"$T/err.txt"
    local rc=$?
    if [ "$rc" -eq "$want" ] && grep -q -- "$pat" "$T/err.txt" &&
        [ "$(wc -l <"$T/err.txt")" -eq 1 ]; then ok; else
        bad "$name" "exit $rc, want $want and one line with '$pat'" "$T/err.txt"
    fi
}
E=(--data /nonexistent --out "$T/e.ckpt")
expect_fail "unknown quantizer" 2 "--quant: expected fp32, lsq, fixed, reg, dorefa, roundclip, msqe-po2, grad-po2 or sliced, got 'msqe'" \
    "$L" train "${E[@]}" --quant msqe
expect_fail "unknown wquant" 2 "--wquant: expected none, fixed, lsq, dorefa, roundclip, msqe-po2, grad-po2, sliced, got 'po2'" \
    "$L" train "${E[@]}" --wquant po2
expect_fail "bits out of range" 2 "--wbits: expected an integer in 2..8, got '9'" \
    "$L" train "${E[@]}" --quant msqe-po2 --wbits 9
expect_fail "--po2 without a scale" 2 "--po2: fixed weights have no learned scale" \
    "$L" train "${E[@]}" --quant fixed --po2
expect_fail "--msqe-moments without a po2 kind" 2 "--msqe-moments needs msqe-po2 or grad-po2" \
    "$L" train "${E[@]}" --quant lsq --msqe-moments off
expect_fail "--po2-round without grad-po2" 2 "--po2-round needs grad-po2" \
    "$L" train "${E[@]}" --quant msqe-po2 --aquant msqe-po2 --po2-round ceil
expect_fail "--po2-round value" 2 "--po2-round: expected msqe or ceil, got 'up'" \
    "$L" train "${E[@]}" --quant grad-po2 --po2-round up
expect_fail "--msqe-outlier value" 2 "--msqe-outlier: expected on or off, got 'yes'" \
    "$L" train "${E[@]}" --quant msqe-po2 --msqe-outlier yes
expect_fail "--po2-stable-after value" 2 "--po2-stable-after: expected an integer" \
    "$L" train "${E[@]}" --quant grad-po2 --po2-stable-after -1
[ -e "$T/e.ckpt" ] && bad "errors" "a checkpoint was written" || ok
# float activations cannot become integer: export refuses naming the layer, writes nothing
if "$L" train "${C[@]}" --out "$T/an.ckpt" --wquant msqe-po2 --aquant none --train-limit 64 \
    >"$T/an.train" 2>&1; then
    expect_fail "export of float activations" 1 "layer 'conv2' (conv): float input activations" \
        "$L" export "$T/an.ckpt" -o "$T/ex_an" --data "$DATA"
    [ ! -e "$T/ex_an" ] && ok || bad "export of float activations" "output created"
else
    bad "an train" "exit $?" "$T/an.train"
fi
finish
