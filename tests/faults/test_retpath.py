#!/usr/bin/env python3
"""test_retpath.py - a source against a destination that breaks the rules
of the return path (docs/stream.md, "Return path").  Prints TAP.

A proxy (faultproxy.py, with one more fault: inject) sits between source
and destination and, at a point of the source's stream, writes messages
to the source as if the destination had sent them:

- a success verdict before the source has sent its end of stream;
- a flood of resend messages for one page;
- malformed messages: an unknown type (after a valid message, so that
  the byte offset is not 0), a bad length, a bad block id, a misaligned
  offset, a reserved byte set.

In each case the source fails with a protocol violation that names the
message (its type and its byte offset on the return path) and what was
wrong, never the reset that follows; its guest runs on; nothing reports
completed.  While it injects, the proxy stops reading the source's main
connection (until the source has failed), so the source cannot finish
its stream meanwhile: every message lands before the end of stream."""
import os
import re
import select
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
sys.path.insert(0, HERE)
import ferrytest as ft  # noqa: E402
import faultproxy as fp  # noqa: E402
from faultproxy import (Record, PAGE, CONFIG, RESULT, RESEND,  # noqa: E402
                        SYNC_ACK, PAGE_REQUEST, RUNNING)

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

tap = ft.TAP()
VIOLATION = "protocol violation on the return path"
RESET = "Connection reset"
FLOOD_BYTES = 128 << 20  # of resend messages: 2 GiB of entries unmerged
RSS_BOUND = 64 << 20     # what the source may grow by meanwhile


def message(type, body=b"", r1=0, r2=0):
    """A return-path message: type u8 | reserved u8 | reserved le16 |
    length le32 | body."""
    return struct.pack("<BBHI", type, r1, r2, len(body)) + body


def entry(block, offset, reserved=0):
    """A resend entry or a page request's body."""
    return struct.pack("<IIQ", block, reserved, offset)


class InjectProxy(fp.FaultProxy):
    """faultproxy with one more fault: inject(point, data) writes `data`
    to the source, on that connection's return path, when the point of
    the source's stream goes by; `repeat` times over.  Until release_src()
    it then reads no more from the source on that connection, so the
    source's sends block once the socket buffers are full."""

    def __init__(self, target_uri):
        super().__init__(target_uri)
        self.src_flowing = threading.Event()
        self.injected = 0       # bytes the source took
        self.config = None      # the configuration record's body

    def inject(self, point, data, repeat=1):
        """`data`: bytes, or a function of the proxy that returns them
        when the point goes by (the configuration is known then)."""
        f = self._arm("inject", point, data=data, repeat=repeat)
        f.ended = threading.Event()  # the injection is over
        return f

    def release_src(self):
        self.src_flowing.set()

    def blocks(self):
        """{name: id} of the source's RAM blocks, from its configuration."""
        out, body = {}, self.config
        count, pos = struct.unpack_from("<I", body, 4)[0], 8
        for _ in range(count):
            bid, nlen, _, _ = struct.unpack_from("<IHHQ", body, pos)
            out[body[pos + 16:pos + 16 + nlen].decode()] = bid
            pos += 16 + nlen
        return out

    def _read(self, d, heads, whole):
        for t, body in whole:
            if t == CONFIG and not d.back and self.config is None:
                self.config = body
        super()._read(d, heads, whole)

    def _fire(self, d, f):
        if f.kind != "inject":
            return super()._fire(d, f)
        f.done, f.when = True, time.time()
        with self.lock:
            self.fired.append(f)
        try:
            return self._inject(d, f)
        finally:
            f.ended.set()

    def _inject(self, d, f):
        # the destination is silent here (an idle guest: no check
        # records, so no acknowledgements or resends): nothing of its own
        # interleaves with these bytes on the way to the source
        src = d.conn.client
        what = f.how["data"]
        if callable(what):
            what = what(self)
        for _ in range(f.how["repeat"]):
            data = what
            while data:
                try:
                    n = src.send(data)
                except BlockingIOError:
                    select.select([], [src], [], 0.1)
                    continue
                except OSError:  # the source hung up, as it should
                    f.ended.set()
                    return self._hold(d)
                self.injected += n
                data = data[n:]
        f.ended.set()
        return self._hold(d)

    def _hold(self, d):
        """Read nothing more from the source until release_src()."""
        while not self.src_flowing.wait(0.1):
            with d.conn.lock:
                if d.conn.dead:
                    return False
        return True


