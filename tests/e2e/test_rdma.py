#!/usr/bin/env python3
"""test_rdma.py - pre-copy over the RDMA transport (libfabric) between two
real `ferry run` processes, driven over QMP.  Machines without RDMA
hardware run it on libfabric's software `tcp` provider, which these tests
name explicitly (rdma-provider); every completed migration is verified by
the digest.  A peer that breaks the protocol on purpose (rdma-peer,
tests/transport/rdma_peer.c: FERRY_RDMA_PEER, else tests/rdma-peer beside
the ferry binary) checks that a bad connect request is refused while the
destination listens on, and that a malformed message ends the migration
with the transport's reason.  Prints TAP; skips everything, saying why,
when libfabric has no tcp provider."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

RAM = ["--ram", "256M", "--vcpus", "2"]
PROVIDER = "tcp"
tap = ft.TAP()


def destination(args, name="dst", tmp=None, provider=PROVIDER):
    """A destination listening on rdma:, its provider set over QMP."""
    dst = ft.Guest(name, args, incoming="defer", tmp=tmp)
    dst.qmp.cmd("migrate-set-parameters", **{"rdma-provider": provider})
    dst.qmp.cmd("migrate-incoming", uri="rdma:127.0.0.1:0")
    return dst


def pair(workload, fill=None, pin_all=False):
    args = RAM + ["--workload", workload]
    if fill:
        args += ["--fill", fill]
    dst = destination(args)
    src = ft.Guest("src", args, tmp=dst.tmp)
    src.qmp.cmd("migrate-set-parameters", **{"rdma-provider": PROVIDER})
    if pin_all:
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "rdma-pin-all", "state": True}])
    return src, dst


def migrate(src, dst, **params):
    if params:
        src.qmp.cmd("migrate-set-parameters", **params)
    uri = dst.incoming_uri()
    assert uri.startswith("rdma:127.0.0.1:") and not uri.endswith(":0"), uri
    src.qmp.cmd("migrate", uri=uri)
    return src.qmp.wait_migration(), dst.qmp.wait_migration()


def start_throttled(src, dst, bandwidth, settle):
    """Start a migration slow enough to act on while it is active."""
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": bandwidth})
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    src.qmp.wait_migration(states=("active",))
    time.sleep(settle)


def check_verified(s, d):
    assert s["status"] == "completed", s
    assert d["status"] == "completed", d
    assert s.get("verified") is True, s
    assert d.get("verified") is True, d
    for side in (s, d):
        assert side["rdma"]["provider"] == PROVIDER, side["rdma"]
    # pages went by RDMA WRITE, not in the stream
    assert s["rdma"]["write-bytes"] >= s["ram"]["normal"] * 4096, s
    assert s["ram"]["transferred"] >= s["rdma"]["write-bytes"], s
    assert s["rdma"]["completions"] <= s["rdma"]["writes"], s
    # the source counts the keys it received, the destination those it
    # handed out
    assert (s["rdma"]["chunks-registered"]
            == d["rdma"]["chunks-registered"]), (s["rdma"], d["rdma"])
    assert d["ram"]["normal"] == 0, d
    assert d["ram"]["transferred"] < 1 << 20, d
    assert d["ram"]["total"] == 256 << 20


def finish(*guests):
    for g in guests:
        g.quit()


def t_idle():
    src, dst = pair("idle", fill="mixed:40")
    s, d = migrate(src, dst)
    check_verified(s, d)
    r = s["rdma"]
    assert not r["pin-all"], r
    # dynamic registration: one round trip per chunk written, each chunk
    # of the destination registered once
    assert 0 < r["register-requests"] <= 256, r
    assert d["rdma"]["chunks-registered"] == r["register-requests"], (r, d)
    # zero pages scattered among others are written from a zero buffer:
    # no chunk is all zero, so every page went by RDMA WRITE
    assert 20000 < s["ram"]["duplicate"] < 32000, s["ram"]
    assert r["zero-messages"] == 0 == d["rdma"]["zero-messages"], (r, d)
    assert r["write-bytes"] >= 256 << 20, r
    # contiguous pages are one write; completions come per chunk
    assert r["writes"] * 2 < 65536, r
    assert r["completions"] * 8 < r["writes"], r
    assert dst.qmp.cmd("query-status")["status"] == "running"
    assert src.qmp.cmd("query-status")["status"] == "postmigrate"
    finish(src, dst)


def t_zero_guest():
    """An all-zero guest: one zero message per chunk, no page data."""
    src, dst = pair("idle", fill="zero")
    s, d = migrate(src, dst)
    check_verified(s, d)
    assert s["ram"]["normal"] == 0, s["ram"]
    assert s["rdma"]["register-requests"] == 0, s["rdma"]
    assert s["rdma"]["zero-messages"] == 256, s["rdma"]
    assert d["rdma"]["zero-messages"] == 256, d["rdma"]
    assert s["rdma"]["write-bytes"] < 1 << 20, s["rdma"]
    finish(src, dst)


def t_pin_all():
    src, dst = pair("idle", fill="random", pin_all=True)
    s, d = migrate(src, dst)
    check_verified(s, d)
    assert s["rdma"]["pin-all"] and d["rdma"]["pin-all"], (s, d)
    assert s["rdma"]["register-requests"] == 0, s["rdma"]
    assert d["rdma"]["chunks-registered"] == 256, d["rdma"]
    assert s["rdma"]["chunks-registered"] == 256, s["rdma"]
    finish(src, dst)


def t_stress(pin_all):
    def run():
        src, dst = pair("stress:bytes=64M", fill="random", pin_all=pin_all)
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "auto-converge", "state": True}])
        time.sleep(0.3)
        s, d = migrate(src, dst)
        check_verified(s, d)
        # rewritten pages went again (in iterations or at switch-over)
        assert s["ram"]["normal"] > 65536, s["ram"]
        finish(src, dst)
    return run


def t_zipf():
    src, dst = pair("zipf:rate=20000", fill="mixed:30")
    s, d = migrate(src, dst)
    check_verified(s, d)
    finish(src, dst)


PC = [{"capability": "postcopy-ram", "state": True}]


def check_postcopy(s, d, reason):
    """Post-copy over rdma: completed and verified on both sides, the
    answers counted, and what went before the switch by RDMA WRITE."""
    assert s["status"] == "completed", s
    assert d["status"] == "completed", d
    assert s.get("verified") is True and d.get("verified") is True, (s, d)
    assert s["postcopy-reason"] == reason, s
    for side in (s, d):
        assert side["rdma"]["provider"] == PROVIDER, side["rdma"]
    assert d["ram"]["postcopy-requests"] <= s["ram"]["postcopy-pages"], \
        (s["ram"], d["ram"])
    assert s["ram"]["postcopy-pages"] > 0, s["ram"]
    assert s["ram"]["remaining"] == 0, s["ram"]
    lat = d["postcopy-fault-latency-us"]
    assert lat["p50"] <= lat["p99"] <= lat["max"], lat


def t_postcopy(workload, fill="random"):
    """migrate-start-postcopy during the bulk pass over rdma: the bulk
    pass's RDMA writes finish and are named, the destination revokes its
    keys, then every page comes framed, requested ones first."""
    def run():
        src, dst = pair(workload, fill=fill)
        src.qmp.cmd("migrate-set-capabilities", capabilities=PC)
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 100 << 20,
                                                 "downtime-limit": 1})
        time.sleep(0.3)
        src.qmp.cmd("migrate", uri=dst.incoming_uri())
        src.qmp.cmd("migrate-start-postcopy")
        s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
        check_postcopy(s, d, "migrate-start-postcopy")
        # asked during the bulk pass: the pages it had not reached went
        # in post-copy
        assert s["ram"]["postcopy-pages"] > 1000, s["ram"]
        if workload.startswith("stress"):
            assert d["ram"]["postcopy-requests"] > 0, d["ram"]
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        assert dst.qmp.cmd("query-status")["running"]
        finish(src, dst)
    return run


def t_hybrid():
    """precopy-time-limit over rdma: pre-copy by RDMA WRITE gives up after
    500 ms on a guest that dirties faster than the link, and post-copy
    finishes the job in the streams."""
    src, dst = pair("zipf:rate=200000", fill="random")
    src.qmp.cmd("migrate-set-capabilities", capabilities=PC)
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 100 << 20,
                                             "precopy-time-limit": 500,
                                             "downtime-limit": 1})
    time.sleep(0.3)
    s, d = migrate(src, dst)
    check_postcopy(s, d, "precopy-time-limit")
    assert s["rdma"]["write-bytes"] > 8 << 20, s["rdma"]
    assert d["ram"]["postcopy-requests"] > 0, d["ram"]
    finish(src, dst)


def t_pause_recover(side):
    """migrate-pause in post-copy over rdma (on `side`): both sides pause,
    recovery over rdma is refused by name, and over tcp: the migration
    goes on from where it was and completes, verified; the first
    connection's RDMA figures stay."""
    def run():
        src, dst = pair("zipf:rate=200000", fill="random")
        src.qmp.cmd("migrate-set-capabilities", capabilities=PC)
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 40 << 20})
        time.sleep(0.3)
        src.qmp.cmd("migrate", uri=dst.incoming_uri())
        src.qmp.cmd("migrate-start-postcopy")
        ft.both(src, dst, "postcopy-active")
        time.sleep(0.5)
        (src if side == "source" else dst).qmp.cmd("migrate-pause")
        s, d = ft.both(src, dst, "postcopy-paused")
        assert s["postcopy-pause-reason"] and d["postcopy-pause-reason"]
        assert dst.qmp.cmd("query-status")["running"]
        assert not src.qmp.cmd("query-status")["running"]
        for g, cmd, kw in ((dst, "migrate-recover", {}),
                           (src, "migrate", {"resume": True})):
            e = g.qmp.error(cmd, uri="rdma:127.0.0.1:0", **kw)
            assert "recovery over rdma is not built" in e and "tcp:" in e, e
        dst.qmp.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
        src.qmp.cmd("migrate", uri=dst.qmp.cmd("query-migrate")["uri"],
                    resume=True)
        s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
        assert s["status"] == "completed" == d["status"], (s, d)
        assert s.get("verified") is True and d.get("verified") is True, \
            (s, d)
        assert s["postcopy-recoveries"] == 1 == d["postcopy-recoveries"], \
            (s, d)
        assert s["ram"]["remaining"] == 0, s["ram"]
        assert s["rdma"]["write-bytes"] > 0, s["rdma"]
        assert dst.qmp.cmd("query-status")["running"]
        finish(src, dst)
    return run


