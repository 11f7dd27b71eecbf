#!/bin/sh
# check.sh BUILD FUZZ_BUILD FUZZ_SECONDS - everything `make check` runs:
# the unit and end-to-end tests (meson, TAP) and a 2-minute soak, the same
# again (less the soak) built with AddressSanitizer and
# UndefinedBehaviorSanitizer (any report fails), the stream decoder fuzzed
# for FUZZ_SECONDS, the RDMA messages, each codec's decoder, the return
# path's messages and the QMP parser for 15 s each, and the style checks.  Ends
# with one line "N passed, N failed, N skipped" counting every test case.
set -u
build=$1 fuzz_build=$2 fuzz_seconds=$3
cd "$(dirname "$0")/.."

# The RISC-V guest (Debian's kernel and busybox, the guest programs): the
# riscv e2e tests skip, saying why, when it cannot be had.
scripts/riscv-guest.sh || echo "check: no RISC-V guest; its tests will skip"

meson test -C "$build" --print-errorlogs --num-processes 1
tests_rc=$?

echo "== the same tests under AddressSanitizer and UndefinedBehaviorSanitizer"
san_build="$build-san"
san_rc=0
if [ ! -f "$san_build/build.ninja" ]; then
	meson setup "$san_build" -Db_sanitize=address,undefined \
		-Db_lundef=false --buildtype=debug >/dev/null || san_rc=1
fi
if [ $san_rc = 0 ]; then
	ninja -C "$san_build" >/dev/null &&
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		meson test -C "$san_build" --print-errorlogs --num-processes 1 \
			--no-suite soak --no-suite riscv-e2e \
			>"$san_build/check.log" 2>&1
	san_rc=$?
	grep -E "^ *[0-9]+/[0-9]+ " "$san_build/check.log"
	[ $san_rc = 0 ] || tail -n 40 "$san_build/check.log"
fi

echo "== fuzz: stream decoder for ${fuzz_seconds}s; rdma messages, each codec's" \
	"decoder, the return path's messages, the QMP parser and the" \
	"mapped-ram header for 15s each"
build_rc=0 fuzz_rc=1 fuzz_more=""
if [ ! -f "$fuzz_build/build.ninja" ]; then
	CC=clang meson setup "$fuzz_build" -Dfuzzing=true >/dev/null || build_rc=1
fi
[ $build_rc = 0 ] && { ninja -C "$fuzz_build" >/dev/null || build_rc=1; }
if [ $build_rc = 0 ]; then
	scripts/fuzz.sh "$build" "$fuzz_build" "$fuzz_seconds" \
		>"$fuzz_build/fuzz.log" 2>&1
	fuzz_rc=$?
	tail -n 12 "$fuzz_build/fuzz.log"
fi
for t in rdma zstd lz4 zlib xbzrle retpath qmp mapped; do
	rc=1 # a target that did not build fails
	if [ $build_rc = 0 ]; then
		scripts/fuzz.sh "$build" "$fuzz_build" 15 "$t" \
			>"$fuzz_build/fuzz-$t.log" 2>&1
		rc=$?
		tail -n 6 "$fuzz_build/fuzz-$t.log"
	fi
	fuzz_more="$fuzz_more fuzz-$t=$rc"
done

echo "== lint: clang-format and cppcheck"
scripts/lint.sh
lint_rc=$?

# shellcheck disable=SC2086 # fuzz_more is NAME=RC words
python3 scripts/summary.py "$build/meson-logs/testlog.json" \
	"asan+ubsan=$san_rc" "fuzz-stream=$fuzz_rc" $fuzz_more "lint=$lint_rc"
summary_rc=$?
[ $tests_rc = 0 ] && [ $summary_rc = 0 ]
