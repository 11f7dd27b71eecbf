#!/usr/bin/env python3
"""test_riscv_qemu.py - the RISC-V guest's software on the reference
machine: the kernel and initramfs scripts/riscv-guest.sh built boot in
QEMU's virt machine (qemu-system-riscv64 7.2, OpenSBI), init starts the
workloads the command line names, memcheck passes, the timer ticks and
reports a freeze of the whole machine as a gap, memcheck reports damage
to its buffer where it is, and ferry.shell=1 gives a working shell.
Skips when the cache or QEMU is missing.  Prints TAP.

  tests/e2e/test_riscv_qemu.py [FERRY]   (FERRY is not used: QEMU runs
                                          the guest here)

FERRY_RISCV_GUEST names another folder holding Image and
initramfs.cpio.gz."""
import atexit
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ferrytest as ft  # noqa: E402

CACHE = os.environ.get("FERRY_RISCV_GUEST",
                       os.path.join(HERE, "..", "..", "guest", "riscv",
                                    "cache"))
QEMU = "qemu-system-riscv64"
# Bounds on conditions, not durations: an emulated boot on a busy machine
# may take minutes; a healthy one takes seconds.
BOOT_S = 600
LINE_S = 300

tap = ft.TAP()
_consoles = []


@atexit.register
def _kill():
    """No QEMU outlives the test, even one ended by SIGTERM (a meson
    timeout)."""
    for c in _consoles:
        c.close()


class Console:
    """A QEMU virt guest whose serial console (ttyS0) is our pipe.
    Another e2e test may import it (python: from test_riscv_qemu import
    Console) to drive the same guest; `cmd` replaces QEMU's command line
    by another machine's whose stdout and stdin are the console."""

    def __init__(self, append, cmd=None):
        self.lines = []
        self.cond = threading.Condition()
        if cmd is None:
            cmd = [QEMU, "-M", "virt", "-m", "512M", "-smp", "2",
                   "-nographic", "-bios", "default",
                   "-kernel", os.path.join(CACHE, "Image"),
                   "-initrd", os.path.join(CACHE, "initramfs.cpio.gz"),
                   "-append", "console=ttyS0 " + append]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        _consoles.append(self)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)  # end of output
            self.cond.notify_all()

    def wait(self, pattern, timeout=LINE_S, since=0):
        """The first match of `pattern` in a line from index `since` on
        (searched, not anchored: a line may follow the shell's prompt),
        and the index after that line; raises once `timeout` s pass
        without one or the guest's output ends."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        i = since
        with self.cond:
            while True:
                while i < len(self.lines):
                    line = self.lines[i]
                    i += 1
                    if line is None:
                        raise AssertionError(
                            f"QEMU ended before /{pattern}/:\n"
                            + self.tail())
                    m = rx.search(line)
                    if m:
                        return m, i
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(
                        f"no /{pattern}/ within {timeout} s:\n" + self.tail())
                self.cond.wait(left)

    def tail(self, n=15):
        return "\n".join(x for x in self.lines[-n:] if x is not None)

    def type(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    missing = [f for f in ("Image", "initramfs.cpio.gz")
               if not os.path.exists(os.path.join(CACHE, f))]
    names = ["boots to init", "memcheck passes", "timer ticks",
             "a frozen machine shows as a timer gap",
             "memcheck reports damage at its offset",
             "ferry.shell=1 gives a shell on the console",
             "an unknown workload is named"]
    why = None
    if missing:
        why = (f"no {' '.join(missing)} in {os.path.normpath(CACHE)} "
               "(run scripts/riscv-guest.sh)")
    elif not shutil.which(QEMU):
        why = f"{QEMU} is not installed (scripts/deps.sh)"
    if why:
        for n in names:
            tap.skip(n, why)
        tap.done()

    g = Console("ferry.workload=timer+memcheck")
    at = {"init": 0}
    try:
        def boots():
            _, at["init"] = g.wait(r"ferry-guest: init$", BOOT_S)
            m, _ = g.wait(r"ferry-guest: kernel (\S+), (\d+) harts, "
                          r"(\d+) kB of RAM$", since=at["init"])
            assert m.group(1).endswith("riscv64"), m.group(0)
            assert m.group(2) == "2", m.group(0)
            # 512M less what the kernel keeps for itself
            assert 256 << 10 < int(m.group(3)) <= 512 << 10, m.group(0)
            g.wait(r"ferry-timer: start", since=at["init"])
            g.wait(r"ferry-memcheck: start 16777216 bytes",
                   since=at["init"])
        tap.run(names[0], boots)

        def memcheck():
            g.wait(r"ferry-memcheck: pass 1 ok$", since=at["init"])
            _, i = g.wait(r"ferry-memcheck: pass 2 ok$", since=at["init"])
            assert not any("MISMATCH" in x for x in g.lines[:i] if x), \
                g.tail()
        tap.run(names[1], memcheck)

        def ticks():
            g.wait(r"ferry-timer: tick 1$", since=at["init"])
        tap.run(names[2], ticks)

        def freeze():
            # Stopped as a process, QEMU's clock runs on (it follows the
            # host's), so the guest wakes 2 s late: a gap.  (Stopped
            # through its monitor, guest time would freeze too and no gap
            # would show.)
            g.wait(r"ferry-timer: tick 1$", since=at["init"])
            since = len(g.lines)
            g.proc.send_signal(signal.SIGSTOP)
            time.sleep(2)
            g.proc.send_signal(signal.SIGCONT)
            m, _ = g.wait(r"ferry-timer: gap (\d+) ms$", since=since)
            assert int(m.group(1)) >= 1500, m.group(0)
        tap.run(names[3], freeze)
    finally:
        g.close()

    # A small memcheck that damages byte 0x1001 of its buffer after pass
    # 1, a shell, and a name init does not know.
    g = Console("ferry.workload=memcheck:1M:7:100:4097+bogus ferry.shell=1")
    try:
        def damage():
            _, i = g.wait(r"ferry-guest: init$", BOOT_S)
            _, i = g.wait(r"ferry-memcheck: pass 1 ok$", since=i)
            for want in ("MISMATCH at offset 0x1001",
                         "pass 2 FAILED: 1 words wrong in 1 pages",
                         # put right, and nothing new since
                         "pass 3 ok"):
                m, i = g.wait(r"ferry-memcheck: (.*)", since=i)
                assert m.group(1) == want, (m.group(0), want)
        tap.run(names[4], damage)

        def shell():
            _, i = g.wait(r"ferry-guest: shell$", BOOT_S)
            # The shell may still be starting: ask until it answers.
            deadline = time.time() + LINE_S
            while True:
                g.type("echo ferry-shell-$((6 * 7))\n")
                try:
                    g.wait(r"ferry-shell-42$", timeout=5, since=i)
                    break
                except AssertionError:
                    if time.time() > deadline:
                        raise
            g.type("cat /proc/cmdline\n")
            g.wait(r"^console=ttyS0 ferry\.workload=", since=i)
        tap.run(names[5], shell)

        def unknown():
            g.wait(r"ferry-guest: unknown workload 'bogus'")
        tap.run(names[6], unknown)
    finally:
        g.close()
    tap.done()


if __name__ == "__main__":
    main()
