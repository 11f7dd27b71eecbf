#!/usr/bin/env python3
"""soak.py [--seconds S] [--seed N] [FERRY] - randomised migrations for
S seconds (default 120): workload (idle, stress, zipf), RAM size (64M to
512M), content, mode (pre-copy, post-copy, hybrid), multifd channels (0,
2, 4), page codec (none, codec-auto, zstd, lz4, xbzrle), bandwidth, and a
fault from tests/faults/faultproxy.py or none.  Every migration goes
through the proxy, which also reads the heartbeat section it carries.

One guest lives on from process to process: after a migration that
completed it runs on the destination, which becomes the next source;
after a failure it runs on where it was.  Now and then a new guest with
new RAM and workload starts.

Checks, each migration:
- no fault fired (a stall is no fault): completed, verified on both sides;
- a fault fired: either completed and verified on both sides (a flipped
  byte in a page later sent again is harmless), or failed on the source
  with a reason; then the destination either exited 1 and resumed
  nothing, or (a cut after the whole state went out) completed, verified,
  runs the guest, and the source stays stopped and says so.  A source
  that failed runs on, or, when it had stopped its guest for switch-over,
  stays stopped and says so; then `cont` with x-force;
- a source guest that ran on after a failure kept its heartbeat: the
  next migration carries a heartbeat whose last tick is later;
- no digest mismatch unless a byte was flipped;
- no lost guest: the guest runs, verified, on exactly one side, and no
  process died;
- the source process has as many open files and threads afterwards as
  before (the QMP client's connection stays open throughout); no zombie,
  no stray child process, and every retired `ferry run` exits 0.

Post-copy and hybrid migrations get their faults after the switch: the
link cut, or `migrate-pause` on either side.  Both sides must pause
(`postcopy-paused`), recover over a new connection (`migrate-recover`,
`migrate` with `resume`), sometimes twice, and complete, verified, with
the recoveries counted.  When the cut comes after the destination
finished (its verdict lost), the source's pause is given up with
`migrate_cancel`; it stays stopped and says so, and the guest moves on.

Now and then a stray connection meets the destination before its real
source does (a connect and close, an idle connection held through the
migration, garbage): the migration must go on as without it, and the
destination must count it in refused-connections.  Now and then, too, a
QMP client connects to one side, sends query-migrate requests and never
reads the replies, through the whole migration: neither side may wedge
(--no-qmp-hog leaves that out).

Prints a line per migration, then the counts and one TAP case per kind
of check; exits 1 on any problem."""
import argparse
import os
import random
import re
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, os.path.join(HERE, "..", "faults"))
import ferrytest as ft  # noqa: E402
import faultproxy as fp  # noqa: E402
from faultproxy import (Bytes, Record, CONFIG, PAGE, DEVICE,  # noqa: E402
                        EOI, END, END_RECORD)

KINDS = ("digest", "lost", "outcome", "fd", "process")
KIND_TITLE = {
    "digest": "no digest mismatch without a flipped byte",
    "lost": "no lost guest: it runs on one side, heartbeat ticking",
    "outcome": "every outcome as documented (status, reason, refusal)",
    "fd": "no leaked file descriptor or thread in a source",
    "process": "no leaked process: no zombie, no stray child, clean exits",
}
STOPPED_SAYS = "stays stopped"


