"""A manual trigger (capctl source trigger) and a trigger on save reach the stream through
LISTEN/NOTIFY within seconds, with a 60 s scheduler tick that would otherwise wait."""

import time

import harness

BOUND_S = 5.0   # generous: sanitizers, 2 shared cores


def published(c, run_id):
    row = c.run_row(run_id)
    return row if row and row["stream_id"] and row["published_at"] else None


def main():
    with harness.Cluster(name="trigger", config={
            "scheduler.tick": "60s",
            "worker.noop_executor": True,
            "worker.noop_sleep": "0s"}) as c:
        c.migrate()
        c.add_source_sql("lab")
        sched = c.start_scheduler()
        w = c.start_worker()
        # Let the scheduler finish its start-up sweep; from now on only a NOTIFY (or the tick,
        # 60 s away) makes it publish.
        c.wait_for(lambda: c.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                 "'certautopilot' AND pid <> pg_backend_pid()")[0][0] > 0,
                   timeout=15, what="the scheduler to connect to PostgreSQL")
        time.sleep(3)
        c.assert_running(sched)
        assert c.sql("SELECT count(*) FROM discovery_runs")[0][0] == 0

        latencies = []
        for i in range(2):
            t0 = time.time()
            r = c.capctl_ok("source", "trigger", "lab")
            rows = c.sql("SELECT id FROM discovery_runs WHERE status IN ('queued', 'running', "
                         "'succeeded') AND trigger = 'manual' ORDER BY id DESC LIMIT 1")
            assert rows, "capctl source trigger made no manual run (stdout: %r)" % r.stdout
            run_id = rows[0][0]
            row = c.wait_for(lambda: published(c, run_id), timeout=BOUND_S,
                             what="manual run %d to be published within %.0fs (tick is 60s, so "
                                  "only LISTEN/NOTIFY can do it)" % (run_id, BOUND_S))
            latencies.append(time.time() - t0)
            lag = (row["published_at"] - row["queued_at"]).total_seconds()
            assert 0 <= lag < BOUND_S, "published %.2fs after queued" % lag
            # A stream entry with that id exists and carries the run.
            entries = c.redis().xrange(c.stream, row["stream_id"], row["stream_id"])
            assert len(entries) == 1, "stream entry %s of run %d not in %s" % (
                row["stream_id"], run_id, c.stream)
            done = c.wait_run(run_id, timeout=30)
            assert done["status"] == "succeeded", harness._short_row(done)
            start_lag = (done["started_at"] - done["queued_at"]).total_seconds()
            assert 0 <= start_lag < BOUND_S, "run %d started %.2fs after it was queued" % (
                run_id, start_lag)

        # Trigger on save, from a plain SQL insert (as the product UI does it).
        t0 = time.time()
        sid = c.add_source_sql("saved", trigger_on_save=True)
        rows = c.sql("SELECT id, trigger FROM discovery_runs WHERE source_id = %s", (sid,))
        assert len(rows) == 1 and rows[0][1] == "save", rows
        c.wait_for(lambda: published(c, rows[0][0]), timeout=BOUND_S,
                   what="trigger-on-save run to be published within %.0fs" % BOUND_S)
        latencies.append(time.time() - t0)
        assert c.wait_run(rows[0][0], timeout=30)["status"] == "succeeded"

        c.assert_running(sched)
        c.assert_running(w)
        print("ok: published after %s" % ", ".join("%.2fs" % x for x in latencies))


if __name__ == "__main__":
    main()
