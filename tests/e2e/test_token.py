#!/usr/bin/env python3
"""test_token.py - an extra connection must carry the migration's token
(docs/stream.md, "6 - channel"), not just its session id.  A stranger
learns the session id the way an eavesdropper would, from the channel
records that go by on the link (tests/faults/faultproxy.py between source
and destination), and connects straight to the destination with it: as a
multifd page channel while the real ones join, and as post-copy
recovery's reconnection.  With a wrong token, or in the old layout
without one, it is refused (refused-connections and refused-reason say
why) and the real migration completes, verified on both sides.  Prints
TAP."""
import json
import os
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "faults"))
import ferrytest as ft  # noqa: E402
import faultproxy as fp  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

tap = ft.TAP()
F_MULTIFD, F_POSTCOPY, F_RESUME = 1 << 0, 1 << 5, 1 << 6
WRONG = b"\x5a" * 16


def head(flags, session, index, count, token=WRONG, layout=2, mib=64):
    """A stream head naming `session`: the header, the channel record
    (layout 2: with the token; layout 1: version 1's record, 16 bytes
    and no token, under a version-1 header; "short": version 1's record
    under a version-2 header) and a configuration of one block."""
    version = 1 if layout == 1 else 2
    out = b"FERRYMIG" + struct.pack("<HHI", version, 16, flags)
    body = struct.pack("<QHHI", session, index, count, 0)
    if layout == 2:
        body += token
    out += struct.pack("<BBHI", 6, 0, 0, len(body)) + body
    name = b"ram0"
    cfg = struct.pack("<II", 4096, 1)
    cfg += struct.pack("<IHHQ", 1, len(name), 0, mib << 20) + name
    return out + struct.pack("<BBHI", 1, 0, 0, len(cfg)) + cfg


def addr(uri):
    host, port = uri.split(":")[1:]
    return host, int(port)


