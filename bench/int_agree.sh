#!/usr/bin/env bash
# Integer model against the float evaluation, and exported C against the integer model, for any
# list of checkpoints (issues 11-14 "Integer" items), on all 10,000 Fashion-MNIST test images:
#   - `lowbit eval CKPT --integer --compare`: float accuracy (for reg checkpoints the snapped
#     model, docs/reg.md), integer accuracy, prediction agreement;
#   - `lowbit export CKPT` compiled with cc -std=c99 -pedantic -O3 -march=native and run on the same images: its
#     logits compared with `lowbit eval --integer --dump-logits` for every image and class.
# CHIP=MAP evaluates and exports every checkpoint for that fault map (docs/faults.md). N=...
# limits the images (default 0: all); CN=... the exported C's share of them (default: the same;
# the scalar C runs a resnet20 at ~30 images/s). int_bench.sh is the LSQ-only version with speed figures.
# Prints a markdown table, also OUT/summary.md; exit 1 when any row fails or differs.
# Usage: bench/int_agree.sh [-l path/to/lowbit] [-o OUT] CKPT...
set -u
L=build/release/lowbit
OUT=build/int_agree
while getopts "l:o:" o; do
    case $o in
    l) L=$OPTARG ;;
    o) OUT=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { sed -n '2,11p' "$0"; exit 2; }
DATA=${LOWBIT_DATA:-/usr/share/datasets/fashion-mnist}
N=${N:-0}
CHIP=${CHIP:-}
[ -x "$L" ] || { echo "int_agree: $L not found (make cli)"; exit 1; }
mkdir -p "$OUT" || exit 1
gunzip -c "$DATA/t10k-images-idx3-ubyte.gz" >"$OUT/t10k.idx" || exit 1
lim=()
[ "$N" != 0 ] && lim=(--test-limit "$N")
chip=()
[ -n "$CHIP" ] && chip=(--chip "$CHIP")
S="$OUT/summary.md"
{
    echo "| checkpoint | float acc | integer acc | agreement | exported C logits |"
    echo "|---|---|---|---|---|"
} | tee "$S"
rc=0
for ck in "$@"; do
    name=$(basename "$ck" .safetensors)
    ev="$OUT/$name.eval"
    if ! "$L" eval "$ck" --data "$DATA" --integer --compare "${chip[@]}" "${lim[@]}" \
        --dump-logits "$OUT/$name.int" >"$ev" 2>&1; then
        echo "| $name | eval failed: $(tail -n 1 "$ev") | | | |" | tee -a "$S"
        rc=1
        continue
    fi
    facc=$(sed -n 's/^float: accuracy \([0-9.]*\).*/\1/p' "$ev")
    iacc=$(sed -n 's/^integer: accuracy \([0-9.]*\).*/\1/p' "$ev")
    agr=$(sed -n 's/^agreement: \([0-9.]*\) (\([0-9]*\) of.*/\1 (\2)/p' "$ev")
    ex="$OUT/ex_$name"
    cres="export failed"
    if "$L" export "$ck" -o "$ex" --data "$DATA" "${chip[@]}" >"$OUT/$name.export" 2>&1 &&
        cc -std=c99 -O3 -march=native -Wall -Wextra -Werror -pedantic "$ex/model.c" "$ex/main.c" \
            -o "$ex/model" 2>"$OUT/$name.cc"; then
        # main.c reads the whole idx file; keep the first N lines when limited
        cn=${CN:-$N}
        [ "$cn" = 0 ] && cn=$(wc -l <"$OUT/$name.int")
        "$ex/model" "$OUT/t10k.idx" "$cn" 2>"$OUT/$name.c.err" >"$OUT/$name.c.out"
        head -n "$cn" "$OUT/$name.int" >"$OUT/$name.int.c"
        if cmp -s "$OUT/$name.c.out" "$OUT/$name.int.c"; then
            cres="identical ($cn images)"
        else
            cres="DIFFER on $(diff "$OUT/$name.c.out" "$OUT/$name.int.c" | grep -c '^<') images"
            rc=1
        fi
    else
        rc=1
    fi
    echo "| $name | $facc | $iacc | $agr | $cres |" | tee -a "$S"
done
exit $rc
