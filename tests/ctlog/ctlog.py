#!/usr/bin/python3
"""The project's own Certificate Transparency log, for tests and benchmarks.

Serves RFC 6962 (/ct/v1/get-sth, get-entries, get-sth-consistency) at / and the C2SP
static-ct-api (checkpoint, hash tiles, data tiles, partial tiles) at /tiled/, over generated
certificates and precertificates, with real Merkle tree hashes and real ECDSA P-256 signatures.
Caps get-entries batches, grows on demand (or at a steady rate), and injects faults on demand
through /ctl/*. The generator decides which entries match the watched suffixes, so tests can
assert exact matches against /ctl/truth.

    ctlog.py --port-file F [--entries N] [--batch-max 100] [--seed 1] [--grow-rate 0]
             [--weak-key-rate 0] [--psc-rate 0] [--log-list FILE]

With --log-list FILE, GET /log-list.json serves FILE as it is at the time of the request (a v3
CT log list the test writes and rewrites; 404 while it does not exist), so a worker's
ct.log_list_url can follow a list that changes under it.

Leaf validity is relative to the day the log starts (UTC midnight, D) and follows the entry
index: index % 5 == 1 expired (D-100d to D-10d), index % 5 == 3 expiring (D-80d to D+5d),
the rest valid (D-10d to D+80d); truth gives not_after and validity. With --weak-key-rate R, a share R of the matching entries use a 1024-bit RSA key (truth: weak_key).
With --psc-rate R, a share R of the precertificates are issued by a Precertificate Signing
Certificate (RFC 6962 3.1; truth: psc): the leaf's TBSCertificate then names the CA as issuer and
carries the CA's authority key identifier, the precertificate the PSC's. The tiled log serves
every issuer at /tiled/issuer/<hex SHA-256>.

Control (GET):
    /ctl/truth                        JSON list of every entry: index, fingerprint, match, ...
    /ctl/grow?n=N                     appends N entries and publishes the new tree head
    /ctl/publish?size=N               publishes the tree head of the first N entries (all)
    /ctl/fault?kind=K&count=N[&arg=X] next N entry requests fail with K:
        429 (Retry-After X s), 500, 503, truncated, badb64, badleaf (length past the end),
        longleaf (trailing bytes), badtype (entry type 7), slow (X s), huge (a
        40 MiB body), fork,
        badsig, shrink (the last three apply to tree heads);
        hostile answers to get-entries: gzipbomb (a gzip body decoding to X MiB, default 24,
        of {"entries":[{},{},...]}), flood (X bytes, default 6 MiB, of the same, not
        compressed), deep (arrays nested X deep, default 100000), many (X more entries than
        asked for, default 1);
        precert_mismatch (entry X, get-entries and data tiles: its precertificate replaced by
        a rogue one for other names, see /ctl/rogue), forge (entry X, get-entries and data
        tiles: its timestamp changed, so it no longer hashes to the tree)
    /ctl/rogue?index=I                the fingerprint of the rogue precertificate of entry I
    /ctl/stats                        request counters
"""
import argparse
import base64
import datetime
import gzip
import hashlib
import json
import os
import pickle
import random
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

# Extended key usage of a Precertificate Signing Certificate (RFC 6962 3.1).
PSC_EKU = ObjectIdentifier("1.3.6.1.4.1.11129.2.4.4")

ORIGIN = "ctlog.test/tiled"

# Names whose certificates must match the suffixes example.com and bücher.example.
MATCH_NAMES = [
    "example.com", "www.example.com", "a.b.example.com", "*.x.example.com",
    "WWW.Example.COM", "mail.example.com.", "shop.xn--bcher-kva.example",
    "XN--BCHER-KVA.EXAMPLE", "deep.er.sub.example.com",
]
# Names that must never match them.
NOMATCH_NAMES = [
    "notexample.com", "example.com.evil.net", "example.co", "www.example.org",
    "xn--bcher-kva.example.org", "bucher.example", "examplecom", "com", "evil-example.com",
    "sub.notexample.com", "example.community",
]


