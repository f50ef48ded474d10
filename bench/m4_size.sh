#!/usr/bin/env bash
# Flash and RAM of an exported model on a Cortex-M4 (issue 13's "Cortex-M4 flash/RAM of the
# exported mobilenetv2 W4A4"; any model): trains a few steps on Fashion-MNIST (sizes depend on the
# architecture and the bits, not on the weights' values), exports it, compiles the exported C with
# arm-none-eabi-gcc -std=c99 -mcpu=cortex-m4 -mthumb -Os and reads arm-none-eabi-size: flash =
# text + data, RAM = data + bss (static buffers; the stack is not included). Also lowbit info's
# weight_bytes / activation_bytes. Prints one markdown row per configuration.
# usage: bench/m4_size.sh [LOWBIT] -- TRAIN_OPTIONS [-- TRAIN_OPTIONS ...]
#   e.g. bench/m4_size.sh build/release/lowbit -- --model mobilenetv2 --quant lsq \
#        -- --model mobilenetv2 --quant lsq --po2 --per-channel
set -u -o pipefail
L=build/release/lowbit
if [ $# -ge 1 ] && [ "$1" != -- ]; then L=$1; shift; fi
[ $# -ge 2 ] && [ "$1" = -- ] || { sed -n 2,10p "$0"; exit 2; }
command -v arm-none-eabi-gcc >/dev/null || { echo "m4_size: arm-none-eabi-gcc missing (scripts/deps.sh)"; exit 1; }
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| configuration | weight_bytes | activation_bytes | text | data | bss | flash | RAM |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
shift
i=0
while [ $# -gt 0 ]; do
    opts=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    [ $# -gt 0 ] && shift
    i=$((i + 1))
    ck="$tmp/m$i.st"
    if ! "$L" train "${opts[@]}" --data "$DATA" --epochs 1 --train-limit 256 --test-limit 64 \
        --batch 32 --out "$ck" >"$tmp/train$i.log" 2>&1; then
        echo "| ${opts[*]} | train failed: $(tail -1 "$tmp/train$i.log") |"
        continue
    fi
    wb=$("$L" info "$ck" | sed -n 's/^weight_bytes: //p')
    ab=$("$L" info "$ck" | sed -n 's/^activation_bytes: //p')
    if "$L" export "$ck" -o "$tmp/ex$i" --data "$DATA" >"$tmp/export$i.log" 2>&1 &&
        arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror -pedantic -mcpu=cortex-m4 -mthumb -Os \
            -c "$tmp/ex$i/model.c" -o "$tmp/m$i.o" 2>"$tmp/cc$i.log"; then
        read -r text data bss _ < <(arm-none-eabi-size "$tmp/m$i.o" | tail -n 1)
        echo "| ${opts[*]} | $wb | $ab | $text | $data | $bss | **$((text + data))** | **$((data + bss))** |"
    else
        echo "| ${opts[*]} | $wb | $ab | export or compile failed: $(tail -1 "$tmp/export$i.log" "$tmp/cc$i.log" | tr '\n' ' ') |"
    fi
done
echo
echo "arm-none-eabi-gcc $(arm-none-eabi-gcc -dumpversion), -mcpu=cortex-m4 -mthumb -Os; flash = text + data, RAM = data + bss (static; stack not included)"
