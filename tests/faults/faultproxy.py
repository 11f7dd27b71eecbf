"""faultproxy.py - a fault-injecting TCP proxy for ferry's migrations.

Put it between a source and a destination: `migrate` to `proxy.uri` and it
forwards every connection of the migration (the main one first, then the
multifd page channels and, in post-copy, the urgent one) to the
destination.  As bytes flow source -> destination it follows the stream's
framing (docs/stream.md: a 16-byte header, then records of an 8-byte
header {type u8, flags u8, reserved u16, length le32} and a body), and the
return path's the other way (the same 8-byte headers, no stream header),
so a fault can be placed by position in the stream:

    proxy.cut(Bytes(10))                       # setup: inside the header
    proxy.cut(Record(PAGE, nth=2000))          # the bulk pass
    proxy.cut(Record(PAGE, nth=50, after=Record(EOI, nth=2)))
    proxy.cut(Record(DEVICE, offset=12))       # inside device state
    proxy.flip(Record(DEVICE, offset=DEVICE_NAME + len("cpu")))  # its data
    proxy.cut(Record(END))                     # before the end of stream
    proxy.flip(Record(PAGE, nth=300, offset=PAGE_PAYLOAD + 100))
    proxy.stall(Record(PAGE, nth=1000), seconds=2)
    proxy.cut(Record(PAGE, nth=100, channel=2))   # a multifd channel
    proxy.cut(Record(PAGE, nth=64, after=Record(POSTCOPY)))  # post-copy
    proxy.cut(Bytes(0, back=True))             # the first return message

A position is where the named record starts plus `offset` bytes: a cut or
a stall there forwards every byte before it and none from it on.
Channels are told apart by their channel record (index 0 is the main
connection), or by the order they came in when there is none.

Faults:
- cut: close both directions of that connection (FIN; with rst=True a
  reset, SO_LINGER 0).  Nothing read after the point is forwarded, either
  way: the return direction stops at the same moment, so a verdict the
  destination sends afterwards never reaches the source;
- stall: stop forwarding both directions of every connection, without
  reading, so the senders' buffers fill as on a dead link; for `seconds`,
  or until release().  With one=True only the connection the point is on
  stops (the others flow on): proxy.stall(Bytes(0, channel=1), one=True)
  holds a page channel back while its main connection is served;
- flip: XOR one byte at the position with `mask`.

cut_now() and stall_now() do the same at once, for tests that decide by
time or state.  The proxy also keeps what a test may want to check: the
count of records of each type per channel (seen()), the device sections
that went by (devices()), the channel records (channels(): what an
eavesdropper on the link learns of the session, its token included, as
docs/stream.md says), the faults that fired (fired).

Standard library only; one thread per direction of each connection.
"""
import select
import socket
import struct
import threading
import time

# record types, source -> destination
CONFIG, PAGE, DEVICE, EOI, END, CHANNEL, SYNC, DISCARD, POSTCOPY = range(
    1, 10)
# return-path messages, destination -> source
RESULT, RESEND, SYNC_ACK, PAGE_REQUEST, RUNNING = range(1, 6)

STREAM_HEADER = 16
RECORD_HEADER = 8
PAGE_PAYLOAD = RECORD_HEADER + 24  # a page record's payload starts here
END_RECORD = RECORD_HEADER + 24    # the whole end-of-stream record
DEVICE_NAME = RECORD_HEADER + 16   # a device record's name starts here
CHANNEL_BODY = 32                  # session, index, count, reserved, token
TOKEN = 16                         # the channel record's token, at 16
KEEP_BODY = (CONFIG, DEVICE, EOI, END, CHANNEL, POSTCOPY, RESULT)


class Bytes:
    """Byte `n` of a connection's stream (0 = the first byte)."""

    def __init__(self, n, channel=0, back=False):
        self.n, self.channel, self.back = n, channel, back

    def start(self):
        return self.n

    def __repr__(self):
        return "byte %d of channel %d%s" % (
            self.n, self.channel, " (return path)" if self.back else "")

    def observe(self, rec):
        return None


