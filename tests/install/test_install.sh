#!/bin/sh
# test_install.sh BUILD SOURCE VERSION - libferry as another VMM gets it:
# `meson install --destdir` of the build, then, from that tree alone, the
# library's SONAME and exported symbols against the installed headers,
# each header on its own, ferry.pc, the man page, and examples/minivmm
# built with pkg-config (shared and static) and migrated live between two
# copies of itself, verified by both the engine's digest and the guest's
# own replay of what it did.  Prints TAP.
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd) version=$3
work="$build/install-test"
root="$work/root"
n=0 failed=0

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
	n=$((n + 1)) failed=1
	echo "not ok $n - $1"
	[ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/# /'
}
check() { # check NAME COMMAND...: ok when COMMAND succeeds
	name=$1
	shift
	if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi
}
finish() {
	echo "1..$n"
	exit $failed
}

rm -rf "$work"
mkdir -p "$work"
if ! out=$(meson install -C "$build" --destdir "$root" --no-rebuild \
	--quiet 2>&1); then
	not_ok "meson install --destdir" "$out"
	finish
fi
ok "meson install --destdir"

pc=$(find "$root" -name ferry.pc | head -n 1)
inc=$(find "$root" -type d -path '*/include/ferry' | head -n 1)
if [ -z "$pc" ] || [ -z "$inc" ]; then
	not_ok "ferry.pc and include/ferry installed" "pc='$pc' inc='$inc'"
	finish
fi
libdir=$(dirname "$(dirname "$pc")")
ok "ferry.pc and include/ferry installed"

# the headers installed are the public ones, each complete on its own
check "installed headers are include/ferry/*.h" \
	sh -c "cd '$inc' && ls | sort > '$work/inst' &&
	       cd '$src/include/ferry' && ls | sort | diff - '$work/inst'"
for h in "$inc"/*.h; do
	check "ferry/$(basename "$h") compiles alone" \
		sh -c "echo '#include <ferry/$(basename "$h")>' |
		       cc -std=c11 -Wall -Wextra -Werror -fsyntax-only \
		          -I'$(dirname "$inc")' -x c -"
done

so="$libdir/libferry.so.0"
check "libferry.so.0 installed, its SONAME libferry.so.0" \
	sh -c "readelf -d '$so' | grep -q 'Library soname: \[libferry.so.0\]'"
check "libferry.so links to libferry.so.0" \
	test "$(readlink "$libdir/libferry.so")" = libferry.so.0
check "libferry.a installed" test -s "$libdir/libferry.a"

# exported: exactly the functions the installed headers declare, all in
# the version node of src/libferry.sym
grep -hE '^([a-z].*[ *])?ferry_[a-z0-9_]+\(' "$inc"/*.h |
	grep -oE '\bferry_[a-z0-9_]+\(' | tr -d '(' | sort -u > "$work/declared"
nm -D --defined-only "$so" | awk '$2 == "T" || $2 == "D" || $2 == "B" {
	sub(/@.*/, "", $3); print $3 }' | sort -u > "$work/exported"
check "libferry.so exports exactly the public functions" \
	diff "$work/declared" "$work/exported"
check "every export in version node FERRY_0.1" \
	sh -c "nm -D --with-symbol-versions --defined-only '$so' |
	       awk '\$2 == \"T\" && \$3 !~ /@@FERRY_0\\.1\$/' |
	       (! grep .)"

export PKG_CONFIG_SYSROOT_DIR="$root" PKG_CONFIG_PATH="$libdir/pkgconfig"
check "pkg-config --modversion ferry is $version" \
	test "$(pkg-config --modversion ferry)" = "$version"

man=$(find "$root" -path '*/man1/ferry.1' | head -n 1)
if ! command -v man > /dev/null; then # man-db absent: read the roff
	out=$(cat "$man" 2>&1)
else
	out=$(MANWIDTH=80 man -l "$man" 2>&1)
fi
if [ -n "$man" ] && printf '%s' "$out" | grep -q 'ferry migrate'; then
	ok "man page ferry(1) installed and readable"
else
	not_ok "man page ferry(1) installed and readable" "man='$man' $out"
fi

# a VMM of its own, from the installed tree only; against a library
# built with sanitizers, built with them too (their runtime comes first)
san=$(meson introspect --buildoptions "$build" | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin)
           if o["name"] == "b_sanitize"))')
if [ -n "$san" ] && [ "$san" != none ]; then
	export CFLAGS="-O1 -g -fsanitize=$san"
fi
cp -r "$src/examples" "$work/examples"
if ! out=$(make -C "$work/examples" minivmm minivmm-static 2>&1); then
	not_ok "examples build with pkg-config" "$out"
	finish
fi
ok "examples build with pkg-config"
check "minivmm-static does not load libferry.so" \
	sh -c "! ldd '$work/examples/minivmm-static' | grep -q libferry"

# the destination links the shared library, the source the static one
export LD_LIBRARY_PATH="$libdir"
cd "$work/examples"
./minivmm in tcp:127.0.0.1:0 > in.log 2>&1 &
in_pid=$!
i=0
until grep -q 'listening on' in.log; do
	if ! kill -0 $in_pid 2>/dev/null || [ $i -ge 6000 ]; then
		not_ok "minivmm in listens" "$(cat in.log)"
		kill $in_pid 2>/dev/null
		finish
	fi
	sleep 0.1
	i=$((i + 1))
done
uri=$(sed -n 's/^minivmm in: listening on //p' in.log)
./minivmm-static out "$uri" > out.log 2>&1
out_rc=$?
wait $in_pid
in_rc=$?
if [ $out_rc = 0 ] && grep -q 'digest verified' out.log; then
	ok "minivmm out (static) migrates to $uri, verified"
else
	not_ok "minivmm out (static) migrates, verified" "$(cat out.log)"
fi
if [ $in_rc = 0 ] && grep -q 'RAM matches the replay' in.log; then
	ok "minivmm in (shared) runs on, RAM matches the guest's replay"
else
	not_ok "minivmm in (shared) runs on, RAM matches the replay" \
		"$(cat in.log)"
fi
sed 's/^/# /' out.log in.log
finish
