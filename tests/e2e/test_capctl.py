"""capctl against a real PostgreSQL: migrate (no-op when current, concurrent replicas, changed
checksums), source add/list/show/edit/enable/disable/delete for both types, every validation
error with its exit code and message, the database's own checks for rows written by plain SQL
(as the product UI does), trigger on save, manual triggers joining the active run, managed
certificates, runs, findings, endpoint history, inventory, and --json keys = schema columns."""

import json
import os
import subprocess
import sys

import harness

FP_A = "a" * 64
FP_B = "b" * 64


def check(cond, what, r=None):
    if not cond:
        extra = ""
        if r is not None:
            extra = "\nexit %s\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr)
        raise AssertionError(what + extra)


def expect_fail(c, args, code, message):
    """capctl ARGS must exit `code` and print `message` (a substring) on stderr, nothing on
    stdout."""
    r = c.capctl(*args)
    check(r.returncode == code, "capctl %s: want exit %d" % (" ".join(args), code), r)
    check(message in r.stderr, "capctl %s: want message %r" % (" ".join(args), message), r)
    check(r.stdout == "", "capctl %s: stdout should be empty" % " ".join(args), r)
    return r


def columns(c, table):
    return {r[0] for r in c.sql("SELECT column_name FROM information_schema.columns "
                                "WHERE table_name = %s", (table,))}


# ----------------------------------------------------------------------------- migrate

def test_migrate(c):
    r = c.capctl_ok("migrate")
    check("applied 001_core.sql" in r.stdout, "first migrate applies 001", r)
    r = c.capctl_ok("migrate")
    check(r.stdout.startswith("up to date"), "second migrate is a no-op", r)
    files = sorted(f for f in os.listdir(os.path.join(harness.source_dir(), "migrations"))
                   if f.endswith(".sql"))
    rows = c.sql("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    check([x[1] for x in rows] == files, "schema_migrations lists every file: %s vs %s"
          % (rows, files))
    check(all(len(x[2]) == 64 for x in rows), "checksums are SHA-256 hex: %s" % rows)
    check([x[0] for x in rows] == sorted(int(f.split("_")[0]) for f in files),
          "versions are the file numbers")

    status = c.capctl_json("migrate", "--status")
    check([s["name"] for s in status] == files, "status lists the files: %s" % status)
    check(all(s["status"] == "applied" for s in status), "all applied: %s" % status)
    check(set(status[0]) == {"version", "name", "status", "checksum", "applied_at"},
          "status keys: %s" % status[0])
    r = c.capctl_ok("migrate", "--status")
    check("001_core.sql" in r.stdout and "applied" in r.stdout, "status table", r)

    # An applied migration whose file changed: refused, nothing applied.
    good = rows[0][2]
    c.sql("UPDATE schema_migrations SET checksum = %s WHERE version = %s", ("0" * 64, rows[0][0]))
    r = c.capctl("migrate")
    check(r.returncode == 1, "changed checksum fails migrate", r)
    check("migration 001_core.sql was changed after it was applied" in r.stderr, "message", r)
    st = c.capctl_json("migrate", "--status")
    check(st[0]["status"] == "changed", "status shows changed: %s" % st[0])
    c.sql("UPDATE schema_migrations SET checksum = %s WHERE version = %s", (good, rows[0][0]))

    # A version this capctl does not know (a newer capctl ran): a warning, not a failure.
    c.sql("INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, "
          "'9999_future.sql', %s)", ("f" * 64,))
    r = c.capctl_ok("migrate")
    check("9999_future.sql" in r.stderr and "does not know" in r.stderr, "unknown warned", r)
    st = c.capctl_json("migrate", "--status")
    check(st[-1]["name"] == "9999_future.sql" and st[-1]["status"] == "unknown", str(st[-1]))
    c.sql("DELETE FROM schema_migrations WHERE version = 9999")

    # Several replicas migrating a fresh database at once: each migration applied once.
    c.sql("CREATE DATABASE fresh")
    url = c.pg_url.rsplit("/", 1)[0] + "/fresh"
    cfg = c.config_with({"database.url": url})
    argv = [harness.binary("ctl/capctl"), "--config", cfg, "migrate"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=c._env(None), cwd=c.tmpdir) for _ in range(4)]
    outs = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    for out, err, rc in outs:
        check(rc == 0, "concurrent migrate exit %d\n%s\n%s" % (rc, out, err))
    applied = sum(o.count("applied 001_core.sql") for o, _, _ in outs)
    check(applied == 1, "001 applied exactly once by 4 replicas: %s" % outs)
    check(sum(o.startswith("up to date") for o, _, _ in outs) == 3, "3 found it current: %s"
          % outs)
    r = c.capctl_ok("migrate", "--status", "--json", config_path=cfg)
    check(all(s["status"] == "applied" for s in json.loads(r.stdout)), r.stdout)

    # A migration that fails half-way leaves nothing behind (its own transaction) and says
    # where; once the cause is gone, migrate goes on.
    c.sql("CREATE DATABASE broken")
    url = c.pg_url.rsplit("/", 1)[0] + "/broken"
    cfg = c.config_with({"database.url": url})
    conn = harness.psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE TABLE endpoints (x int)")  # 001 creates it after many other objects
    r = c.capctl("migrate", config_path=cfg)
    check(r.returncode == 1, "a failing migration fails migrate", r)
    check("migration 001_core.sql failed: relation \"endpoints\" already exists "
          "(SQLSTATE 42P07)" in r.stderr, "names the file and the cause", r)
    cur.execute("SELECT to_regclass('discovery_sources'), to_regprocedure("
                "'cap_ports_valid(integer[])'), (SELECT count(*) FROM schema_migrations)")
    check(cur.fetchone() == (None, None, 0), "nothing of 001 remains after the failure")
    cur.execute("DROP TABLE endpoints")
    conn.close()
    r = c.capctl_ok("migrate", config_path=cfg)
    check("applied 001_core.sql" in r.stdout, "applies once the cause is gone", r)
    print("ok: migrate")


