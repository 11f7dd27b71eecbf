#!/usr/bin/env python3
"""test_postcopy.py - post-copy and hybrid migration between two real
`ferry run` processes: the destination runs the guest at once and pulls
the missing pages with userfaultfd.  Every completed migration is verified
(the digest of RAM as placed and of device state as loaded).  Prints TAP."""
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "faults"))
import ferrytest as ft  # noqa: E402
import faultproxy as fp  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

RAM = ["--ram", "256M", "--vcpus", "2"]
tap = ft.TAP()
PC = [{"capability": "postcopy-ram", "state": True}]


def pair(workload, fill="random"):
    args = RAM + ["--workload", workload, "--fill", fill]
    dst = ft.Guest("dst", args, incoming="tcp:127.0.0.1:0")
    src = ft.Guest("src", args, tmp=dst.tmp)
    src.qmp.cmd("migrate-set-capabilities", capabilities=PC)
    return src, dst


def check_postcopy(s, d, reason):
    assert s["status"] == "completed", s
    assert d["status"] == "completed", d
    assert s.get("verified") is True and d.get("verified") is True, (s, d)
    assert s["postcopy-reason"] == reason, s
    for k in ("postcopy-requests", "postcopy-bytes", "postcopy-pages"):
        assert k in s["ram"] and k in d["ram"], k
    assert d["ram"]["postcopy-requests"] <= s["ram"]["postcopy-pages"], \
        (s["ram"], d["ram"])
    # QEMU's blocktime: each vCPU's own, and the time all were blocked
    # at once, which no vCPU's can be less than
    per = d["postcopy-vcpu-blocktime"]
    assert len(per) == 2 and all(t >= 0 for t in per), d
    assert 0 <= d["postcopy-blocktime"] <= min(per), d
    assert "postcopy-vcpu-blocktime" not in s, s
    lat = d["postcopy-fault-latency-us"]
    assert lat["p50"] <= lat["p99"] <= lat["max"], lat
    assert s["ram"]["remaining"] == 0


def postcopy(workload, bandwidth=100 << 20, fill="random"):
    """migrate-start-postcopy during the bulk pass: the switch comes at
    once, the destination runs the guest, and everything arrives."""
    def t():
        src, dst = pair(workload, fill)
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": bandwidth,
                                                 "downtime-limit": 1})
        time.sleep(0.3)
        src.qmp.cmd("migrate", uri=dst.incoming_uri())
        src.qmp.cmd("migrate-start-postcopy")
        seen = set()
        while True:
            st = src.qmp.cmd("query-migrate")["status"]
            seen.add(st)
            if st in ("completed", "failed", "cancelled"):
                break
            time.sleep(0.02)
        s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
        check_postcopy(s, d, "migrate-start-postcopy")
        assert "postcopy-active" in seen, seen
        # asked during the bulk pass: the switch comes at once, and
        # what the bulk pass had not reached goes in post-copy
        assert s["ram"]["postcopy-pages"] > 1000, s["ram"]
        assert s["postcopy-time"] >= 0, s
        if workload.startswith("stress"):
            # both vCPUs write all over RAM: each waited for pages
            per = d["postcopy-vcpu-blocktime"]
            assert all(t > 0 for t in per), d
        if fill == "zero":
            # zero pages are placed with UFFDIO_ZEROPAGE: 32 bytes each
            # on the wire, not 4 KiB
            assert s["ram"]["postcopy-bytes"] < \
                s["ram"]["postcopy-pages"] * 64, s["ram"]
            assert d["ram"]["duplicate"] > 1000, d["ram"]
        # the source stays stopped; the destination runs
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        assert dst.qmp.cmd("query-status")["running"]
        src.quit()
        dst.quit()
    return t


def t_hybrid():
    """precopy-time-limit: pre-copy gives up after 500 ms on a guest that
    dirties faster than the link, and post-copy finishes the job."""
    src, dst = pair("zipf:rate=200000")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 100 << 20,
                                             "precopy-time-limit": 500,
                                             "downtime-limit": 1})
    assert src.qmp.cmd("query-migrate-parameters")[
        "precopy-time-limit"] == 500
    time.sleep(0.3)
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    check_postcopy(s, d, "precopy-time-limit")
    assert d["ram"]["postcopy-requests"] > 0, d["ram"]
    src.quit()
    dst.quit()


