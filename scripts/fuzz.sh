#!/usr/bin/env bash
# Builds every fuzz/fuzz_<name>.c as a libFuzzer binary (clang -fsanitize=fuzzer,address,
# undefined) in build/fuzz and runs each for a bounded time on a temporary copy of its corpus
# fuzz/corpus/<name>/ (the repository is never modified). A target that crashes, leaks, trips a
# sanitizer or an invariant (__builtin_trap/abort) fails; its reproducer is copied to
# build/fuzz/crashes/ with its log. A failure that leaves no reproducer (the fuzzer did not run)
# is retried once. Ends with "fuzz.sh: N passed, N failed" and exits non-zero on a failure.
# FUZZ_ONLY="config idx" runs only those targets. FUZZ_SECONDS (default 20) bounds each target's run; the event-file targets (fuzz_events_*: flat
# records, no compression or nesting, so a few seconds reach their branches) get a quarter of it.
# Installs clang and libFuzzer (Debian: clang, libclang-rt-14-dev) with apt when they are missing. Not the unit tests (scripts/test.sh).
set -u
cd "$(dirname "$0")/.."
secs=${FUZZ_SECONDS:-20}
out=build/fuzz
CC=${FUZZ_CC:-clang}
# UBSan recovers by default, which libFuzzer would not count as a crash: make every report fatal.
FLAGS=(-g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
    -fno-sanitize-recover=all -fno-omit-frame-pointer -Iinclude
    -DLB_FMAX_WEIGHTS=1048576) # fault maps: keep what a text map may allocate inside -rss_limit_mb
LIBS=(-lpng -ljpeg -lz -lcjson -lprotobuf-c -lm -lpthread)

can_build() { # clang present and its libFuzzer runtime links
    command -v "$CC" >/dev/null 2>&1 || return 1
    printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' |
        "$CC" -x c -fsanitize=fuzzer,address,undefined - -o "$out/.probe" >/dev/null 2>&1
}

mkdir -p "$out/crashes"
if ! can_build; then
    echo "fuzz.sh: installing clang and libFuzzer (clang, libclang-rt-14-dev)"
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq &&
        $sudo apt-get install -y -qq --no-install-recommends clang libclang-rt-14-dev \
            zlib1g-dev libcjson-dev libpng-dev libjpeg62-turbo-dev \
            libprotobuf-c-dev protobuf-c-compiler libonnx-dev >/dev/null
    if ! can_build; then
        echo "FAIL cannot build libFuzzer targets with $CC (clang + libclang-rt-14-dev needed)"
        echo "fuzz.sh: 0 passed, 1 failed"
        exit 1
    fi
fi
rm -f "$out/.probe"

# The parsers and what they use: core, data, ckpt, the fault-map files, the ONNX reader with the
# C protoc-c generates for onnx.proto (as the Makefile does; no OpenMP, no BLAS), and the CLI's
# check of a Pareto results JSON.
mkdir -p "$out/gen"
protoc-c --c_out="$out/gen" -I/usr/include/onnx onnx.proto ||
    echo "  protoc-c failed (protobuf-c-compiler, libonnx-dev): fuzz_onnx will not build"
