"""Revocation checks of scanned certificates: an OCSP responder and a CRL served on loopback
by this test (signed by the fleet's intermediate), a revoked certificate found by each, a good
one cached so the re-scan does not ask again, a responder that is down and one the network
policy refuses (facts on the certificate, never a failed run)."""

import datetime
import http.server
import sys
import threading

import harness
import tlsfleet
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp


class Responder:
    """OCSP (POST /ocsp) and CRL (GET /crl) for certificates the fleet intermediate issued."""

    def __init__(self, fleet):
        self.fleet = fleet
        self.status = {}   # serial -> "good" | "revoked"
        self.crl_revoked = set()
        self.ocsp_requests = {}  # serial -> count
        self.crl_requests = 0
        responder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = ocsp.load_der_ocsp_request(body)
                serial = req.serial_number
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
                self.send_response(200)
                self.send_header("Content-Type", "application/ocsp-response")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                responder.crl_requests += 1
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
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def main():
    with harness.Cluster(name="scanrevocation", config={"logging.level": "info"}) as c:
        c.migrate()
        f = tlsfleet.Fleet(c.tmpdir)
        r = Responder(f)
        base = "http://127.0.0.1:%d" % r.port
        dead = harness.free_port()
        certs = {
            "good": f.cert("good.fleet.test", via_intermediate=True, ocsp_url=base + "/ocsp"),
            "revoked_ocsp": f.cert("revoked.fleet.test", via_intermediate=True,
                                   ocsp_url=base + "/ocsp"),
            "revoked_crl": f.cert("crl.fleet.test", via_intermediate=True, crl_url=base + "/crl"),
            "down": f.cert("down.fleet.test", via_intermediate=True,
                           ocsp_url="http://127.0.0.1:%d/ocsp" % dead),
            "metadata": f.cert("meta.fleet.test", via_intermediate=True,
                               ocsp_url="http://169.254.169.254/ocsp"),
        }
        r.status[certs["good"].cert.serial_number] = ("good", certs["good"].cert)
        r.status[certs["revoked_ocsp"].cert.serial_number] = ("revoked", certs["revoked_ocsp"].cert)
        r.crl_revoked.add(certs["revoked_crl"].cert.serial_number)
        servers = {name: f.tls(name, cert) for name, cert in certs.items()}
        r.start()
        f.start()
        try:
            c.start_scheduler()
            w = c.start_worker()
            sid = c.add_source_sql("revocation", cidrs=["%s/32" % s.addr for s in servers.values()],
                                   ports=[f.port], timeout_ms=3000)
            for round_no in (1, 2):
                run = c.wait_run(c.insert_run_sql(sid), timeout=120)
                assert run["status"] == "succeeded", harness._short_row(run)
                facts = {name: c.sql("SELECT revocation FROM discovered_certificates WHERE "
                                     "fingerprint_sha256 = %s", (cert.fingerprint,))[0][0]
                         for name, cert in certs.items()}
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
                for name in ("revoked_ocsp", "revoked_crl"):
                    rows = c.sql("SELECT severity, status FROM findings WHERE kind = 'revoked' "
                                 "AND fingerprint_sha256 = %s", (certs[name].fingerprint,))
                    assert rows == [("critical", "open")], (name, rows)
                for name in ("good", "down", "metadata"):
                    n = c.sql("SELECT count(*) FROM findings WHERE kind = 'revoked' AND "
                              "fingerprint_sha256 = %s", (certs[name].fingerprint,))[0][0]
                    assert n == 0, name
                if round_no == 1:
                    asked = dict(r.ocsp_requests)
                    crl_asked = r.crl_requests
                    assert asked.get(certs["good"].cert.serial_number) == 1, asked
                    assert crl_asked == 1, crl_asked
                    assert facts["good"]["cached"] is False
                else:
                    # cached until the responder's next update: nothing asked again
                    assert r.ocsp_requests == asked, (r.ocsp_requests, asked)
                    assert r.crl_requests == crl_asked
                    assert facts["good"]["cached"] is True, facts["good"]
                    assert facts["revoked_crl"]["cached"] is True
            n = c.sql("SELECT count(*) FROM scan_revocation_cache")[0][0]
            assert n == 3, n
            c.assert_running(w)
        finally:
            f.stop()
            r.stop()
    print("test_scan_revocation: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
