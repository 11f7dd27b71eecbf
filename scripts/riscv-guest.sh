#!/bin/sh
# riscv-guest.sh [--force] - the software of ferry's RISC-V guest, in
# guest/riscv/cache/:
#
#   Image              Debian's riscv64 Linux kernel as a raw Image (what
#                      QEMU's -kernel and ferry's riscv64 machine load)
#   initramfs.cpio.gz  busybox (static), guest/riscv/init as /init, and
#                      the guest programs stress, timer and memcheck
#   manifest           the packages and versions used, the sha256 of both
#
# The kernel and busybox come from Debian's riscv64 port through
# `apt-get download`, from the Debian mirror this machine's apt already
# uses, with a temporary apt configuration of its own (an [arch=riscv64]
# source for the RISCV_GUEST_RELEASE suite, trixie by default: bookworm
# has no riscv64 port); the host's apt state is neither read nor changed.
# RISCV_GUEST_MIRROR overrides the mirror.
#
# Idempotent: does nothing when the outputs are newer than their inputs.
# The packages are fetched again only with --force (or when the release
# asked for changed); the initramfs is rebuilt when init, a program or
# this script changed.
set -eu

cd "$(dirname "$0")/.."
GUEST=guest/riscv
CACHE=$GUEST/cache
RELEASE=${RISCV_GUEST_RELEASE:-trixie}
CC=${RISCV_GUEST_CC:-riscv64-linux-gnu-gcc}
PROGS="stress timer memcheck"
# Freestanding: the programs bring their own entry and system calls
# (guest.h), so no riscv64 C library is needed to build them.
CFLAGS="-static -O2 -nostdlib -ffreestanding -fno-stack-protector -fno-pie
-no-pie -Wall -Wextra -Werror -s"

force=0
case "${1:-}" in
--force) force=1 ;;
"") ;;
*)
	echo "usage: scripts/riscv-guest.sh [--force]" >&2
	exit 2
	;;
esac

die() {
	echo "riscv-guest: $*" >&2
	exit 1
}

need() {
	command -v "$1" >/dev/null 2>&1 ||
		die "$1 is missing ($2); scripts/deps.sh installs it"
}

