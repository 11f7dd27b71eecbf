#!/usr/bin/env python3
"""test_faults.py - pre-copy migrations broken on purpose by a proxy
(faultproxy.py) at points spread over the stream: setup, the bulk pass, a
later iteration, switch-over, device state, the end of stream; a page
channel of multifd; bytes flipped in a page, a record header and device
state; a stalled link.  Prints TAP.

After each fault:
- the source's query-migrate says `failed` with an error naming the cause;
- its guest runs on (query-status), and its heartbeat ticked after the
  failure: the next migration carries a heartbeat section whose last tick
  is later than the moment the failure was seen;
- the destination exits with status 1 and says why, and never reported a
  completed migration or a running guest;
- a second migration from the same source to a fresh destination
  completes, verified on both sides.  It goes through a proxy too, with no
  fault armed: only to read the heartbeat section it carries.

Cut once the whole state has gone out, the source cannot tell whether
the destination resumed (docs/stream.md, "Return path"): its guest stays
stopped, the error says so, and `cont` resumes it.  Cut before the end of
stream reached the destination, nothing resumed there; cut after, the
destination runs the guest, verified, and the source must stay stopped.

Post-copy faults are in test_postcopy.py: the link cut at three points
and stalled, each recovered (post-copy recovery), and a flipped byte."""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import ferrytest as ft  # noqa: E402
import faultproxy as fp  # noqa: E402
from faultproxy import (Bytes, Record, PAGE, DEVICE, EOI,  # noqa: E402
                        END, END_RECORD, PAGE_PAYLOAD, DEVICE_NAME)

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

tap = ft.TAP()
# the second migration must converge whatever the first one was given
AGAIN = {"downtime-limit": 300, "max-bandwidth": 0}
STOPPED_SAYS = "stays stopped"  # docs/stream.md: "fails with a message
#                                 that says so"
# the source's reasons: a write failed (the destination's verdict cannot
# come through a cut), or the connection went with no verdict
SENDING = r"sending to the destination: (Broken pipe|Connection reset)"
NO_VERDICT = r"no verdict from the destination"


class Case:
    """One guest pair and a proxy between them."""

    def __init__(self, workload, ram="128M", fill="random", caps=(),
                 params=None):
        self.args = ["--ram", ram, "--vcpus", "2", "--workload", workload,
                     "--fill", fill]
        self.caps = [{"capability": c, "state": True}
                     for c in ("auto-converge",) + tuple(caps)]
        self.dst = ft.Guest("dst", self.args, incoming="tcp:127.0.0.1:0")
        self.src = ft.Guest("src", self.args, tmp=self.dst.tmp)
        for g in (self.src, self.dst):
            g.qmp.cmd("migrate-set-capabilities", capabilities=self.caps)
        if params:
            self.src.qmp.cmd("migrate-set-parameters", **params)
        self.proxy = fp.FaultProxy(self.dst.incoming_uri())
        self.bugs = []  # reported after the other checks

    def start(self, warmup=0.2):
        time.sleep(warmup)  # let the workload dirty its pages
        self.src.qmp.cmd("migrate", uri=self.proxy.uri)

    def failed(self, cause):
        """The source's verdict: failed, its error matching `cause`."""
        s = self.src.qmp.wait_migration(timeout=120)
        self.seen_ns = time.time_ns()
        assert self.proxy.fired, "the fault never fired: %s" % s
        assert s["status"] == "failed", s
        desc = s.get("error-desc", "")
        assert desc and re.search(cause, desc), desc
        print("# source: " + desc[:200], flush=True)
        return s

    def running(self):
        st = self.src.qmp.cmd("query-status")
        assert st["running"] and st["status"] == "running", st

    def stopped(self, s):
        """Stopped, and the error says so (docs/stream.md)."""
        st = self.src.qmp.cmd("query-status")
        assert not st["running"], st
        assert STOPPED_SAYS in s["error-desc"], s["error-desc"]
        assert "'cont'" in s["error-desc"], s["error-desc"]

    def refused(self, cause):
        """The destination exited 1, said why, and resumed nothing."""
        rc = self.dst.proc.wait(timeout=60)
        out = self.dst.output()
        assert rc == 1, (rc, out[-2000:])
        m = re.search(r"incoming migration failed: (.*)", out)
        assert m, out[-2000:]
        assert re.search(cause, m.group(1)), m.group(1)
        assert "migration: completed" not in out, out[-2000:]
        assert "guest running" not in out, out[-2000:]
        print("# destination: " + m.group(1)[:200], flush=True)
        return m.group(1)

    def heartbeat(self, proxy):
        """(ticks, last tick in ns) of the last heartbeat section that
        went by, or None."""
        hb = [d for n, i, v, d in proxy.devices() if n == "heartbeat"]
        if not hb:
            return None
        return (int.from_bytes(hb[-1][0:8], "little"),
                int.from_bytes(hb[-1][16:24], "little"))

    def again(self):
        """A second migration to a fresh destination completes, verified,
        and the guest's heartbeat ticked after the failure."""
        before = self.heartbeat(self.proxy)
        dst = ft.Guest("dst2", self.args, incoming="tcp:127.0.0.1:0",
                       tmp=self.src.tmp)
        dst.qmp.cmd("migrate-set-capabilities", capabilities=self.caps)
        watch = fp.FaultProxy(dst.incoming_uri())  # no fault: it reads
        self.src.qmp.cmd("migrate-set-parameters", **AGAIN)
        self.src.qmp.cmd("migrate", uri=watch.uri)
        s, d = self.src.qmp.wait_migration(), dst.qmp.wait_migration()
        assert not watch.fired
        assert s["status"] == "completed" and d["status"] == "completed", \
            (s, d)
        assert s.get("verified") is True and d.get("verified") is True, \
            (s, d)
        after = self.heartbeat(watch)
        assert after, watch.devices()
        assert after[1] > self.seen_ns, \
            "heartbeat: last tick %d ns, failure seen at %d ns" % (
                after[1], self.seen_ns)
        if before:
            assert after[0] > before[0], (before, after)
        assert dst.qmp.cmd("query-status")["running"]
        assert dst.quit() == 0, dst.output()[-2000:]
        watch.close()

    def finish(self):
        self.proxy.close()
        rc = self.src.quit()
        if rc != 0:
            self.bugs.append("source exited %d: %s" % (
                rc, self.src.output()[-2000:]))
        if self.bugs:
            raise AssertionError("; ".join(self.bugs))


