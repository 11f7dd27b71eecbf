#!/usr/bin/env python3
"""test_tls.py - TLS on every connection of a migration (docs/usage.md,
"TLS"), with certificates this test makes with the openssl command
(tlscerts.py).  Pre-copy, multifd, post-copy and post-copy recovery run
over TLS and are verified on both sides; each attack that worked on
plain TCP fails: a rogue source that connects first, a source without
a certificate or with one of another CA, an expired one or one not on
tls-authz, a destination whose certificate is for another host, expired
or of another CA, a recorded stream replayed, a made-up post-copy
stream, a stranger's extra connection during a migration, and a byte
flipped or the link cut on the way (the fault proxy).  In each the
destination resumes nothing and the source guest runs on.  The PSK
layout too.  Prints TAP."""
import os
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "faults"))
import ferrytest as ft  # noqa: E402
import faultproxy as fp  # noqa: E402
import tlscerts  # noqa: E402

if len(sys.argv) > 1:
    ft.FERRY = sys.argv[1]

tap = ft.TAP()
CERTS = None  # made once, in main
IDLE = ["--ram", "256M", "--vcpus", "1", "--workload", "idle", "--fill",
        "random"]
STRESS = ["--ram", "512M", "--vcpus", "2", "--workload",
          "stress:bytes=32M", "--fill", "random"]
# a stress guest converges under a sanitizer's slowdown too
CONVERGE = {"downtime-limit": 3000}


def creds(name):
    return CERTS[name]


def tls_params(name, **more):
    p = {"tls-creds": creds(name)}
    p.update(more)
    return p


def pair(dst_creds, src_creds, args=IDLE, authz=None, caps=(),
         src_params=None):
    """A destination listening with TLS (--tls-creds on its command
    line) and a source given its tls-creds over QMP."""
    dargs = list(args)
    if dst_creds:
        dargs += ["--tls-creds", creds(dst_creds)]
    if authz:
        dargs += ["--tls-authz", authz]
    dst = ft.Guest("dst", dargs, incoming="tcp:127.0.0.1:0")
    src = ft.Guest("src", args, tmp=dst.tmp)
    params = dict(src_params or {})
    if src_creds:
        params["tls-creds"] = creds(src_creds)
    if params:
        src.qmp.cmd("migrate-set-parameters", **params)
    if caps:
        c = [{"capability": n, "state": True} for n in caps]
        src.qmp.cmd("migrate-set-capabilities", capabilities=c)
        dst.qmp.cmd("migrate-set-capabilities", capabilities=c)
    return dst, src


def verified(src, dst):
    s = src.qmp.wait_migration(timeout=900)
    d = dst.qmp.wait_migration(timeout=300)
    assert s["status"] == "completed", s
    assert d["status"] == "completed", (d, dst.output()[-2000:])
    assert s.get("verified") is True and d.get("verified") is True, (s, d)
    assert dst.qmp.cmd("query-status")["status"] == "running"
    return s, d


def tls_seen(s, d):
    """Both sides say TLS 1.3 with AES-GCM (this CPU has AES) and name
    the peer's certificate."""
    for side, peer in ((s, "CN=localhost"), (d, "CN=ferry-source")):
        t = side.get("tls")
        assert t, side
        assert t["version"] == "TLSv1.3", t
        if cpu_has_aes():
            assert "AES" in t["cipher"] and "GCM" in t["cipher"], t
        assert peer in t["peer"], t


def cpu_has_aes():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return " aes " in line + " "
    return False


def quit_both(src, dst, dst_rc=0):
    src.quit()
    rc = dst.quit()
    assert dst_rc is None or rc == dst_rc, (rc, dst.output()[-2000:])


def src_runs_on(src, s):
    """The source guest runs, and says why its migration failed."""
    assert s["status"] == "failed", s
    assert src.qmp.cmd("query-status")["status"] == "running"
    assert src.ticking(), "the source guest does not run"


def refused(dst, n, timeout=120):
    deadline = time.time() + timeout
    info = {}
    while time.time() < deadline:
        info = dst.qmp.cmd("query-migrate")
        if info.get("refused-connections", 0) >= n:
            return info
        time.sleep(0.02)
    raise TimeoutError("refused: %s" % info)