TMP=""
cleanup() {
	[ -n "$TMP" ] && rm -rf "$TMP"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

tmpdir() {
	[ -n "$TMP" ] || TMP=$(mktemp -d "${TMPDIR:-/tmp}/riscv-guest.XXXXXX")
}

# The bytes of $1 at offset $2, $3 of them, as lowercase hex.
hexat() {
	od -An -v -tx1 -j "$2" -N "$3" "$1" 2>/dev/null | tr -d ' \n'
}

# A little-endian 32-bit number of $1 at offset $2.
le32at() {
	od -An -v --endian=little -tu4 -j "$2" -N 4 "$1" 2>/dev/null |
		tr -d ' \n'
}

# The Debian mirror apt is configured with: the URI of the first enabled
# deb source whose suite is this system's release (or a Debian suite
# name), from sources.list and sources.list.d (one-line .list files and
# deb822 .sources files).  Security and updates suites, other
# repositories and file: sources do not count.
find_mirror() {
	# shellcheck disable=SC1091
	codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
	files=""
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files="$files $f"
	done
	[ -n "$files" ] || return 0
	# shellcheck disable=SC2086
	awk -v codename="$codename" '
	function consider(types, uris, suites, enabled,  n, u, m, s, i, j) {
		if (found || !enabled || types !~ /(^|[ \t])deb([ \t]|$)/)
			return
		m = split(suites, s, /[ \t]+/)
		for (i = 1; i <= m; i++) {
			if (s[i] != codename &&
			    s[i] !~ /^(oldstable|stable|testing|unstable|sid)$/)
				continue
			n = split(uris, u, /[ \t]+/)
			for (j = 1; j <= n; j++) {
				if (u[j] ~ /^https?:\/\//) {
					print u[j]
					found = 1
					return
				}
			}
		}
	}
	function stanza() {
		consider(types, uris, suites, enabled)
		types = uris = suites = last = ""
		enabled = 1
	}
	FNR == 1 {
		if (deb822)
			stanza()
		deb822 = FILENAME ~ /\.sources$/
		types = uris = suites = last = ""
		enabled = 1
	}
	/^[ \t]*#/ { next }
	!deb822 {
		line = $0
		gsub(/\[[^]]*\]/, "", line)
		n = split(line, f, /[ \t]+/)
		k = f[1] == "" ? 2 : 1
		if (f[k] == "deb")
			consider("deb", f[k + 1], f[k + 2], 1)
		next
	}
	/^[ \t]*$/ { stanza(); next }
	/^[ \t]/ {	# a continuation line
		if (last == "uris") uris = uris " " $0
		if (last == "suites") suites = suites " " $0
		next
	}
	{
		key = tolower($1)
		val = $0
		sub(/^[^:]*:[ \t]*/, "", val)
		last = ""
		if (key == "types:") types = val
		else if (key == "uris:") { uris = val; last = "uris" }
		else if (key == "suites:") { suites = val; last = "suites" }
		else if (key == "enabled:") enabled = tolower(val) !~ /^no/
	}
	END { if (deb822) stanza() }
	' $files | sed 's:/*$::'
}

# Download the kernel and busybox into $TMP/debs through a private apt
# configuration: its own sources, state, cache and lists, and only the
# host's Acquire settings (proxies and the like) carried over.
apt_download() {
	mirror=$1
	a=$TMP/apt
	mkdir -p "$a/lists/partial" "$a/archives/partial" "$a/parts.d" \
		"$a/sources.d" "$a/prefs.d" "$TMP/debs"
	: >"$a/status"
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -f "$keyring" ] || die "$keyring is missing (debian-archive-keyring)"
	echo "deb [arch=riscv64 signed-by=$keyring] $mirror $RELEASE main" \
		>"$a/sources.list"
	{
		apt-config dump 2>/dev/null | grep '^Acquire::' |
			grep -v -e '^Acquire::IndexTargets' -e '^Acquire::Languages'
		cat <<-EOF
		Dir::State "$a";
		Dir::State::lists "$a/lists";
		Dir::State::status "$a/status";
		Dir::Cache "$a";
		Dir::Cache::archives "$a/archives";
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
		Dir::Etc::main "/dev/null";
		Dir::Etc::parts "$a/parts.d";
		Dir::Etc::sourcelist "$a/sources.list";
		Dir::Etc::sourceparts "$a/sources.d";
		Dir::Etc::preferences "/dev/null";
		Dir::Etc::preferencesparts "$a/prefs.d";
		Dir::Log "$a";
		APT::Architecture "riscv64";
		APT::Architectures { "riscv64"; };
		APT::Sandbox::User "$(id -un)";
		Acquire::Languages "none";
		EOF
	} >"$a/apt.conf"
	export APT_CONFIG="$a/apt.conf"

	echo "riscv-guest: apt-get update: $RELEASE riscv64 from $mirror"
	apt-get -q update >"$TMP/update.log" 2>&1 || {
		tail -n 15 "$TMP/update.log" >&2
		die "apt-get update of $RELEASE riscv64 from $mirror failed" \
			"(is the mirror reachable? does debian-archive-keyring know" \
			"$RELEASE's key?)"
	}
	# apt-get update succeeds with an unreachable mirror too, only warns.
	if grep -q '^\(W\|E\): ' "$TMP/update.log"; then
		grep '^\(W\|E\): ' "$TMP/update.log" >&2
		grep -q '^W: Failed to fetch' "$TMP/update.log" &&
			die "apt-get update of $RELEASE riscv64 from $mirror" \
				"failed: its index could not be downloaded"
	fi
	kpkg=$(apt-cache show --no-all-versions linux-image-riscv64 2>/dev/null |
		sed -n 's/^Depends:.*\(linux-image-[^ ,]*-riscv64\).*/\1/p' |
		head -n 1)
	[ -n "$kpkg" ] ||
		die "no linux-image-riscv64 in $RELEASE riscv64 at $mirror" \
			"(download failed, or the suite has no riscv64 port)"
	echo "riscv-guest: apt-get download $kpkg busybox-static"
	(cd "$TMP/debs" && apt-get -q download "$kpkg" busybox-static) \
		>"$TMP/download.log" 2>&1 || {
		tail -n 15 "$TMP/download.log" >&2
		die "apt-get download of $kpkg and busybox-static failed"
	}
	unset APT_CONFIG
}

