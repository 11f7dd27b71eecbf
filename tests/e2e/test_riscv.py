#!/usr/bin/env python3
"""test_riscv.py - a real operating system migrated live: the RISC-V
machine (`ferry run --machine riscv64`) boots Debian's Linux kernel with
the guest programs of guest/riscv/ (memcheck verifies a buffer pass after
pass, timer watches for freezes), and one guest is moved from process to
process by pre-copy, post-copy and the hybrid, each migration verified by
the engine's digest and by what the guest itself says afterwards: the
same memcheck process counts on, with no mismatch.  Prints TAP.

Needs the guest cache that scripts/riscv-guest.sh builds; skips, saying
so, without it."""
import atexit
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "faults"))
import ferrytest as ft  # noqa: E402
import faultproxy as fp  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

CACHE = os.environ.get("FERRY_RISCV_CACHE", os.path.join(
    HERE, "..", "..", "guest", "riscv", "cache"))
KERNEL = os.path.join(CACHE, "Image")
INITRD = os.path.join(CACHE, "initramfs.cpio.gz")
SMP = "2"
RAM = "512M"
APPEND = "console=ttyS0 ferry.workload=memcheck+timer+stress:64M"
BOOT_TIMEOUT = 900  # an interpreter on a busy machine: minutes, not seconds
tap = ft.TAP()


class Machine(ft.Guest):
    """A riscv64 `ferry run` whose console goes to a file."""

    def __init__(self, name, incoming=None, tmp=None, smp=SMP, boot=True,
                 console=None):
        self.console = os.path.join(tmp or "/tmp", name + ".console")
        args = ["--machine", "riscv64", "--ram", RAM, "--smp", smp]
        if boot:
            args += ["--kernel", KERNEL, "--initrd", INITRD,
                     "--append", APPEND]
        if tmp is None:
            import tempfile
            tmp = tempfile.mkdtemp(prefix="ferry-e2e-")
            ft._tmpdirs.append(tmp)
            self.console = os.path.join(tmp, name + ".console")
        args += ["--console", console or self.console]
        super().__init__(name, args, incoming=incoming, tmp=tmp)

    def text(self):
        try:
            with open(self.console, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern, timeout=BOOT_TIMEOUT, after=0):
        """The first match of `pattern` in the console past offset
        `after`; fails after `timeout` s, or at once if the machine
        exits."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(pattern, self.text()[after:])
            if m:
                return m
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.sock}: exited {self.proc.returncode} waiting "
                    f"for {pattern!r}: {self.output()[-2000:]}")
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} within {timeout} s; console "
                             f"ends: {self.text()[-1500:]}")

    def passes(self):
        return [int(n) for n in re.findall(r"ferry-memcheck: pass (\d+) ok",
                                           self.text())]


def no_mismatch(m):
    assert "MISMATCH" not in m.text(), m.text()[-2000:]
    assert "Kernel panic" not in m.text(), m.text()[-2000:]
    assert "Oops" not in m.text(), m.text()[-2000:]


state = {}


def keep(m):
    """The guest outlives the case that started it (TAP.run reaps the
    guests a case started): it is the next case's source, killed at exit
    if nothing quit it before."""
    ft._live.remove(m)
    atexit.register(lambda: m.proc.poll() is None and m.kill())
    state["guest"] = m


def t_boot():
    """Linux boots to the guest's init and memcheck passes."""
    m = Machine("boot")
    m.wait_for(r"ferry-guest: init")
    m.wait_for(r"ferry-memcheck: pass 1 ok")
    no_mismatch(m)
    st = m.qmp.cmd("query-status")
    assert st["status"] == "running" and st["running"], st
    g = m.qmp.cmd("x-query-guest")
    assert g["machine"] == "riscv64" and g["harts"] == int(SMP), g
    assert g["harts-started"] == int(SMP), g  # Linux brought up all
    assert g["instructions"] > 10**8 and g["console-bytes"] > 1000, g
    assert g["running"] and not g["halted"], g
    keep(m)


