#!/usr/bin/env python3
"""test_qmp.py - the control socket speaks QMP and survives bad input:
malformed JSON, unknown commands, wrong argument types, commands before
negotiation.  The guest keeps running through all of it.  Prints TAP."""
import json
import os
import socket
import stat
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

tap = ft.TAP()
g = ft.Guest("qmp", ["--ram", "64M", "--workload", "zipf:rate=1000"])


def raw_client():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(g.sock)
    s.settimeout(10)
    f = s.makefile("rb")
    greeting = json.loads(f.readline())
    return s, f, greeting


def expect_error(cls, name, **args):
    try:
        g.qmp.cmd(name, **args)
    except ft.QMPError as e:
        assert e.cls == cls, (e.cls, e.desc)
        return e.desc
    raise AssertionError(f"{name} {args} succeeded")


def t_greeting():
    s, f, greet = raw_client()
    assert "version" in greet["QMP"] and greet["QMP"]["capabilities"] == []
    s.sendall(b'{"execute": "query-status"}\n')
    r = json.loads(f.readline())
    assert r["error"]["class"] == "CommandNotFound", r
    s.sendall(b'{"execute": "qmp_capabilities", "id": 7}\n')
    assert json.loads(f.readline()) == {"return": {}, "id": 7}
    s.close()


def t_bad_json():
    s, f, _ = raw_client()
    s.sendall(b'{"execute": "qmp_capabilities"}\n')
    f.readline()
    s.sendall(b'{"execute": "query-status", ]\n')
    r = json.loads(f.readline())
    assert r["error"]["class"] == "GenericError", r
    assert "JSON" in r["error"]["desc"], r
    s.sendall(b'[1, 2]\n')
    r = json.loads(f.readline())
    assert "object" in r["error"]["desc"], r
    s.sendall(b'{"arguments": {}}\n')
    r = json.loads(f.readline())
    assert "execute" in r["error"]["desc"], r
    # split across packets, and two in one packet
    s.sendall(b'{"execute": "query-')
    s.sendall(b'status"}{"execute": "query-status"}')
    assert json.loads(f.readline())["return"]["running"] is True
    assert json.loads(f.readline())["return"]["running"] is True
    # cut inside a literal, a number, an escape, a UTF-8 sequence: each
    # waits for its rest (fuzz-qmp found such cuts dropped)
    req = ('{"execute": "migrate-set-parameters", "arguments": '
           '{"codec-auto": true}, "id": ["\\u00e9\u00e9", -1.5e2]}').encode()
    for cut in (b"tr", b", -", b"-1.", b"\\u00", b"\xc3"):
        at = req.index(cut) + len(cut)
        s.sendall(req[:at])
        time.sleep(0.05)
        s.sendall(req[at:])
        r = json.loads(f.readline())
        assert r == {"return": {}, "id": ["\u00e9\u00e9", -150.0]}, (cut, r)
    s.close()


def t_errors():
    expect_error("CommandNotFound", "frobnicate")
    d = expect_error("GenericError", "migrate")
    assert "uri" in d, d
    d = expect_error("GenericError", "migrate", uri=5)
    assert "string" in d, d
    d = expect_error("GenericError", "migrate", uri="tcp:1.2.3.4:1",
                     colour="red")
    assert "colour" in d, d
    d = expect_error("GenericError", "migrate", uri="carrier-pigeon:x")
    assert "carrier-pigeon" in d, d
    d = expect_error("GenericError", "migrate", uri="tcp:127.0.0.1")
    assert "HOST:PORT" in d, d
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"downtime-limit": "fast"})
    assert "integer" in d, d
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"cpu-throttle-initial": 150})
    assert "1 to 99" in d, d
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"warp-speed": 9})
    assert "warp-speed" in d, d
    d = expect_error("GenericError", "migrate-set-capabilities",
                     capabilities=[{"capability": "x-colo", "state": True}])
    assert "x-colo" in d, d
    d = expect_error("GenericError", "migrate-incoming", uri="tcp:0:0")
    assert "incoming" in d, d
    # a description cut inside a UTF-8 character still gets a reply
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"x" + "\u00e9" * 300: 1})
    assert "is unexpected" not in d and d.startswith("Parameter 'x"), d
    expect_error("CommandNotFound", "x" + "\u00e9" * 300)


