#!/usr/bin/env bash
# --quant sliced end to end on real Fashion-MNIST (docs/mixed.md): a tiny cnn trained through a
# mixed phase and a fine-tune (--phases 0,1,1) with a generous budget, which it meets; `lowbit
# info` shows the learned bits per slice; `lowbit eval --integer` agrees with the float model on
# every prediction; the exported C (each output channel packed at its own width) prints the same
# logits and its byte figures are the arrays it declares; --stop-after and --resume across the
# phases give the same file; `lowbit plot bits` and `plot pareto` write SVG and PNG (bad
# results files named);
# a tight budget the mixed phase cannot reach is met by lowering slices at the end (the export's
# bytes within it; integer = float on every prediction, exported C = eval --integer). Then the bad inputs: budgets of zero or below the smallest possible model (the
# minimum is named), phases that do not add up, widths out of range, options without sliced
# quantizers, a fault map asked of a sliced checkpoint, a damaged sliced checkpoint: clear messages, non-zero exits.
# Usage: sliced.sh path/to/lowbit. With a sanitizer build (or LOWBIT_QUICK=1) fewer samples.
set -u
L=${1:?usage: sliced.sh path/to/lowbit}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
CC99=${CC99:-cc}
. "$(dirname "$0")/common.bash"
ntrain=64 nimg=64 quick=0
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then ntrain=64 nimg=20 quick=1; fi
if [ ! -d "$DATA" ]; then
    bad "data" "data set $DATA missing (scripts/deps.sh installs dataset-fashion-mnist)"
    finish
fi
gunzip -c "$DATA/t10k-images-idx3-ubyte.gz" | head -c $((16 + nimg * 784)) >"$T/t10k.idx"
train() { # checkpoint, extra options...
    local out=$1
    shift
    "$L" train --data "$DATA" --out "$out" --train-limit "$ntrain" --test-limit 16 --batch 32 \
        --lr 0.02 --model cnn --quant sliced --per-channel --wbits 4 --abits 4 --sliced-every 1 "$@"
}

# ---- a budget met, bits shown, integer and exported C agree ----------------------------------
if train "$T/a.ckpt" --epochs 2 --phases 0,1,1 --budget-weights 500 --budget-acts 200 \
    >"$T/a.train" 2>&1 && grep -q "budget: exported weight_bytes [0-9]* within" "$T/a.train"; then
    ok
else
    bad "train within budget" "exit or budget line" "$T/a.train"
    finish
fi
grep -q '"phase":"mixed".*"size_weights_kb"' "$T/a.ckpt.metrics.jsonl" &&
    grep -q '"phase":"finetune"' "$T/a.ckpt.metrics.jsonl" && ok ||
    bad "metrics" "no phase / size fields" "$T/a.ckpt.metrics.jsonl"
"$L" info "$T/a.ckpt" >"$T/a.info" 2>&1
if grep -q '^sliced bits (b0 W4 A4; phases 0,1,1' "$T/a.info" &&
    grep -qE '^  conv2 +W [0-9.]+ kB  mean [0-9.]+ bits  slices [2-8]{32}$' "$T/a.info" &&
    grep -q '^weight_bytes: ' "$T/a.info"; then ok; else
    bad "info" "no per-slice bits" "$T/a.info"
fi
if "$L" eval "$T/a.ckpt" --data "$DATA" --integer --compare --test-limit "$nimg" \
    --dump-logits "$T/a.int" >"$T/a.eval" 2>&1 && grep -q '^agreement: 1.0000 ' "$T/a.eval"; then
    ok
else
    bad "eval --integer" "not every prediction agrees" "$T/a.eval"
fi
if "$L" export "$T/a.ckpt" -o "$T/ex" --data "$DATA" >"$T/a.export" 2>&1 &&
    "$CC99" -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$T/ex/model.c" "$T/ex/main.c" \
        -o "$T/ex/model" >"$T/a.cc" 2>&1 &&
    "$T/ex/model" "$T/t10k.idx" "$nimg" >"$T/a.c.out" 2>"$T/a.c.err" &&
    cmp -s "$T/a.c.out" "$T/a.int"; then ok; else
    bad "export" "exported C differs from lowbit eval --integer (or failed)" "$T/a.export"
