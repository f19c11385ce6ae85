"""A fleet of TLS servers on many loopback addresses (127.x.y.z), for the network scan tests.

Certificates are generated here with the `cryptography` package (a test root CA, an
intermediate, RSA-2048/4096, ECDSA P-256/P-384, Ed25519, expired, self-signed, wildcard, 100
SANs, SNI-dependent). Every server runs in threads of this process: a listener thread per
address and a thread per connection. The fleet counts handshakes in flight (from accept until
the handshake ends, fails, or the client goes away) and keeps the maximum, so a test can assert
the scanner's concurrency. Nothing here listens outside 127.0.0.0/8.

    fleet = tlsfleet.Fleet(tmpdir)
    fleet.tls("rsa2048", key=fleet.rsa(2048))     # next free address, fleet.port
    ...
    fleet.start(); ...; fleet.stop()
"""

import datetime
import hashlib
import ipaddress
import os
import random
import socket
import ssl
import threading
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fleet Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _sig_hash(key):
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


class Cert:
    """A certificate with its key and the chain to serve (leaf first), as PEM files."""

    def __init__(self, cert, key, chain, path_prefix):
        self.cert = cert
        self.key = key
        self.chain = chain  # [x509.Certificate] leaf first
        self.der = cert.public_bytes(serialization.Encoding.DER)
        self.fingerprint = hashlib.sha256(self.der).hexdigest()
        self.cert_path = path_prefix + ".crt"
        self.key_path = path_prefix + ".key"
        with open(self.cert_path, "wb") as f:
            for c in chain:
                f.write(c.public_bytes(serialization.Encoding.PEM))
        with open(self.key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))

    def context(self, min_version=None, max_version=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert_path, self.key_path)
        if min_version:
            ctx.minimum_version = min_version
        if max_version:
            ctx.maximum_version = max_version
        return ctx


class Server:
    """One listener: kind is tls, starttls_smtp, refused (nothing listens), tarpit, garbage,
    drip, midclose."""

    def __init__(self, fleet, name, addr, port, kind, cert=None, ctx=None):
        self.fleet = fleet
        self.name = name
        self.addr = addr
        self.port = port
        self.kind = kind
        self.cert = cert
        self.ctx = ctx
        self.sock = None
        self.connections = 0
        self.handshakes_ok = 0


