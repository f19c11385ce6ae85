"""The finding workflow against a real PostgreSQL, a scheduler, a worker and a TLS fleet:

- scans: a suppression rule covers existing findings and the ones later runs raise; a run
  refreshes an acknowledged or suppressed finding instead of opening a second one; a run that
  no longer sees the cause resolves an acknowledged finding; a drift acknowledged is closed as
  an expected change;
- capctl findings ack|unack and suppress add|list|remove, their --json, who (--by, $USER, the
  database user), expiry of a short --until (acknowledgements and rules), escalation reopening
  (the worker's upsert statement with a higher severity), rules matching endpoints, certificate
  names and host names, a removed rule reopening its findings;
- every bad input a one-line error naming the value; rows written by plain SQL validated by
  the database; the dashboard role reads the workflow's views and is refused every write;
- finding_kinds holds the kinds of docs/findings.md.
"""

import os
import re
import time

import psycopg2

import harness
import tlsfleet

FP_SHOP = "5" * 64
FP_OTHER = "6" * 64
# No $USER or $LOGNAME: capctl leaves who to the database (its user).
NOBODY = {"USER": "", "LOGNAME": ""}

# The worker's upsert (worker/inventory.c SQL_UPSERT_FINDINGS), one row at a time.
UPSERT = ("INSERT INTO findings AS f (kind, severity, subject_key, source_id, endpoint_id, "
          "fingerprint_sha256, details) VALUES (%s, %s, %s, %s, %s, %s, '{}') "
          "ON CONFLICT (kind, subject_key) WHERE status = 'open' DO UPDATE SET "
          "severity = EXCLUDED.severity, source_id = EXCLUDED.source_id, "
          "endpoint_id = EXCLUDED.endpoint_id, fingerprint_sha256 = EXCLUDED.fingerprint_sha256, "
          "details = EXCLUDED.details, last_seen_at = now() RETURNING id")


def check(cond, what, r=None):
    if not cond:
        extra = ""
        if r is not None:
            extra = "\nexit %s\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr)
        raise AssertionError(what + extra)


def expect_fail(c, args, code, message, extra_env=None):
    """capctl ARGS must exit `code` with `message` as its first stderr line, nothing on
    stdout."""
    r = c.capctl(*args, extra_env=extra_env)
    check(r.returncode == code, "capctl %s: want exit %d" % (" ".join(args), code), r)
    first = r.stderr.splitlines()[0] if r.stderr else ""
    check(first == "capctl: " + message, "capctl %s: want message %r" % (" ".join(args), message),
          r)
    check(r.stdout == "", "capctl %s: stdout should be empty" % " ".join(args), r)


def sql_refused(c, stmt, params, sqlstate, message):
    try:
        c.sql(stmt, params)
    except psycopg2.Error as e:
        check(e.pgcode == sqlstate, "%s: want SQLSTATE %s, got %s (%s)"
              % (stmt, sqlstate, e.pgcode, e.pgerror))
        check(message in str(e), "%s: want %r in %r" % (stmt, message, str(e)))
        return
    raise AssertionError("the database accepted: %s %s" % (stmt, params))


def finding(c, fid):
    return c.sql_dicts("SELECT * FROM findings WHERE id = %s", (fid,))[0]


def one_id(c, where, params=()):
    rows = c.sql("SELECT id FROM findings WHERE " + where, params)
    check(len(rows) == 1, "want one finding %s %s, got %s" % (where, params, rows))
    return rows[0][0]


def columns(c, table):
    return {r[0] for r in c.sql("SELECT column_name FROM information_schema.columns "
                                "WHERE table_name = %s", (table,))}


def open_counted(c):
    return c.sql("SELECT coalesce(sum(open_count), 0) FROM cap_open_findings")[0][0]


# ----------------------------------------------------------------------------- scans