# Turn whatever the package ships as its kernel ($1) into a raw RISC-V
# Image ($2).  Debian's 6.12 ships the raw Image itself (its EFI stub's
# "MZ" header is also an instruction); gzip, zstd, EFI zboot and ELF
# vmlinux are unwrapped too, in case the packaging changes.
to_image() {
	in=$1 out=$2 depth=${3:-0}
	[ "$depth" -lt 3 ] || die "$in: nested too deep to unwrap"
	# The boot image header (Documentation/arch/riscv/boot-image-header):
	# "RISCV\0\0\0" at 0x30, "RSC\x05" at 0x38.
	if [ "$(hexat "$in" 56 4)" = 52534305 ]; then
		format=${format:-"raw Image"}
		cp "$in" "$out"
		return
	fi
	next=$TMP/kernel.$depth
	case "$(hexat "$in" 0 4)" in
	1f8b*)
		format="${format:+$format, }gzip"
		gzip -dc "$in" >"$next"
		;;
	28b52ffd)
		need zstd "to unpack the kernel"
		format="${format:+$format, }zstd"
		zstd -q -dc "$in" >"$next"
		;;
	7f454c46)
		format="${format:+$format, }ELF vmlinux"
		riscv64-linux-gnu-objcopy -O binary -R .note -R .note.gnu.build-id \
			-R .comment -S "$in" "$next"
		;;
	4d5a*)
		# EFI zboot: "zimg" at 4, payload offset and size at 8 and 12,
		# compression name at 0x18.
		[ "$(hexat "$in" 4 4)" = 7a696d67 ] ||
			die "$in: a PE image without a RISC-V Image header"
		format="${format:+$format, }EFI zboot"
		off=$(le32at "$in" 8)
		size=$(le32at "$in" 12)
		tail -c +"$((off + 1))" "$in" | head -c "$size" >"$next.z"
		to_image "$next.z" "$out" "$((depth + 1))"
		return
		;;
	*)
		die "$in: not a RISC-V Image, gzip, zstd, zboot or ELF kernel"
		;;
	esac
	to_image "$next" "$out" "$((depth + 1))"
}

# The first of the paths given that exists (a glob's first match).
first() {
	for f in "$@"; do
		[ -e "$f" ] && { echo "$f"; return 0; }
	done
	return 0
}

pkgver() {
	# shellcheck disable=SC2016
	dpkg-deb --show --showformat='${Package} ${Version}' "$1"
}

fetch() {
	need apt-get "Debian's package tool"
	need dpkg-deb "Debian's package tool"
	mirror=${RISCV_GUEST_MIRROR:-$(find_mirror)}
	[ -n "$mirror" ] ||
		die "no Debian mirror found in /etc/apt/sources.list or" \
			"/etc/apt/sources.list.d (set RISCV_GUEST_MIRROR)"
	tmpdir
	apt_download "$mirror"
	kdeb=$(first "$TMP"/debs/linux-image-*.deb)
	bdeb=$(first "$TMP"/debs/busybox-static_*.deb)
	if [ -z "$kdeb" ] || [ -z "$bdeb" ]; then
		die "apt-get download left no kernel or busybox package"
	fi

	mkdir -p "$TMP/k" "$TMP/b" "$CACHE"
	dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$TMP/k" --wildcards \
		'./boot/vmlinu*'
	vmlinux=$(first "$TMP"/k/boot/vmlinu*)
	[ -n "$vmlinux" ] || die "$(basename "$kdeb") ships no /boot/vmlinu*"
	format=""
	to_image "$vmlinux" "$TMP/Image"
	echo "riscv-guest: $(basename "$vmlinux"): $format -> Image"

	dpkg-deb -x "$bdeb" "$TMP/b"
	bb=$(first "$TMP"/b/usr/bin/busybox "$TMP"/b/bin/busybox)
	[ -n "$bb" ] || die "$(basename "$bdeb") ships no bin/busybox"
	# ELF, e_machine 243 (EM_RISCV)
	if [ "$(hexat "$bb" 0 4)" != 7f454c46 ] ||
		[ "$(hexat "$bb" 18 2)" != f300 ]; then
		die "$(basename "$bdeb"): bin/busybox is not a RISC-V ELF"
	fi

	mv "$TMP/Image" "$CACHE/Image"
	cp "$bb" "$CACHE/busybox"
	{
		echo "release $RELEASE"
		echo "mirror $mirror"
		echo "kernel $(pkgver "$kdeb") ($(basename "$vmlinux"): $format)"
		echo "busybox $(pkgver "$bdeb")"
	} >"$CACHE/packages"
}

