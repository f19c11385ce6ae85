"""Revocation checks of scanned certificates: an OCSP responder and a CRL served on loopback
port 80 by this test (signed by the fleet's intermediate), a revoked certificate found by each,
a good one cached so the re-scan does not ask again, a responder that is down and one the
network policy refuses (facts on the certificate, never a failed run).

Hostile certificates beside them (issue 12, items 1 and 2): CRL and OCSP URLs holding \\xff
bytes (cleaned into the facts, never fetched, the revoked findings of the others still raised),
a URL on port 8080 (refused before any connect), a redirect to that port (not followed), a 404
with a body (no status code or body read back), a self-signed leaf (issuer not proven: nothing
fetched). A second source holds nine CRLs of 8 MiB each (the run fetches at most 64 MiB) and a
certificate whose facts the database refuses (a fact on it alone; the run still succeeds)."""

import datetime
import http.server
import json
import sys
import threading

import harness
import tlsfleet
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

BIG = 8 * 1024 * 1024 - 1  # just under the 8 MiB cap of one CRL
RUN_BYTES_MAX = 64 * 1024 * 1024
SECRET = "internal-secret-7f3a"


class Responder:
    """OCSP (POST /ocsp) and CRL (GET /crl) for certificates the fleet intermediate issued;
    GET /notfound (404 with a body), /redirect (302 to redirect_to), /big/N (BIG bytes that
    are no CRL). Every request is counted by path."""

    def __init__(self, fleet, addr, port):
        self.fleet = fleet
        self.status = {}   # serial -> "good" | "revoked"
        self.crl_revoked = set()
        self.ocsp_requests = {}  # serial -> count
        self.paths = {}  # path -> count
        self.redirect_to = None
        self.lock = threading.Lock()
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def count(self):
                with responder.lock:
                    responder.paths[self.path] = responder.paths.get(self.path, 0) + 1

            def send(self, code, data, ctype="application/octet-stream", extra=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                self.count()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/ocsp":
                    self.send(404, SECRET.encode())
                    return
                req = ocsp.load_der_ocsp_request(body)
                serial = req.serial_number
                with responder.lock:
                    responder.ocsp_requests[serial] = responder.ocsp_requests.get(serial, 0) + 1
                st, cert = responder.status.get(serial, (None, None))
                if cert is None:
                    data = ocsp.OCSPResponseBuilder.build_unsuccessful(
                        ocsp.OCSPResponseStatus.UNAUTHORIZED).public_bytes(serialization.Encoding.DER)
                else:
                    now = datetime.datetime.now(datetime.timezone.utc)
                    revoked = st == "revoked"
                    b = ocsp.OCSPResponseBuilder().add_response(
                        cert=cert, issuer=fleet.intermediate, algorithm=hashes.SHA1(),
                        cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
                        this_update=now - datetime.timedelta(minutes=5),
                        next_update=now + datetime.timedelta(hours=1),
                        revocation_time=now - datetime.timedelta(days=1) if revoked else None,
                        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
                    ).responder_id(ocsp.OCSPResponderEncoding.HASH, fleet.intermediate)
                    data = b.sign(fleet.int_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
                self.send(200, data, "application/ocsp-response")

            def do_GET(self):
                self.count()
                if self.path == "/notfound":
                    self.send(404, ("not here: %s" % SECRET).encode(), "text/plain")
                    return
                if self.path == "/redirect":
                    self.send(302, b"", extra={"Location": responder.redirect_to})
                    return
                if self.path.startswith("/big/"):
                    self.send(200, b"A" * BIG, "application/pkix-crl")
                    return
                if self.path != "/crl":
                    self.send(200, SECRET.encode(), "text/plain")
                    return
                now = datetime.datetime.now(datetime.timezone.utc)
                b = (x509.CertificateRevocationListBuilder()
                     .issuer_name(fleet.intermediate.subject)
                     .last_update(now - datetime.timedelta(minutes=5))
                     .next_update(now + datetime.timedelta(hours=1)))
                for serial in responder.crl_revoked:
                    b = b.add_revoked_certificate(
                        x509.RevokedCertificateBuilder().serial_number(serial)
                        .revocation_date(now - datetime.timedelta(days=2)).build())
                data = b.sign(fleet.int_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
                self.send(200, data, "application/pkix-crl")

        self.httpd = http.server.ThreadingHTTPServer((addr, port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def served(self, prefix):
        with self.lock:
            return sum(n for p, n in self.paths.items() if p.startswith(prefix))


def _der(tag, body):
    n = len(body)
    head = bytes([n]) if n < 128 else (bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8, n & 255]))
    return bytes([tag]) + head + body


def raw_crl_url(url):
    """A CRL distribution points extension holding url's bytes as they are (any bytes)."""
    return x509.UnrecognizedExtension(ExtensionOID.CRL_DISTRIBUTION_POINTS,
                                      _der(0x30, _der(0x30, _der(0xa0, _der(0xa0, _der(0x86, url))))))


def raw_ocsp_url(url):
    """An AIA extension naming url's bytes (any bytes) as the OCSP responder."""
    oid = AuthorityInformationAccessOID.OCSP.dotted_string.split(".")
    body = bytes([40 * int(oid[0]) + int(oid[1])])
    for part in oid[2:]:
        v, enc = int(part), [int(part) & 0x7f]
        while v > 0x7f:
            v >>= 7
            enc.insert(0, 0x80 | (v & 0x7f))
        body += bytes(enc)
    return x509.UnrecognizedExtension(ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
                                      _der(0x30, _der(0x30, _der(0x06, body) + _der(0x86, url))))


def facts_of(c, certs):
    return {name: c.sql("SELECT revocation FROM discovered_certificates WHERE "
                        "fingerprint_sha256 = %s", (cert.fingerprint,))[0][0]
            for name, cert in certs.items()}


def revoked_findings(c, cert):
    return c.sql("SELECT severity, status FROM findings WHERE kind = 'revoked' "
                 "AND fingerprint_sha256 = %s", (cert.fingerprint,))


def errors_of(fact):
    return [e.get("error", "") for e in fact.get("errors", [])]


def main():
    with harness.Cluster(name="scanrevocation", config={"logging.level": "info"}) as c:
        c.migrate()
        f = tlsfleet.Fleet(c.tmpdir)
        raddr = f.next_addr()  # the responder: port 80 of a fleet address of its own
        dead = f.next_addr()   # nothing listens here
        r = Responder(f, raddr, 80)
        inner = Responder(f, raddr, 8080)  # an "internal service" on another port
        r.redirect_to = "http://%s:8080/landed" % raddr
        base = "http://%s" % raddr
        certs = {
            "good": f.cert("good.fleet.test", via_intermediate=True, ocsp_url=base + "/ocsp"),
            "revoked_ocsp": f.cert("revoked.fleet.test", via_intermediate=True,
                                   ocsp_url=base + "/ocsp"),
            "revoked_crl": f.cert("crl.fleet.test", via_intermediate=True, crl_url=base + "/crl"),
            "down": f.cert("down.fleet.test", via_intermediate=True,
                           ocsp_url="http://%s/ocsp" % dead),
            "metadata": f.cert("meta.fleet.test", via_intermediate=True,
                               ocsp_url="http://169.254.169.254/ocsp"),
            "bad_crl": f.cert("badcrl.fleet.test", via_intermediate=True,
                              extra_ext=[raw_crl_url(b"http://crl.example\xff/x.crl")]),
            "bad_ocsp": f.cert("badocsp.fleet.test", via_intermediate=True,
                               extra_ext=[raw_ocsp_url(b"http://ocsp.example\xff\x01/")]),
            "port": f.cert("port.fleet.test", via_intermediate=True,
                           ocsp_url="http://%s:8080/ocsp" % raddr),
            "redirect": f.cert("redirect.fleet.test", via_intermediate=True,
                               crl_url=base + "/redirect"),
            "notfound": f.cert("notfound.fleet.test", via_intermediate=True,
                               crl_url=base + "/notfound"),
            "unproven": f.cert("unproven.fleet.test", self_signed=True,
                               crl_url=base + "/crl-unproven"),
        }
        r.status[certs["good"].cert.serial_number] = ("good", certs["good"].cert)
        r.status[certs["revoked_ocsp"].cert.serial_number] = ("revoked", certs["revoked_ocsp"].cert)
        r.crl_revoked.add(certs["revoked_crl"].cert.serial_number)
        servers = {name: f.tls(name, cert) for name, cert in certs.items()}
        # the second source: nine CRLs just under 8 MiB each, and a certificate whose facts
        # the database refuses
        big = {"big%d" % i: f.cert("big%d.fleet.test" % i, via_intermediate=True,
                                   crl_url="%s/big/%d" % (base, i)) for i in range(9)}
        big["fault"] = f.cert("fault.fleet.test", via_intermediate=True, ocsp_url=base + "/ocsp")
        r.status[big["fault"].cert.serial_number] = ("good", big["fault"].cert)
        big_servers = {name: f.tls(name, cert) for name, cert in big.items()}
        r.start()
        inner.start()
        f.start()
        try:
            c.start_scheduler()
            w = c.start_worker()
            sid = c.add_source_sql("revocation", cidrs=["%s/32" % s.addr for s in servers.values()],
                                   ports=[f.port], timeout_ms=3000)
            for round_no in (1, 2):
                run = c.wait_run(c.insert_run_sql(sid), timeout=120)
                assert run["status"] == "succeeded", harness._short_row(run)
                facts = facts_of(c, certs)
                print("round %d: %s" % (round_no, {k: v.get("status") for k, v in facts.items()}))
                assert facts["good"]["status"] == "good", facts["good"]
                assert facts["good"]["method"] == "ocsp"
                assert facts["revoked_ocsp"]["status"] == "revoked", facts["revoked_ocsp"]
                assert facts["revoked_ocsp"].get("reason") == "keyCompromise", facts["revoked_ocsp"]
                assert facts["revoked_crl"]["status"] == "revoked", facts["revoked_crl"]
                assert facts["revoked_crl"]["method"] == "crl"
                assert facts["down"]["status"] == "error", facts["down"]
                assert facts["down"]["errors"][0]["url"].endswith("/ocsp")
                assert facts["metadata"]["status"] == "error", facts["metadata"]
                assert "network policy" in facts["metadata"]["errors"][0]["error"], facts["metadata"]
                # item 1: the \xff URLs are cleaned into the facts, and not fetched
                assert facts["bad_crl"]["status"] == "error", facts["bad_crl"]
                assert facts["bad_crl"]["errors"][0]["url"] == "http://crl.example\\xff/x.crl", \
                    facts["bad_crl"]
                assert "not asked" in facts["bad_crl"]["errors"][0]["error"], facts["bad_crl"]
                assert facts["bad_ocsp"]["errors"][0]["url"] == "http://ocsp.example\\xff\\x01/", \
                    facts["bad_ocsp"]
                # item 2: port 8080 refused before any connect, redirects not followed, a
                # 404 not read back, an unproven issuer not asked at all
                assert facts["port"]["status"] == "error", facts["port"]
                assert "ports 80 and 443" in facts["port"]["errors"][0]["error"], facts["port"]
                assert facts["redirect"]["status"] == "error", facts["redirect"]
                assert inner.served("/") == 0, inner.paths
                assert facts["notfound"]["status"] == "error", facts["notfound"]
                text = json.dumps(facts["notfound"]) + json.dumps(facts["redirect"])
                assert "404" not in text and "302" not in text and SECRET not in text, text
                assert errors_of(facts["down"]) == errors_of(facts["notfound"]), \
                    (facts["down"], facts["notfound"])  # refused and 404 read back the same
                assert r.served("/crl-unproven") == 0, r.paths
                assert facts["unproven"]["status"] == "error", facts["unproven"]
                assert "issuer" in facts["unproven"]["errors"][0]["error"], facts["unproven"]
                for name in ("revoked_ocsp", "revoked_crl"):
                    rows = revoked_findings(c, certs[name])
                    assert rows == [("critical", "open")], (name, rows)
                for name in ("good", "down", "metadata", "bad_crl", "bad_ocsp", "port",
                             "redirect", "notfound", "unproven"):
                    assert revoked_findings(c, certs[name]) == [], name
                if round_no == 1:
                    asked = dict(r.ocsp_requests)
                    crl_asked = r.paths.get("/crl", 0)
                    assert asked.get(certs["good"].cert.serial_number) == 1, asked
                    assert crl_asked == 1, r.paths
                    assert facts["good"]["cached"] is False
                else:
                    # cached until the responder's next update: nothing asked again
                    assert r.ocsp_requests == asked, (r.ocsp_requests, asked)
                    assert r.paths.get("/crl", 0) == crl_asked
                    assert facts["good"]["cached"] is True, facts["good"]
                    assert facts["revoked_crl"]["cached"] is True
            n = c.sql("SELECT count(*) FROM scan_revocation_cache")[0][0]
            assert n == 3, n
            urls = [u for (u,) in c.sql("SELECT url FROM scan_revocation_cache")]
            assert all(SECRET not in u for u in urls), urls

            # the byte budget, and one certificate's write failing alone
            c.sql("CREATE FUNCTION test_rev_fault() RETURNS trigger LANGUAGE plpgsql AS $$ "
                  "BEGIN IF NEW.fingerprint_sha256 = '%s' AND NEW.revocation->>'status' = 'good' "
                  "THEN RAISE EXCEPTION 'injected revocation write fault'; END IF; "
                  "RETURN NEW; END $$" % big["fault"].fingerprint)
            c.sql("CREATE TRIGGER test_rev_fault BEFORE UPDATE OF revocation ON "
                  "discovered_certificates FOR EACH ROW EXECUTE FUNCTION test_rev_fault()")
            sid2 = c.add_source_sql("revocation-budget",
                                    cidrs=["%s/32" % s.addr for s in big_servers.values()],
                                    ports=[f.port], timeout_ms=5000)
            run = c.wait_run(c.insert_run_sql(sid2), timeout=180)
            assert run["status"] == "succeeded", harness._short_row(run)
            facts = facts_of(c, big)
            fetched = r.served("/big/")
            print("budget: %d of 9 CRLs fetched; %s" % (fetched, {k: errors_of(v) for k, v in facts.items()}))
            assert 1 <= fetched and fetched * BIG <= RUN_BYTES_MAX, fetched
            spent = [k for k, v in facts.items() if any("byte budget" in e for e in errors_of(v))]
            assert len(spent) == 9 - fetched, (fetched, spent)
            assert facts["fault"]["status"] == "error", facts["fault"]
            assert any("could not be stored" in e for e in errors_of(facts["fault"])), facts["fault"]
            n = c.sql("SELECT count(*) FROM scan_revocation_cache WHERE fingerprint_sha256 = %s",
                      (big["fault"].fingerprint,))[0][0]
            assert n == 0, n
            c.assert_running(w)
        finally:
            f.stop()
            r.stop()
            inner.stop()
    print("test_scan_revocation: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
