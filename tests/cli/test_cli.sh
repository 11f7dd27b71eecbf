#!/bin/sh
# test_cli.sh FERRY - the ferry command end to end, as a user types it.
# Prints TAP.
ferry=$1
n=0 failed=0
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

# ok DESCRIPTION EXPECTED_STATUS GREP_STDOUT GREP_STDERR -- ARGS...
check() {
	desc=$1 want=$2 pat_out=$3 pat_err=$4
	shift 5
	n=$((n + 1))
	# a command that should fail but runs on must not hang the suite
	timeout 120 "$ferry" "$@" >"$out" 2>"$err"
	rc=$?
	bad=""
	if [ "$want" = 0 ] && [ $rc != 0 ]; then bad="exit $rc"; fi
	if [ "$want" != 0 ] && [ $rc = 0 ]; then bad="exit 0, expected failure"; fi
	if [ -n "$pat_out" ] && ! grep -qE -e "$pat_out" "$out"; then
		bad="$bad; stdout lacks /$pat_out/"
	fi
	if [ -n "$pat_err" ] && ! grep -qE -e "$pat_err" "$err"; then
		bad="$bad; stderr lacks /$pat_err/"
	fi
	# a user error is one line
	if [ "$want" != 0 ] && [ "$(wc -l <"$err")" != 1 ]; then
		bad="$bad; stderr has $(wc -l <"$err") lines"
	fi
	if [ -z "$bad" ]; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc: $bad"
		sed 's/^/# /' "$err"
		failed=$((failed + 1))
	fi
}

check "run a stress guest and print its digest" 0 \
	"digest of RAM and device state: [0-9a-f]{32}" "" -- \
	run --ram 64M,16M --vcpus 2 --workload stress:bytes=32M --duration 1
check "run a zipf guest with the explicit tracker" 0 \
	"dirty tracker explicit" "" -- \
	run --ram 64M --workload zipf:rate=1000 --dirty explicit --duration 0.5
check "bad --ram" 1 "" "--ram: '12X' is not a size" -- run --ram 12X
check "unaligned --ram" 1 "" "multiple of 4 KiB" -- run --ram 5000
check "bad --vcpus" 1 "" "--vcpus" -- run --vcpus 0
check "bad --fill" 1 "" "--fill: fill 'plaid'" -- run --fill plaid
check "unknown workload" 1 "" "unknown workload 'dance'" -- \
	run --ram 8M --workload dance
check "unknown dirty tracker" 1 "" "unknown dirty tracker 'x'" -- \
	run --ram 8M --dirty x
check "bad --duration" 1 "" "--duration" -- run --duration soon
check "stray argument" 1 "" "unexpected argument" -- run extra
check "migrate needs --qmp" 1 "" "--qmp unix:PATH \\(or tcp:HOST:PORT\\) is required" -- \
	migrate tcp:127.0.0.1:1
check "migrate to a missing socket" 1 "" "cannot connect to the QMP socket" -- \
	migrate --qmp unix:/nonexistent/ferry.qmp tcp:127.0.0.1:1
check "migrate --set without =" 1 "" "expected PARAM=VALUE" -- \
	migrate --qmp unix:/x --set downtime-limit tcp:127.0.0.1:1
check "migrate --cap bad state" 1 "" "NAME=on or NAME=off" -- \
	migrate --qmp unix:/x --cap verify=maybe tcp:127.0.0.1:1
check "demo with an unknown mode" 1 "" "expected precopy, postcopy or hybrid" -- demo --mode teleport
check "incoming on an unknown transport" 1 "" "unknown transport 'pigeon'" -- \
	run --ram 16M --incoming pigeon:coop
check "incoming on a malformed tcp URI" 1 "" "expected tcp:HOST:PORT" -- \
	run --ram 16M --incoming tcp:nowhere
check "incoming with tls-creds that are not a directory" 1 "" \
	"tls-creds: /nonexistent/creds is not a directory" -- \
	run --ram 16M --incoming tcp:127.0.0.1:0 --tls-creds /nonexistent/creds
