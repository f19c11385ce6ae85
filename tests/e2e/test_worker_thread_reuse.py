"""A worker that is not busy runs its jobs on the job thread that went idle last: runs one after
another all land on one job thread, so on one PostgreSQL session of the worker's ("cap-worker-job"),
whose statements are prepared and planned and whose caches are warm. Runs that overlap still
spread over as many threads as they need."""

import harness

RUNS = 8


def job_sessions(c):
    return c.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                 "'cap-worker-job'")[0][0]


def main():
    with harness.Cluster(name="threadreuse", config={
            "worker.noop_executor": True,
            "worker.noop_sleep": "1s",
            "worker.max_jobs": 8}) as c:
        c.migrate()
        c.add_source_sql("seq")
        c.start_scheduler()
        c.start_worker()
        c.wait_for(lambda: c.group_info() is not None, 30, "the worker's consumer group")
        for i in range(RUNS):
            r = c.capctl_ok("--json", "source", "trigger", "seq", "--wait", "--timeout", "60s")
            assert '"succeeded"' in r.stdout, "run %d did not succeed: %s" % (i + 1, r.stdout)
        n = job_sessions(c)
        assert n == 1, ("%d runs one after another opened %d job sessions; the idle thread that "
                        "ran the last one should take the next (LIFO)" % (RUNS, n))

        # Runs queued together still get a thread each: they overlap in time.
        ids = [c.add_source_sql("par%d" % i) for i in range(3)]
        c.sql("INSERT INTO discovery_runs (source_id, trigger) SELECT unnest(%s::bigint[]), "
              "'manual'", (ids,))
        rows = c.sql("SELECT id FROM discovery_runs WHERE source_id = ANY(%s)", (ids,))
        runs = [c.wait_run(rid, timeout=60) for (rid,) in rows]
        assert all(r["status"] == "succeeded" for r in runs), runs
        start = max(r["started_at"] for r in runs)
        end = min(r["finished_at"] for r in runs)
        assert start < end, "3 runs queued at once ran one after another: %s" % [
            (r["started_at"], r["finished_at"]) for r in runs]
        n = job_sessions(c)
        assert n >= 3, "3 overlapping runs used %d job sessions" % n
        print("ok: %d runs one after another on 1 job session; 3 queued at once overlapped, "
              "%d job sessions" % (RUNS, n))


if __name__ == "__main__":
    main()