def waiting(dst):
    """The destination still waits for its migration: nothing resumed."""
    info = dst.qmp.cmd("query-migrate")
    assert info["status"] == "setup", info
    assert dst.qmp.cmd("query-status")["status"] in ("inmigrate",
                                                      "paused"), info


# ---- migrations over TLS ---------------------------------------------


def t_precopy():
    dst, src = pair("dst", "src", STRESS, src_params=CONVERGE)
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s, d = verified(src, dst)
    tls_seen(s, d)
    quit_both(src, dst)


def t_multifd():
    dst, src = pair("dst", "src", STRESS, caps=("multifd",),
                    src_params=dict(CONVERGE, **{"multifd-channels": 4}))
    dst.qmp.cmd("migrate-set-parameters", **{"multifd-channels": 4})
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s, d = verified(src, dst)
    tls_seen(s, d)
    quit_both(src, dst)


def t_postcopy():
    args = ["--ram", "256M", "--vcpus", "2", "--workload",
            "zipf:rate=200000", "--fill", "random"]
    dst, src = pair("dst", "src", args, caps=("postcopy-ram",),
                    src_params={"max-bandwidth": 64 << 20})
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    src.qmp.cmd("migrate-start-postcopy")
    s, d = verified(src, dst)
    assert s.get("postcopy-requests", 0) > 0 or d["ram"]["transferred"], s
    tls_seen(s, d)
    quit_both(src, dst)


def t_recovery():
    """Post-copy over TLS through the proxy; the link is cut, both
    pause; migrate-recover and migrate with resume reconnect over TLS
    (new handshakes) and post-copy completes, verified."""
    args = ["--ram", "256M", "--vcpus", "2", "--workload",
            "zipf:rate=200000", "--fill", "random"]
    dst, src = pair("dst", "src", args, caps=("postcopy-ram",),
                    src_params={"max-bandwidth": 40 << 20})
    proxy = fp.FaultProxy(dst.incoming_uri(), opaque=True)
    # the proxy's address is not the certificate's name: say which
    src.qmp.cmd("migrate-set-parameters", **{"tls-hostname": "localhost"})
    src.qmp.cmd("migrate", uri=proxy.uri)
    src.qmp.cmd("migrate-start-postcopy")
    ft.both(src, dst, "postcopy-active")
    proxy.cut_now()
    ft.both(src, dst, "postcopy-paused")
    dst.qmp.cmd("migrate-recover", uri="tcp:127.0.0.1:0")
    uri = dst.qmp.cmd("query-migrate")["uri"]
    src.qmp.cmd("migrate", uri=uri, resume=True)
    s, d = verified(src, dst)
    assert s["postcopy-recoveries"] == 1 and d["postcopy-recoveries"] == 1
    tls_seen(s, d)
    quit_both(src, dst)
    proxy.close()


def t_psk():
    """keys.psk (QEMU's tls-creds-psk layout): the same key migrates,
    verified; another key is refused."""
    dst, src = pair("psk-a", "psk-b")
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s = src.qmp.wait_migration()
    src_runs_on(src, s)
    refused(dst, 1)
    waiting(dst)
    src.qmp.cmd("migrate-set-parameters", **tls_params("psk-a"))
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s, d = verified(src, dst)
    assert s["tls"]["peer"] == "psk:ferry", s
    assert d["tls"]["peer"] == "psk:ferry", d
    quit_both(src, dst)


# ---- who may connect -------------------------------------------------