def t_wrong_smp():
    """A destination with fewer harts refuses the machine state, saying
    how many each side has, and the source runs on."""
    src = state["guest"]
    dst = Machine("dst-smp1", incoming="tcp:127.0.0.1:0", tmp=src.tmp,
                  smp="1", boot=False)
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s = src.qmp.wait_migration(timeout=600)
    assert s["status"] == "failed", s
    # a destination whose migration failed exits 1, saying why
    assert dst.proc.wait(timeout=120) == 1, dst.output()
    assert "2 harts, this machine 1" in dst.output(), dst.output()
    assert "2 harts, this machine 1" in s.get("error-desc", ""), s
    st = src.qmp.cmd("query-status")
    assert st["status"] == "running", st
    before = max(src.passes())
    src.wait_for(rf"ferry-memcheck: pass {before + 1} ok", timeout=600)
    dst.quit()


def move(name, caps=(), params=None, postcopy=False, rdma=False,
         during=None):
    """Migrate the current guest to a new destination and check what the
    engine and the guest say.  `during(src, dst)` acts on the migration
    while it runs; the parameters stay with the source only for this
    move (its next move is from the destination)."""
    src = state["guest"]
    state["moves"] = state.get("moves", 0) + 1
    dst = Machine(f"{name}-{state['moves']}",
                  incoming="defer" if rdma else "tcp:127.0.0.1:0",
                  tmp=src.tmp, boot=False)
    if caps:
        c = [{"capability": x, "state": True} for x in caps]
        src.qmp.cmd("migrate-set-capabilities", capabilities=c)
        dst.qmp.cmd("migrate-set-capabilities", capabilities=c)
    if params:
        src.qmp.cmd("migrate-set-parameters", **params)
        dst_params = {k: v for k, v in params.items()
                      if k.startswith("multifd") or k.startswith("rdma")}
        if dst_params:
            dst.qmp.cmd("migrate-set-parameters", **dst_params)
    if rdma:
        dst.qmp.cmd("migrate-incoming", uri="rdma:127.0.0.1:0")
    last = max(src.passes())
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    if postcopy:
        src.qmp.wait_migration(states=("active", "completed", "failed"))
        src.qmp.cmd("migrate-start-postcopy")
    if during:
        during(src, dst)
    s = src.qmp.wait_migration(timeout=900)
    d = dst.qmp.wait_migration(timeout=120)
    assert s["status"] == "completed", s
    assert d["status"] == "completed", d
    assert d.get("verified") is True, d
    if postcopy:
        assert s.get("postcopy-reason"), s
    assert src.qmp.cmd("query-status")["status"] == "postmigrate"
    assert dst.qmp.cmd("query-status")["status"] == "running"
    # the guest lives on there now, whatever the checks below find
    if caps:  # the next move from here starts from the defaults
        dst.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": x, "state": False} for x in caps])
    keep(dst)
    try:
        # the same memcheck process counts on, on the destination, clean
        m = dst.wait_for(r"ferry-memcheck: pass (\d+) ok", timeout=600)
        assert int(m.group(1)) > last, (m.group(0), last)
        # and the source, stopped for good, prints nothing more
        n = len(src.text())
        dst.wait_for(rf"ferry-memcheck: pass {int(m.group(1)) + 1} ok",
                     timeout=600)
        dst.wait_for(r"ferry-timer: tick \d+", timeout=600)
        assert len(src.text()) == n, src.text()[n:]
        no_mismatch(dst)
        one_copy(src, dst)
    finally:
        src.quit()
    return s, d


def t_precopy():
    """Pre-copy: a running Linux moves, verified, and runs on."""
    s, _ = move("precopy")
    assert s["downtime"] >= 0, s


def save_restore(mapped=False):
    """Saved into a file while Linux runs (file:), restored into a new
    machine: verified, and the same processes count on there, no tick
    lost or doubled.  mapped: a mapped-ram save, restored lazily (Linux
    runs on before its pages are in, each read on demand)."""
    def t():
        src = state["guest"]
        state["moves"] = state.get("moves", 0) + 1
        path = os.path.join(src.tmp, "linux-%d.sav" % state["moves"])
        last = max(src.passes())
        if mapped:
            src.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "mapped-ram", "state": True}])
        src.qmp.cmd("migrate", uri="file:" + path)
        s = src.qmp.wait_migration(timeout=900)
        assert s["status"] == "completed", s
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        dst = Machine(f"restore-{state['moves']}",
                      incoming="defer" if mapped else "file:" + path,
                      tmp=src.tmp, boot=False)
        if mapped:
            dst.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "lazy-restore", "state": True},
                {"capability": "multifd", "state": True}])
            dst.qmp.cmd("migrate-incoming", uri="file:" + path)
        d = dst.qmp.wait_migration(timeout=600)
        assert d["status"] == "completed" and d.get("verified") is True, d
        if mapped:
            assert d["resume-time"] <= d["total-time"], d
            assert d["ram"]["postcopy-requests"] > 0, d["ram"]
            # it moves on as the next case's source, as it came
            dst.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": "lazy-restore", "state": False},
                {"capability": "multifd", "state": False}])
        assert dst.qmp.cmd("query-status")["status"] == "running"
        keep(dst)
        try:
            m = dst.wait_for(r"ferry-memcheck: pass (\d+) ok", timeout=600)
            assert int(m.group(1)) > last, (m.group(0), last)
            dst.wait_for(r"ferry-timer: tick \d+", timeout=600)
            no_mismatch(dst)
            one_copy(src, dst)
        finally:
            src.quit()
            os.unlink(path)
    return t