class Record:
    """The `nth` record of `type` (counting from 1) on a channel (0 = the
    main connection, 1.. = page channels, in post-copy the last is the
    urgent one), counted only after the `after` point when one is given;
    `back` for return-path messages."""

    def __init__(self, type, nth=1, offset=0, after=None, channel=0,
                 back=False):
        self.type, self.nth, self.offset = type, nth, offset
        self.after, self.channel, self.back = after, channel, back
        self.count = 0

    def start(self):
        return None

    def __repr__(self):
        after = ", after %r" % self.after if self.after else ""
        return "record %d #%d +%d on channel %d%s%s" % (
            self.type, self.nth, self.offset, self.channel,
            " (return path)" if self.back else "", after)

    def observe(self, rec):
        """The position this point names, once `rec` (type, start,
        length) shows it."""
        if self.after is not None:
            if self.after.observe(rec) is not None:
                self.after = None  # reached: count from the next record
            return None
        if rec[0] == self.type:
            self.count += 1
            if self.count == self.nth:
                return rec[1] + self.offset
        return None


class Fault:
    def __init__(self, kind, point, **how):
        self.kind, self.point, self.how = kind, point, how
        self.pos = None    # absolute position, once known
        self.done = False
        self.when = None   # time.time() when it fired


class Parser:
    """Follows one direction's framing; reports each record's header as
    soon as all 8 bytes of it are in."""

    def __init__(self, header):
        self.skip = header   # stream header bytes still to pass
        self.pos = 0         # bytes seen
        self.hdr = b""
        self.rec = None      # (type, start, length) of the current record
        self.left = 0        # body bytes of it still to come
        self.body = b""

    def feed(self, data):
        """Records whose header completed in `data`, and those completed
        whole: ([(type, start, length)], [(type, body)])."""
        heads, whole = [], []
        i = 0
        while i < len(data):
            if self.skip:
                n = min(self.skip, len(data) - i)
                self.skip -= n
            elif self.rec is None:
                n = min(RECORD_HEADER - len(self.hdr), len(data) - i)
                self.hdr += data[i:i + n]
                if len(self.hdr) == RECORD_HEADER:
                    t, _, _, length = struct.unpack("<BBHI", self.hdr)
                    start = self.pos + n - RECORD_HEADER
                    self.rec, self.left, self.body = (t, start, length), \
                        length, b""
                    self.hdr = b""
                    heads.append(self.rec)
            else:
                n = min(self.left, len(data) - i)
                if self.rec[0] in KEEP_BODY and self.rec[2] <= 1 << 16:
                    self.body += data[i:i + n]
                self.left -= n
            i += n
            self.pos += n
            if self.rec is not None and not self.left:
                whole.append((self.rec[0], self.body))
                self.rec = None
        return heads, whole

    def safe(self):
        """Up to where bytes may leave: not into a record header whose
        type is not known yet."""
        return self.pos - len(self.hdr)


class Direction:
    """One way of a connection: read from `rx`, forward to `tx`."""

    def __init__(self, conn, rx, tx, back):
        self.conn, self.rx, self.tx, self.back = conn, rx, tx, back
        if conn.proxy.opaque:  # TLS: no framing to follow, bytes only
            self.parser = Parser(1 << 62)
        else:
            self.parser = Parser(0 if back else STREAM_HEADER)
        self.sent = 0           # bytes forwarded
        self.pending = b""      # read, not forwarded yet
        self.other = None


class Conn:
    def __init__(self, proxy, index, client, server):
        self.proxy = proxy
        self.index = index      # accept order
        self.channel = index    # accept order until a channel record says
        self.client, self.server = client, server
        self.lock = threading.Lock()
        self.dead = False       # cut: both directions stop
        self.blocked = None     # a cut is under way: this one stops now
        self.rst = False
        self.counts = {}        # (back, type) -> records seen
        self.fwd = Direction(self, client, server, False)
        self.bwd = Direction(self, server, client, True)
        self.fwd.other, self.bwd.other = self.bwd, self.fwd
        self.running = 2
        self.flowing = threading.Event()  # a stall of this one alone
        self.flowing.set()

    def waiting(self):
        """A stall holds this connection: the proxy's, or its own."""
        for ev in (self.proxy.flowing, self.flowing):
            if not ev.is_set():
                ev.wait(0.1)
                return True
        return False


