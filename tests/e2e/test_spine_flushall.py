"""FLUSHALL on Redis while runs are queued (and one is running) loses no run: the scheduler
publishes runs still queued after scheduler.requeue_after again, and the worker recreates its
consumer group."""

import time

import harness

N = 4


def main():
    with harness.Cluster(name="flushall", config={
            "scheduler.tick": "1s",
            "scheduler.requeue_after": "3s",
            "worker.reclaim_idle": "3s",
            "worker.max_jobs": 1,              # one at a time, so the others stay queued
            "worker.noop_executor": True,
            "worker.noop_sleep": "2s"}) as c:
        c.migrate()
        sched = c.start_scheduler()
        w = c.start_worker()
        sids = [c.add_source_sql("src-%d" % i) for i in range(N)]
        runs = [c.insert_run_sql(s) for s in sids]

        # All published, at least one running, the rest still queued in the stream.
        c.wait_for(lambda: all(c.run_row(r)["stream_id"] for r in runs), timeout=15,
                   what="the scheduler to publish %d runs" % N)
        c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE status = "
                                 "'running'")[0][0] == 1, timeout=15, what="one run running")
        queued = c.sql("SELECT count(*) FROM discovery_runs WHERE status = 'queued'")[0][0]
        assert queued >= 2, "expected runs still queued before FLUSHALL, have %d" % queued
        before = {r: c.run_row(r)["stream_id"] for r in runs}

        rd = c.redis()
        assert rd.xlen(c.stream) >= 1
        rd.flushall()
        flushed_at = time.time()
        assert rd.exists(c.stream) == 0

        for r in runs:
            done = c.wait_run(r, timeout=60)
            assert done["status"] == "succeeded", harness._short_row(done)
        took = time.time() - flushed_at

        rows = c.runs()
        assert len(rows) == N, "runs created or lost: %d rows for %d sources" % (len(rows), N)
        republished = [r for r in runs if c.run_row(r)["stream_id"] != before[r]]
        assert republished, "no run was published again after FLUSHALL"
        for row in rows:
            # A run that was queued when Redis lost the stream ran once; the one running at the
            # time may have been claimed a second time, never more.
            assert 1 <= row["attempts"] <= 2, harness._short_row(row)
        # The worker recreated its group on the new stream and drained it.
        assert c.group_info() is not None, "consumer group missing after FLUSHALL"
        c.wait_for(lambda: c.pending_count() == 0, timeout=15,
                   what="the republished jobs to be acknowledged")
        c.assert_running(sched)
        c.assert_running(w)
        assert c.stop(w) == 0 and c.stop(sched) == 0
        print("ok: %d runs survived FLUSHALL (%d re-published), %.1fs"
              % (N, len(republished), took))


if __name__ == "__main__":
    main()
