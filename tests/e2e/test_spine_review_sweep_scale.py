"""The scheduler's sweep stays cheap with a large run history: with 100,000 finished runs and
a handful of queued ones, a sweep must not read the whole discovery_runs table (DESIGN: every
step walks its own partial index)."""

import time

import harness

HISTORY = 100000
SWEEPS_S = 6


def table_reads(c):
    row = c.sql("SELECT coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0), "
                "coalesce(seq_scan, 0) FROM pg_stat_user_tables WHERE relname = 'discovery_runs'")
    return row[0]


def main():
    with harness.Cluster(name="review-sweep-scale", config={
            "scheduler.tick": "1s",
            "scheduler.requeue_after": "1s"}) as c:
        c.migrate()
        sid = c.add_source_sql("history")
        c.sql("INSERT INTO discovery_runs (source_id, trigger, status, attempts, queued_at, "
              "started_at, finished_at, heartbeat_at, published_at, stream_id) "
              "SELECT %s, 'schedule', 'succeeded', 1, now() - interval '1 day', "
              "now() - interval '1 day', now() - interval '1 day', now() - interval '1 day', "
              "now() - interval '1 day', '1-' || g FROM generate_series(1, %s) g",
              (sid, HISTORY))
        # A few live runs, as in a busy system: queued ones (published long ago), running ones.
        for i in range(5):
            s = c.add_source_sql("live-%d" % i)
            c.insert_run_sql(s)
        c.sql("VACUUM ANALYZE discovery_runs")
        sched = c.start_scheduler()
        c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE status = 'queued' "
                                 "AND stream_id IS NOT NULL")[0][0] == 5,
                   timeout=20, what="the scheduler to publish the queued runs")
        time.sleep(2)
        c.sql("SELECT pg_stat_force_next_flush()")
        before = table_reads(c)
        t0 = time.time()
        time.sleep(SWEEPS_S)
        c.assert_running(sched)
        time.sleep(1.5)   # let the scheduler's backend flush its counters
        after = table_reads(c)
        secs = time.time() - t0
        seq_rows = after[0] - before[0]
        idx_rows = after[1] - before[1]
        per_sweep = (seq_rows + idx_rows) / max(1.0, secs)
        assert per_sweep < HISTORY / 10, (
            "the sweep reads %.0f discovery_runs rows per second with %d finished runs and 5 "
            "live ones (seq scans: %d, rows by seq scan: %d, by index: %d over %.1fs)"
            % (per_sweep, HISTORY, after[2] - before[2], seq_rows, idx_rows, secs))
        assert c.stop(sched) == 0
        print("ok: %.0f rows read per second of sweeping over %d runs" % (per_sweep, HISTORY))


if __name__ == "__main__":
    main()
