# Shared by the CLI test scripts (sourced; the suite runs tests/cli/*.sh, not this file): a
# temporary directory $T removed on exit, the pass/fail tally with its closing line
# "<script>: N passed, N failed" (the suite's format), and expect_fail.
# Usage, at the top of a script: . "$(dirname "$0")/common.bash"
NAME=$(basename "$0")
T=$(mktemp -d "${TMPDIR:-/tmp}/lowbit_${NAME%.sh}.XXXXXX") || exit 1
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { # name, why, [file to show]
    fail=$((fail + 1))
    echo "FAIL $1: $2"
    [ -n "${3:-}" ] && [ -f "$3" ] && sed 's/^/    /' "$3" | tail -5
}
finish() {
    echo "$NAME: $pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit
}
# The command must exit non-zero with the pattern in its stderr.
expect_fail() { # name, pattern in stderr, command...
    local name=$1 pat=$2
    shift 2
    "$@" >"$T/err.out" 2>"$T/err.txt"
    local rc=$?
    if [ "$rc" -ne 0 ] && grep -q -- "$pat" "$T/err.txt"; then ok; else
        bad "$name" "exit $rc, want non-zero and '$pat'" "$T/err.txt"
    fi
}
