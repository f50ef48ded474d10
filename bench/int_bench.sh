#!/usr/bin/env bash
# Integer-only inference at full size (docs/integer.md): for cnn and resnet20 at W8A8, W4A4 and
# W2A2 (LSQ, first/last layer 8 bits), on all 10,000 Fashion-MNIST test images:
#   - float QAT vs integer model: accuracies and prediction agreement (lowbit eval --integer
#     --compare);
#   - the exported C (cc -O3 -std=c99 -pedantic, its main.c) vs `lowbit eval --integer`: every
#     logit of every image compared;
#   - cnn W4A4 for a Cortex-M4 (arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -Os): flash and RAM;
#   - speed at batch 128, 2 threads: integer (vnni / avx2 / scalar) vs lowbit's FP32 forward vs
#     PyTorch 1.13 FP32 (the same architectures, eval mode, no_grad).
# Checkpoints come from CKPT_DIR (<model>_w<b>a<b>.ckpt, plus <model>_fp32.ckpt for the FP32
# timing); missing ones are trained with TRAIN_ARGS (default: 2 epochs on the full training set,
# which takes a while on 2 cores). MODELS, BITS and SPEED=0 select parts. Prints a markdown
# summary, also written to OUT/summary.md.
# Usage: bench/int_bench.sh [path/to/lowbit] [OUT]
set -u
L=${1:-build/release/lowbit}
OUT=${2:-build/int_bench}
CKPT_DIR=${CKPT_DIR:-$OUT/ckpt}
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
TRAIN_ARGS=${TRAIN_ARGS:---epochs 2}
MODELS=${MODELS:-cnn resnet20}
BITS=${BITS:-8 4 2}
SPEED=${SPEED:-1} # 0: skip the speed section
PY=/usr/bin/python3
mkdir -p "$OUT" "$CKPT_DIR" || exit 1
[ -x "$L" ] || { echo "int_bench: $L not found (make BUILD=... cli)"; exit 1; }
gunzip -c "$DATA/t10k-images-idx3-ubyte.gz" >"$OUT/t10k.idx" || exit 1
S="$OUT/summary.md"
: >"$S"
say() { echo "$*" | tee -a "$S"; }

ckpt() { # model, quant args..., -> path of a (trained if missing) checkpoint
    local name=$1 model=$2
    shift 2
    local ck="$CKPT_DIR/$name.ckpt"
    if [ ! -s "$ck" ]; then
        echo "training $name ($TRAIN_ARGS $*)" >&2
        # shellcheck disable=SC2086
        "$L" train --model "$model" --data "$DATA" --out "$ck" --threads 2 $TRAIN_ARGS "$@" \
            >"$OUT/$name.train" 2>&1 || { echo "train $name failed" >&2; return 1; }
    fi
    echo "$ck"
}

say "## Integer-only inference (bench/int_bench.sh, $(date -u +%Y-%m-%d), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
say ""
say "All 10,000 Fashion-MNIST test images. agreement = equal predictions of the float QAT model and"
say "the integer model; exported C = logits of the compiled export (cc -std=c99 -pedantic -O3) equal to"
say "\`lowbit eval --integer\` for every image and class."
say ""
say "| model | bits | float QAT acc | integer acc | agreement | exported C logits | integer img/s | float QAT img/s |"
say "|---|---|---|---|---|---|---|---|"
for model in $MODELS; do
    for b in $BITS; do
        name="${model}_w${b}a${b}"
        ck=$(ckpt "$name" "$model" --quant lsq --wbits "$b" --abits "$b") || continue
        ev="$OUT/$name.eval"
        if ! "$L" eval "$ck" --data "$DATA" --integer --compare --dump-logits "$OUT/$name.int" \
            >"$ev" 2>&1; then
            say "| $model | W${b}A${b} | eval failed: $(tail -n 1 "$ev") |"
            continue
        fi
        facc=$(sed -n 's/^float: accuracy \([0-9.]*\) *\([0-9.]*\) img.*/\1/p' "$ev")
        fips=$(sed -n 's/^float: accuracy [0-9.]* *\([0-9.]*\) img.*/\1/p' "$ev")
        iacc=$(sed -n 's/^integer: accuracy \([0-9.]*\) .*/\1/p' "$ev")
        iips=$(sed -n 's/^integer: accuracy [0-9.]* *\([0-9.]*\) img.*/\1/p' "$ev")
        agr=$(sed -n 's/^agreement: \([0-9.]*\) (\([0-9]*\) of.*/\1 (\2)/p' "$ev")
        ex="$OUT/ex_$name"
        cres="export failed"
        if "$L" export "$ck" -o "$ex" --data "$DATA" >"$OUT/$name.export" 2>&1 &&
            cc -std=c99 -O3 -Wall -Wextra -Werror -pedantic "$ex/model.c" "$ex/main.c" \
                -o "$ex/model" 2>"$OUT/$name.cc"; then
            "$ex/model" "$OUT/t10k.idx" >"$OUT/$name.c.out" 2>"$OUT/$name.c.err"
            if cmp -s "$OUT/$name.c.out" "$OUT/$name.int"; then
                cres="identical ($(wc -l <"$OUT/$name.int") images)"
            else
                cres="DIFFER on $(diff "$OUT/$name.c.out" "$OUT/$name.int" | grep -c '^<') images"
            fi
        fi
        say "| $model | W${b}A${b} | $facc | $iacc | $agr | $cres | $iips | $fips |"
    done
