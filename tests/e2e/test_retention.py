"""Retention (retention.observations, retention.runs) against a real PostgreSQL: old rows are
written with SQL beside new ones, then cap-scheduler runs with a retention of one day.

  - retention 0 keeps everything;
  - while another session holds the retention advisory lock, the scheduler prunes nothing;
  - then one pass deletes old observations (thousands, over several batches) and old runs, and
    nothing newer than a day; it keeps the newest observation and the newest ok observation of
    every endpoint, every drift event and the observation it names, the observation an open
    finding names, every run a kept row names, queued and running runs however old, and the
    newest (successful) run of a source; certificates and resolved findings of a deleted run
    keep a NULL run;
  - `capctl endpoints history` still shows every drift, and cap_retention_pruned_total counts
    what went."""

import re
import time
import urllib.request

import harness

FP = {k: (k * 64)[:64] for k in "abcdef"}
LOCK_KEY = 7161530812449580415  # PRUNE_LOCK_KEY of scheduler/sched.c
BULK_RUNS = 250                 # more than one batch of runs (200)
BULK_ENDPOINTS = 12             # 3000 old observations: three batches of 1000


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def ago(days=0, hours=0):
    return "now() - interval '%d days %d hours'" % (days, hours)


def add_run(c, sid, status, finished_days=None, queued_days=None, hours=0):
    """Inserts a run with its times in the past; returns its id."""
    qd = queued_days if queued_days is not None else (finished_days or 0)
    fin = "NULL" if finished_days is None else ago(finished_days, hours)
    return c.sql("INSERT INTO discovery_runs (source_id, trigger, status, queued_at, started_at,"
                 " finished_at, heartbeat_at, attempts) VALUES (%%s, 'manual', %%s, %s, %s, %s, %s,"
                 " 1) RETURNING id" % (ago(qd, hours), "NULL" if status == "queued" else ago(qd, hours), fin,
                                       "now() + interval '1 day'" if status == "running" else fin),
                 (sid, status))[0][0]


def add_obs(c, eid, rid, outcome, fp, days=0, hours=0):
    return c.sql("INSERT INTO endpoint_observations (endpoint_id, run_id, observed_at, outcome,"
                 " fingerprint_sha256, tls_version) VALUES (%%s, %%s, %s, %%s, %%s, %%s)"
                 " RETURNING id" % ago(days, hours),
                 (eid, rid, outcome, fp, "TLSv1.3" if outcome == "ok" else None))[0][0]


def add_endpoint(c, sid, host, port, fp):
    return c.sql("INSERT INTO endpoints (host, address, port, sni, source_id, status,"
                 " fingerprint_sha256) VALUES (%s, '192.0.2.10', %s, %s, %s, 'online', %s)"
                 " RETURNING id", (host, port, host, sid, fp))[0][0]


def snapshot(c):
    return {
        "obs": set(r[0] for r in c.sql("SELECT id FROM endpoint_observations")),
        "runs": set(r[0] for r in c.sql("SELECT id FROM discovery_runs")),
        "drift": set(r[0] for r in c.sql("SELECT id FROM drift_events")),
        "findings": set(r[0] for r in c.sql("SELECT id FROM findings")),
    }


