"""The scheduler judges what the database cannot: a source row with a schedule it cannot
parse (inserted by another program) is disabled with the reason in last_error. And after a
day of scheduler downtime a due source gets one catch-up run, not a storm."""

import time

import harness


def source(c, sid):
    return c.sql_dicts("SELECT enabled, next_run_at, last_error, now() AS now "
                       "FROM discovery_sources WHERE id = %s", (sid,))[0]


def main():
    with harness.Cluster(name="catchup", config={
            "scheduler.tick": "1s",
            "worker.noop_executor": True,     # runs end at once, so a storm would show
            "worker.noop_sleep": "0s"}) as c:
        c.migrate()
        bad = c.add_source_sql("bad-schedule", schedule="every banana")
        hourly = c.add_source_sql("hourly", schedule="every 1h")
        cron = c.add_source_sql("cron", schedule="7 3 * * *")
        c.start_worker()
        s = c.start_scheduler(label="scheduler-1")

        # A bad schedule: disabled, with a reason that names the value.
        row = c.wait_for(lambda: (lambda r: r if r["last_error"] else None)(source(c, bad)),
                         timeout=15, what="the scheduler to judge the schedule 'every banana'")
        assert row["enabled"] is False, row
        assert "banana" in row["last_error"], "last_error does not name the value: %r" % \
            row["last_error"]
        assert row["next_run_at"] is None, row
        # Good schedules: judged, next run in the future, within one period.
        for sid, period_s in ((hourly, 3600), (cron, 86400)):
            r = c.wait_for(lambda: (lambda x: x if x["next_run_at"] else None)(source(c, sid)),
                           timeout=15, what="next_run_at of source %d" % sid)
            assert r["enabled"] and r["last_error"] is None, r
            ahead = (r["next_run_at"] - r["now"]).total_seconds()
            assert 0 < ahead <= period_s, "next run %.0fs ahead for source %d" % (ahead, sid)
        assert c.runs() == [], "a run before any due time: %s" % c.runs()

        # Downtime: the scheduler is stopped and a day passes (due times moved a day back).
        assert c.stop(s) == 0
        c.sql("UPDATE discovery_sources SET next_run_at = next_run_at - interval '1 day' "
              "- interval '1 hour' WHERE id IN (%s, %s)", (hourly, cron))
        c.start_scheduler(label="scheduler-2")
        c.start_scheduler(label="scheduler-3")
        for sid in (hourly, cron):
            c.wait_for(lambda: c.runs(sid), timeout=15,
                       what="the catch-up run of source %d" % sid)
        time.sleep(6)  # several ticks of two schedulers: a storm would show now
        for sid, period_s in ((hourly, 3600), (cron, 86400)):
            runs = c.runs(sid)
            assert len(runs) == 1, "source %d: %d runs after a day of downtime (expected one " \
                "catch-up run): %s" % (sid, len(runs), [harness._short_row(r) for r in runs])
            assert runs[0]["trigger"] == "schedule" and runs[0]["status"] == "succeeded", \
                harness._short_row(runs[0])
            r = source(c, sid)
            ahead = (r["next_run_at"] - r["now"]).total_seconds()
            assert 0 < ahead <= period_s, "after catch-up, next run %.0fs ahead" % ahead
        assert c.runs(bad) == []
        print("ok: bad schedule disabled (%s); one catch-up run per source" % row["last_error"])


if __name__ == "__main__":
    main()
