"""ferrytest.py - helpers for ferry's two-process tests: start guests,
talk QMP to them, and print TAP.

A QMP client here is deliberately plain: the socket protocol is what a
QEMU management tool would speak, so these tests also show that such a tool
works against ferry unchanged."""
import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

FERRY = os.environ.get("FERRY", "build/ferry")


class QMPError(Exception):
    def __init__(self, cls, desc):
        super().__init__(f"{cls}: {desc}")
        self.cls = cls
        self.desc = desc


class QMP:
    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.events = []
        self.greeting = self._read()
        assert "QMP" in self.greeting, self.greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("QMP socket closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def send_raw(self, data):
        self.sock.sendall(data)

    def reply(self):
        while True:
            msg = self._read()
            if "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        msg = self.reply()
        if "error" in msg:
            raise QMPError(msg["error"]["class"], msg["error"]["desc"])
        return msg["return"]

    def getfd(self, fdname, fd):
        """QEMU's getfd: the descriptor travels with the request
        (SCM_RIGHTS); fd None sends the request alone."""
        import array
        req = json.dumps({"execute": "getfd",
                          "arguments": {"fdname": fdname}}).encode() + b"\n"
        anc = [] if fd is None else [
            (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
        self.sock.sendmsg([req], anc)
        msg = self.reply()
        if "error" in msg:
            raise QMPError(msg["error"]["class"], msg["error"]["desc"])
        return msg["return"]

    def error(self, name, **args):
        """Run a command that must fail; its error description."""
        try:
            self.cmd(name, **args)
        except QMPError as e:
            return e.desc
        raise AssertionError(f"{name} {args} succeeded")

    def wait_migration(self, states=("completed", "failed", "cancelled"),
                       timeout=300):
        deadline = time.time() + timeout
        while time.time() < deadline:
            info = self.cmd("query-migrate")
            if info.get("status") in states:
                return info
            time.sleep(0.05)
        raise TimeoutError(f"migration still {info.get('status')}")

    def close(self):
        self.sock.close()


_live = []
_tmpdirs = []


@atexit.register
def _rmtmp():
    """Temporary folders go when the test program ends."""
    import shutil
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


@atexit.register
def _reap(since=0):
    """No guest outlives its test, whatever happened in it: kill those
    started after the first `since`."""
    for g in _live[since:]:
        if g.proc.poll() is None:
            g.proc.kill()
            g.proc.wait()
    del _live[since:]


class Guest:
    """A `ferry run` process with a QMP socket."""

    def __init__(self, name, args, incoming=None, tmp=None, prefix=(),
                 pass_fds=()):
        if not tmp:
            tmp = tempfile.mkdtemp(prefix="ferry-e2e-")
            _tmpdirs.append(tmp)
        self.tmp = tmp
        self.sock = os.path.join(self.tmp, name + ".qmp")
        cmd = [FERRY] + list(prefix) + ["run", "--qmp", "unix:" + self.sock]
        cmd += list(args)
        if incoming:
            cmd += ["--incoming", incoming]
        self.log = open(os.path.join(self.tmp, name + ".log"), "w+")
        self.proc = subprocess.Popen(cmd, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     pass_fds=pass_fds)
        _live.append(self)
        self.qmp = QMP(self.sock)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def ticking(self, timeout=60):
        """Does the guest's heartbeat tick (x-query-guest)?  True at the
        first tick seen, False after `timeout` s without one (a busy
        machine may keep the heartbeat's thread waiting a while)."""
        before = self.qmp.cmd("x-query-guest")["heartbeat-ticks"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            time.sleep(0.01)
            if self.qmp.cmd("x-query-guest")["heartbeat-ticks"] > before:
                return True
        return False

    def still(self, seconds=0.2):
        """No heartbeat tick for `seconds`: the guest is stopped."""
        before = self.qmp.cmd("x-query-guest")["heartbeat-ticks"]
        time.sleep(seconds)
        return self.qmp.cmd("x-query-guest")["heartbeat-ticks"] == before

    def incoming_uri(self):
        return self.qmp.cmd("query-migrate")["uri"]

    def quit(self):
        try:
            self.qmp.cmd("quit")
        except (OSError, QMPError):
            pass
        self.qmp.close()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.qmp.close()


def both(src, dst, status, timeout=120):
    """Wait until source and destination are both in `status` (their
    query-migrate answers), for up to `timeout` s."""
    deadline = time.time() + timeout
    a = b = None
    while time.time() < deadline:
        a = src.qmp.cmd("query-migrate")
        b = dst.qmp.cmd("query-migrate")
        if a["status"] == b["status"] == status:
            return a, b
        time.sleep(0.05)
    raise AssertionError("not both %s: %s, %s" % (status, a, b))


def with_logs(fn):
    """A test case whose failure carries the last output of every guest
    it started."""
    def t():
        made = []
        init = Guest.__init__

        def track(self, *a, **k):
            init(self, *a, **k)
            made.append(self)
        Guest.__init__ = track
        try:
            fn()
        except Exception as e:
            logs = " | ".join(g.output()[-1500:] for g in made)
            try:
                again = type(e)("%s; output: %s" % (e, logs))
            except TypeError:  # an exception that takes other arguments
                again = AssertionError("%r; output: %s" % (e, logs))
            raise again from e
        finally:
            Guest.__init__ = init
    return t


class Proxy:
    """A TCP proxy for every connection of a migration.  The connection
    accepted `flip_conn`-th (0 = the main one) gets byte `flip_at` of its
    stream from source to destination flipped; those whose accept order is
    in `slow` forward each chunk towards the destination only after
    `delay` seconds, so they run behind the others."""

    def __init__(self, target_uri, flip_conn=0, flip_at=None, slow=(),
                 delay=0):
        import threading
        host, port = target_uri.split(":")[1:]
        self.target = (host, int(port))
        self.flip_conn, self.flip_at = flip_conn, flip_at
        self.slow, self.delay = set(slow), delay
        self.flipped = False
        self.delayed = 0
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.uri = "tcp:127.0.0.1:%d" % self.lsock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _pump(self, a, b, flip_at=None, delay=0):
        seen = 0
        try:
            while True:
                data = a.recv(1 << 16)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                    self.delayed += 1
                if flip_at is not None and seen <= flip_at < seen + len(data):
                    i = flip_at - seen
                    data = data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:]
                    self.flipped = True
                seen += len(data)
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(2)
            except OSError:
                pass

    def _run(self):
        import threading
        n = 0
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            d = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(d, c),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(
                c, d, self.flip_at if n == self.flip_conn else None,
                self.delay if n in self.slow else 0), daemon=True).start()
            n += 1


class TAP:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def run(self, name, fn):
        self.n += 1
        before = len(_live)
        try:
            fn()
            print(f"ok {self.n} - {name}", flush=True)
        except Exception as e:  # a failed check or a broken run
            self.failed += 1
            print(f"not ok {self.n} - {name}: {type(e).__name__}: {e}",
                  flush=True)
        _reap(before)  # a failed test leaves no guest running

    def skip(self, name, why):
        self.n += 1
        print(f"ok {self.n} - {name} # SKIP {why}", flush=True)

    def done(self):
        print(f"1..{self.n}", flush=True)
        sys.exit(1 if self.failed else 0)
