#!/usr/bin/env python3
"""test_file.py - save and restore through file: (QEMU's `migrate
file:PATH` and `migrate-incoming file:PATH`) and exec:COMMAND: a running or stopped guest
saved into a file, restored into a new process, verified by the digest in
the file; a file that is cut, flipped or from another guest is refused
and nothing runs; what a file cannot carry is refused by name.  Prints
TAP."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ferrytest as ft  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

tap = ft.TAP()
RAM = ["--ram", "256M", "--vcpus", "2"]


def save(workload, fill="random", stopped=False, params=None, caps=None,
         uri_tail=""):
    """A guest saved into a file; returns (its query-migrate, the file,
    the source guest)."""
    src = ft.Guest("src", RAM + ["--workload", workload, "--fill", fill])
    path = os.path.join(src.tmp, "guest.sav")
    if params:
        src.qmp.cmd("migrate-set-parameters", **params)
    if caps:
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": c, "state": True} for c in caps])
    if stopped:
        src.qmp.cmd("stop")
    else:
        time.sleep(0.3)  # let it dirty some memory
    src.qmp.cmd("migrate", uri="file:" + path + uri_tail)
    s = src.qmp.wait_migration(timeout=600)
    return s, path, src


def restore(path, workload, tmp, args=()):
    dst = ft.Guest("dst", RAM + ["--workload", workload] + list(args),
                   incoming="file:" + path, tmp=tmp)
    return dst, dst.qmp.wait_migration(timeout=600)


def saved_and_restored(workload, fill="random", stopped=False, params=None,
                       caps=None):
    def t():
        s, path, src = save(workload, fill, stopped, params, caps)
        assert s["status"] == "completed", s
        # a source that saved its guest holds it no more than after any
        # migration: stopped, and cont only with x-force
        assert src.qmp.cmd("query-status")["status"] == "postmigrate"
        assert "verified" not in s, s  # nobody checked it yet
        assert s["ram"]["transferred"] == os.path.getsize(path), s
        dst, d = restore(path, workload, src.tmp)
        assert d["status"] == "completed", d
        assert d.get("verified") is True, d
        st = dst.qmp.cmd("query-status")
        if stopped:
            assert st["status"] == "paused", st  # as it was saved
            assert dst.still()
            dst.qmp.cmd("cont")
        else:
            assert st["status"] == "running", st
        assert dst.ticking()
        src.quit()
        dst.quit()
    return t


def t_offset():
    """file:PATH,offset=N: what lies before the offset is kept, and the
    restore reads from there."""
    src = ft.Guest("src", RAM + ["--workload", "idle"])
    path = os.path.join(src.tmp, "guest.sav")
    with open(path, "wb") as f:
        f.write(b"H" * 4096)
    src.qmp.cmd("migrate", uri="file:%s,offset=4096" % path)
    s = src.qmp.wait_migration(timeout=600)
    assert s["status"] == "completed", s
    with open(path, "rb") as f:
        assert f.read(4096) == b"H" * 4096
        assert f.read(8) == b"FERRYMIG"
    dst, d = restore(path + ",offset=4096", "idle", src.tmp)
    assert d["status"] == "completed" and d.get("verified"), d
    src.quit()
    dst.quit()


STRESS = ["--workload", "stress:bytes=64M"]


def refused(path, why, ram=RAM + STRESS):
    """A restore from this file fails with `why`: `ferry run` says so and
    exits 1, and its guest never ran (no heartbeat tick, "guest running"
    never said)."""
    # --duration: a guest that ran after all (the test failing) ends; a
    # refusal comes long before, even from a sanitizer build
    out = ft.subprocess.run([ft.FERRY, "run"] + ram +
                            ["--incoming", "file:" + path, "--duration",
                             "300"],
                            capture_output=True, text=True, timeout=900)
    text = out.stdout + out.stderr
    assert out.returncode == 1, text
    assert why in text, (why, text)
    assert "guest running" not in text and "completed" not in text, text
    return text


def t_bad_files():
    """Cut, flipped, foreign, empty and missing files are refused by what
    is wrong with them; nothing resumes."""
    s, path, src = save("stress:bytes=64M")
    assert s["status"] == "completed", s
    src.quit()
    data = open(path, "rb").read()
    cut = path + ".cut"
    with open(cut, "wb") as f:
        f.write(data[:len(data) // 2])
    text = refused(cut, "input ended")
    # the offset, said as a byte of the file's stream
    assert "of the saved stream)" in text, text
    # a flipped bit where it matters (one in a page's copy that a later
    # pass sent again is harmless, and restores): the digest at the end,
    # the magic at the start
    for at, why in ((len(data) - 1, "digest mismatch"), (0, "bad magic")):
        flipped = path + ".flipped"
        b = bytearray(data)
        b[at] ^= 0x40
        with open(flipped, "wb") as f:
            f.write(b)
        refused(flipped, why)
    # another guest's: a different RAM layout
    refused(path, "ram0", ram=["--ram", "128M"] + STRESS)
    empty = path + ".empty"
    open(empty, "wb").close()
    refused(empty, "nothing at offset 0")
    refused(path + ".none", "No such file")
    # the file itself restores: it was the bad copies
    dst, d = restore(path, "stress:bytes=64M", src.tmp)
    assert d["status"] == "completed" and d.get("verified"), d
    dst.quit()


def t_failed_save():
    """A save that cannot be written fails, and the source runs on: its
    guest is nowhere else."""
    src = ft.Guest("src", RAM + ["--workload", "idle"])
    e = None
    try:
        src.qmp.cmd("migrate", uri="file:" + src.tmp + "/no/such/dir/x")
    except ft.QMPError as x:
        e = x
    if e is None:
        s = src.qmp.wait_migration(timeout=600)
        assert s["status"] == "failed", s
        assert "No such file" in s["error-desc"], s
    else:
        assert "No such file" in e.desc, e.desc
    st = src.qmp.cmd("query-status")
    assert st["running"] and st["status"] == "running", st
    assert src.ticking()
    src.quit()


def t_refusals():
    """What a file cannot carry is refused before anything is written."""
    src = ft.Guest("src", RAM + ["--workload", "idle"])
    path = os.path.join(src.tmp, "x.sav")
    for caps, why in ((["multifd"], "multifd is not supported over file"),
                      (["postcopy-ram"], "post-copy is not supported over "
                       "file")):
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": c, "state": True} for c in caps])
        e = None
        try:
            src.qmp.cmd("migrate", uri="file:" + path)
        except ft.QMPError as x:
            e = x
        assert e is not None and why in e.desc, (why, e)
        src.qmp.cmd("migrate-set-capabilities", capabilities=[
            {"capability": c, "state": False} for c in caps])
    assert not os.path.exists(path)
    e = None
    try:
        src.qmp.cmd("migrate", uri="file:%s,size=3" % path)
    except ft.QMPError as x:
        e = x
    assert e is not None and "unknown option 'size=3'" in e.desc, e
    assert src.qmp.cmd("query-status")["running"]
    src.quit()


def t_save_restore_commands():
    """ferry save and ferry restore: the same through the shorthands."""
    src = ft.Guest("src", RAM + ["--workload", "stress:bytes=32M"])
    path = os.path.join(src.tmp, "cmd.sav")
    out = ft.subprocess.run([ft.FERRY, "save", "--qmp", "unix:" + src.sock,
                             path, "--set", "downtime-limit=50"],
                            capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert '"status": "completed"' in out.stdout, out.stdout
    assert src.qmp.cmd("query-status")["status"] == "postmigrate"
    src.quit()
    # driven over its own QMP socket: it runs until told to quit, however
    # long the restore takes (a sanitizer build is slow)
    sock = os.path.join(src.tmp, "restore.qmp")
    p = ft.subprocess.Popen([ft.FERRY, "restore", path] + RAM +
                            ["--workload", "stress:bytes=32M", "--qmp",
                             "unix:" + sock], stdout=ft.subprocess.PIPE,
                            stderr=ft.subprocess.STDOUT, text=True)
    try:
        q = ft.QMP(sock, timeout=600)
        d = q.wait_migration(timeout=600)
        assert d["status"] == "completed" and d.get("verified"), d
        assert q.cmd("query-status")["status"] == "running"
        q.cmd("quit")
        out = p.communicate(timeout=120)[0]
    except Exception as x:
        # what the restore said is the cause; the QMP error only a symptom
        if p.poll() is None:
            p.kill()
        raise AssertionError("%s; ferry restore (status %s) said: %s" % (
            x, p.wait(), p.communicate()[0][-3000:])) from x
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, out
    assert "verified; guest running" in out, out
    out = ft.subprocess.run([ft.FERRY, "restore", "--ram", "1G"],
                            capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "FILE comes first" in out.stderr, out


def t_demo_file():
    """ferry demo --transport file saves and restores, verified, and says
    how long each took."""
    import json
    out = ft.subprocess.run([ft.FERRY, "demo", "--ram", "256M",
                             "--workload", "stress:bytes=64M",
                             "--transport", "file", "--json"],
                            capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    r = json.loads(out.stdout)
    assert r["status"] == "completed" and r["verified"] is True, r
    assert r["restore-time"] >= 0 and r["total-time"] > 0, r
    assert r["uri"].startswith("file:"), r


def t_exec():
    """exec:COMMAND: saved through a pipe to cat and restored from one,
    verified; a command that fails (early or at the end) fails the save
    and the source runs on; a restore from a failing command runs
    nothing."""
    src = ft.Guest("src", RAM + STRESS)
    gz = os.path.join(src.tmp, "guest.piped")
    src.qmp.cmd("migrate", uri="exec:cat > " + gz)
    s = src.qmp.wait_migration(timeout=600)
    assert s["status"] == "completed", s
    assert src.qmp.cmd("query-status")["status"] == "postmigrate"
    src.qmp.cmd("cont", **{"x-force": True})
    for cmd, why in (("exit 1", "the command exited with status 1"),
                     ("cat > /dev/null; exit 4", "exited with status 4")):
        src.qmp.cmd("migrate", uri="exec:" + cmd)
        s = src.qmp.wait_migration(timeout=600)
        assert s["status"] == "failed" and why in s["error-desc"], s
        st = src.qmp.cmd("query-status")
        assert st["running"] and st["status"] == "running", st
        assert src.ticking()
    src.quit()
    dst, d = restore_uri("exec:cat " + gz, src.tmp)
    assert d["status"] == "completed" and d.get("verified"), d
    assert dst.qmp.cmd("query-status")["status"] == "running"
    dst.quit()
    out = ft.subprocess.run([ft.FERRY, "run"] + RAM + STRESS +
                            ["--incoming", "exec:exit 3"],
                            capture_output=True, text=True, timeout=600)
    assert out.returncode == 1, out
    assert "the command exited with status 3" in out.stderr, out.stderr
    assert "guest running" not in out.stdout, out.stdout


def restore_uri(uri, tmp):
    dst = ft.Guest("dst", RAM + STRESS, incoming=uri, tmp=tmp)
    return dst, dst.qmp.wait_migration(timeout=600)


for name, fn in [
    ("a running idle guest saved and restored, verified",
     saved_and_restored("idle")),
    ("a running stress guest saved and restored, verified",
     saved_and_restored("stress:bytes=128M")),
    ("a stopped guest restores stopped, verified",
     saved_and_restored("stress:bytes=64M", stopped=True)),
    ("zstd-compressed text pages in the file, verified",
     saved_and_restored("zipf:rate=20000", fill="text",
                        params={"multifd-compression": "zstd"})),
    ("xbzrle deltas in the file, verified",
     saved_and_restored("stress:bytes=64M", caps=["xbzrle"])),
    ("file:PATH,offset=N keeps what lies before", t_offset),
    ("cut, flipped, foreign and missing files: refused, nothing runs",
     t_bad_files),
    ("a save that cannot be written: the source runs on", t_failed_save),
    ("multifd and post-copy into a file are refused by name", t_refusals),
    ("ferry save and ferry restore", t_save_restore_commands),
    ("exec: through pipes, verified; failing commands fail cleanly", t_exec),
    ("ferry demo --transport file: save and restore times, verified",
     t_demo_file),
]:
    if os.environ.get("FERRY_TEST_ONLY", "") in name:
        tap.run(name, fn)
tap.done()
