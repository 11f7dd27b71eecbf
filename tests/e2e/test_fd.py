#!/usr/bin/env python3
"""test_fd.py - migrations on descriptors the guest's process is handed
(QEMU's `getfd` over the QMP socket, then `migrate fd:NAME` and
`migrate-incoming fd:NAME`; or inherited, `--incoming fd:N`): a connected
socket (pre-copy, verified), a pipe and a file (one stream, nobody
answering, verified by the destination's digest), a listening socket
for the destination (multifd and post-copy through it); and getfd's and fd:'s
refusals, each naming what is wrong, with the source running on.
Prints TAP."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

tap = ft.TAP()
RAM = ["--ram", "256M", "--vcpus", "2"]


def pair(workload, fill="random"):
    src = ft.Guest("src", RAM + ["--workload", workload, "--fill", fill])
    dst = ft.Guest("dst", RAM + ["--workload", workload], incoming="defer",
                   tmp=src.tmp)
    return src, dst


def hand(guest, name, fd):
    """getfd, then this process's copy closed: the guest holds the only
    one, so its peer sees the end when the guest closes it."""
    guest.qmp.getfd(name, fd)
    os.close(fd)


def check_verified(s, d, one_way=False):
    assert s["status"] == "completed", s
    assert d["status"] == "completed", d
    if not one_way:  # a source on a pipe hears no verdict
        assert s.get("verified") is True, s
    assert d.get("verified") is True, d


def closed_by_peer(sock, timeout=60):
    """The other end of a socket pair was closed: recv sees the end."""
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except (socket.timeout, ConnectionResetError):
        return False


def t_socketpair():
    """A connected socket pair, one end to each side: multifd and TLS are
    refused by name first (the names stay), then pre-copy of a rewriting
    guest completes, verified, and the destination runs it."""
    src, dst = pair("stress:bytes=64M")
    a, b = socket.socketpair()
    hand(src, "mig", a.detach())
    hand(dst, "mig", b.detach())
    dst.qmp.cmd("migrate-incoming", uri="fd:mig")
    assert dst.qmp.cmd("query-migrate")["uri"].startswith("fd:")
    src.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "multifd", "state": True}])
    e = src.qmp.error("migrate", uri="fd:mig")
    assert "multifd is not supported over fd" in e, e
    assert "connected socket" in e, e
    src.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "multifd", "state": False},
        {"capability": "postcopy-ram", "state": True}])
    e = src.qmp.error("migrate", uri="fd:mig")
    assert "post-copy is not supported over fd" in e, e
    src.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "postcopy-ram", "state": False}])
    src.qmp.cmd("migrate-set-parameters", **{"tls-creds": "/nonexistent"})
    e = src.qmp.error("migrate", uri="fd:mig")
    assert "does not carry TLS" in e, e
    src.qmp.cmd("migrate-set-parameters", **{"tls-creds": ""})
    time.sleep(0.3)  # let it dirty some memory
    src.qmp.cmd("migrate", uri="fd:mig")
    check_verified(src.qmp.wait_migration(), dst.qmp.wait_migration())
    assert dst.qmp.cmd("query-status")["status"] == "running"
    assert src.qmp.cmd("query-status")["status"] == "postmigrate"
    assert dst.ticking()
    # the name went with the descriptor into the migration
    e = src.qmp.error("migrate", uri="fd:mig")
    assert "File descriptor named 'mig' has not been found" in e, e
    src.quit()
    dst.quit()


def t_postcopy():
    """Post-copy into a destination listening on a socket it was handed:
    the source connects to its address, and post-copy's answers come on
    a connection of their own; verified."""
    src, dst = pair("zipf:rate=100000")
    caps = [{"capability": "postcopy-ram", "state": True}]
    for g in (src, dst):
        g.qmp.cmd("migrate-set-capabilities", capabilities=caps)
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = os.path.join(src.tmp, "mig.sock")
    lst.bind(path)
    lst.listen(16)
    hand(dst, "pc", lst.detach())
    dst.qmp.cmd("migrate-incoming", uri="fd:pc")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 50 << 20})
    src.qmp.cmd("migrate", uri="unix:" + path)
    src.qmp.cmd("migrate-start-postcopy")
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    check_verified(s, d)
    assert s["postcopy-reason"] == "migrate-start-postcopy", s
    assert d["ram"]["postcopy-requests"] > 0, d["ram"]
    assert s["ram"]["postcopy-pages"] > 0, s["ram"]
    assert dst.ticking()
    src.quit()
    dst.quit()


def t_pipe():
    """A pipe from a live source to a live destination: one stream, no
    return path; the destination checks the digest and runs the guest."""
    src, dst = pair("stress:bytes=32M")
    r, w = os.pipe()
    hand(dst, "in", r)
    hand(src, "out", w)
    dst.qmp.cmd("migrate-incoming", uri="fd:in")
    src.qmp.cmd("migrate", uri="fd:out")
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    check_verified(s, d, one_way=True)
    assert "verified" not in s, s  # nobody told the source
    assert dst.qmp.cmd("query-status")["status"] == "running"
    assert dst.ticking()
    src.quit()
    dst.quit()


def t_file():
    """Save into a file passed by getfd; restore from it, inherited as
    --incoming fd:N by a new process; verified.  A file open only for
    reading is refused as the source's target, and the guest runs on."""
    src = ft.Guest("src", RAM + ["--workload", "stress:bytes=32M"])
    path = os.path.join(src.tmp, "guest.sav")
    hand(src, "ro", os.open("/dev/null", os.O_RDONLY))
    src.qmp.cmd("migrate", uri="fd:ro")
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert "open for reading only" in s["error-desc"], s
    assert src.qmp.cmd("query-status")["status"] == "running"
    assert src.ticking()
    hand(src, "sav", os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    src.qmp.cmd("migrate", uri="fd:sav")
    s = src.qmp.wait_migration()
    assert s["status"] == "completed", s
    assert s["ram"]["transferred"] == os.path.getsize(path), s
    fd = os.open(path, os.O_RDONLY)
    try:
        dst = ft.Guest("dst", RAM + ["--workload", "stress:bytes=32M"],
                       incoming="fd:%d" % fd, tmp=src.tmp, pass_fds=(fd,))
    finally:
        os.close(fd)
    d = dst.qmp.wait_migration()
    assert d["status"] == "completed" and d.get("verified") is True, d
    assert dst.qmp.cmd("query-status")["status"] == "running"
    assert dst.ticking()
    src.quit()
    dst.quit()


def t_listener():
    """A listening socket handed to the destination is its listener, as
    tcp:'s: the source connects to its address, with two page channels;
    verified."""
    src, dst = pair("stress:bytes=64M")
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(16)
    port = lst.getsockname()[1]
    hand(dst, "lst", lst.detach())
    dst.qmp.cmd("migrate-incoming", uri="fd:lst")
    for g in (src, dst):
        g.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "multifd", "state": True}])
    src.qmp.cmd("migrate-set-parameters", **{"multifd-channels": 2})
    src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%d" % port)
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    check_verified(s, d)
    assert dst.ticking()
    src.quit()
    dst.quit()


