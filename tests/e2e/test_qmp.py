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
    assert greet["QMP"]["capabilities"] == [], greet
    # a QEMU version clients accept (libvirt refuses a 0.x), ferry's own
    # in the package
    v = greet["QMP"]["version"]
    assert v["qemu"] == {"major": 7, "minor": 2, "micro": 0}, v
    assert v["package"].startswith("ferry "), v
    s.sendall(b'{"execute": "query-status"}\n')
    r = json.loads(f.readline())
    assert r["error"]["class"] == "CommandNotFound", r
    s.sendall(b'{"execute": "qmp_capabilities", "id": 7}\n')
    assert json.loads(f.readline()) == {"return": {}, "id": 7}
    s.sendall(b'{"execute": "query-version", "id": 8}\n')
    assert json.loads(f.readline()) == {"return": v, "id": 8}
    s.close()
    assert g.qmp.cmd("query-name") == {}
    assert g.qmp.cmd("query-events") == [{"name": "MIGRATION"}]


def t_list_parameters():
    """ferry migrate --list-parameters names exactly the guest's
    parameters and capabilities, each with the default it has."""
    import subprocess
    out = subprocess.run([ft.FERRY, "migrate", "--list-parameters"],
                         capture_output=True, text=True, check=True).stdout
    params, caps, section = {}, {}, None
    for line in out.splitlines():
        if line.startswith("parameters"):
            section = params
        elif line.startswith("capabilities"):
            section = caps
        elif line.startswith("  ") and not line.startswith("   "):
            name, rest = line.split(None, 1)
            section[name] = rest
    q = g.qmp.cmd("query-migrate-parameters")
    assert sorted(params) == sorted(q), (sorted(params), sorted(q))
    qc = {c["capability"]: c["state"]
          for c in g.qmp.cmd("query-migrate-capabilities")}
    assert sorted(caps) == sorted(qc), (sorted(caps), sorted(qc))
    for name, on in qc.items():
        assert ("on" if on else "off") in caps[name].split(":")[0], \
            (name, caps[name])
    for name, v in q.items():
        d = params[name].split("default ")[1]
        if isinstance(v, bool):
            assert d == ("on" if v else "off"), (name, d, v)
        elif isinstance(v, str):
            assert d == (v if v else '""'), (name, d, v)
        elif not params[name].startswith("bytes"):
            assert d == str(v), (name, d, v)
    assert params["xbzrle-cache-size"].endswith("default 64.00 MiB"), params


def schema_types():
    return {e["name"]: e for e in g.qmp.cmd("query-qmp-schema")}


def t_schema():
    """query-qmp-schema, in QEMU's SchemaInfo form: every command of
    query-commands with its arguments, every type named is defined, the
    parameters and capabilities are the guest's own."""
    schema = g.qmp.cmd("query-qmp-schema")
    by = {e["name"]: e for e in schema}
    assert len(by) == len(schema), "a name defined twice"
    cmds = {e["name"] for e in schema if e["meta-type"] == "command"}
    listed = {c["name"] for c in g.qmp.cmd("query-commands")}
    assert cmds == listed, (cmds ^ listed)
    assert "query-qmp-schema" in cmds
    assert [e["name"] for e in schema if e["meta-type"] == "event"] == \
        [e["name"] for e in g.qmp.cmd("query-events")]

    def refs(e):
        t = e["meta-type"]
        if t in ("command", "event"):
            yield e["arg-type"]
            if t == "command":
                yield e["ret-type"]
        elif t == "array":
            yield e["element-type"]
        elif t == "object":
            for m in e["members"]:
                yield m["type"]
    for e in schema:
        assert e["meta-type"] in ("builtin", "enum", "array", "object",
                                  "command", "event"), e
        for r in refs(e):
            assert r in by, (e["name"], r)
            assert by[r]["meta-type"] not in ("command", "event"), r
    # arguments as the parser takes them
    mig = by[by["migrate"]["arg-type"]]
    assert {m["name"]: "default" in m for m in mig["members"]} == {
        "uri": False, "blk": True, "inc": True, "detach": True,
        "resume": True}, mig
    params = by[by["migrate-set-parameters"]["arg-type"]]
    q = g.qmp.cmd("query-migrate-parameters")
    assert sorted(m["name"] for m in params["members"]) == sorted(q), params
    assert all("default" in m for m in params["members"]), params
    ret = by[by["query-migrate-parameters"]["ret-type"]]
    assert sorted(m["name"] for m in ret["members"]) == sorted(q), ret
    comp = by[next(m["type"] for m in params["members"]
                   if m["name"] == "multifd-compression")]
    assert comp["meta-type"] == "enum", comp
    assert [m["name"] for m in comp["members"]] == comp["values"]
    assert set(comp["values"]) == {"none", "zlib", "zstd", "lz4"}, comp
    capset = by[by["migrate-set-capabilities"]["arg-type"]]
    elem = by[by[capset["members"][0]["type"]]["element-type"]]
    capenum = by[next(m["type"] for m in elem["members"]
                      if m["name"] == "capability")]
    caps = [c["capability"] for c in g.qmp.cmd("query-migrate-capabilities")]
    assert sorted(capenum["values"]) == sorted(caps), capenum
    # the return of query-status names the states it answers with
    st = by[by["query-status"]["ret-type"]]
    runstate = by[next(m["type"] for m in st["members"]
                       if m["name"] == "status")]
    assert g.qmp.cmd("query-status")["status"] in runstate["values"]
    # the event's status is a migration state
    ev = by[by["MIGRATION"]["arg-type"]]
    status = by[ev["members"][0]["type"]]
    assert {"setup", "active", "completed", "failed", "cancelled",
            "postcopy-active"} <= set(status["values"]), status


