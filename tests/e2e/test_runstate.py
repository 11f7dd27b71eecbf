#!/usr/bin/env python3
"""test_runstate.py - one running copy of a guest, always.  The run state
travels with the guest: a guest stopped on the source arrives stopped; a
source whose guest migrated away (postmigrate) is neither migrated again
nor resumed unless the operator forces it; a failed migration leaves the
source's guest as it was, running or stopped.  Every completed migration
is verified by digest.  Prints TAP."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ferrytest as ft  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

RAM = ["--ram", "256M", "--vcpus", "2"]
tap = ft.TAP()


def guest(name, workload="zipf:rate=20000", tmp=None, incoming=None):
    return ft.Guest(name, RAM + ["--workload", workload], tmp=tmp,
                    incoming=incoming)


def status(g):
    return g.qmp.cmd("query-status")


def verified(s, d):
    assert s["status"] == "completed", s
    assert d["status"] == "completed", d
    assert s.get("verified") is True and d.get("verified") is True, (s, d)


def migrate(src, dst):
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    return src.qmp.wait_migration(), dst.qmp.wait_migration()


def t_stopped_arrives_stopped():
    src = guest("src")
    dst = guest("dst", tmp=src.tmp, incoming="tcp:127.0.0.1:0")
    src.qmp.cmd("stop")
    assert status(src)["status"] == "paused"
    verified(*migrate(src, dst))
    st = status(dst)
    assert not st["running"] and st["status"] == "paused", st
    st = status(src)
    assert not st["running"] and st["status"] == "postmigrate", st
    # the operator decides where it runs: here, the destination
    dst.qmp.cmd("cont")
    assert status(dst)["running"]
    assert dst.ticking()
    src.quit(), dst.quit()


def t_stopped_during_migration():
    """Stopped while pre-copy runs: the state at the switch counts."""
    src = guest("src", "stress:bytes=64M")
    dst = guest("dst", "stress:bytes=64M", tmp=src.tmp,
                incoming="tcp:127.0.0.1:0")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 40 << 20})
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    src.qmp.wait_migration(states=("active",))
    src.qmp.cmd("stop")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
    verified(src.qmp.wait_migration(), dst.qmp.wait_migration())
    assert status(dst)["status"] == "paused", status(dst)
    assert status(src)["status"] == "postmigrate", status(src)
    src.quit(), dst.quit()


def t_postmigrate_not_again():
    """A -> B, then A again: refused, and cont on A only when forced."""
    a = guest("a")
    b = guest("b", tmp=a.tmp, incoming="tcp:127.0.0.1:0")
    c = guest("c", tmp=a.tmp, incoming="tcp:127.0.0.1:0")
    verified(*migrate(a, b))
    assert status(b)["status"] == "running"
    assert status(a)["status"] == "postmigrate"
    desc = a.qmp.error("migrate", uri=c.incoming_uri())
    assert "already migrated" in desc, desc
    desc = a.qmp.error("cont")
    assert "two" in desc and "x-force" in desc, desc
    st = status(a)
    assert not st["running"] and st["status"] == "postmigrate", st
    # C never got a connection: it still waits
    assert c.qmp.cmd("query-migrate")["status"] == "setup"
    assert status(c)["status"] == "inmigrate"
    # a bad argument is refused, the forced one takes the guest back
    assert "x-force" in a.qmp.error("cont", **{"x-force": "yes"})
    assert "unexpected" in a.qmp.error("cont", force=True)
    b.kill()  # the operator's reason to take it back
    a.qmp.cmd("cont", **{"x-force": True})
    assert status(a)["status"] == "running"
    assert a.ticking()
    # taken back, it is the guest again, and it may migrate
    verified(*migrate(a, c))
    assert status(c)["status"] == "running"
    assert status(a)["status"] == "postmigrate"
    a.quit(), c.quit()


def t_failed_stays_stopped():
    """A failed migration of a stopped guest does not start it."""
    src = guest("src")
    src.qmp.cmd("stop")
    src.qmp.cmd("migrate", uri="tcp:127.0.0.1:1")  # nobody listens there
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    st = status(src)
    assert not st["running"] and st["status"] == "paused", st
    # not away: it may still go, and arrives stopped
    dst = guest("dst", tmp=src.tmp, incoming="tcp:127.0.0.1:0")
    verified(*migrate(src, dst))
    assert status(dst)["status"] == "paused"
    src.quit(), dst.quit()


def t_destination_failed_stays_stopped():
    """The destination refuses the guest's vCPU state (another
    workload) at the switch-over: a stopped source stays stopped, a
    running one runs on."""
    for stop in (True, False):
        src = guest("src")
        dst = guest("dst", "idle", tmp=src.tmp, incoming="tcp:127.0.0.1:0")
        if stop:
            src.qmp.cmd("stop")
        src.qmp.cmd("migrate", uri=dst.incoming_uri())
        s = src.qmp.wait_migration()
        assert s["status"] == "failed", s
        assert dst.proc.wait(timeout=60) == 1  # and resumed nothing
        st = status(src)
        assert st["running"] == (not stop), (stop, st)
        assert st["status"] == ("paused" if stop else "running"), st
        src.quit()


def t_postcopy_stopped():
    """migrate-start-postcopy on a stopped guest: nothing runs on the
    destination; it arrives stopped through the switch-over."""
    src = guest("src", "stress:bytes=64M")
    dst = guest("dst", "stress:bytes=64M", tmp=src.tmp,
                incoming="tcp:127.0.0.1:0")
    for g in (src, dst):
        g.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "postcopy-ram", "state": True}])
    src.qmp.cmd("stop")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 40 << 20})
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    src.qmp.wait_migration(states=("active",))
    src.qmp.cmd("migrate-start-postcopy")
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 0})
    s, d = src.qmp.wait_migration(), dst.qmp.wait_migration()
    verified(s, d)
    # it never switched
    assert s["ram"]["postcopy-bytes"] == 0 and "postcopy-pages" not in s["ram"]
    assert status(dst)["status"] == "paused", status(dst)
    assert status(src)["status"] == "postmigrate", status(src)
    src.quit(), dst.quit()


for name, fn in [
    ("a stopped guest arrives stopped, verified", t_stopped_arrives_stopped),
    ("stopped during pre-copy: arrives stopped, verified",
     t_stopped_during_migration),
    ("postmigrate: not migrated again, cont only with x-force",
     t_postmigrate_not_again),
    ("a failed migration leaves a stopped guest stopped",
     t_failed_stays_stopped),
    ("refused by the destination: the source as it was",
     t_destination_failed_stays_stopped),
    ("post-copy asked for a stopped guest: switch-over, arrives stopped",
     t_postcopy_stopped),
]:
    if os.environ.get("FERRY_TEST_ONLY", "") in name:
        tap.run(name, fn)
tap.done()