def test_migrate_sparse(c):
    """An installation at migration 007 with endpoints a CIDR sweep stored for addresses that
    never answered: 008 removes those (with their observations and findings) and keeps every
    endpoint that answered once, was listed alone, or is a host name."""
    import hashlib
    c.sql("CREATE DATABASE sparse")
    url = c.pg_url.rsplit("/", 1)[0] + "/sparse"
    conn = harness.psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    mdir = os.path.join(harness.source_dir(), "migrations")
    for f in sorted(os.listdir(mdir)):
        if not f.endswith(".sql") or int(f.split("_")[0]) >= 8:
            continue
        text = open(os.path.join(mdir, f), "rb").read()
        cur.execute("BEGIN")
        cur.execute(text.decode())
        cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (int(f.split("_")[0]), f, hashlib.sha256(text).hexdigest()))
        cur.execute("COMMIT")

    def one(q, params=None):
        cur.execute(q, params)
        return cur.fetchone()[0]

    sid = one("INSERT INTO discovery_sources (name, type, cidrs, hosts) VALUES ('sweep',"
              " 'network_scan', '{10.0.0.0/24,10.0.1.5/32,2001:db8::/120}', '{web.example}')"
              " RETURNING id")
    run1 = one("INSERT INTO discovery_runs (source_id, status) VALUES (%s, 'succeeded')"
               " RETURNING id", (sid,))
    run2 = one("INSERT INTO discovery_runs (source_id, status) VALUES (%s, 'partial')"
               " RETURNING id", (sid,))
    for fp in (FP_A, FP_B):
        cur.execute("INSERT INTO discovered_certificates (fingerprint_sha256, subject, issuer,"
                    " serial, key_algorithm, signature_algorithm, pqc_class, der) VALUES"
                    " (%s, 'CN=x', 'CN=ca', '01', 'RSA', 'sha256WithRSAEncryption',"
                    " 'transition', '\\x30')", (fp,))
    ids = {}

    def endpoint(name, addr, sni="", fp=None, outcomes=()):
        ids[name] = one("INSERT INTO endpoints (host, address, port, sni, source_id,"
                        " fingerprint_sha256) VALUES (%s, %s, 443, %s, %s, %s) RETURNING id",
                        (sni or addr, addr, sni, sid, fp))
        for run, outcome in zip((run1, run2), outcomes):
            cur.execute("INSERT INTO endpoint_observations (endpoint_id, run_id, outcome,"
                        " fingerprint_sha256) VALUES (%s, %s, %s, %s)",
                        (ids[name], run, outcome, FP_A if outcome == "ok" else None))
        cur.execute("INSERT INTO findings (kind, severity, subject_key, source_id, run_id,"
                    " endpoint_id) VALUES ('unreachable', 'low', %s, %s, %s, %s)",
                    ("endpoint:%d" % ids[name], sid, run2, ids[name]))

    endpoint("silent", "10.0.0.1", outcomes=("timeout", "timeout"))
    endpoint("closed", "10.0.0.2", outcomes=("refused",))
    endpoint("bare", "10.0.0.3")
    endpoint("v6", "2001:db8::9", outcomes=("timeout", "refused"))
    endpoint("answered", "10.0.0.4", fp=FP_A, outcomes=("ok", "timeout"))
    endpoint("tls", "10.0.0.5", outcomes=("timeout", "tls_error"))
    endpoint("policy", "10.0.0.7", outcomes=("policy_block",))
    endpoint("listed", "10.0.1.5", outcomes=("timeout", "timeout"))
    endpoint("name", "10.0.0.6", sni="web.example", outcomes=("timeout", "timeout"))
    endpoint("pruned", "10.0.0.8", fp=FP_B, outcomes=("timeout",))  # ok observations pruned
    cur.execute("INSERT INTO drift_events (endpoint_id, run_id, old_fingerprint_sha256,"
                " new_fingerprint_sha256, changed) VALUES (%s, %s, %s, %s, '{fingerprint}')",
                (ids["answered"], run2, FP_B, FP_A))
    # A finding that names a never-answered endpoint only by its subject, and one unrelated.
    cur.execute("INSERT INTO findings (kind, severity, subject_key, source_id) VALUES"
                " ('tls_error', 'low', %s, %s), ('expired', 'high', %s, %s)",
                ("endpoint:%d" % ids["silent"], sid, "cert:" + FP_A, sid))

    cfg = c.config_with({"database.url": url})
    r = c.capctl_ok("migrate", config_path=cfg)
    check("applied 008_sparse.sql" in r.stdout and "applied 007" not in r.stdout,
          "only 008 applied", r)
    gone = {"silent", "closed", "bare", "v6"}
    cur.execute("SELECT id FROM endpoints")
    present = {x[0] for x in cur.fetchall()}
    left = {n for n, i in ids.items() if i in present}
    check(left == set(ids) - gone, "endpoints kept: %s" % sorted(left))
    cur.execute("SELECT count(*) FROM endpoint_observations WHERE endpoint_id = ANY(%s)",
                ([ids[n] for n in gone],))
    check(cur.fetchone()[0] == 0, "their observations are gone")
    cur.execute("SELECT subject_key FROM findings ORDER BY id")
    subjects = [x[0] for x in cur.fetchall()]
    check(subjects == ["endpoint:%d" % ids[n] for n in ("answered", "tls", "policy", "listed",
                                                        "name", "pruned")] + ["cert:" + FP_A],
          "findings kept: %s" % subjects)
    cur.execute("SELECT count(*) FROM drift_events")
    check(cur.fetchone()[0] == 1, "drift kept")
    # The new column and view columns are there; a migration that deletes nothing is fine too.
    cur.execute("SELECT connect_rate, silent, closed, no_route FROM discovery_sources s"
                " JOIN cap_run_history h ON h.source_id = s.id WHERE h.run_id = %s", (run1,))
    check(cur.fetchone() == (None, 0, 0, 0), "connect_rate and run counts")
    conn.close()
    print("ok: migrate 008 over an existing installation")


