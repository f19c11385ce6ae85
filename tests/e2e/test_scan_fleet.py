"""network_scan against a fleet of real TLS servers on loopback: certificate facts, findings,
partial runs, the per-host timeout, the concurrency cap, SNI, STARTTLS, drift on re-scan, the
network policy and scan.max_targets."""

import ipaddress
import os
import socket
import ssl
import sys
import time

import harness
import tlsfleet

WORKER_CAP = 4
SOURCE_CONCURRENCY = 6


def run_source(c, sid, timeout=120):
    run_id = c.insert_run_sql(sid)
    return c.wait_run(run_id, timeout=timeout)


def observations(c, run_id):
    rows = c.sql_dicts(
        "SELECT host(e.address) AS address, e.port, e.sni, e.host, e.status, o.outcome, "
        "o.fingerprint_sha256, o.tls_version, o.cipher_suite, o.kex_group, o.kex_group_id, "
        "o.kex_pqc, o.chain, o.error, e.id AS endpoint_id "
        "FROM endpoint_observations o JOIN endpoints e ON e.id = o.endpoint_id "
        "WHERE o.run_id = %s", (run_id,))
    return {(r["address"], r["port"], r["sni"]): r for r in rows}


def cert_row(c, fp):
    rows = c.sql_dicts("SELECT * FROM discovered_certificates WHERE fingerprint_sha256 = %s", (fp,))
    assert rows, "certificate %s not in the inventory" % fp
    return rows[0]


def open_finding(c, kind, fp=None, endpoint_id=None):
    if fp:
        q, p = "fingerprint_sha256 = %s", fp
    else:
        q, p = "endpoint_id = %s", endpoint_id
    return c.sql("SELECT count(*) FROM findings WHERE kind = %s AND status = 'open' AND " + q,
                 (kind, p))[0][0]


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as t:
            t.bind(("::1", 0))
        return True
    except OSError:
        return False