def test_scans(c):
    fleet = tlsfleet.Fleet(c.tmpdir)
    cert_a = fleet.cert("a.fleet.test")
    cert_b = fleet.cert("b.fleet.test", self_signed=True)
    a = fleet.tls("a", cert_a)
    b = fleet.tls("b", cert_b)
    fleet.start()
    try:
        sched = c.start_scheduler()
        c.start_worker()
        sid = c.add_source_sql("fleet", cidrs=[a.addr + "/32", b.addr + "/32"],
                               ports=[fleet.port], timeout_ms=3000)

        def run():
            r = c.wait_run(c.insert_run_sql(sid), timeout=120)
            check(r["status"] in ("succeeded", "partial"), "run: %s" % harness._short_row(r))
            return r["id"]

        run1 = run()
        kinds = sorted(r[0] for r in c.sql("SELECT kind FROM findings WHERE status = 'open'"))
        check(kinds == ["pqc_vulnerable", "pqc_vulnerable", "self_signed", "untrusted",
                        "untrusted"], "run 1 findings: %s" % kinds)
        eps = dict(c.sql("SELECT host(address), id FROM endpoints"))
        ss = one_id(c, "kind = 'self_signed'")
        untrusted_a = one_id(c, "kind = 'untrusted' AND endpoint_id = %s", (eps[a.addr],))
        untrusted_b = one_id(c, "kind = 'untrusted' AND endpoint_id = %s", (eps[b.addr],))

        # A rule on one endpoint by ADDRESS:PORT, a rule on a kind of the source, an ack.
        r = c.capctl_ok("suppress", "add", "--kind", "untrusted",
                        "--subject", "%s:%d" % (a.addr, fleet.port), "--reason", "lab CA")
        check(r.stdout.startswith("suppression rule 1 added\n")
              and re.search(r"^suppressed +1$", r.stdout, re.M), "rule 1 text", r)
        rule = c.capctl_json("suppress", "add", "--kind", "pqc_vulnerable", "--source", "fleet",
                             "--reason", "PQC roadmap 2027", "--by", "erin")
        check(len(rule) == 1 and rule[0]["id"] == 2 and rule[0]["suppressed_findings"] == 2
              and rule[0]["source_name"] == "fleet" and rule[0]["created_by"] == "erin"
              and rule[0]["active"] is True, "rule 2 json: %s" % rule)
        r = c.capctl_ok("findings", "ack", ss, "--reason", "test box, replaced in May",
                        "--by", "carol")
        check(r.stdout == "finding %d (self_signed cert:%s) acknowledged by carol with no end\n"
              % (ss, finding(c, ss)["fingerprint_sha256"]), "ack text", r)
        check(finding(c, untrusted_a)["status"] == "suppressed", "untrusted a suppressed")
        check(finding(c, untrusted_b)["status"] == "open", "untrusted b still open")
        check(open_counted(c) == 1, "the open panels count only untrusted b")
        before = finding(c, ss)

        # Run 2 sees it all again: the same rows, refreshed, statuses kept. (A run within the
        # hour confirms an unchanged finding without rewriting it; an hour later it refreshes
        # it, as here.)
        time.sleep(1.1)
        c.sql("UPDATE findings SET last_seen_at = last_seen_at - interval '2 hours'")
        run2 = run()
        rows = c.sql("SELECT kind, status, run_id FROM findings ORDER BY id")
        check(len(rows) == 5, "no second row for an acknowledged or suppressed finding: %s"
              % rows)
        check(all(r[2] == run2 for r in rows), "every finding refreshed by run 2: %s" % rows)
        after = finding(c, ss)
        check(after["status"] == "acknowledged" and after["ack_by"] == "carol"
              and after["ack_at"] == before["ack_at"]
              and after["last_seen_at"] > before["last_seen_at"], "ack kept: %s" % after)
        check(sorted(r[1] for r in rows) == ["acknowledged", "open", "suppressed", "suppressed",
                                            "suppressed"], "statuses after run 2: %s" % rows)

        # New certificates: a drift on each endpoint; A2's pqc_vulnerable is a new finding
        # the rule suppresses; b no longer serves the self-signed B: its acknowledged and
        # suppressed findings are resolved by the run.
        fleet.swap(a, fleet.cert("a.fleet.test"))
        fleet.swap(b, fleet.cert("b.fleet.test"))
        run3 = run()
        drifts = c.sql("SELECT id, endpoint_id, status FROM findings WHERE kind = 'drift' "
                       "ORDER BY endpoint_id")
        check([(d[1], d[2]) for d in drifts] == sorted([(eps[a.addr], "open"),
                                                        (eps[b.addr], "open")]),
              "two open drifts: %s" % drifts)
        pqc = c.sql("SELECT status, suppression_id, run_id FROM findings "
                    "WHERE kind = 'pqc_vulnerable' ORDER BY id")
        check(pqc == [("resolved", 2, run2), ("resolved", 2, run2),
                      ("suppressed", 2, run3), ("suppressed", 2, run3)],
              "old certificates' pqc resolved, new ones suppressed by rule 2: %s" % pqc)
        gone = finding(c, ss)
        check(gone["status"] == "resolved" and gone["resolved_by"] is None
              and gone["ack_reason"] == "test box, replaced in May",
              "the run resolved the acknowledged self_signed: %s" % gone)
        check(finding(c, untrusted_a)["status"] == "suppressed", "untrusted a still suppressed")

        # A drift acknowledged is an expected change: closed, with who and why.
        da = [d[0] for d in drifts if d[1] == eps[a.addr]][0]
        db = [d[0] for d in drifts if d[1] == eps[b.addr]][0]
        expect_fail(c, ["findings", "ack", str(db), "--reason", "x", "--until", "7d"], 1,
                    "finding %d is a drift: acknowledging it closes it as an expected change, "
                    "so --until does not apply" % db)
        r = c.capctl_ok("findings", "ack", da, "--reason", "planned rotation", "--by", "dan")
        check(r.stdout == "finding %d (drift endpoint:%d) closed as an expected change by dan\n"
              % (da, eps[a.addr]), "drift ack text", r)
        d = finding(c, da)
        check(d["status"] == "resolved" and d["resolved_by"] == "dan"
              and d["ack_reason"] == "planned rotation" and d["resolved_at"] is not None,
              "drift closed: %s" % d)
        j = c.capctl_json("findings", "ack", db, "--reason", "rotation too", extra_env=NOBODY)
        check(j[0]["status"] == "resolved" and j[0]["resolved_by"] == "postgres",
              "drift ack --json, the database user by default: %s" % j)
        expect_fail(c, ["findings", "ack", str(da), "--reason", "again"], 1,
                    "finding %d is resolved; only open, acknowledged or suppressed findings can "
                    "be acknowledged" % da)

        # A run after the acks: the closed drifts stay closed, nothing new opens.
        run()
        check(c.sql("SELECT count(*) FROM findings WHERE kind = 'drift' AND status <> 'resolved'")
              == [(0,)], "no drift reopened")
        c.capctl_ok("suppress", "remove", "1")
        c.capctl_ok("suppress", "remove", "2")
    finally:
        fleet.stop()
    # The scheduler expires acknowledgements on its tick: stopped here so that the checks
    # below see what capctl and the function do alone; test_scheduler_expiry starts it again.
    c.stop(sched)
    print("ok: scans")