def test_migrate_spec(c):
    """An installation at migration 008 with sources of both types written through the old
    columns: 009 gives each its spec (every field, the same values, nothing else moved), and
    the old columns stay a window onto spec for the UI and scripts that read or write them."""
    import hashlib
    import psycopg2
    c.sql("CREATE DATABASE spec8")
    url = c.pg_url.rsplit("/", 1)[0] + "/spec8"
    conn = harness.psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    mdir = os.path.join(harness.source_dir(), "migrations")
    for f in sorted(os.listdir(mdir)):
        if not f.endswith(".sql") or int(f.split("_")[0]) >= 9:
            continue
        text = open(os.path.join(mdir, f), "rb").read()
        cur.execute("BEGIN")
        cur.execute(text.decode())
        cur.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (int(f.split("_")[0]), f, hashlib.sha256(text).hexdigest()))
        cur.execute("COMMIT")

    def one(q, params=None):
        cur.execute(q, params)
        return cur.fetchone()[0]

    one("INSERT INTO discovery_sources (name, type, cidrs, hosts, ports, timeout_ms, concurrency,"
        " starttls, connect_rate, trigger_on_save) VALUES ('net', 'network_scan',"
        " '{10.0.0.0/24,10.0.1.5}', '{web.example}', '{443,2525}', 2000, 16, '{2525:smtp}', 250,"
        " true) RETURNING id")
    one("INSERT INTO discovery_sources (name, type, domains, log_urls, log_protocol, log_key,"
        " expected_issuers, backfill_from, schedule) VALUES ('ct', 'ct_log', '{example.com}',"
        " '{https://ct.example/log/}', 'rfc6962', 'PEM TEXT', '{\"O=Let''s Encrypt, C=US\"}', 7,"
        " 'every 30m') RETURNING id")
    one("INSERT INTO discovery_sources (name, type, hosts) VALUES ('plain', 'network_scan',"
        " '{a.example}') RETURNING id")
    cur.execute("UPDATE discovery_runs SET status = 'succeeded'")
    cur.execute("SELECT name, updated_at FROM discovery_sources ORDER BY name")
    before = dict(cur.fetchall())
    runs_before = one("SELECT count(*) FROM discovery_runs")

    cfg = c.config_with({"database.url": url})
    r = c.capctl_ok("migrate", config_path=cfg)
    check("applied 009_source_spec.sql" in r.stdout and "applied 008" not in r.stdout,
          "009 applied", r)
    cur.execute("SELECT name, spec, updated_at FROM discovery_sources ORDER BY name")
    got = {n: (s, u) for n, s, u in cur.fetchall()}
    check(got["net"][0] == {"cidrs": ["10.0.0.0/24", "10.0.1.5/32"], "hosts": ["web.example"],
                            "ports": [443, 2525], "starttls": ["2525:smtp"], "timeout_ms": 2000,
                            "concurrency": 16, "connect_rate": 250}, got["net"])
    check(got["ct"][0] == {"domains": ["example.com"], "log_urls": ["https://ct.example/log/"],
                           "log_protocol": "rfc6962", "log_key": "PEM TEXT",
                           "expected_issuers": ["O=Let's Encrypt, C=US"], "backfill_from": 7},
          got["ct"])
    check(got["plain"][0] == {"cidrs": [], "hosts": ["a.example"], "ports": [], "starttls": [],
                              "timeout_ms": 5000, "concurrency": 8, "connect_rate": None},
          "defaults filled in: %s" % (got["plain"],))
    check(all(got[n][1] == before[n] for n in before), "updated_at unchanged by the migration")
    check(one("SELECT count(*) FROM discovery_runs") == runs_before,
          "the migration queued no run (trigger on save)")

    # The old columns, read and written as before: a write through them lands in spec...
    cur.execute("UPDATE discovery_sources SET ports = '{8443}', concurrency = 4 WHERE name = 'net'")
    check(one("SELECT spec FROM discovery_sources WHERE name = 'net'")["ports"] == [8443],
          "a column write reaches spec")
    check(one("SELECT spec->>'concurrency' FROM discovery_sources WHERE name = 'net'") == "4", "")
    check(one("SELECT count(*) FROM discovery_runs WHERE status = 'queued'") == 1,
          "a column write is a change of the source (trigger on save)")
    # ...a write of spec shows in the columns...
    cur.execute("UPDATE discovery_sources SET spec = spec || '{\"timeout_ms\": 900}'"
                " WHERE name = 'net'")
    cur.execute("SELECT timeout_ms, ports, cidrs::text[] FROM discovery_sources"
                " WHERE name = 'net'")
    check(cur.fetchone() == (900, [8443], ["10.0.0.0/24", "10.0.1.5/32"]), "columns from spec")
    cur.execute("INSERT INTO discovery_sources (name, type, spec) VALUES ('new', 'ct_log',"
                " '{\"domains\": [\"example.org\"], \"backfill_from\": 3}')")
    cur.execute("SELECT domains, backfill_from, log_protocol FROM discovery_sources"
                " WHERE name = 'new'")
    check(cur.fetchone() == (["example.org"], 3, "auto"), "an insert with spec")
    # ...and a write of both at once, or of a spec the type does not have, is refused.
    for q, msg in (("UPDATE discovery_sources SET spec = spec || '{\"timeout_ms\": 800}',"
                    " concurrency = 2 WHERE name = 'net'", "not both"),
                   ("INSERT INTO discovery_sources (name, type, hosts, spec) VALUES ('both',"
                    " 'network_scan', '{b.example}', '{\"hosts\": [\"c.example\"]}')", "not both"),
                   ("INSERT INTO discovery_sources (name, type, spec) VALUES ('odd',"
                    " 'network_scan', '{\"hosts\": [\"x\"], \"domains\": [\"x\"]}')",
                    'a network_scan source has no field "domains"'),
                   ("INSERT INTO discovery_sources (name, type, spec) VALUES ('smtp', 'smtp',"
                    " '{}')", 'source "smtp": unknown type "smtp"'),
                   ("INSERT INTO discovery_sources (name, type, spec) VALUES ('neg', 'ct_log',"
                    " '{\"domains\": [\"a.example\"], \"backfill_from\": -1}')",
                    'spec field "backfill_from": -1 is not an integer 0-9223372036854775807'),
                   ("INSERT INTO discovery_sources (name, type, spec) VALUES ('tls', 'network_scan',"
                    " '{\"hosts\": [\"x\"], \"starttls\": [\"25:ftp\"]}')", '"25:ftp"')):
        try:
            cur.execute(q)
            raise AssertionError("the database accepted: %s" % q)
        except psycopg2.Error as e:
            check(e.pgcode == "23514" and msg in str(e), "%s: %s %s" % (q, e.pgcode, e))
    # capctl edits a migrated row as any other.
    c.capctl_ok("source", "edit", "ct", "--add-domain", "example.net", config_path=cfg)
    check(one("SELECT spec->'domains' FROM discovery_sources WHERE name = 'ct'") ==
          ["example.com", "example.net"], "capctl edit of a migrated row")
    conn.close()
    print("ok: migrate 009 over an existing installation")


# ----------------------------------------------------------------------------- sources