def t_postcopy():
    """Post-copy: the destination runs Linux at once, its harts' missing
    pages demand-paged through userfaultfd."""
    s, d = move("postcopy", caps=["postcopy-ram"], postcopy=True)
    assert s["ram"]["postcopy-pages"] > 0, s["ram"]
    # blocktime per hart, as QEMU's per vCPU
    per = d["postcopy-vcpu-blocktime"]
    assert len(per) == int(SMP), d
    assert 0 <= d["postcopy-blocktime"] <= min(per), d


def t_hybrid():
    """The hybrid: pre-copy gives up after precopy-time-limit and
    post-copy ends it."""
    move("hybrid", caps=["postcopy-ram"],
         params={"precopy-time-limit": 200, "downtime-limit": 1,
                 "max-bandwidth": 50 << 20})


def ticks(text):
    return [int(n) for n in re.findall(r"ferry-timer: tick (\d+)", text)]


def one_copy(src, dst):
    """The guest's timer numbers its ticks: the source's console then the
    destination's must count on by one, no tick missing (output lost)
    and none twice (two copies ran)."""
    a, b = ticks(src.text()), ticks(dst.text())
    assert a and b, (a[-3:], b[:3])
    assert b[0] == a[-1] + 1, f"source ended at tick {a[-1]}, destination " \
        f"began at {b[0]}"
    joined = a + b
    assert joined == list(range(joined[0], joined[0] + len(joined))), \
        joined


def t_faults():
    """A link cut in the bulk pass, then a flipped byte in hart 0's state:
    each time the destination resumes nothing (it exits 1, saying why)
    and the source's Linux runs on."""
    src = state["guest"]
    for name, arm, why in (
            ("cut", lambda p: p.cut(fp.Record(fp.PAGE, nth=3000)), None),
            ("flip", lambda p: p.flip(fp.Record(
                fp.DEVICE, nth=2,
                offset=fp.DEVICE_NAME + len("riscv-hart") + 4)),
             "hart 0: privilege level")):
        state["moves"] = state.get("moves", 0) + 1
        dst = Machine(f"{name}-{state['moves']}", incoming="tcp:127.0.0.1:0",
                      tmp=src.tmp, boot=False)
        proxy = fp.FaultProxy(dst.incoming_uri())
        try:
            arm(proxy)
            src.qmp.cmd("migrate", uri=proxy.uri)
            s = src.qmp.wait_migration(timeout=600)
            assert s["status"] == "failed", (name, s)
            assert dst.proc.wait(timeout=120) == 1, dst.output()
            if why:
                assert why in dst.output(), dst.output()
                assert why in s.get("error-desc", ""), s
            st = src.qmp.cmd("query-status")
            assert st["status"] == "running", (name, st)
            before = max(src.passes())
            src.wait_for(rf"ferry-memcheck: pass {before + 1} ok",
                         timeout=600)
            no_mismatch(src)
        finally:
            proxy.close()


def t_multifd_zstd():
    """Pre-copy over 2 multifd channels, pages compressed with zstd."""
    s, _ = move("multifd", caps=["multifd"],
                params={"multifd-channels": 2, "multifd-compression": "zstd",
                        "codec-auto": False})
    assert s["ram"]["transferred"] < s["ram"]["total"], s["ram"]
    state["guest"].qmp.cmd("migrate-set-parameters",
                           **{"multifd-compression": "none"})