class Soak:
    def __init__(self, rng, tmp, qmp_hog=True):
        self.rng, self.tmp = rng, tmp
        self.qmp_hog = qmp_hog
        self.n = 0            # migrations run
        self.names = 0
        self.counts = dict(faulted=0, cut=0, flipped=0, stalled=0,
                           verified=0, moved_on_cut=0, recovered=0,
                           strays=0, hogs=0)
        self.problems = {k: [] for k in KINDS}
        self.src = None
        self.what = "no migration yet"
        self.ticked_after = None  # ns: the next heartbeat must be later
        self.live = []            # guests that must still run

    # -- guests ---------------------------------------------------------
    def guest(self, incoming=False):
        self.names += 1
        g = ft.Guest("g%d" % self.names, self.args,
                     incoming="tcp:127.0.0.1:0" if incoming else None,
                     tmp=self.tmp)
        self.live.append(g)
        return g

    def retire(self, g, expect_rc=0):
        """A guest's process ends (quit if it still runs) and must exit
        with `expect_rc`; None: killed, any status."""
        if expect_rc is None:
            g.kill()
            rc = None
        elif g.proc.poll() is None:
            rc = g.quit()
        else:
            rc = g.proc.wait()
            g.qmp.close()
        if g in self.live:
            self.live.remove(g)
        if rc != expect_rc:
            self.problem("process", "%s exited %s, expected %d: %s" % (
                g.sock, rc, expect_rc, tail(g)))
        g.log.close()
        for f in (g.log.name, g.sock):
            if os.path.exists(f):
                os.unlink(f)

    def new_guest(self):
        if self.src:
            self.retire(self.src)
        r = self.rng
        self.ram = r.choice(["64M", "128M", "256M", "512M"])
        mib = int(self.ram[:-1])
        self.workload = r.choice([
            "idle",
            "stress:bytes=%dM" % r.choice([mib // 8, mib // 4, mib // 2]),
            "stress:bytes=%dM,keep=on" % (mib // 4),
            "zipf:rate=%d" % r.choice([5000, 20000, 100000])])
        self.fill = r.choice(["random", "mixed:40", "text"])
        self.args = ["--ram", self.ram, "--vcpus", "2", "--workload",
                     self.workload, "--fill", self.fill]
        self.src = self.guest()
        self.ticked_after = None
        print("# guest: " + " ".join(self.args), flush=True)

    # -- bookkeeping ----------------------------------------------------
    def problem(self, kind, what):
        msg = "migration %d (%s): %s" % (self.n, self.what, what)
        self.problems[kind].append(msg)
        print("# PROBLEM (%s) %s" % (kind, msg[:3000]), flush=True)

    # -- one migration --------------------------------------------------
    def plan(self):
        r = self.rng
        p = dict(mode=r.choice(["precopy"] * 4 + ["postcopy", "hybrid"]),
                 channels=r.choice([0, 2, 4]),
                 codec=r.choice(["none", "auto", "zstd", "lz4", "xbzrle"]),
                 bandwidth=r.choice([0, 0, 200 << 20]))
        p["limit"] = 0
        if p["mode"] == "hybrid":  # a link the guest can outrun
            p["limit"] = r.choice([300, 1000])
            p["bandwidth"] = 100 << 20
        p["fault"] = self.pick_fault(p) if p["mode"] == "precopy" else None
        # post-copy: faults after the switch, then recovery
        p["pc_faults"] = [] if p["mode"] == "precopy" else \
            r.choice([[], [], ["cut"], ["pause-src"], ["pause-dst"],
                      ["cut", "pause-dst"]])
        p["stray"] = r.choice([None] * 3 + ["close", "idle", "garbage"])
        # drawn whether or not it is on, so that a seed repeats the rest
        hog = r.choice([None] * 3 + ["src", "dst"])
        p["hog"] = hog if self.qmp_hog else None
        return p

    def stray(self, kind, dst):
        """A stray connection to the destination, before the source's:
        the socket, held until the migration ended (None once closed)."""
        host, port = dst.incoming_uri().split(":")[1:]
        sock = socket.create_connection((host, int(port)), timeout=30)
        if kind == "garbage":
            sock.sendall(b"\0" + bytes(self.rng.getrandbits(8)
                                       for _ in range(200)))
        if kind == "close":
            sock.close()
            return None
        return sock

    def hog(self, g):
        """A QMP client that asks and never reads the replies: sends until
        the socket is full, and stays connected."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(g.sock)
        sock.setblocking(False)
        req = b'{"execute": "qmp_capabilities"}\n' + \
            b'{"execute": "query-migrate"}\n' * 256
        try:
            for _ in range(4096):
                sock.send(req)
        except BlockingIOError:
            pass
        return sock

    def pick_fault(self, p):
        r = self.rng
        pages = int(self.ram[:-1]) * 256
        ch = p["channels"]
        page_ch = r.randint(1, ch) if ch else 0
        per_ch = pages // max(ch, 1)
        choices = [
            None, None, None,
            # the main connection's first 52 bytes (76 with a channel
            # record) are the header and the configuration
            ("cut", "setup", lambda: Bytes(r.randrange(0, 52))),
            ("cut", "bulk pass", lambda: Record(
                PAGE, nth=r.randrange(1, per_ch), channel=page_ch)),
            ("cut", "device state", lambda: Record(
                DEVICE, offset=r.randrange(0, 40))),
            ("cut", "end of stream", lambda: Record(
                END, offset=r.choice([0, 4, END_RECORD]))),
            ("cut", "return path", lambda: Bytes(r.randrange(0, 24),
                                                 back=True)),
            ("flip", "page", lambda: Record(
                PAGE, nth=r.randrange(1, per_ch),
                offset=r.randrange(0, 4128), channel=page_ch)),
            ("flip", "record", lambda: Record(
                r.choice([CONFIG, DEVICE, END]),
                offset=r.randrange(0, 40))),
            ("stall", "bulk pass", lambda: Record(
                PAGE, nth=r.randrange(1, per_ch), channel=page_ch)),
        ]
        if not ch:
            choices.append(("cut", "later iteration", lambda: Record(
                PAGE, nth=r.randrange(1, 300),
                after=Record(EOI, nth=r.randint(1, 3)))))
        f = r.choice(choices)
        if f is None:
            return None
        kind, where, point = f
        how = {}
        if kind == "cut":
            how["rst"] = r.random() < 0.5
        elif kind == "stall":
            how["seconds"] = round(r.uniform(0.3, 2), 1)
        return kind, where, point(), how

    def configure(self, src, dst, p):
        caps = {"auto-converge": True, "multifd": p["channels"] > 0,
                "xbzrle": p["codec"] == "xbzrle",
                "postcopy-ram": p["mode"] != "precopy"}
        for g in (src, dst):
            g.qmp.cmd("migrate-set-capabilities", capabilities=[
                {"capability": k, "state": v} for k, v in caps.items()
                if g is src or k != "postcopy-ram"])
        params = {"codec-auto": p["codec"] == "auto",
                  "multifd-compression": p["codec"] if p["codec"] in
                  ("zstd", "lz4") else "none",
                  "downtime-limit": 300, "max-bandwidth": p["bandwidth"],
                  "precopy-time-limit": p["limit"]}
        if p["channels"]:
            params["multifd-channels"] = p["channels"]
        src.qmp.cmd("migrate-set-parameters", **params)

    def describe(self, p):
        f = p["fault"]
        fault = "none"
        if f:
            fault = "%s at %s (%r%s)" % (
                f[0], f[1], f[2], "".join(", %s=%s" % kv
                                          for kv in f[3].items()))
        mode = p["mode"]
        if p["limit"]:
            mode += " after %d ms" % p["limit"]
        if p["pc_faults"]:
            fault = "after the switch: " + ", ".join(p["pc_faults"])
        if p["stray"]:
            fault += ", stray " + p["stray"]
        if p["hog"]:
            fault += ", QMP hog on the " + p["hog"]
        return "%s, %d channels, %s, %s, fault %s" % (
            mode, p["channels"], p["codec"],
            "%d MB/s" % (p["bandwidth"] >> 20) if p["bandwidth"]
            else "unlimited", fault)

    def migrate(self):
        self.n += 1
        p = self.plan()
        p["what"] = self.what = self.describe(p)  # before points move on
        src = self.src
        dst = self.guest(incoming=True)
        self.configure(src, dst, p)
        proxy = fp.FaultProxy(dst.incoming_uri())
        if p["fault"]:
            kind, _, point, how = p["fault"]
            getattr(proxy, kind)(point, **how)
        before = usage(src)  # a QMP hog's socket is not the engine's
        stray = self.stray(p["stray"], dst) if p["stray"] else None
        hog = self.hog(src if p["hog"] == "src" else dst) \
            if p["hog"] else None
        src.qmp.events.clear()
        t0 = time.time()
        src.qmp.cmd("migrate", uri=proxy.uri)
        if p["mode"] == "postcopy":
            time.sleep(self.rng.uniform(0, 0.5))
            try:
                src.qmp.cmd("migrate-start-postcopy")
            except ft.QMPError:
                pass  # it completed before
        if p["pc_faults"]:
            self.postcopy_faults(p, src, dst, proxy)
        try:
            s = src.qmp.wait_migration(timeout=240)
        except TimeoutError as e:
            self.problem("outcome", "hung: %s (%s)" % (e, p["what"]))
            src.qmp.cmd("migrate_cancel")
            s = src.qmp.wait_migration(timeout=60)
        seen_ns = time.time_ns()
        fired = [f.kind for f in proxy.fired]
        result = self.judge(p, s, dst, proxy, fired, seen_ns)
        if p["stray"]:
            self.counts["strays"] += 1
            self.check_refused(p, dst)
            if stray:
                stray.close()
        if hog:
            self.counts["hogs"] += 1
            hog.close()
        proxy.close()
        print("# %d: %.1f s, %s -> %s" % (
            self.n, time.time() - t0, p["what"], result),
            flush=True)
        if self.src is src:      # the guest stayed here
            self.check_usage(src, before)
        else:                    # it moved on: the old source retires
            self.check_usage(src, before)
            self.retire(src)
        self.check_processes()

    def refused_head(self, dst, timeout=60):
        """Wait until the destination exits (False) or says it refused
        a connection while still waiting for its migration (True)."""
        deadline = time.time() + timeout
        while dst.proc.poll() is None and time.time() < deadline:
            try:
                d = dst.qmp.cmd("query-migrate")
            except (OSError, ft.QMPError):
                break
            if d.get("status") == "setup" and d.get("refused-connections"):
                return True
            time.sleep(0.05)
        return False

    def check_refused(self, p, dst):
        """The destination, if it still runs, counted its stray."""
        if dst.proc.poll() is not None:
            return
        try:
            d = dst.qmp.cmd("query-migrate")
        except (OSError, ft.QMPError):
            return
        if d.get("status") == "completed" and \
                not d.get("refused-connections"):
            self.problem("outcome", "a stray connection (%s) was not "
                         "refused: %s" % (p["stray"], d))

    def postcopy_faults(self, p, src, dst, proxy):
        """Break the link after the switch, once per fault, and recover
        each time; give the source's pause up if the destination
        finished (its verdict lost on the way)."""
        r = self.rng
        for f in p["pc_faults"]:
            if not wait_status(src, ("postcopy-active",), 60):
                return  # it finished before, or never switched
            time.sleep(r.uniform(0, 0.6))
            try:
                if f == "cut":
                    proxy.cut_now(rst=r.random() < 0.5)
                else:
                    (src if f == "pause-src" else dst).qmp.cmd(
                        "migrate-pause")
            except ft.QMPError:
                return  # it finished meanwhile
            if not wait_status(src, ("postcopy-paused",), 60):
                return
            if not wait_status(dst, ("postcopy-paused",), 60):
                if dst.qmp.cmd("query-migrate").get("status") == \
                        "completed":
                    src.qmp.cmd("migrate_cancel")  # the verdict was lost
                    p["verdict_lost"] = True
                    return
                self.problem("outcome", "the source paused, the "
                             "destination did not: %s" % tail(dst))
                return
            dst.qmp.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
            uri = dst.qmp.cmd("query-migrate")["uri"]
            src.qmp.cmd("migrate", uri=uri, resume=True)
            self.counts["recovered"] += 1

    def judge(self, p, s, dst, proxy, fired, seen_ns):
        """Check one migration's outcome; returns it in words."""
        src = self.src
        faulted = "cut" in fired or "flip" in fired or \
            p.get("verdict_lost")
        if faulted:
            self.counts["faulted"] += 1
            self.counts["cut" if "cut" in fired else "flipped"] += 1
        if "stall" in fired:
            self.counts["stalled"] += 1
        self.heartbeat(proxy)
        desc = s.get("error-desc", "")
        d = dst_outcome(dst)
        out = dst.output()
        if "digest mismatch" in desc + out and "flip" not in fired:
            self.problem("digest", "digest mismatch with no flipped "
                         "byte: %s | %s" % (desc, tail(dst)))
        if d.get("status") == "completed" and d.get("verified") is not True:
            self.problem("digest", "the destination resumed an unverified "
                         "guest: %s" % d)
        if s["status"] == "completed":
            if s.get("verified") is not True or \
                    d.get("status") != "completed" or \
                    d.get("verified") is not True:
                self.problem("lost", "the source completed, the "
                             "destination says %s: %s" % (d, tail(dst)))
            else:
                self.counts["verified"] += 1
            if p["pc_faults"] and s.get("postcopy-recoveries", 0) != \
                    d.get("postcopy-recoveries", 0):
                self.problem("outcome", "recoveries differ: source %s, "
                             "destination %s" % (
                                 s.get("postcopy-recoveries"),
                                 d.get("postcopy-recoveries")))
            self.src = dst
            self.ticked_after = None
            return "completed, verified"
        if s["status"] != "failed":
            self.problem("outcome", "source ended %s" % s)
            self.retire(dst, expect_rc=None)
            if not src.qmp.cmd("query-status")["running"]:
                self.new_guest()
            return s["status"]
        if not faulted:
            self.problem("outcome", "failed with no fault (%s): %s | %s" %
                         (p["what"], desc, tail(dst)))
        if not desc:
            self.problem("outcome", "failed without a reason: %s" % s)
        st = src.qmp.cmd("query-status")
        events = [e["data"]["status"] for e in src.qmp.events
                  if e["event"] == "MIGRATION"]
        if d.get("status") == "completed":
            # the whole state went out and the verdict was lost: the
            # destination runs the guest; the source must not
            if st["running"]:
                self.problem("lost", "two copies run: the destination "
                             "resumed and so did the source (%s)" % desc)
            elif STOPPED_SAYS not in desc:
                self.problem("outcome", "the source stays stopped and "
                             "does not say so: %r" % desc)
            self.counts["moved_on_cut"] += 1
            self.src = dst
            self.ticked_after = None
            return "failed on the source (%s); the destination runs it, " \
                "verified" % desc[:80]
        # a cut inside the stream head is a stray to the destination:
        # it refuses that connection and listens on, with nothing taken
        if d.get("status") == "setup" and self.refused_head(dst):
            self.retire(dst)
            return "failed (%s), source %s; the destination refused " \
                "the connection and listened on" % (
                    desc[:80], "running" if st["running"] else "stopped")
        # the destination gave up: it exits 1 and resumed nothing
        rc = dst.proc.wait(timeout=60)
        if rc != 1 or "incoming migration failed" not in out or \
                "migration: completed" in out or "guest running" in out:
            self.problem("outcome", "destination exited %s: %s" % (
                rc, tail(dst)))
        self.retire(dst, expect_rc=rc)
        if src.proc.poll() is not None:
            self.problem("lost", "the source died: %s" % tail(src))
            self.src = None
            self.new_guest()
            return "source died"
        how = "source running"
        if not st["running"]:
            how = "source stopped, resumed by cont"
            if "device" not in events:
                self.problem("lost", "the source stopped its guest before "
                             "switch-over: %s %s" % (st, events))
            elif STOPPED_SAYS not in desc:
                self.problem("outcome", "the source stays stopped and "
                             "does not say so: %r" % desc)
            src.qmp.cmd("cont", **{"x-force": True})
            seen_ns = time.time_ns()
            st = src.qmp.cmd("query-status")
            if not st["running"]:
                self.problem("lost", "cont did not resume: %s" % st)
        self.ticked_after = seen_ns
        return "failed (%s), %s; destination refused" % (desc[:80], how)

    def heartbeat(self, proxy):
        """The last heartbeat section that went by must have ticked after
        the previous failure of this guest."""
        hb = [d for n, i, v, d in proxy.devices() if n == "heartbeat"]
        if not hb or self.ticked_after is None:
            return
        last = int.from_bytes(hb[-1][16:24], "little")
        if last <= self.ticked_after:
            self.problem("lost", "heartbeat: last tick at %d ns, not after "
                         "the failure seen at %d ns" % (
                             last, self.ticked_after))
        self.ticked_after = None

    def check_usage(self, g, before):
        """Files and threads back to what they were (the migration's
        threads and sockets go once it has ended)."""
        deadline = time.time() + 10
        now = usage(g)
        while now != before and time.time() < deadline:
            time.sleep(0.1)
            now = usage(g)
        if now is None or before is None:
            return
        if now[0] != before[0]:
            self.problem("fd", "%d open files before, %d after: %s" % (
                before[0], now[0], fd_names(g)))
        if now[1] != before[1]:
            self.problem("fd", "%d threads before, %d after" % (
                before[1], now[1]))

    def check_processes(self):
        """Our children are exactly the guests that must run; they have
        none of their own."""
        mine = {g.proc.pid for g in self.live}
        kids = children(os.getpid())
        for pid, state in kids.items():
            if state == "Z":
                self.problem("process", "zombie process %d" % pid)
            elif pid not in mine:
                self.problem("process", "stray child process %d" % pid)
        for pid in mine:
            if pid not in kids:
                self.problem("lost", "process %d is gone" % pid)
            for k in children(pid):
                self.problem("process",
                             "ferry %d has a child %d" % (pid, k))


def wait_status(g, states, timeout):
    """Wait until g's migration is in one of `states`; False if it ended
    (completed, failed, cancelled) or the time ran out first."""
    try:
        info = g.qmp.wait_migration(
            states + ("completed", "failed", "cancelled"), timeout)
    except TimeoutError:
        return False
    return info["status"] in states


def dst_outcome(dst, timeout=60):
    """The destination's query-migrate once it ended, or {} if it
    exited."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if dst.proc.poll() is not None:
            return {}
        try:
            d = dst.qmp.cmd("query-migrate")
        except (OSError, ft.QMPError):
            dst.proc.wait(timeout=30)
            return {}
        if d.get("status") == "completed":
            return d
        if d.get("status") == "setup" and d.get("refused-connections"):
            return d  # it refused a connection cut in its head: listens
        time.sleep(0.05)
    return {"status": "hung"}


def usage(g):
    try:
        return (len(os.listdir("/proc/%d/fd" % g.proc.pid)),
                len(os.listdir("/proc/%d/task" % g.proc.pid)))
    except OSError:
        return None


def fd_names(g):
    names = []
    d = "/proc/%d/fd" % g.proc.pid
    for fd in sorted(os.listdir(d), key=int):
        try:
            names.append("%s=%s" % (fd, os.readlink(os.path.join(d, fd))))
        except OSError:
            pass
    return " ".join(names)


def children(ppid):
    """{pid: state} of the processes whose parent is ppid."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            out[int(name)] = fields[0]
    return out


def tail(g, n=1500):
    return re.sub(r"\s+", " ", g.output()[-n:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--qmp-hog", action=argparse.BooleanOptionalAction,
                    default=True,
                    help="QMP clients that never read their replies")
    ap.add_argument("ferry", nargs="?", default=ft.FERRY)
    a = ap.parse_args()
    ft.FERRY = a.ferry
    seed = a.seed if a.seed is not None else int(time.time())
    print("# soak: %g s, seed %d (--seed %d repeats the choices)" % (
        a.seconds, seed, seed), flush=True)
    tmp = tempfile.mkdtemp(prefix="ferry-soak-")
    ft._tmpdirs.append(tmp)
    soak = Soak(random.Random(seed), tmp, a.qmp_hog)
    t0 = time.time()
    soak.new_guest()
    while time.time() - t0 < a.seconds:
        soak.migrate()
        if soak.rng.random() < 0.15:
            soak.new_guest()
    soak.retire(soak.src)
    soak.check_processes()
    c = soak.counts
    print("# %d migrations in %.0f s: %d faulted (%d cut, %d flipped), "
          "%d stalled, %d verified; %d cut after the whole state went "
          "out and ran on the destination; %d post-copy recoveries" % (
              soak.n, time.time() - t0, c["faulted"], c["cut"],
              c["flipped"], c["stalled"], c["verified"],
              c["moved_on_cut"], c["recovered"]), flush=True)
    print("# %d with a stray connection, %d with a QMP client that never "
          "reads" % (c["strays"], c["hogs"]), flush=True)
    tap = ft.TAP()
    tap.run("soak: %d migrations, %d faulted, %d verified (seed %d)" % (
        soak.n, c["faulted"], c["verified"], seed),
        lambda: None if soak.n and c["verified"] else
        fail("no migration verified"))
    for k in KINDS:
        tap.run(KIND_TITLE[k], lambda k=k: fail(
            "%d: %s" % (len(soak.problems[k]), soak.problems[k][0][:500]))
            if soak.problems[k] else None)
    tap.done()


def fail(msg):
    raise AssertionError(msg)


if __name__ == "__main__":
    main()
