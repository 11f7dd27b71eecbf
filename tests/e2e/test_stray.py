#!/usr/bin/env python3
"""test_stray.py - a listening destination is not killed by a stray
connection: a connect and close, hundreds of idle connections, a peer that
trickles a byte a second, garbage, another migration's page channel; each
is refused (query-migrate's refused-connections and refused-reason, a line
in ferry run's log) and the real migration after it completes, verified.
And a source that sends sync records but never reads the return path:
net-timeout releases the destination's blocked send.  Prints TAP."""
import os
import socket
import struct
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ferrytest as ft  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

MIB = 64
RAM = ["--ram", "%dM" % MIB, "--vcpus", "1", "--workload", "idle"]
tap = ft.TAP()

F_MULTIFD, F_CHECK = 1 << 0, 1 << 3


def head(flags=0, channel=None, version=2):
    """A stream head (docs/stream.md) for a guest like ours: the header,
    a channel record (session, index, count, token) when given, the
    configuration."""
    if channel:
        flags |= F_MULTIFD
    out = b"FERRYMIG" + struct.pack("<HHI", version, 16, flags)
    if channel:
        out += struct.pack("<BBHI", 6, 0, 0, 32)
        out += struct.pack("<QHHI", channel[0], channel[1], channel[2], 0)
        out += channel[3] if len(channel) > 3 else bytes(16)
    name = b"ram0"
    body = struct.pack("<II", 4096, 1)
    body += struct.pack("<IHHQ", 1, len(name), 0, MIB << 20) + name
    return out + struct.pack("<BBHI", 1, 0, 0, len(body)) + body


def sync_record(seq):
    return struct.pack("<BBHIQ", 7, 0, 0, 8, seq)


def addr(dst):
    host, port = dst.incoming_uri().split(":")[1:]
    return host, int(port)


def refused(dst, n=1, timeout=120):
    """Wait until the destination has refused n connections."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        info = dst.qmp.cmd("query-migrate")
        if info.get("refused-connections", 0) >= n:
            return info
        time.sleep(0.05)
    raise TimeoutError("refused: %s" % info)


def migrate(dst, args=RAM, caps=()):
    """A real source migrates into dst: both sides completed, verified."""
    src = ft.Guest("src", args, tmp=dst.tmp)
    if caps:
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": c, "state": True} for c in caps])
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    assert s["status"] == "completed", s
    assert d["status"] == "completed", (d, dst.output()[-2000:])
    assert s.get("verified") is True and d.get("verified") is True, (s, d)
    assert dst.qmp.cmd("query-status")["status"] == "running"
    src.quit()
    assert dst.quit() == 0, dst.output()[-2000:]
    return d


def destination(**params):
    dst = ft.Guest("dst", RAM, incoming="tcp:127.0.0.1:0")
    if params:
        dst.qmp.cmd("migrate-set-parameters", **params)
    return dst


def wait_log(g, text, timeout=120):
    """ferry run logged text."""
    deadline = time.time() + timeout
    while text not in g.output():
        if time.time() > deadline:
            raise TimeoutError("%r not in %s" % (text, g.output()[-2000:]))
        time.sleep(0.05)


def wait_closed(sock, timeout=120):
    """The destination closed this connection (EOF or a reset)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass


def t_connect_close():
    dst = destination()
    socket.create_connection(addr(dst)).close()
    info = refused(dst)
    assert "closed after 0 bytes" in info["refused-reason"], info
    assert info["status"] == "setup", info
    wait_log(dst, "ferry run: refused 1 connection: ")
    d = migrate(dst)
    assert d["refused-connections"] == 1, d


def t_idle_many():
    """500 idle connections held open, then the real source: served."""
    dst = destination()
    socks = []
    for _ in range(500):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(addr(dst))
        socks.append(s)
    refused(dst, 500 - 64)  # those pushed out so far
    migrate(dst)
    for s in socks:
        s.close()


def t_trickle():
    """A peer that sends a valid start of a head, a byte a second, is
    dropped; the real migration after it completes."""
    dst = destination(**{"net-timeout": 2000})
    s = socket.create_connection(addr(dst))
    stop = threading.Event()

    def trickle():
        for b in head():
            if stop.is_set():
                return
            try:
                s.send(bytes([b]))
            except OSError:
                return
            time.sleep(1)
    threading.Thread(target=trickle, daemon=True).start()
    info = refused(dst)
    stop.set()
    assert "no whole stream head within 2000 ms" in info["refused-reason"], \
        info
    wait_closed(s)
    s.close()
    migrate(dst)