build_initramfs() {
	need "$CC" "the riscv64 cross compiler, gcc-riscv64-linux-gnu"
	need cpio "cpio"
	tmpdir
	r=$TMP/root
	rm -rf "$r"
	mkdir -p "$r/bin" "$r/sbin" "$r/usr/bin" "$r/usr/sbin" "$r/proc" \
		"$r/sys" "$r/dev" "$r/tmp" "$r/root" "$r/etc"
	for p in $PROGS; do
		# shellcheck disable=SC2086
		"$CC" $CFLAGS -o "$r/bin/$p" "$GUEST/$p.c" ||
			die "$CC failed on $GUEST/$p.c"
	done
	cp "$CACHE/busybox" "$r/bin/busybox"
	ln -s busybox "$r/bin/sh"
	cp "$GUEST/init" "$r/init"
	chmod 755 "$r/init" "$r/bin/busybox" "$r/bin/stress" "$r/bin/timer" \
		"$r/bin/memcheck"
	find "$r" -type d -exec chmod 755 {} +
	chmod 1777 "$r/tmp"
	# Same inputs, same bytes: fixed times, owner root, sorted names,
	# no inode or device numbers, no gzip time stamp.
	find "$r" -exec touch -h -d @0 {} +
	(cd "$r" && find . | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0 --reproducible) |
		gzip -9 -n >"$TMP/initramfs.cpio.gz"
	mv "$TMP/initramfs.cpio.gz" "$CACHE/initramfs.cpio.gz"
	echo "riscv-guest: initramfs.cpio.gz: busybox, init, $PROGS"
}

write_manifest() {
	{
		echo "# what scripts/riscv-guest.sh built; the suite moves, so"
		echo "# the versions are recorded here only"
		cat "$CACHE/packages"
		echo "cc $("$CC" -dumpfullversion 2>/dev/null || echo unknown)"
		for f in Image initramfs.cpio.gz; do
			echo "sha256 $(sha256sum "$CACHE/$f" | cut -d' ' -f1) $f"
		done
	} >"$CACHE/manifest.tmp"
	mv "$CACHE/manifest.tmp" "$CACHE/manifest"
}

# $1 is missing or older than any of the rest.
stale() {
	target=$1
	shift
	[ -e "$target" ] || return 0
	for dep in "$@"; do
		# shellcheck disable=SC3013 # dash and busybox sh have -nt
		[ "$dep" -nt "$target" ] && return 0
	done
	return 1
}

recorded_release=$(sed -n 's/^release //p' "$CACHE/packages" 2>/dev/null ||
	true)
if [ $force = 1 ] || [ ! -s "$CACHE/Image" ] || [ ! -s "$CACHE/busybox" ] ||
	[ "$recorded_release" != "$RELEASE" ]; then
	fetch
fi
inputs="$GUEST/init $GUEST/guest.h $CACHE/busybox scripts/riscv-guest.sh"
for p in $PROGS; do
	inputs="$inputs $GUEST/$p.c"
done
# shellcheck disable=SC2086
if [ $force = 1 ] || stale "$CACHE/initramfs.cpio.gz" $inputs; then
	build_initramfs
fi
if stale "$CACHE/manifest" "$CACHE/Image" "$CACHE/initramfs.cpio.gz" \
	"$CACHE/packages"; then
	write_manifest
	echo "riscv-guest: $CACHE: Image initramfs.cpio.gz manifest"
else
	echo "riscv-guest: $CACHE is up to date"
fi
