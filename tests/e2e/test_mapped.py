#!/usr/bin/env python3
"""test_mapped.py - mapped-ram saves (QEMU's capability): each page at a
fixed place in the file, written again in place by later passes, several
writers and readers at once with multifd, O_DIRECT with direct-io; each
restore verified by the digest; files that are cut, flipped, unfinished
or from another guest refused with what is wrong, and nothing runs; a
lazy restore (capability lazy-restore) that runs the guest at once and
reads its pages on demand and in the background, verified at the end.
Prints TAP."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

tap = ft.TAP()
RAM = ["--ram", "256M", "--vcpus", "2"]
MAPPED = [{"capability": "mapped-ram", "state": True}]


def caps(guest, channels=0):
    c = list(MAPPED)
    if channels:
        c.append({"capability": "multifd", "state": True})
        guest.qmp.cmd("migrate-set-parameters",
                      **{"multifd-channels": channels})
    guest.qmp.cmd("migrate-set-capabilities", capabilities=c)


def save(workload, channels=0, stopped=False, params=None, name="g.sav",
         fill="mixed:30"):
    src = ft.Guest("src", RAM + ["--workload", workload, "--fill", fill])
    path = os.path.join(src.tmp, name)
    caps(src, channels)
    if params:
        src.qmp.cmd("migrate-set-parameters", **params)
    if stopped:
        src.qmp.cmd("stop")
    else:
        time.sleep(0.3)  # let it dirty some memory
    src.qmp.cmd("migrate", uri="file:" + path)
    return src.qmp.wait_migration(timeout=600), path, src


def restore(path, workload, tmp, channels=0, params=None, lazy=False):
    """A new process restores the file (multifd readers need the
    capability set first: --incoming defer)."""
    dst = ft.Guest("dst", RAM + ["--workload", workload], incoming="defer",
                   tmp=tmp)
    if lazy:
        dst.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "lazy-restore", "state": True}])
    if channels:
        dst.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": "multifd", "state": True}])
        dst.qmp.cmd("migrate-set-parameters",
                    **{"multifd-channels": channels})
    if params:
        dst.qmp.cmd("migrate-set-parameters", **params)
    dst.qmp.cmd("migrate-incoming", uri="file:" + path)
    return dst, dst.qmp.wait_migration(timeout=600)


def refused(path, why, ram=RAM, workload="stress:bytes=64M"):
    """`ferry run --incoming file:PATH` refuses with `why`, exits 1, and
    its guest never ran."""
    out = ft.subprocess.run([ft.FERRY, "run"] + ram +
                            ["--workload", workload, "--incoming",
                             "file:" + path, "--duration", "300"],
                            capture_output=True, text=True, timeout=900)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert why in text, (why, text)
    assert "guest running" not in text, text
    return text


def round_trip(workload, channels=0, stopped=False, params=None):
    def t():
        s, path, src = save(workload, channels, stopped, params)
        assert s["status"] == "completed", s
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        dst, d = restore(path, workload, src.tmp, channels, params)
        assert d["status"] == "completed", d
        assert d.get("verified") is True, d
        st = dst.qmp.cmd("query-status")
        assert st["status"] == ("paused" if stopped else "running"), st
        if stopped:
            assert dst.still()
            dst.qmp.cmd("cont")
        assert dst.ticking()
        src.quit()
        dst.quit()
    return t


def t_bounded():
    """A guest rewriting 128 MiB while it is saved: later passes write
    their pages again in place, so the file stays RAM plus the stream
    (a plain save holds every copy), and the half of RAM that is zero
    takes no disk."""
    s, path, src = save("stress:bytes=128M", fill="zero")
    assert s["status"] == "completed", s
    src.quit()
    size = os.path.getsize(path)
    ram = 256 << 20
    # the header's 1 MiB, bitmaps, alignment, the stream (no pages in it)
    assert ram < size < ram + (8 << 20), (size, s["ram"])
    # what it wrote counts every pass: more than the file holds
    assert s["ram"]["transferred"] > size, (s["ram"], size)
    # the zero half: holes, not written (scattered zero pages go with
    # the pages around them, runs of 16 or more do not)
    used = os.stat(path).st_blocks * 512
    assert used < size * 0.7, (used, size)
    dst, d = restore(path, "stress:bytes=128M", os.path.dirname(path))
    assert d["status"] == "completed" and d.get("verified") is True, d
    assert dst.ticking()
    dst.quit()


def t_bad_files():
    """Cut, flipped, unfinished and foreign files are refused by what is
    wrong with them; the file itself restores."""
    s, path, src = save("stress:bytes=64M")
    assert s["status"] == "completed", s
    src.quit()
    data = open(path, "rb").read()
    bad = path + ".bad"

    def write(b):
        with open(bad, "wb") as f:
            f.write(b)
    write(data[:len(data) // 2])
    refused(bad, "the file is cut")
    # a byte of a page that is in the file (not a hole): past the header
    # and bitmaps, the first non-zero byte of the pages region
    at = data.index(next(bytes([c]) for c in data[2 << 20:] if c), 2 << 20)
    b = bytearray(data)
    b[at] ^= 0x40
    write(b)
    refused(bad, "digest mismatch")
    b = bytearray(data)
    b[:8] = bytes(8)
    write(b)
    refused(bad, "never finished")
    b = bytearray(data)
    b[8] = 9  # the version
    write(b)
    refused(bad, "version 9")
    refused(path, "another guest's save", ram=["--ram", "128M"])
    dst, d = restore(path, "stress:bytes=64M", os.path.dirname(path))
    assert d["status"] == "completed" and d.get("verified") is True, d
    dst.quit()


def t_failed_save_reused():
    """A save into a file that held a good one fails midway (cancelled):
    the file is no save now, a restore refuses it, and the source runs
    on."""
    s, path, src = save("stress:bytes=64M", name="reuse.sav")
    assert s["status"] == "completed", s
    src.quit()
    src = ft.Guest("src", RAM + ["--workload", "stress:bytes=64M"])
    caps(src)
    src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": 20 << 20})
    src.qmp.cmd("migrate", uri="file:" + path)
    src.qmp.wait_migration(states=("active",), timeout=60)
    time.sleep(0.5)
    src.qmp.cmd("migrate_cancel")
    s = src.qmp.wait_migration()
    assert s["status"] == "cancelled", s
    assert src.qmp.cmd("query-status")["status"] == "running"
    assert src.ticking()
    refused(path, "never finished")
    src.quit()



def t_refusals():
    """What mapped-ram cannot do is refused by name, and the guest runs
    on."""
    src = ft.Guest("src", RAM + ["--workload", "idle"])
    dst = ft.Guest("dst", RAM + ["--workload", "idle"],
                   incoming="tcp:127.0.0.1:0", tmp=src.tmp)
    caps(src)
    e = src.qmp.error("migrate", uri=dst.incoming_uri())
    assert "mapped-ram puts pages at fixed places in a file" in e, e
    src.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "xbzrle", "state": True}])
    e = src.qmp.error("migrate", uri="file:" + src.tmp + "/x.sav")
    assert "mapped-ram keeps every page whole" in e, e
    src.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "xbzrle", "state": False},
        {"capability": "mapped-ram", "state": False}])
    src.qmp.cmd("migrate-set-parameters", **{"direct-io": True})
    e = src.qmp.error("migrate", uri="file:" + src.tmp + "/x.sav")
    assert "direct-io needs mapped-ram" in e, e
    src.qmp.cmd("migrate-set-parameters", **{"direct-io": False})
    # a file open for appending would take every pwrite at its end
    caps(src)
    fd = os.open(os.path.join(src.tmp, "app.sav"),
                 os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    src.qmp.getfd("app", fd)
    os.close(fd)
    src.qmp.cmd("migrate", uri="fd:app")
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert "open for appending" in s["error-desc"], s
    # O_DIRECT needs an aligned start
    src.qmp.cmd("migrate-set-parameters", **{"direct-io": True})
    src.qmp.cmd("migrate", uri="file:%s/off.sav,offset=100" % src.tmp)
    s = src.qmp.wait_migration()
    assert s["status"] == "failed", s
    assert "multiple of 4096" in s["error-desc"], s
    src.qmp.cmd("migrate-set-parameters", **{"direct-io": False})
    # a pipe holds no page at a fixed place
    r, w = os.pipe()
    src.qmp.getfd("pipe", w)
    os.close(w)
    src.qmp.cmd("migrate", uri="fd:pipe")
    s = src.qmp.wait_migration()
    os.close(r)
    assert s["status"] == "failed", s
    assert "is not a regular file" in s["error-desc"], s
    assert src.qmp.cmd("query-status")["status"] == "running"
    assert src.ticking()
    src.quit()
    dst.quit()


def lazy(workload, channels=0):
    """A lazy restore: the guest runs as soon as its devices are loaded
    (resume-time), its faults are served from the file (requests, their
    latency), readers place the rest, and the digest is checked once all
    is placed."""
    def t():
        s, path, src = save(workload)
        assert s["status"] == "completed", s
        src.quit()
        dst, d = restore(path, workload, os.path.dirname(path), channels,
                         lazy=True)
        assert d["status"] == "completed", d
        assert d.get("verified") is True, d
        assert 0 <= d["resume-time"] <= d["total-time"], d
        assert d["ram"]["postcopy-requests"] > 0, d["ram"]
        lat = d["postcopy-fault-latency-us"]
        assert lat["p50"] <= lat["p99"] <= lat["max"], lat
        assert dst.qmp.cmd("query-status")["status"] == "running"
        assert dst.ticking()
        dst.quit()
    return t


def t_restore_command():
    """ferry restore FILE --cap ... --set ...: the capabilities before the
    restore starts, here a lazy one with two readers; verified."""
    s, path, src = save("stress:bytes=32M")
    src.quit()
    dst = ft.Guest("dst", RAM + ["--workload", "stress:bytes=32M",
                                 "--cap", "lazy-restore=on", "--cap",
                                 "multifd=on", "--set",
                                 "multifd-channels=2"],
                   incoming="file:" + path, tmp=os.path.dirname(path))
    d = dst.qmp.wait_migration(timeout=600)
    assert d["status"] == "completed" and d.get("verified") is True, d
    assert "resume-time" in d, d  # it ran before its pages were in
    assert dst.ticking()
    dst.quit()


def t_lazy_stopped():
    """A guest saved stopped is restored whole, lazy-restore or not, and
    stays stopped."""
    s, path, src = save("stress:bytes=32M", stopped=True)
    src.quit()
    dst, d = restore(path, "stress:bytes=32M", os.path.dirname(path),
                     lazy=True)
    assert d["status"] == "completed" and d.get("verified") is True, d
    assert "resume-time" not in d, d  # never ran on its pages' way
    assert dst.qmp.cmd("query-status")["status"] == "paused"
    assert dst.still()
    dst.quit()


def t_lazy_flipped():
    """A flipped byte in a page: the lazy restore runs the guest, finds
    the digest wrong once every page is placed, stops the guest and
    fails, saying so."""
    s, path, src = save("stress:bytes=64M")
    src.quit()
    data = bytearray(open(path, "rb").read())
    at = data.index(next(bytes([c]) for c in data[2 << 20:] if c), 2 << 20)
    data[at] ^= 0x40
    with open(path, "wb") as f:
        f.write(data)
    dst = ft.Guest("dst", RAM + ["--workload", "stress:bytes=64M"],
                   incoming="defer", tmp=os.path.dirname(path))
    dst.qmp.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "lazy-restore", "state": True}])
    dst.qmp.cmd("migrate-incoming", uri="file:" + path)
    assert dst.proc.wait(timeout=600) == 1
    text = dst.output()
    assert "digest mismatch" in text, text
    assert "the lazy restore failed while the guest ran here" in text, text
    assert "the guest is stopped" in text, text


def direct_io_works(tmp):
    try:
        fd = os.open(os.path.join(tmp, "odirect"),
                     os.O_WRONLY | os.O_CREAT | os.O_DIRECT)
        os.close(fd)
        return True
    except OSError:
        return False


for name, fn in [
    ("a running guest saved and restored, verified",
     round_trip("stress:bytes=64M")),
    ("a stopped guest restores stopped, verified",
     round_trip("stress:bytes=32M", stopped=True)),
    ("4 channels write and 4 read, verified",
     round_trip("stress:bytes=64M", channels=4)),
    ("the file stays RAM plus the stream for a busy guest", t_bounded),
    ("cut, flipped, unfinished, foreign files: refused", t_bad_files),
    ("a failed save leaves no save behind", t_failed_save_reused),
    ("what mapped-ram cannot do is refused by name", t_refusals),
    ("lazy restore: runs at once, pages from the file, verified",
     lazy("stress:bytes=64M")),
    ("lazy restore with 4 readers, verified", lazy("zipf:rate=50000", 4)),
    ("lazy restore of a stopped save: whole, stopped", t_lazy_stopped),
    ("ferry run --cap lazy-restore=on --incoming file:, verified",
     t_restore_command),
    ("lazy restore of a flipped file: stopped, refused", t_lazy_flipped),
]:
    if os.environ.get("FERRY_TEST_ONLY", "") in name:
        tap.run(name, ft.with_logs(fn))
name = "direct-io: O_DIRECT writes and reads, verified"
if os.environ.get("FERRY_TEST_ONLY", "") in name:
    import tempfile
    if direct_io_works(tempfile.gettempdir()):
        tap.run(name, ft.with_logs(
            round_trip("stress:bytes=64M", channels=2,
                       params={"direct-io": True})))
    else:
        tap.skip(name, "the temporary directory's file system does not "
                 "take O_DIRECT")
tap.done()