def t_refusals():
    """getfd and fd:'s refusals, each naming what is wrong; a refused
    call keeps its descriptor open; closefd and a second getfd of a name
    close the one it held."""
    src, dst = pair("idle")
    e = src.qmp.error("getfd", fdname="x")  # a plain request, no descriptor
    assert e == "No file descriptor supplied via SCM_RIGHTS", e
    a, b = socket.socketpair()
    try:
        src.qmp.getfd("1x", a.fileno())
        raise AssertionError("a name starting with a digit was taken")
    except ft.QMPError as ex:
        assert "not starting with a digit" in ex.desc, ex.desc
    a.close()
    assert closed_by_peer(b), "a refused getfd kept the descriptor"
    b.close()
    e = src.qmp.error("closefd", fdname="nosuch")
    assert e == "File descriptor named 'nosuch' not found", e
    e = src.qmp.error("migrate", uri="fd:nosuch")
    assert e == "File descriptor named 'nosuch' has not been found", e
    # a number over QMP could be any descriptor of the process (the
    # control socket's own): only names are taken there
    e = src.qmp.error("migrate", uri="fd:3")
    assert "over QMP, name a descriptor passed with getfd" in e, e
    assert src.qmp.cmd("query-status")["status"] == "running"
    e = dst.qmp.error("migrate-incoming", uri="fd:nosuch")
    assert "has not been found" in e, e
    # a name given again: the descriptor it held is closed
    a1, b1 = socket.socketpair()
    a2, b2 = socket.socketpair()
    hand(src, "x", a1.detach())
    hand(src, "x", a2.detach())
    assert closed_by_peer(b1), "the replaced descriptor stayed open"
    src.qmp.cmd("closefd", fdname="x")
    assert closed_by_peer(b2), "closefd left the descriptor open"
    e = src.qmp.error("migrate", uri="fd:x")
    assert "has not been found" in e, e
    # a pipe's read end to a source: the engine refuses, the guest runs
    r, w = os.pipe()
    hand(src, "r", r)
    src.qmp.cmd("migrate", uri="fd:r")
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert "open for reading only" in s["error-desc"], s
    # the migration had it, and closed it: the pipe has no reader now
    try:
        os.write(w, b"x")
        raise AssertionError("the refused read end is still open")
    except BrokenPipeError:
        pass
    os.close(w)
    # a listening socket is no source's connection
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(1)
    hand(src, "l", lst.detach())
    src.qmp.cmd("migrate", uri="fd:l")
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert "is a listening socket" in s["error-desc"], s
    assert src.qmp.cmd("query-status")["status"] == "running"
    assert src.ticking()
    # the destination still takes a migration after all of it
    a, b = socket.socketpair()
    hand(src, "ok", a.detach())
    hand(dst, "ok", b.detach())
    dst.qmp.cmd("migrate-incoming", uri="fd:ok")
    src.qmp.cmd("migrate", uri="fd:ok")
    check_verified(src.qmp.wait_migration(), dst.qmp.wait_migration())
    src.quit()
    dst.quit()