def t_clients_refused():
    """One destination that demands client certificates and lets in
    only the source's subject (tls-authz).  In turn: a rogue plain-TCP
    source, and sources with no certificate, another CA's, an expired
    one, and one not on tls-authz: each source's migration fails saying
    why, its guest runs on, the destination refuses it saying why and
    goes on waiting; then the real source migrates, verified."""
    authz = os.path.join(os.path.dirname(creds("dst")), "authz")
    with open(authz, "w") as f:
        f.write("# the sources let in\n%s\n" % tlscerts.SOURCE_SUBJECT)
    dst = ft.Guest("dst", IDLE + ["--tls-creds", creds("dst"),
                                  "--tls-authz", authz],
                   incoming="tcp:127.0.0.1:0")
    uri = dst.incoming_uri()
    cases = [
        (None, "", "does not speak TLS"),
        ("src-nocert", "certificate required", "sent no certificate"),
        ("src-foreign", "unknown ca",
         "is not signed by the CA in tls-creds"),
        ("src-expired", "certificate expired", "has expired"),
        ("src-other", "not on its tls-authz list",
         "is not on tls-authz"),
    ]
    for i, (name, src_why, dst_why) in enumerate(cases):
        src = ft.Guest("src%d" % i, IDLE, tmp=dst.tmp)
        if name:
            src.qmp.cmd("migrate-set-parameters", **tls_params(name))
        src.qmp.cmd("migrate", uri=uri)
        s = src.qmp.wait_migration()
        src_runs_on(src, s)
        assert src_why in s.get("error-desc", ""), (name, s)
        info = refused(dst, i + 1)
        assert dst_why in info["refused-reason"], (name, info)
        waiting(dst)
        src.quit()
    src = ft.Guest("src", IDLE, tmp=dst.tmp)
    src.qmp.cmd("migrate-set-parameters", **tls_params("src"))
    src.qmp.cmd("migrate", uri=uri)
    verified(src, dst)
    quit_both(src, dst)


def t_servers_refused():
    """The source checks the destination: a certificate for another
    host, an expired one, and one its CA did not sign each fail the
    source's migration with the reason, and its guest runs on; the
    destination resumes nothing."""
    cases = [
        ("dst-host", "src", "is for another host"),
        ("dst-expired", "src", "has expired"),
        ("dst", "src-wrongca", "is not signed by the CA in tls-creds"),
    ]
    for dst_creds, src_creds, why in cases:
        dst, src = pair(dst_creds, src_creds)
        src.qmp.cmd("migrate", uri=dst.incoming_uri())
        s = src.qmp.wait_migration()
        src_runs_on(src, s)
        assert "destination's certificate " + why in s.get(
            "error-desc", ""), (dst_creds, s)
        refused(dst, 1)
        waiting(dst)
        quit_both(src, dst, None)


def t_no_ca():
    """A destination whose tls-creds hold no CA takes any source (no
    client certificates, as QEMU's verify-peer=off), and refuses
    tls-authz, which would need them."""
    dst, src = pair("dst-noca", "src-nocert")
    src.qmp.cmd("migrate", uri=dst.incoming_uri())
    s, d = verified(src, dst)
    assert d["tls"]["peer"] == "", d
    quit_both(src, dst)
    dst = ft.Guest("dst", IDLE, incoming="defer")
    dst.qmp.cmd("migrate-set-parameters", **tls_params(
        "dst-noca", **{"tls-authz": os.path.join(creds("dst"),
                                                 "ca-cert.pem")}))
    e = dst.qmp.error("migrate-incoming", uri="tcp:127.0.0.1:0")
    assert "tls-authz needs client certificates" in e, e
    dst.quit()


def t_bad_params():
    """tls-creds that is not a directory, or a directory with nothing
    in it, fails the migrate command at once; TLS over rdma: is refused
    (its RDMA WRITEs carry no TLS)."""
    src = ft.Guest("src", IDLE)
    src.qmp.cmd("migrate-set-parameters", **{"tls-creds": "/nonexistent"})
    e = src.qmp.error("migrate", uri="tcp:127.0.0.1:1")
    assert "tls-creds: /nonexistent is not a directory" in e, e
    empty = os.path.join(src.tmp, "empty")
    os.makedirs(empty)
    src.qmp.cmd("migrate-set-parameters", **{"tls-creds": empty})
    e = src.qmp.error("migrate", uri="tcp:127.0.0.1:1")
    assert "holds neither x509 credentials" in e, e
    src.qmp.cmd("migrate-set-parameters", **tls_params("src"))
    e = src.qmp.error("migrate", uri="rdma:127.0.0.1:1")
    assert "rdma: does not carry TLS" in e, e
    p = src.qmp.cmd("query-migrate-parameters")
    assert p["tls-creds"] == creds("src") and p["tls-hostname"] == "", p
    assert src.qmp.cmd("query-status")["status"] == "running"
    src.quit()


