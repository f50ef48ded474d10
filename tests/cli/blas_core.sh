#!/usr/bin/env bash
# The CLI's choice of OpenBLAS kernels (docs/design.md, "Threads and BLAS"): a CPU OpenBLAS does
# not know gets its SSE3 "Prescott" kernels; lowbit then starts itself again with
# OPENBLAS_CORETYPE set to the kernels the CPU can run. A user's OPENBLAS_CORETYPE is kept, and a
# known core is left alone. Read through OPENBLAS_VERBOSE=2, which makes OpenBLAS print "Core: X"
# as it loads. Usage: blas_core.sh path/to/lowbit. Skips (passes, says so) without OpenBLAS.
set -u
L=${1:?usage: blas_core.sh path/to/lowbit}
. "$(dirname "$0")/common.bash"

if ! ldd "$L" 2>/dev/null | grep -q libopenblas; then
    echo "$NAME: lowbit is not linked with OpenBLAS: nothing to check"
    finish
fi
slow='^(Katmai|Coppermine|Northwood|Prescott|Banias|Core2|Penryn|Dunnington|Nehalem|Atom|Sandybridge|Unknown)$'

# a user's choice stands: one load, the forced core, and the command still works
OPENBLAS_VERBOSE=2 OPENBLAS_CORETYPE=Prescott "$L" --help >"$T/out" 2>"$T/err"
rc=$?
n=$(grep -c '^Core: ' "$T/err")
if [ "$rc" -eq 0 ] && [ "$n" -eq 1 ] && grep -q '^Core: Prescott$' "$T/err" &&
    grep -q '^usage: lowbit' "$T/out"; then ok; else
    bad "forced core kept" "exit $rc, $n 'Core:' lines, want 1 'Core: Prescott'" "$T/err"
fi

# left to itself: the core in force at the end is not a fallback on a CPU with AVX2 and FMA
OPENBLAS_VERBOSE=2 "$L" --help >"$T/out" 2>"$T/err"
rc=$?
first=$(grep '^Core: ' "$T/err" | head -n 1 | cut -d' ' -f2)
last=$(grep '^Core: ' "$T/err" | tail -n 1 | cut -d' ' -f2)
n=$(grep -c '^Core: ' "$T/err")
if [ "$rc" -ne 0 ] || ! grep -q '^usage: lowbit' "$T/out"; then
    bad "default" "exit $rc" "$T/err"
elif grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && [[ "$last" =~ $slow ]]; then
    bad "default" "the kernels in force are '$last' on a CPU with AVX2" "$T/err"
elif ! [[ "$first" =~ $slow ]] && [ "$n" -ne 1 ]; then
    bad "default" "OpenBLAS knew this CPU ('$first') and lowbit still restarted ($n loads)" "$T/err"
else
    ok
    echo "$NAME: OpenBLAS chose '$first'; in force: '$last' ($n load(s))"
fi

# a real command through the restart: training still runs and its output is whole
"$L" train --model cnn --epochs 1 --train-limit 256 --test-limit 128 --batch 64 \
    --out "$T/a.safetensors" >"$T/out" 2>"$T/err"
rc=$?
if [ "$rc" -eq 0 ] && grep -q '^accuracy: ' "$T/out" && [ "$(grep -c '^schedule: ' "$T/err")" -eq 1 ]
then ok; else bad "train through the restart" "exit $rc" "$T/err"; fi
finish
