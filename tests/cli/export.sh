#!/usr/bin/env bash
# `lowbit export` end to end on real Fashion-MNIST: tiny checkpoints (cnn W4A4, cnn W8A8 with
# per-channel weights, resnet20 W2A2, cnn with reg fixed and step levels, MobileNets,
# efficientnet-lite0 W4A4) are trained, evaluated with `lowbit eval --integer
# --dump-logits`, exported, compiled with `cc -std=c99 -Wall -Wextra -Werror -pedantic` with the
# exported main.c, run on the first test images, and their output must equal the dump byte for
# byte. model.c must build for a Cortex-M4 (arm-none-eabi-gcc) and hold no float, double, malloc
# or libm. Then the errors: missing / malformed checkpoints, float layers, unwritable or foreign
# output directories, each a clear message, a non-zero exit and nothing left behind.
# Usage: export.sh path/to/lowbit. With a sanitizer build (or LOWBIT_QUICK=1) fewer samples.
set -u
L=${1:?usage: export.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
CC99=${CC99:-cc}
. "$(dirname "$0")/common.bash"

# ASan/UBSan run about 15x slower: the same checks on fewer samples and two of the models.
ntrain=512 nimg=200 quick=0
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then ntrain=64 nimg=40 quick=1; fi
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

# ---- exported C == lowbit eval --integer ----------------------------------------------------
check_model() { # name, train options...
    local name=$1 ex="$T/ex_$1"
    shift
    if ! train "$name" "$@"; then
        bad "$name train" "exit $?" "$T/$name.train"
        return
    fi
    if "$L" eval "$T/$name.ckpt" --data "$DATA" --integer --compare --test-limit "$nimg" \
        --dump-logits "$T/$name.int" >"$T/$name.eval" 2>&1 &&
        grep -qE '^agreement: [01]\.[0-9]{4} ' "$T/$name.eval" &&
        [ "$(wc -l <"$T/$name.int")" -eq "$nimg" ]; then ok; else
        bad "$name eval --integer" "no agreement line or wrong dump" "$T/$name.eval"
        return
    fi
    if "$L" export "$T/$name.ckpt" -o "$ex" --data "$DATA" >"$T/$name.export" 2>&1 &&
        [ -f "$ex/model.h" ] && [ -f "$ex/model_data.h" ] && [ -f "$ex/model.c" ] &&
        [ -f "$ex/main.c" ]; then ok; else
        bad "$name export" "failed or files missing" "$T/$name.export"
        return
    fi
    if "$CC99" -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$ex/model.c" "$ex/main.c" \
        -o "$ex/model" >"$T/$name.cc" 2>&1; then ok; else
        bad "$name cc -std=c99" "does not compile cleanly" "$T/$name.cc"
        return
    fi
    if "$ex/model" "$T/t10k.idx" "$nimg" >"$T/$name.c.out" 2>"$T/$name.c.err" &&
        cmp -s "$T/$name.c.out" "$T/$name.int"; then ok; else
        bad "$name logits" "exported C output differs from lowbit eval --integer" "$T/$name.c.err"
        diff "$T/$name.c.out" "$T/$name.int" | head -4
    fi
    if grep -nwE 'float|double|malloc|calloc|free|math\.h' "$ex/model.c" "$ex/model_data.h" \
        >"$T/$name.grep"; then
        bad "$name no float/malloc" "found in the inference source" "$T/$name.grep"
    else ok; fi
    if command -v arm-none-eabi-gcc >/dev/null; then
        if arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror -pedantic -mcpu=cortex-m4 -mthumb \
            -Os -c "$ex/model.c" -o "$ex/model_m4.o" >"$T/$name.arm" 2>&1 &&
            arm-none-eabi-size "$ex/model_m4.o" >"$T/$name.size"; then
            ok
            read -r text data bss _ < <(tail -n 1 "$T/$name.size")
            echo "  $name Cortex-M4: flash $((text + data)) bytes, RAM $((data + bss)) bytes"
        else
            bad "$name cortex-m4" "arm-none-eabi-gcc failed" "$T/$name.arm"
        fi
    else
        bad "$name cortex-m4" "arm-none-eabi-gcc not installed (scripts/deps.sh)"
    fi
}

check_model cnn4 --model cnn --quant lsq --wbits 4 --abits 4
[ "$quick" = 1 ] || check_model cnn8pc --model cnn --quant lsq --wbits 8 --abits 8 --per-channel
check_model r20w2 --model resnet20 --quant lsq --wbits 2 --abits 2
# two classes (idx has the classes its labels say, docs/data.md): the same images, labels mod 2,
# so the exported classifier has 2 outputs and t10k.idx still holds its first test images
mkdir -p "$T/two"
for s in train t10k; do
    gunzip -c "$DATA/$s-images-idx3-ubyte.gz" >"$T/two/$s-images-idx3-ubyte"
    /usr/bin/python3 -c 'import gzip,sys; b=gzip.open(sys.argv[1]).read(); sys.stdout.buffer.write(b[:8]+bytes(x%2 for x in b[8:]))' \
        "$DATA/$s-labels-idx1-ubyte.gz" >"$T/two/$s-labels-idx1-ubyte"
done
DATA="$T/two" check_model cnn4c2 --model cnn --quant lsq --wbits 4 --abits 4
if "$L" info "$T/cnn4c2.ckpt" | grep -q 'classes 2'; then ok; else
    bad "cnn4c2 classes" "not a 2-class model" "$T/cnn4c2.train"
fi
# reg (docs/reg.md): fixed levels are odd codes at half a step, stored as their b-bit index
# (7-bit first/last: 8-bit fixed levels have 9-bit codes); step levels are LSQ's grid; learned
# levels are int16 codes on their deployment grid, stored as the b-bit index
check_model regfx --model cnn --quant reg --levels fixed --first-bits 7 --last-bits 7
if grep -q '^/\* conv2: conv 32x32x3x3, 4-bit level indices in 4-bit storage' \
    "$T/ex_regfx/model_data.h"; then ok; else
    bad "regfx storage" "4-bit fixed levels not stored as 4-bit indices" "$T/ex_regfx/model_data.h"
fi
[ "$quick" = 1 ] || check_model regst --model cnn --quant reg --levels step --wbits 3 --per-channel
check_model regln --model cnn --quant reg --levels learned --levels-lr 1e-4
[ "$quick" = 1 ] || check_model regln3pc --model resnet20 --quant reg --levels learned --wbits 3 \
    --per-channel

# MobileNets (depthwise convs, ReLU6, linear bottlenecks, residual adds) with power-of-two
# steps: every add/quant requantization is then a shift, and the fc (no BN folded in)
shifts() { # name: the export's count line says all add/quant ops and at least the fc
    if grep -qE 'shift\): [1-9][0-9]* of [0-9]+ conv/linear layers, ([0-9]+) of \1 add/quant' \
        "$T/$1.export"; then ok; else
        bad "$1 po2 shifts" "not every add/quant requantization is a shift" "$T/$1.export"
    fi
}
check_model mn1po2 --model mobilenetv1 --width-mult 0.25 --quant lsq --po2 --per-channel
shifts mn1po2
if [ "$quick" = 0 ]; then
    check_model mn2po2 --model mobilenetv2 --width-mult 0.25 --quant lsq --po2 --per-channel
    shifts mn2po2
    # EfficientNet-Lite0 (5x5 depthwise convs at stride 1 and 2, unscaled stem and head), LSQ
    # W4A4: 2 x 24 steps of 16 images (at 1 x 64 all 200 predictions were one class), one thread
    # (~5 s; OpenMP's two threads ran ~10x slower on a loaded 2-core machine), chance-level test
    # accuracy on 16 images is no collapse here
    check_model el0 --model efficientnet-lite0 --width-mult 0.25 --quant lsq --wbits 4 --abits 4 \
        --train-limit 384 --batch 16 --epochs 2 --threads 1 --on-collapse warn
fi

# ---- errors -----------------------------------------------------------------------------------
expect_fail "missing checkpoint" "$T/none.ckpt" "$L" export "$T/none.ckpt" -o "$T/o1"
[ ! -e "$T/o1" ] && ok || bad "missing checkpoint" "output created"
head -c 300 /dev/urandom >"$T/junk.ckpt"
expect_fail "malformed checkpoint" "junk.ckpt" "$L" export "$T/junk.ckpt" -o "$T/o2"
[ ! -e "$T/o2" ] && ok || bad "malformed checkpoint" "output created"
if train fp32 --model cnn --quant fp32 --train-limit 32; then
    expect_fail "fp32 export" "float weights" "$L" export "$T/fp32.ckpt" -o "$T/o3"
    expect_fail "fp32 eval --integer" "float weights" "$L" eval "$T/fp32.ckpt" --integer \
        --test-limit 8
    [ ! -e "$T/o3" ] && ok || bad "fp32 export" "output created"
else bad "fp32 train" "failed" "$T/fp32.train"; fi
if train last0 --model cnn --quant lsq --last-bits 0 --train-limit 32; then
    expect_fail "float last layer" "layer 'fc'" "$L" export "$T/last0.ckpt" -o "$T/o4"
else bad "last0 train" "failed" "$T/last0.train"; fi
if [ -f "$T/cnn4.ckpt" ]; then
    expect_fail "missing parent" "does not exist" "$L" export "$T/cnn4.ckpt" -o "$T/no/such/dir"
    : >"$T/afile"
    expect_fail "parent is a file" "afile" "$L" export "$T/cnn4.ckpt" -o "$T/afile/out"
    mkdir -p "$T/mine" && echo keep >"$T/mine/notes.txt"
    expect_fail "foreign directory" "not a lowbit export" "$L" export "$T/cnn4.ckpt" -o "$T/mine"
    [ "$(cat "$T/mine/notes.txt")" = keep ] && ok || bad "foreign directory" "modified"
    if [ "$(id -u)" != 0 ]; then
        mkdir -p "$T/ro" && chmod 555 "$T/ro"
        expect_fail "read-only parent" "not writable" "$L" export "$T/cnn4.ckpt" -o "$T/ro/out"
    fi
    "$L" export "$T/cnn4.ckpt" -o "$T/ex_cnn4" >/dev/null 2>&1 && ok ||
        bad "re-export" "replacing a previous export failed"
    left=$(find "$T" -mindepth 1 -maxdepth 2 \( -name ".*.tmp.*" -o -name ".*.old.*" \) | tee "$T/left" | wc -l)
    [ "$left" -eq 0 ] && ok || bad "temporaries" "$left temporary directories left" "$T/left"
fi
expect_fail "no -o" "no output directory" "$L" export "$T/cnn4.ckpt"
# float logits can be dumped too (issue 16): a line per image, the prediction then 10 logits
if "$L" eval "$T/cnn4.ckpt" --data "$DATA" --test-limit 8 --dump-logits "$T/f.txt" >/dev/null 2>&1 &&
    [ "$(awk 'NF == 11' "$T/f.txt" | wc -l)" = 8 ]; then ok; else
    bad "float --dump-logits" "no 8 lines of a prediction and 10 logits"
fi
finish