def t_killed_destination():
    src, dst = pair("zipf:rate=20000", fill="random")
    start_throttled(src, dst, 30 << 20, 0.5)
    dst.kill()
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert "rdma" in s.get("error-desc", ""), s
    st = src.qmp.cmd("query-status")
    assert st["running"] and st["status"] == "running", st
    # the guest runs on and migrates again, over rdma
    dst2 = destination(RAM + ["--workload", "zipf:rate=20000",
                              "--fill", "random"], "dst2", src.tmp)
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
    src.qmp.cmd("migrate", uri=dst2.incoming_uri())
    check_verified(src.qmp.wait_migration(), dst2.qmp.wait_migration())
    finish(src, dst2)


def t_cancel():
    src, dst = pair("idle", fill="random")
    start_throttled(src, dst, 20 << 20, 0.3)
    src.qmp.cmd("migrate_cancel")
    s = src.qmp.wait_migration()
    assert s["status"] == "cancelled", s
    assert src.qmp.cmd("query-status")["status"] == "running"
    assert dst.proc.wait(timeout=30) == 1
    finish(src)


def t_refusals():
    src, dst = pair("idle")
    uri = dst.incoming_uri()
    for cap, word in (("multifd", "multifd"), ("xbzrle", "xbzrle")):
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": cap, "state": True}])
        d = src.qmp.error("migrate", uri=uri)
        assert "rdma" in d and word in d, d
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": cap, "state": False}])
    for bad in ("rdma:127.0.0.1", "rdma::1234", "rdma:host:99999"):
        d = src.qmp.error("migrate", uri=bad)
        assert "rdma address" in d, d
    # nothing was lost: the same pair still migrates
    check_verified(*migrate(src, dst))
    finish(src, dst)


