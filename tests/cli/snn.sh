#!/usr/bin/env bash
# Spiking networks end to end on real Fashion-MNIST (docs/snn.md): a short snn-vgg run with 4-bit
# weights learns (accuracy floor), reports firing rates, its integer form agrees with the float
# one and the exported C prints exactly `lowbit eval --integer`'s logits; the same for rate
# encoding with count readout and a 6-bit membrane; a run stopped and resumed ends in the
# byte-identical checkpoint; reg learned levels export as index + table and on a faulty chip;
# bad spiking options are clear errors with nothing written.
# Usage: snn.sh path/to/lowbit. With a sanitizer build (or LOWBIT_QUICK=1) fewer samples.
set -u
L=${1:?usage: snn.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
CC99=${CC99:-cc}
. "$(dirname "$0")/common.bash"
if [ ! -d "$DATA" ]; then
    bad "data" "data set $DATA missing"
    finish
fi
ntrain=1500 ntest=300 nimg=100 floor=0.55 agree=0.99
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then
    ntrain=128 ntest=32 nimg=16 floor=0 agree=0.9
fi
C=(--data "$DATA" --model snn-vgg --timesteps 2 --batch 64 --test-limit "$ntest")
gunzip -c "$DATA/t10k-images-idx3-ubyte.gz" | head -c $((16 + nimg * 784)) >"$T/t10k.idx"

# ---- direct encoding, membrane readout, 4-bit weights -----------------------------------------
if "$L" train "${C[@]}" --out "$T/d.ckpt" --quant lsq --wbits 4 --train-limit "$ntrain" \
    --epochs 1 >"$T/d.train" 2>&1; then ok; else
    bad "snn train" "exit $?" "$T/d.train"
    finish
fi
acc=$(sed -n 's/^accuracy: //p' "$T/d.train")
if awk -v a="$acc" -v f="$floor" 'BEGIN { exit !(a >= f) }'; then ok; else
    bad "snn accuracy" "$acc below $floor (chance 0.10)" "$T/d.train"
fi
if grep -q '"firing_rate":{"lif1":' "$T/d.ckpt.metrics.jsonl"; then ok; else
    bad "firing rates" "no firing_rate in the metrics" "$T/d.ckpt.metrics.jsonl"
fi
"$L" info "$T/d.ckpt" >"$T/d.info" 2>&1
if grep -q 'snn-vgg' "$T/d.info"; then ok; else bad "info" "model not shown" "$T/d.info"; fi

integer_and_export() { # checkpoint name, agreement floor, [output name, extra options (--chip)]
    local ck=$1 floor_ag=$2 name=${3:-$1} ag
    shift 3 2>/dev/null || shift 2
    if "$L" eval "$T/$ck.ckpt" --data "$DATA" --integer --compare --test-limit "$ntest" "$@" \
        >"$T/$name.eval" 2>&1; then ok; else
        bad "$name eval --integer" "exit $?" "$T/$name.eval"
        return
    fi
    ag=$(sed -n 's/^agreement: \([0-9.]*\) .*/\1/p' "$T/$name.eval")
    if awk -v a="$ag" -v f="$floor_ag" 'BEGIN { exit !(a >= f) }'; then ok; else
        bad "$name agreement" "integer vs float agreement '$ag' < $floor_ag" "$T/$name.eval"
    fi
    "$L" eval "$T/$ck.ckpt" --data "$DATA" --integer --test-limit "$nimg" "$@" \
        --dump-logits "$T/$name.int" >"$T/$name.eval2" 2>&1
    if "$L" export "$T/$ck.ckpt" -o "$T/ex_$name" --data "$DATA" "$@" >"$T/$name.export" 2>&1 &&
        "$CC99" -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$T/ex_$name/model.c" \
            "$T/ex_$name/main.c" -o "$T/ex_$name/model" >"$T/$name.cc" 2>&1 &&
        "$T/ex_$name/model" "$T/t10k.idx" "$nimg" >"$T/$name.c.out" 2>"$T/$name.c.err" &&
        cmp -s "$T/$name.c.out" "$T/$name.int"; then ok; else
        bad "$name exported C" "logits differ from lowbit eval --integer (or export failed)" \
            "$T/$name.cc"
    fi
    if grep -nwE 'float|double|malloc|calloc|free|math\.h' "$T/ex_$name/model.c" \
        "$T/ex_$name/model_data.h" >"$T/$name.grep"; then
        bad "$name no float/malloc" "found in the inference source" "$T/$name.grep"
    else ok; fi
}
integer_and_export d "$agree"
# the export packs weight codes as the CNN export does: the 4-bit body two codes a byte
if grep -qE ', 4, lbm_w[0-9]+,' "$T/ex_d/model_data.h"; then ok; else
    bad "packed codes" "no layer stored at 4 bits in model_data.h" "$T/ex_d/model_data.h"
fi

# ---- 2-bit weights: four codes a byte -----------------------------------------------------------
if "$L" train "${C[@]}" --out "$T/w2.ckpt" --quant lsq --wbits 2 --train-limit $((ntrain / 5)) \
    --epochs 1 >"$T/w2.train" 2>&1; then
    ok
    integer_and_export w2 0.9
    if grep -qE ', 2, lbm_w[0-9]+,' "$T/ex_w2/model_data.h"; then ok; else
        bad "packed 2-bit codes" "no layer stored at 2 bits" "$T/ex_w2/model_data.h"
    fi
else
    bad "w2 train" "exit $?" "$T/w2.train"
fi

# ---- reg learned levels (index + level table), on a faulty chip too (docs/faults.md) ----------
if "$L" train "${C[@]}" --out "$T/g.ckpt" --quant reg --levels learned --levels-lr 1e-4 \
    --wbits 4 --train-limit $((ntrain / 3)) --epochs 1 >"$T/g.train" 2>&1; then
    ok
    integer_and_export g 0.95
    # stored as 4-bit level indices and an int16 code table per layer, as the CNN export does
    if grep -qE ', 4, lbm_w[0-9]+, 4, [0-9]+L, lbm_t[0-9]+,' "$T/ex_g/model_data.h"; then ok; else
        bad "level tables" "no layer stored as 4-bit indices + table" "$T/ex_g/model_data.h"
    fi
    if "$L" faults map "$T/g.ckpt" --rate 0.05 --sa1-share 0.5 --seed 2 -o "$T/g.lbmap" \
        >"$T/g.map" 2>&1; then
        ok
        integer_and_export g 0.95 g_chip --chip "$T/g.lbmap"
        if cmp -s "$T/g.int" "$T/g_chip.int"; then
            bad "chip" "the chip's integer logits equal the healthy model's" "$T/g_chip.eval2"
        else ok; fi
    else
        bad "faults map on a spiking model" "exit $?" "$T/g.map"
    fi
else
    bad "reg train" "exit $?" "$T/g.train"
fi

# ---- rate encoding, count readout, integer membrane, learned beta -----------------------------
if "$L" train "${C[@]}" --out "$T/r.ckpt" --quant lsq --wbits 4 --encoding rate --readout count \
    --mem-bits 6 --learn-beta channel --reset zero --train-limit $((ntrain / 3)) --epochs 1 \
    >"$T/r.train" 2>&1; then
    ok
    # a model this short is near chance and its 0..2 spike counts tie often: a lower floor (the
    # trained figure is bench/RESULTS.md's)
    integer_and_export r 0.95
else
    bad "rate train" "exit $?" "$T/r.train"
fi

# ---- resume: stopped after epoch 1 and resumed equals the straight run ------------------------
R=(--train-limit $((ntrain / 5)) --epochs 2 --encoding rate --snn-dropout 0.3)
"$L" train "${C[@]}" "${R[@]}" --out "$T/full.ckpt" >"$T/full.log" 2>&1
"$L" train "${C[@]}" "${R[@]}" --out "$T/part.ckpt" --stop-after 1 >"$T/part1.log" 2>&1
"$L" train "${C[@]}" --resume "$T/part.ckpt" --out "$T/part.ckpt" >"$T/part2.log" 2>&1
if cmp -s "$T/full.ckpt" "$T/part.ckpt"; then ok; else
    bad "resume" "the resumed checkpoint differs from the straight run" "$T/part2.log"
fi

# ---- errors: before anything is written -------------------------------------------------------
expect_fail "T zero" "--timesteps: expected an integer in 1..256, got '0'" \
    "$L" train "${C[@]}" --out "$T/e1.ckpt" --timesteps 0
expect_fail "T huge" "--timesteps: expected an integer in 1..256" \
    "$L" train "${C[@]}" --out "$T/e2.ckpt" --timesteps 1000
expect_fail "spiking option on a cnn" "--encoding is a spiking-network option: it needs --model" \
    "$L" train --data "$DATA" --model cnn --out "$T/e3.ckpt" --encoding rate
expect_fail "unknown encoding" "--encoding: expected one of direct, rate, events, got 'poisson'" \
    "$L" train "${C[@]}" --out "$T/e4.ckpt" --encoding poisson
expect_fail "mse-count membrane" "--loss mse-count needs --readout count" \
    "$L" train "${C[@]}" --out "$T/e5.ckpt" --loss mse-count --readout membrane
expect_fail "mem bits" "--mem-bits: 0 (float membrane) or 3..16" \
    "$L" train "${C[@]}" --out "$T/e6.ckpt" --mem-bits 2
expect_fail "beta" "--beta: expected a number in \[0, 1\]" \
    "$L" train "${C[@]}" --out "$T/e7.ckpt" --beta 1.5
ls "$T"/e*.ckpt >/dev/null 2>&1 && bad "errors" "a checkpoint was written" || ok
expect_fail "onnx export" "a spiking network has no ONNX form" \
    "$L" export "$T/full.ckpt" --onnx "$T/x.onnx"
[ ! -e "$T/x.onnx" ] && ok || bad "onnx export" "a file was written"
finish