def offset_of(dst_reason):
    m = re.search(r"stream offset (\d+)", dst_reason)
    assert m, dst_reason
    return int(m.group(1))


def cut_precopy(workload, point, check=None, params=None, rst=False,
                ram="128M"):
    """Cut while the source's guest runs (or, at switch-over, is stopped
    with pages still to send): the source fails, resumes or keeps its
    guest running, and migrates again."""
    def t():
        c = Case(workload, ram=ram, params=params)
        f = c.proxy.cut(point(), rst=rst)
        c.start()
        s = c.failed(SENDING)
        c.running()
        why = c.refused("stream offset")
        # the destination read every byte before the cut, none after
        # (a reset may drop some it had not read yet)
        assert offset_of(why) <= f.pos if rst else \
            offset_of(why) == f.pos, (why, f.pos)
        if check:
            check(c, s, f)
        c.again()
        c.finish()
    return t


def t_cut_header():
    """Inside the stream header: for the destination that is a
    connection that never gave a whole head, a stray, so it refuses that
    one and keeps listening; the source fails and runs on, and migrates
    again to the same destination, verified."""
    c = Case("idle")
    c.proxy.cut(Bytes(10))
    c.start()
    c.failed(SENDING)
    c.running()
    d = c.dst.qmp.cmd("query-migrate")
    deadline = time.time() + 60
    while not d.get("refused-connections") and time.time() < deadline:
        time.sleep(0.05)
        d = c.dst.qmp.cmd("query-migrate")
    assert d.get("refused-connections") == 1, d
    assert d["status"] == "setup", d
    assert c.dst.proc.poll() is None
    c.src.qmp.cmd("migrate-set-parameters", **AGAIN)
    c.src.qmp.cmd("migrate", uri=c.dst.incoming_uri())
    s, d = c.src.qmp.wait_migration(), c.dst.qmp.wait_migration()
    assert s.get("verified") is True and d.get("verified") is True, (s, d)
    c.src.quit(), c.dst.quit()


def in_bulk(c, s, f):
    assert c.proxy.seen(EOI) == 0, "past the bulk pass"


def in_later_iteration(c, s, f):
    assert s["ram"]["iterations"] >= 2, s["ram"]
    assert c.proxy.seen(DEVICE) == 0, "reached switch-over"


def in_switchover(c, s, f):
    events = [e["data"]["status"] for e in c.src.qmp.events
              if e["event"] == "MIGRATION"]
    assert "device" in events, events  # the source had stopped its guest
    assert c.proxy.seen(DEVICE) == 0, "pages were all sent"


