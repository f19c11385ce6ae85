"""SIGTERM leaves no run stuck in `running`: a worker with jobs in flight drains within
worker.drain_grace and exits 0; every run it held is finished, or left with its message
pending so another worker completes it; the scheduler also exits 0 on SIGTERM."""

import time

import harness

N = 3


def main():
    with harness.Cluster(name="sigterm", config={
            "scheduler.tick": "1s",
            "worker.reclaim_idle": "3s",
            "worker.drain_grace": "3s",
            "worker.max_jobs": 8,
            "worker.noop_executor": True,
            "worker.noop_sleep": "30s"}) as c:
        c.migrate()
        sched = c.start_scheduler()
        a = c.start_worker(label="worker-a")
        sids = [c.add_source_sql("long-%d" % i) for i in range(N)]
        runs = [c.insert_run_sql(s) for s in sids]
        c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE status = "
                                 "'running'")[0][0] == N, timeout=20,
                   what="%d runs running on worker-a" % N)
        time.sleep(1)

        t0 = time.time()
        rc = c.stop(a, timeout=20)
        took = time.time() - t0
        assert rc == 0, "worker-a exited %s on SIGTERM (expected 0)" % rc
        assert took < 3 + 5, "worker-a took %.1fs to drain with drain_grace 3s" % took

        # Right after the exit: a run still `running` must have its message pending, so that a
        # reclaim can find it; anything else would be stuck for ever.
        pending_ids = set()
        try:
            for e in c.redis().xpending_range(c.stream, c.group, "-", "+", 1000):
                pending_ids.add(e["message_id"])
        except harness.redis_mod.ResponseError:
            pass
        for r in runs:
            row = c.run_row(r)
            if row["status"] == "running":
                assert row["stream_id"] and row["stream_id"].encode() in pending_ids, \
                    "run %d left running with no pending message (stuck): %s" % (
                        r, harness._short_row(row))
            else:
                assert row["status"] in ("succeeded", "partial", "failed", "queued"), \
                    harness._short_row(row)

        # A second worker finishes whatever was left.
        b = c.start_worker(label="worker-b", config_overrides={"worker.noop_sleep": "0s"})
        for r in runs:
            done = c.wait_run(r, timeout=60)
            assert done["status"] in ("succeeded", "partial"), harness._short_row(done)
        assert c.sql("SELECT count(*) FROM discovery_runs WHERE status = 'running'")[0][0] == 0

        assert c.stop(b) == 0, "worker-b did not exit 0 on SIGTERM"
        rc = c.stop(sched, timeout=15)
        assert rc == 0, "cap-scheduler exited %s on SIGTERM (expected 0)" % rc
        print("ok: worker drained in %.1fs, no run left running" % took)


if __name__ == "__main__":
    main()