def t_hybrid_multifd():
    """Hybrid with 3 multifd channels: pre-copy pages on the channels,
    then the switch after a sync on each, post-copy answers on the urgent
    connection; verified."""
    src, dst = pair("zipf:rate=200000")
    caps = [{"capability": "multifd", "state": True}]
    for g in (src, dst):
        g.qmp.cmd("migrate-set-capabilities", capabilities=caps)
    src.qmp.cmd("migrate-set-parameters", **{
        "max-bandwidth": 100 << 20, "precopy-time-limit": 4000,
        "multifd-channels": 3})
    time.sleep(0.3)
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    check_postcopy(s, d, "precopy-time-limit")
    assert s["ram"]["iterations"] >= 1, s["ram"]
    src.quit()
    dst.quit()


def t_cancel_ignored():
    """migrate_cancel during post-copy is refused silently: neither side
    holds the whole guest, so the migration runs on and completes."""
    src, dst = pair("stress:bytes=128M")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 60 << 20})
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    src.qmp.cmd("migrate-start-postcopy")
    src.qmp.wait_migration(states=("postcopy-active", "completed"))
    src.qmp.cmd("migrate_cancel")
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    check_postcopy(s, d, "migrate-start-postcopy")
    src.quit()
    dst.quit()


def t_refused():
    """migrate-start-postcopy needs the capability and a migration."""
    src, dst = pair("idle")
    for args in ([{"capability": "postcopy-ram", "state": False}],):
        src.qmp.cmd("migrate-set-capabilities", capabilities=args)
    try:
        src.qmp.cmd("migrate-start-postcopy")
        raise AssertionError("accepted without postcopy-ram")
    except ft.QMPError as e:
        assert "postcopy-ram is not enabled" in e.desc, e.desc
    src.qmp.cmd("migrate-set-capabilities", capabilities=PC)
    try:
        src.qmp.cmd("migrate-start-postcopy")
        raise AssertionError("accepted without a migration")
    except ft.QMPError as e:
        assert "no outgoing migration" in e.desc, e.desc
    src.quit()
    dst.quit()


def t_killed_destination():
    """The destination dies in post-copy: the source cannot resume its
    copy (the guest ran on the other side); it pauses, stopped, and
    migrate_cancel gives up with a message that says so."""
    src, dst = pair("zipf:rate=200000")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 30 << 20})
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    src.qmp.cmd("migrate-start-postcopy")
    src.qmp.wait_migration(states=("postcopy-active",), timeout=60)
    dst.kill()
    s = src.qmp.wait_migration(states=("postcopy-paused",))
    assert s["postcopy-pause-reason"], s
    assert not src.qmp.cmd("query-status")["running"]
    src.qmp.cmd("migrate_cancel")
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert "given up while paused" in s["error-desc"], s
    assert "source stays stopped" in s["error-desc"], s
    assert not src.qmp.cmd("query-status")["running"]
    src.quit()


def recover(src, dst):
    """migrate-recover on the destination, migrate resume on the source,
    straight (no proxy); both go on in postcopy-active."""
    assert not src.qmp.cmd("query-status")["running"]
    assert dst.qmp.cmd("query-status")["running"]
    dst.qmp.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
    uri = dst.qmp.cmd("query-migrate")["uri"]
    src.qmp.cmd("migrate", uri=uri, resume=True)


def check_recovered(src, dst, n):
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    check_postcopy(s, d, "migrate-start-postcopy")
    assert s["postcopy-recoveries"] == n, s
    assert d["postcopy-recoveries"] == n, d
    src.quit()
    dst.quit()


def started(bandwidth=40 << 20, workload="zipf:rate=200000", via=None):
    """A post-copy under way (switched during the bulk pass), through the
    proxy `via` makes for the destination, if any."""
    src, dst = pair(workload)
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": bandwidth})
    proxy = via(dst.incoming_uri()) if via else None
    time.sleep(0.3)
    src.qmp.cmd("migrate", uri=proxy.uri if proxy else dst.incoming_uri())
    src.qmp.cmd("migrate-start-postcopy")
    return src, dst, proxy