def hmp(line):
    return g.qmp.cmd("human-monitor-command", **{"command-line": line})


def t_hmp():
    """human-monitor-command for what operators and libvirt type: the
    monitor's text back, errors in it as QEMU's are."""
    assert hmp("info status") == "VM status: running\n"
    assert hmp("migrate_set_parameter downtime-limit 77") == ""
    assert hmp("migrate_set_parameter max-bandwidth 100M") == ""
    assert hmp("migrate_set_parameter multifd-compression zstd") == ""
    assert hmp("migrate_set_parameter codec-auto off") == ""
    p = g.qmp.cmd("query-migrate-parameters")
    assert p["downtime-limit"] == 77 and p["max-bandwidth"] == 100 << 20, p
    assert p["multifd-compression"] == "zstd" and p["codec-auto"] is False
    assert hmp("migrate_set_capability xbzrle on") == ""
    caps = {c["capability"]: c["state"]
            for c in g.qmp.cmd("query-migrate-capabilities")}
    assert caps["xbzrle"] is True, caps
    info = hmp("info migrate")
    assert "capabilities:" in info and "xbzrle: on" in info, info
    assert "Migration status" not in info, info  # none has run
    for bad, why in [("migrate_set_parameter downtime-limit soon", "number"),
                     ("migrate_set_parameter codec-auto maybe", "on or off"),
                     ("migrate_set_parameter warp-speed 9", "warp-speed"),
                     ("migrate_set_capability xbzrle sometimes", "on or off"),
                     ("migrate_set_parameter downtime-limit", "expected"),
                     ("info registers", "info status"),
                     ("savevm snap", "unknown command")]:
        out = hmp(bad)
        assert out.startswith("Error: ") and why in out, (bad, out)
    for line in ("migrate_set_parameter downtime-limit 300",
                 "migrate_set_parameter max-bandwidth 0",
                 "migrate_set_parameter multifd-compression none",
                 "migrate_set_parameter codec-auto on",
                 "migrate_set_capability xbzrle off"):
        assert hmp(line) == "", line
    d = expect_error("GenericError", "human-monitor-command")
    assert "command-line" in d, d