class Fleet:
    def __init__(self, tmpdir, port=None, base=None, hold_s=0.0):
        self.dir = os.path.join(tmpdir, "fleet")
        os.makedirs(self.dir, exist_ok=True)
        # A random 127.a.b.0/24 block per fleet so parallel test runs do not meet.
        if base is None:
            base = "127.%d.%d.0" % (random.randint(100, 250), random.randint(1, 250))
        self.base = ipaddress.ip_address(base)
        self.next_host = 1
        self.port = port
        self.servers = []
        self.hold_s = hold_s  # each handshake waits this long after the ClientHello
        self._lock = threading.Lock()
        self.inflight = 0        # handshakes in flight now (see _handshake)
        self.max_inflight = 0    # most handshakes in flight at once (see _handshake)
        self.handshakes = 0
        self._stop = threading.Event()
        self._threads = []
        self._counter = 0
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = self._sign(_name("Fleet Root CA"), self.ca_key.public_key(), _name("Fleet Root CA"),
                             self.ca_key, ca=True)
        self.int_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = self._sign(_name("Fleet Intermediate CA"), self.int_key.public_key(),
                                       _name("Fleet Root CA"), self.ca_key, ca=True)

    # ------------------------------------------------------------------ certificates

    def _sign(self, subject, pubkey, issuer, issuer_key, ca=False, sans=None, not_before=None,
              not_after=None, extra_ext=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
             .public_key(pubkey).serial_number(x509.random_serial_number())
             .not_valid_before(not_before or NOW - datetime.timedelta(days=1))
             .not_valid_after(not_after or NOW + datetime.timedelta(days=365)))
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        if sans:
            gn = []
            for s in sans:
                try:
                    gn.append(x509.IPAddress(ipaddress.ip_address(s)))
                except ValueError:
                    gn.append(x509.DNSName(s))
            b = b.add_extension(x509.SubjectAlternativeName(gn), critical=False)
        for ext in (extra_ext if isinstance(extra_ext, list) else [extra_ext]):
            if ext is not None:
                b = b.add_extension(ext, critical=False)
        return b.sign(issuer_key, _sig_hash(issuer_key))

    def cert(self, cn, key=None, sans=None, self_signed=False, expired=False, via_intermediate=False,
             extra_ext=None, ocsp_url=None, crl_url=None):
        """A leaf certificate for cn (SANs default to [cn]) signed by the fleet CA, or by the
        intermediate (chain leaf + intermediate), or by itself; with an AIA OCSP responder and
        a CRL distribution point when given."""
        key = key or ec.generate_private_key(ec.SECP256R1())
        extra_ext = list(extra_ext) if isinstance(extra_ext, list) else [extra_ext]
        if ocsp_url:
            extra_ext.append(x509.AuthorityInformationAccess([x509.AccessDescription(
                x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]))
        if crl_url:
            extra_ext.append(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(crl_url)], None, None, None)]))
        sans = [cn] if sans is None else sans
        nb = na = None
        if expired:
            nb = NOW - datetime.timedelta(days=400)
            na = NOW - datetime.timedelta(days=30)
        if self_signed:
            c = self._sign(_name(cn), key.public_key(), _name(cn), key, sans=sans, not_before=nb,
                           not_after=na, extra_ext=extra_ext)
            chain = [c]
        elif via_intermediate:
            c = self._sign(_name(cn), key.public_key(), _name("Fleet Intermediate CA"), self.int_key,
                           sans=sans, not_before=nb, not_after=na, extra_ext=extra_ext)
            chain = [c, self.intermediate]
        else:
            c = self._sign(_name(cn), key.public_key(), _name("Fleet Root CA"), self.ca_key,
                           sans=sans, not_before=nb, not_after=na, extra_ext=extra_ext)
            chain = [c]
        self._counter += 1
        return Cert(c, key, chain, os.path.join(self.dir, "c%d" % self._counter))

    @staticmethod
    def rsa(bits):
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)

    @staticmethod
    def ecdsa(curve):
        return ec.generate_private_key({"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1()}[curve])

    @staticmethod
    def ed25519():
        return ed25519.Ed25519PrivateKey.generate()

    # ------------------------------------------------------------------ servers

    def next_addr(self):
        a = str(self.base + self.next_host)
        self.next_host += 1
        return a

    def add(self, name, kind, cert=None, ctx=None, addr=None, port=None):
        s = Server(self, name, addr or self.next_addr(), port or self.port, kind, cert, ctx)
        self.servers.append(s)
        return s

    def tls(self, name, cert, min_version=None, max_version=None, sni=None, addr=None, port=None):
        """A TLS server presenting cert; sni maps server names to other Certs."""
        ctx = cert.context(min_version, max_version)
        if sni:
            others = {n: c.context(min_version, max_version) for n, c in sni.items()}

            def pick(sslobj, server_name, _ctx):
                if server_name in others:
                    sslobj.context = others[server_name]
            ctx.sni_callback = pick
        return self.add(name, "tls", cert, ctx, addr, port)

    def swap(self, server, cert):
        """Serves another certificate from now on (for drift tests)."""
        server.cert = cert
        server.ctx = cert.context()

    def stop_server(self, server):
        """Stops one listener: its address now refuses connections."""
        if server.sock:
            sock, server.sock = server.sock, None
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it
            except OSError:
                pass
            time.sleep(0.5)  # the accept loop lets go of it within its 0.2 s timeout
            sock.close()
        server.kind = "refused"

    def cidr(self):
        """The /26 block that holds every fleet address (the next_host counter stays < 64)."""
        return "%s/26" % self.base

    def _pick_port(self):
        for _ in range(50):
            port = random.randint(20000, 60000)
            socks = []
            try:
                for s in self.servers:
                    if s.kind == "refused" or s.port not in (None, port):
                        continue
                    t = socket.socket(_family(s.addr), socket.SOCK_STREAM)
                    socks.append(t)
                    t.bind((s.addr, port))
                return port
            except OSError:
                continue
            finally:
                for t in socks:
                    t.close()
        raise RuntimeError("no port free on every fleet address")

    def start(self):
        if self.port is None:
            self.port = self._pick_port()
            for s in self.servers:
                if s.port is None:
                    s.port = self.port
        for s in self.servers:
            if s.kind == "refused":
                continue
            sock = socket.socket(_family(s.addr), socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((s.addr, s.port))
            sock.listen(256)
            sock.settimeout(0.2)
            s.sock = sock
            t = threading.Thread(target=self._accept_loop, args=(s,), daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        for s in self.servers:
            if s.sock:
                s.sock.close()

    def reset_counters(self):
        with self._lock:
            self.max_inflight = self.inflight
            for s in self.servers:
                s.connections = 0
                s.handshakes_ok = 0

    def _enter(self, s):
        with self._lock:
            s.connections += 1

    def _enter_handshake(self):
        with self._lock:
            self.handshakes += 1
            self.inflight += 1
            if self.inflight > self.max_inflight:
                self.max_inflight = self.inflight

    def _leave(self):
        with self._lock:
            self.inflight -= 1

    def _accept_loop(self, s):
        while not self._stop.is_set():
            sock = s.sock
            if sock is None:
                return
            try:
                conn, _ = sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(s, conn), daemon=True)
            t.start()

    def _serve(self, s, conn):
        self._enter(s)
        try:
            conn.settimeout(30)
            getattr(self, "_serve_" + s.kind)(s, conn)
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _handshake(self, s, conn):
        """Serves one handshake through memory BIOs so the fleet knows when the server's first
        flight is out. A handshake counts as in flight from the ClientHello's arrival until that
        flight is sent: a window inside the client's own, so the count never exceeds the
        client's real concurrency (it starts after the ClientHello was sent and ends before
        the client can have the server's answer)."""
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = s.ctx.wrap_bio(inc, out, server_side=True)
        data = conn.recv(16384)
        if not data:
            return
        self._enter_handshake()
        if self.hold_s:
            time.sleep(self.hold_s)  # keeps handshakes overlapping, so a cap is put to the test
        counted = [True]

        def done_counting():
            if counted[0]:
                counted[0] = False
                self._leave()
        try:
            inc.write(data)
            while True:
                try:
                    obj.do_handshake()
                    finished = True
                except ssl.SSLWantReadError:
                    finished = False
                pending = out.read()
                if pending:
                    # Stop counting before the flight leaves: the client cannot finish (and
                    # free its slot) before this point, so the window stays inside its own.
                    done_counting()
                    conn.sendall(pending)
                if finished:
                    with self._lock:
                        s.handshakes_ok += 1
                    break
                data = conn.recv(16384)
                if not data:
                    return
                inc.write(data)
        finally:
            done_counting()
        try:
            conn.settimeout(2)
            conn.recv(1)
        except OSError:
            pass

    def _serve_tls(self, s, conn):
        self._handshake(s, conn)

    def _serve_starttls_smtp(self, s, conn):
        f = conn.makefile("rb")
        conn.sendall(b"220 fleet.test ESMTP\r\n")
        line = f.readline(1024)
        if not line.upper().startswith(b"EHLO"):
            return
        conn.sendall(b"250-fleet.test\r\n250-SIZE 1000\r\n250 STARTTLS\r\n")
        line = f.readline(1024)
        if line.strip().upper() != b"STARTTLS":
            return
        conn.sendall(b"220 2.0.0 Ready to start TLS\r\n")
        f.close()
        self._handshake(s, conn)

    def _serve_starttls_imap(self, s, conn):
        f = conn.makefile("rb")
        conn.sendall(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] fleet ready\r\n")
        line = f.readline(1024)
        tag = line.split(b" ", 1)[0]
        if line[len(tag):].strip().upper() != b"STARTTLS":
            return
        conn.sendall(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK Begin TLS negotiation now\r\n")
        f.close()
        self._handshake(s, conn)

    def _serve_starttls_pop3(self, s, conn):
        f = conn.makefile("rb")
        conn.sendall(b"+OK fleet POP3 ready\r\n")
        if f.readline(1024).strip().upper() != b"STLS":
            return
        conn.sendall(b"+OK Begin TLS negotiation\r\n")
        f.close()
        self._handshake(s, conn)

    def _serve_starttls_ldap(self, s, conn):
        # LDAPMessage SEQUENCE with a short length, then the StartTLS extended request OID
        req = conn.recv(4096)
        if len(req) < 2 or req[0] != 0x30 or b"1.3.6.1.4.1.1466.20037" not in req:
            return
        msgid = req[4] if req[2] == 0x02 and req[3] == 1 else 1
        # ExtendedResponse: resultCode success, empty matchedDN and diagnosticMessage
        conn.sendall(bytes([0x30, 0x0c, 0x02, 0x01, msgid, 0x78, 0x07, 0x0a, 0x01, 0x00,
                            0x04, 0x00, 0x04, 0x00]))
        self._handshake(s, conn)

    def _wait_closed(self, conn):
        while not self._stop.is_set():
            try:
                if not conn.recv(4096):
                    return
            except socket.timeout:
                continue

    def _serve_tarpit(self, s, conn):
        conn.settimeout(0.5)
        self._wait_closed(conn)

    def _serve_garbage(self, s, conn):
        conn.recv(4096)
        conn.sendall(os.urandom(4096))
        conn.settimeout(0.5)
        self._wait_closed(conn)

    def _serve_drip(self, s, conn):
        conn.recv(4096)
        conn.settimeout(0.05)
        # A TLS record header announcing a 16 KB handshake message, then one byte a second.
        for b in b"\x16\x03\x03\x40\x00" + os.urandom(64):
            if self._stop.is_set():
                return
            conn.sendall(bytes([b]))
            end = time.time() + 1.0
            while time.time() < end:
                try:
                    if not conn.recv(4096):
                        return
                except socket.timeout:
                    pass

    def _serve_midclose(self, s, conn):
        conn.recv(4096)
        # A ServerHello record cut short, then the connection closes.
        conn.sendall(b"\x16\x03\x03\x00\x50\x02\x00\x00\x4c\x03\x03")


def _family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def fingerprint_der(der):
    return hashlib.sha256(der).hexdigest()
