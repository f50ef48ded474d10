#!/usr/bin/env bash
# OpenBLAS's kernels on a CPU it does not know (docs/design.md, "Threads and BLAS"): lowbit's
# training speed with the kernels OpenBLAS picks itself (OPENBLAS_CORETYPE=<its own pick>, which
# also stops lowbit from restarting) against the default (lowbit restarts with the kernels the
# CPU can run). Alternating runs, median img/s and paired ratios, per model.
# usage: bench/blas_core/run.sh [LOWBIT] [ROUNDS]   (env: DATA, THREADS, STEPS, MODELS, QUANTS)
set -eu
L=${1:-build/release/lowbit}
R=${2:-5}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
THREADS=${THREADS:-2}
STEPS=${STEPS:-30}
MODELS=${MODELS:-cnn resnet20}
QUANTS=${QUANTS:-fp32 lsq}
own=$(env -u OPENBLAS_CORETYPE /usr/bin/python3 -c 'import ctypes, ctypes.util
b = ctypes.CDLL(ctypes.util.find_library("openblas")); b.openblas_get_corename.restype = ctypes.c_char_p
print(b.openblas_get_corename().decode())')
used=$(env -u OPENBLAS_CORETYPE OPENBLAS_VERBOSE=2 "$L" --help 2>&1 >/dev/null | sed -n 's/^Core: //p' | tail -n 1)
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ') model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')"
echo "# OpenBLAS's own pick: $own; lowbit's default: $used; threads $THREADS, $STEPS steps, $R rounds"
one() { # env-prefix model quant -> img/s
    local q=(--quant "$3")
    [ "$3" = lsq ] && q+=(--wbits 4 --abits 4)
    env $1 "$L" bench --model "$2" --batch 128 "${q[@]}" --threads "$THREADS" --steps "$STEPS" \
        --data "$DATA" 2>/dev/null | sed -n 's/^train_img_per_s: //p'
}
for m in $MODELS; do
  for q in $QUANTS; do
    a=() b=()
    for ((i = 0; i < R; i++)); do
        a+=("$(one "OPENBLAS_CORETYPE=$own" "$m" "$q")")
        b+=("$(one "-u OPENBLAS_CORETYPE" "$m" "$q")")
    done
    /usr/bin/python3 - "$m" "$q" "$own" "$used" "${a[*]}" "${b[*]}" <<'PY'
import statistics as st, sys
m, q, own, used, a, b = sys.argv[1:]
a = [float(x) for x in a.split()]; b = [float(x) for x in b.split()]
r = [y / x for x, y in zip(a, b)]
print(f"{m} {q}: {own} {st.median(a):.0f} img/s, {used} {st.median(b):.0f} img/s, "
      f"paired ratio median {st.median(r):.2f} (min {min(r):.2f}, max {max(r):.2f})")
PY
  done
done
