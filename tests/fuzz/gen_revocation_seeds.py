#!/usr/bin/python3
"""Writes the revocation fixture: tests/fuzz/revocation_fixture.h (a CA and a leaf it issued,
serial 0x1234) and the seeds of tests/fuzz/corpus/fuzz_revocation (first byte 0: an OCSP
response, 1: a CRL; then the body) answering for that leaf: good, revoked, unknown, delegated
responder (with and without the OCSP-signing usage), another certificate, expired, stale
without nextUpdate, wrong signer, a look-alike issuer, tryLater; CRLs revoking it or not, PEM,
stale, wrong signer, wrong issuer name, delta, partitioned by an issuing distribution point
(CA certificates only, some reasons, another URL) and one naming the URL it is served at. New keys each run, so the header and the seeds are written together.
Needs python3-cryptography."""
import datetime
import os
from cryptography import x509
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
FAR = datetime.datetime(2099, 1, 1, tzinfo=datetime.timezone.utc)
ck = ec.generate_private_key(ec.SECP256R1())
lk = ec.generate_private_key(ec.SECP256R1())
ok = ec.generate_private_key(ec.SECP256R1())
def name(cn): return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
ca = (x509.CertificateBuilder().subject_name(name("Fuzz CA")).issuer_name(name("Fuzz CA"))
      .public_key(ck.public_key()).serial_number(1).not_valid_before(T0).not_valid_after(FAR)
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .sign(ck, hashes.SHA256()))
leaf = (x509.CertificateBuilder().subject_name(name("leaf.fuzz.test")).issuer_name(ca.subject)
        .public_key(lk.public_key()).serial_number(0x1234).not_valid_before(T0).not_valid_after(FAR)
        .sign(ck, hashes.SHA256()))
other = (x509.CertificateBuilder().subject_name(name("other.fuzz.test")).issuer_name(ca.subject)
        .public_key(lk.public_key()).serial_number(0x9999).not_valid_before(T0).not_valid_after(FAR)
        .sign(ck, hashes.SHA256()))
# a delegated responder certificate issued by the CA
resp_cert = (x509.CertificateBuilder().subject_name(name("Fuzz OCSP")).issuer_name(ca.subject)
        .public_key(ok.public_key()).serial_number(7).not_valid_before(T0).not_valid_after(FAR)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .sign(ck, hashes.SHA256()))
stranger = ec.generate_private_key(ec.SECP256R1())
stranger_cert = (x509.CertificateBuilder().subject_name(name("Fuzz CA")).issuer_name(name("Fuzz CA"))
      .public_key(stranger.public_key()).serial_number(2).not_valid_before(T0).not_valid_after(FAR)
      .sign(stranger, hashes.SHA256()))
plain_resp_cert = (x509.CertificateBuilder().subject_name(name("Fuzz OCSP no EKU"))
        .issuer_name(ca.subject).public_key(ok.public_key()).serial_number(8)
        .not_valid_before(T0).not_valid_after(FAR).sign(ck, hashes.SHA256()))
