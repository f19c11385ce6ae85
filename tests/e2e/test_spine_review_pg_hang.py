"""SIGTERM is honoured within worker.drain_grace even when PostgreSQL stops answering (a
partition that drops packets, a backend stuck on a lock): the worker's main loop must not sit in
a database call without a bound, where it also stops every heartbeat."""

import os
import signal
import time

import harness

GRACE_S = 3


def main():
    with harness.Cluster(name="review-pg-hang", config={
            "scheduler.tick": "1s",
            "worker.reclaim_idle": "2s",
            "worker.drain_grace": "%ds" % GRACE_S,
            "worker.noop_executor": True,
            "worker.noop_sleep": "60s"}) as c:
        c.migrate()
        sid = c.add_source_sql("long")
        sched = c.start_scheduler()
        w = c.start_worker()
        run_id = c.insert_run_sql(sid)
        c.wait_run(run_id, statuses=("running",), timeout=20)
        time.sleep(1)
        c.stop(sched)
        # The backend of the worker's main connection stops answering.
        pids = [r[0] for r in c.sql("SELECT pid FROM pg_stat_activity "
                                    "WHERE application_name = 'cap-worker'")]
        assert len(pids) == 1, pids
        os.kill(pids[0], signal.SIGSTOP)
        try:
            time.sleep(2)        # a heartbeat is now waiting on it
            t0 = time.time()
            rc = c.stop(w, sig=signal.SIGTERM, timeout=GRACE_S + 12)
            took = time.time() - t0
        finally:
            os.kill(pids[0], signal.SIGCONT)
        assert rc == 0, (
            "cap-worker did not exit on SIGTERM while one PostgreSQL connection hung: exit "
            "code %s after %.1fs (drain_grace %ds; killed by the test)" % (rc, took, GRACE_S))
        assert took < GRACE_S + 10, "took %.1fs" % took
        print("ok: exited %.1fs after SIGTERM with a hung PostgreSQL connection" % took)


if __name__ == "__main__":
    main()
