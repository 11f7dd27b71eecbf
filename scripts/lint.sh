#!/bin/sh
# lint.sh - the style checks that make check runs: clang-format (the
# checked-in .clang-format) and cppcheck.  Fix formatting with
#   clang-format -i $(git ls-files '*.c' '*.h')
set -u
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src include tests bench -name '*.[ch]')
status=0
if ! clang-format --dry-run --Werror $files 2>/tmp/ferry-format.$$; then
	head -40 /tmp/ferry-format.$$
	echo "lint: clang-format: the files above differ from .clang-format"
	status=1
fi
rm -f /tmp/ferry-format.$$
if ! cppcheck -q --error-exitcode=1 --enable=warning,portability \
	--std=c11 --inline-suppr -D__GNUC__ -Iinclude -Isrc/common \
	-Isrc/vm -Isrc/machine/reference -Isrc/workload src; then
	echo "lint: cppcheck found problems"
	status=1
fi
exit $status