def t_pause_twice():
    """migrate-pause on the source, then on the destination: both sides
    pause each time (nothing is discarded, the destination's guest runs
    on what it has), recover over a new connection, and the migration
    completes, verified, with 2 recoveries."""
    src, dst, _ = started()
    ft.both(src, dst, "postcopy-active")
    for side in (src, dst):
        time.sleep(0.3)
        side.qmp.cmd("migrate-pause")
        s, d = ft.both(src, dst, "postcopy-paused")
        assert s["postcopy-pause-reason"] and d["postcopy-pause-reason"]
        assert (s if side is src else d)["postcopy-pause-reason"] == \
            "migrate-pause", (s, d)
        assert dst.ticking()  # the heartbeat needs no missing page
        recover(src, dst)
    check_recovered(src, dst, 2)


def cut_at(point):
    """The link breaks in post-copy (`point`: at the switch, in the
    background pass, or when most pages are across): both sides pause,
    then recover and complete, verified."""
    def t():
        src, dst, proxy = started(via=fp.FaultProxy)
        ft.both(src, dst, "postcopy-active")
        if point == "background":
            time.sleep(0.5)
        elif point == "late":
            t0 = time.time()
            while src.qmp.cmd("query-migrate")["ram"][
                    "transferred"] < 200 << 20 and time.time() - t0 < 10:
                time.sleep(0.05)
        proxy.cut_now()
        s, d = ft.both(src, dst, "postcopy-paused")
        assert not src.qmp.cmd("query-status")["running"]
        recover(src, dst)
        check_recovered(src, dst, 1)
    return t


def t_stalled_postcopy():
    """The link goes dead in post-copy: after net-timeout with no byte
    moving both sides pause (they do not fail), and recover."""
    src, dst = pair("zipf:rate=200000")
    for g in (src, dst):
        g.qmp.cmd("migrate-set-parameters", **{"net-timeout": 1000})
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 40 << 20})
    proxy = fp.FaultProxy(dst.incoming_uri())
    proxy.stall(fp.Bytes(60 << 20))
    time.sleep(0.3)
    src.qmp.cmd("migrate", uri=proxy.uri)
    src.qmp.cmd("migrate-start-postcopy")
    s, d = ft.both(src, dst, "postcopy-paused")
    assert [f.kind for f in proxy.fired] == ["stall"], proxy.fired
    for x in (s, d):
        assert "(net-timeout)" in x["postcopy-pause-reason"], x
    recover(src, dst)
    proxy.release()
    check_recovered(src, dst, 1)


def t_recover_refused():
    """migrate-recover and migrate resume only for a paused post-copy, on
    their own side; a second recover while one is under way is refused."""
    src, dst, _ = started()
    ft.both(src, dst, "postcopy-active")
    e = dst.qmp.error("migrate-recover", uri="tcp:127.0.0.1:0")
    assert "not paused in post-copy" in e, e
    e = src.qmp.error("migrate", uri="tcp:127.0.0.1:1", resume=True)
    assert "not paused in post-copy" in e, e
    e = src.qmp.error("migrate-recover", uri="tcp:127.0.0.1:0")
    assert "for the destination side" in e, e
    src.qmp.cmd("migrate-pause")
    ft.both(src, dst, "postcopy-paused")
    e = dst.qmp.error("migrate", uri="tcp:127.0.0.1:1", resume=True)
    assert "cannot migrate out" in e or "source side" in e, e
    e = src.qmp.error("migrate", uri="rdma:127.0.0.1:1", resume=True)
    assert "recovery over rdma is not built" in e and "tcp:" in e, e
    dst.qmp.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
    e = dst.qmp.error("migrate-recover", uri="tcp:127.0.0.1:0")
    assert "not paused" in e or "under way" in e, e
    # the source never comes: migrate-pause takes the destination back
    # to postcopy-paused, for another migrate-recover
    dst.qmp.wait_migration(states=("postcopy-recover",))
    dst.qmp.cmd("migrate-pause")
    dst.qmp.wait_migration(states=("postcopy-paused",))
    dst.qmp.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
    uri = dst.qmp.cmd("query-migrate")["uri"]
    src.qmp.cmd("migrate", uri=uri, resume=True)
    check_recovered(src, dst, 1)


def t_cancel_paused():
    """A paused post-copy given up (migrate_cancel on each side): both
    fail, and neither runs the guest on (each holds only part of it)."""
    src, dst, _ = started()
    ft.both(src, dst, "postcopy-active")
    dst.qmp.cmd("migrate-pause")
    ft.both(src, dst, "postcopy-paused")
    for g in (src, dst):
        g.qmp.cmd("migrate_cancel")
    s = src.qmp.wait_migration()
    assert s["status"] == "failed" and "given up" in s["error-desc"], s
    assert not src.qmp.cmd("query-status")["running"]
    assert dst.proc.wait(timeout=60) == 1
    assert "the guest is stopped" in dst.output()
    src.quit()


