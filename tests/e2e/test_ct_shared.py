"""One reader per CT log for every source (issue 15): several ct_log sources with different
suffixes on one test log get exactly their own matches (no gap, no double) while the log's
entries are downloaded once, counted at the log server; a source added later backfills from its
own start while the shared tail goes on and then joins it; a disabled source is not read for and
catches up by itself when enabled again; two workers reading at once still read the log once;
a log answering 429 is honoured, counted in the run, the database and the metrics, and never
fails the run; requests keep to ct.max_requests_per_second."""

import re
import sys
import time
import urllib.request

import harness
from ctlog_util import TestLog, add_source, checkpoint, latest_run, source_id, wait_idle

ENTRIES = 1000
SUFFIX = {"sa": "example.com", "sb": "xn--bcher-kva.example", "sc": "other.test",
          "sd": "www.example.com"}


def name_matches(name, suffix):
    n = name.lower().rstrip(".")
    return n == suffix or n.endswith("." + suffix)


def expected(truth, suffix, lo, hi):
    return [(t["index"], t["fingerprint"]) for t in truth
            if lo <= t["index"] < hi and any(name_matches(n, suffix) for n in t["names"])]


def got(c, sid, url):
    return [tuple(r) for r in c.sql("SELECT log_index, fingerprint_sha256 FROM ct_sightings "
                                    "WHERE source_id = %s AND log_url = %s ORDER BY log_index",
                                    (sid, url))]


def check(c, log, sid, name, lo, hi, what):
    want = expected(log.truth(), SUFFIX[name], lo, hi)
    have = got(c, sid, log.url)
    assert have == want, "%s, %s: %d sightings, %d expected; missing %s; extra %s" % (
        what, name, len(have), len(want), sorted(set(want) - set(have))[:5],
        sorted(set(have) - set(want))[:5])
    return len(want)


def served(log):
    return log.stats()["entries_served"]


def trigger_all(c, names):
    """Triggers every source at once and waits until all of them are idle again."""
    before = {n: c.sql("SELECT coalesce(max(id), 0) FROM discovery_runs WHERE source_id = %s",
                       (source_id(c, n),))[0][0] for n in names}
    for n in names:
        c.capctl_ok("source", "trigger", n)
    for n in names:
        sid = source_id(c, n)
        c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE source_id = %s AND "
                                 "id > %s", (sid, before[n]))[0][0] > 0, timeout=30,
                   what="run of %s queued" % n)
    runs = {}
    for n in names:
        runs[n] = wait_idle(c, source_id(c, n), timeout=180)
        assert runs[n]["status"] == "succeeded", (n, runs[n])
    return runs


def metric(port, name, label):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    m = re.search(r'^%s\{log="%s"\} (\S+)$' % (re.escape(name), re.escape(label)), text, re.M)
    return float(m.group(1)) if m else 0.0


