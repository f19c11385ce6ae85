"""kill -9 of a worker in the middle of a job: after worker.reclaim_idle another worker takes
the message (XAUTOCLAIM) and the run (a second claim, attempts 2) and completes it."""

import signal
import time

import harness

NOOP_SLEEP_S = 6


def main():
    with harness.Cluster(name="kill-worker", config={
            "scheduler.tick": "1s",
            "worker.reclaim_idle": "3s",
            "worker.noop_executor": True,
            "worker.noop_sleep": "%ds" % NOOP_SLEEP_S}) as c:
        c.migrate()
        sid = c.add_source_sql("victim")
        c.start_scheduler()
        a = c.start_worker(label="worker-a")
        run_id = c.insert_run_sql(sid)

        row = c.wait_run(run_id, statuses=("running",), timeout=20)
        assert row["attempts"] == 1, harness._short_row(row)
        first_worker = row["worker"]
        assert first_worker, "running run has no worker name: %s" % harness._short_row(row)
        # The message is pending for worker A's consumer.
        assert c.pending_count() == 1, "pending messages: %d" % c.pending_count()

        time.sleep(1)
        assert c.stop(a, sig=signal.SIGKILL) == -signal.SIGKILL
        killed_at = time.time()
        assert c.run_row(run_id)["status"] == "running"

        b = c.start_worker(label="worker-b")
        done = c.wait_run(run_id, timeout=60)
        took = time.time() - killed_at
        assert done["status"] == "succeeded", harness._short_row(done)
        assert done["attempts"] == 2, "expected a second claim, got %s" % harness._short_row(done)
        assert done["worker"] and done["worker"] != first_worker, \
            "run finished by %r, the killed worker was %r" % (done["worker"], first_worker)
        assert done["error"] in (None, ""), done["error"]
        # Not before reclaim_idle (3 s) + the job itself; not much later either.
        assert took >= 3, "reclaimed %.1fs after the kill, before worker.reclaim_idle" % took
        assert took < 45, "took %.1fs" % took
        c.wait_for(lambda: c.pending_count() == 0, timeout=15,
                   what="the reclaimed message to be acknowledged")
        # Exactly one run for the source: the reclaim did not create another.
        assert len(c.runs(sid)) == 1, c.runs(sid)
        c.assert_running(b)
        assert c.stop(b) == 0, "worker-b did not exit 0 on SIGTERM"
        print("ok: run %d completed by %s after the kill of %s (%.1fs)"
              % (run_id, done["worker"], first_worker, took))


if __name__ == "__main__":
    main()