def vm_hwm(pid):
    """Peak and current resident set of process `pid`, in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) * 1024
    return out["VmHWM"], out["VmRSS"]


class Case:
    """An idle guest pair and an InjectProxy between them."""

    def __init__(self, ram="128M", params=None):
        self.args = ["--ram", ram, "--vcpus", "1", "--workload", "idle",
                     "--fill", "random"]
        self.dst = ft.Guest("dst", self.args, incoming="tcp:127.0.0.1:0")
        self.src = ft.Guest("src", self.args, tmp=self.dst.tmp)
        if params:
            self.src.qmp.cmd("migrate-set-parameters", **params)
        self.proxy = InjectProxy(self.dst.incoming_uri())

    def start(self):
        self.src.qmp.cmd("migrate", uri=self.proxy.uri)

    def failed(self, *wants):
        """The source failed with a protocol violation whose error says
        each of `wants` (regular expressions), and not the reset; its
        guest runs on."""
        try:
            s = self.src.qmp.wait_migration(timeout=120)
        finally:
            self.proxy.release_src()
        assert self.proxy.fired, "the injection never fired: %s" % s
        assert s["status"] == "failed", s
        desc = s.get("error-desc", "")
        print("# source: " + desc[:300], flush=True)
        assert desc.startswith(VIOLATION), desc
        for w in wants:
            assert re.search(w, desc), (w, desc)
        assert RESET not in desc, desc
        st = self.src.qmp.cmd("query-status")
        assert st["running"] and st["status"] == "running", st
        assert self.src.ticking(), "the source's heartbeat stopped"
        return s

    def refused(self):
        """The destination completed nothing and runs nothing."""
        rc = self.dst.proc.wait(timeout=60)
        out = self.dst.output()
        assert rc == 1, (rc, out[-2000:])
        assert "migration: completed" not in out, out[-2000:]
        assert "guest running" not in out, out[-2000:]
        events = [e["data"]["status"] for e in self.src.qmp.events
                  if e["event"] == "MIGRATION"]
        assert "completed" not in events, events

    def finish(self):
        self.proxy.close()
        assert self.src.quit() == 0, self.src.output()[-2000:]


def t_early_success():
    """A success verdict while the source is still sending (max-bandwidth
    set, as in the report: the source sleeps between batches): it answers
    no end of stream, so it is a protocol violation; the source fails and
    runs on, the destination never gets the end and resumes nothing."""
    c = Case(params={"max-bandwidth": 64 << 20})
    c.proxy.inject(Record(PAGE, nth=2000),
                   message(RESULT, struct.pack("<II", 0, 0) + b"resumed"))
    c.start()
    c.failed(r"at byte 0, result message \(type 1, 15-byte body\)",
             "success verdict before the source sent its end of stream")
    c.refused()
    c.finish()


def t_resend_flood():
    """128 MiB of resend messages, each 256 entries for the same page:
    the source keeps a bit per page, so the second request for that page
    (before the next sync) is a protocol violation that names it, and the
    source does not grow meanwhile."""
    c = Case()
    hwm0, rss0 = vm_hwm(c.src.proc.pid)

    def flood(proxy):  # one page of the source's first block
        one = message(RESEND, entry(proxy.blocks()["ram0"], 5 * 4096) * 256)
        return one * ((1 << 20) // len(one))
    f = c.proxy.inject(Record(PAGE, nth=2000), flood,
                       repeat=FLOOD_BYTES // (1 << 20))
    c.start()
    # the source took the whole flood, or hung up on it
    deadline = time.time() + 120
    while not f.ended.wait(0.1) and time.time() < deadline:
        pass
    assert f.ended.is_set(), "the flood did not end"
    hwm1, rss1 = vm_hwm(c.src.proc.pid)
    print("# source: peak RSS %d -> %d MiB, RSS %d -> %d MiB, %d bytes "
          "of the flood taken" % (hwm0 >> 20, hwm1 >> 20, rss0 >> 20,
                                  rss1 >> 20, c.proxy.injected),
          flush=True)
    assert hwm1 - hwm0 < RSS_BOUND, (hwm0, hwm1)
    assert rss1 - rss0 < RSS_BOUND, (rss0, rss1)
    c.failed(r"at byte 0, resend message \(type 2, 4096-byte body\)",
             r"entry 1: page 5 of block ram0 asked for again a second "
             r"time before the next sync")
    c.refused()
    c.finish()


def malformed(data, *wants):
    """A malformed message (after any valid ones in `data`)."""
    def t():
        c = Case(ram="64M")
        c.proxy.inject(Record(PAGE, nth=2000), data)
        c.start()
        c.failed(*wants)
        c.refused()
        c.finish()
    return t


ACK0 = message(SYNC_ACK, struct.pack("<QH6x", 0, 0))  # valid, acks nothing

for name, fn in [
    ("a success verdict before the end of stream: protocol violation, "
     "the source runs on, nothing completes", t_early_success),
    ("a flood of resend messages for one page: protocol violation, the "
     "source does not grow and runs on", t_resend_flood),
    ("an unknown message type after a valid message: its type, offset "
     "and reason reach query-migrate",
     malformed(ACK0 + message(9, b"\0" * 16),
               r"at byte 24, unknown message \(type 9, 16-byte body\): "
               r"unknown type")),
    ("a sync-ack of the wrong length: named, with the length it must have",
     malformed(message(SYNC_ACK, b"\0" * 20),
               r"at byte 0, sync-ack message \(type 3, 20-byte body\): "
               r"body length must be 16")),
    ("a resend for a block the configuration did not declare: the entry "
     "and the block id are named",
     malformed(message(RESEND, entry(0, 0) + entry(77, 0)),
               r"resend message \(type 2, 32-byte body\): entry 1: "
               r"block id 77 is not in the configuration")),
    ("a page request at a misaligned offset: the offset is named",
     malformed(message(PAGE_REQUEST, entry(0, 0x1001)),
               r"page request message \(type 4, 16-byte body\): offset "
               r"0x1001 is not page-aligned")),
    ("a reserved byte set in a message header: the byte is named",
     malformed(message(RUNNING, r1=1),
               r"running message \(type 5, 0-byte body\): reserved byte 1 "
               r"is 0x01, not 0")),
]:
    if os.environ.get("FERRY_TEST_ONLY", "") in name:
        tap.run(name, fn)
tap.done()
