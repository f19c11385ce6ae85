#!/usr/bin/python3
"""Writes the seeds of tests/fuzz/corpus/fuzz_revocation_write (the input format is described
in fuzz_revocation_write.c): a fresh OCSP answer, a revoked CRL answer with its reason, a cached
one, errors whose URLs hold \\xff, controls, an embedded NUL, overlong and surrogate UTF-8 and
a backslash, more errors than are listed, times out of range, an answer already past its next
update, and facts the builder refuses (a bogus status, an answer without a method, a
fingerprint that is not hex)."""
import os
import struct

NOW = 1767225600  # fuzz_revocation_write.c's NOW
FP = b"ab" * 32
GOOD, REVOKED, UNKNOWN, ERROR, BOGUS = 0, 1, 2, 3, 4
CACHED, CRL, NO_METHOD, FP_IN, RELATIVE = 1, 2, 4, 8, 16


def chunk(b):
    assert len(b) < 256
    return bytes([len(b)]) + b


def seed(status, flags, times, url=b"", reason=b"", fp=None, errors=()):
    out = bytes([status, flags]) + b"".join(struct.pack("<q", t) for t in times)
    out += chunk(url) + chunk(reason)
    if fp is not None:
        out += chunk(fp)
    for u, e in errors:
        out += chunk(u) + chunk(e)
    return out


rel = (0, -300, 3600)
SEEDS = {
    "ocsp_good": seed(GOOD, RELATIVE, rel, b"http://ocsp.example.com/"),
    "crl_revoked": seed(REVOKED, RELATIVE | CRL, (-86400, -300, 30 * 86400),
                        b"http://crl.example.com/ca.crl", b"keyCompromise"),
    "cached": seed(UNKNOWN, RELATIVE | CACHED, rel, b"http://ocsp.example.com/"),
    "bad_urls": seed(ERROR, 0, (0, 0, 0), errors=[
        (b"http://crl.example\xff/x.crl", b"not asked: not an http(s) URL"),
        (b"http://ocsp.example\x01\x1b[31m/", b"no usable answer"),
        (b"http://a.example/\x00:8080", b"not asked: only ports 80 and 443 are asked"),
        (b"http://\xc0\x80\xed\xa0\x80\xf4\x90\x80\x80/", b"why \xff\xfe"),
        (b"http://a\\xff.example/", b"refused by network policy"),
        (b"", b"local: the revocation facts of this certificate could not be stored"),
    ]),
    "many_errors": seed(ERROR, 0, (0, 0, 0),
                        errors=[(b"http://e%d.example/" % i, b"no usable answer") for i in range(12)]),
    "times_out_of_range": seed(REVOKED, 0, (2**63 - 1, -2**63, 253402300800),
                               b"http://ocsp.example.com/", b"superseded"),
    "past_next_update": seed(GOOD, RELATIVE, (0, -7200, -60), b"http://ocsp.example.com/"),
    "far_next_update": seed(GOOD, RELATIVE | CRL, (0, 0, 2**31 - 1), b"http://crl.example.com/"),
    "reason_invalid_utf8": seed(REVOKED, RELATIVE, rel, b"http://ocsp.example.com/\xe2\x82",
                                b"\xe2\x28\xa1\x7f"),
    "bogus_status": seed(BOGUS, 0, rel, b"http://ocsp.example.com/"),
    "no_method": seed(GOOD, RELATIVE | NO_METHOD, rel, b"http://ocsp.example.com/"),
    "fp_not_hex": seed(GOOD, RELATIVE | FP_IN, rel, b"http://ocsp.example.com/", b"",
                       b"ZZ" * 32),
    "fp_given": seed(REVOKED, RELATIVE | FP_IN, rel, b"http://ocsp.example.com/", b"",
                     FP),
}
HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.path.join(HERE, "corpus", "fuzz_revocation_write")
os.makedirs(DIR, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(DIR, name), "wb") as f:
        f.write(data)
