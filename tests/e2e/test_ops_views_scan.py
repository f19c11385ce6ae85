"""Dashboard views over data from real scans: a scheduler and a worker scan a local TLS server
(and a closed port), the server then changes its certificate and is scanned again; the views
show the certificate with its days to expiry, the source's health and unreachable share, the
open findings, the drift, the PQC counts, and every dashboard query runs as cap_dashboard."""

import os

import psycopg2

import harness
from test_ops_metrics import TLSServer
from test_ops_views import dashboard_queries, grafana_to_sql


def trigger(c, name):
    r = c.capctl("source", "trigger", name, "--wait", timeout=120)
    assert r.returncode == 0, "run of %s did not succeed or end partial:\n%s\n%s" \
        % (name, r.stdout, r.stderr)


def closed_port():
    # A port that was free a moment ago: nothing listens there, connects are refused.
    return harness.free_port()


def main():
    with harness.Cluster(name="ops-views-scan") as c:
        c.capctl_ok("migrate")
        c.start_scheduler()
        c.start_worker()
        srv = TLSServer(c.tmpdir)
        try:
            endpoint = "127.0.0.1:%d" % srv.port
            c.capctl_ok("source", "add", "tls-ok", "--type", "network_scan",
                        "--cidr", "127.0.0.1/32", "--port", srv.port, "--timeout", "3s")
            c.capctl_ok("source", "add", "tls-half", "--type", "network_scan",
                        "--cidr", "127.0.0.1/32", "--port", closed_port(), "--port", srv.port,
                        "--timeout", "3s")
            trigger(c, "tls-ok")
            trigger(c, "tls-half")

            inv = c.sql_dicts("SELECT * FROM cap_inventory WHERE NOT is_ca")
            assert len(inv) == 1, inv
            cert = inv[0]
            assert cert["subject"].endswith("CN=metrics.test") or "metrics.test" in cert["subject"], cert
            # openssl -days 30: a few seconds less than 30 days remain.
            assert cert["days_to_expiry"] == 29 and cert["expired"] is False, cert
            assert cert["pqc_class"] == "transition" and cert["managed"] is False, cert
            assert cert["served_at"] == [endpoint], cert
            exp = c.sql("SELECT fingerprint_sha256 FROM cap_expiring(30)")
            assert exp == [(cert["fingerprint_sha256"],)], exp
            assert c.sql("SELECT count(*) FROM cap_expiring(7)") == [(0,)]

            health = {r["source_name"]: r for r in c.sql_dicts("SELECT * FROM cap_source_health")}
            ok, half = health["tls-ok"], health["tls-half"]
            assert (ok["health"], ok["last_run_status"]) == ("ok", "succeeded"), ok
            assert ok["last_run_unreachable_share"] == 0, ok
            assert ok["last_run_duration_seconds"] is not None and \
                0 <= ok["last_run_duration_seconds"] < 120, ok
            assert (half["health"], half["last_run_status"]) == ("degraded", "partial"), half
            assert half["last_run_unreachable_share"] == 0.5, half
            assert ok["last_success_at"] is not None and half["last_success_at"] is not None

            found = {(r["kind"], r["source_name"]): r["open_count"]
                     for r in c.sql_dicts("SELECT * FROM cap_open_findings")}
            assert found.get(("unreachable", "tls-half")) == 1, found
            assert ("unreachable", "tls-ok") not in found, found

            pqc = {(r["scope"], r["class"]): r["total"]
                   for r in c.sql_dicts("SELECT * FROM cap_pqc_readiness")}
            assert pqc[("certificate", "transition")] == 1, pqc
            assert sum(v for (scope, _), v in pqc.items() if scope == "key_exchange") == 1, pqc
            assert pqc[("key_exchange", "classical")] == 1, pqc

            runs = c.sql("SELECT source_name, status FROM cap_run_history ORDER BY run_id")
            assert runs == [("tls-ok", "succeeded"), ("tls-half", "partial")], runs

            # The endpoint serves a new certificate: the next scan records a drift.
            srv.rotate()
            trigger(c, "tls-ok")
            drift = c.sql_dicts("SELECT * FROM cap_drift_history")
            assert len(drift) == 1, drift
            d = drift[0]
            assert d["endpoint"] == endpoint and d["source_name"] == "tls-ok", d
            assert "fingerprint" in d["changed"], d
            assert d["old_fingerprint_sha256"] == cert["fingerprint_sha256"], d
            assert d["new_fingerprint_sha256"] != cert["fingerprint_sha256"], d
            assert d["new_subject"] is not None and d["old_subject"] is not None, d
        finally:
            srv.close()

        # Every dashboard query, as the read-only role, over this data.
        c.sql("CREATE ROLE dash_scan LOGIN IN ROLE cap_dashboard")
        conn = psycopg2.connect(c.pg_url.replace("postgres@", "dash_scan@"))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                for dash, title, raw in dashboard_queries(os.path.abspath(harness.source_dir())):
                    sql = grafana_to_sql(raw).replace("'a.example:443'", "'%s'" % endpoint)
                    cur.execute(sql)
                    rows = cur.fetchall()
                    if title == "Certificates expiring within $days days":
                        assert len(rows) == 2, rows  # before and after the rotation
                    if title == "Drift history":
                        assert len(rows) == 1, rows
        finally:
            conn.close()
    print("test_ops_views_scan: ok")


if __name__ == "__main__":
    main()