def test_sources(c):
    r = c.capctl_ok("source", "add", "lab", "--type", "network_scan",
                    "--cidr", "127.0.0.0/30,169.0.0.0/8", "--cidr", "2001:db8::/64",
                    "--host", "Web.Example.", "--port", "443", "--port", "8443,9443",
                    "--timeout", "2s", "--concurrency", "16", "--schedule", "daily 03:00 UTC")
    check('source "lab" added' in r.stdout, "add prints", r)
    row = c.sql_dicts("SELECT * FROM discovery_sources WHERE name = 'lab'")[0]
    check(row["type"] == "network_scan" and row["enabled"] and not row["trigger_on_save"], row)
    check(row["cidrs"] == "{127.0.0.0/30,169.0.0.0/8,2001:db8::/64}" or
          row["cidrs"] == ["127.0.0.0/30", "169.0.0.0/8", "2001:db8::/64"], row["cidrs"])
    check(row["hosts"] == ["web.example"], row["hosts"])
    check(row["ports"] == [443, 8443, 9443], row["ports"])
    check(row["timeout_ms"] == 2000 and row["concurrency"] == 16, row)
    check(row["schedule"] == "daily 03:00 UTC", row)
    check(c.sql("SELECT count(*) FROM discovery_runs")[0][0] == 0, "no run without a trigger")

    key = os.path.join(c.tmpdir, "log.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", key + ".priv"], check=True,
                   capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", key + ".priv", "-pubout", "-out", key], check=True,
                   capture_output=True)
    r = c.capctl_ok("source", "add", "ct", "--type", "ct_log", "--domain", "Example.COM.,example.org",
                    "--log", "https://ct.example/2026h1/", "--log-protocol", "rfc6962",
                    "--log-key", key, "--expected-issuer", "O=Let's Encrypt, C=US",
                    "--poll", "30m", "--backfill-from", "1000")
    row = c.sql_dicts("SELECT * FROM discovery_sources WHERE name = 'ct'")[0]
    check(row["domains"] == ["example.com", "example.org"], row["domains"])
    check(row["log_urls"] == ["https://ct.example/2026h1/"], row)
    check(row["expected_issuers"] == ["O=Let's Encrypt, C=US"], row)
    check(row["schedule"] == "every 30m" and row["backfill_from"] == 1000, row)
    check(row["log_protocol"] == "rfc6962", row)
    check(row["log_key"] == open(key).read(), "log key stored as PEM: %r" % row["log_key"])
    c.capctl_ok("source", "add", "ct2", "--type", "ct_log", "--domain", "example.net")
    row = c.sql_dicts("SELECT * FROM discovery_sources WHERE name = 'ct2'")[0]
    check(row["schedule"] == "every 1h" and row["log_urls"] == [], "ct_log defaults: %s" % row)

    # list and show, as text and JSON.
    r = c.capctl_ok("source", "list")
    lines = r.stdout.splitlines()
    check(lines[0].split()[:3] == ["name", "type", "enabled"], "list header", r)
    check([ln.split()[0] for ln in lines[1:]] == ["ct", "ct2", "lab"], "list rows", r)
    listed = c.capctl_json("source", "list")
    check(set(listed[0]) == columns(c, "discovery_sources"),
          "source list --json keys are the schema's: %s" % sorted(listed[0]))
    lab = [s for s in listed if s["name"] == "lab"][0]
    check(lab["ports"] == [443, 8443, 9443] and lab["enabled"] is True, lab)
    check(lab["cidrs"] == ["127.0.0.0/30", "169.0.0.0/8", "2001:db8::/64"], lab)
    shown = c.capctl_json("source", "show", "ct")
    check(len(shown) == 1 and shown[0]["name"] == "ct" and shown[0]["backfill_from"] == 1000,
          str(shown))
    r = c.capctl_ok("source", "show", "lab")
    check("daily 03:00 UTC" in r.stdout and "recent runs:" in r.stdout, "show text", r)
    # a U-label domain is stored in its A-label form, the form certificates carry
    c.capctl_ok("source", "add", "idn", "--type", "ct_log", "--domain", "B\u00fccher.example")
    shown = c.capctl_json("source", "show", "idn")
    check(shown[0]["domains"] == ["xn--bcher-kva.example"], "U-label stored as A-label: %s"
          % shown)
    c.capctl_ok("source", "delete", "idn")
    # Configuration warnings (an unknown CERTAUTOPILOT_* variable) never mix with the JSON.
    r = c.capctl("source", "list", "--json", extra_env={"CERTAUTOPILOT_NO_SUCH_KEY": "1"})
    check(r.returncode == 0 and [s["name"] for s in json.loads(r.stdout)] == ["ct", "ct2", "lab"],
          "JSON on stdout only", r)
    check("CERTAUTOPILOT_NO_SUCH_KEY" in r.stderr, "the warning is on stderr", r)
    # --json before the command works too.
    r = c.capctl_ok("--json", "source", "show", "lab")
    check(json.loads(r.stdout)[0]["name"] == "lab", r.stdout)

    # edit: replace, add, remove; other fields untouched.
    c.capctl_ok("source", "edit", "lab", "--add-cidr", "10.9.0.0/16",
                "--remove-cidr", "169.0.0.0/8", "--port", "8443", "--concurrency", "32")
    row = c.sql_dicts("SELECT * FROM discovery_sources WHERE name = 'lab'")[0]
    check(row["ports"] == [8443] and row["concurrency"] == 32 and row["timeout_ms"] == 2000, row)
    got = c.sql("SELECT cidrs::text[] FROM discovery_sources WHERE name = 'lab'")[0][0]
    check(got == ["127.0.0.0/30", "2001:db8::/64", "10.9.0.0/16"], got)
    check(row["hosts"] == ["web.example"], row)
    c.capctl_ok("source", "edit", "ct", "--add-domain", "example.info", "--no-log-key",
                "--no-backfill", "--schedule", "hourly")
    row = c.sql_dicts("SELECT * FROM discovery_sources WHERE name = 'ct'")[0]
    check(row["domains"] == ["example.com", "example.org", "example.info"], row)
    check(row["log_key"] is None and row["backfill_from"] is None, row)
    check(row["schedule"] == "hourly", row)
    expect_fail(c, ["source", "edit", "lab", "--remove-host", "other.example"], 1,
                'capctl: --remove-host "other.example": source "lab" has no such entry')
    expect_fail(c, ["source", "edit", "lab", "--remove-cidr",
                    "127.0.0.0/30,2001:db8::/64,10.9.0.0/16", "--remove-host", "web.example"], 1,
                'source "lab": a network_scan source needs at least one --cidr or --host')
    expect_fail(c, ["source", "edit", "ct", "--cidr", "10.0.0.0/8"], 2,
                "--cidr applies to network_scan sources, not ct_log")
    expect_fail(c, ["source", "edit", "ct", "--type", "network_scan"], 2,
                "its type cannot change")
    expect_fail(c, ["source", "edit", "nosuch", "--concurrency", "3"], 1,
                'source "nosuch" does not exist')
    # STARTTLS per port: add, show, edit (replace, add, remove), refused values.
    c.capctl_ok("source", "add", "mail", "--type", "network_scan", "--host", "mx.example",
                "--port", "25,2525", "--starttls", "2525:SMTP,00025:none", "--starttls",
                "143:imap")
    got = c.sql("SELECT starttls FROM discovery_sources WHERE name = 'mail'")[0][0]
    check(got == ["2525:smtp", "25:none", "143:imap"], "starttls stored normalised: %r" % got)
    r = c.capctl_ok("source", "show", "mail")
    check("2525:smtp" in r.stdout and "25:none" in r.stdout and "143:imap" in r.stdout,
          "show prints starttls", r)
    shown = c.capctl_json("source", "show", "mail")
    check(shown[0]["starttls"] == ["2525:smtp", "25:none", "143:imap"], str(shown))
    c.capctl_ok("source", "edit", "mail", "--add-starttls", "25:smtp,587:smtp",
                "--remove-starttls", "143:imap")
    got = c.sql("SELECT starttls FROM discovery_sources WHERE name = 'mail'")[0][0]
    check(got == ["2525:smtp", "25:smtp", "587:smtp"], "add replaces the port's entry: %r" % got)
    c.capctl_ok("source", "edit", "mail", "--starttls", "5433:postgres")
    got = c.sql("SELECT starttls FROM discovery_sources WHERE name = 'mail'")[0][0]
    check(got == ["5433:postgres"], "--starttls replaces the list: %r" % got)
    expect_fail(c, ["source", "edit", "mail", "--add-starttls", "25:ftp"], 1,
                'capctl: --add-starttls "25:ftp": protocol must be smtp, imap, pop3, ldap, '
                'postgres or none')
    expect_fail(c, ["source", "edit", "mail", "--starttls", "25:smtp,25:none"], 1,
                'capctl: --starttls "25:none": port already given as "25:smtp"')
    expect_fail(c, ["source", "edit", "mail", "--remove-starttls", "25:smtp"], 1,
                'capctl: --remove-starttls "25:smtp": source "mail" has no such entry')
    expect_fail(c, ["source", "edit", "ct", "--starttls", "25:smtp"], 2,
                "--starttls applies to network_scan sources, not ct_log")
    got = c.sql("SELECT starttls FROM discovery_sources WHERE name = 'mail'")[0][0]
    check(got == ["5433:postgres"], "refused edits change nothing: %r" % got)
    c.capctl_ok("source", "delete", "mail")

    # Connect rate: a network_scan source may lower the worker's; NULL (JSON null) when unset.
    c.capctl_ok("source", "add", "slow", "--type", "network_scan", "--cidr", "10.20.0.0/16",
                "--connect-rate", "250")
    check(c.sql("SELECT connect_rate FROM discovery_sources WHERE name = 'slow'")[0][0] == 250,
          "connect_rate stored")
    shown = c.capctl_json("source", "show", "slow")
    check(shown[0]["connect_rate"] == 250, "show --json connect_rate: %s" % shown)
    r = c.capctl_ok("source", "show", "slow")
    check(any(ln.split() == ["connect_rate", "250"] for ln in r.stdout.splitlines()),
          "show prints connect_rate", r)
    shown = c.capctl_json("source", "show", "lab")
    check("connect_rate" in shown[0] and shown[0]["connect_rate"] is None,
          "connect_rate is null when unset: %s" % shown)
    r = c.capctl_ok("source", "show", "lab")
    check(any(ln.split() == ["connect_rate", "-"] for ln in r.stdout.splitlines()),
          "show prints an unset connect_rate as -", r)
    c.capctl_ok("source", "edit", "slow", "--connect-rate", "1000000", "--concurrency", "4")
    row = c.sql_dicts("SELECT * FROM discovery_sources WHERE name = 'slow'")[0]
    check(row["connect_rate"] == 1000000 and row["concurrency"] == 4, row)
    c.capctl_ok("source", "edit", "slow", "--concurrency", "5")
    check(c.sql("SELECT connect_rate FROM discovery_sources WHERE name = 'slow'")[0][0] ==
          1000000, "an edit of something else keeps the connect rate")
    before_edit = c.sql("SELECT updated_at FROM discovery_sources WHERE name = 'slow'")[0][0]
    c.capctl_ok("source", "edit", "slow", "--no-connect-rate")
    row = c.sql_dicts("SELECT * FROM discovery_sources WHERE name = 'slow'")[0]
    check(row["connect_rate"] is None, "--no-connect-rate clears it: %s" % row)
    check(row["updated_at"] > before_edit, "a connect rate change moves updated_at: %s" % row)
    check(c.capctl_json("source", "show", "slow")[0]["connect_rate"] is None, "null again")
    expect_fail(c, ["source", "edit", "slow", "--connect-rate", "0"], 1,
                'capctl: --connect-rate "0": must be 1-1000000 connects per second')
    expect_fail(c, ["source", "edit", "slow", "--connect-rate", "1000001"], 1,
                'capctl: --connect-rate "1000001": must be 1-1000000 connects per second')
    expect_fail(c, ["source", "edit", "slow", "--connect-rate", "fast"], 1,
                'capctl: --connect-rate "fast": must be 1-1000000 connects per second')
    expect_fail(c, ["source", "edit", "slow", "--connect-rate", "5", "--no-connect-rate"], 2,
                "--connect-rate and --no-connect-rate contradict each other")
    expect_fail(c, ["source", "edit", "ct", "--connect-rate", "5"], 2,
                "--connect-rate applies to network_scan sources, not ct_log")
    expect_fail(c, ["source", "edit", "ct", "--no-connect-rate"], 2,
                "--no-connect-rate applies to network_scan sources, not ct_log")
    expect_fail(c, ["source", "add", "slow2", "--type", "network_scan", "--cidr", "10.0.0.0/8",
                    "--no-connect-rate"], 2, 'unknown option "--no-connect-rate"')
    check(c.sql("SELECT connect_rate FROM discovery_sources WHERE name = 'slow'")[0][0] is None,
          "refused edits change nothing")
    c.capctl_ok("source", "delete", "slow")

    c.capctl_ok("source", "edit", "ct2", "--rename", "ct-renamed")
    check(c.sql("SELECT count(*) FROM discovery_sources WHERE name = 'ct-renamed'")[0][0] == 1,
          "rename")

    # enable / disable / delete.
    r = c.capctl_ok("source", "disable", "lab")
    check('source "lab" disabled' in r.stdout, "disable", r)
    check(c.sql("SELECT enabled FROM discovery_sources WHERE name = 'lab'")[0][0] is False, "")
    c.capctl_ok("source", "enable", "lab")
    check(c.sql("SELECT enabled FROM discovery_sources WHERE name = 'lab'")[0][0] is True, "")
    c.capctl_ok("source", "add", "gone", "--type", "network_scan", "--host", "x.example",
                "--disabled")
    check(c.sql("SELECT enabled FROM discovery_sources WHERE name = 'gone'")[0][0] is False,
          "--disabled")
    c.capctl_ok("source", "delete", "gone")
    check(c.sql("SELECT count(*) FROM discovery_sources WHERE name = 'gone'")[0][0] == 0, "")
    expect_fail(c, ["source", "delete", "gone"], 1, 'source "gone" does not exist')
    expect_fail(c, ["source", "enable", "gone"], 1, 'source "gone" does not exist')
    expect_fail(c, ["source", "show", "gone"], 1, 'source "gone" does not exist')
    print("ok: sources")


