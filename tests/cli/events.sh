#!/usr/bin/env bash
# `lowbit events`: emulate writes the first images of Fashion-MNIST as event folders in the
# N-MNIST and CIFAR10-DVS layouts (the same bytes on a second run with the same seed), info reads
# the files; then every bad input (wrong header, truncated record, coordinates outside the sensor,
# an empty file, a missing folder or file, an existing output): non-zero exit below 128, one
# stderr line naming the file and the problem, no sanitizer report. Usage: events.sh
# path/to/lowbit. Not the reader unit tests (tests/test_events.c).
set -u
L=${1:?usage: events.sh path/to/lowbit}
FM=/usr/share/datasets/fashion-mnist
T=$(mktemp -d "${TMPDIR:-/tmp}/lowbit_events.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
n=20
if [ "${LOWBIT_QUICK:-0}" = 1 ] || grep -qa '__asan_init' "$L"; then n=6; fi
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() {
    fail=$((fail + 1))
    echo "FAIL $1: $2"
    [ -f "$T/err" ] && sed 's/^/    stderr: /' "$T/err" | head -5
}
expect_error() { # name, what (fixed string), cmd...
    local name=$1 what=$2 rc
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if grep -qE 'Sanitizer|runtime error' "$T/err"; then
        bad "$name" "sanitizer report"
    elif [ "$rc" -eq 0 ] || [ "$rc" -ge 128 ]; then
        bad "$name" "exit $rc"
    elif [ "$(awk 'END { print NR }' "$T/err")" -ne 1 ] || ! grep -qF -- "$what" "$T/err"; then
        bad "$name" "expected one line naming '$what'"
    else
        ok
    fi
}
run_ok() { # name, cmd...
    local name=$1
    shift
    if "$@" >"$T/out" 2>"$T/err" && ! grep -qE 'Sanitizer|runtime error' "$T/err"; then ok; else bad "$name" "exit $?"; fi
}

run_ok "emulate bin" "$L" events emulate --data "$FM" --out "$T/nm" --limit "$n" --seed 3
nbin=$(find "$T/nm" -name '*.bin' | wc -l)
[ "$nbin" -eq $((2 * n)) ] && [ -d "$T/nm/Train/9" ] && [ -d "$T/nm/Test" ] && ! [ -e "$T/nm.tmp" ] &&
    ok || bad "N-MNIST layout" "$nbin files"
grep -q "emulate: $((2 * n))/$((2 * n)) images" "$T/err" && ok || bad "progress line" "no count"
run_ok "emulate again" "$L" events emulate --data "$FM" --out "$T/nm2" --limit "$n" --seed 3
diff -r "$T/nm" "$T/nm2" >/dev/null && ok || bad "deterministic" "trees differ"
run_ok "emulate aedat" "$L" events emulate --data "$FM" --out "$T/cd" --limit "$n" --format aedat
naedat=$(find "$T/cd" -mindepth 2 -maxdepth 2 -name '*.aedat' | wc -l)
[ "$naedat" -eq $((2 * n)) ] && ok || bad "CIFAR10-DVS layout" "$naedat files"

b=$(find "$T/nm/Train" -name '*.bin' | sort | head -1)
a=$(find "$T/cd" -name '*.aedat' | sort | head -1)
run_ok "info bin" "$L" events info "$b"
grep -q "format:    N-MNIST" "$T/out" && grep -qE "events: +[1-9]" "$T/out" && ok ||
    bad "info bin output" "$(head -3 "$T/out")"
run_ok "info aedat" "$L" events info "$a" --sensor 34x34
grep -q "AEDAT 2.0" "$T/out" && ok || bad "info aedat output" "$(head -3 "$T/out")"

# bad files
sz=$(stat -c %s "$b")
head -c $((sz - 2)) "$b" >"$T/trunc.bin"
expect_error "truncated record" "trunc.bin: $((sz - 2)) bytes is not a whole number" \
    "$L" events info "$T/trunc.bin"
printf '#!AER-DAT3.1\r\n' | cat - <(tail -c +15 "$a") >"$T/hdr.aedat"
expect_error "wrong header" "hdr.aedat: not an AEDAT 2.0 file" "$L" events info "$T/hdr.aedat"
tail -c +40 "$a" >"$T/nohdr.aedat"
expect_error "missing header" "nohdr.aedat: not an AEDAT 2.0 file" "$L" events info "$T/nohdr.aedat"
expect_error "outside the sensor" "outside the 20x20 sensor" "$L" events info "$b" --sensor 20x20
printf '\x30\x05\x00\x00\x10' >"$T/x.bin" # x 48 of a 34x34 sensor
expect_error "outside N-MNIST's sensor" "x.bin: byte 0 (event 0): pixel (48, 5) outside" \
    "$L" events info "$T/x.bin" --sensor 34x34
: >"$T/empty.bin"
expect_error "empty file" "empty.bin: empty event file" "$L" events info "$T/empty.bin"
expect_error "missing file" "$T/none.bin: cannot open" "$L" events info "$T/none.bin"
expect_error "missing data folder" "$T/nodata" "$L" events emulate --data "$T/nodata" --out "$T/o"
expect_error "existing output" "$T/nm: already exists" \
    "$L" events emulate --data "$FM" --out "$T/nm" --limit 1
expect_error "unknown format" "--format takes bin or aedat" \
    "$L" events emulate --data "$FM" --out "$T/o" --format png
expect_error "unknown subcommand" "unknown subcommand 'frob'" "$L" events frob
! [ -e "$T/o" ] && ! [ -e "$T/o.tmp" ] && ok || bad "nothing written on failure" "$T/o exists"
"$L" events --help >"$T/out" 2>"$T/err" && grep -q usage "$T/out" && ok || bad "--help" "exit/output"

echo "events.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
