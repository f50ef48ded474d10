#!/usr/bin/env bash
# Step cost of every quantizer kind against FP32 on resnet20 (issues 13, 14): `lowbit bench`, batch
# 128, 2 threads, 8 timed steps after 3 warm-up, the kinds alternating within each of ROUNDS (3)
# rounds. Prints "round kind step_ms". Run it on an idle machine. Usage: bash bench/quant_cost.sh
# With BEFORE=path/to/an/older/lowbit each kind also runs on that binary right after the current
# one (lines "round kind@before step_ms"): before/after pairs under the same load.
# KINDS picks the kinds (default: all below); msqe-po2-act is --quant msqe-po2 --aquant msqe-po2
# (the exponent searched on the activations too, --quant msqe-po2's meaning before 2026-12-05).
L=${LOWBIT:-build/release/lowbit}
for r in $(seq 1 "${ROUNDS:-3}"); do
  for q in ${KINDS:-none lsq msqe-po2 msqe-po2-act grad-po2 roundclip sliced dorefa}; do
    case $q in
      none) o="" ;;
      msqe-po2-act) o="--quant msqe-po2 --aquant msqe-po2" ;;
      *) o="--quant $q" ;;
    esac
    for b in "$L" ${BEFORE:+"$BEFORE"}; do
      v=$($b bench --model resnet20 --batch 128 --threads 2 --steps 8 --warmup 3 $o 2>&1 | sed -n 's/^step_ms: \([0-9.]*\).*/\1/p')
      if [ "$b" = "$L" ]; then echo "$r $q $v"; else echo "$r $q@before $v"; fi
    done
  done
done