def t_channels_to_a_connection():
    """A source with page channels whose main connection reaches a
    destination through a connected socket it was handed (a relay in
    this test): the destination has no listener for the channels,
    refuses by name, nothing runs there, and the source runs on."""
    import threading
    src, dst = pair("idle")
    for g in (src, dst):
        g.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "multifd", "state": True}])
    a, b = socket.socketpair()
    hand(dst, "one", b.detach())
    dst.qmp.cmd("migrate-incoming", uri="fd:one")
    lst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = os.path.join(src.tmp, "relay.sock")
    lst.bind(path)
    lst.listen(16)
    held = []

    def pump(x, y):
        try:
            while True:
                data = x.recv(65536)
                if not data:
                    break
                y.sendall(data)
        except OSError:
            pass
        for z in (x, y):
            try:
                z.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def relay():
        main, _ = lst.accept()  # the first is the main connection
        threading.Thread(target=pump, args=(main, a), daemon=True).start()
        threading.Thread(target=pump, args=(a, main), daemon=True).start()
        try:
            while True:
                held.append(lst.accept()[0])  # channels: taken, unread
        except OSError:
            pass
    threading.Thread(target=relay, daemon=True).start()
    src.qmp.cmd("migrate", uri="unix:" + path)
    # a destination whose incoming migration failed says why and exits
    assert dst.proc.wait(timeout=600) == 1
    text = dst.output()
    assert "announced 2 page channels" in text, text
    assert "no listener to take them" in text, text
    assert "guest running" not in text, text
    # the relay stood for the destination's side of the channels: they
    # go as its process went
    lst.close()
    for c in held:
        c.close()
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert src.qmp.cmd("query-status")["status"] == "running"
    assert src.ticking()
    src.quit()


def t_schema():
    """getfd and closefd are in query-commands and the schema."""
    g = ft.Guest("g", RAM + ["--workload", "idle"])
    names = {c["name"] for c in g.qmp.cmd("query-commands")}
    assert {"getfd", "closefd"} <= names, names
    schema = {e["name"]: e for e in g.qmp.cmd("query-qmp-schema")}
    assert schema["getfd"]["arg-type"] == "q_obj_getfd-arg", schema["getfd"]
    assert schema["q_obj_getfd-arg"]["members"] == [
        {"name": "fdname", "type": "str"}], schema["q_obj_getfd-arg"]
    g.quit()


for name, fn in [
    ("a socket pair: multifd and TLS refused, then pre-copy verified",
     t_socketpair),
    ("post-copy through a listening socket passed in, verified",
     t_postcopy),
    ("a pipe between live guests: one stream, verified", t_pipe),
    ("save into a passed file, restore from an inherited one, verified",
     t_file),
    ("a listening socket for the destination: multifd through it",
     t_listener),
    ("getfd, closefd and fd: refusals; the source runs on", t_refusals),
    ("page channels toward a passed connection: refused, source runs on",
     t_channels_to_a_connection),
    ("getfd and closefd in the schema", t_schema),
]:
    if os.environ.get("FERRY_TEST_ONLY", "") in name:
        tap.run(name, ft.with_logs(fn))
tap.done()
