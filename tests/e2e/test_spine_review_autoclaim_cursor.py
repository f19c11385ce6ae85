"""A message left pending by a dead worker is reclaimed even when the pending list holds many
older entries of live workers before it.

XAUTOCLAIM scans at most COUNT*10 pending entries per call and returns a cursor for the next
call. A worker that always starts again from 0-0 never looks past the first COUNT*10 entries:
while live workers keep those entries fresh, the dead worker's message (and its queued run,
which the scheduler does not re-publish because the entry still exists) waits for ever."""

import threading
import time

import harness

PADDING = 40          # live entries ahead of the victim in the pending list
RECLAIM_S = 2


def main():
    with harness.Cluster(name="review-autoclaim-cursor", config={
            "scheduler.tick": "1s",
            "scheduler.requeue_after": "2s",
            "worker.reclaim_idle": "%ds" % RECLAIM_S,
            "worker.max_jobs": 1,
            "worker.noop_executor": True,
            "worker.noop_sleep": "0s"}) as c:
        c.migrate()
        rd = c.redis()
        rd.xgroup_create(c.stream, c.group, id="0", mkstream=True)

        # A live worker ("alive") holds PADDING long jobs, older than the victim's entry.
        for i in range(PADDING):
            rd.xadd(c.stream, {b"job": b"long-running job %d" % i})
        got = rd.xreadgroup(c.group, "alive", {c.stream: ">"}, count=PADDING)
        alive_ids = [eid for eid, _ in got[0][1]]
        assert len(alive_ids) == PADDING, len(alive_ids)

        stop = threading.Event()

        def keep_fresh():
            r = c.redis()
            while not stop.is_set():
                # What a live worker's heartbeat does: XCLAIM ... 0 ... JUSTID.
                r.xclaim(c.stream, c.group, "alive", 0, alive_ids, justid=True)
                time.sleep(0.3)

        t = threading.Thread(target=keep_fresh, daemon=True)
        t.start()
        try:
            # The victim: a queued run, published by the scheduler, read by a worker that
            # died before it claimed the run.
            sid = c.add_source_sql("victim")
            sched = c.start_scheduler()
            run_id = c.insert_run_sql(sid)
            c.wait_for(lambda: c.run_row(run_id)["stream_id"], timeout=15,
                       what="the scheduler to publish the run")
            got = rd.xreadgroup(c.group, "dead", {c.stream: ">"}, count=10)
            assert got and len(got[0][1]) == 1, got
            victim = got[0][1][0][0]
            assert victim.decode() == c.run_row(run_id)["stream_id"], victim

            w = c.start_worker()
            t0 = time.time()
            row = None
            deadline = t0 + 10 * RECLAIM_S + 10
            while time.time() < deadline:
                row = c.run_row(run_id)
                if row["status"] in harness.FINAL_STATUSES:
                    break
                time.sleep(0.3)
            pel = rd.xpending_range(c.stream, c.group, "-", "+", 1000)
            owner = [p["consumer"] for p in pel if p["message_id"] == victim]
            assert row["status"] == "succeeded", (
                "run %d still %s %.0fs after the worker started (reclaim_idle %ds); its entry "
                "%s is still pending for %s: XAUTOCLAIM never got past the %d live entries "
                "ahead of it (the cursor it returns is ignored)"
                % (run_id, row["status"], time.time() - t0, RECLAIM_S, victim.decode(),
                   owner, PADDING))
            c.assert_running(w)
            c.assert_running(sched)
            assert c.stop(w) == 0 and c.stop(sched) == 0
            print("ok: dead worker's message reclaimed past %d live entries in %.1fs"
                  % (PADDING, time.time() - t0))
        finally:
            stop.set()
            t.join()


if __name__ == "__main__":
    main()
