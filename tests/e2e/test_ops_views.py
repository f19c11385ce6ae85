"""Dashboard views (migration 004) against the migrated schema: rows the test inserts come back
as the expected view rows, every view is commented, the read-only role cap_dashboard can read
the views and call cap_expiring but is refused every write and every table, and every SQL
query of the Grafana dashboards runs as that role."""

import glob
import hashlib
import json
import os
import re

import psycopg2
import psycopg2.errors

import harness

VIEWS = ("cap_inventory", "cap_certificates_expiring", "cap_open_findings", "cap_drift_history",
         "cap_source_health", "cap_run_history", "cap_ct_lag", "cap_pqc_readiness",
         "cap_ct_log_lag", "cap_ct_source_lag")


def fp(name):
    return hashlib.sha256(name.encode()).hexdigest()


def insert_fixture(c):
    """A small inventory: three sources, runs, certificates, endpoints, drift, findings, CT."""
    ids = {}
    for name, typ, extra in (("scan-a", "network_scan", {"hosts": ["a.example"]}),
                             ("ct-a", "ct_log", {"domains": ["example.com"]}),
                             ("scan-off", "network_scan", {"hosts": ["c.example"]})):
        col = "hosts" if "hosts" in extra else "domains"
        ids[name] = c.sql("INSERT INTO discovery_sources (name, type, %s, enabled) "
                          "VALUES (%%s, %%s, %%s, %%s) RETURNING id" % col,
                          (name, typ, extra[col], name != "scan-off"))[0][0]

    def run(source, status, started_ago, duration, **kw):
        cols = {"source_id": ids[source], "status": status, "trigger": "manual"}
        cols.update(kw)
        names = ", ".join(cols)
        marks = ", ".join(["%s"] * len(cols))
        return c.sql(
            "INSERT INTO discovery_runs (%s, queued_at, started_at, finished_at, attempts) "
            "VALUES (%s, now() - %%s * interval '1 second' - interval '5 seconds', "
            "now() - %%s * interval '1 second', "
            "CASE WHEN %%s THEN now() - %%s * interval '1 second' + %%s * interval '1 second' END,"
            " 1) RETURNING id" % (names, marks),
            list(cols.values()) + [started_ago, started_ago,
                                   status not in ("queued", "running"), started_ago, duration]
        )[0][0]

    ids["run1"] = run("scan-a", "succeeded", 7200, 60, targets_total=2, targets_done=2, ok_count=2)
    ids["run2"] = run("scan-a", "partial", 3600, 120, targets_total=10, targets_done=10,
                      ok_count=7, unreachable_count=3, error="3 endpoints unreachable",
                      stats='{"silent": 4000, "closed": 90, "no_route": 6, "batches": 2}')
    ids["run3"] = run("ct-a", "failed", 600, 30, error="log unreachable")

    certs = [
        # name, days (+1h so the floor is exact), pqc, is_ca, is_precert, tbs
        ("A", 10, "transition", False, False, None),
        ("B", 40, "vulnerable", False, False, None),
        ("C", -3, "unknown", False, False, None),
        ("CA", 3000, "transition", True, False, None),
        ("P", 100, "ready", False, True, "t1"),
        ("F", 100, "ready", False, False, "t1"),
        ("Q", 20, "transition", False, True, "t2"),
    ]
    for name, days, pqc, is_ca, pre, tbs in certs:
        c.sql("INSERT INTO discovered_certificates (fingerprint_sha256, subject, issuer, sans, "
              "serial, not_before, not_after, key_algorithm, key_bits, signature_algorithm, "
              "pqc_class, is_ca, is_precert, tbs_sha256, der) VALUES (%s, %s, %s, %s, '01', "
              "now() - interval '30 days', now() + %s * interval '1 day' + interval '1 hour', "
              "'RSA', 2048, 'sha256WithRSAEncryption', %s, %s, %s, %s, '\\x30')",
              (fp(name), "CN=%s.example" % name.lower(), "CN=Test CA",
               ["%s.example" % name.lower()], days, pqc, is_ca, pre, fp(tbs) if tbs else None))
    c.sql("INSERT INTO managed_certificates (fingerprint_sha256) VALUES (%s)", (fp("B"),))

    def endpoint(host, addr, port, cert, status="online"):
        return c.sql("INSERT INTO endpoints (host, address, port, sni, source_id, status, "
                     "fingerprint_sha256) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                     (host, addr, port, host, ids["scan-a"], status, cert))[0][0]

    ids["e1"] = endpoint("a.example", "192.0.2.1", 443, fp("A"))
    ids["e2"] = endpoint("b.example", "192.0.2.2", 8443, fp("B"))
    ids["e3"] = endpoint("d.example", "2001:db8::3", 443, None, "offline")

    def observe(ep, run_id, outcome, cert, kex, ago):
        c.sql("INSERT INTO endpoint_observations (endpoint_id, run_id, observed_at, outcome, "
              "fingerprint_sha256, kex_pqc) VALUES (%s, %s, now() - %s * interval '1 second', "
              "%s, %s, %s)", (ids[ep], ids[run_id], ago, outcome, cert, kex))

    observe("e1", "run1", "ok", fp("C"), "classical", 7100)
    observe("e1", "run2", "ok", fp("A"), "hybrid", 3500)
    observe("e2", "run2", "ok", fp("B"), "classical", 3500)
    observe("e3", "run2", "timeout", None, None, 3500)
    c.sql("INSERT INTO drift_events (endpoint_id, run_id, old_fingerprint_sha256, "
          "new_fingerprint_sha256, changed) VALUES (%s, %s, %s, %s, %s)",
          (ids["e1"], ids["run2"], fp("C"), fp("A"), ["fingerprint", "issuer"]))

    def finding(kind, sev, source, subject, status="open", cert=None, ep=None):
        c.sql("INSERT INTO findings (kind, severity, status, subject_key, source_id, "
              "fingerprint_sha256, endpoint_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
              (kind, sev, status, subject, ids[source], cert, ids[ep] if ep else None))

    finding("expired", "critical", "scan-a", "cert:" + fp("C"), cert=fp("C"))
    finding("unreachable", "low", "scan-a", "endpoint:%d" % ids["e3"], ep="e3")
    finding("unreachable", "low", "scan-a", "endpoint:999")
    finding("unreachable", "low", "scan-a", "endpoint:998", status="resolved")
    finding("ct_new_certificate", "info", "ct-a", "cert:" + fp("Q"), cert=fp("Q"))

    c.sql("INSERT INTO ct_checkpoints (source_id, log_url, next_index, tree_size, backlog, "
          "updated_at) VALUES (%s, 'https://ct.example/log1/', 900, 1000, 100, "
          "now() - interval '1 hour')", (ids["ct-a"],))
    c.sql("INSERT INTO ct_sightings (fingerprint_sha256, source_id, log_url, log_index) "
          "VALUES (%s, %s, 'https://ct.example/log1/', 950)", (fp("Q"), ids["ct-a"]))
    return ids


def check_views(c, ids):
    inv = {r["fingerprint_sha256"]: r for r in c.sql_dicts("SELECT * FROM cap_inventory")}
    assert len(inv) == 7, len(inv)
    a, b, cc = inv[fp("A")], inv[fp("B")], inv[fp("C")]
    assert (a["days_to_expiry"], a["expired"], a["managed"]) == (10, False, False), a
    assert a["endpoint_count"] == 1 and a["served_at"] == ["a.example:443"], a
    assert (b["days_to_expiry"], b["managed"], b["served_at"]) == (40, True, ["b.example:8443"]), b
    assert (cc["days_to_expiry"], cc["expired"], cc["open_findings"]) == (-3, True, 1), cc
    assert inv[fp("P")]["has_final_certificate"] is True
    # a precertificate is managed through its final certificate (same tbs_sha256)
    assert (inv[fp("P")]["managed"], inv[fp("F")]["managed"], inv[fp("Q")]["managed"]) == \
        (False, False, False)
    c.sql("INSERT INTO managed_certificates (fingerprint_sha256) VALUES (%s)", (fp("F"),))
    inv = {r["fingerprint_sha256"]: r for r in c.sql_dicts("SELECT * FROM cap_inventory")}
    assert (inv[fp("P")]["managed"], inv[fp("F")]["managed"], inv[fp("Q")]["managed"]) == \
        (True, True, False)
    c.sql("DELETE FROM managed_certificates WHERE fingerprint_sha256 = %s", (fp("F"),))
    assert inv[fp("Q")]["has_final_certificate"] is False and inv[fp("Q")]["seen_in_ct"] is True

    # Expiring: end-entity only, a precert hidden once its final certificate is known.
    exp = c.sql("SELECT subject, days_to_expiry FROM cap_certificates_expiring "
                "ORDER BY not_after")
    assert exp == [("CN=c.example", -3), ("CN=a.example", 10), ("CN=q.example", 20),
                   ("CN=b.example", 40), ("CN=f.example", 100)], exp
    assert c.sql("SELECT subject FROM cap_expiring(30)") == [("CN=a.example",), ("CN=q.example",)]
    assert c.sql("SELECT subject FROM cap_expiring(45)") == \
        [("CN=a.example",), ("CN=q.example",), ("CN=b.example",)]
    assert c.sql("SELECT count(*) FROM cap_expiring(5)") == [(0,)]

    rows = c.sql("SELECT kind, severity, severity_rank, source_name, open_count "
                 "FROM cap_open_findings ORDER BY severity_rank, kind")
    assert rows == [("expired", "critical", 1, "scan-a", 1), ("unreachable", "low", 4, "scan-a", 2),
                    ("ct_new_certificate", "info", 5, "ct-a", 1)], rows

    drift = c.sql_dicts("SELECT * FROM cap_drift_history")
    assert len(drift) == 1, drift
    d = drift[0]
    assert (d["endpoint"], d["address"], d["source_name"], d["changed"]) == \
        ("a.example:443", "192.0.2.1", "scan-a", ["fingerprint", "issuer"]), d
    assert (d["old_subject"], d["new_subject"]) == ("CN=c.example", "CN=a.example"), d

    health = {r["source_name"]: r for r in c.sql_dicts("SELECT * FROM cap_source_health")}
    assert set(health) == {"scan-a", "ct-a", "scan-off"}, health
    s = health["scan-a"]
    assert (s["health"], s["last_run_id"], s["last_run_status"]) == \
        ("degraded", ids["run2"], "partial"), s
    assert abs(s["last_run_duration_seconds"] - 120) < 1, s
    assert abs(s["last_run_unreachable_share"] - 0.3) < 1e-9, s
    assert s["last_success_at"] == s["last_run_finished_at"] and s["open_findings"] == 3, s
    t = health["ct-a"]
    assert (t["health"], t["last_run_error"], t["last_success_at"]) == \
        ("failing", "log unreachable", None), t
    assert t["last_run_unreachable_share"] is None, t
    assert health["scan-off"]["health"] == "disabled", health["scan-off"]
    # The last run's addresses that never answered: from its stats; 0 when it has none;
    # NULL before any run.
    assert (s["last_run_silent"], s["last_run_closed"], s["last_run_no_route"]) == \
        (4000, 90, 6), s
    assert (t["last_run_silent"], t["last_run_closed"], t["last_run_no_route"]) == (0, 0, 0), t
    assert health["scan-off"]["last_run_silent"] is None, health["scan-off"]

    runs = c.sql("SELECT source_name, status, round(duration_seconds), round(wait_seconds) "
                 "FROM cap_run_history ORDER BY run_id")
    assert runs == [("scan-a", "succeeded", 60, 5), ("scan-a", "partial", 120, 5),
                    ("ct-a", "failed", 30, 5)], runs
    counts = c.sql("SELECT silent, closed, no_route FROM cap_run_history ORDER BY run_id")
    assert counts == [(0, 0, 0), (4000, 90, 6), (0, 0, 0)], counts
    # Existing columns keep their places; the counts come last.
    cols = [r[0] for r in c.sql("SELECT column_name FROM information_schema.columns WHERE "
                                "table_name = 'cap_run_history' ORDER BY ordinal_position")]
    assert cols[:3] == ["run_id", "source_id", "source_name"] and \
        cols[-4:] == ["error", "silent", "closed", "no_route"], cols

    lag = c.sql_dicts("SELECT * FROM cap_ct_lag")
    assert len(lag) == 1 and lag[0]["backlog_entries"] == 100 and lag[0]["source_name"] == "ct-a", lag
    assert 3590 < lag[0]["seconds_since_update"] < 3700, lag
    # Per log (migration 020): the furthest-behind enabled source against the largest tree
    # size seen; a log of the log list that no source reads yet shows with no lag.
    c.sql("INSERT INTO ct_log_list (log_url, protocol, state, listed, current) "
          "VALUES ('https://ct.example/log2/', 'static-ct', 'usable', true, true)")
    per_log = {r["log_url"]: r for r in c.sql_dicts("SELECT * FROM cap_ct_log_lag")}
    l1 = per_log["https://ct.example/log1/"]
    assert l1["lag_entries"] == 100 and l1["tree_size"] == 1000 and l1["sources"] == 1, l1
    assert l1["current"] and l1["state"] == "" and 3590 < l1["seconds_since_read"] < 3700, l1
    l2 = per_log["https://ct.example/log2/"]
    assert l2["lag_entries"] == 0 and l2["sources"] == 0 and l2["state"] == "usable", l2
    per_src = c.sql_dicts("SELECT * FROM cap_ct_source_lag")
    assert len(per_src) == 1 and per_src[0]["lag_entries"] == 100, per_src
    assert per_src[0]["source_name"] == "ct-a" and per_src[0]["log_current"], per_src

    pqc = c.sql("SELECT scope, class, total, round(share::numeric, 2)::float8 FROM cap_pqc_readiness "
                "ORDER BY sort_order")
    assert pqc == [("certificate", "vulnerable", 1, 0.2), ("certificate", "transition", 2, 0.4),
                   ("certificate", "ready", 1, 0.2), ("certificate", "unknown", 1, 0.2),
                   ("key_exchange", "classical", 1, 0.5), ("key_exchange", "hybrid", 1, 0.5),
                   ("key_exchange", "pqc", 0, 0)], pqc


def check_comments(c):
    rows = c.sql("SELECT c.relname, obj_description(c.oid, 'pg_class') FROM pg_class c "
                 "JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE c.relkind = 'v' AND n.nspname = 'public'")
    names = {r[0] for r in rows}
    assert set(VIEWS) <= names, "missing views: %s" % (set(VIEWS) - names)
    for name, comment in rows:
        assert comment, "view %s has no COMMENT" % name
    assert c.sql("SELECT obj_description('cap_expiring(integer)'::regprocedure)")[0][0]


def dashboard_queries(src):
    """Every rawSql of every dashboard JSON under deploy/grafana, with its panel title."""
    out = []
    paths = sorted(glob.glob(os.path.join(src, "deploy", "grafana", "dashboards", "*.json")))
    assert paths, "no dashboard JSON under deploy/grafana/dashboards"

    def walk(node, title):
        if isinstance(node, dict):
            title = node.get("title", title)
            if isinstance(node.get("rawSql"), str):
                out.append((os.path.basename(path), title, node["rawSql"]))
            for v in node.values():
                walk(v, title)
        elif isinstance(node, list):
            for v in node:
                walk(v, title)

    for path in paths:
        with open(path) as f:
            dash = json.load(f)
        walk(dash.get("panels", []), "")
        for var in dash.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                q = var.get("query")
                out.append((os.path.basename(path), "variable " + var["name"],
                            q["rawSql"] if isinstance(q, dict) else q))
    return out


def grafana_to_sql(q):
    """Replaces the Grafana macros and variables the dashboards use with plain SQL."""
    q = re.sub(r"\$__timeFilter\(([^)]+)\)",
               r"\1 BETWEEN now() - interval '7 days' AND now()", q)
    q = q.replace("$__timeFrom()", "(now() - interval '7 days')")
    q = q.replace("$__timeTo()", "now()")
    q = re.sub(r"\$__timeGroupAlias\(([^,]+),\s*'?([0-9]+[smhd])'?\)",
               r"date_trunc('hour', \1) AS time", q)
    q = q.replace("$days", "30").replace("${days}", "30")
    q = q.replace("'$source'", "'scan-a'").replace("'${source}'", "'scan-a'")
    q = q.replace("'$endpoint'", "'a.example:443'").replace("'${endpoint}'", "'a.example:443'")
    left = re.findall(r"\$[A-Za-z_{]+", q)
    assert not left, "dashboard query uses %s, which the test does not substitute:\n%s" % (left, q)
    return q


def check_role(c, src):
    c.sql("CREATE ROLE dash_login LOGIN IN ROLE cap_dashboard")
    url = c.pg_url.replace("postgres@", "dash_login@")
    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for v in VIEWS:
                cur.execute("SELECT count(*) FROM %s" % v)
                assert cur.fetchone()[0] > 0, "view %s is empty for the dashboard role" % v
            cur.execute("SELECT count(*) FROM cap_expiring(30)")
            assert cur.fetchone() == (2,)

            refused = [
                "INSERT INTO findings (kind, severity, subject_key) VALUES ('x', 'low', 'y')",
                "UPDATE discovery_sources SET enabled = false",
                "DELETE FROM discovery_runs",
                "SELECT * FROM discovered_certificates",
                "SELECT * FROM managed_certificates",
                "INSERT INTO managed_certificates (fingerprint_sha256) VALUES (repeat('a', 64))",
                "DELETE FROM cap_run_history",
                "UPDATE cap_certificates_expiring SET managed = true",
                "CREATE TABLE sneaky (x int)",
                "TRUNCATE findings",
            ]
            for stmt in refused:
                try:
                    cur.execute(stmt)
                except psycopg2.Error as e:
                    # 42501 permission denied; 55000/0A000: a view that cannot take writes.
                    assert e.pgcode in ("42501", "55000", "0A000"), (stmt, e.pgcode, str(e))
                    continue
                raise AssertionError("cap_dashboard was allowed: %s" % stmt)

            queries = dashboard_queries(src)
            assert len(queries) >= 8, "expected a query per dashboard panel, got %d" % len(queries)
            for dash, title, raw in queries:
                try:
                    cur.execute(grafana_to_sql(raw))
                    cur.fetchall()
                except psycopg2.Error as e:
                    raise AssertionError("dashboard %s panel %r fails as cap_dashboard: %s\n%s"
                                         % (dash, title, e, raw))
    finally:
        conn.close()
    assert c.sql("SELECT count(*) FROM findings WHERE kind = 'x'") == [(0,)]


def main():
    src = harness.source_dir()
    with harness.Cluster(name="ops-views", start_redis=False) as c:
        c.capctl_ok("migrate")
        # Migrating again changes nothing and the role survives it.
        c.capctl_ok("migrate")
        assert c.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'cap_dashboard'") == \
            [(False,)]
        ids = insert_fixture(c)
        check_views(c, ids)
        check_comments(c)
        check_role(c, src)
    print("test_ops_views: ok")


if __name__ == "__main__":
    main()