def t_corrupted_in_postcopy():
    """A byte flipped on the main connection well after the switch (the
    guest already runs on the destination): the destination fails, by the
    digest when the byte was in a page, by the decoder when it was in a
    header, and stops its guest; the source stays stopped; nobody runs a
    corrupted guest on."""
    src, dst = pair("zipf:rate=50000")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 100 << 20})
    proxy = ft.Proxy(dst.incoming_uri(), flip_conn=0,
                     flip_at=100 << 20)  # in post-copy's background
    src.qmp.cmd("migrate", uri=proxy.uri)
    src.qmp.cmd("migrate-start-postcopy")
    s = src.qmp.wait_migration(states=("completed", "failed",
                                       "postcopy-paused"))
    assert proxy.flipped
    if s["status"] == "postcopy-paused":
        # the byte was in a record's header: the decoder refused it
        # before anything of it was placed; a new connection mends that
        ft.both(src, dst, "postcopy-paused")
        assert "stream offset" in \
            dst.qmp.cmd("query-migrate")["postcopy-pause-reason"]
        recover(src, dst)
        check_recovered(src, dst, 1)
        return
    assert s["status"] == "failed", s
    assert "source stays stopped" in s["error-desc"], s
    assert not src.qmp.cmd("query-status")["running"]
    assert dst.proc.wait(timeout=60) == 1  # ferry run exits on failure
    out = dst.output()
    assert "post-copy failed while the guest ran here" in out, out[-2000:]
    assert "the guest is stopped" in out, out[-2000:]
    assert "digest mismatch" in out or "stream offset" in out, out[-2000:]
    print("# destination: " + [ln for ln in out.splitlines()
                               if "post-copy failed" in ln][0][:300])
    src.quit()


def t_demo_modes():
    """ferry demo --mode postcopy and --mode hybrid: one verified result
    each."""
    import json
    import subprocess
    for mode in ("postcopy", "hybrid"):
        r = subprocess.run([ft.FERRY, "demo", "--ram", "256M", "--workload",
                            "zipf:rate=100000", "--mode", mode, "--set",
                            "max-bandwidth=100M", "--set",
                            "precopy-time-limit=300", "--json"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout)
        assert j["status"] == "completed" and j["verified"] is True, j
        assert "postcopy-reason" in j, j


for name, fn in [
    ("post-copy, idle guest, verified", postcopy("idle")),
    ("post-copy of zero pages: no page data sent, verified",
     postcopy("idle", fill="zero")),
    ("post-copy, stress guest (every page rewritten), verified",
     postcopy("stress:bytes=256M,threads=2", 60 << 20)),
    ("post-copy, zipf guest, verified", postcopy("zipf:rate=200000")),
    ("hybrid: precopy-time-limit switches, verified", t_hybrid),
    ("hybrid over 3 multifd channels, verified", t_hybrid_multifd),
    ("migrate_cancel in post-copy is ignored; completes verified",
     t_cancel_ignored),
    ("migrate-start-postcopy refused without capability or migration",
     t_refused),
    ("killed destination in post-copy: source stays stopped, says why",
     t_killed_destination),
    ("a byte flipped in post-copy: destination stops its guest",
     t_corrupted_in_postcopy),
    ("migrate-pause on each side, recovered twice, verified",
     t_pause_twice),
    ("link cut at the switch: both pause, recover, verified",
     cut_at("switch")),
    ("link cut in the background pass: recover, verified",
     cut_at("background")),
    ("link cut with most pages across: recover, verified",
     cut_at("late")),
    ("stalled link in post-copy: net-timeout pauses, recover, verified",
     t_stalled_postcopy),
    ("migrate-recover and resume refused unless paused",
     t_recover_refused),
    ("a paused post-copy given up: both fail, guests stay stopped",
     t_cancel_paused),
    ("ferry demo --mode postcopy and hybrid", t_demo_modes),
]:
    if os.environ.get("FERRY_TEST_ONLY", "") in name:
        tap.run(name, fn)
tap.done()