fi

# ---- --stop-after + --resume through the phases: the same file byte for byte ------------------
if [ "$quick" = 0 ]; then
    train "$T/r.ckpt" --epochs 2 --phases 0,1,1 --budget-weights 500 --budget-acts 200 \
        --stop-after 1 >"$T/r.train" 2>&1 &&
        "$L" train --resume "$T/r.ckpt" --data "$DATA" --out "$T/r.ckpt" >>"$T/r.train" 2>&1 &&
        cmp -s "$T/r.ckpt" "$T/a.ckpt" && ok || bad "resume" "differs from the straight run" "$T/r.train"
fi

# ---- lowbit plot bits: SVG and PNG ----------------------------------------------------------
if "$L" plot bits "$T/a.ckpt" -o "$T/bits.svg" >"$T/plot.out" 2>&1 && [ -s "$T/bits.svg" ] &&
    [ -s "$T/bits.png" ]; then ok; else
    if grep -q 'matplotlib is not installed' "$T/plot.out"; then
        echo "SKIP plot bits: no python3 with matplotlib"
    else
        bad "plot bits" "no SVG/PNG" "$T/plot.out"
    fi
fi

# ---- lowbit plot pareto: this run's own bytes and accuracy; bad files named -----------------
wb=$("$L" info "$T/a.ckpt" | sed -n 's/^weight_bytes: //p')
ab=$("$L" info "$T/a.ckpt" | sed -n 's/^activation_bytes: //p')
printf '{"points": [{"model": "cnn", "method": "sliced", "label": "a", "weight_bytes": %s, "activation_bytes": %s, "accuracy": 0.5}, {"model": "cnn", "method": "uniform", "label": "W2", "weight_bytes": %s, "activation_bytes": %s, "accuracy": 0.4}]}\n' \
    "$wb" "$ab" "$((wb / 2))" "$ab" >"$T/res.json"
if "$L" plot pareto "$T/res.json" -o "$T/pareto.svg" >"$T/pareto.out" 2>&1 &&
    [ -s "$T/pareto.svg" ] && [ -s "$T/pareto.png" ]; then ok; else
    if grep -q 'matplotlib is not installed' "$T/pareto.out"; then
        echo "SKIP plot pareto: no python3 with matplotlib"
    else
        bad "plot pareto" "no SVG/PNG" "$T/pareto.out"
    fi
fi
echo '{"points": [{"method": "x", "weight_bytes": 1, "activation_bytes": 2, "accuracy": 93}]}' >"$T/bad1.json"
expect_fail "pareto percent" 'point 0: "accuracy" above 1' "$L" plot pareto "$T/bad1.json" -o "$T/b1.svg"
echo '{"points": [{"method": "x", "accuracy": 0.9, "weight_bytes": 1}]}' >"$T/bad2.json"
expect_fail "pareto field" 'point 0: "activation_bytes" missing' "$L" plot pareto "$T/bad2.json" -o "$T/b2.svg"
echo '{"points": [' >"$T/bad3.json"
expect_fail "pareto json" "bad3.json: not valid JSON" "$L" plot pareto "$T/bad3.json" -o "$T/b3.svg"
[ ! -e "$T/b1.svg" ] && [ ! -e "$T/b3.svg" ] && ok || bad "pareto bad input" "a plot was written"