def t_timeouts():
    """A handshake has net-timeout on both sides: a client that connects
    and says nothing is refused by the destination, and a listener that
    never answers fails the source's migration; the source runs on."""
    dst = ft.Guest("dst", IDLE + ["--tls-creds", creds("dst")],
                   incoming="tcp:127.0.0.1:0")
    dst.qmp.cmd("migrate-set-parameters", **{"net-timeout": 1500})
    host, port = dst.incoming_uri().split(":")[1:]
    mute = socket.create_connection((host, int(port)))
    info = refused(dst, 1)
    assert "no TLS handshake within 1500 ms" in info["refused-reason"], info
    mute.close()
    waiting(dst)
    dst.quit()
    deaf = socket.socket()
    deaf.bind(("127.0.0.1", 0))
    deaf.listen(1)
    src = ft.Guest("src", IDLE)
    src.qmp.cmd("migrate-set-parameters",
                **tls_params("src", **{"net-timeout": 1500}))
    src.qmp.cmd("migrate", uri="tcp:127.0.0.1:%d" % deaf.getsockname()[1])
    s = src.qmp.wait_migration()
    src_runs_on(src, s)
    assert "no TLS handshake within 1500 ms (net-timeout)" in \
        s.get("error-desc", ""), s
    src.quit()
    deaf.close()


# ---- attacks ---------------------------------------------------------


def send_until_closed(uri, data, timeout=60):
    """Connect to uri (tcp:HOST:PORT), send data, and read until the
    peer closes (a refusal) or `timeout` s pass."""
    host, port = uri.split(":")[1:]
    s = socket.create_connection((host, int(port)))
    s.settimeout(timeout)
    try:
        s.sendall(data)
        while s.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    s.close()


def t_replay():
    """A TLS migration's bytes, recorded on the way, replayed to a fresh
    destination with the same credentials: the handshake cannot complete
    (its keys are the session's), and nothing resumes."""
    dst, src = pair("dst", "src")
    rec = fp.FaultProxy(dst.incoming_uri(), opaque=True, keep=True)
    src.qmp.cmd("migrate-set-parameters", **{"tls-hostname": "localhost"})
    src.qmp.cmd("migrate", uri=rec.uri)
    verified(src, dst)
    quit_both(src, dst)
    rec.close()
    data = rec.kept()
    assert len(data) > 256 << 20, len(data)
    dst2 = ft.Guest("dst2", IDLE + ["--tls-creds", creds("dst")],
                    incoming="tcp:127.0.0.1:0")
    send_until_closed(dst2.incoming_uri(), data[:1 << 20])
    info = refused(dst2, 1)
    assert "TLS" in info["refused-reason"], info
    waiting(dst2)
    dst2.quit()


def t_fake_postcopy():
    """A made-up post-copy stream (a head that asks for post-copy, no
    pages) in the clear to a TLS destination is refused before one byte
    of it is read as a stream; nothing resumes."""
    dst = ft.Guest("dst", IDLE + ["--tls-creds", creds("dst")],
                   incoming="tcp:127.0.0.1:0")
    head = b"FERRYMIG" + struct.pack("<HHI", 2, 16, 1 << 5)
    send_until_closed(dst.incoming_uri(), head + b"\0" * 4096)
    info = refused(dst, 1)
    assert "does not speak TLS" in info["refused-reason"], info
    waiting(dst)
    dst.quit()


def t_stranger():
    """During a TLS multifd migration (its page channels held back by
    the proxy), strangers connect to the destination: in the clear, and
    with TLS but another CA's certificate.  Both are refused, and the
    migration completes, verified."""
    dst, src = pair("dst", "src", IDLE, caps=("multifd",),
                    src_params={"multifd-channels": 2,
                                "net-timeout": 60000,
                                "tls-hostname": "localhost"})
    dst.qmp.cmd("migrate-set-parameters", **{"net-timeout": 60000})
    proxy = fp.FaultProxy(dst.incoming_uri(), opaque=True)
    proxy.stall(fp.Bytes(0, channel=1), one=True)
    src.qmp.cmd("migrate", uri=proxy.uri)
    deadline = time.time() + 120
    while not proxy.fired:
        assert time.time() < deadline, "the first page channel never came"
        time.sleep(0.01)
    uri = dst.incoming_uri()
    send_until_closed(uri, b"FERRYMIG" + b"\0" * 600)
    refused(dst, 1)
    rogue = ft.Guest("rogue", IDLE, tmp=dst.tmp)
    rogue.qmp.cmd("migrate-set-parameters", **tls_params("src-foreign"))
    rogue.qmp.cmd("migrate", uri=uri)
    info = refused(dst, 2)
    assert "is not signed by the CA" in info["refused-reason"], info
    assert rogue.qmp.wait_migration()["status"] == "failed"
    rogue.quit()
    proxy.release()
    verified(src, dst)
    quit_both(src, dst)
    proxy.close()