def main():
    as_root = os.geteuid() == 0
    with harness.Cluster(name="scanfleet", config={
            "worker.max_concurrent_discovery": WORKER_CAP,
            "network.deny": ["169.255.0.0/16"],
            "scan.max_targets": 200000,
            "logging.level": "info"}) as c:
        c.migrate()
        fleet = tlsfleet.Fleet(c.tmpdir, hold_s=0.1)
        f = fleet
        s = {}
        s["rsa2048"] = f.tls("rsa2048", f.cert("rsa2048.fleet.test", key=f.rsa(2048)))
        s["rsa4096"] = f.tls("rsa4096", f.cert("rsa4096.fleet.test", key=f.rsa(4096)))
        s["p256"] = f.tls("p256", f.cert("p256.fleet.test", key=f.ecdsa("P-256")))
        s["p384"] = f.tls("p384", f.cert("p384.fleet.test", key=f.ecdsa("P-384")))
        s["ed25519"] = f.tls("ed25519", f.cert("ed25519.fleet.test", key=f.ed25519()))
        s["expired"] = f.tls("expired", f.cert("expired.fleet.test", expired=True))
        s["selfsigned"] = f.tls("selfsigned", f.cert("self.fleet.test", key=f.rsa(2048),
                                                     self_signed=True))
        s["wildcard"] = f.tls("wildcard", f.cert("*.fleet.test", sans=["*.fleet.test"]))
        sans100 = ["h%03d.fleet.test" % i for i in range(100)]
        s["san100"] = f.tls("san100", f.cert("h000.fleet.test", sans=sans100))
        s["chain"] = f.tls("chain", f.cert("chain.fleet.test", via_intermediate=True))
        s["tls12"] = f.tls("tls12", f.cert("tls12.fleet.test"), max_version=ssl.TLSVersion.TLSv1_2)
        s["tls13"] = f.tls("tls13", f.cert("tls13.fleet.test"), min_version=ssl.TLSVersion.TLSv1_3)
        # a server that only speaks TLS 1.0 with NULL encryption (this OpenSSL has no 3DES, RC4
        # or EXPORT suites): the client must offer both to see it
        s["legacy"] = f.tls("legacy", f.cert("legacy.fleet.test", key=f.rsa(2048)),
                            min_version=ssl.TLSVersion.TLSv1, max_version=ssl.TLSVersion.TLSv1)
        s["legacy"].ctx.set_ciphers("NULL-SHA:@SECLEVEL=0")
        s["tarpit1"] = f.add("tarpit1", "tarpit")
        s["tarpit2"] = f.add("tarpit2", "tarpit")
        s["nothing"] = f.add("nothing", "refused")
        if as_root:
            s["smtp"] = f.add("smtp", "starttls_smtp", cert=f.cert("mail.fleet.test"), port=587)
            s["smtp"].ctx = s["smtp"].cert.context()
        else:
            print("NOTE: not root, so no SMTP server on port 587: STARTTLS is left to the unit tests")
        s["smtp_any"] = f.add("smtp_any", "starttls_smtp", cert=f.cert("mail2.fleet.test"))
        s["smtp_any"].ctx = s["smtp_any"].cert.context()
        default_cert = f.cert("default.sni.test")
        sni_cert = f.cert("localhost", sans=["localhost"])
        s["sni"] = f.tls("sni", default_cert, sni={"localhost": sni_cert}, addr="127.0.0.1")
        have_v6 = ipv6_loopback()
        if have_v6:
            s["v6"] = f.tls("v6", f.cert("v6.fleet.test"), addr="::1")
        else:
            print("NOTE: no IPv6 loopback here: the IPv6 endpoint is not tested")
        for proto in ("imap", "pop3", "ldap"):
            srv = f.add(proto, "starttls_" + proto, cert=f.cert("%s.fleet.test" % proto))
            srv.ctx = srv.cert.context()
            s[proto] = srv
        fleet.start()
        try:
            c.start_scheduler()
            w = c.start_worker()
            ports = [fleet.port] + ([587] if as_root else [])
            sid = c.add_source_sql("fleet", cidrs=[fleet.cidr()], ports=ports, timeout_ms=1000,
                                   concurrency=SOURCE_CONCURRENCY)

            # ---- first scan
            t0 = time.time()
            run = run_source(c, sid)
            print("fleet scan 1: %s in %.1fs, max handshakes in flight %d"
                  % (run["status"], time.time() - t0, fleet.max_inflight))
            assert run["status"] == "partial", harness._short_row(run)
            obs = observations(c, run["id"])
            # an endpoint is something that answered: the addresses of the /26 where nothing
            # listens (the kernel resets the connect) are counted on the run, never stored
            net = ipaddress.ip_network(fleet.cidr())
            live = {(v.addr, v.port) for k, v in s.items() if v.kind != "refused"
                    and v.port in ports and ipaddress.ip_address(v.addr) in net}
            assert {(a, p) for (a, p, _) in obs} == live, sorted(obs)
            assert run["targets_total"] == 64 * len(ports), run["targets_total"]
            assert run["targets_done"] == 64 * len(ports), run["targets_done"]
            st = run["stats"]
            assert st.get("closed") == 64 * len(ports) - len(live), st
            assert st.get("silent", 0) == 0 and st.get("no_route", 0) == 0, st
            nothing_rows = c.sql("SELECT count(*) FROM endpoints WHERE address = %s",
                                 (s["nothing"].addr,))[0][0]
            assert nothing_rows == 0, "an address that never answered became an endpoint"
            tls_names = ["rsa2048", "rsa4096", "p256", "p384", "ed25519", "expired", "selfsigned",
                         "wildcard", "san100", "chain", "tls12", "tls13"]
            assert run["ok_count"] == len(tls_names) + 1 + (1 if as_root else 0), run["ok_count"]
            lo = obs[(s["legacy"].addr, fleet.port, "")]
            assert lo["outcome"] == "ok", lo
            assert lo["tls_version"] == "TLSv1", lo
            assert lo["cipher_suite"] == "TLS_RSA_WITH_NULL_SHA", lo
            assert lo["kex_pqc"] in (None, "classical"), lo
            for kind in ("deprecated_tls", "weak_cipher"):
                assert open_finding(c, kind, endpoint_id=lo["endpoint_id"]) == 1, kind
                assert open_finding(c, kind, endpoint_id=obs[(s["rsa2048"].addr, fleet.port,
                                                              "")]["endpoint_id"]) == 0, kind
            for name in tls_names:
                srv = s[name]
                o = obs[(srv.addr, fleet.port, "")]
                assert o["outcome"] == "ok", (name, o)
                assert o["fingerprint_sha256"] == srv.cert.fingerprint, (name, o)
                assert o["cipher_suite"] and o["cipher_suite"].startswith("TLS_"), (name, o)
                assert o["kex_pqc"] == "classical", (name, o)
                assert o["kex_group_id"] in (29, 23, 24, 25, 30), (name, o)
                assert len(o["chain"]) == len(srv.cert.chain), (name, o["chain"])
                assert o["chain"][0] == srv.cert.fingerprint
                assert o["status"] == "online"
                # every fleet certificate chains to a root the system does not trust
                assert open_finding(c, "untrusted", endpoint_id=o["endpoint_id"]) == 1, name
            assert obs[(s["tls12"].addr, fleet.port, "")]["tls_version"] == "TLSv1.2"
            assert obs[(s["tls13"].addr, fleet.port, "")]["tls_version"] == "TLSv1.3"
            assert obs[(s["rsa2048"].addr, fleet.port, "")]["kex_group"] in ("x25519", "X25519")
            chain_obs = obs[(s["chain"].addr, fleet.port, "")]
            assert chain_obs["chain"][1] == tlsfleet.fingerprint_der(
                s["chain"].cert.chain[1].public_bytes(tlsfleet.serialization.Encoding.DER))

            expect = {"rsa2048": ("RSA", 2048, ""), "rsa4096": ("RSA", 4096, ""),
                      "p256": ("EC", 256, "P-256"), "p384": ("EC", 384, "P-384"),
                      "ed25519": ("Ed25519", None, "")}
            for name, (alg, bits, curve) in expect.items():
                row = cert_row(c, s[name].cert.fingerprint)
                assert row["key_algorithm"] == alg, (name, row["key_algorithm"])
                if bits:
                    assert row["key_bits"] == bits, (name, row["key_bits"])
                assert (row["key_curve"] or "") == curve, (name, row["key_curve"])
                assert row["pqc_class"] == "transition", (name, row["pqc_class"])
                assert open_finding(c, "pqc_vulnerable", fp=s[name].cert.fingerprint) == 1, name
            assert len(cert_row(c, s["san100"].cert.fingerprint)["sans"]) == 100
            assert sorted(cert_row(c, s["wildcard"].cert.fingerprint)["sans"]) == ["*.fleet.test"]
            assert cert_row(c, s["selfsigned"].cert.fingerprint)["self_signed"] is True
            assert open_finding(c, "self_signed", fp=s["selfsigned"].cert.fingerprint) == 1
            assert open_finding(c, "expired", fp=s["expired"].cert.fingerprint) == 1
            assert open_finding(c, "expired", fp=s["rsa2048"].cert.fingerprint) == 0
            assert open_finding(c, "self_signed", fp=s["rsa2048"].cert.fingerprint) == 0
            # the intermediate is in the inventory too
            cert_row(c, chain_obs["chain"][1])

            for name in ("tarpit1", "tarpit2"):
                o = obs[(s[name].addr, fleet.port, "")]
                assert o["outcome"] == "timeout", (name, o)
                assert o["status"] == "offline"
                assert open_finding(c, "unreachable", endpoint_id=o["endpoint_id"]) == 1
            assert (s["nothing"].addr, fleet.port, "") not in obs
            if as_root:
                o = obs[(s["smtp"].addr, 587, "")]
                assert o["outcome"] == "ok", o
                assert o["fingerprint_sha256"] == s["smtp"].cert.fingerprint, o

            # concurrency: never more handshakes in flight than min(source, worker cap)
            bound = min(SOURCE_CONCURRENCY, WORKER_CAP)
            assert 1 <= fleet.max_inflight <= bound, (fleet.max_inflight, bound)

            # ---- the timeout is honoured: two tarpits with a 1 s timeout end in under 3 s
            tid = c.add_source_sql("tarpits", cidrs=["%s/32" % s["tarpit1"].addr,
                                                     "%s/32" % s["tarpit2"].addr],
                                   ports=[fleet.port], timeout_ms=1000)
            trun = run_source(c, tid)
            took = (trun["finished_at"] - trun["started_at"]).total_seconds()
            print("tarpit run: %s in %.2fs" % (trun["status"], took))
            assert trun["status"] == "partial", harness._short_row(trun)
            assert took < 3.0, "tarpit run took %.2fs with a 1 s timeout" % took
            tobs = observations(c, trun["id"])
            assert sorted(o["outcome"] for o in tobs.values()) == ["timeout", "timeout"], tobs

            # ---- STARTTLS on a port the source names (not a default STARTTLS port)
            o = obs[(s["smtp_any"].addr, fleet.port, "")]
            assert o["outcome"] == "tls_error", o  # implicit TLS against an SMTP server
            oid = c.add_source_sql("smtp_override", cidrs=["%s/32" % s["smtp_any"].addr],
                                   ports=[fleet.port], starttls=["%d:smtp" % fleet.port])
            orun = run_source(c, oid)
            assert orun["status"] == "succeeded", harness._short_row(orun)
            o = observations(c, orun["id"])[(s["smtp_any"].addr, fleet.port, "")]
            assert o["fingerprint_sha256"] == s["smtp_any"].cert.fingerprint, o
            for proto in ("imap", "pop3", "ldap"):
                pid_ = c.add_source_sql("starttls_" + proto, cidrs=["%s/32" % s[proto].addr],
                                        ports=[fleet.port],
                                        starttls=["%d:%s" % (fleet.port, proto)])
                prun_ = run_source(c, pid_)
                o = observations(c, prun_["id"])[(s[proto].addr, fleet.port, "")]
                assert o["outcome"] == "ok", (proto, o)
                assert o["fingerprint_sha256"] == s[proto].cert.fingerprint, (proto, o)
            # PostgreSQL's SSLRequest against the test's own server, which has no TLS: 'N'
            pgid = c.add_source_sql("starttls_pg", cidrs=["127.0.0.1/32"], ports=[c.pg_port],
                                    starttls=["%d:postgres" % c.pg_port])
            pgrun = run_source(c, pgid)
            o = observations(c, pgrun["id"])[("127.0.0.1", c.pg_port, "")]
            assert o["outcome"] == "tls_error" and "does not accept SSL" in o["error"], o
            try:
                c.add_source_sql("bad_starttls", starttls=["25:ftp"])
                raise AssertionError("a source with starttls 25:ftp was saved")
            except harness.psycopg2.Error:
                pass

            # ---- IPv6: a /128 and the same server through the name localhost when it has ::1
            if have_v6:
                v6id = c.add_source_sql("v6", cidrs=["::1/128"], ports=[fleet.port],
                                        timeout_ms=2000)
                v6run = run_source(c, v6id)
                assert v6run["status"] == "succeeded", harness._short_row(v6run)
                o = observations(c, v6run["id"])[("::1", fleet.port, "")]
                assert o["fingerprint_sha256"] == s["v6"].cert.fingerprint, o

            # ---- SNI: the bare address gets the default certificate, the name its own
            sni_sid = c.add_source_sql("sni", cidrs=["127.0.0.1/32"], hosts=["localhost"],
                                       ports=[fleet.port], timeout_ms=2000)
            srun = run_source(c, sni_sid)
            sobs = observations(c, srun["id"])
            bare = sobs[("127.0.0.1", fleet.port, "")]
            named = sobs[("127.0.0.1", fleet.port, "localhost")]
            assert bare["fingerprint_sha256"] == default_cert.fingerprint, bare
            assert named["fingerprint_sha256"] == sni_cert.fingerprint, named
            assert named["host"] == "localhost", named
            assert open_finding(c, "name_mismatch", endpoint_id=named["endpoint_id"]) == 0

            # ---- drift: swap three certificates, re-scan, exactly three drifts
            swapped = ["rsa2048", "p256", "wildcard"]
            for name in swapped:
                fleet.swap(s[name], f.cert(s[name].cert.cert.subject.get_attributes_for_oid(
                    tlsfleet.NameOID.COMMON_NAME)[0].value, sans=[n.value for n in
                    s[name].cert.cert.extensions.get_extension_for_class(
                        tlsfleet.x509.SubjectAlternativeName).value]))
            # and one endpoint goes offline: that is not a drift
            fleet.stop_server(s["ed25519"])
            fleet.reset_counters()
            run2 = run_source(c, sid)
            assert run2["status"] == "partial", harness._short_row(run2)
            drifts = c.sql_dicts(
                "SELECT host(e.address) AS address, d.old_fingerprint_sha256, "
                "d.new_fingerprint_sha256, d.changed FROM drift_events d "
                "JOIN endpoints e ON e.id = d.endpoint_id WHERE d.run_id = %s", (run2["id"],))
            got = sorted(d["address"] for d in drifts)
            want = sorted(s[n].addr for n in swapped)
            assert got == want, "drifts at %s, expected %s" % (got, want)
            for d in drifts:
                assert "fingerprint" in d["changed"] and "public_key" in d["changed"], d
                assert "sans" not in d["changed"], d
            assert c.sql("SELECT count(*) FROM drift_events")[0][0] == 3
            off = observations(c, run2["id"])[(s["ed25519"].addr, fleet.port, "")]
            assert off["outcome"] == "refused" and off["status"] == "offline", off
            assert c.sql("SELECT fingerprint_sha256 FROM endpoints WHERE id = %s",
                         (off["endpoint_id"],))[0][0] == s["ed25519"].cert.fingerprint
            assert run2["drift_count"] == 3, run2["drift_count"]
            assert fleet.max_inflight <= min(SOURCE_CONCURRENCY, WORKER_CAP), fleet.max_inflight

            # ---- two runs at once share the worker's cap, and both make progress together
            ja = c.add_source_sql("share_a", cidrs=[fleet.cidr()], ports=[fleet.port],
                                  timeout_ms=1000, concurrency=SOURCE_CONCURRENCY)
            jb = c.add_source_sql("share_b", cidrs=[fleet.cidr()], ports=[fleet.port],
                                  timeout_ms=1000, concurrency=SOURCE_CONCURRENCY)
            fleet.reset_counters()
            ra, rb = c.insert_run_sql(ja), c.insert_run_sql(jb)
            ra, rb = c.wait_run(ra, timeout=120), c.wait_run(rb, timeout=120)
            print("two runs at once: max handshakes in flight %d" % fleet.max_inflight)
            assert fleet.max_inflight <= WORKER_CAP, fleet.max_inflight
            assert ra["targets_done"] == 64 and rb["targets_done"] == 64, (ra, rb)
            overlap = min(ra["finished_at"], rb["finished_at"]) - max(ra["started_at"],
                                                                      rb["started_at"])
            assert overlap.total_seconds() > 0, "the two runs did not run at the same time"

            # ---- network policy: a listed block inside an always-refused one is rejected
            try:
                c.add_source_sql("linklocal", cidrs=["169.254.0.0/16"])
                raise AssertionError("a source listing 169.254.0.0/16 was saved")
            except harness.psycopg2.Error as e:
                assert "169.254.0.0/16" in str(e), e
            # 169.254.0.0/15: half link-local, half in network.deny; nothing may be sent there
            pid = c.add_source_sql("policy", cidrs=["169.254.0.0/15", "%s/32" % s["p384"].addr],
                                   ports=[fleet.port], timeout_ms=2000)
            prun = run_source(c, pid)
            assert prun["status"] == "succeeded", harness._short_row(prun)
            assert c.sql("SELECT count(*) FROM endpoints WHERE address <<= '169.254.0.0/15'")[0][0] == 0
            pobs = observations(c, prun["id"])
            assert list(pobs) == [(s["p384"].addr, fleet.port, "")], pobs
            pf = c.sql_dicts("SELECT * FROM findings WHERE kind = 'policy_block' AND run_id = %s",
                             (prun["id"],))
            assert len(pf) == 1, pf
            det = pf[0]["details"]
            assert det["refused_addresses"] == 131072, det
            reasons = {r["reason"]: r["count"] for r in det["ranges"]}
            assert reasons == {"link-local (169.254.0.0/16)": 65536,
                               "network.deny 169.255.0.0/16": 65536}, reasons
            assert pf[0]["severity"] == "medium"

            # ---- scan.max_targets: refused before any probe, both numbers in the message
            big = c.add_source_sql("toobig", cidrs=["10.0.0.0/14"], ports=[443])
            brun = run_source(c, big)
            assert brun["status"] == "failed", harness._short_row(brun)
            assert "262144" in brun["error"] and "200000" in brun["error"], brun["error"]
            assert c.sql("SELECT count(*) FROM endpoints WHERE address <<= '10.0.0.0/8'")[0][0] == 0

            c.assert_running(w)
        finally:
            fleet.stop()
    print("test_scan_fleet: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