# ----------------------------------------------------------------------------- validation

def test_validation(c):
    before = c.sql("SELECT count(*) FROM discovery_sources")[0][0]
    net = ["source", "add", "bad", "--type", "network_scan"]
    ct = ["source", "add", "bad", "--type", "ct_log", "--domain", "example.com"]
    cases = [
        (net + ["--cidr", "10.0.0.300/24"], 1,
         'capctl: --cidr "10.0.0.300/24": not an IPv4 or IPv6 address or range'),
        (net + ["--cidr", "10.0.0.1/8"], 1,
         'capctl: --cidr "10.0.0.1/8": host bits are set; the network is 10.0.0.0/8'),
        (net + ["--cidr", "10.0.0.0/40"], 1,
         'capctl: --cidr "10.0.0.0/40": prefix length must be 0-32 for IPv4'),
        (net + ["--cidr", "169.254.169.254/32"], 1,
         'capctl: --cidr "169.254.169.254/32": lies wholly inside link-local (169.254.0.0/16), '
         'which the network policy always refuses'),
        (net + ["--cidr", "10.0.0.0/8,169.254.0.0/16"], 1,
         'capctl: --cidr "169.254.0.0/16": lies wholly inside link-local (169.254.0.0/16), '
         'which the network policy always refuses'),
        (net + ["--cidr", "fe80::/64"], 1,
         'capctl: --cidr "fe80::/64": lies wholly inside IPv6 link-local (fe80::/10), which the '
         'network policy always refuses'),
        (net + ["--cidr", "224.0.0.0/8"], 1, "lies wholly inside multicast (224.0.0.0/4)"),
        (net + ["--cidr", "fd00:ec2::254"], 1, "cloud metadata (AWS fd00:ec2::254)"),
        (net + ["--host", "mx.example", "--starttls", "70000:smtp"], 1,
         'capctl: --starttls "70000:smtp": port must be 1-65535'),
        (net + ["--host", "mx.example", "--starttls", "25"], 1,
         'capctl: --starttls "25": expected PORT:PROTOCOL, e.g. 2525:smtp'),
        (net + ["--cidr", "10.0.0.0/8,,10.1.0.0/16"], 1,
         'capctl: --cidr "10.0.0.0/8,,10.1.0.0/16": empty item in comma-separated list'),
        (net + ["--cidr", "10.0.0.0/8", "--port", "0"], 1, 'capctl: --port "0": must be 1-65535'),
        (net + ["--cidr", "10.0.0.0/8", "--port", "70000"], 1,
         'capctl: --port "70000": must be 1-65535'),
        (net + ["--cidr", "10.0.0.0/8", "--port", "443,70000"], 1,
         'capctl: --port "70000": must be 1-65535'),
        (net + ["--cidr", "10.0.0.0/8", "--timeout", "50ms"], 1,
         'capctl: --timeout "50ms": must be between 100ms and 10m'),
        (net + ["--cidr", "10.0.0.0/8", "--timeout", "11m"], 1,
         'capctl: --timeout "11m": must be between 100ms and 10m'),
        (net + ["--cidr", "10.0.0.0/8", "--concurrency", "0"], 1,
         'capctl: --concurrency "0": must be an integer 1-100000'),
        (net + ["--cidr", "10.0.0.0/8", "--concurrency", "100001"], 1,
         'capctl: --concurrency "100001": must be an integer 1-100000'),
        (net + ["--cidr", "10.0.0.0/8", "--schedule", "daily 25:00"], 1,
         'capctl: --schedule: schedule "daily 25:00": hour 25 out of range 0-23'),
        (net + ["--cidr", "10.0.0.0/8", "--schedule", "whenever"], 1,
         'capctl: --schedule: schedule "whenever"'),
        (net + ["--host", "a_b.example"], 1,
         'capctl: --host "a_b.example": invalid character \'_\''),
        (net + ["--host", "10.1.2.3"], 1,
         'capctl: --host "10.1.2.3": an IP address, not a host name; list addresses with --cidr'),
        (net + ["--host", "-x.example"], 1, 'label "-x" starts or ends with a hyphen'),
        (ct[:5] + ["--domain", "a\u2665.example"], 1,
         'capctl: --domain "a\\xe2\\x99\\xa5.example": not a valid internationalised name '
         '(string contains a disallowed character)'),
        (ct[:5] + ["--domain", "*.example.com"], 1,
         'give the suffix alone ("example.com")'),
        (ct + ["--log", "ftp://ct.example/"], 1,
         'capctl: --log "ftp://ct.example/": only http:// and https:// URLs are allowed'),
        (ct + ["--log", "http://169.254.169.254/"], 1,
         'the host lies inside link-local (169.254.0.0/16)'),
        (ct + ["--log-protocol", "grpc"], 1,
         'capctl: --log-protocol "grpc": must be auto, rfc6962 or static-ct'),
        (ct + ["--log-key", "/nonexistent/key.pem"], 1,
         'capctl: --log-key "/nonexistent/key.pem": cannot open: No such file or directory'),
        (ct + ["--log-key", os.path.join(harness.source_dir(), "CMakeLists.txt")], 1,
         'not a PEM public key'),
        (ct + ["--backfill-from", "-5"], 1, 'capctl: --backfill-from "-5": must be an integer'),
        (ct + ["--poll", "5s"], 1, 'capctl: --poll: schedule "every 5s"'),
        (ct + ["--poll", "soon"], 1, 'capctl: --poll "soon": not a duration'),
        (["source", "add", "bad name", "--type", "network_scan", "--cidr", "10.0.0.0/8"], 1,
         'capctl: source name "bad name": use 1-128 letters'),
        (["source", "add", "lab", "--type", "network_scan", "--cidr", "10.0.0.0/8"], 1,
         'capctl: source "lab" already exists'),
        # Usage errors: exit 2 with the synopsis of the subcommand.
        (["source", "add", "bad", "--cidr", "10.0.0.0/8"], 2, "--type network_scan or --type "
                                                               "ct_log is required"),
        (["source", "add", "bad", "--type", "smtp"], 2,
         '--type "smtp": must be network_scan or ct_log'),
        (net, 2, "a network_scan source needs --cidr or --host"),
        (["source", "add", "bad", "--type", "ct_log"], 2, "a ct_log source needs --domain"),
        (net + ["--cidr", "10.0.0.0/8", "--domain", "example.com"], 2,
         "--domain applies to ct_log sources, not network_scan"),
        (ct + ["--port", "443"], 2, "--port applies to network_scan sources, not ct_log"),
        (ct + ["--connect-rate", "100"], 2,
         "--connect-rate applies to network_scan sources, not ct_log"),
        (net + ["--cidr", "10.0.0.0/8", "--connect-rate", "0"], 1,
         'capctl: --connect-rate "0": must be 1-1000000 connects per second'),
        (net + ["--cidr", "10.0.0.0/8", "--connect-rate", "-1"], 1,
         'capctl: --connect-rate "-1": must be 1-1000000 connects per second'),
        (ct + ["--poll", "1h", "--schedule", "hourly"], 2,
         "--poll and --schedule contradict each other"),
        (net + ["--cidr"], 2, "option --cidr needs a value"),
        (net + ["--cidr", "10.0.0.0/8", "--bogus"], 2, 'unknown option "--bogus"'),
        (["source", "add"], 2, "usage: capctl source add NAME"),
        (["source", "frobnicate"], 2, 'source: unknown subcommand "frobnicate"'),
        (["frobnicate"], 2, 'unknown command "frobnicate"'),
        ([], 2, "no command given"),
        (["runs", "show", "x"], 1, 'capctl: run ID "x": must be an integer'),
        (["runs", "show", "424242"], 1, "capctl: run 424242 does not exist"),
        (["runs", "list", "--source", "nosuch"], 1, 'capctl: source "nosuch" does not exist'),
        (["managed", "add", "xyz"], 1,
         'capctl: fingerprint "xyz": expected a SHA-256 fingerprint, 64 hex digits'),
        (["endpoints", "history", "web.example"], 1,
         'capctl: endpoint "web.example": expected HOST:PORT or [IPv6]:PORT'),
        (["inventory", "--expiring", "soon"], 1, 'capctl: --expiring "soon": must be an integer'),
        (["source", "trigger", "lab", "--timeout", "5s"], 2, "--timeout only goes with --wait"),
    ]
    for args, code, msg in cases:
        r = expect_fail(c, args, code, msg)
        if code == 2:
            check("usage: capctl" in r.stderr, "usage error prints a synopsis", r)
        else:
            check("usage:" not in r.stderr, "a value error prints no synopsis", r)
    # --help answers on stdout with exit 0, wherever it stands.
    for args, want in ((["source", "add", "--help"], "usage: capctl source add NAME"),
                       (["source", "trigger", "lab", "--help"], "usage: capctl source trigger"),
                       (["--help"], "usage: capctl [--config FILE] [--json] COMMAND"),
                       (["source", "--help"], "capctl source edit NAME")):
        r = c.capctl(*args)
        check(r.returncode == 0 and want in r.stdout, "capctl %s" % " ".join(args), r)
    after = c.sql("SELECT count(*) FROM discovery_sources")[0][0]
    check(before == after, "refused commands wrote nothing (%d -> %d sources)" % (before, after))

    # Only overlapping a refused block is fine: saved.
    c.capctl_ok("source", "add", "overlap", "--type", "network_scan", "--cidr", "169.0.0.0/8")
    # A range this configuration's network.deny (or loopback switch) refuses whole is saved with
    # a warning: the workers' configuration decides.
    cfg = c.config_with({"network.deny": ["10.9.0.0/16"], "network.allow_loopback": False})
    r = c.capctl("source", "add", "denied", "--type", "network_scan",
                 "--cidr", "10.9.1.0/24,127.0.0.0/30,10.8.0.0/16", config_path=cfg)
    check(r.returncode == 0, "saved despite network.deny", r)
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("capctl: warning:")]
    check(len(warnings) == 2 and "cidr 10.9.1.0/24 lies wholly inside" in warnings[0]
          and "127.0.0.0/30" in warnings[1] and "allow_loopback" in warnings[1],
          "one warning per refused range", r)
    c.capctl_ok("source", "delete", "denied")
    # An unreachable database is a clear failure.
    cfg = c.config_with({"database.url": "postgresql://postgres@127.0.0.1:%d/x"
                         % harness.free_port()})
    r = c.capctl("source", "list", config_path=cfg)
    check(r.returncode == 1 and "capctl: connecting to PostgreSQL" in r.stderr, "no database", r)
    print("ok: validation (%d cases)" % len(cases))