def seed(c):
    """Writes the old and new rows; returns the ids the checks need."""
    s1 = c.add_source_sql("ret-a")
    s2 = c.add_source_sql("ret-b")
    for k, fp in FP.items():
        c.sql("INSERT INTO discovered_certificates (fingerprint_sha256, subject, issuer, serial,"
              " not_after, key_algorithm, key_bits, signature_algorithm, pqc_class, der)"
              " VALUES (%s, %s, 'CN=Test CA', '01', now() + interval '90 days', 'RSA', 2048,"
              " 'sha256WithRSAEncryption', 'transition', '\\x3000')", (fp, "CN=%s.example" % k))
    ids = {"s1": s1, "s2": s2}
    e1 = add_endpoint(c, s1, "h1.example", 443, FP["b"])
    e2 = add_endpoint(c, s1, "h2.example", 443, FP["a"])
    e3 = add_endpoint(c, s1, "h3.example", 443, None)
    e4 = add_endpoint(c, s1, "h4.example", 443, FP["a"])
    e5 = add_endpoint(c, s1, "h5.example", 443, FP["d"])
    ids.update(e1=e1, e2=e2, e3=e3, e4=e4, e5=e5)

    # R1, ten days ago: e1 and e2 serve A, e3 times out (its only observation), e5 serves D.
    r1 = add_run(c, s1, "succeeded", 10)
    ids["o_e1_r1"] = add_obs(c, e1, r1, "ok", FP["a"], 10)
    ids["o_e2_r1"] = add_obs(c, e2, r1, "ok", FP["a"], 10)
    ids["o_e3_r1"] = add_obs(c, e3, r1, "timeout", None, 10)
    ids["o_e5_r1"] = add_obs(c, e5, r1, "ok", FP["d"], 10)
    # R2, nine days ago: e1 now serves B (a drift), e2 still A.
    r2 = add_run(c, s1, "succeeded", 9)
    ids["o_e1_r2"] = add_obs(c, e1, r2, "ok", FP["b"], 9)
    ids["o_e2_r2"] = add_obs(c, e2, r2, "ok", FP["a"], 9)
    ids["drift_old"] = c.sql(
        "INSERT INTO drift_events (endpoint_id, run_id, old_fingerprint_sha256,"
        " new_fingerprint_sha256, changed, detected_at) VALUES (%s, %s, %s, %s,"
        " '{fingerprint,issuer}', now() - interval '9 days') RETURNING id",
        (e1, r2, FP["a"], FP["b"]))[0][0]
    # R3, eight days ago, failed: nothing observed; it first stored certificate C and last
    # refreshed a finding since resolved.
    r3 = add_run(c, s1, "failed", 8)
    c.sql("UPDATE discovered_certificates SET first_seen_run_id = %s WHERE fingerprint_sha256 = %s",
          (r3, FP["c"]))
    ids["f_resolved"] = c.sql(
        "INSERT INTO findings (kind, severity, status, subject_key, source_id, run_id,"
        " fingerprint_sha256, first_seen_at, last_seen_at, resolved_at) VALUES ('expiring',"
        " 'medium', 'resolved', 'cert:' || %s, %s, %s, %s, now() - interval '8 days',"
        " now() - interval '8 days', now() - interval '7 days') RETURNING id",
        (FP["c"], s1, r3, FP["c"]))[0][0]
    # R4, seven days ago: e1 timed out, and its unreachable finding is still open; e5 times
    # out too (so its last ok observation, in R1, is the drift baseline).
    r4 = add_run(c, s1, "partial", 7)
    ids["o_e1_r4"] = add_obs(c, e1, r4, "timeout", None, 7)
    ids["o_e2_r4"] = add_obs(c, e2, r4, "ok", FP["a"], 7)
    ids["o_e5_r4"] = add_obs(c, e5, r4, "timeout", None, 7)
    ids["f_open"] = c.sql(
        "INSERT INTO findings (kind, severity, status, subject_key, source_id, run_id,"
        " endpoint_id, first_seen_at, last_seen_at) VALUES ('unreachable', 'low', 'open',"
        " 'endpoint:' || %s, %s, %s, %s, now() - interval '7 days', now() - interval '7 days')"
        " RETURNING id", (e1, s1, r4, e1))[0][0]
    # R8, six days ago, failed, named by nothing: it goes.
    r8 = add_run(c, s1, "failed", 6)
    # R11, six days ago: a drift event without its observation (a row from elsewhere); the
    # event's run stays, or the foreign key's cascade would take the event with it.
    r11 = add_run(c, s1, "succeeded", 6)
    c.sql("INSERT INTO drift_events (endpoint_id, run_id, old_fingerprint_sha256,"
          " new_fingerprint_sha256, changed, detected_at) VALUES (%s, %s, %s, %s,"
          " '{fingerprint}', now() - interval '6 days')", (e3, r11, FP["d"], FP["f"]))
    # Bulk: BULK_RUNS old runs five days ago, each observing BULK_ENDPOINTS endpoints.
    c.sql("INSERT INTO discovery_runs (source_id, trigger, status, queued_at, started_at,"
          " finished_at, attempts) SELECT %s, 'schedule', 'succeeded',"
          " now() - interval '5 days' - make_interval(mins => g),"
          " now() - interval '5 days' - make_interval(mins => g),"
          " now() - interval '5 days' - make_interval(mins => g) + interval '30 seconds', 1"
          " FROM generate_series(1, %s) AS g", (s1, BULK_RUNS))
    bulk = [r[0] for r in c.sql("SELECT id FROM discovery_runs WHERE trigger = 'schedule'"
                                " ORDER BY id")]
    check(len(bulk) == BULK_RUNS, "bulk runs: %d" % len(bulk))
    c.sql("INSERT INTO endpoints (host, address, port, sni, source_id, status, fingerprint_sha256)"
          " SELECT 'bulk' || g || '.example', '192.0.2.20', 1000 + g, '', %s, 'online', %s"
          " FROM generate_series(1, %s) AS g", (s1, FP["e"], BULK_ENDPOINTS))
    c.sql("INSERT INTO endpoint_observations (endpoint_id, run_id, observed_at, outcome,"
          " fingerprint_sha256) SELECT e.id, r.id, r.finished_at, 'ok', %s"
          " FROM endpoints e, discovery_runs r WHERE e.host LIKE 'bulk%%' AND r.trigger = 'schedule'",
          (FP["e"],))
    # R5, an hour ago: every endpoint but e3 and e5 answers; nothing of it may go.
    r5 = add_run(c, s1, "succeeded", 0, hours=1)
    ids["o_e1_r5"] = add_obs(c, e1, r5, "ok", FP["b"], 0, 1)
    ids["o_e2_r5"] = add_obs(c, e2, r5, "ok", FP["a"], 0, 1)
    c.sql("INSERT INTO endpoint_observations (endpoint_id, run_id, observed_at, outcome,"
          " fingerprint_sha256) SELECT id, %s, now() - interval '1 hour', 'ok', %s"
          " FROM endpoints WHERE host LIKE 'bulk%%'", (r5, FP["e"]))
    # R6: a run still running that was queued ten days ago, with an observation as old; e4 has
    # a newer one (and that is ok too), so only the run's state keeps it.
    r6 = add_run(c, s1, "running", None, queued_days=10)
    ids["o_e4_r6"] = add_obs(c, e4, r6, "refused", None, 10)
    ids["o_e4_r5"] = add_obs(c, e4, r5, "ok", FP["a"], 0, 1)
    # Source 2: a successful run twenty days ago (its newest success), a failed run fifteen
    # days ago (goes), and a run queued ten days ago (its newest run, never deleted).
    r9 = add_run(c, s2, "succeeded", 20)
    r10 = add_run(c, s2, "failed", 15)
    r7 = add_run(c, s2, "queued", None, queued_days=10)
    ids.update(r1=r1, r2=r2, r3=r3, r4=r4, r5=r5, r6=r6, r7=r7, r8=r8, r9=r9, r10=r10, r11=r11,
               bulk=bulk)
    return ids