def t_big_integer():
    """An integer past 64 bits fails its own request, by its id; the
    other requests of the same write are answered."""
    s, f, _ = raw_client()
    s.sendall(b'{"execute": "qmp_capabilities"}\n')
    f.readline()
    s.sendall(b'{"execute": "migrate-set-parameters", "id": 1, '
              b'"arguments": {"max-bandwidth": 123456789012345678901234567}}'
              b'{"execute": "query-status", "id": 2}\n')
    r = json.loads(f.readline())
    assert r["id"] == 1 and r["error"]["class"] == "GenericError", r
    assert "64 bits" in r["error"]["desc"], r
    r = json.loads(f.readline())
    assert r["id"] == 2 and r["return"]["running"] is True, r
    s.close()
    assert g.qmp.cmd("query-migrate-parameters")["max-bandwidth"] == 0


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
                    "postcopy-ram": False, "rdma-pin-all": False,
                    "mapped-ram": False, "lazy-restore": False,
                    "events": True, "return-path": True,
                    "postcopy-blocktime": True}, caps
    # always on: accepted as on, refused as off
    g.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "events", "state": True},
        {"capability": "return-path", "state": True},
        {"capability": "postcopy-blocktime", "state": True}])
    for c in ("events", "return-path", "postcopy-blocktime"):
        d = expect_error("GenericError", "migrate-set-capabilities",
                         capabilities=[{"capability": c, "state": False}])
        assert "always on" in d, d
    g.qmp.cmd("migrate-set-parameters", **{"rdma-provider": "verbs"})
    assert g.qmp.cmd("query-migrate-parameters")["rdma-provider"] == "verbs"
    g.qmp.cmd("migrate-set-parameters", **{"rdma-provider": ""})
    # QEMU's range for the zstd level
    for lvl in (0, 20):
        g.qmp.cmd("migrate-set-parameters", **{"multifd-zstd-level": lvl})
        assert g.qmp.cmd("query-migrate-parameters")[
            "multifd-zstd-level"] == lvl
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"multifd-zstd-level": 21})
    assert "0 to 20" in d, d
    g.qmp.cmd("migrate-set-parameters", **{"multifd-zstd-level": 1})
    # and zlib's, QEMU's default codec
    assert g.qmp.cmd("query-migrate-parameters")["multifd-zlib-level"] == 1
    g.qmp.cmd("migrate-set-parameters", **{"multifd-zlib-level": 9,
                                           "multifd-compression": "zlib"})
    p = g.qmp.cmd("query-migrate-parameters")
    assert p["multifd-zlib-level"] == 9, p
    assert p["multifd-compression"] == "zlib", p
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"multifd-zlib-level": 10})
    assert "0 to 9" in d, d
    d = expect_error("GenericError", "migrate-set-parameters",
                     **{"multifd-compression": "gzip"})
    assert "none, zlib, zstd or lz4" in d, d
    g.qmp.cmd("migrate-set-parameters", **{"multifd-zlib-level": 1,
                                           "multifd-compression": "none"})
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
              "quit", "x-query-guest", "migrate-recover", "migrate-pause",
              "query-version", "query-name", "query-events",
              "human-monitor-command"):
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
    assert g.still()
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


def pair(ram="64M", workload="zipf:rate=1000", src_args=()):
    args = ["--ram", ram, "--workload", workload]
    dst = ft.Guest("dst", args, incoming="tcp:127.0.0.1:0")
    src = ft.Guest("src", args + list(src_args), tmp=dst.tmp)
    return src, dst


def wait_for(what, cond, timeout=120):
    """Until cond() holds: a generous bound, for a loaded machine."""
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def unread_client(path, n, idsize=4000):
    """A client that negotiates and sends n requests, each reply about
    idsize bytes (the id is echoed), and never reads a byte: n * idsize
    is more than the socket holds (net.core.wmem_default, 208 KiB here),
    less than the server queues for it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(60)  # a server that stops reading fails the test
    reqs = [b'{"execute": "qmp_capabilities"}']
    for i in range(n):
        reqs.append(json.dumps({"execute": "query-status",
                                "id": "%06d" % i + "x" * idsize}).encode())
    s.sendall(b"\n".join(reqs) + b"\n")
    return s


def flood(path, n=400, idsize=8000):
    """A client that sends requests without reading until it is dropped:
    n * idsize is well past what the server queues for one client."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.settimeout(60)  # a server that stops reading: not dropped, below
    req = json.dumps({"execute": "query-status",
                      "id": "x" * idsize}).encode() + b"\n"
    try:
        s.sendall(b'{"execute": "qmp_capabilities"}\n' + req * n)
    except OSError:
        pass  # dropped while it was still sending
    return s


def read_until(s, done, timeout=120):
    """What the server sends s, message by message, until done(msgs)."""
    s.settimeout(timeout)
    data, msgs = b"", []
    while not done(msgs):
        chunk = s.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed after %d messages" % len(msgs))
        data += chunk
        *lines, data = data.split(b"\n")
        msgs += [json.loads(line) for line in lines]
    return msgs


