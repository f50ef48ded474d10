#!/usr/bin/env bash
# The whole test suite: deps, release build, PyTorch reference values, unit and end-to-end tests,
# CLI error tests, then the same unit tests again under ASan+UBSan. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
bash scripts/deps.sh || { echo "deps failed"; exit 1; }
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs" all >build.log 2>&1 || { tail -40 build.log; echo "build failed"; exit 1; }
make -j"$jobs" asan >>build.log 2>&1 || { tail -40 build.log; echo "asan build failed"; exit 1; }
# clang must compile everything -Werror clean too (its binaries are not run again)
make -j"$jobs" CC=clang BUILD=build/clang all >>build.log 2>&1 || { tail -40 build.log; echo "clang build failed"; exit 1; }
export LOWBIT_REFS=build/refs
mkdir -p "$LOWBIT_REFS"
/usr/bin/python3 tests/torch/gen_refs.py "$LOWBIT_REFS" >build/refs.log 2>&1 ||
    { cat build/refs.log; echo "reference generation failed"; exit 1; }

pass=0 fail=0
tally() { # reads a test's output, adds its "N passed, N failed" lines
    local out="$1" rc="$2" name="$3" p f
    p=$(grep -oE '[0-9]+ passed' <<<"$out" | awk '{s+=$1} END {print s+0}')
    f=$(grep -oE '[0-9]+ failed' <<<"$out" | awk '{s+=$1} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL $name exited $rc"; fi
    pass=$((pass + p)) fail=$((fail + f))
}
is_test() { [[ "$1" != *.* && -x "$1" ]]; } # the binaries, not their .o/.d
run() { # name, command...
    local name="$1"; shift
    local t0=$SECONDS out rc
    out=$("$@" 2>&1); rc=$?
    # Sanitizer reports (ERROR, SUMMARY) and the fuzzers' reproducers too: CI keeps only this.
    printf '%s\n' "$out" | grep -E 'FAIL|passed|error|ERROR|SUMMARY|reproducer' | tail -20
    echo "  ($name: $((SECONDS - t0)) s)"
    tally "$out" "$rc" "$name"
}
# Two streams run side by side: the serial suite kept the 2 cores only ~75% busy (single-threaded
# scripts, Python, compiles), so the sanitizer stream overlaps the release one. Every test works in
# its own mktemp directory; the fuzzers in build/fuzz run in only one stream. Two 2-thread
# processes share 2 cores, so OpenMP's idle threads must sleep, not spin: with the default policy
# the suite burnt 480 s more CPU than run serially and gained nothing (measured 2026-12-05: two
# scripts side by side 99 s with spinning, 79 s passive, 95 s one after the other).
export OMP_WAIT_POLICY=passive
release_stream() {
    for t in build/release/tests/test_*; do is_test "$t" && run "$(basename "$t")" "$t"; done
    for t in tests/cli/*.sh; do [ -f "$t" ] && run "$(basename "$t")" bash "$t" build/release/lowbit; done
    # Fuzzing: 10 s a parser in the suite (its 20-minute budget on 2 cores; scripts/fuzz.sh alone
    # defaults to 20 s, FUZZ_SECONDS=600 for a real campaign)
    run fuzz.sh env FUZZ_SECONDS="${FUZZ_SECONDS:-10}" bash scripts/fuzz.sh
}
# Sanitizers: the same unit tests (long end-to-end training is shortened by LOWBIT_QUICK).
asan_stream() {
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1
    for t in build/asan/tests/test_*; do is_test "$t" && LOWBIT_QUICK=1 run "asan $(basename "$t")" "$t"; done
    for t in tests/cli/*.sh; do [ -f "$t" ] && run "asan $(basename "$t")" bash "$t" build/asan/lowbit; done
    echo "stream-tally $pass $fail"
}
t0=$SECONDS
asan_log=build/suite-asan.log
asan_stream >"$asan_log" 2>&1 &
asan_pid=$!
release_stream
wait "$asan_pid"
grep -v '^stream-tally ' "$asan_log"
if tl=$(grep '^stream-tally ' "$asan_log"); then
    read -r _ ap af <<<"$tl"
else
    echo "FAIL the sanitizer stream ended without its tally ($asan_log)"
    ap=0 af=1
fi
pass=$((pass + ap)) fail=$((fail + af))
echo "  (tests: $((SECONDS - t0)) s)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