check "incoming with tls-authz but no tls-creds" 1 "" \
	"tls-authz is set but tls-creds is not" -- \
	run --ram 16M --incoming tcp:127.0.0.1:0 --tls-authz /etc/hostname
check "incoming on a descriptor not open" 1 "" \
	"fd:987: no such open descriptor in this process" -- \
	run --ram 16M --incoming fd:987
check "incoming on fd: with a name" 1 "" \
	"fd:mig: not a descriptor number" -- run --ram 16M --incoming fd:mig
check "run --set with a bad value" 1 "" \
	"--set downtime-limit=soon: Invalid parameter type for 'downtime-limit'" -- \
	run --ram 16M --incoming defer --set downtime-limit=soon
check "run --cap with an unknown capability" 1 "" \
	"--cap teleport=on: Capability 'teleport' is not supported" -- \
	run --ram 16M --incoming defer --cap teleport=on
check "run --set without a migration" 1 "" \
	"--set and --cap are for a migration: give --qmp or --incoming" -- \
	run --ram 16M --duration 1 --set downtime-limit=10
check "run --help lists --set and --cap" 0 "--cap NAME=on\|off" "" -- \
	run --help
check "run --help lists the TLS options" 0 "--tls-authz FILE" "" -- \
	run --help
check "qmp on udp is refused" 1 "" "the control socket is unix:PATH or tcp:HOST:PORT" -- \
	run --ram 16M --qmp udp:127.0.0.1:4444
check "qmp with server=off is refused" 1 "" "server=off: the control socket always listens" -- \
	run --ram 16M --qmp tcp:127.0.0.1:0,server=off
check "qmp with an unknown option is refused" 1 "" "unknown option 'telnet'" -- \
	run --ram 16M --qmp tcp:127.0.0.1:0,server=on,telnet
check "unknown machine" 1 "" "'vax' is not a machine \\(reference, riscv64\\)" -- \
	run --machine vax
check "riscv64 without a kernel" 1 "" "--kernel IMAGE is needed" -- \
	run --machine riscv64
check "riscv64 destination with a kernel" 1 "" "a destination boots nothing" -- \
	run --machine riscv64 --kernel x --incoming defer
check "riscv64 kernel that is not an Image" 1 "" \
	"boot: kernel /etc/passwd: .*not a RISC-V Linux Image" -- \
	run --machine riscv64 --kernel /etc/passwd
check "riscv64 missing kernel file" 1 "" "open kernel /nonexistent" -- \
	run --machine riscv64 --kernel /nonexistent
check "riscv64 too many harts" 1 "" "--smp: '9' is not a number of harts from 1 to 8" -- \
	run --machine riscv64 --smp 9 --kernel x
check "riscv64 RAM not in 2 MiB" 1 "" "multiple of 2 MiB" -- \
	run --machine riscv64 --ram 3M --kernel x
check "riscv64 console that cannot be opened" 1 "" "--console: /nonexistent/c" -- \
	run --machine riscv64 --console /nonexistent/c --kernel x
check "riscv64 console socket that cannot be made" 1 "" "--console unix:/nonexistent/s" -- \
	run --machine riscv64 --console unix:/nonexistent/s --kernel x
check "demo kernel without riscv64" 1 "" "are for --machine riscv64" -- \
	demo --kernel x
check "unknown command" 2 "" "unknown command 'fly'" -- fly
check "help" 0 "usage: ferry" "" -- help
check "version" 0 "^ferry [0-9]" "" -- --version
check "-h" 0 "usage: ferry COMMAND" "" -- -h
check "help names --version" 0 "ferry --version" "" -- help
check "help COMMAND" 0 "usage: ferry migrate" "" -- help migrate
check "help of an unknown command" 2 "" "help: unknown command 'fly'" -- help fly
check "more RAM than the host has" 1 "" "--ram 100T: 100.00 TiB is more than this host.s memory \\(" -- \
	run --ram 100T
check "riscv64: more RAM than the host has" 1 "" "is more than this host's memory" -- \
	run --machine riscv64 --ram 100T --kernel /nonexistent

echo "1..$n"
[ $failed = 0 ]