# the export's byte figures are the arrays it declares; sliced rows packed at their own widths
declared() { # file, 1 for const arrays (model_data.h) or 0 for buffers (model.c)
    awk -v want="$2" '
        /^typedef signed char lbm_w_t/ { sz["lbm_w_t"] = 1 }
        /^typedef int16_t lbm_w_t/ { sz["lbm_w_t"] = 2 }
        /^static .*\[[0-9]+\]/ {
            c = ($2 == "const"); if (c != want) next
            t = c ? $3 : $2; if (t == "unsigned" || t == "signed") t = t " " (c ? $4 : $3)
            n = $0; sub(/^[^[]*\[/, "", n); sub(/\].*/, "", n)
            s = -1e9
            if (t == "unsigned char" || t == "signed char") s = 1
            if (t == "int16_t") s = 2
            if (t == "int32_t") s = 4
            if (t == "int64_t") s = 8
            if (t in sz) s = sz[t]
            total += s * n
        }
        END { print total + 0 }' "$1"
}
wb=$(sed -n 's/^weight_bytes: //p' "$T/a.export")
ab=$(sed -n 's/^activation_bytes: //p' "$T/a.export")
dw=$(declared "$T/ex/model_data.h" 1) da=$(declared "$T/ex/model.c" 0)
if [ -n "$wb" ] && [ "$wb" = "$dw" ] && [ "$ab" = "$da" ]; then ok; else
    bad "bytes" "export says weight_bytes $wb activation_bytes $ab, files declare $dw / $da"
fi
# (the short quick run may leave every slice of a layer at one width: nothing to gain)
if [ "$quick" = 0 ]; then
    grep -q 'sliced: each output channel.s codes (up to [2-8] bits) in its own storage width' \
        "$T/ex/model_data.h" && ok || bad "per-slice packing" "no layer packed per slice" "$T/a.info"
fi
if command -v arm-none-eabi-gcc >/dev/null; then
    arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror -pedantic -mcpu=cortex-m4 -mthumb -Os \
        -c "$T/ex/model.c" -o "$T/ex/model_m4.o" >"$T/a.arm" 2>&1 && ok ||
        bad "cortex-m4" "arm-none-eabi-gcc failed" "$T/a.arm"
fi

# ---- a tight budget: slices lowered until the export fits, then checked on the export -------
# 30 kB is above the export's floor (every slice at 2 bits) and far below a 4-bit model: the
# mixed phase cannot get there in one epoch, so the end of the run lowers slices (docs/mixed.md)
train "$T/b.ckpt" --epochs 1 --phases 0,1,0 --budget-weights 30 >"$T/b.train" 2>&1
rc=$?
bw=$("$L" info "$T/b.ckpt" 2>/dev/null | sed -n 's/^weight_bytes: \([0-9]*\)/\1/p')
if [ "$rc" -eq 0 ] && grep -q "budget: exported weight_bytes [0-9]* within --budget-weights" "$T/b.train" &&
    grep -q "one-bit lowerings of weight slices" "$T/b.train" &&
    [ -n "$bw" ] && [ "$bw" -le 30000 ]; then ok; else
    bad "tight budget met by lowering slices" "exit $rc (want 0), weight_bytes '$bw' (want <= 30000)" "$T/b.train"
fi
# with a fixed-bit phase first, the mixed phase already starts within the budget
train "$T/m.ckpt" --epochs 3 --phases 1,1,1 --budget-weights 30 >"$T/m.train" 2>&1
rc=$?
mw=$("$L" info "$T/m.ckpt" 2>/dev/null | sed -n 's/^weight_bytes: \([0-9]*\)/\1/p')
if [ "$rc" -eq 0 ] && grep -q "^mixed phase: budget: the exported weights had [0-9]* bytes" "$T/m.train" &&
    [ -n "$mw" ] && [ "$mw" -le 30000 ]; then ok; else
    bad "budget met from the mixed phase on" "exit $rc, weight_bytes '$mw'" "$T/m.train"
fi
# the lowered model (rows of several widths in one layer) through the integer path and the export
if "$L" eval "$T/b.ckpt" --data "$DATA" --integer --compare --test-limit "$nimg" \
    --dump-logits "$T/b.int" >"$T/b.i" 2>&1 && grep -q '^agreement: 1.0000 ' "$T/b.i"; then ok; else
    bad "lowered model: integer = float" "not every prediction agrees" "$T/b.i"
fi
if "$L" export "$T/b.ckpt" -o "$T/exb" --data "$DATA" >"$T/b.export" 2>&1 &&
    "$CC99" -std=c99 -O2 -Wall -Wextra -Werror -pedantic "$T/exb/model.c" "$T/exb/main.c" \
        -o "$T/exb/model" >"$T/b.cc" 2>&1 &&
    "$T/exb/model" "$T/t10k.idx" "$nimg" >"$T/b.c.out" 2>"$T/b.c.err" &&
    cmp -s "$T/b.c.out" "$T/b.int" && [ "$(sed -n 's/^weight_bytes: //p' "$T/b.export")" = "$bw" ]; then
    ok
else
    bad "lowered model: export" "exported C differs from eval --integer, or other bytes" "$T/b.export"
fi

# ---- bad inputs ------------------------------------------------------------------------------
expect_fail "budget zero" "greater than 0" train "$T/e.ckpt" --epochs 1 --budget-weights 0
expect_fail "budget negative" "greater than 0" train "$T/e.ckpt" --epochs 1 --budget-acts -5
expect_fail "budget below minimum" "below the smallest possible model: 24\.[0-9]* kB (every weight at 2 bits" \
    train "$T/e.ckpt" --epochs 1 --budget-weights 2
expect_fail "weight budget below the export's floor" "below the smallest possible model: [0-9.]* kB (the exported model with every weight slice at 2 bits" \
    train "$T/e.ckpt" --epochs 1 --budget-weights 25
expect_fail "activation budget below the export's floor" "below the smallest possible model: [0-9.]* kB (the exported integer model keeps every activation code in a byte" \
    train "$T/e.ckpt" --epochs 1 --budget-acts 20
expect_fail "phases sum" "add up to 3 epochs, the run has 2" \
    train "$T/e.ckpt" --epochs 2 --phases 1,1,1
expect_fail "phases syntax" "expected A,B,C" train "$T/e.ckpt" --epochs 2 --phases 1,1
expect_fail "budget without mixed phase" "needs a mixed phase" \
    train "$T/e.ckpt" --epochs 2 --phases 1,0,1 --budget-weights 100
expect_fail "wbits out of range" "wbits" train "$T/e.ckpt" --epochs 1 --wbits 9
expect_fail "layer width out of range" "layer 'conv2': bits must be 2..8, got 9" \
    train "$T/e.ckpt" --epochs 1 --layer-bits conv2=9/4
expect_fail "phases without sliced" "need sliced quantizers" \
    "$L" train --data "$DATA" --out "$T/e.ckpt" --quant lsq --epochs 1 --phases 0,1,0
expect_fail "sliced with adaqat" "choose one" train "$T/e.ckpt" --epochs 1 --learn-bits adaqat
[ ! -e "$T/e.ckpt" ] && ok || bad "bad inputs" "a checkpoint was written"
# a sliced checkpoint asked for what it cannot do: a chip's fault map (coded lsq/fixed/reg only)
expect_fail "fault map of a sliced checkpoint" "its weights are sliced (chips hold lsq, fixed and reg" \
    "$L" faults map "$T/a.ckpt" -o "$T/x.lbmap"
# a damaged sliced checkpoint: conv2's first d set above its ceiling
/usr/bin/python3 - "$T/a.ckpt" "$T/d.ckpt" <<'EOF'
import json, struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
off = 8 + n + h["conv2.wq.param"]["data_offsets"][0]
b[off:off + 4] = struct.pack("<f", 5.0)
open(sys.argv[2], "wb").write(b)
EOF
expect_fail "damaged sliced checkpoint" "layer 'conv2' weights: sliced slice 0 has d 5" \
    "$L" eval "$T/d.ckpt" --data "$DATA" --test-limit 8
expect_fail "plot bits of a damaged checkpoint" "sliced slice 0 has d 5" \
    "$L" plot bits "$T/d.ckpt" -o "$T/d.svg"
[ ! -e "$T/d.svg" ] && ok || bad "plot bits of a damaged checkpoint" "an SVG was written"
finish