# ----------------------------------------------------------------------------- database checks

def test_database_checks(c):
    import psycopg2
    for cidr, reason in (("169.254.0.0/16", "link-local (169.254.0.0/16)"),
                         ("169.254.169.254/32", "link-local (169.254.0.0/16)"),
                         ("fe80::/64", "IPv6 link-local (fe80::/10)")):
        try:
            c.add_source_sql("ui-bad", cidrs=[cidr])
            raise AssertionError("the database accepted %s" % cidr)
        except psycopg2.Error as e:
            check(e.pgcode == "23514", "check_violation for %s: %s" % (cidr, e.pgcode))
            check("lies wholly inside %s" % reason in str(e), "database reason: %s" % e)
    c.add_source_sql("ui-overlap", cidrs=["169.0.0.0/8"])
    # capctl and the database judge every range alike.
    probes = ["169.254.0.0/16", "169.254.169.254/32", "169.254.0.0/15", "169.0.0.0/8",
              "fe80::/10", "fe80::/64", "fe80::/9", "0.0.0.0/8", "0.0.0.0/0", "1.0.0.0/8",
              "224.0.0.0/4", "239.255.0.0/16", "240.0.0.0/4", "255.255.255.255/32",
              "255.255.255.254/31", "ff00::/8", "ff02::1/128", "fe00::/8",
              "100.100.100.200/32", "100.100.100.0/24", "fd00:ec2::254/128", "fd00:ec2::/64",
              "192.0.0.192/32", "192.0.0.0/24", "::/128", "::/0", "::1/128", "10.0.0.0/8"]
    for i, cidr in enumerate(probes):
        db = c.sql("SELECT cap_cidrs_refused_reason(ARRAY[%s::cidr])", (cidr,))[0][0]
        r = c.capctl("source", "add", "probe%d" % i, "--type", "network_scan", "--cidr", cidr)
        check((r.returncode == 1) == (db is not None),
              "capctl and the database disagree on %s (database: %r)" % (cidr, db), r)
        if db is not None:
            # Same reason: the database says "cidr X lies wholly inside R, ...".
            check(db.split(" ", 2)[2] in r.stderr, "same reason for %s: %r" % (cidr, db), r)
        else:
            c.capctl_ok("source", "delete", "probe%d" % i)
    for bad in ({"ports": [70000]}, {"concurrency": 0}, {"timeout_ms": 50}, {"connect_rate": 0},
                {"connect_rate": 1000001}):
        try:
            c.add_source_sql("ui-bad2", **bad)
            raise AssertionError("the database accepted %s" % bad)
        except psycopg2.Error as e:
            check(e.pgcode == "23514", "check violation for %s" % bad)
    try:
        c.add_source_sql("ui-bad3", cidrs=[], hosts=[])
        raise AssertionError("the database accepted a network_scan without targets")
    except psycopg2.Error as e:
        check("network_scan_has_targets" in str(e), str(e))
    # capctl edit of a row the UI wrote goes through the same checks.
    expect_fail(c, ["source", "edit", "ui-overlap", "--cidr", "169.254.0.0/16"], 1,
                "lies wholly inside link-local (169.254.0.0/16)")
    print("ok: database checks")