def t_parameters():
    g.qmp.cmd("migrate-set-parameters", **{"downtime-limit": 50,
                                           "max-bandwidth": 1 << 30})
    p = g.qmp.cmd("query-migrate-parameters")
    assert p["downtime-limit"] == 50 and p["max-bandwidth"] == 1 << 30, p
    assert p["cpu-throttle-initial"] == 20, p
    assert p["codec-auto"] is True and p["multifd-compression"] == "none"
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"codec-auto": 1})
    assert "bool" in d, d
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"multifd-compression": "gzip"})
    assert "zstd" in d, d
    g.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "auto-converge", "state": True},
        {"capability": "verify", "state": False}])
    caps = {c["capability"]: c["state"]
            for c in g.qmp.cmd("query-migrate-capabilities")}
    assert caps == {"auto-converge": True, "verify": False,
                    "multifd": False, "xbzrle": False,
                    "postcopy-ram": False, "rdma-pin-all": False}, caps
    g.qmp.cmd("migrate-set-parameters", **{"rdma-provider": "verbs"})
    assert g.qmp.cmd("query-migrate-parameters")["rdma-provider"] == "verbs"
    g.qmp.cmd("migrate-set-parameters", **{"rdma-provider": ""})
    g.qmp.cmd("migrate-set-parameters", **{"xbzrle-cache-size": 32 << 20})
    p = g.qmp.cmd("query-migrate-parameters")
    assert p["xbzrle-cache-size"] == 32 << 20, p
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"xbzrle-cache-size": 100})
    assert "4096" in d, d
    assert g.qmp.cmd("query-migrate") == {}
    names = [c["name"] for c in g.qmp.cmd("query-commands")]
    for n in ("migrate", "migrate-incoming", "migrate_cancel",
              "query-migrate", "migrate-set-parameters",
              "query-migrate-parameters", "migrate-set-capabilities",
              "query-migrate-capabilities", "query-status", "stop", "cont",
              "quit", "x-query-guest", "migrate-recover", "migrate-pause"):
        assert n in names, n
    # post-copy recovery's commands need a post-copy
    d = expect_error("GenericError", "migrate-pause")
    assert "not in post-copy" in d, d
    d = expect_error("GenericError", "migrate-recover",
                     uri="tcp:127.0.0.1:0")
    assert "for the destination side" in d, d
    d = expect_error("GenericError", "migrate", uri="tcp:127.0.0.1:1",
                     resume=True)
    assert "not paused in post-copy" in d, d
    d = expect_error("GenericError", "migrate", uri="tcp:127.0.0.1:1",
                     resume="yes")
    assert "expected: bool" in d, d


def t_stop_cont():
    assert g.ticking()
    g.qmp.cmd("stop")
    assert g.qmp.cmd("query-status") == {
        "running": False, "singlestep": False, "status": "paused"}
    q = g.qmp.cmd("x-query-guest")
    assert q["running"] is False and q["heartbeat-ticks"] > 0, q
    assert not g.ticking()
    g.qmp.cmd("cont")
    assert g.qmp.cmd("query-status")["status"] == "running"
    assert g.ticking()


def t_socket_mode():
    mode = stat.S_IMODE(os.stat(g.sock).st_mode)
    assert mode == 0o600, oct(mode)


def t_survives():
    # after all of the above, the guest still runs and answers
    assert g.proc.poll() is None
    assert g.qmp.cmd("query-status")["running"] is True


def t_socket_in_use():
    """A second guest may not steal a live guest's socket."""
    import subprocess
    r = subprocess.run([ft.FERRY, "run", "--ram", "16M", "--qmp",
                        "unix:" + g.sock], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0
    assert "another process is listening" in r.stderr, r.stderr
    assert g.qmp.cmd("query-status")["running"] is True


for name, fn in [
    ("greeting, negotiation first", t_greeting),
    ("malformed JSON and framing", t_bad_json),
    ("errors for unknown commands and bad arguments", t_errors),
    ("parameters and capabilities round trip", t_parameters),
    ("stop and cont", t_stop_cont),
    ("control socket is mode 0600", t_socket_mode),
    ("a live socket is not stolen", t_socket_in_use),
    ("the guest survives it all", t_survives),
]:
    tap.run(name, fn)
assert g.quit() == 0
tap.done()