def resp(cert, status, key, rcert, rev_time=None, reason=None, nxt=FAR, issuer=None):
    b = ocsp.OCSPResponseBuilder().add_response(cert=cert, issuer=issuer or ca, algorithm=hashes.SHA1(),
        cert_status=status, this_update=T0, next_update=nxt, revocation_time=rev_time, revocation_reason=reason)
    b = b.responder_id(ocsp.OCSPResponderEncoding.HASH, rcert)
    if rcert is not ca: b = b.certificates([rcert])
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
S = ocsp.OCSPCertStatus
out = {
 "ocsp_good": resp(leaf, S.GOOD, ck, ca),
 "ocsp_revoked": resp(leaf, S.REVOKED, ck, ca, T0, x509.ReasonFlags.key_compromise),
 "ocsp_unknown": resp(leaf, S.UNKNOWN, ck, ca),
 "ocsp_delegated": resp(leaf, S.GOOD, ok, resp_cert),
 "ocsp_other_cert": resp(other, S.GOOD, ck, ca),
 "ocsp_expired": resp(leaf, S.GOOD, ck, ca, nxt=T0 + datetime.timedelta(days=1)),
 "ocsp_bad_signer": resp(leaf, S.GOOD, stranger, stranger_cert),
 # a look-alike issuer (same name, another key) that did not sign the leaf answers for it
 "ocsp_lookalike_issuer": resp(leaf, S.GOOD, stranger, stranger_cert, issuer=stranger_cert),
 # a responder certificate the CA issued without the OCSP-signing key usage
 "ocsp_delegated_no_eku": resp(leaf, S.GOOD, ok, plain_resp_cert),
 # no nextUpdate and a thisUpdate long past: a stale answer that could be replayed
 "ocsp_no_next_old": resp(leaf, S.GOOD, ck, ca, nxt=None),
 "ocsp_try_later": ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER).public_bytes(serialization.Encoding.DER),
}
CRL_URL = "http://crl.fuzz.test/ca.crl"
def crl(revoked, key=ck, nxt=FAR, pem=False, issuer_name=None, ext=None):
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer_name or ca.subject)
         .last_update(T0).next_update(nxt))
    for e, critical in ext or []:
        b = b.add_extension(e, critical)
    for serial in revoked:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(T0)
            .add_extension(x509.CRLReason(x509.ReasonFlags.superseded), critical=False).build())
    c = b.sign(key, hashes.SHA256())
    return c.public_bytes(serialization.Encoding.PEM if pem else serialization.Encoding.DER)
def idp(full_name=None, only_contains_ca_certs=False, only_some_reasons=None):
    return x509.IssuingDistributionPoint(
        full_name=full_name, relative_name=None, only_contains_user_certs=False,
        only_contains_ca_certs=only_contains_ca_certs, only_some_reasons=only_some_reasons,
        indirect_crl=False, only_contains_attribute_certs=False)
out.update({
 "crl_revoked": crl([0x1234, 0x55]),
 "crl_good": crl([0x55]),
 "crl_revoked_pem": crl([0x1234], pem=True),
 "crl_stale": crl([], nxt=T0 + datetime.timedelta(days=1)),
 "crl_bad_signer": crl([0x1234], key=stranger),
 "crl_wrong_name": crl([0x1234], issuer_name=name("Other CA")),
 "crl_delta": crl([], ext=[(x509.DeltaCRLIndicator(1), True)]),
 "crl_idp_url": crl([0x1234], ext=[(idp(full_name=[x509.UniformResourceIdentifier(CRL_URL)]), True)]),
 "crl_other_url": crl([], ext=[(idp(full_name=[x509.UniformResourceIdentifier(
     "http://crl.fuzz.test/other.crl")]), True)]),
 "crl_only_ca": crl([], ext=[(idp(only_contains_ca_certs=True), True)]),
 "crl_some_reasons": crl([], ext=[(idp(only_some_reasons=frozenset(
     [x509.ReasonFlags.key_compromise])), True)]),
})
HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "corpus", "fuzz_revocation")
os.makedirs(SEEDS, exist_ok=True)
for k, v in out.items():
    kind = b"\x00" if k.startswith("ocsp") else b"\x01"
    with open(os.path.join(SEEDS, k), "wb") as f:
        f.write(kind + v)
with open(os.path.join(HERE, "revocation_fixture.h"), "w") as f:
    f.write("/* A CA and a leaf it issued (serial 0x1234), both valid to 2099, a look-alike CA\n"
            " * (same name, another key) and the CRL URL, for the revocation fuzz target and unit\n"
            " * test; the seeds in tests/fuzz/corpus/fuzz_revocation answer for this leaf.\n"
            " * Written by tests/fuzz/gen_revocation_seeds.py. */\n"
            "#ifndef CAP_REVOCATION_FIXTURE_H\n#define CAP_REVOCATION_FIXTURE_H\n\n")
    f.write('#define REV_FIXTURE_CRL_URL "%s"\n\n' % CRL_URL)
    for nm, c in (("ISSUER", ca), ("LEAF", leaf), ("LOOKALIKE", stranger_cert)):
        pem = c.public_bytes(serialization.Encoding.PEM).decode()
        f.write("static const char REV_FIXTURE_%s_PEM[] =\n" % nm)
        for line in pem.strip().splitlines():
            f.write('    "%s\\n"\n' % line)
        f.write("    ;\n")
    f.write("\n#endif\n")
