"""Two schedulers and one due source (`every 10s`) give exactly one run per due time: no
double runs (SKIP LOCKED) and no missed due time."""

import datetime
import math
import time

import harness

EVERY_S = 10
OBSERVE_S = 36


def main():
    with harness.Cluster(name="two-sched", config={
            "scheduler.tick": "1s",
            "worker.noop_executor": True,    # runs finish at once, so a double would show
            "worker.noop_sleep": "0s"}) as c:
        c.migrate()
        sid = c.add_source_sql("every10", schedule="every %ds" % EVERY_S)
        s1 = c.start_scheduler(label="scheduler-a")
        s2 = c.start_scheduler(label="scheduler-b")
        w = c.start_worker(label="worker")

        # The source gets judged: next_run_at set, enabled, no error.
        c.wait_for(lambda: c.sql("SELECT next_run_at FROM discovery_sources WHERE id = %s",
                                 (sid,))[0][0] is not None,
                   timeout=15, what="the scheduler to set next_run_at of an `every 10s` source")
        err = c.sql("SELECT enabled, last_error FROM discovery_sources WHERE id = %s", (sid,))[0]
        assert err == (True, None), "source disabled by the scheduler: %r" % (err,)

        t0 = time.time()
        while time.time() - t0 < OBSERVE_S:
            for p in (s1, s2, w):
                c.assert_running(p)
            time.sleep(1)

        # Let the last run finish, then stop the schedulers so nothing moves while we count.
        assert c.stop(s1) == 0, "scheduler-a did not exit 0 on SIGTERM"
        assert c.stop(s2) == 0, "scheduler-b did not exit 0 on SIGTERM"
        c.wait_for(lambda: not c.sql("SELECT 1 FROM discovery_runs WHERE status IN "
                                     "('queued', 'running')"),
                   timeout=20, what="the last runs to finish")

        runs = c.runs(sid)
        nxt = c.sql("SELECT next_run_at FROM discovery_sources WHERE id = %s", (sid,))[0][0]
        assert runs, "no run in %ds for an `every %ds` source" % (OBSERVE_S, EVERY_S)
        for r in runs:
            assert r["trigger"] == "schedule", r
            assert r["status"] == "succeeded", harness._short_row(r)
            assert r["attempts"] == 1, "run %s ran %s times" % (r["id"], r["attempts"])

        # Each run belongs to one due time: next_run_at - k*EVERY_S. The run of due time T is
        # queued a little after T (tick and load), never before and never 10 s late.
        slots = []
        for r in runs:
            before = (nxt - r["queued_at"]).total_seconds()
            k = math.ceil(before / EVERY_S - 1e-6)
            lag = k * EVERY_S - before
            assert 0 <= lag < 5, "run %s queued %.2fs after its due time" % (r["id"], lag)
            slots.append(k)
        detail = "; ".join("run %s queued %s slot %d" % (r["id"], r["queued_at"].time(), k)
                           for r, k in zip(runs, slots))
        assert len(set(slots)) == len(slots), "two runs for one due time: " + detail
        # Consecutive due times, none skipped.
        assert sorted(slots, reverse=True) == list(range(max(slots), min(slots) - 1, -1)), \
            "a due time was skipped: " + detail
        # 36 s observed with a 10 s period: 3 or 4 due times (plus one while stopping).
        assert 3 <= len(runs) <= 5, "%d runs in %ds: %s" % (len(runs), OBSERVE_S, detail)
        # The spacing of queued_at agrees: never two within one period.
        qs = [r["queued_at"] for r in runs]
        for a, b in zip(qs, qs[1:]):
            gap = (b - a).total_seconds()
            assert gap > EVERY_S - 4, "runs %.2fs apart: %s" % (gap, detail)
        print("ok: %d runs, one per due time (%s)" % (len(runs), detail))


if __name__ == "__main__":
    main()