def test_scheduler_expiry(c, ids):
    """The scheduler's tick reopens an acknowledgement whose time has passed, with nobody
    running capctl."""
    fid = c.sql("SELECT min(id) FROM findings WHERE status = 'open' AND kind <> 'drift'")[0][0]
    c.capctl_ok("findings", "ack", fid, "--reason", "until the tick", "--until", "1s")
    check(finding(c, fid)["status"] == "acknowledged", "acknowledged")
    c.start_scheduler(config_overrides={"scheduler.tick": "1s"})
    c.wait_for(lambda: finding(c, fid)["status"] == "open", timeout=20,
               what="the scheduler reopens the expired acknowledgement")
    check(finding(c, fid)["reopen_reason"] == "expired", "reopened as expired")
    print("ok: scheduler expiry")


# ----------------------------------------------------------------------------- capctl

def test_capctl(c):
    sid = c.add_source_sql("lab", cidrs=["10.9.0.0/24"])
    other = c.add_source_sql("other", cidrs=["10.8.0.0/24"])
    e1 = c.sql("INSERT INTO endpoints (host, address, port) VALUES "
               "('web.lab.example.com', '10.9.0.5', 443) RETURNING id")[0][0]
    e2 = c.sql("INSERT INTO endpoints (host, address, port) VALUES "
               "('db.lab.example.com', '10.9.0.6', 8443) RETURNING id")[0][0]
    e3 = c.sql("INSERT INTO endpoints (host, address, port) VALUES "
               "('2001:db8::7', '2001:db8::7', 443) RETURNING id")[0][0]
    for fp, san in ((FP_SHOP, "www.shop.example.com"), (FP_OTHER, "www.example.net")):
        c.sql("INSERT INTO discovered_certificates (fingerprint_sha256, subject, issuer, serial,"
              " key_algorithm, signature_algorithm, pqc_class, der, sans) VALUES (%s, 'CN=x',"
              " 'CN=ca', '01', 'RSA', 'sha256WithRSAEncryption', 'transition', '\\x30', %s)",
              (fp, [san]))

    def new(kind, sev, subject, src=sid, ep=None, fp=None):
        return c.sql(UPSERT, (kind, sev, subject, src, ep, fp))[0][0]

    f_unr = new("unreachable", "low", "endpoint:%d" % e1, ep=e1)
    f_exp = new("expired", "critical", "cert:" + FP_SHOP, fp=FP_SHOP)
    f_tls = new("tls_error", "low", "endpoint:%d" % e2, ep=e2)
    f_v6 = new("tls_error", "low", "endpoint:%d" % e3, ep=e3)
    f_name = new("unresolvable", "low", "name:old.example.org")
    f_oth = new("unresolvable", "low", "name:old.example.org.other", src=other)
    base_open = open_counted(c)

    # ack with --until: acknowledged, left out of the open counts, with who, when and why.
    r = c.capctl_ok("findings", "ack", f_unr, "--reason", "maintenance window", "--until", "2s",
                    extra_env={"USER": "alice"})
    check(re.fullmatch(r"finding %d \(unreachable endpoint:%d\) acknowledged by alice until "
                       r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n" % (f_unr, e1), r.stdout),
          "ack --until text", r)
    f = finding(c, f_unr)
    check(f["status"] == "acknowledged" and f["ack_by"] == "alice" and f["ack_db_user"] ==
          "postgres" and f["ack_reason"] == "maintenance window" and f["ack_at"] is not None
          and f["ack_until"] is not None, "acknowledged row: %s" % f)
    check(open_counted(c) == base_open - 1, "acknowledged is not counted open")
    ackd = c.sql_dicts("SELECT * FROM cap_acknowledged_findings WHERE finding_id = %s", (f_unr,))
    check(len(ackd) == 1 and ackd[0]["ack_by"] == "alice" and ackd[0]["source_name"] == "lab",
          "cap_acknowledged_findings: %s" % ackd)

    # A refresh at the same severity keeps it acknowledged; it expires after 2 s.
    check(new("unreachable", "low", "endpoint:%d" % e1, ep=e1) == f_unr, "refreshed in place")
    check(finding(c, f_unr)["status"] == "acknowledged", "a refresh keeps the acknowledgement")
    time.sleep(2.3)
    got = [x for x in c.capctl_json("findings", "list") if x["id"] == f_unr][0]
    check(got["status"] == "open" and got["reopen_reason"] == "expired"
          and got["reopened_at"] is not None and got["ack_by"] is None,
          "expired acknowledgement opens again: %s" % got)
    check(open_counted(c) == base_open, "open again in the open counts")

    # The same through cap_findings_expire(), which the scheduler's tick may call.
    c.capctl_ok("findings", "ack", f_tls, "--reason", "r", "--until", "1s")
    time.sleep(1.3)
    check(finding(c, f_tls)["status"] == "acknowledged", "no expiry before something runs it")
    check(c.sql("SELECT cap_findings_expire()") == [(1,)], "cap_findings_expire opens one")
    check(finding(c, f_tls)["reopen_reason"] == "expired", "expired")

    # unack.
    j = c.capctl_json("findings", "ack", f_exp, "--reason", "accepted until renewal",
                      "--until", "2099-01-01", extra_env=NOBODY)
    check(len(j) == 1 and set(j[0]) == columns(c, "findings") | {"source_name"}
          and j[0]["ack_until"].startswith("2099-01-01T00:00:00")
          and j[0]["ack_by"] == "postgres", "ack --json, no $USER: the database user: %s" % j)
    r = c.capctl_ok("findings", "unack", f_exp)
    check(r.stdout == "finding %d (expired cert:%s) is open again\n" % (f_exp, FP_SHOP),
          "unack text", r)
    f = finding(c, f_exp)
    check(f["status"] == "open" and f["reopen_reason"] == "unacknowledged"
          and f["ack_reason"] is None, "unacknowledged: %s" % f)

    # Escalation: the worker's upsert raises the severity of an acknowledged finding.
    c.capctl_ok("findings", "ack", f_v6, "--reason", "legacy box")
    check(new("tls_error", "low", "endpoint:%d" % e3, ep=e3) == f_v6, "same row")
    check(finding(c, f_v6)["status"] == "acknowledged", "same severity: still acknowledged")
    check(new("tls_error", "high", "endpoint:%d" % e3, ep=e3) == f_v6, "same row")
    f = finding(c, f_v6)
    check(f["status"] == "open" and f["reopen_reason"] == "escalated" and f["severity"] == "high",
          "escalated: %s" % f)

    # Rules: an endpoint by HOST:PORT, a certificate by its DNS names, a host name, a source.
    j = c.capctl_json("suppress", "add", "--kind", "unreachable",
                      "--subject", "*.LAB.example.com:443", "--reason", "lab is flaky")
    check(j[0]["suppressed_findings"] == 1 and j[0]["subject_pattern"] == "*.LAB.example.com:443"
          and set(j[0]) == columns(c, "finding_suppressions") |
          {"source_name", "active", "suppressed_findings"}, "rule json: %s" % j)
    r_unr = j[0]["id"]
    check(finding(c, f_unr)["status"] == "suppressed", "existing finding suppressed")
    r_exp = c.capctl_json("suppress", "add", "--kind", "expired", "--subject",
                          "*.shop.example.com", "--reason", "shop retired")[0]
    check(r_exp["suppressed_findings"] == 1 and finding(c, f_exp)["suppression_id"] ==
          r_exp["id"], "certificate matched by SAN: %s" % r_exp)
    r_name = c.capctl_json("suppress", "add", "--kind", "unresolvable", "--source", "lab",
                           "--subject", "old.example.org", "--reason", "decommissioned",
                           "--until", "2s")[0]
    check(r_name["suppressed_findings"] == 1 and finding(c, f_name)["status"] == "suppressed"
          and finding(c, f_oth)["status"] == "open", "host name, source only: %s" % r_name)
    r_v6 = c.capctl_json("suppress", "add", "--kind", "tls_error", "--subject",
                         "[2001:db8::7]:443", "--reason", "ipv6 lab")[0]
    check(r_v6["suppressed_findings"] == 1, "IPv6 endpoint in brackets: %s" % r_v6)

    # New findings that a rule covers are suppressed as they are written.
    e4 = c.sql("INSERT INTO endpoints (host, address, port) VALUES "
               "('mail.lab.example.com', '10.9.0.9', 443) RETURNING id")[0][0]
    f_new = new("unreachable", "low", "endpoint:%d" % e4, ep=e4)
    f = finding(c, f_new)
    check(f["status"] == "suppressed" and f["suppression_id"] == r_unr, "new finding: %s" % f)
    f_miss = new("unreachable", "low", "endpoint:%d" % e2, ep=e2)  # port 8443: no match
    check(finding(c, f_miss)["status"] == "open", "a finding the pattern misses stays open")
    rows = c.sql_dicts("SELECT * FROM cap_acknowledged_findings WHERE finding_id = %s", (f_new,))
    check(rows[0]["ack_reason"] == "lab is flaky" and rows[0]["status"] == "suppressed",
          "the view gives the rule's reason: %s" % rows)

    # unack of a suppressed finding names its rule; a rule that expires opens its findings.
    expect_fail(c, ["findings", "unack", str(f_new)], 1,
                "finding %d is suppressed by rule %d, not acknowledged (capctl suppress remove %d "
                "lifts the rule)" % (f_new, r_unr, r_unr))
    time.sleep(2.3)
    lst = c.capctl_json("suppress", "list")
    mine = [x for x in lst if x["id"] == r_name["id"]][0]
    check(mine["active"] is False and mine["suppressed_findings"] == 0, "rule ended: %s" % mine)
    f = finding(c, f_name)
    check(f["status"] == "open" and f["reopen_reason"] == "expired", "rule expired: %s" % f)
    r = c.capctl_ok("suppress", "list")
    check(r.stdout.splitlines()[0].split() == ["id", "kind", "source", "subject", "active",
                                               "suppressed", "until", "created_by", "created_at",
                                               "reason"], "list header", r)

    # remove: its findings open again.
    r = c.capctl_ok("suppress", "remove", r_unr)
    check(r.stdout == "suppression rule %d removed; 2 of its findings are open again\n" % r_unr,
          "remove text", r)
    check(finding(c, f_new)["status"] == "open" and finding(c, f_new)["reopen_reason"] ==
          "rule_removed", "reopened")
    j = c.capctl_json("suppress", "remove", r_v6["id"])
    check(j[0]["id"] == r_v6["id"] and j[0]["reopened_findings"] == 1, "remove json: %s" % j)
    # Two rules on one finding: removing the first hands it to the second.
    r1 = c.capctl_json("suppress", "add", "--kind", "tls_error", "--reason", "all")[0]["id"]
    r2 = c.capctl_json("suppress", "add", "--kind", "tls_error", "--source", "lab",
                       "--reason", "lab")[0]["id"]
    check(finding(c, f_v6)["suppression_id"] == r1, "the first rule took it")
    r = c.capctl_ok("suppress", "remove", r1)
    check("suppressed by another rule" in r.stdout and finding(c, f_v6)["suppression_id"] == r2,
          "handed to rule %d" % r2, r)
    c.capctl_ok("suppress", "remove", r2)
    c.capctl_ok("suppress", "remove", r_exp["id"])
    check(c.capctl("suppress", "list").stdout.strip() != "", "list prints the expired rule")
    print("ok: capctl")
    return {"f_unr": f_unr, "f_exp": f_exp, "sid": sid}


def test_errors(c, ids):
    f = ids["f_unr"]
    syn_ack = "usage: capctl findings ack ID --reason TEXT"
    for args, code, msg in [
        (["findings", "ack", "999999", "--reason", "x"], 1, "finding 999999 does not exist"),
        (["findings", "unack", "999999"], 1, "finding 999999 does not exist"),
        (["findings", "ack", "abc", "--reason", "x"], 1,
         'finding ID "abc": must be an integer 1-9223372036854775807'),
        (["findings", "ack", str(f), "--reason", ""], 1, '--reason "": must not be empty'),
        (["findings", "ack", str(f), "--reason", "   "], 1, '--reason "   ": must not be empty'),
        (["findings", "ack", str(f), "--reason", "a\x01b"], 1,
         '--reason "a\\x01b": must not contain control characters'),
        (["findings", "ack", str(f), "--reason", "x", "--until", "2020-01-01"], 1,
         '--until "2020-01-01": is not in the future'),
        (["findings", "ack", str(f), "--reason", "x", "--until", "2027-02-30"], 1,
         '--until "2027-02-30": not a date or duration (YYYY-MM-DD, '
         'YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] in UTC unless a zone is given, or 30d, 12h, 15m, '
         '45s, 2w)'),
        (["findings", "ack", str(f), "--reason", "x", "--by", ""], 1,
         '--by "": must not be empty'),
        (["findings", "ack", str(f)], 2, "findings ack: --reason is required"),
        (["findings", "ack", "--reason", "x"], 2, "findings ack: give one finding ID"),
        (["findings", "unack", str(f), "--reason", "x"], 2,
         "findings unack takes no --reason or --until"),
        (["findings", "ack", str(f), "--reason", "x", "--kind", "expired"], 2,
         'unknown option "--kind"'),
        (["findings", "list", "--reason", "x"], 2,
         "--reason, --until and --by apply to findings ack"),
        (["findings", "list", "--kind", "expird"], 1,
         '--kind "expird": unknown kind (the kinds are listed in docs/findings.md and in the '
         'table finding_kinds)'),
        (["findings", "unack", str(ids["f_exp"])], 1,
         "finding %d is not acknowledged (it is open)" % ids["f_exp"]),
        (["suppress", "add", "--kind", "expird", "--reason", "x"], 1,
         '--kind "expird": unknown kind (the kinds are listed in docs/findings.md and in the '
         'table finding_kinds)'),
        (["suppress", "add", "--kind", "expired", "--reason", "x", "--source", "nope"], 1,
         'source "nope" does not exist'),
        (["suppress", "add", "--kind", "expired", "--reason", "x", "--subject", "a b"], 1,
         '--subject "a b": may hold only letters, digits, ".", "-", "_", ":", "[", "]" and "*"'),
        (["suppress", "add", "--kind", "expired", "--reason", "x", "--subject", "50%"], 1,
         '--subject "50%": may hold only letters, digits, ".", "-", "_", ":", "[", "]" and "*"'),
        (["suppress", "add", "--kind", "expired", "--reason", "x", "--subject", "**"], 1,
         '--subject "**": matches every subject; leave the option out instead'),
        (["suppress", "add", "--kind", "expired", "--reason", ""], 1,
         '--reason "": must not be empty'),
        (["suppress", "add", "--kind", "expired", "--reason", "x", "--until", "soon"], 1,
         '--until "soon": not a date or duration (YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM] '
         'in UTC unless a zone is given, or 30d, 12h, 15m, 45s, 2w)'),
        (["suppress", "add", "--reason", "x"], 2, "suppress add: --kind is required"),
        (["suppress", "add", "--kind", "expired"], 2, "suppress add: --reason is required"),
        (["suppress", "remove", "999"], 1, "suppression rule 999 does not exist"),
        (["suppress", "remove", "x"], 1, 'rule ID "x": must be an integer 1-9223372036854775807'),
        (["suppress", "remove"], 2, "suppress remove: give one rule ID"),
        (["suppress", "frob"], 2, 'suppress: unknown subcommand "frob"'),
        (["suppress", "list", "--kind", "expired"], 2, "suppress list takes no options"),
    ]:
        expect_fail(c, args, code, msg)
    r = c.capctl("findings", "ack", str(f))
    check(syn_ack in r.stderr, "usage shows the synopsis", r)
    r = c.capctl("findings", "ack", str(f), "--reason", "x", extra_env={"USER": "bad\x01user"})
    check(r.returncode == 1 and r.stderr.startswith('capctl: $USER "bad\\x01user": must not '
                                                    'contain control characters'), "$USER", r)
    print("ok: errors")


def test_sql_rows(c, ids):
    """Rows other tools write are held to the same rules."""
    f, sid = ids["f_unr"], ids["sid"]
    c.sql("UPDATE findings SET status = 'open' WHERE id = %s AND status <> 'open'", (f,))
    refused = [
        ("UPDATE findings SET status = 'acknowledged' WHERE id = %s", (f,), "23514",
         "finding %d: ack_reason must not be empty" % f),
        ("UPDATE findings SET status = 'acknowledged', ack_reason = '  ' WHERE id = %s", (f,),
         "23514", "ack_reason must not be empty"),
        ("UPDATE findings SET status = 'acknowledged', ack_reason = E'a\\nb' WHERE id = %s",
         (f,), "23514", "ack_reason must not contain control characters"),
        ("UPDATE findings SET status = 'acknowledged', ack_reason = 'x', "
         "ack_until = now() - interval '1 minute' WHERE id = %s", (f,), "23514",
         "is not in the future"),
        ("UPDATE findings SET status = 'suppressed' WHERE id = %s", (f,), "23514",
         "status suppressed needs suppression_id"),
        ("UPDATE findings SET status = 'acknowledged', ack_reason = 'x' "
         "WHERE status = 'resolved' AND kind = 'drift'", None, "23514", "it is resolved"),
        ("UPDATE findings SET status = 'gone' WHERE id = %s", (f,), "23514",
         "findings_status_check"),
        ("INSERT INTO finding_suppressions (kind, reason) VALUES ('expird', 'x')", None,
         "23514", 'unknown kind "expird"'),
        ("INSERT INTO finding_suppressions (kind, reason, subject_pattern) VALUES "
         "('expired', 'x', 'a%%b')", None, "23514", "may hold only letters"),
        ("INSERT INTO finding_suppressions (kind, reason) VALUES ('expired', '')", None,
         "23514", "reason must not be empty"),
        ("INSERT INTO finding_suppressions (kind, reason, until) VALUES "
         "('expired', 'x', now() - interval '1 day')", None, "23514", "is not in the future"),
    ]
    for stmt, params, state, msg in refused:
        sql_refused(c, stmt, params, state, msg)
    rid = c.sql("INSERT INTO finding_suppressions (kind, reason, source_id) VALUES "
                "('unreachable', 'from the UI', %s) RETURNING id", (sid,))[0][0]
    check(finding(c, f)["status"] == "suppressed", "a rule written by SQL applies")
    sql_refused(c, "UPDATE finding_suppressions SET kind = 'expired' WHERE id = %s", (rid,),
                "23514", "kind, source and subject pattern cannot change")
    sql_refused(c, "UPDATE findings SET status = 'suppressed', suppression_id = %s "
                "WHERE id = %s", (rid, ids["f_exp"]), "23514", "does not cover it")
    c.sql("DELETE FROM finding_suppressions WHERE id = %s", (rid,))
    check(finding(c, f)["status"] == "open", "a rule deleted by SQL opens its findings")
    c.sql("UPDATE findings SET status = 'acknowledged', ack_reason = 'by the UI' "
          "WHERE id = %s", (f,))
    row = finding(c, f)
    check(row["ack_by"] == "postgres" and row["ack_db_user"] == "postgres"
          and row["ack_at"] is not None, "who and when filled in: %s" % row)
    print("ok: rows written by SQL")


def test_dashboard_role(c):
    c.sql("CREATE ROLE wf_dash LOGIN IN ROLE cap_dashboard")
    conn = psycopg2.connect(c.pg_url.replace("postgres@", "wf_dash@"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM cap_acknowledged_findings")
            check(cur.fetchone()[0] >= 1, "the dashboard role reads acknowledged findings")
            cur.execute("SELECT count(*) FROM cap_finding_suppressions")
            check(cur.fetchone()[0] >= 1, "the dashboard role reads the rules")
            for stmt in [
                "UPDATE findings SET status = 'open'",
                "UPDATE findings SET status = 'acknowledged', ack_reason = 'x'",
                "UPDATE cap_acknowledged_findings SET ack_reason = 'x'",
                "UPDATE cap_finding_suppressions SET reason = 'x'",
                "DELETE FROM cap_finding_suppressions",
                "INSERT INTO finding_suppressions (kind, reason) VALUES ('expired', 'x')",
                "DELETE FROM finding_suppressions",
                "UPDATE finding_suppressions SET until = now() + interval '1 day'",
                "SELECT * FROM finding_suppressions",
                "SELECT * FROM findings",
                "SELECT cap_findings_expire()",
            ]:
                try:
                    cur.execute(stmt)
                except psycopg2.Error as e:
                    check(e.pgcode in ("42501", "55000", "0A000"), "%s: %s %s"
                          % (stmt, e.pgcode, e.pgerror))
                    continue
                raise AssertionError("cap_dashboard was allowed: %s" % stmt)
    finally:
        conn.close()
    print("ok: dashboard role")


def test_kinds(c):
    """finding_kinds holds the kinds of docs/findings.md (which test_findings checks against
    the catalogue of worker/findings.c)."""
    doc = open(os.path.join(harness.source_dir(), "docs", "findings.md")).read()
    section = doc.split("## Kinds", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        m = re.match(r"\| `([a-z_]+)` \| (\w+) \| (\w+) \|", line)
        if m:
            rows.add(m.groups())
    check(len(rows) >= 20, "kinds read from the docs: %s" % rows)
    db = set(c.sql("SELECT kind, severity, subject FROM finding_kinds"))
    check(db == rows, "finding_kinds differs from docs/findings.md: only in the database %s, "
          "only in the docs %s" % (sorted(db - rows), sorted(rows - db)))
    print("ok: kinds")


def main():
    with harness.Cluster(name="findings-workflow") as c:
        c.capctl_ok("migrate")
        test_kinds(c)
        test_scans(c)
        ids = test_capctl(c)
        test_errors(c, ids)
        test_sql_rows(c, ids)
        test_dashboard_role(c)
        test_scheduler_expiry(c, ids)
    print("ok: findings workflow")


if __name__ == "__main__":
    main()
