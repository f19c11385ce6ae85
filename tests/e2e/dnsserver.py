"""A small DNS server for tests, Python 3 standard library only: UDP and TCP on one loopback
port, A and AAAA answers from a dict, NXDOMAIN for unknown names, NOERROR without answers for a
name that has only the other family, one answer delay applied to every query concurrently (a
scheduler thread: 1000 queries all answer after about the delay, not one after the other), and
counts of the queries per name.

    srv = dnsserver.DnsServer({"a.test": ["192.0.2.1", "2001:db8::1"]}, delay=0.2)
    srv.start()
    ... srv.port, srv.queries["a.test"], srv.queries_by_type[("a.test", "AAAA")] ...
    srv.stop()

Names are compared without case and without a trailing dot; counts use that form. Options:
rcodes={"name": 2} answers that name with that RCODE (2 SERVFAIL, 5 REFUSED); silent=True reads
and counts queries but never answers; tcp=False serves UDP only; host/port choose the address
(default 127.0.0.1 and a free port). An answer larger than 512 bytes over UDP goes out
truncated (TC set, no records), so the client asks again over TCP (srv.tcp_queries counts
those). Queries are parsed defensively: anything malformed is counted in srv.malformed and
answered FORMERR when its header can be read, else dropped.
"""

import collections
import errno
import heapq
import ipaddress
import socket
import struct
import threading
import time

TYPE_A = 1
TYPE_AAAA = 28
TYPE_NAMES = {TYPE_A: "A", TYPE_AAAA: "AAAA"}
CLASS_IN = 1
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
UDP_MAX = 512
TTL = 60


class Malformed(Exception):
    pass


def norm(name):
    return name.lower().rstrip(".")


def parse_query(data):
    """(id, flags, question bytes, name, qtype, qclass) of one query; raises Malformed."""
    if len(data) < 12:
        raise Malformed("shorter than a header (%d bytes)" % len(data))
    qid, flags, qdcount, _an, _ns, _ar = struct.unpack("!HHHHHH", data[:12])
    if flags & 0x8000:
        raise Malformed("a response, not a query")
    if (flags >> 11) & 0xF != 0:
        raise Malformed("opcode %d" % ((flags >> 11) & 0xF))
    if qdcount != 1:
        raise Malformed("%d questions" % qdcount)
    pos, labels, total = 12, [], 0
    while True:
        if pos >= len(data):
            raise Malformed("name runs past the end")
        ln = data[pos]
        pos += 1
        if ln == 0:
            break
        if ln & 0xC0:
            raise Malformed("compressed or extended label in the question")
        if pos + ln > len(data):
            raise Malformed("label runs past the end")
        total += ln + 1
        if total > 255:
            raise Malformed("name longer than 255 bytes")
        labels.append(data[pos:pos + ln])
        pos += ln
    if pos + 4 > len(data):
        raise Malformed("no type and class after the name")
    qtype, qclass = struct.unpack("!HH", data[pos:pos + 4])
    name = ".".join(l.decode("latin-1") for l in labels)
    return qid, flags, data[12:pos + 4], norm(name), qtype, qclass


def build_response(qid, flags, question, rcode, answers=(), tc=False):
    out_flags = 0x8000 | 0x0400 | (flags & 0x0100) | 0x0080 | (rcode & 0xF)
    if tc:
        out_flags |= 0x0200
    msg = struct.pack("!HHHHHH", qid, out_flags, 1 if question else 0, len(answers), 0, 0)
    msg += question
    for rtype, rdata in answers:
        msg += b"\xc0\x0c" + struct.pack("!HHIH", rtype, CLASS_IN, TTL, len(rdata)) + rdata
    return msg


