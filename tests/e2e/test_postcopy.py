#!/usr/bin/env python3
"""test_postcopy.py - post-copy and hybrid migration between two real
`ferry run` processes: the destination runs the guest at once and pulls
the missing pages with userfaultfd.  Every completed migration is verified
(the digest of RAM as placed and of device state as loaded).  Prints TAP."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

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
    assert "postcopy-blocktime" in d, d
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
    copy (the guest ran on the other side) and says so."""
    src, dst = pair("zipf:rate=200000")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 30 << 20})
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    src.qmp.cmd("migrate-start-postcopy")
    src.qmp.wait_migration(states=("postcopy-active",), timeout=60)
    dst.kill()
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert "source stays stopped" in s["error-desc"], s
    assert not src.qmp.cmd("query-status")["running"]
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
    s = src.qmp.wait_migration()
    assert proxy.flipped
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
    ("ferry demo --mode postcopy and hybrid", t_demo_modes),
]:
    if os.environ.get("FERRY_TEST_ONLY", "") in name:
        tap.run(name, fn)
tap.done()