def metric(port, name, **labels):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(want)), text, re.M)
    return float(m.group(1)) if m else 0.0


def wait_event(c, p, event, timeout):
    return c.wait_for(lambda: [e for e in c.log_events(p) if e.get("event") == event],
                      timeout=timeout, what="%s to log %s" % (p.label, event))


def main():
    with harness.Cluster(name="retention", config={"scheduler.tick": "200ms"}) as c:
        c.migrate()
        ids = seed(c)
        before = snapshot(c)
        new_obs = set(r[0] for r in c.sql("SELECT id FROM endpoint_observations"
                                          " WHERE observed_at > now() - interval '1 day'"))
        newest = set(r[0] for r in c.sql(
            "SELECT DISTINCT ON (endpoint_id) id FROM endpoint_observations"
            " ORDER BY endpoint_id, observed_at DESC, id DESC"))
        newest_ok = set(r[0] for r in c.sql(
            "SELECT DISTINCT ON (endpoint_id) id FROM endpoint_observations"
            " WHERE outcome = 'ok' AND fingerprint_sha256 IS NOT NULL"
            " ORDER BY endpoint_id, run_id DESC"))
        hist_before = c.capctl_json("endpoints", "history", "h1.example:443")
        check([h["run_id"] for h in hist_before] == [ids["r5"], ids["r4"], ids["r2"], ids["r1"]],
              "history before: %s" % hist_before)

        # 1. retention 0: kept for ever.
        s = c.start_scheduler(config_overrides={"retention.observations": "0",
                                                "retention.runs": "0"})
        c.wait_for(lambda: c.sql("SELECT stream_id FROM discovery_runs WHERE id = %s",
                                 (ids["r7"],))[0][0], timeout=20,
                   what="the scheduler to publish the queued run")
        time.sleep(2)  # ten ticks
        check(snapshot(c) == before, "retention 0 deleted rows")
        check(not [e for e in c.log_events(s) if e.get("event", "").startswith("retention")],
              "retention 0 ran a pass")
        check(c.stop(s) == 0, "scheduler did not exit 0 on SIGTERM")

        # 2. Another replica holds the lock: nothing is pruned.
        lock = harness.psycopg2.connect(c.pg_url)
        lock.autocommit = True
        with lock.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        port = harness.free_port()
        s = c.start_scheduler(config_overrides={"retention.observations": "1d",
                                                "retention.runs": "1d",
                                                "telemetry.metrics_listen": "127.0.0.1:%d" % port})
        wait_event(c, s, "retention_skipped_other_replica", 20)
        time.sleep(1)
        check(snapshot(c) == before, "rows deleted while another session held the lock")
        lock.close()

        # 3. The next pass (60 ticks later) prunes.
        t0 = time.time()
        ev = wait_event(c, s, "retention_pass", 40)[0]
        print("retention pass after %.1fs: %s" % (time.time() - t0, ev))
        after = snapshot(c)
        gone_obs = before["obs"] - after["obs"]
        gone_runs = before["runs"] - after["runs"]
        check(after["obs"] <= before["obs"] and after["runs"] <= before["runs"], "rows appeared")

        # Nothing newer than the retention went; every drift event and finding stayed.
        check(new_obs <= after["obs"], "new observations deleted: %s" % (new_obs - after["obs"]))
        check(after["drift"] == before["drift"], "drift events deleted")
        check(after["findings"] == before["findings"], "findings deleted")
        check(newest <= after["obs"], "newest observation of an endpoint deleted: %s"
              % (newest - after["obs"]))
        check(newest_ok <= after["obs"], "newest ok observation of an endpoint deleted: %s"
              % (newest_ok - after["obs"]))
        # Kept for what names them, or for their run.
        for k in ("o_e1_r2", "o_e1_r4", "o_e3_r1", "o_e5_r1", "o_e4_r6"):
            check(ids[k] in after["obs"], "observation %s deleted" % k)
        # Old and superseded: gone.
        for k in ("o_e1_r1", "o_e2_r1", "o_e2_r2", "o_e2_r4"):
            check(ids[k] not in after["obs"], "observation %s kept" % k)
        bulk_old = c.sql("SELECT count(*) FROM endpoint_observations o JOIN endpoints e"
                         " ON e.id = o.endpoint_id WHERE e.host LIKE 'bulk%%'"
                         " AND o.observed_at < now() - interval '1 day'")[0][0]
        check(bulk_old == 0, "%d old bulk observations left" % bulk_old)
        check(len(gone_obs) == BULK_RUNS * BULK_ENDPOINTS + 4,
              "observations deleted: %d" % len(gone_obs))

        # Runs: those a kept row names, active ones, and each source's newest (successful) run
        # stay; the rest of the old ones go.
        for k in ("r1", "r2", "r4", "r5", "r6", "r7", "r9", "r11"):
            check(ids[k] in after["runs"], "run %s deleted" % k)
        for k in ("r3", "r8", "r10"):
            check(ids[k] not in after["runs"], "run %s kept" % k)
        check(not set(ids["bulk"]) & after["runs"], "bulk runs kept")
        check(gone_runs == set(ids["bulk"]) | {ids["r3"], ids["r8"], ids["r10"]},
              "runs deleted: %s" % sorted(gone_runs))
        check(c.sql("SELECT first_seen_run_id FROM discovered_certificates"
                    " WHERE fingerprint_sha256 = %s", (FP["c"],)) == [(None,)],
              "certificate C still names its deleted run")
        check(c.sql("SELECT run_id, status FROM findings WHERE id = %s", (ids["f_resolved"],))
              == [(None, "resolved")], "resolved finding of a deleted run")
        check(c.sql("SELECT run_id FROM findings WHERE id = %s", (ids["f_open"],))
              == [(ids["r4"],)], "open finding lost its run")
        dangling = c.sql(
            "SELECT (SELECT count(*) FROM endpoint_observations o WHERE NOT EXISTS"
            "  (SELECT 1 FROM discovery_runs r WHERE r.id = o.run_id)),"
            " (SELECT count(*) FROM drift_events d WHERE NOT EXISTS"
            "  (SELECT 1 FROM discovery_runs r WHERE r.id = d.run_id))")
        check(dangling == [(0, 0)], "rows naming a missing run: %s" % dangling)
        check(c.sql("SELECT count(*) FROM cap_drift_history")[0][0] == len(before["drift"]),
              "cap_drift_history lost a drift")
        check(ev.get("observations_deleted") == len(gone_obs)
              and ev.get("runs_deleted") == len(gone_runs), "the pass's counts: %s" % ev)

        # capctl endpoints history still shows the change, on the run that saw it.
        hist = c.capctl_json("endpoints", "history", "h1.example:443")
        check([h["run_id"] for h in hist] == [ids["r5"], ids["r4"], ids["r2"]],
              "history after: %s" % hist)
        drifts = [h for h in hist if h["drift_event_id"] is not None]
        check([(h["drift_event_id"], h["changed"], h["old_fingerprint_sha256"],
                h["new_fingerprint_sha256"]) for h in drifts]
              == [(ids["drift_old"], ["fingerprint", "issuer"], FP["a"], FP["b"])],
              "drift in history: %s" % drifts)
        r = c.capctl_ok("endpoints", "history", "h1.example:443")
        check("fingerprint,issuer" in r.stdout, "text history lacks the drift:\n%s" % r.stdout)

        # The metric counts what went.
        check(metric(port, "cap_retention_pruned_total", table="endpoint_observations")
              == len(gone_obs), "cap_retention_pruned_total{table=endpoint_observations}")
        check(metric(port, "cap_retention_pruned_total", table="discovery_runs")
              == len(gone_runs), "cap_retention_pruned_total{table=discovery_runs}")

        # The runs still queued and running were left as they were.
        check(c.sql("SELECT status FROM discovery_runs WHERE id IN (%s, %s) ORDER BY id",
                    (ids["r6"], ids["r7"])) == [("running",), ("queued",)], "active runs moved")
        check(c.stop(s) == 0, "scheduler did not exit 0 on SIGTERM")
    print("test_retention: ok")


if __name__ == "__main__":
    main()
