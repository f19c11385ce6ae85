"""PostgreSQL is the source of truth: a job that completes while Redis is unreachable still
gets its final status written to PostgreSQL (only the XACK has to wait), and is not run a
second time once Redis is back."""

import time

import harness

JOB_S = 2
OUTAGE_S = 10


def main():
    with harness.Cluster(name="review-redis-outage", config={
            "scheduler.tick": "1s",
            "worker.reclaim_idle": "3s",
            "worker.max_jobs": 1,
            "worker.noop_executor": True,
            "worker.noop_sleep": "%ds" % JOB_S}) as c:
        c.migrate()
        sid = c.add_source_sql("during-outage")
        sched = c.start_scheduler()
        w = c.start_worker()
        run_id = c.insert_run_sql(sid)
        c.wait_run(run_id, statuses=("running",), timeout=20)

        c.stop_redis()
        down_at = time.time()
        row = None
        while time.time() < down_at + OUTAGE_S:
            row = c.run_row(run_id)
            if row["status"] != "running":
                break
            time.sleep(0.2)
        during = dict(row)
        c.start_redis()
        final = c.wait_run(run_id, timeout=60)
        assert during["status"] == "succeeded", (
            "the %ds job finished during a %ds Redis outage but PostgreSQL still says %s; "
            "after Redis came back the run ended %s with attempts=%s (the result was dropped "
            "and the job run again): %s"
            % (JOB_S, OUTAGE_S, during["status"], final["status"], final["attempts"],
               harness._short_row(final)))
        assert final["attempts"] == 1, harness._short_row(final)
        c.wait_for(lambda: c.pending_count() == 0, timeout=20, what="the message to be acked")
        c.assert_running(w)
        assert c.stop(w) == 0 and c.stop(sched) == 0
        print("ok: result written during the Redis outage")


if __name__ == "__main__":
    main()