def t_no_such_provider():
    dst = ft.Guest("dst", RAM + ["--workload", "idle"], incoming="defer")
    dst.qmp.cmd("migrate-set-parameters", **{"rdma-provider": "nosuch"})
    d = dst.qmp.error("migrate-incoming", uri="rdma:127.0.0.1:0")
    assert "no libfabric provider named nosuch" in d, d
    d = dst.qmp.error("migrate-set-parameters",
                      **{"rdma-provider": "a b; rm -rf"})
    assert "rdma-provider" in d, d
    params = dst.qmp.cmd("query-migrate-parameters")
    assert params["rdma-provider"] == "nosuch", params
    finish(dst)


def t_nobody_listening():
    src = ft.Guest("src", RAM + ["--workload", "idle"])
    src.qmp.cmd("migrate-set-parameters", **{"rdma-provider": PROVIDER})
    src.qmp.cmd("migrate", uri="rdma:127.0.0.1:1")
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert "rdma: connecting to 127.0.0.1:1" in s["error-desc"], s
    assert src.qmp.cmd("query-status")["status"] == "running"
    finish(src)


def peer_path():
    path = os.environ.get("FERRY_RDMA_PEER") or os.path.join(
        os.path.dirname(os.path.abspath(ft.FERRY)), "tests", "rdma-peer")
    assert os.access(path, os.X_OK), (
        "no rdma-peer at %s: build it (ninja -C build) or set "
        "FERRY_RDMA_PEER" % path)
    return path


