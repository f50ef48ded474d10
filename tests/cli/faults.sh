#!/usr/bin/env bash
# Faulty chips end to end on real Fashion-MNIST (docs/faults.md): tiny checkpoints (cnn LSQ W4A4,
# cnn reg fixed levels) get maps from `lowbit faults map` and from the text form (`faults
# convert`); a healthy map changes no logit (float and integer); on a faulty chip the integer
# and float evaluations agree on >= 99.8% of the predictions and the exported C's logits equal
# `lowbit eval --integer --chip`, every value; the same seed gives the same file. Then the bad
# input: maps for another model or bit-width, corrupted maps, options out of range, a chip for a
# float checkpoint, --nearest-reachable without --chip, variability with --integer/export: each
# a clear message, a non-zero exit and nothing written.
# Usage: faults.sh path/to/lowbit. With a sanitizer build (or LOWBIT_QUICK=1) fewer samples.
set -u
L=${1:?usage: faults.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
CC99=${CC99:-cc}
. "$(dirname "$0")/common.bash"

ntrain=512 nimg=500 quick=0
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then ntrain=64 nimg=60 quick=1; fi
if [ ! -d "$DATA" ]; then
    bad "data" "data set $DATA missing (scripts/deps.sh installs dataset-fashion-mnist)"
    finish
fi
gunzip -c "$DATA/t10k-images-idx3-ubyte.gz" | head -c $((16 + nimg * 784)) >"$T/t10k.idx"

train() { # name, extra train options...
    local name=$1
    shift
    "$L" train --data "$DATA" --out "$T/$name.ckpt" --train-limit "$ntrain" --test-limit 16 \
        --epochs 1 --batch 64 --lr 0.02 "$@" >"$T/$name.train" 2>&1
}
ev() { # out, ckpt, options... : lowbit eval on the first nimg test images
    local out=$1 ck=$2
    shift 2
    "$L" eval "$ck" --data "$DATA" --test-limit "$nimg" "$@" >"$out" 2>&1
}
acc() { sed -n 's/^accuracy: //p' "$1"; }

if ! train lsq --model cnn --quant lsq --wbits 4 --abits 4; then
    bad "train lsq" "exit $?" "$T/lsq.train"
    finish
fi

# ---- faults map: a file, deterministic in its seed --------------------------------------------
M=(faults map "$T/lsq.ckpt")
if "$L" "${M[@]}" --rate 0.02 --seed 3 -o "$T/a.lbmap" >"$T/map.out" 2>&1 &&
    "$L" "${M[@]}" --rate 0.02 --seed 3 -o "$T/b.lbmap" >/dev/null 2>&1 &&
    cmp -s "$T/a.lbmap" "$T/b.lbmap" && grep -q "cells stuck" "$T/map.out"; then ok; else
    bad "faults map" "failed or not deterministic" "$T/map.out"
fi
"$L" "${M[@]}" --rate 0.02 --seed 4 -o "$T/c.lbmap" >/dev/null 2>&1
cmp -s "$T/a.lbmap" "$T/c.lbmap" && bad "faults map seed" "seeds 3 and 4 give the same map" || ok
if "$L" faults info "$T/a.lbmap" >"$T/info.out" 2>&1 && grep -q "^model: cnn" "$T/info.out" &&
    [ "$(grep -c 'twos' "$T/info.out")" -ge 2 ]; then ok; else
    bad "faults info" "no model line or layers" "$T/info.out"
fi

# ---- which layers: body (default) spares the first and last coded layers, all does not --------
stuck_of() { awk -v l="$2" '$1 == l { for (i = 1; i <= NF; i++) if ($i == "cells:") s = $(i + 1) + $(i + 4); print s }' "$1"; }
"$L" "${M[@]}" --rate 0.2 --seed 3 -o "$T/body.lbmap" >"$T/body.out" 2>&1
"$L" "${M[@]}" --rate 0.2 --seed 3 --layers all -o "$T/all.lbmap" >/dev/null 2>&1
"$L" faults info "$T/body.lbmap" >"$T/body.info" 2>&1
"$L" faults info "$T/all.lbmap" >"$T/all.info" 2>&1
first=$(awk '$2 ~ /^[0-9]+$/ && $3 == "weights" { print $1; exit }' "$T/body.info")
last=$(awk '$2 ~ /^[0-9]+$/ && $3 == "weights" { l = $1 } END { print l }' "$T/body.info")
mid=$(awk '$2 ~ /^[0-9]+$/ && $3 == "weights" { n++; if (n == 2) print $1 }' "$T/body.info")
if [ "$(stuck_of "$T/body.info" "$first")" = 0 ] && [ "$(stuck_of "$T/body.info" "$last")" = 0 ] &&
    [ "$(stuck_of "$T/all.info" "$first")" -gt 0 ] && [ "$(stuck_of "$T/all.info" "$last")" -gt 0 ] &&
    [ "$(stuck_of "$T/body.info" "$mid")" = "$(stuck_of "$T/all.info" "$mid")" ] &&
    [ "$(stuck_of "$T/body.info" "$mid")" -gt 0 ] && grep -q "spared" "$T/body.out"; then ok; else
    bad "faults map --layers" "body must spare '$first' and '$last' and keep '$mid' as drawn" "$T/body.info"
fi
expect_fail "map --layers" "body or all" "$L" "${M[@]}" --layers some -o "$T/x4.lbmap"
expect_fail "map --reg-encoding" "index or twos" "$L" "${M[@]}" --reg-encoding gray -o "$T/x5.lbmap"
expect_fail "map --reg-encoding twos, no reg layer" "no reg-coded layer" "$L" "${M[@]}" \
    --reg-encoding twos -o "$T/x6.lbmap"
[ ! -e "$T/x5.lbmap" ] && [ ! -e "$T/x6.lbmap" ] && ok || bad "bad --reg-encoding" "wrote a map"

# ---- a healthy chip changes nothing: float and integer logits, the same bytes ------------------
"$L" "${M[@]}" --rate 0 -o "$T/h.lbmap" >/dev/null 2>&1 || bad "map rate 0" "failed"
ev "$T/f0" "$T/lsq.ckpt" --dump-logits "$T/f0.txt"
ev "$T/fh" "$T/lsq.ckpt" --chip "$T/h.lbmap" --dump-logits "$T/fh.txt"
if grep -q "^chip: .* 0 of [0-9]* coded weights" "$T/fh" && cmp -s "$T/f0.txt" "$T/fh.txt"; then
    ok
else bad "healthy chip, float" "logits differ or no chip line" "$T/fh"; fi
ev "$T/i0" "$T/lsq.ckpt" --integer --dump-logits "$T/i0.txt"
ev "$T/ih" "$T/lsq.ckpt" --integer --chip "$T/h.lbmap" --dump-logits "$T/ih.txt"
cmp -s "$T/i0.txt" "$T/ih.txt" && [ -s "$T/i0.txt" ] && ok ||
    bad "healthy chip, integer" "logits differ" "$T/ih"

# ---- a faulty chip: float vs integer, exported C == eval --integer --chip ----------------------
chip_checks() { # name, ckpt, map
    local name=$1 ck=$2 map=$3 ex="$T/ex_$1"
    ev "$T/$name.f" "$ck" --chip "$map" --dump-logits "$T/$name.f.txt"
    if grep -q "^chip: " "$T/$name.f" && ! cmp -s "$T/$name.f.txt" "$T/f0.txt"; then ok; else
        bad "$name float" "no chip line or logits unchanged" "$T/$name.f"
    fi
    ev "$T/$name.i" "$ck" --integer --compare --chip "$map" --dump-logits "$T/$name.i.txt"
    local agree
    agree=$(sed -n 's/^agreement: \([0-9.]*\) .*/\1/p' "$T/$name.i")
    if [ -n "$agree" ] && awk -v a="$agree" 'BEGIN { exit !(a >= 0.998) }'; then ok; else
        bad "$name agreement" "integer vs float on the chip: '$agree' < 0.998" "$T/$name.i"
    fi
    # the float half of --compare is the chip's float model
    [ "$(grep '^float:' "$T/$name.i" | awk '{print $3}')" = "$(acc "$T/$name.f")" ] && ok ||
        bad "$name float in --compare" "differs from eval --chip" "$T/$name.i"
    if "$L" export "$ck" --chip "$map" -o "$ex" >"$T/$name.x" 2>&1 &&
        "$CC99" -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$ex/model.c" "$ex/main.c" \
            -o "$ex/model" >"$T/$name.cc" 2>&1 &&
        "$ex/model" "$T/t10k.idx" "$nimg" >"$T/$name.c.txt" 2>"$T/$name.c.err" &&
        cmp -s "$T/$name.c.txt" "$T/$name.i.txt"; then ok; else
        bad "$name export" "exported C differs from eval --integer --chip" "$T/$name.x"
    fi
    grep -q "on chip" "$ex/model.h" 2>/dev/null && ok || bad "$name export" "no chip in model.h"
}
"$L" "${M[@]}" --rate 0.02 --sa1-share 0.3 --seed 5 -o "$T/f.lbmap" >/dev/null 2>&1
chip_checks lsq2 "$T/lsq.ckpt" "$T/f.lbmap"
ev "$T/near" "$T/lsq.ckpt" --chip "$T/f.lbmap" --nearest-reachable
grep -q "(nearest reachable)" "$T/near" && [ -n "$(acc "$T/near")" ] && ok ||
    bad "nearest reachable" "no chip line or accuracy" "$T/near"
# the LSQ/fixed layers in sign-magnitude: the map says so, and the float eval, the integer model
# and the exported C hold the chip the same way; the same cells stuck give other logits
"$L" "${M[@]}" --rate 0.02 --sa1-share 0.3 --seed 5 --lsq-encoding signmag -o "$T/fs.lbmap" \
    >/dev/null 2>&1
"$L" faults info "$T/fs.lbmap" >"$T/fs.info" 2>&1
[ "$(grep -c ' twos ' "$T/fs.info")" = 0 ] && grep -q ' signmag ' "$T/fs.info" && ok ||
    bad "lsq map, signmag" "layers still in two's complement" "$T/fs.info"
chip_checks lsq_sm "$T/lsq.ckpt" "$T/fs.lbmap"
cmp -s "$T/lsq2.f.txt" "$T/lsq_sm.f.txt" && bad "signmag" "same logits as the twos chip" || ok
expect_fail "map --lsq-encoding" "twos or signmag" "$L" "${M[@]}" --lsq-encoding gray \
    -o "$T/x7.lbmap"

if [ "$quick" = 0 ]; then
    if train regfx --model cnn --quant reg --levels fixed --first-bits 7 --last-bits 7; then
        "$L" faults map "$T/regfx.ckpt" --rate 0.02 --seed 6 -o "$T/r.lbmap" >/dev/null 2>&1
        grep -q index <("$L" faults info "$T/r.lbmap") && ok || bad "reg map" "no index layers"
        ev "$T/f0" "$T/regfx.ckpt" --dump-logits "$T/f0.txt" # chip_checks compares with it
        chip_checks regfx "$T/regfx.ckpt" "$T/r.lbmap"
        # the reg layers stored in two's complement: their map says so, and the chip is held
        # the same way by the float eval, the integer model and the exported C
        "$L" faults map "$T/regfx.ckpt" --rate 0.02 --seed 6 --reg-encoding twos \
            -o "$T/rt.lbmap" >/dev/null 2>&1
        "$L" faults info "$T/rt.lbmap" >"$T/rt.info" 2>&1
        [ "$(grep -c ' index ' "$T/rt.info")" = 0 ] && grep -q ' twos ' "$T/rt.info" && ok ||
            bad "reg map, twos" "layers still in the index encoding" "$T/rt.info"
        chip_checks regfx_twos "$T/regfx.ckpt" "$T/rt.lbmap"
        cmp -s "$T/regfx.f.txt" "$T/regfx_twos.f.txt" && bad "twos" "same logits as the index chip" ||
            ok
        # --lsq-encoding moves the LSQ first/last layers only; the reg layers keep the index
        "$L" faults map "$T/regfx.ckpt" --lsq-encoding signmag -o "$T/rs.lbmap" >/dev/null 2>&1
        "$L" faults info "$T/rs.lbmap" >"$T/rs.info" 2>&1
        [ "$(grep -c ' signmag ' "$T/rs.info")" = 2 ] && [ "$(grep -c ' index ' "$T/rs.info")" = 3 ] &&
            ok || bad "reg map, lsq signmag" "not 2 signmag + 3 index layers" "$T/rs.info"
    else bad "train regfx" "failed" "$T/regfx.train"; fi
fi

# ---- variability: float only ----------------------------------------------------------------
"$L" "${M[@]}" --rate 0.01 --variability 0.2 --var-dist lognormal -o "$T/v.lbmap" >/dev/null 2>&1
ev "$T/v" "$T/lsq.ckpt" --chip "$T/v.lbmap"
[ -n "$(acc "$T/v")" ] && ok || bad "variability float" "no accuracy" "$T/v"

# ---- the text form ----------------------------------------------------------------------------
{
    echo "lowbit-faults 1"
    echo "arch cnn"
    awk '/ weights / { print "layer", $1, $2, substr($4, 1, 1), $5 }' "$T/info.out"
} >"$T/m.txt"
# the first layer's weights 0 and 2 read all ones (code -1), weight 1 all zeros: some change
awk '$1 == "layer" { print; if (!d++) for (j = 0; j < $4; j++) print 0, j, "sa1\n" 1, j, \
    "sa0\n" 2, j, "sa1"; next } { print }' "$T/m.txt" >"$T/m2.txt"
if "$L" faults convert "$T/m2.txt" --for "$T/lsq.ckpt" -o "$T/t.lbmap" >"$T/conv" 2>&1 &&
    ev "$T/t" "$T/lsq.ckpt" --chip "$T/t.lbmap" && grep -qE "^chip: .* [1-3] of" "$T/t"; then
    ok
else bad "faults convert" "text map not converted or not used" "$T/conv"; fi

# ---- bad input ----------------------------------------------------------------------------------
for o in "--rate 1.5" "--rate -0.1" "--sa1-share 2" "--sa1-share -1" "--variability -0.1"; do
    set -- $o
    expect_fail "map $o" "$1" "$L" "${M[@]}" $o -o "$T/x.lbmap"
done
expect_fail "var-dist" "--var-dist" "$L" "${M[@]}" --variability 0.1 --var-dist uniform -o "$T/x.lbmap"
expect_fail "no -o" "no output map" "$L" "${M[@]}"
[ ! -e "$T/x.lbmap" ] && ok || bad "bad options" "a map was written"
expect_fail "nearest without chip" "needs --chip" "$L" eval "$T/lsq.ckpt" --nearest-reachable
expect_fail "export nearest without chip" "needs --chip" "$L" export "$T/lsq.ckpt" \
    --nearest-reachable -o "$T/xo"
# another bit-width: a W2 model's map on the W4 model
if train w2 --model cnn --quant lsq --wbits 2 --abits 2 --train-limit 64; then
    "$L" faults map "$T/w2.ckpt" -o "$T/w2.lbmap" >/dev/null 2>&1
    expect_fail "other bit-width" "layer 'conv2': 2 bits in the map, 4 in the model" \
        "$L" eval "$T/lsq.ckpt" --test-limit 8 --chip "$T/w2.lbmap"
    expect_fail "other bit-width export" "w2.lbmap" "$L" export "$T/lsq.ckpt" \
        --chip "$T/w2.lbmap" -o "$T/xo"
else bad "train w2" "failed" "$T/w2.train"; fi
# another model: the text form with another arch
sed 's/^arch cnn/arch resnet20/' "$T/m.txt" >"$T/r20.txt"
"$L" faults convert "$T/r20.txt" -o "$T/r20.lbmap" >/dev/null 2>&1
expect_fail "other model" "for model 'resnet20', not 'cnn'" "$L" eval "$T/lsq.ckpt" \
    --test-limit 8 --chip "$T/r20.lbmap"
expect_fail "convert --for other model" "resnet20" "$L" faults convert "$T/r20.txt" \
    --for "$T/lsq.ckpt" -o "$T/x2.lbmap"
[ ! -e "$T/x2.lbmap" ] && ok || bad "convert --for" "map written"
# corrupted and truncated maps
sz=$(stat -c %s "$T/a.lbmap")
cp "$T/a.lbmap" "$T/bad.lbmap"
byte=$(od -An -tu1 -j $((sz / 2)) -N1 "$T/a.lbmap" | tr -d ' ')
printf "\\$(printf %o $((255 - byte)))" | dd of="$T/bad.lbmap" bs=1 seek=$((sz / 2)) \
    conv=notrunc 2>/dev/null
expect_fail "corrupted map" "bad.lbmap" "$L" eval "$T/lsq.ckpt" --test-limit 8 --chip "$T/bad.lbmap"
head -c $((sz - 3)) "$T/a.lbmap" >"$T/short.lbmap"
expect_fail "truncated map" "short.lbmap" "$L" eval "$T/lsq.ckpt" --test-limit 8 \
    --chip "$T/short.lbmap"
expect_fail "missing map" "none.lbmap" "$L" eval "$T/lsq.ckpt" --chip "$T/none.lbmap"
expect_fail "corrupted info" "bad.lbmap" "$L" faults info "$T/bad.lbmap"
# variability has no integer form
expect_fail "variability --integer" "variability" "$L" eval "$T/lsq.ckpt" --test-limit 8 \
    --integer --chip "$T/v.lbmap"
expect_fail "variability export" "variability" "$L" export "$T/lsq.ckpt" --chip "$T/v.lbmap" \
    -o "$T/xo"
[ ! -e "$T/xo" ] && ok || bad "export errors" "output directory created"
# a float checkpoint has no codes
if train fp32 --model cnn --quant fp32 --train-limit 32; then
    expect_fail "chip on fp32" "float" "$L" eval "$T/fp32.ckpt" --test-limit 8 --chip "$T/a.lbmap"
    expect_fail "map of fp32" "float" "$L" faults map "$T/fp32.ckpt" -o "$T/x3.lbmap"
    [ ! -e "$T/x3.lbmap" ] && ok || bad "map of fp32" "map written"
else bad "fp32 train" "failed" "$T/fp32.train"; fi
finish