def t_cut_device():
    """Inside device state (the source's guest is stopped).  Device
    sections and the end of stream are a few hundred bytes: the source has
    usually written them all by the time the cut reaches it, and then
    cannot know that the destination did not get them: it stays stopped
    and says so.  If its writes were still going on, it resumes its guest
    instead.  The destination resumes nothing either way."""
    c = Case("stress:bytes=32M")
    f = c.proxy.cut(Record(DEVICE, offset=12))
    c.start()
    s = c.failed(SENDING + "|" + NO_VERDICT)
    why = c.refused("stream offset")
    assert offset_of(why) == f.pos, (why, f.pos)
    assert c.proxy.seen(DEVICE) >= 1
    if c.src.qmp.cmd("query-status")["running"]:
        print("# the source was still writing: it resumed its guest")
    else:
        c.stopped(s)
        c.src.qmp.cmd("cont", **{"x-force": True})  # it may run there
    c.running()
    c.again()
    c.finish()


def t_cut_end():
    """At the end-of-stream record, before any byte of it goes through:
    the source has sent everything and hears nothing back, so its guest
    stays stopped and its error says so; the destination never got the
    end, resumes nothing and exits; `cont` resumes the source, which
    then migrates, verified."""
    c = Case("stress:bytes=32M")
    f = c.proxy.cut(Record(END))
    c.start()
    s = c.failed(NO_VERDICT)
    c.stopped(s)
    why = c.refused("stream offset")
    assert offset_of(why) == f.pos, (why, f.pos)
    c.src.qmp.cmd("cont", **{"x-force": True})  # it may run there
    c.running()
    c.again()
    c.finish()


def t_cut_after_end():
    """Just after the end-of-stream record, before the destination's
    verdict comes back: the destination has the whole guest, verifies and
    runs it; the source cannot know, so it must stay stopped and say so
    (resuming it would run the guest twice)."""
    c = Case("stress:bytes=32M")
    c.proxy.cut(Record(END, offset=END_RECORD))
    c.start()
    s = c.failed(NO_VERDICT)
    c.stopped(s)
    d = c.dst.qmp.wait_migration(timeout=60)
    assert d["status"] == "completed" and d.get("verified") is True, d
    assert c.dst.qmp.cmd("query-status")["running"]
    assert c.dst.proc.poll() is None
    time.sleep(0.2)  # still stopped a moment later
    assert not c.src.qmp.cmd("query-status")["running"]
    assert c.dst.quit() == 0, c.dst.output()[-2000:]
    c.finish()


def t_cut_channel():
    """A multifd page channel (2 of 3) is cut during the bulk pass: the
    migration fails with that channel's reason on both sides, the source
    runs on and migrates again over multifd, verified."""
    c = Case("stress:bytes=32M", caps=("multifd",),
             params={"multifd-channels": 3})
    f = c.proxy.cut(Record(PAGE, nth=1000, channel=2))
    c.start()
    s = c.failed(r"channel 2: stream offset")
    c.running()
    why = c.refused(r"channel \d: stream offset")
    assert c.proxy.connections() == 4, c.proxy.connections()
    # the channel that failed first, not one that failed because of it
    cause = "channel 2: stream offset %d" % f.pos
    assert cause in why, (cause, why)
    assert cause in s["error-desc"], (cause, s["error-desc"])
    # and what the offset means, said once, on both sides
    meant = "(byte %d of what the peer sent on that connection)" % f.pos
    assert why.count(meant) == 1, why
    assert s["error-desc"].count(meant) == 1, s["error-desc"]
    c.again()
    c.finish()


def flipped(workload, point, dst_cause, check=None):
    """A flipped byte: the destination refuses the guest (the decoder,
    a device's loader or the digest), the source runs on."""
    def t():
        c = Case(workload)
        f = c.proxy.flip(point())
        c.start()
        s = c.failed("destination: .*" + dst_cause)  # the destination's
        c.running()
        why = c.refused(dst_cause)
        if check:
            check(c, s, f, why)
        c.again()
        c.finish()
    return t


def t_flip_device_length():
    """A flipped bit in the first device record's length makes it 4 MiB
    longer, still within the limit.  The record's own first 16 bytes (name
    and data lengths) disagree with that length, so the destination
    refuses it at once (not after waiting for 4 MiB that never come), and
    the source, hearing why, resumes its guest."""
    c = Case("idle", ram="64M")
    c.proxy.flip(Record(DEVICE, nth=1, offset=6))  # length bits 16-23
    c.start()
    s = c.failed("destination: .*disagree with the record length")
    c.refused("disagree with the record length")
    c.running()
    c.again()
    c.finish()


def at_record_start(c, s, f, why):
    assert offset_of(why) == f.pos, (why, f.pos)