def run_peer(dst, mode, *args):
    """rdma-peer MODE HOST PORT against dst; its output, once it has seen
    the destination do what the mode expects (exit 0)."""
    host, port = dst.incoming_uri().split(":")[1:]
    # the peer bounds each of its own waits; this bounds a hang
    r = subprocess.run([peer_path(), mode, host, port] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=600)
    assert r.returncode == 0, (r.returncode, r.stdout, dst.output()[-2000:])
    return r.stdout


def refused(dst, n, timeout=120):
    """Wait until the destination has refused n connections."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert dst.proc.poll() is None, \
            "the destination ended: %s" % dst.output()[-2000:]
        info = dst.qmp.cmd("query-migrate")
        if info.get("refused-connections", 0) >= n:
            return info
        time.sleep(0.05)
    raise TimeoutError("refused: %s" % info)


def wait_log(g, text, timeout=120):
    """ferry run logged text."""
    deadline = time.time() + timeout
    while text not in g.output():
        if time.time() > deadline:
            raise TimeoutError("%r not in %s" % (text, g.output()[-2000:]))
        time.sleep(0.05)


def incoming_failed(dst):
    """The destination's migration failed: ferry run exits 1 and says why
    (its QMP socket goes with it); the error."""
    rc = dst.proc.wait(timeout=300)
    out = dst.output()
    assert rc == 1, (rc, out[-2000:])
    tag = "ferry: incoming migration failed: "
    lines = [x for x in out.splitlines() if x.startswith(tag)]
    assert lines, out[-2000:]
    return lines[-1][len(tag):]


def t_bad_connect():
    """Connect requests whose private data does not decode are refused,
    each counted with its reason; the destination listens on and the
    real source's migration completes."""
    args = RAM + ["--workload", "idle", "--fill", "mixed:40"]
    dst = destination(args)
    uri = dst.incoming_uri()
    kinds = (("magic", "the peer is not ferry (magic 0x12345678)"),
             ("version", "protocol version 9, this side 1"),
             ("chunk", "chunks of 2^21 bytes"),
             ("short", "connection data is 4 bytes, not 16"))
    for n, (kind, why) in enumerate(kinds, 1):
        out = run_peer(dst, "bad-pdata", kind)
        assert "connect refused" in out, out
        info = refused(dst, n)
        assert info["refused-connections"] == n, info
        assert info["refused-reason"].startswith("an rdma peer: "), info
        assert why in info["refused-reason"], (kind, info)
        assert info["status"] == "setup", info
        assert info["uri"] == uri, info
        if n == 1:
            wait_log(dst, "ferry run: refused 1 connection: an rdma peer: "
                     "rdma: the peer is not ferry")
    src = ft.Guest("src", args, tmp=dst.tmp)
    src.qmp.cmd("migrate-set-parameters", **{"rdma-provider": PROVIDER})
    s, d = migrate(src, dst)
    check_verified(s, d)
    assert d["refused-connections"] == len(kinds), d
    assert dst.qmp.cmd("query-status")["status"] == "running"
    finish(src, dst)