done

# ---- Cortex-M4 (when cnn W4A4 was part of the run) ------------------------------------------
say ""
ex="$OUT/ex_cnn_w4a4"
if [ -f "$ex/model.c" ] && command -v arm-none-eabi-gcc >/dev/null &&
    arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror -pedantic -mcpu=cortex-m4 -mthumb -Os \
        -c "$ex/model.c" -o "$OUT/cnn_w4a4_m4.o"; then
    read -r text data bss _ < <(arm-none-eabi-size "$OUT/cnn_w4a4_m4.o" | tail -n 1)
    say "Exported cnn W4A4 on a Cortex-M4 (arm-none-eabi-gcc $(arm-none-eabi-gcc -dumpversion), -mcpu=cortex-m4 -mthumb -Os):"
    say "text $text, data $data, bss $bss bytes: **flash $((text + data)) bytes, RAM $((data + bss)) bytes**"
    say "(static buffers; stack not included)."
elif [ -f "$ex/model.c" ]; then
    say "Cortex-M4 build of cnn W4A4 failed (is arm-none-eabi-gcc installed? scripts/deps.sh)."
fi

# ---- speed -----------------------------------------------------------------------------------
[ "$SPEED" = 1 ] || exit 0
say ""
say "Speed, batch 128, 2 threads, forward only (images/s; the median of PyTorch's timed batches):"
say ""
say "| model | integer vnni | integer avx2 | integer scalar | lowbit FP32 | PyTorch 1.13 FP32 | integer / PyTorch |"
say "|---|---|---|---|---|---|---|"
for model in $MODELS; do
    ck4="$CKPT_DIR/${model}_w4a4.ckpt"
    [ -s "$ck4" ] || continue
    declare -A ips=()
    for impl in vnni avx2 scalar; do
        lim=10000
        [ "$impl" = scalar ] && lim=1000
        if "$L" eval "$ck4" --data "$DATA" --integer --impl "$impl" --test-limit "$lim" \
            --batch 128 --threads 2 >"$OUT/speed_$impl.txt" 2>&1; then
            ips[$impl]=$(sed -n 's/^integer: accuracy [0-9.]* *\([0-9.]*\) img.*/\1/p' \
                "$OUT/speed_$impl.txt")
        else
            ips[$impl]="n/a"
        fi
    done
    fp="n/a"
    if ckf=$(ckpt "${model}_fp32" "$model" --quant fp32 --epochs 1 --train-limit 2000) &&
        "$L" eval "$ckf" --data "$DATA" --time --batch 128 --threads 2 >"$OUT/speed_fp32.txt" 2>&1
    then
        fp=$(sed -n 's/^float: accuracy [0-9.]* *\([0-9.]*\) img.*/\1/p' "$OUT/speed_fp32.txt")
    fi
    pt=$("$PY" - "$model" <<'EOF' 2>"$OUT/torch_$model.err"
import sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)

def cbr(i, o, s=1):
    return [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

class Block(nn.Module):  # CIFAR ResNet basic block, option-A shortcut
    def __init__(self, i, o, s):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o)
        self.c2, self.b2 = nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
        self.s, self.pad = s, o - i
    def forward(self, x):
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        sc = x[:, :, ::self.s, ::self.s] if self.s > 1 else x
        if self.pad:
            sc = F.pad(sc, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(y + sc)

def resnet20():
    layers, i = cbr(1, 16), 16
    for st, w in enumerate((16, 32, 64)):
        for b in range(3):
            layers.append(Block(i, w, 2 if st > 0 and b == 0 else 1))
            i = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))

def cnn():
    return nn.Sequential(*cbr(1, 32), *cbr(32, 32), nn.MaxPool2d(2), *cbr(32, 64), *cbr(64, 64),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3136, 10))

m = (cnn if sys.argv[1] == "cnn" else resnet20)().eval()
x = torch.randn(128, 1, 28, 28)
with torch.no_grad():
    for _ in range(3):
        m(x)
    ts = []
    for _ in range(15):
        t = time.perf_counter()
        m(x)
        ts.append(time.perf_counter() - t)
ts.sort()
print(f"{128 / ts[len(ts) // 2]:.1f}")
EOF
    ) || pt="n/a"
    ratio="n/a"
    if [ "$pt" != n/a ] && [ "${ips[vnni]}" != n/a ]; then
        ratio=$(awk -v a="${ips[vnni]}" -v b="$pt" 'BEGIN { printf "%.1fx", a / b }')
    elif [ "$pt" != n/a ] && [ "${ips[avx2]}" != n/a ]; then
        ratio=$(awk -v a="${ips[avx2]}" -v b="$pt" 'BEGIN { printf "%.1fx (avx2)", a / b }')
    fi
    say "| $model W4A4 | ${ips[vnni]} | ${ips[avx2]} | ${ips[scalar]} (1000 images) | $fp | $pt | $ratio |"
    unset ips
done
say ""
say "Load average during the run: $(cut -d' ' -f1-3 /proc/loadavg) (the 2 cores are shared)."