def t_rdma():
    """Pre-copy over rdma (libfabric's tcp provider where no RDMA device
    is): registration and RDMA writes into the harts' RAM."""
    move("rdma", params={"rdma-provider": "tcp"}, rdma=True)


def t_rdma_postcopy():
    """Post-copy over rdma: RDMA writes until the switch, then Linux runs
    on the destination, its harts' faults answered in the urgent stream."""
    s, d = move("rdma-postcopy", caps=["postcopy-ram"],
                params={"rdma-provider": "tcp"}, rdma=True, postcopy=True)
    assert s["ram"]["postcopy-pages"] > 0, s["ram"]
    assert s["rdma"]["provider"] == "tcp" == d["rdma"]["provider"], (s, d)


def pause_and_recover(src, dst):
    """migrate-pause on the source mid post-copy, then migrate-recover
    and resume: the destination's Linux runs on what it has meanwhile."""
    deadline = time.time() + 120
    while src.qmp.cmd("query-migrate")["status"] != "postcopy-active":
        if time.time() > deadline:
            raise AssertionError("no postcopy-active")
        time.sleep(0.02)
    src.qmp.cmd("migrate-pause")
    deadline = time.time() + 120
    while not (src.qmp.cmd("query-migrate")["status"] ==
               dst.qmp.cmd("query-migrate")["status"] == "postcopy-paused"):
        if time.time() > deadline:
            raise AssertionError("not both postcopy-paused")
        time.sleep(0.05)
    dst.qmp.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
    src.qmp.cmd("migrate", uri=dst.qmp.cmd("query-migrate")["uri"],
                resume=True)


def t_postcopy_recovery():
    """Post-copy whose link is paused and recovered: it completes,
    verified, and the guest never noticed more than a stall."""
    s, d = move("recovery", caps=["postcopy-ram"], postcopy=True,
                params={"max-bandwidth": 20 << 20},
                during=pause_and_recover)
    assert s["postcopy-recoveries"] == 1, s


def t_console_socket():
    """A destination whose console is a unix socket (--console
    unix:PATH): a client that connects after the move reads the guest
    carrying on."""
    import socket
    src = state["guest"]
    path = os.path.join(src.tmp, "console.sock")
    dst = Machine("socket", incoming="tcp:127.0.0.1:0", tmp=src.tmp,
                  boot=False, console="unix:" + path)
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s = src.qmp.wait_migration(timeout=900)
    assert s["status"] == "completed", s
    assert dst.qmp.wait_migration(timeout=120).get("verified") is True
    c = socket.socket(socket.AF_UNIX)
    c.connect(path)
    c.settimeout(5)
    got, deadline = b"", time.time() + 600
    while b"ferry-memcheck: pass" not in got and time.time() < deadline:
        try:
            got += c.recv(4096)
        except socket.timeout:
            pass
    c.close()
    assert b"ferry-memcheck: pass" in got, got[-500:]
    assert b"MISMATCH" not in got, got
    src.quit()
    keep(dst)


def main():
    cases = (("a destination with fewer harts refuses", t_wrong_smp),
             ("a cut link and a flipped hart byte: the source runs on",
              t_faults),
             ("pre-copy of a running Linux", t_precopy),
             ("saved into a file and restored, Linux runs on",
              save_restore()),
             ("a mapped-ram save restored lazily, Linux runs on",
              save_restore(mapped=True)),
             ("post-copy of a running Linux", t_postcopy),
             ("hybrid of a running Linux", t_hybrid),
             ("multifd and zstd", t_multifd_zstd),
             ("rdma", t_rdma),
             ("post-copy of a running Linux over rdma", t_rdma_postcopy),
             ("post-copy paused and recovered", t_postcopy_recovery),
             ("a console on a unix socket", t_console_socket))
    if not (os.path.exists(KERNEL) and os.path.exists(INITRD)):
        for name in ["boot to init"] + [c[0] for c in cases]:
            tap.skip(name, f"no guest in {CACHE}: run "
                     "scripts/riscv-guest.sh")
        tap.done()
    tap.run("boot to init, memcheck passes", t_boot)
    for name, fn in cases:
        if "guest" not in state:
            tap.skip(name, "no booted guest (boot failed)")
            continue
        tap.run(name, fn)
    g = state.get("guest")
    if g:
        g.quit()
    tap.done()


main()