def sha256(b):
    return hashlib.sha256(b).digest()


def leaf_hash(b):
    return sha256(b"\x00" + b)


def node_hash(l, r):
    return sha256(b"\x01" + l + r)


def u24(n):
    return struct.pack(">I", n)[1:]


class Tree:
    """RFC 6962 Merkle tree over leaf hashes with cached perfect subtrees."""

    def __init__(self):
        self.leaves = []
        self.cache = {}

    def perfect(self, level, index):
        if level == 0:
            return self.leaves[index]
        k = (level, index)
        h = self.cache.get(k)
        if h is None:
            h = node_hash(self.perfect(level - 1, 2 * index), self.perfect(level - 1, 2 * index + 1))
            self.cache[k] = h
        return h

    def mth(self, lo, hi):
        n = hi - lo
        if n == 0:
            return sha256(b"")
        if n & (n - 1) == 0 and lo % n == 0:
            return self.perfect(n.bit_length() - 1, lo // n)
        k = 1
        while k * 2 < n:
            k *= 2
        return node_hash(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def subproof(self, m, lo, hi, b):
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return self.subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]

    def path(self, m, lo, hi):
        n = hi - lo
        if n <= 1:
            return []
        k = 1
        while k * 2 < n:
            k *= 2
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def consistency(self, m, n):
        if m == 0 or m == n:
            return []
        return self.subproof(m, 0, n, True)


class Log:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.day0 = datetime.datetime(now.year, now.month, now.day)
        self.lock = threading.RLock()
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self.weak_key = (rsa.generate_private_key(public_exponent=65537, key_size=1024)
                         if args.weak_key_rate > 0 else None)
        self.cas = [self.make_ca("CtLog Test Good CA"), self.make_ca("CtLog Test Other CA")]
        # Certificates served at /tiled/issuer/<hex>: the CAs, and their PSCs when asked for.
        self.issuers = {c["der_hash"]: c["der"] for c in self.cas}
        if args.psc_rate > 0:
            for ca in self.cas:
                ca["psc"] = self.make_psc(ca)
                self.issuers[ca["psc"]["der_hash"]] = ca["psc"]["der"]
        self.rogue = {}    # index -> rogue precertificate DER (precert_mismatch)
        self.entries = []  # (leaf_input bytes, extra_data bytes, tile_leaf bytes)
        self.b64 = []      # (leaf_input b64, extra_data b64)
        self.truth = []
        self.tree = Tree()
        self.size = 0      # published tree size
        self.sth_cache = None
        self.faults = []   # [kind, count, arg]
        self.stats = {"get-entries": 0, "get-sth": 0, "tiles": 0, "consistency": 0, "faults": 0,
                      "last_entries_at": [], "entries_served": 0, "requests": 0}
        self.serve_seconds = 0.0
        self.fork_tree = None

    def make_ca(self, cn):
        k = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CtLog Test")])
        now = datetime.datetime(2026, 1, 1)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(k.public_key()).serial_number(1)
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                .sign(k, hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        spki = k.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"key": k, "cert": cert, "der": der, "name": name, "spki_hash": sha256(spki),
                "cn": cn, "der_hash": sha256(der).hex()}

    def make_psc(self, ca):
        """A Precertificate Signing Certificate of ca: CA true, the CT extended key usage."""
        k = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca["cn"] + " Precert Signing"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CtLog Test")])
        now = datetime.datetime(2026, 1, 1)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(ca["name"])
                .public_key(k.public_key()).serial_number(2)
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
                .add_extension(x509.ExtendedKeyUsage([PSC_EKU]), False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca["key"].public_key()), False)
                .sign(ca["key"], hashes.SHA256()))
        der = cert.public_bytes(serialization.Encoding.DER)
        return {"key": k, "der": der, "name": name, "der_hash": sha256(der).hex()}

    def pubkey_pem(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def pubkey_der(self):
        return self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    # ---------------------------------------------------------------- generation
    def pick_names(self, i):
        """Returns (sans or None, cn, match) decided here: the ground truth."""
        r = self.rng.random()
        rate = self.args.match_rate
        if r < rate * 0.8:
            sans = [self.rng.choice(MATCH_NAMES)]
            if self.rng.random() < 0.5:
                sans.append(self.rng.choice(NOMATCH_NAMES))
            self.rng.shuffle(sans)
            return sans, "n%d.unrelated.test" % i, True
        if r < rate:
            # CN only, no SAN extension: the CN counts.
            return None, self.rng.choice(["cn-only.example.com", "CN.Example.Com"]), True
        if r < rate * 1.3:
            # SANs that do not match and a CN that would: the CN must be ignored.
            return [self.rng.choice(NOMATCH_NAMES)], "www.example.com", False
        if r < rate * 2.5:
            return [self.rng.choice(NOMATCH_NAMES), "h%d.other.test" % i], "x", False
        return ["h%d.unrelated.test" % i, "w%d.unrelated.test" % i], "h%d.unrelated.test" % i, False

    # (name, not_before, not_after) in days from the day the log started, by index % 5
    VALIDITY = {1: ("expired", -100, -10), 3: ("expiring", -80, 5)}
    VALID = ("valid", -10, 80)

    def validity(self, i):
        name, nb, na = self.VALIDITY.get(i % 5, self.VALID)
        day = datetime.timedelta(days=1)
        return name, self.day0 + nb * day, self.day0 + na * day

    def build(self, i, ca, sans, cn, poison, weak=False, aki_key=None, signer=None):
        """A leaf of ca; aki_key adds an authority key identifier of that key, signer (a PSC)
        issues it instead of ca."""
        leaf_key = self.weak_key if weak else self.leaf_key
        _, not_before, not_after = self.validity(i)
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
             .issuer_name((signer or ca)["name"]).public_key(leaf_key.public_key())
             .serial_number(100000 + i).not_valid_before(not_before)
             .not_valid_after(not_after))
        if sans is not None:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]),
                                False)
        if aki_key is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(aki_key),
                                False)
        if poison:
            b = b.add_extension(x509.PrecertPoison(), True)
        return b.sign((signer or ca)["key"], hashes.SHA256())

    def gen_entry(self, i):
        sans, cn, match = self.pick_names(i)
        ca = self.cas[0] if self.rng.random() < 0.85 else self.cas[1]
        precert = self.rng.random() < self.args.precert_rate
        # Drawn only when asked for, so the default sequence of entries stays the same.
        weak = match and self.weak_key is not None and \
            self.rng.random() < self.args.weak_key_rate
        psc = precert and self.args.psc_rate > 0 and self.rng.random() < self.args.psc_rate
        ts = 1780000000000 + i * 1000
        chain = u24(len(ca["der"])) + ca["der"]
        if psc:
            # RFC 6962 3.2: the PSC issues the precertificate; the leaf's TBSCertificate has the
            # CA's name as issuer and the CA's key identifier.
            p = ca["psc"]
            pc = self.build(i, ca, sans, cn, True, weak, aki_key=p["key"].public_key(), signer=p)
            pc_der = pc.public_bytes(serialization.Encoding.DER)
            tbs = self.build(i, ca, sans, cn, False, weak,
                             aki_key=ca["key"].public_key()).tbs_certificate_bytes
            signed = ca["spki_hash"] + u24(len(tbs)) + tbs
            te = struct.pack(">QH", ts, 1) + signed + b"\x00\x00"
            pchain = u24(len(p["der"])) + p["der"] + chain
            extra = u24(len(pc_der)) + pc_der + u24(len(pchain)) + pchain
            tile = (te + u24(len(pc_der)) + pc_der + struct.pack(">H", 64) + sha256(p["der"]) +
                    sha256(ca["der"]))
            fp = sha256(pc_der).hex()
        elif precert:
            pc = self.build(i, ca, sans, cn, True, weak)
            pc_der = pc.public_bytes(serialization.Encoding.DER)
            tbs = self.build(i, ca, sans, cn, False, weak).tbs_certificate_bytes
            signed = ca["spki_hash"] + u24(len(tbs)) + tbs
            te = struct.pack(">QH", ts, 1) + signed + b"\x00\x00"
            extra = u24(len(pc_der)) + pc_der + u24(len(chain)) + chain
            tile = te + u24(len(pc_der)) + pc_der + struct.pack(">H", 32) + sha256(ca["der"])
            fp = sha256(pc_der).hex()
        else:
            c = self.build(i, ca, sans, cn, False, weak)
            der = c.public_bytes(serialization.Encoding.DER)
            te = struct.pack(">QH", ts, 0) + u24(len(der)) + der + b"\x00\x00"
            extra = u24(len(chain)) + chain
            tile = te + struct.pack(">H", 32) + sha256(ca["der"])
            fp = sha256(der).hex()
        leaf = b"\x00\x00" + te
        return (leaf, extra, tile), {"index": i, "fingerprint": fp, "match": match,
                                     "precert": precert, "issuer": ca["cn"],
                                     "names": sans if sans is not None else [cn],
                                     "cn_only": sans is None, "weak_key": weak, "psc": psc,
                                     "not_after": self.validity(i)[2].strftime(
                                         "%Y-%m-%dT%H:%M:%SZ"),
                                     "validity": self.validity(i)[0]}

    def grow(self, n):
        with self.lock:
            for _ in range(n):
                i = len(self.entries)
                e, t = self.gen_entry(i)
                self.add(e, t)
            self.publish()

    def add(self, e, t):
        self.entries.append(e)
        self.b64.append((base64.b64encode(e[0]).decode(), base64.b64encode(e[1]).decode()))
        self.truth.append(t)
        self.tree.leaves.append(leaf_hash(e[0]))

    def publish(self):
        with self.lock:
            self.size = len(self.entries)
            self.sth_cache = None

    # ---------------------------------------------------------------- heads
    def tree_head_sig(self, ts, size, root):
        msg = struct.pack(">BBQQ", 0, 1, ts, size) + root
        sig = self.key.sign(msg, ec.ECDSA(hashes.SHA256()))
        return struct.pack(">BBH", 4, 3, len(sig)) + sig

    def sth(self, size=None, root=None, badsig=False):
        with self.lock:
            if size is None and self.sth_cache and not badsig:
                return self.sth_cache
            sz = self.size if size is None else size
            rt = self.tree.mth(0, sz) if root is None else root
            ts = int(time.time() * 1000)
            sig = self.tree_head_sig(ts, sz, rt)
            if badsig:
                sig = sig[:-1] + bytes([sig[-1] ^ 1])
            h = {"tree_size": sz, "timestamp": ts, "root": rt, "sig": sig}
            if size is None and not badsig:
                self.sth_cache = h
            return h

    def checkpoint(self, h):
        body = "%s\n%d\n%s\n" % (ORIGIN, h["tree_size"], base64.b64encode(h["root"]).decode())
        key_id = sha256(ORIGIN.encode() + b"\n\x05" + sha256(self.pubkey_der()))[:4]
        sig = key_id + struct.pack(">Q", h["timestamp"]) + h["sig"]
        return (body + "\n\u2014 %s %s\n" % (ORIGIN, base64.b64encode(sig).decode())).encode()

    def forked_root(self, size):
        """Root of a tree that differs from ours in its last entry."""
        t = Tree()
        t.leaves = list(self.tree.leaves[:size])
        if size:
            t.leaves[size - 1] = leaf_hash(b"forked" + t.leaves[size - 1])
        return t.mth(0, size)

    # ---------------------------------------------------------------- faults
    def take_fault(self, kinds):
        with self.lock:
            for f in self.faults:
                if f[0] in kinds and f[1] > 0:
                    f[1] -= 1
                    self.stats["faults"] += 1
                    return f[0], f[2]
        return None, None

    def take_index_fault(self, kind, first, last):
        """The entry index of a pending fault of kind aimed at an entry in [first, last]."""
        with self.lock:
            for f in self.faults:
                if f[0] == kind and f[1] > 0 and f[2] is not None and \
                        first <= int(f[2]) <= last:
                    f[1] -= 1
                    self.stats["faults"] += 1
                    return int(f[2])
        return None

    def rogue_precert(self, i):
        """A precertificate for other names, served as entry i's by precert_mismatch."""
        with self.lock:
            if i not in self.rogue:
                c = self.build(i, self.cas[0], ["rogue.example.com"], "rogue.example.com", True)
                self.rogue[i] = c.public_bytes(serialization.Encoding.DER)
            return self.rogue[i]

    def rogue_extra(self, i):
        """Entry i's extra_data with the rogue precertificate in place of its own."""
        extra = self.entries[i][1]
        n = struct.unpack(">I", b"\x00" + extra[:3])[0]
        pc = self.rogue_precert(i)
        return u24(len(pc)) + pc + extra[3 + n:]

    def rogue_tile_leaf(self, i):
        """Entry i's TileLeaf with the rogue precertificate in place of its own."""
        te = self.entries[i][0][2:]
        tile = self.entries[i][2]
        n = struct.unpack(">I", b"\x00" + tile[len(te):len(te) + 3])[0]
        pc = self.rogue_precert(i)
        return te + u24(len(pc)) + pc + tile[len(te) + 3 + n:]

    @staticmethod
    def forged(b, tile=False):
        """A leaf (or TileLeaf) whose timestamp differs: a valid entry the tree does not hold.
        A leaf starts with version and leaf type, a TileLeaf with the timestamp."""
        raw = bytearray(b)
        raw[7 if tile else 9] ^= 0x01
        return bytes(raw)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    log_obj = None

    def log_message(self, fmt, *a):
        if self.log_obj.args.verbose:
            sys.stderr.write("ctlog: " + (fmt % a) + "\n")

    def send(self, code, body, ctype="application/json", headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        t0 = time.process_time()
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self.log_obj.serve_seconds += time.process_time() - t0

    def entry_fault(self):
        """Applies a fault to an entries request; True when the response was sent."""
        lg = self.log_obj
        kind, arg = lg.take_fault({"429", "500", "503", "slow", "huge"})
        if kind == "429" or kind == "503":
            self.send(int(kind), '{"error":"slow down"}', headers={"Retry-After": str(arg or 1)})
            return True
        if kind == "500":
            self.send(500, '{"error":"internal"}')
            return True
        if kind == "huge":
            self.send(200, b" " * (40 << 20))
            return True
        if kind == "slow":
            time.sleep(float(arg or 5))
        return False

    @staticmethod
    def flood(n):
        """About n bytes of {"entries":[{},{},...]}."""
        k = max(1, (n - 16) // 3)
        return b'{"entries":[' + b"{}," * k + b"{}]}"

    def bomb(self, s, e):
        """Serves a hostile get-entries answer when one is pending; True when it did."""
        lg = self.log_obj
        kind, arg = lg.take_fault({"gzipbomb", "flood", "deep", "many"})
        if kind == "gzipbomb":
            body = gzip.compress(self.flood(int(float(arg or 24) * (1 << 20))), 9)
            self.send(200, body, headers={"Content-Encoding": "gzip"})
        elif kind == "flood":
            self.send(200, self.flood(int(arg or (6 << 20))))
        elif kind == "deep":
            d = int(arg or 100000)
            self.send(200, '{"entries":' + "[" * d + "]" * d + "}")
        elif kind == "many":
            n = e - s + 1 + int(arg or 1)
            items = ['{"leaf_input":"%s","extra_data":"%s"}' % lg.b64[(s + k) % lg.size]
                     for k in range(n)]
            self.send(200, '{"entries":[' + ",".join(items) + "]}")
        return kind is not None

    def route(self):
        lg = self.log_obj
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        p = u.path
        if p.startswith("/ctl/"):
            return self.control(p, q)
        with lg.lock:
            lg.stats["requests"] += 1
        if p == "/log-list.json" and lg.args.log_list:
            lg.stats["log-list"] = lg.stats.get("log-list", 0) + 1
            try:
                with open(lg.args.log_list, "rb") as f:
                    return self.send(200, f.read())
            except FileNotFoundError:
                return self.send(404, '{"error":"no log list"}')
        if p.startswith("/tiled/"):
            return self.tiled(p[len("/tiled/"):])
        if p == "/ct/v1/get-sth":
            lg.stats["get-sth"] += 1
            kind, arg = lg.take_fault({"fork", "badsig", "shrink"})
            if kind == "fork":
                h = lg.sth(size=lg.size, root=lg.forked_root(lg.size))
            elif kind == "badsig":
                h = lg.sth(badsig=True)
            elif kind == "shrink":
                sz = max(0, lg.size - int(arg or 1))
                h = lg.sth(size=sz)
            else:
                h = lg.sth()
            return self.send(200, json.dumps({
                "tree_size": h["tree_size"], "timestamp": h["timestamp"],
                "sha256_root_hash": base64.b64encode(h["root"]).decode(),
                "tree_head_signature": base64.b64encode(h["sig"]).decode()}))
        if p == "/ct/v1/get-sth-consistency":
            lg.stats["consistency"] += 1
            try:
                a, b = int(q["first"]), int(q["second"])
            except (KeyError, ValueError):
                return self.send(400, '{"error":"bad params"}')
            if not (0 <= a <= b <= len(lg.entries)):
                return self.send(400, '{"error":"bad range"}')
            with lg.lock:
                proof = lg.tree.consistency(a, b)
            return self.send(200, json.dumps(
                {"consistency": [base64.b64encode(x).decode() for x in proof]}))
        if p == "/ct/v1/get-entry-and-proof":
            try:
                i, n = int(q["leaf_index"]), int(q["tree_size"])
            except (KeyError, ValueError):
                return self.send(400, '{"error":"bad params"}')
            if not (0 <= i < n <= len(lg.entries)):
                return self.send(400, '{"error":"bad range"}')
            with lg.lock:
                path = lg.tree.path(i, 0, n)
            li, xd = lg.b64[i]
            return self.send(200, json.dumps({
                "leaf_input": li, "extra_data": xd,
                "audit_path": [base64.b64encode(x).decode() for x in path]}))
        if p == "/ct/v1/get-entries":
            lg.stats["get-entries"] += 1
            lg.stats["last_entries_at"] = (lg.stats["last_entries_at"] + [time.time()])[-50:]
            try:
                s, e = int(q["start"]), int(q["end"])
            except (KeyError, ValueError):
                return self.send(400, '{"error":"bad params"}')
            if s < 0 or e < s or s >= lg.size:
                return self.send(400, '{"error":"bad range"}')
            if self.entry_fault() or self.bomb(s, e):
                return
            e = min(e, s + lg.args.batch_max - 1, lg.size - 1)
            kind, arg = lg.take_fault({"truncated", "badb64", "badleaf", "longleaf", "badtype"})
            rogue = lg.take_index_fault("precert_mismatch", s, e)
            forge = lg.take_index_fault("forge", s, e)
            items = []
            for i in range(s, e + 1):
                li, xd = lg.b64[i]
                if i == rogue:
                    xd = base64.b64encode(lg.rogue_extra(i)).decode()
                if i == forge:
                    li = base64.b64encode(lg.forged(lg.entries[i][0])).decode()
                if kind == "badb64" and i == s:
                    li = li[:10] + "!" + li[11:]
                if kind == "badleaf" and i == s:
                    raw = bytearray(lg.entries[i][0])
                    off = 12 if raw[10:12] == b"\x00\x00" else 44
                    raw[off:off + 3] = u24(len(raw))  # certificate length past the end
                    li = base64.b64encode(bytes(raw)).decode()
                if kind == "longleaf" and i == s:
                    li = base64.b64encode(lg.entries[i][0] + b"\x00\x07").decode()
                if kind == "badtype" and i == s:
                    raw = bytearray(lg.entries[i][0])
                    raw[10:12] = b"\x00\x07"
                    li = base64.b64encode(bytes(raw)).decode()
                items.append('{"leaf_input":"%s","extra_data":"%s"}' % (li, xd))
            body = '{"entries":[' + ",".join(items) + "]}"
            if kind == "truncated":
                body = body[: len(body) // 2]
            lg.stats["entries_served"] += e - s + 1
            return self.send(200, body)
        return self.send(404, '{"error":"not found"}')

    def tiled(self, p):
        lg = self.log_obj
        if p.startswith("issuer/"):
            der = lg.issuers.get(p[len("issuer/"):])
            if der is None:
                return self.send(404, "no such issuer", ctype="text/plain")
            return self.send(200, der, ctype="application/pkix-cert")
        if p == "checkpoint":
            lg.stats["get-sth"] += 1
            kind, arg = lg.take_fault({"fork", "badsig", "shrink"})
            if kind == "fork":
                h = lg.sth(size=lg.size, root=lg.forked_root(lg.size))
            elif kind == "badsig":
                h = lg.sth(badsig=True)
            elif kind == "shrink":
                h = lg.sth(size=max(0, lg.size - int(arg or 1)))
            else:
                h = lg.sth()
            return self.send(200, lg.checkpoint(h), ctype="text/plain; charset=utf-8")
        if not p.startswith("tile/"):
            return self.send(404, "not found", ctype="text/plain")
        parts = p[len("tile/"):].split("/")
        width = 256
        if len(parts) >= 2 and parts[-2].endswith(".p"):
            try:
                width = int(parts[-1])
            except ValueError:
                return self.send(400, "bad width", ctype="text/plain")
            parts = parts[:-2] + [parts[-2][:-2]]
        level_s, idx_parts = parts[0], parts[1:]
        try:
            idx = 0
            for k, x in enumerate(idx_parts):
                if k < len(idx_parts) - 1:
                    assert x.startswith("x")
                    x = x[1:]
                assert len(x) == 3
                idx = idx * 1000 + int(x)
        except (AssertionError, ValueError):
            return self.send(400, "bad index", ctype="text/plain")
        lg.stats["tiles"] += 1
        size = lg.size
        if level_s == "data":
            if self.entry_fault():
                return
            first = idx * 256
            if width < 1 or width > 256 or first + width > size:
                return self.send(404, "no such tile", ctype="text/plain")
            kind, arg = lg.take_fault({"truncated", "badleaf"})
            rogue = lg.take_index_fault("precert_mismatch", first, first + width - 1)
            forge = lg.take_index_fault("forge", first, first + width - 1)
            data = b"".join(lg.rogue_tile_leaf(i) if i == rogue else
                            lg.forged(lg.entries[i][2], tile=True) if i == forge else lg.entries[i][2]
                            for i in range(first, first + width))
            if kind == "truncated":
                data = data[: len(data) // 2]
            if kind == "badleaf":
                raw = bytearray(data)
                off = 10 if raw[8:10] == b"\x00\x00" else 42
                raw[off:off + 3] = u24(len(raw) + 5)
                data = bytes(raw)
            lg.stats["entries_served"] += width
            return self.send(200, data, ctype="application/octet-stream")
        try:
            level = int(level_s)
        except ValueError:
            return self.send(400, "bad level", ctype="text/plain")
        n_at = size >> (8 * level)
        first = idx * 256
        if width < 1 or width > 256 or first + width > n_at:
            return self.send(404, "no such tile", ctype="text/plain")
        with lg.lock:
            data = b"".join(lg.tree.perfect(8 * level, first + i) for i in range(width))
        return self.send(200, data, ctype="application/octet-stream")

    def control(self, p, q):
        lg = self.log_obj
        if p == "/ctl/truth":
            with lg.lock:
                return self.send(200, json.dumps(lg.truth[: lg.size]))
        if p == "/ctl/grow":
            lg.grow(int(q.get("n", "1")))
            return self.send(200, json.dumps({"tree_size": lg.size}))
        if p == "/ctl/fault":
            with lg.lock:
                lg.faults.append([q["kind"], int(q.get("count", "1")), q.get("arg")])
            return self.send(200, '{"ok":true}')
        if p == "/ctl/publish":
            # Publishes a tree head of the first N entries (default all): a benchmark hides a
            # generated log, places its sources at the start, then publishes all of it.
            with lg.lock:
                lg.size = max(0, min(int(q.get("size", len(lg.entries))), len(lg.entries)))
                lg.sth_cache = None
            return self.send(200, json.dumps({"tree_size": lg.size}))
        if p == "/ctl/clear":
            with lg.lock:
                lg.faults = []
            return self.send(200, '{"ok":true}')
        if p == "/ctl/stats":
            s = dict(lg.stats)
            s["tree_size"] = lg.size
            s["serve_cpu_seconds"] = lg.serve_seconds
            return self.send(200, json.dumps(s))
        if p == "/ctl/rogue":
            pc = lg.rogue_precert(int(q["index"]))
            return self.send(200, json.dumps({"fingerprint": sha256(pc).hex()}))
        if p == "/ctl/key":
            return self.send(200, lg.pubkey_pem(), ctype="text/plain")
        return self.send(404, '{"error":"no such control"}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--key-file", help="write the log's public key (PEM) here")
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--batch-max", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--match-rate", type=float, default=0.1)
    ap.add_argument("--precert-rate", type=float, default=0.5)
    ap.add_argument("--weak-key-rate", type=float, default=0.0,
                    help="share of matching entries with a 1024-bit RSA key")
    ap.add_argument("--psc-rate", type=float, default=0.0,
                    help="share of precertificates issued by a Precertificate Signing Certificate")
    ap.add_argument("--grow-rate", type=float, default=0.0, help="entries per second")
    ap.add_argument("--cache", help="pickle of generated entries, reused when present")
    ap.add_argument("--log-list", help="a v3 log list file served at /log-list.json")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    lg = Log(args)
    if args.cache and os.path.exists(args.cache):
        with open(args.cache, "rb") as f:
            saved = pickle.load(f)
        lg.key = serialization.load_der_private_key(saved["key"], None)
        for e, t in zip(saved["entries"], saved["truth"]):
            lg.add(e, t)
        lg.publish()
    else:
        lg.grow(args.entries)
        if args.cache:
            with open(args.cache, "wb") as f:
                pickle.dump({"key": lg.key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption()), "entries": lg.entries, "truth": lg.truth}, f)
    Handler.log_obj = lg
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    if args.key_file:
        with open(args.key_file + ".tmp", "w") as f:
            f.write(lg.pubkey_pem())
        os.replace(args.key_file + ".tmp", args.key_file)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(srv.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    if args.grow_rate > 0:
        def grower():
            while True:
                time.sleep(1.0)
                lg.grow(max(1, int(args.grow_rate)))
        threading.Thread(target=grower, daemon=True).start()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
