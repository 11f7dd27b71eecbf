#!/bin/sh
# test_symbols.sh FERRY - the ferry binary exports none of its own
# functions under another library's name.  A definition the dynamic
# symbol table carries wins over the shared library's own: ferry's
# rdma_connect once took librdmacm's place for libfabric's verbs
# provider.  Every defined dynamic symbol must be ferry's (ferry_*) or
# the toolchain's (glibc's copy-relocated NAME@GLIBC data, a sanitizer's
# runtime hooks).  Prints TAP.
ferry=$1
if ! command -v nm >/dev/null; then
	echo "1..0 # SKIP nm is not installed"
	exit 0
fi
bad=$(nm -D --defined-only "$ferry" | awk '{print $NF}' | grep -v '@' |
	grep -vE '^(ferry_|__asan_|__ubsan_|__sanitizer_|__lsan_|_init$|_fini$|_edata$|_end$|__bss_start$|_IO_stdin_used$|__data_start$|data_start$|__dso_handle$|_start$)')
if [ -z "$bad" ]; then
	echo "ok 1 - the ferry binary exports only ferry_* symbols"
	echo "1..1"
	exit 0
fi
echo "not ok 1 - the ferry binary exports other names: $(echo $bad)"
echo "1..1"
exit 1