class FaultProxy:
    """A proxy in front of `target_uri` (tcp:HOST:PORT); migrate to
    `.uri`.  Arm faults with cut(), stall(), flip() before or during the
    migration.  `opaque`: the connections carry TLS, so their framing
    cannot be followed; only Bytes points and the *_now() faults work,
    and a connection's channel is its accept order (0: the first;
    see .conns).  `keep`: the first connection's bytes from the client
    are kept as forwarded (kept()), a recording to replay."""

    def __init__(self, target_uri, opaque=False, keep=False):
        self.opaque = opaque
        self.keep = keep  # the first connection's forwarded bytes: kept()
        self.kept_chunks = []
        host, port = target_uri.split(":")[1:]
        self.target = (host, int(port))
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(70)
        self.uri = "tcp:127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.faults = []
        self.fired = []          # faults that fired, in order
        self.conns = []
        self._devices = []       # (channel, body) of device records
        self._channels = []      # bodies of channel records
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    # -- arming ---------------------------------------------------------
    def _arm(self, kind, point, **how):
        f = Fault(kind, point, **how)
        with self.lock:
            self.faults.append(f)
        return f

    def cut(self, point, rst=False):
        return self._arm("cut", point, rst=rst)

    def stall(self, point, seconds=None, one=False):
        return self._arm("stall", point, seconds=seconds, one=one)

    def flip(self, point, mask=0x40):
        return self._arm("flip", point, mask=mask)

    def cut_now(self, rst=False):
        """Cut every connection now."""
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            self._kill(c, rst)

    def stall_now(self, seconds=None):
        """Stop all forwarding now, for `seconds` or until release()."""
        self.flowing.clear()
        if seconds is not None:
            t = threading.Timer(seconds, self.flowing.set)
            t.daemon = True
            t.start()

    def release(self):
        self.flowing.set()
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.flowing.set()

    def close(self):
        """Stop accepting; cut what is left."""
        self.closed = True
        self.release()
        try:
            self.lsock.close()
        except OSError:
            pass
        self.cut_now()

    # -- what went by ---------------------------------------------------
    def kept(self):
        """With keep=True: what the first connection's client sent, as
        forwarded (a recording to replay)."""
        return b"".join(self.kept_chunks)

    def seen(self, type, channel=0, back=False):
        """Records of `type` that started on `channel` so far."""
        with self.lock:
            return sum(c.counts.get((back, type), 0) for c in self.conns
                       if c.channel == channel)

    def devices(self):
        """Every device section that went by whole, in order:
        [(name, instance, version, data)]."""
        out = []
        with self.lock:
            bodies = list(self._devices)
        for _, body in bodies:
            nlen, _, inst, ver, dlen = struct.unpack_from("<HHIII", body)
            name = body[16:16 + nlen].decode("ascii", "replace")
            out.append((name, inst, ver, body[16 + nlen:16 + nlen + dlen]))
        return out

    def channels(self):
        """Every channel record that went by whole, in order:
        [(session, index, count, token)]; token None in version 1's
        16-byte record, which had none."""
        with self.lock:
            bodies = list(self._channels)
        return [struct.unpack_from("<QHH", b) +
                (b[16:16 + TOKEN] if len(b) >= CHANNEL_BODY else None,)
                for b in bodies if len(b) >= 16]

    def connections(self):
        with self.lock:
            return len(self.conns)

    # -- the machinery --------------------------------------------------
    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.closed:
                c.close()
                return
            try:
                s = socket.create_connection(self.target, timeout=10)
            except OSError:
                c.close()  # the destination is gone: refuse as it would
                continue
            for sk in (c, s):
                sk.setblocking(False)
                sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                conn = Conn(self, len(self.conns), c, s)
                self.conns.append(conn)
            for d in (conn.fwd, conn.bwd):
                threading.Thread(target=self._pump, args=(d,),
                                 daemon=True).start()

    def _kill(self, conn, rst):
        with conn.lock:
            conn.dead = True
            conn.rst = conn.rst or rst

    def _mine(self, d):
        with self.lock:
            return [f for f in self.faults if not f.done and
                    f.point.back == d.back and
                    f.point.channel == d.conn.channel]

    def _read(self, d, heads, whole):
        conn = d.conn
        with self.lock:
            for t, body in whole:
                if t == CHANNEL and not d.back and len(body) >= 10:
                    conn.channel = struct.unpack_from("<H", body, 8)[0]
                    self._channels.append(body)
                if t == DEVICE and not d.back and len(body) >= 16:
                    self._devices.append((conn.channel, body))
            for rec in heads:
                key = (d.back, rec[0])
                conn.counts[key] = conn.counts.get(key, 0) + 1
        for f in self._mine(d):
            if f.pos is None:
                f.pos = f.point.start()
            for rec in heads:
                if f.pos is None:
                    f.pos = f.point.observe(rec)

    def _send(self, d, data):
        """Forward all of `data`; False once the connection is cut."""
        while data:
            with d.conn.lock:
                if d.conn.dead:
                    return False
                if d.conn.blocked is d:
                    return True  # dropped: the cut is on its way
            if d.conn.waiting():
                continue
            try:
                n = d.tx.send(data)
            except BlockingIOError:
                select.select([], [d.tx], [], 0.1)
                continue
            except OSError:
                return False
            if self.keep and not d.back and d.conn.index == 0:
                self.kept_chunks.append(data[:n])
            d.sent += n
            data = data[n:]
        return True

    def _fire(self, d, f):
        """Apply fault `f` at d.sent (== f.pos); False when it cut."""
        f.done, f.when = True, time.time()
        with self.lock:
            self.fired.append(f)
        if f.kind == "flip":  # the byte at f.pos is the first pending one
            d.pending = bytes([d.pending[0] ^ f.how["mask"]]) + \
                d.pending[1:]
            return True
        if f.kind == "stall" and f.how.get("one"):
            d.conn.flowing.clear()
            if f.how["seconds"] is not None:
                t = threading.Timer(f.how["seconds"], d.conn.flowing.set)
                t.daemon = True
                t.start()
            return True
        if f.kind == "stall":
            self.stall_now(f.how["seconds"])
            return True
        self._kill(d.conn, f.how["rst"])
        return False

    def _forward(self, d, eof=False):
        """Send what is pending up to the next fault or the parser's safe
        point.  False once the connection is cut."""
        while True:
            base = d.sent
            limit = base + len(d.pending)
            if not eof:
                limit = min(limit, d.parser.safe())
            # a flip needs its byte here; a cut or a stall may fall at the
            # very end (after the last record)
            due = [f for f in self._mine(d) if f.pos is not None and
                   (f.pos < limit or f.pos == limit and f.kind != "flip")]
            due.sort(key=lambda f: f.pos)
            end = max(due[0].pos, base) if due else limit
            if due and due[0].kind == "cut":
                with d.conn.lock:  # nothing more the other way
                    d.conn.blocked = d.other
            if end > base:
                chunk, d.pending = d.pending[:end - base], \
                    d.pending[end - base:]
                if not self._send(d, chunk):
                    return False
            if not due:
                return True
            if not self._fire(d, due[0]):
                return False

    def _pump(self, d):
        """Forward one direction until it ends.  A cut ends both at once;
        otherwise each ends by itself, as on a wire: when the destination
        resets, its verdict on the way back still goes through."""
        conn = d.conn
        while True:
            with conn.lock:
                if conn.dead:
                    break
            if conn.waiting():  # a dead link reads nothing
                continue
            r, _, _ = select.select([d.rx], [], [], 0.1)
            if not r:
                continue
            try:
                data = d.rx.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                heads, whole = d.parser.feed(data)
                d.pending += data
                self._read(d, heads, whole)
            if not self._forward(d, not data) or not data:
                break
        with conn.lock:
            if not conn.dead:
                try:
                    d.tx.shutdown(socket.SHUT_WR)  # pass the end on
                except OSError:
                    pass
            conn.running -= 1
            last = conn.running == 0
        if last:
            for sk in (conn.client, conn.server):
                if conn.rst:
                    sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                  struct.pack("ii", 1, 0))
                sk.close()
