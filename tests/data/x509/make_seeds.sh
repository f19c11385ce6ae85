#!/bin/sh
# Regenerates the seed corpus of tests/fuzz/fuzz_x509.c: two public roots from the system trust
# store, fresh RSA/EC/Ed25519 leaves, a CT-style precertificate, its bare TBSCertificate, and a
# hand-assembled ML-DSA-65 certificate (OpenSSL 3.0 cannot make one). Run from the source root:
#   sh tests/data/x509/make_seeds.sh
set -eu
out=tests/fuzz/corpus/fuzz_x509
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

n=0
for pem in /etc/ssl/certs/ISRG_Root_X1.pem /etc/ssl/certs/DigiCert_Global_Root_G2.pem; do
    if [ -f "$pem" ]; then
        n=$((n + 1))
        openssl x509 -in "$pem" -outform DER -out "$out/root$n.der"
    fi
done

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/k" -subj "/O=Seed Org/CN=rsa.example.test" \
    -addext "subjectAltName=DNS:rsa.example.test,DNS:*.Rsa.example.test,IP:192.0.2.1,email:a@example.test" \
    -days 30 -outform DER -out "$out/rsa2048.der" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout "$tmp/k" \
    -subj "/CN=ec.example.test" -addext "subjectAltName=DNS:ec.example.test,IP:2001:db8::1" \
    -addext "authorityInfoAccess=OCSP;URI:http://ocsp.example.test/" \
    -addext "crlDistributionPoints=URI:http://crl.example.test/x.crl" \
    -days 30 -outform DER -out "$out/ec384.der" 2>/dev/null
openssl req -x509 -newkey ed25519 -nodes -keyout "$tmp/k" -subj "/CN=ed.example.test" \
    -days 30 -outform DER -out "$out/ed25519.der" 2>/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/k" \
    -subj "/CN=pre.example.test" -addext "subjectAltName=DNS:pre.example.test" \
    -addext "1.3.6.1.4.1.11129.2.4.3=critical,DER:0500" \
    -days 30 -outform DER -out "$out/precert.der" 2>/dev/null
# The bare TBSCertificate of the precertificate (first element of the Certificate SEQUENCE).
python3 - "$out/precert.der" "$out/precert_tbs.der" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()
def hdr(b, i):
    l = b[i + 1]
    if l < 0x80:
        return 2, l
    n = l & 0x7f
    return 2 + n, int.from_bytes(b[i + 2:i + 2 + n], 'big')
h, _ = hdr(d, 0)
h2, l2 = hdr(d, h)
open(sys.argv[2], 'wb').write(d[h:h + h2 + l2])
PY
# ML-DSA-65 key and signature OIDs with junk bytes, as a PQ CA would send them.
python3 - "$out/mldsa65.der" <<'PY'
import sys
def tlv(tag, body):
    n = len(body)
    if n < 0x80:
        l = bytes([n])
    elif n < 0x100:
        l = bytes([0x81, n])
    else:
        l = bytes([0x82, n >> 8, n & 0xff])
    return bytes([tag]) + l + body
mldsa65 = tlv(0x06, bytes([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x12]))
name = tlv(0x30, tlv(0x31, tlv(0x30, tlv(0x06, b'\x55\x04\x03') + tlv(0x0c, b'pq.example.test'))))
validity = tlv(0x30, tlv(0x17, b'250101000000Z') + tlv(0x18, b'20500101000000Z'))
spki = tlv(0x30, tlv(0x30, mldsa65) + tlv(0x03, b'\x00' + b'\x5a' * 1952))
tbs = tlv(0x30, b'\xa0\x03\x02\x01\x02' + b'\x02\x02\x10\x01' + tlv(0x30, mldsa65) + name +
          validity + name + spki)
cert = tlv(0x30, tbs + tlv(0x30, mldsa65) + tlv(0x03, b'\x00' + b'\xa5' * 3309))
open(sys.argv[1], 'wb').write(cert)
PY
ls -l "$out"