FLAGS+=(-I"$out/gen")
SRC=(src/core/*.c src/data/*.c src/ckpt/*.c src/faults/fmap*.c src/interop/onnx_[fmprs]*.c
    "$out/gen/onnx.pb-c.c" tools/pareto_check.c)
FLAGS+=(-Itools) # the CLI-side check of `plot pareto`
# Targets whose parser sits on top of the library (the checkpoint configuration JSON needs the
# quantizer, model and schedule names of most modules) link the whole library, built here once
# with the same instrumentation (make, build/fuzz/lib).
WHOLE=" config "
whole_lib=build/fuzz/lib/liblowbit.a
if ! make -s -j"$(nproc)" CC="$CC" BUILD=build/fuzz/lib OPT=-O1 \
    SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
    "$whole_lib" >build/fuzz/lib.log 2>&1; then
    echo "  the instrumented library does not build (build/fuzz/lib.log): targets$WHOLE will fail"
    tail -5 build/fuzz/lib.log
fi
BLAS_LIB=$(pkg-config --libs openblas 2>/dev/null || echo -lcblas)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/lowbit_fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fuzz_once() { # the current target ($bin, $name) for $tsecs seconds, its log in $tmp/$name.log
    "$bin" -max_total_time="$tsecs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$tmp/art/$name/" "$tmp/corpus/$name" >"$tmp/$name.log" 2>&1
}
pass=0 fail=0
for f in fuzz/fuzz_*.c; do
    [ -f "$f" ] || continue
    target=$(basename "$f" .c)
    name=${target#fuzz_}
    [ -z "${FUZZ_ONLY:-}" ] || [[ " $FUZZ_ONLY " == *" $name "* ]] || continue
    bin="$out/$target"
    if [[ "$WHOLE" == *" $name "* ]]; then
        src=(-Isrc/train "$whole_lib" $BLAS_LIB -fopenmp)
    else
        src=("${SRC[@]}")
    fi
    if ! "$CC" "${FLAGS[@]}" "$f" "${src[@]}" "${LIBS[@]}" -o "$bin" 2>"$tmp/$name.build"; then
        echo "FAIL $target: does not build"
        tail -20 "$tmp/$name.build"
        fail=$((fail + 1))
        continue
    fi
    mkdir -p "$tmp/corpus/$name" "$tmp/art/$name"
    if [ -d "fuzz/corpus/$name" ]; then
        cp -R "fuzz/corpus/$name/." "$tmp/corpus/$name/"
    else
        echo "  $target: no fuzz/corpus/$name, starting from nothing"
    fi
    t0=$SECONDS
    tsecs=$secs
    case $name in events_*) tsecs=$(((secs + 3) / 4)) ;; esac
    fuzz_once
    rc=$?
    # libFuzzer writes a reproducer for every crash, sanitizer report and leak it finds in the
    # parser. A failure without one is the fuzzer not running (a sanitizer run-time that cannot
    # start or stop the world, seen once in CI as "exit 1 after 0 s"): say so and try once more;
    # a second such failure fails.
    if [ "$rc" -ne 0 ] && [ -z "$(ls -A "$tmp/art/$name")" ]; then
        echo "  $target: exit $rc after $((SECONDS - t0)) s with no reproducer; its log ends:"
        tail -4 "$tmp/$name.log" | sed 's/^/    /'
        echo "  $target: running it once more"
        t0=$SECONDS
        fuzz_once
        rc=$?
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$tmp/$name.log" | grep -oE '[0-9]+$')
    if [ "$rc" -eq 0 ]; then
        echo "  $target: ${runs:-?} inputs in $((SECONDS - t0)) s, no crash"
        pass=$((pass + 1))
    else
        echo "FAIL $target: exit $rc after $((SECONDS - t0)) s (log: $out/crashes/$name.log)"
        cp "$tmp/$name.log" "$out/crashes/$name.log"
        # The sanitizer's report; where there is none (a start-up failure, an exit), the log's end.
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written|==[0-9]+==' "$tmp/$name.log" | head -12 |
            grep . || tail -8 "$tmp/$name.log"
        for a in "$tmp/art/$name"/*; do
            [ -f "$a" ] || continue
            cp "$a" "$out/crashes/$name-$(basename "$a")"
            echo "  reproducer: $out/crashes/$name-$(basename "$a") (run: $bin <file>)"
            # Does it fail again alone? A reproducer that does not points at the environment
            # (memory, start-up) rather than the parser.
            if "$bin" "$a" >"$tmp/$name.rerun" 2>&1; then
                echo "  the reproducer passes when rerun alone"
            else
                echo "  the reproducer fails again alone:"
                grep -E 'ERROR|SUMMARY|runtime error' "$tmp/$name.rerun" | head -4
            fi
        done
        fail=$((fail + 1))
    fi
done
echo "fuzz.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