def t_unread_clients():
    """A client that never reads blocks nobody: on each side of a
    migration one holds its queue through the whole migration, another
    floods until it is dropped, and the migration completes verified while
    a third client polls query-migrate."""
    n = 150
    assert n * 4000 > 2 * 212992 and n * 4100 < (1 << 20)
    src, dst = pair(ram="128M")
    stuck = {g: unread_client(g.sock, n) for g in (src, dst)}
    floods = [flood(g.sock) for g in (src, dst)]
    for g in (src, dst):
        wait_for("the flooding client dropped",
                 lambda: "dropped: more than 1048576 bytes" in g.output())
        assert g.qmp.cmd("query-status")["running"] == (g is src)
    pollers = {g: ft.QMP(g.sock) for g in (src, dst)}
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    seen = {src: set(), dst: set()}
    wait_for("both sides finished", lambda: all(
        seen[g].add(pollers[g].cmd("query-migrate").get("status")) or
        g.qmp.cmd("query-migrate").get("status") in
        ("completed", "failed", "cancelled") for g in (src, dst)))
    for g in (src, dst):
        info = g.qmp.cmd("query-migrate")
        assert info["status"] == "completed", info
        assert info.get("verified") is True, info
    assert dst.qmp.cmd("query-status")["running"] is True
    # the held client was kept: every reply in order, then the events
    for g, s in stuck.items():
        msgs = read_until(s, lambda m: any(
            e.get("data", {}).get("status") == "completed" for e in m))
        assert "QMP" in msgs[0], msgs[0]
        replies = [m for m in msgs[1:] if "event" not in m]
        assert len(replies) == n + 1, len(replies)
        assert [r["id"][:6] for r in replies[1:]] == \
            ["%06d" % i for i in range(n)]
        events = [m["data"]["status"] for m in msgs if "event" in m]
        assert events and events[-1] == "completed", events
    for s in floods:
        s.close()
    for g in (src, dst):
        pollers[g].close()
    assert src.quit() == 0 and dst.quit() == 0


def t_many_clients():
    """200 clients held open do not lock the operator out: new clients
    close the idle ones, those that never negotiated first."""
    op = ft.QMP(g.sock)
    idle = []
    for _ in range(200):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(g.sock)
        idle.append(s)
    # the operator, negotiated, outlives 200 that never negotiated
    assert op.cmd("query-status")["running"] is True
    # sixteen more that negotiate and then sit idle fill every slot
    for _ in range(16):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(g.sock)
        s.sendall(b'{"execute": "qmp_capabilities"}\n')
        idle.append(s)
    wait_for("slots given up", lambda: "closed for a new one" in g.output())
    # and a new operator still gets in
    op2 = ft.QMP(g.sock)
    assert op2.cmd("query-status")["running"] is True
    for s in idle:
        s.close()
    op.close()
    op2.close()
    g.qmp.close()
    g.qmp = ft.QMP(g.sock)  # it was idle too: it may have been closed


