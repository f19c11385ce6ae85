"""A NOTIFY wakes the scheduler to take due sources at once, not only to publish runs already
queued (DESIGN: "every tick (and at once on NOTIFY), takes due sources and run requests";
docs/architecture.md: at once on "a schedule change").

Two notifiers rely on it: a worker whose CT run asks for the next run at once (run_again sets
the source's next_run_at to now() and notifies 'source N'), and a saved schedule change (the
sources trigger notifies so the new schedule is judged). With a 60 s tick, both must be acted on
within a few seconds."""

import time

import harness

BOUND_S = 5


def main():
    with harness.Cluster(name="review-notify-due", config={"scheduler.tick": "60s"}) as c:
        c.migrate()
        backlog = c.add_source_sql("ct-backlog", schedule="every 1h")
        edited = c.add_source_sql("edited", schedule="manual")
        sched = c.start_scheduler()
        c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_sources WHERE "
                                 "schedule_judged = schedule")[0][0] == 2, timeout=15,
                   what="the first sweep to judge both schedules")
        time.sleep(1)   # the first sweep is over; the next tick is ~60 s away
        assert not c.runs(backlog), c.runs(backlog)

        # What worker.c's SQL_RUN_AGAIN does after a CT run that left a backlog.
        t0 = time.time()
        c.sql("WITH s AS (UPDATE discovery_sources SET next_run_at = now() WHERE id = %s "
              "RETURNING id) SELECT pg_notify('cap_scheduler', 'source ' || id) FROM s",
              (backlog,))
        # A schedule change saved by the UI (the trigger notifies).
        c.sql("UPDATE discovery_sources SET schedule = 'every 30m' WHERE id = %s", (edited,))

        problems = []
        deadline = t0 + BOUND_S
        while time.time() < deadline and not (
                c.runs(backlog) and c.sql("SELECT schedule_judged FROM discovery_sources "
                                          "WHERE id = %s", (edited,))[0][0] == "every 30m"):
            time.sleep(0.2)
        if not c.runs(backlog):
            problems.append("no run for source %d %ds after next_run_at = now() + NOTIFY "
                            "(run_again); it waits for the 60 s tick" % (backlog, BOUND_S))
        judged = c.sql("SELECT schedule_judged, next_run_at FROM discovery_sources WHERE id = %s",
                       (edited,))[0]
        if judged[0] != "every 30m":
            problems.append("schedule change of source %d not judged %ds after its NOTIFY "
                            "(schedule_judged %r, next_run_at %s)"
                            % (edited, BOUND_S, judged[0], judged[1]))
        assert not problems, "; ".join(problems)
        c.assert_running(sched)
        assert c.stop(sched) == 0
        print("ok: NOTIFY acted on within %.1fs" % (time.time() - t0))


if __name__ == "__main__":
    main()
