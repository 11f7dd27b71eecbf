#!/bin/sh
# check.sh BUILD FUZZ_BUILD FUZZ_SECONDS - everything `make check` runs:
# the unit and end-to-end tests (meson, TAP), the stream decoder fuzzed
# for FUZZ_SECONDS, and the style checks.  Ends with one line
# "N passed, N failed, N skipped" counting every test case.
set -u
build=$1 fuzz_build=$2 fuzz_seconds=$3
cd "$(dirname "$0")/.."

meson test -C "$build" --print-errorlogs --num-processes 1
tests_rc=$?

echo "== fuzz: stream decoder for ${fuzz_seconds}s"
fuzz_rc=0
if [ ! -f "$fuzz_build/build.ninja" ]; then
	CC=clang meson setup "$fuzz_build" -Dfuzzing=true >/dev/null || fuzz_rc=1
fi
if [ $fuzz_rc = 0 ]; then
	ninja -C "$fuzz_build" >/dev/null &&
		scripts/fuzz.sh "$build" "$fuzz_build" "$fuzz_seconds" \
			>"$fuzz_build/fuzz.log" 2>&1
	fuzz_rc=$?
	tail -n 12 "$fuzz_build/fuzz.log"
fi

echo "== lint: clang-format and cppcheck"
scripts/lint.sh
lint_rc=$?

python3 scripts/summary.py "$build/meson-logs/testlog.json" \
	"fuzz-stream=$fuzz_rc" "lint=$lint_rc"
summary_rc=$?
[ $tests_rc = 0 ] && [ $summary_rc = 0 ]