def migrate_cmd(src, dst, *extra):
    import subprocess
    return subprocess.Popen([ft.FERRY, "migrate", "--qmp", "unix:" + src.sock,
                             "--set", "max-bandwidth=20M"] + list(extra) +
                            [dst.incoming_uri()], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def t_qmp_tcp():
    """QMP over TCP with QEMU's socket options, and `ferry migrate` driving
    a source through it: migrated and verified."""
    import re
    import subprocess
    args = ["--ram", "64M", "--workload", "zipf:rate=1000"]
    dst = ft.Guest("dst", args, incoming="tcp:127.0.0.1:0")
    p = subprocess.Popen([ft.FERRY, "run"] + args +
                         ["--qmp", "tcp:127.0.0.1:0,server=on,wait=off"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r"QMP on tcp:([0-9.]+):([0-9]+)", line)
        assert m, line
        s = socket.create_connection((m.group(1), int(m.group(2))),
                                     timeout=30)
        f = s.makefile("rb")
        assert "QMP" in json.loads(f.readline())
        s.sendall(b'{"execute": "qmp_capabilities"}\n')
        f.readline()
        s.sendall(b'{"execute": "query-status", "id": 1}\n')
        r = json.loads(f.readline())
        assert r["id"] == 1 and r["return"]["running"] is True, r
        s.close()
        r = subprocess.run([ft.FERRY, "migrate", "--qmp",
                            "tcp:%s:%s" % m.groups(), dst.incoming_uri()],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["status"] == "completed", r.stdout
        d = dst.qmp.wait_migration()
        assert d["status"] == "completed" and d.get("verified"), d
        # what both sides answer is what the schema says query-migrate
        # returns
        info = schema_types()["MigrationInfo"]
        names = {m["name"] for m in info["members"]}
        for q in (json.loads(r.stdout), d):
            assert set(q) <= names, set(q) - names
    finally:
        p.terminate()
        p.wait(timeout=60)
        dst.kill()


def t_migrate_interrupted():
    """SIGINT or SIGTERM on `ferry migrate` cancels the migration: it says
    so and exits non-zero, and the source's guest runs on."""
    import signal
    for sig in (signal.SIGINT, signal.SIGTERM):
        src, dst = pair(ram="256M")
        p = migrate_cmd(src, dst)
        wait_for("migration active", lambda: src.qmp.cmd("query-migrate")
                 .get("ram", {}).get("transferred", 0) > 0)
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)
        assert p.returncode == 1, (p.returncode, err)
        name = "SIGINT" if sig == signal.SIGINT else "SIGTERM"
        assert ("interrupted by %s: migration cancelled; the guest keeps "
                "running on the source" % name) in err, err
        assert json.loads(out)["status"] == "cancelled", out
        assert src.qmp.cmd("query-migrate")["status"] == "cancelled"
        assert src.qmp.cmd("query-status")["status"] == "running"
        assert src.ticking()
        src.quit()
        dst.kill()


def t_quit_mid_migration():
    """quit during a migration, while its events are flowing to several
    clients, ends the process cleanly (under ASan: no use after free of
    the QMP server by the engine's last event)."""
    for i in range(18):
        src, dst = pair(ram="32M")
        listeners = [ft.QMP(g.sock) for g in (src, dst) for _ in range(3)]
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 8 << 20})
        uri = dst.incoming_uri()
        if i % 3 == 2:
            # the destination quits while pages arrive; its source fails
            # and runs on
            src.qmp.cmd("migrate", uri=uri)
            wait_for("active", lambda: dst.qmp.cmd("query-migrate")
                     .get("status") == "active")
            dst.qmp.send_raw(b'{"execute": "quit"}')
            rc = dst.proc.wait(timeout=120)
            assert rc == 0 and "Sanitizer" not in dst.output(), \
                (i, rc, dst.output()[-3000:])
            assert src.qmp.wait_migration()["status"] == "failed"
            assert src.qmp.cmd("query-status")["status"] == "running"
            for c in listeners:
                c.close()
            assert src.quit() == 0
            continue
        if i % 3 == 1:
            # cancel and quit in one packet: the engine's 'cancelled'
            # races the server's end
            src.qmp.cmd("migrate", uri=uri)
            wait_for("active", lambda: src.qmp.cmd("query-migrate")
                     .get("status") == "active")
            time.sleep(0.001 * i)
            src.qmp.send_raw(b'{"execute": "migrate_cancel"}'
                             b'{"execute": "quit"}')
        else:
            # migrate and quit in one packet: setup, active, cancelling
            # and cancelled all come while the process ends
            src.qmp.send_raw(b'{"execute": "migrate", "arguments": '
                             b'{"uri": "%s"}}{"execute": "quit"}'
                             % uri.encode())
        rc = src.proc.wait(timeout=120)
        assert rc == 0 and "Sanitizer" not in src.output(), \
            (i, rc, src.output()[-3000:])
        for c in listeners:
            c.close()
        src.qmp.close()
        # its source gone, the destination fails (exit 1) or quits first
        assert dst.quit() in (0, 1) and "Sanitizer" not in dst.output(), \
            dst.output()[-3000:]


for name, fn in [
    ("greeting, negotiation first", t_greeting),
    ("ferry migrate --list-parameters: every name, its default",
     t_list_parameters),
    ("query-qmp-schema: every command, its arguments, every type",
     t_schema),
    ("malformed JSON and framing", t_bad_json),
    ("an integer past 64 bits fails only its request", t_big_integer),
    ("human-monitor-command: info, migrate_set_parameter/capability", t_hmp),
    ("errors for unknown commands and bad arguments", t_errors),
    ("parameters and capabilities round trip", t_parameters),
    ("stop and cont", t_stop_cont),
    ("control socket is mode 0600", t_socket_mode),
    ("a live socket is not stolen", t_socket_in_use),
    ("200 idle clients do not lock the operator out", t_many_clients),
    ("the guest survives it all", t_survives),
    ("clients that never read block no migration", t_unread_clients),
    ("QMP over TCP, with QEMU's socket options", t_qmp_tcp),
    ("SIGINT and SIGTERM on ferry migrate cancel it", t_migrate_interrupted),
    ("quit during a migration", t_quit_mid_migration),
]:
    tap.run(name, fn)
assert g.quit() == 0
tap.done()