class DnsServer:
    def __init__(self, records, delay=0.0, rcodes=None, silent=False, tcp=True,
                 host="127.0.0.1", port=0):
        self.records = {}
        for name, addrs in records.items():
            lst = self.records.setdefault(norm(name), [])
            for a in addrs:
                ip = ipaddress.ip_address(a)
                lst.append((TYPE_A if ip.version == 4 else TYPE_AAAA, ip.packed))
        self.rcodes = {norm(k): v for k, v in (rcodes or {}).items()}
        self.delay = delay
        self.silent = silent
        self.tcp = tcp
        self.host = host
        self.port = port
        self.queries = collections.Counter()
        self.queries_by_type = collections.Counter()
        self.tcp_queries = collections.Counter()
        self.malformed = 0
        self.log = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heap = []
        self._seq = 0
        self._cond = threading.Condition()
        self._threads = []
        self._udp = None
        self._tcp = None
        self._conns = []

    # ------------------------------------------------------------ lifecycle
    def start(self):
        for _ in range(50):
            udp = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                                socket.SOCK_DGRAM)
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            udp.bind((self.host, self.port))
            port = udp.getsockname()[1]
            if not self.tcp:
                break
            tcp = socket.socket(udp.family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                tcp.bind((self.host, port))
            except OSError as e:
                tcp.close()
                udp.close()
                if e.errno == errno.EADDRINUSE and self.port == 0:
                    continue
                raise
            tcp.listen(64)
            self._tcp = tcp
            break
        else:
            raise RuntimeError("dnsserver: no port free for both UDP and TCP")
        self._udp = udp
        self.port = port
        self._spawn(self._udp_loop)
        self._spawn(self._send_loop)
        if self._tcp:
            self._spawn(self._accept_loop)
        return self

    def stop(self):
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for s in [self._udp, self._tcp] + list(self._conns):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def dump(self, tail=40):
        """The last lines of the server's log, for a failing test to print."""
        with self._lock:
            return "\n".join(self.log[-tail:])

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self._threads.append(t)

    def _note(self, text):
        with self._lock:
            if len(self.log) < 10000:
                self.log.append(text)

    # ------------------------------------------------------------ answering
    def _answer(self, data, over_tcp):
        """The response to one datagram or TCP message, or None to drop it."""
        try:
            qid, flags, question, name, qtype, qclass = parse_query(data)
        except Malformed as e:
            with self._lock:
                self.malformed += 1
            self._note("malformed query: %s" % e)
            if len(data) < 12 or data[2] & 0x80:
                return None
            qid, flags = struct.unpack("!HH", data[:4])
            rcode = NOTIMP if (flags >> 11) & 0xF else FORMERR
            return build_response(qid, flags, b"", rcode)
        with self._lock:
            self.queries[name] += 1
            self.queries_by_type[(name, TYPE_NAMES.get(qtype, str(qtype)))] += 1
            if over_tcp:
                self.tcp_queries[name] += 1
        if self.silent:
            return None
        if name in self.rcodes:
            return build_response(qid, flags, question, self.rcodes[name])
        if name not in self.records:
            return build_response(qid, flags, question, NXDOMAIN)
        answers = []
        if qclass == CLASS_IN:
            answers = [(t, rd) for t, rd in self.records[name] if t == qtype]
        resp = build_response(qid, flags, question, NOERROR, answers)
        if not over_tcp and len(resp) > UDP_MAX:
            resp = build_response(qid, flags, question, NOERROR, (), tc=True)
        return resp

    def _later(self, fn):
        if self.delay <= 0:
            fn()
            return
        with self._cond:
            self._seq += 1
            heapq.heappush(self._heap, (time.monotonic() + self.delay, self._seq, fn))
            self._cond.notify()

    def _send_loop(self):
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set():
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        fn = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(self._heap[0][0] - now if self._heap else 0.5)
                else:
                    return
            try:
                fn()
            except OSError as e:
                self._note("send failed: %s" % e)

    # ------------------------------------------------------------ transports
    def _udp_loop(self):
        self._udp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data, peer = self._udp.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            resp = self._answer(data, False)
            if resp is not None:
                self._later(lambda r=resp, p=peer: self._udp.sendto(r, p))

    def _accept_loop(self):
        self._tcp.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            self._spawn(self._tcp_conn, conn)

    def _tcp_conn(self, conn):
        send_lock = threading.Lock()

        def send(resp):
            with send_lock:
                conn.sendall(struct.pack("!H", len(resp)) + resp)

        def read_exact(n):
            buf = b""
            while len(buf) < n:
                chunk = conn.recv(n - len(buf))
                if not chunk:
                    return None
                buf += chunk
            return buf

        conn.settimeout(30)
        try:
            while not self._stop.is_set():
                head = read_exact(2)
                if head is None:
                    return
                (ln,) = struct.unpack("!H", head)
                data = read_exact(ln)
                if data is None:
                    self._note("tcp: connection closed inside a message")
                    return
                resp = self._answer(data, True)
                if resp is not None:
                    self._later(lambda r=resp: send(r))
        except OSError:
            return