def eavesdrop(proxy, timeout=60):
    """The main connection's channel record, as it went by."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for rec in proxy.channels():
            if rec[1] == 0:
                return rec
        time.sleep(0.01)
    raise TimeoutError("no channel record went by")


def refused(dst, n, timeout=60):
    """Wait until the destination has refused n connections in all."""
    deadline = time.time() + timeout
    info = {}
    while time.time() < deadline:
        info = dst.qmp.cmd("query-migrate")
        if info.get("refused-connections", 0) >= n:
            return info
        time.sleep(0.02)
    raise TimeoutError("refused: %s" % info)


def stranger(uri, data, timeout=15):
    """Connect, send a head, and wait until the destination closes it (a
    head it judges is refused at once; one it took stays open)."""
    s = socket.create_connection(addr(uri))
    s.sendall(data)
    s.settimeout(timeout)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise AssertionError("the destination took the stranger's "
                             "connection") from None
    finally:
        s.close()


def try_strangers(dst, uri, heads, base=0):
    """Each head is refused in turn, with its reason."""
    for i, (data, why) in enumerate(heads):
        stranger(uri, data)
        info = refused(dst, base + i + 1)
        assert why in info["refused-reason"], \
            "the stranger was not refused as %r: refused-reason %r" % (
                why, info["refused-reason"])
        assert WRONG.hex() not in info["refused-reason"], info
    return base + len(heads)


def no_token_shown(token, *texts):
    """The token is in no log, no query-migrate answer, no error."""
    if token is None:  # version 1: there was none
        return
    for t in texts:
        for form in (token.hex(), token.hex().upper()):
            assert form not in t, "the token shows"


def t_multifd():
    """While the page channels join (the proxy holds them back), a
    stranger with the session id: a wrong token, version 1's layout, a
    record without the token field; each is refused, then the real
    channels are taken and the migration completes, verified."""
    args = ["--ram", "64M", "--vcpus", "1", "--workload", "idle",
            "--fill", "random"]
    caps = [{"capability": "multifd", "state": True}]
    dst = ft.Guest("dst", args, incoming="tcp:127.0.0.1:0")
    dst.qmp.cmd("migrate-set-capabilities", capabilities=caps)
    # the real channel waits in the proxy while the strangers try: give
    # it (and every head) a minute, not 10 s, on a busy machine
    dst.qmp.cmd("migrate-set-parameters", **{"net-timeout": 60000})
    src = ft.Guest("src", args, tmp=dst.tmp)
    src.qmp.cmd("migrate-set-capabilities", capabilities=caps)
    src.qmp.cmd("migrate-set-parameters", **{"multifd-channels": 2,
                                             "max-bandwidth": 32 << 20,
                                             "net-timeout": 60000})
    proxy = fp.FaultProxy(dst.incoming_uri())
    # the first page channel waits (the main connection flows on)
    proxy.stall(fp.Bytes(0, channel=1), one=True)
    src.qmp.cmd("migrate", uri=proxy.uri)
    session, _, count, token = eavesdrop(proxy)
    assert count == 2, count
    # the real channel is held before the strangers come, so that the
    # release below finds it (a busy machine may connect it late)
    deadline = time.time() + 120
    while not proxy.fired:
        assert time.time() < deadline, "the first page channel never came"
        time.sleep(0.01)
    assert token != WRONG
    uri = dst.incoming_uri()
    try_strangers(dst, uri, [
        (head(F_MULTIFD, session, 1, count, layout=1),
         "stream version 1 is not supported"),
        (head(F_MULTIFD, session, 1, count),
         "a channel record with the session's id but the wrong token"),
        (head(F_MULTIFD, session, 1, count, layout="short"),
         "channel record length 16, expected 32"),
    ])
    assert src.qmp.cmd("query-migrate")["status"] in ("setup", "active")
    proxy.release()
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    assert s["status"] == "completed", s
    assert d["status"] == "completed", (d, dst.output()[-2000:])
    assert s.get("verified") is True and d.get("verified") is True, (s, d)
    assert d["refused-connections"] == 3, d
    assert dst.qmp.cmd("query-status")["status"] == "running"
    no_token_shown(token, json.dumps(s), json.dumps(d))
    src.quit()
    assert dst.quit() == 0, dst.output()[-2000:]
    no_token_shown(token, src.output(), dst.output())
    proxy.close()


def t_recovery():
    """Post-copy through the proxy, the link cut: both pause.  A stranger
    with the session id connects to migrate-recover's listener before
    the source: a wrong token (as the main connection and as the urgent
    one), and version 1's layout; each is refused, and the real
    recovery is taken and completes, verified."""
    args = ["--ram", "256M", "--vcpus", "2", "--workload",
            "zipf:rate=200000", "--fill", "random"]
    pc = [{"capability": "postcopy-ram", "state": True}]
    dst = ft.Guest("dst", args, incoming="tcp:127.0.0.1:0")
    src = ft.Guest("src", args, tmp=dst.tmp)
    src.qmp.cmd("migrate-set-capabilities", capabilities=pc)
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 40 << 20})
    proxy = fp.FaultProxy(dst.incoming_uri())
    time.sleep(0.3)
    src.qmp.cmd("migrate", uri=proxy.uri)
    src.qmp.cmd("migrate-start-postcopy")
    session, _, _, token = eavesdrop(proxy)
    ft.both(src, dst, "postcopy-active")
    proxy.cut_now()
    ft.both(src, dst, "postcopy-paused")
    dst.qmp.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
    info = dst.qmp.cmd("query-migrate")
    uri, base = info["uri"], info.get("refused-connections", 0)
    flags = F_POSTCOPY | F_RESUME
    try_strangers(dst, uri, [
        (head(flags, session, 0, 1, layout=1, mib=256),
         "stream version 1 is not supported"),
        (head(flags, session, 0, 1, mib=256),
         "post-copy recovery: a channel record with the session's id but "
         "the wrong token"),
        (head(flags, session, 1, 1, mib=256),
         "post-copy recovery: a channel record with the session's id but "
         "the wrong token"),
    ], base)
    assert dst.qmp.cmd("query-migrate")["status"] == "postcopy-recover"
    src.qmp.cmd("migrate", uri=uri, resume=True)
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    assert s["status"] == "completed", s
    assert d["status"] == "completed", (d, dst.output()[-2000:])
    assert s.get("verified") is True and d.get("verified") is True, (s, d)
    assert s["postcopy-recoveries"] == 1 and d["postcopy-recoveries"] == 1
    assert d["refused-connections"] == base + 3, d
    no_token_shown(token, json.dumps(s), json.dumps(d))
    src.quit()
    dst.quit()
    no_token_shown(token, src.output(), dst.output())
    proxy.close()


for name, fn in [
    ("multifd: a stranger with the session id but a wrong token, or none, "
     "is refused; the migration completes verified",
     ft.with_logs(t_multifd)),
    ("post-copy recovery: a stranger's reconnection with the session id "
     "but a wrong token is refused; the real recovery completes",
     ft.with_logs(t_recovery)),
]:
    tap.run(name, fn)
tap.done()