def t_stall():
    """The link stalls for 2 s in the bulk pass (nothing read, nothing
    forwarded): the guest runs through it, and the migration then
    completes, verified."""
    c = Case("zipf:rate=5000")
    c.proxy.stall(Record(PAGE, nth=2000), seconds=2)
    c.start()
    t0 = time.time()
    while not c.proxy.fired and time.time() - t0 < 60:
        time.sleep(0.01)
    assert c.proxy.fired
    assert c.src.qmp.cmd("query-migrate")["status"] == "active"
    c.running()
    s, d = c.src.qmp.wait_migration(), c.dst.qmp.wait_migration()
    assert s["status"] == "completed" and d["status"] == "completed", (s, d)
    assert s.get("verified") is True and d.get("verified") is True, (s, d)
    assert s["total-time"] >= 2000, s["total-time"]
    assert c.dst.quit() == 0, c.dst.output()[-2000:]
    c.finish()


def t_dead_link_cancel():
    """The link goes dead in the bulk pass and stays dead: the source is
    stuck writing, and migrate_cancel still ends the migration; the guest
    runs on.  Once the link comes back the destination learns and exits;
    a second migration is verified."""
    c = Case("zipf:rate=5000")
    c.proxy.stall(Record(PAGE, nth=2000))
    c.start()
    t0 = time.time()
    while not c.proxy.fired and time.time() - t0 < 60:
        time.sleep(0.01)
    assert c.proxy.fired
    time.sleep(0.5)
    assert c.src.qmp.cmd("query-migrate")["status"] == "active"
    c.src.qmp.cmd("migrate_cancel")
    s = c.src.qmp.wait_migration(timeout=60)
    c.seen_ns = time.time_ns()
    assert s["status"] == "cancelled", s
    c.running()
    c.proxy.release()
    c.refused("cancel|stream offset|reset|ended")
    c.again()
    c.finish()


for name, fn in [
    ("cut in setup (inside the stream header): source runs, the "
     "destination refuses that connection and listens on, migrates to it "
     "verified", t_cut_header),
    ("cut in the bulk pass (page 2000, reset): source runs, "
     "migrates again verified",
     cut_precopy("idle", lambda: Record(PAGE, nth=2000), in_bulk,
                 rst=True)),
    ("cut in a later iteration (after iteration 2): source runs, "
     "migrates again verified",
     cut_precopy("stress:bytes=64M",
                 lambda: Record(PAGE, nth=50, after=Record(EOI, nth=2)),
                 in_later_iteration, {"downtime-limit": 1})),
    ("cut at switch-over (guest stopped, pages to go): source resumes, "
     "migrates again verified",
     cut_precopy("stress:bytes=64M",
                 lambda: Record(PAGE, nth=500, after=Record(EOI, nth=1)),
                 in_switchover, {"downtime-limit": 2000000,
                                 "max-bandwidth": 100 << 20})),
    ("cut inside device state: nothing resumes twice, migrates again "
     "verified", t_cut_device),
    ("cut at the end of stream: source stays stopped and says so, cont, "
     "migrates again verified", t_cut_end),
    ("cut after the end of stream: destination runs it, source stays "
     "stopped and says so", t_cut_after_end),
    ("cut on a multifd page channel: source runs, migrates again "
     "verified", t_cut_channel),
    ("flipped byte in a page: digest mismatch, nothing resumes",
     flipped("idle", lambda: Record(PAGE, nth=300,
                                    offset=PAGE_PAYLOAD + 100),
             "digest mismatch")),
    ("flipped byte in a record header: the decoder refuses it",
     flipped("idle", lambda: Record(PAGE, nth=500),
             "unknown record type", at_record_start)),
    ("flipped byte in a vCPU section: its loader refuses it",
     flipped("stress:bytes=32M",
             # the first byte of cpu 0's data: its workload's name
             lambda: Record(DEVICE, nth=1, offset=DEVICE_NAME + len("cpu")),
             "cpu 0")),
    ("flipped byte in the heartbeat's state: the digest catches it",
     flipped("stress:bytes=32M",
             # cpu 0, cpu 1, then the heartbeat: its tick count
             lambda: Record(DEVICE, nth=3,
                            offset=DEVICE_NAME + len("heartbeat")),
             "digest mismatch")),
    ("flipped byte in a device record's length: refused at once, "
     "source runs", t_flip_device_length),
    ("stalled link for 2 s: the guest runs, then completes verified",
     t_stall),
    ("dead link: migrate_cancel ends it, source runs, migrates again",
     t_dead_link_cancel),
]:
    if os.environ.get("FERRY_TEST_ONLY", "") in name:
        tap.run(name, fn)
tap.done()