def transport_reason(err, why):
    """The error is the transport's reason first, the stream's after."""
    assert err.startswith("rdma: " + why), err
    assert "input ended inside the stream header" not in err.split("(")[0], \
        err


def t_bad_register():
    """A register request past RAM is answered ERANGE; one whose chunk
    index overflows ends the migration with that reason."""
    dst = destination(RAM + ["--workload", "idle"])
    out = run_peer(dst, "bad-register")
    assert "chunk 256 past RAM: ERANGE" in out, out
    assert "the destination closed the connection" in out, out
    transport_reason(incoming_failed(dst),
                     "malformed register message: chunk index overflows")


def t_bad_zero():
    """A zero message past RAM ends the migration with that reason."""
    dst = destination(RAM + ["--workload", "idle"])
    out = run_peer(dst, "bad-zero")
    assert "the destination closed the connection" in out, out
    transport_reason(incoming_failed(dst),
                     "a zero message for bytes outside RAM (block 0, "
                     "offset 268435456, 4096 bytes)")


def provider_missing():
    dst = ft.Guest("probe", RAM + ["--workload", "idle"], incoming="defer")
    try:
        dst.qmp.cmd("migrate-set-parameters", **{"rdma-provider": PROVIDER})
        dst.qmp.cmd("migrate-incoming", uri="rdma:127.0.0.1:0")
        return None
    except ft.QMPError as e:
        return e.desc
    finally:
        dst.kill()


CASES = [
    ("idle guest: dynamic registration, per-chunk completions, verified",
     t_idle),
    ("all-zero guest: no page data, verified", t_zero_guest),
    ("rdma-pin-all: no register round trips, verified", t_pin_all),
    ("stress guest, dynamic registration, verified", t_stress(False)),
    ("stress guest, rdma-pin-all, verified", t_stress(True)),
    ("zipf guest, verified", t_zipf),
    ("killed destination: source runs, migrates again", t_killed_destination),
    ("cancel while active: source runs", t_cancel),
    ("post-copy, idle guest: framed after the revoke, verified",
     t_postcopy("idle")),
    ("post-copy, stress guest: requests answered first, verified",
     t_postcopy("stress:bytes=128M")),
    ("post-copy, zipf guest, verified", t_postcopy("zipf:rate=50000",
                                                   fill="mixed:30")),
    ("hybrid: precopy-time-limit, RDMA WRITE then post-copy, verified",
     t_hybrid),
    ("migrate-pause on the source in post-copy: recovered over tcp:, "
     "verified", t_pause_recover("source")),
    ("migrate-pause on the destination in post-copy: recovered over tcp:, "
     "verified", t_pause_recover("destination")),
    ("multifd, xbzrle, bad addresses refused", t_refusals),
    ("a provider that does not exist is one clear error", t_no_such_provider),
    ("nobody listening: failed with the reason, guest runs",
     t_nobody_listening),
    ("bad connect private data refused, destination listens, migrates",
     t_bad_connect),
    ("register with an overflowing chunk index: the transport's reason",
     t_bad_register),
    ("zero message past RAM: the transport's reason", t_bad_zero),
]

why = provider_missing()
for name, fn in CASES:
    if why:
        tap.skip(name, "libfabric's %s provider is not usable here: %s"
                 % (PROVIDER, why))
    elif os.environ.get("FERRY_TEST_ONLY", "") in name:
        tap.run(name, fn)
tap.done()