def t_flip():
    """A byte flipped on the way (the fault proxy) breaks its TLS record:
    on the main connection, and on a multifd page channel (read in place,
    without the relay); the destination resumes nothing and says so, the
    source's pre-copy fails and its guest runs on."""
    for caps, channel in (((), 0), (("multifd",), 1)):
        dst, src = pair("dst", "src", IDLE, caps=caps,
                        src_params={"tls-hostname": "localhost"})
        proxy = fp.FaultProxy(dst.incoming_uri(), opaque=True)
        proxy.flip(fp.Bytes(32 << 20, channel=channel))
        src.qmp.cmd("migrate", uri=proxy.uri)
        s = src.qmp.wait_migration()
        src_runs_on(src, s)
        assert proxy.fired, "the flip never fired"
        # the record fails to decrypt; or, when the flip lengthened it,
        # the destination waits for bytes that never come, until the
        # source gives up (net-timeout)
        dst_failed(dst, "TLS receiving")
        src.quit()
        proxy.close()


def dst_failed(dst, why):
    """The destination's migration failed, it exits 1 and resumed
    nothing, and says why."""
    rc = dst.proc.wait(timeout=120)
    out = dst.output()
    assert rc == 1, (rc, out[-2000:])
    assert "incoming migration failed" in out and why in out, out[-2000:]
    assert "guest running" not in out.split("waiting for a migration")[-1]


def t_cut():
    """The link cut in the middle of a TLS pre-copy: both fail, the
    source guest runs on, the destination resumes nothing."""
    dst, src = pair("dst", "src", IDLE,
                    src_params={"tls-hostname": "localhost"})
    proxy = fp.FaultProxy(dst.incoming_uri(), opaque=True)
    proxy.cut(fp.Bytes(64 << 20))
    src.qmp.cmd("migrate", uri=proxy.uri)
    s = src.qmp.wait_migration()
    src_runs_on(src, s)
    dst_failed(dst, "TLS receiving")
    src.quit()
    proxy.close()


def main():
    global CERTS
    import tempfile
    root = tempfile.mkdtemp(prefix="ferry-tls-")
    ft._tmpdirs.append(root)
    CERTS = tlscerts.make(os.path.join(root, "creds"))
    for name, fn in [
        ("pre-copy over TLS, verified, TLS 1.3 AES-GCM on both sides",
         t_precopy),
        ("multifd with 4 channels over TLS, verified", t_multifd),
        ("post-copy over TLS, verified", t_postcopy),
        ("post-copy recovery over TLS after a cut, verified", t_recovery),
        ("PSK: the same key migrates; another key is refused", t_psk),
        ("sources without a valid certificate, or not on tls-authz, are "
         "refused with the reason; the real one then migrates",
         t_clients_refused),
        ("destinations with a wrong certificate are refused by the "
         "source, which runs on", t_servers_refused),
        ("tls-creds without a CA: no client certificates, no tls-authz",
         t_no_ca),
        ("bad tls-creds and TLS over rdma: refused at once",
         t_bad_params),
        ("a handshake has net-timeout on both sides", t_timeouts),
        ("a recorded TLS stream replayed is refused", t_replay),
        ("a made-up post-copy stream in the clear is refused",
         t_fake_postcopy),
        ("strangers during a TLS migration are refused; it completes",
         t_stranger),
        ("a flipped byte fails the TLS record (main connection, page "
         "channel); the source runs on", t_flip),
        ("a cut TLS link fails both; the source runs on", t_cut),
    ]:
        if len(sys.argv) > 2 and sys.argv[2] not in fn.__name__:
            continue  # one case by name, when debugging
        tap.run(name, ft.with_logs(fn))
    tap.done()


main()