def t_garbage():
    """Garbage and a malformed head are refused, each with its reason;
    the listener survives them and serves the real source."""
    dst = destination()
    for n, data, why in ((1, b"GET / HTTP/1.0\r\n\r\n",
                          "not a migration stream"),
                         (2, head(version=9), "version")):
        s = socket.create_connection(addr(dst))
        s.sendall(data)
        wait_closed(s)
        s.close()
        info = refused(dst, n)
        assert why in info["refused-reason"], info
        # an offset is said with what it means
        r = info["refused-reason"]
        if n == 2:
            assert "stream offset 8 (byte 8 of what the peer sent on " \
                "that connection)" in r, r
        assert "stream offset" not in r or \
            "of what the peer sent on that connection" in r, r
        wait_log(dst, why)
    migrate(dst)


def t_multifd_strays():
    """Strays while a multifd migration's page channels join: an idle
    connection and another migration's page channel are refused, the
    migration completes."""
    dst = ft.Guest("dst", RAM, incoming="tcp:127.0.0.1:0")
    dst.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "multifd", "state": True}])
    idle = socket.create_connection(addr(dst))
    other = socket.create_connection(addr(dst))
    other.sendall(head(channel=(12345, 1, 2)))
    time.sleep(0.2)  # both wait when the source comes (not required)
    d = migrate(dst, caps=("multifd",))
    assert d["refused-connections"] >= 1, d
    assert "another migration" in d["refused-reason"] or \
        "pushed out" in d["refused-reason"] or \
        "has its connections" in d["refused-reason"], d
    idle.close()
    other.close()


def t_not_reading():
    """A source that sends sync records and never reads the return path:
    the destination's acknowledgements fill the socket and its send
    blocks; net-timeout releases it, and the incoming migration fails
    naming the stall (ferry run then exits with status 1)."""
    dst = destination(**{"net-timeout": 1500})
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(addr(dst))
    s.sendall(head(flags=F_CHECK))
    s.settimeout(2)
    chunk = b"".join(sync_record(i) for i in range(4096))
    try:
        while True:  # until the destination stops reading
            s.sendall(chunk)
    except (socket.timeout, OSError):
        pass
    deadline = time.time() + 120
    status = None
    while time.time() < deadline and dst.proc.poll() is None:
        try:
            info = dst.qmp.cmd("query-migrate")
            status = info.get("status")
            if status == "failed":
                assert "(net-timeout)" in info["error-desc"], info
                break
        except (OSError, ConnectionError):
            break
        time.sleep(0.05)
    rc = dst.proc.wait(timeout=120)
    assert rc == 1, (rc, dst.output()[-2000:])
    assert "(net-timeout)" in dst.output(), dst.output()[-2000:]
    s.close()


def t_slow_stream():
    """A source that sent a valid head and then trickles sync records a
    byte at a time: bytes move, but under net-timeout's minimum rate; the
    destination fails naming the stall."""
    dst = destination(**{"net-timeout": 1500})
    s = socket.create_connection(addr(dst))
    s.sendall(head(flags=F_CHECK))
    stop = threading.Event()

    def trickle():
        data = b"".join(sync_record(i) for i in range(64))
        for i in range(len(data)):
            if stop.is_set():
                return
            try:
                s.send(data[i:i + 1])
            except OSError:
                return
            time.sleep(0.2)
    threading.Thread(target=trickle, daemon=True).start()
    rc = dst.proc.wait(timeout=120)
    stop.set()
    assert rc == 1, (rc, dst.output()[-2000:])
    assert "(net-timeout)" in dst.output(), dst.output()[-2000:]
    s.close()


for name, fn in [
    ("connect and close, then a real migration completes verified",
     t_connect_close),
    ("500 idle connections held open, then a real migration completes",
     t_idle_many),
    ("a peer trickling its head is dropped, then a real migration "
     "completes", t_trickle),
    ("garbage and a bad version are refused, the listener serves on",
     t_garbage),
    ("strays while multifd channels join: refused, migration completes",
     t_multifd_strays),
    ("a source that never reads the return path: net-timeout fails the "
     "destination", t_not_reading),
    ("a source under the minimum rate: net-timeout fails the destination",
     t_slow_stream),
]:
    tap.run(name, fn)
tap.done()