# ----------------------------------------------------------------------------- triggers

def test_triggers(c):
    # Trigger on save from plain SQL (the UI path) queues a run.
    sid = c.add_source_sql("ui-save", trigger_on_save=True)
    rows = c.sql("SELECT id, trigger, status FROM discovery_runs WHERE source_id = %s", (sid,))
    check(len(rows) == 1 and rows[0][1:] == ("save", "queued"), "SQL insert queued: %s" % rows)

    # Trigger on save through capctl, and capctl says so.
    r = c.capctl_ok("source", "add", "tos", "--type", "network_scan", "--cidr", "127.0.0.1/32",
                    "--trigger-on-save")
    sid = c.sql("SELECT id FROM discovery_sources WHERE name = 'tos'")[0][0]
    runs = c.sql("SELECT id, trigger FROM discovery_runs WHERE source_id = %s", (sid,))
    check(len(runs) == 1 and runs[0][1] == "save", "capctl add queued a save run: %s" % runs)
    check("run %d queued" % runs[0][0] in r.stdout and "trigger on save" in r.stdout, "says", r)
    # Saving again while that run is active joins it: still one run.
    c.capctl_ok("source", "edit", "tos", "--concurrency", "9")
    check(c.sql("SELECT count(*) FROM discovery_runs WHERE source_id = %s", (sid,))[0][0] == 1,
          "one active run per source")
    c.sql("UPDATE discovery_runs SET status = 'succeeded', finished_at = now() WHERE source_id "
          "= %s", (sid,))
    c.capctl_ok("source", "edit", "tos", "--concurrency", "10")
    check(c.sql("SELECT count(*) FROM discovery_runs WHERE source_id = %s AND status = "
                "'queued'", (sid,))[0][0] == 1, "a change after the run ended queues another")

    # Manual trigger: a new run, then the same run again while it is active.
    r = c.capctl_ok("source", "add", "man", "--type", "network_scan", "--cidr", "127.0.0.1/32",
                    "--trigger")
    sid = c.sql("SELECT id FROM discovery_sources WHERE name = 'man'")[0][0]
    runs = c.sql("SELECT id, trigger, status FROM discovery_runs WHERE source_id = %s", (sid,))
    check(len(runs) == 1 and runs[0][1:] == ("manual", "queued"), "add --trigger: %s" % runs)
    run_id = runs[0][0]
    check("run %d queued" % run_id in r.stdout, "add --trigger prints the run", r)
    r = c.capctl_ok("source", "trigger", "man")
    check("already has run %d (queued)" % run_id in r.stdout, "trigger joins the active run", r)
    check(c.sql("SELECT count(*) FROM discovery_runs WHERE source_id = %s", (sid,))[0][0] == 1,
          "no second run")
    got = c.capctl_json("source", "trigger", "man")
    check(len(got) == 1 and got[0]["id"] == run_id and got[0]["source_name"] == "man", str(got))
    c.sql("UPDATE discovery_runs SET status = 'failed', error = 'boom', finished_at = now() "
          "WHERE id = %s", (run_id,))
    r = c.capctl_ok("source", "trigger", "man")
    new_id = c.sql("SELECT max(id) FROM discovery_runs WHERE source_id = %s", (sid,))[0][0]
    check(new_id != run_id and "run %d queued" % new_id in r.stdout, "a new run", r)
    expect_fail(c, ["source", "trigger", "nosuch"], 1, 'source "nosuch" does not exist')

    # runs list / show.
    r = c.capctl_ok("runs", "list", "--source", "man")
    lines = r.stdout.splitlines()
    check(len(lines) == 3 and lines[1].split()[0] == str(new_id), "newest first", r)
    check("boom" in lines[2], "error column", r)
    runs = c.capctl_json("runs", "list", "--source", "man", "--limit", "1")
    check(len(runs) == 1 and runs[0]["id"] == new_id, str(runs))
    check(set(runs[0]) == columns(c, "discovery_runs") | {"source_name"}, sorted(runs[0]))
    r = c.capctl("runs", "list", "--limit", "1")
    check(r.returncode == 0 and "--limit N shows more" in r.stderr, "limit note", r)
    shown = c.capctl_json("runs", "show", str(run_id))
    check(shown[0]["status"] == "failed" and shown[0]["error"] == "boom", str(shown))
    r = c.capctl_ok("runs", "show", str(run_id))
    check("status" in r.stdout and "failed" in r.stdout, "runs show text", r)
    # The counts of a sweep's addresses that never answered: 0 when the run has none...
    check((shown[0]["silent"], shown[0]["closed"], shown[0]["no_route"]) == (0, 0, 0),
          "counts default to 0: %s" % shown)
    rec = dict(ln.split(None, 1) for ln in r.stdout.splitlines() if len(ln.split(None, 1)) == 2)
    check((rec.get("silent"), rec.get("closed"), rec.get("no_route")) == ("0", "0", "0"),
          "runs show text prints the counts", r)
    # ...and what the worker wrote in stats otherwise, at the top level and inside stats.
    c.sql("UPDATE discovery_runs SET stats = stats || '{\"silent\": 3810, \"closed\": 256, "
          "\"no_route\": 2, \"other\": \"x\"}'::jsonb WHERE id = %s", (run_id,))
    shown = c.capctl_json("runs", "show", str(run_id))
    check((shown[0]["silent"], shown[0]["closed"], shown[0]["no_route"]) == (3810, 256, 2),
          "counts from stats: %s" % shown)
    check(shown[0]["stats"]["silent"] == 3810 and shown[0]["stats"]["other"] == "x", str(shown))
    r = c.capctl_ok("runs", "show", str(run_id))
    rec = dict(ln.split(None, 1) for ln in r.stdout.splitlines() if len(ln.split(None, 1)) == 2)
    check((rec.get("silent"), rec.get("closed"), rec.get("no_route")) == ("3810", "256", "2"),
          "runs show text prints the counts from stats", r)
    # A value that is not a count is shown as 0, never an error.
    c.sql("UPDATE discovery_runs SET stats = '{\"silent\": \"many\", \"closed\": -4, "
          "\"no_route\": 1e30}'::jsonb WHERE id = %s", (run_id,))
    shown = c.capctl_json("runs", "show", str(run_id))
    check((shown[0]["silent"], shown[0]["closed"], shown[0]["no_route"]) == (0, 0, 0),
          "odd stats values: %s" % shown)
    c.sql("UPDATE discovery_runs SET stats = '{}' WHERE id = %s", (run_id,))
    print("ok: triggers and runs")