def main():
    mport = harness.free_port()
    cfg = {"ct.run_budget": 100000, "ct.max_requests_per_second": 40}
    with harness.Cluster(name="ctshared", config=cfg) as c, \
            TestLog(c.tmpdir, entries=ENTRIES, batch_max=100) as log:
        c.capctl_ok("migrate")
        c.start_scheduler()
        worker = c.start_worker(
            config_overrides={"telemetry.metrics_listen": "127.0.0.1:%d" % mport})

        # The generator's ground truth and this test's suffix rule agree.
        truth = log.truth()
        for t in truth:
            mine = any(name_matches(n, s) for n in t["names"]
                       for s in ("example.com", "xn--bcher-kva.example"))
            assert mine == t["match"], t

        def add(name, *extra):
            sid = add_source(c, name, "--domain", SUFFIX[name], "--log", log.url, "--log-key",
                             log.key_file, *extra)
            c.wait_for(lambda: c.sql("SELECT 1 FROM discovery_runs WHERE source_id = %s",
                                     (sid,)), timeout=30, what="first run of %s" % name)
            run = wait_idle(c, sid)
            assert run["status"] == "succeeded", (name, run)
            return sid

        # --- three sources start at the tree size: their first runs only place checkpoints --
        ids = {n: add(n) for n in ("sa", "sb", "sd")}
        for n in ids:
            assert checkpoint(c, ids[n], log.url)["next_index"] == ENTRIES, n
        lease = c.sql_dicts("SELECT * FROM ct_log_readers")
        assert len(lease) == 1 and lease[0]["next_index"] == ENTRIES and \
            lease[0]["holder_run_id"] is None, lease

        # --- growth: the new entries are downloaded once for all three ---------------------
        s0 = served(log)
        size = log.grow(600)
        runs = trigger_all(c, ["sa", "sb", "sd"])
        assert served(log) - s0 == 600, "600 new entries, %d served" % (served(log) - s0)
        for n in ids:
            assert checkpoint(c, ids[n], log.url)["next_index"] == size, n
            check(c, log, ids[n], n, ENTRIES, size, "shared read")
        left = sum(int((r["stats"] or {}).get("logs_left_to_shared_reader", 0))
                   for r in runs.values())
        print("growth of 600: served once; runs left the log to the shared reader %d times"
              % left)

        # --- a source added later backfills from 0 while the shared tail goes on ----------
        c.capctl_ok("source", "add", "sc", "--type", "ct_log", "--domain", SUFFIX["sc"], "--log",
                    log.url, "--log-key", log.key_file, "--backfill-from", "0")
        ids["sc"] = source_id(c, "sc")
        c.wait_for(lambda: c.sql("SELECT schedule_judged IS NOT NULL FROM discovery_sources "
                                 "WHERE id = %s", (ids["sc"],))[0][0], timeout=30, what="judged")
        size = log.grow(300)
        trigger_all(c, ["sc", "sa"])
        for _ in range(5):
            if checkpoint(c, ids["sc"], log.url)["next_index"] == size:
                break
            trigger_all(c, ["sc"])
        for n in ids:
            assert checkpoint(c, ids[n], log.url)["next_index"] == size, (n, size)
        check(c, log, ids["sc"], "sc", 0, size, "backfill then join")
        for n in ("sa", "sb", "sd"):
            check(c, log, ids[n], n, ENTRIES, size, "tail during a backfill")

        # It joined: a read triggered by another source alone now moves it too, once.
        s0 = served(log)
        size = log.grow(200)
        trigger_all(c, ["sa"])
        assert served(log) - s0 == 200, "200 new entries, %d served" % (served(log) - s0)
        for n in ids:
            assert checkpoint(c, ids[n], log.url)["next_index"] == size, (n, size)
        check(c, log, ids["sc"], "sc", 0, size, "joined")
        for n in ("sa", "sb", "sd"):
            check(c, log, ids[n], n, ENTRIES, size, "joined")

        # --- a disabled source costs nothing and is not read for; enabled again, it catches
        # up by itself and joins -------------------------------------------------------------
        c.capctl_ok("source", "disable", "sd")
        d_at = size
        s0 = served(log)
        size = log.grow(200)
        trigger_all(c, ["sb"])
        assert served(log) - s0 == 200
        assert checkpoint(c, ids["sd"], log.url)["next_index"] == d_at
        check(c, log, ids["sd"], "sd", ENTRIES, d_at, "disabled")
        for n in ("sa", "sb", "sc"):
            assert checkpoint(c, ids[n], log.url)["next_index"] == size, (n, size)
        c.capctl_ok("source", "enable", "sd")
        trigger_all(c, ["sd"])
        assert checkpoint(c, ids["sd"], log.url)["next_index"] == size
        check(c, log, ids["sd"], "sd", ENTRIES, size, "enabled again")
        s0 = served(log)
        size = log.grow(100)
        trigger_all(c, ["sc"])
        assert served(log) - s0 == 100
        for n in ids:
            assert checkpoint(c, ids[n], log.url)["next_index"] == size, (n, size)
            check(c, log, ids[n], n, 0 if n == "sc" else ENTRIES, size, "after re-enable")

        # --- a log answering 429 for a while: honoured, counted, never a failed run --------
        m0 = metric(mport, "cap_ct_rate_limited_total", log.url)
        db0 = c.sql("SELECT rate_limited FROM ct_log_rate WHERE log_url = %s", (log.url,))[0][0]
        size = log.grow(300)
        log.fault("429", count=3, arg=1)
        runs = trigger_all(c, ["sa"])
        stats = runs["sa"]["stats"] or {}
        assert int(stats.get("rate_limited", 0)) >= 3, stats
        assert metric(mport, "cap_ct_rate_limited_total", log.url) - m0 >= 3
        assert c.sql("SELECT rate_limited FROM ct_log_rate WHERE log_url = %s",
                     (log.url,))[0][0] - db0 >= 3
        for n in ids:
            check(c, log, ids[n], n, 0 if n == "sc" else ENTRIES, size, "after 429")
        # It keeps answering 429 past what one run waits for: the run stops where it is,
        # succeeds, and the next one goes on.
        size = log.grow(300)
        log.fault("429", count=12, arg=0)
        sid = ids["sb"]
        before = latest_run(c, sid)["id"]
        c.capctl_ok("source", "trigger", "sb")
        wait_idle(c, sid, timeout=300, until=lambda: (checkpoint(c, sid, log.url) or {}).get(
            "next_index") == size)
        log.clear()
        runs_after = c.sql_dicts("SELECT status, stats FROM discovery_runs WHERE source_id = %s "
                                 "AND id > %s ORDER BY id", (sid, before))
        assert all(r["status"] == "succeeded" for r in runs_after), runs_after
        assert sum(int((r["stats"] or {}).get("rate_limited", 0)) for r in runs_after) >= 12
        for n in ids:
            check(c, log, ids[n], n, 0 if n == "sc" else ENTRIES, size, "after a 429 storm")

        # --- two workers, every source triggered at once: still one read of the log --------
        worker2 = c.start_worker(label="worker2")
        s0 = served(log)
        size = log.grow(400)
        trigger_all(c, ["sa", "sb", "sc", "sd"])
        assert served(log) - s0 == 400, "400 new entries, %d served by two workers" % (
            served(log) - s0)
        holders = c.sql("SELECT count(DISTINCT worker) FROM discovery_runs WHERE "
                        "status = 'succeeded' AND finished_at > now() - interval '1 minute'")
        for n in ids:
            assert checkpoint(c, ids[n], log.url)["next_index"] == size, (n, size)
            check(c, log, ids[n], n, 0 if n == "sc" else ENTRIES, size, "two workers")
        print("two workers: 400 new entries served once (runs on %s workers)" % holders[0][0])
        c.stop(worker2)

        # --- the request rate stays within ct.max_requests_per_second ----------------------
        c.stop(worker)
        worker = c.start_worker(config_overrides={"ct.max_requests_per_second": 4})
        size = log.grow(1200)
        t0 = time.time()
        n0 = log.stats()["get-entries"]
        trigger_all(c, ["sa"])
        took = time.time() - t0
        n = log.stats()["get-entries"] - n0
        stamps = log.stats()["last_entries_at"][-n:]
        assert n >= 12, n
        span = stamps[-1] - stamps[0]
        # n requests at 4 per second cannot start within less than (n - 1) / 4 s (the tree
        # head and proofs share the same pace, so the real span is longer).
        assert span >= (n - 1) / 4.0 * 0.9, "%d get-entries in %.2f s at 4/s" % (n, span)
        for n_ in ids:
            check(c, log, ids[n_], n_, 0 if n_ == "sc" else ENTRIES, size, "paced")
        print("paced: %d get-entries over %.1f s (run %.1f s)" % (n, span, took))
        print("ct shared reader e2e: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
