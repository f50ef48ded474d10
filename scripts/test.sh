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

# The jobs, one line each: "name<TAB>command". Two workers take them in this order, each the next
# one free, so the longest go first and the short ones fill the ends: the sanitizer runs of the
# CLI scripts (15x slower than release), the fuzzers, the sanitizer unit tests, then the release
# jobs. Two fixed streams (release | sanitizers) left one core idle for the last ~300 s (measured
# 2026-12-06: sanitizer stream 1,000 s, release stream 680 s).
# Sanitizers: the same unit tests (long end-to-end training is shortened by LOWBIT_QUICK).
SAN="ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1"
jobs_list() {
    local t
    for t in tests/cli/*.sh; do [ -f "$t" ] && printf 'asan %s\t%s bash %s build/asan/lowbit\n' "${t##*/}" "$SAN" "$t"; done
    # Fuzzing: 10 s a parser in the suite (its 20-minute budget on 2 cores; scripts/fuzz.sh alone
    # defaults to 20 s, FUZZ_SECONDS=600 for a real campaign). The fuzzers in build/fuzz are one job.
    printf 'fuzz.sh\tFUZZ_SECONDS=%s bash scripts/fuzz.sh\n' "${FUZZ_SECONDS:-10}"
    for t in build/asan/tests/test_*; do is_test "$t" && printf 'asan %s\t%s LOWBIT_QUICK=1 %s\n' "${t##*/}" "$SAN" "$t"; done
    for t in tests/cli/*.sh; do [ -f "$t" ] && printf '%s\tbash %s build/release/lowbit\n' "${t##*/}" "$t"; done
    for t in build/release/tests/test_*; do is_test "$t" && printf '%s\t%s\n' "${t##*/}" "$t"; done
}
Q=build/suite
rm -rf "$Q" && mkdir -p "$Q"
jobs_list >"$Q/jobs"
echo 0 >"$Q/next"
njobs=$(wc -l <"$Q/jobs")
# Two 2-thread processes share 2 cores, so OpenMP's idle threads must sleep, not spin: with the
# default policy the suite burnt 480 s more CPU than run serially and gained nothing (measured
# 2026-12-05: two scripts side by side 99 s with spinning, 79 s passive, 95 s one after the other).
export OMP_WAIT_POLICY=passive
worker() { # takes the next job until none is left; job i leaves $Q/i.out and $Q/i.rc ("rc seconds")
    local i line cmd t0 rc
    while :; do
        i=$(flock "$Q/next" bash -c 'i=$(cat "$1"); echo $((i + 1)) >"$1"; echo "$i"' _ "$Q/next")
        [ "$i" -lt "$njobs" ] || return 0
        line=$(sed -n "$((i + 1))p" "$Q/jobs")
        cmd=${line#*$'\t'}
        t0=$SECONDS
        (eval "$cmd") >"$Q/$i.out" 2>&1 </dev/null
        rc=$?
        echo "$rc $((SECONDS - t0))" >"$Q/$i.rc"
    done
}
t0=$SECONDS
worker & w1=$!
worker & w2=$!
wait "$w1" "$w2"
# Reported in the list's order, whichever worker ran it, as the serial suite did.
i=0
while IFS=$'\t' read -r name _; do
    if [ -f "$Q/$i.rc" ]; then
        read -r rc secs <"$Q/$i.rc"
        out=$(cat "$Q/$i.out")
    else
        rc=1 secs=0 out="FAIL $name: never ran (a worker died)"
    fi
    # Sanitizer reports (ERROR, SUMMARY) and the fuzzers' reproducers too: CI keeps only this.
    printf '%s\n' "$out" | grep -E 'FAIL|passed|error|ERROR|SUMMARY|reproducer' | tail -20
    echo "  ($name: $secs s)"
    tally "$out" "$rc" "$name"
    i=$((i + 1))
done <"$Q/jobs"
echo "  (tests: $((SECONDS - t0)) s)"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
