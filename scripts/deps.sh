#!/bin/sh
# deps.sh - install the Debian packages ferry needs to build and test.
# Idempotent: installs only what is missing.  Needs root (or sudo).
set -eu

PKGS="build-essential meson ninja-build pkg-config python3
libxxhash-dev libjansson-dev libzstd-dev liblz4-dev libfabric-dev libfabric-bin
libssl-dev
zlib1g-dev libfdt-dev gcc-riscv64-linux-gnu qemu-system-misc opensbi cpio
libcmocka-dev clang libclang-rt-14-dev clang-format cppcheck iperf3 scdoc"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "deps: missing packages:$missing; run as root or install them" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