# ----------------------------------------------------------------------------- inventory etc.

def test_inventory(c):
    sid = c.sql("SELECT id FROM discovery_sources WHERE name = 'lab'")[0][0]
    run = c.insert_run_sql(sid)
    run2 = c.insert_run_sql(c.sql("SELECT id FROM discovery_sources WHERE name = 'overlap'")[0][0])
    for fp, days in ((FP_A, 10), (FP_B, 100)):
        c.sql("INSERT INTO discovered_certificates (fingerprint_sha256, subject, issuer, serial,"
              " not_after, key_algorithm, key_bits, signature_algorithm, pqc_class, der)"
              " VALUES (%s, %s, 'CN=Test CA', '01', now() + make_interval(days => %s), 'RSA',"
              " 2048, 'sha256WithRSAEncryption', 'transition', '\\x3000')",
              (fp, "CN=%s.example" % fp[0], days))
    inv = c.capctl_json("inventory")
    check([x["fingerprint_sha256"] for x in inv] == [FP_A, FP_B], "sorted by not_after: %s" % inv)
    want = (columns(c, "discovered_certificates") - {"der"}) | {"managed"}
    check(set(inv[0]) == want, "inventory keys: %s" % sorted(set(inv[0]) ^ want))
    inv = c.capctl_json("inventory", "--expiring", "30")
    check([x["fingerprint_sha256"] for x in inv] == [FP_A], "--expiring 30: %s" % inv)
    check(inv[0]["managed"] is False, str(inv[0]))

    # managed add / remove.
    r = c.capctl_ok("managed", "add", FP_A.upper())
    check("is now managed" in r.stdout, "managed add", r)
    r = c.capctl_ok("managed", "add", FP_A)
    check("was already managed" in r.stdout, "managed add twice", r)
    check(c.sql("SELECT fingerprint_sha256 FROM managed_certificates") == [(FP_A,)], "row")
    inv = c.capctl_json("inventory", "--expiring", "30")
    check(inv[0]["managed"] is True, str(inv[0]))
    r = c.capctl_ok("inventory")
    check("CN=a.example" in r.stdout and "fingerprint" in r.stdout.splitlines()[0], "text", r)
    ml = c.capctl_json("managed", "list")
    check([m["fingerprint_sha256"] for m in ml] == [FP_A], str(ml))
    c.capctl_ok("managed", "remove", FP_A)
    check(c.sql("SELECT count(*) FROM managed_certificates")[0][0] == 0, "removed")
    expect_fail(c, ["managed", "remove", FP_A], 1, "is not a managed certificate")

    # Endpoint history: observations newest first, with the drift of their run.
    eid = c.sql("INSERT INTO endpoints (host, address, port, sni, source_id, status,"
                " fingerprint_sha256) VALUES ('web.example', '127.0.0.1', 8443, 'web.example', %s,"
                " 'online', %s) RETURNING id", (sid, FP_B))[0][0]
    c.sql("INSERT INTO endpoint_observations (endpoint_id, run_id, observed_at, outcome,"
          " fingerprint_sha256, tls_version, kex_group, kex_pqc) VALUES"
          " (%s, %s, now() - interval '1 day', 'ok', %s, 'TLSv1.2', 'x25519', 'classical'),"
          " (%s, %s, now(), 'ok', %s, 'TLSv1.3', 'X25519MLKEM768', 'hybrid')",
          (eid, run, FP_A, eid, run2, FP_B))
    c.sql("INSERT INTO drift_events (endpoint_id, run_id, old_fingerprint_sha256,"
          " new_fingerprint_sha256, changed) VALUES (%s, %s, %s, %s, '{fingerprint,sans}')",
          (eid, run2, FP_A, FP_B))
    for target in ("web.example:8443", "WEB.example:8443", "127.0.0.1:8443"):
        hist = c.capctl_json("endpoints", "history", target)
        check([h["run_id"] for h in hist] == [run2, run], "%s newest first: %s" % (target, hist))
        check(hist[0]["changed"] == ["fingerprint", "sans"] and hist[1]["changed"] is None,
              "drift on the run that saw it: %s" % hist)
        check(hist[0]["old_fingerprint_sha256"] == FP_A and hist[0]["kex_pqc"] == "hybrid", "")
        check(hist[0]["host"] == "web.example" and hist[0]["port"] == 8443, str(hist[0]))
    check(c.capctl_json("endpoints", "history", "web.example:443") == [], "other port: none")
    r = c.capctl_ok("endpoints", "history", "web.example:8443")
    lines = r.stdout.splitlines()
    check(len(lines) == 3 and "fingerprint,sans" in lines[1] and "TLSv1.2" in lines[2], "text", r)

    # Findings with filters.
    c.sql("INSERT INTO findings (kind, severity, status, subject_key, source_id, run_id,"
          " fingerprint_sha256, details) VALUES"
          " ('expiring', 'medium', 'open', 'cert:' || %s, %s, %s, %s, '{\"days\": 10}'),"
          " ('drift', 'medium', 'resolved', 'endpoint:' || %s, %s, %s, NULL, '{}')",
          (FP_A, sid, run, FP_A, eid, sid, run2))
    fl = c.capctl_json("findings", "list")
    check(len(fl) == 2 and set(fl[0]) == columns(c, "findings") | {"source_name"},
          "findings keys: %s" % (sorted(fl[0]) if fl else fl))
    check([f["kind"] for f in c.capctl_json("findings", "list", "--open")] == ["expiring"], "")
    check([f["kind"] for f in c.capctl_json("findings", "list", "--kind", "drift")] == ["drift"],
          "--kind")
    got = c.capctl_json("findings", "list", "--source", "lab", "--open")
    check(len(got) == 1 and got[0]["details"] == {"days": 10} and got[0]["source_name"] == "lab",
          "details is JSON: %s" % got)
    check(c.capctl_json("findings", "list", "--source", "man") == [], "other source: none")
    r = c.capctl_ok("findings", "list")
    check("expiring" in r.stdout and "drift" in r.stdout, "text", r)
    print("ok: inventory, managed, endpoints, findings")


def main():
    with harness.Cluster(name="capctl") as c:
        test_migrate(c)
        test_migrate_sparse(c)
        test_migrate_spec(c)
        test_sources(c)
        test_validation(c)
        test_database_checks(c)
        test_triggers(c)
        test_inventory(c)
    print("ok: capctl")


if __name__ == "__main__":
    main()
