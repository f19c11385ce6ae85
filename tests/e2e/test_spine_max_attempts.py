"""A job whose workers keep dying is not retried for ever: after worker.max_attempts
deliveries its message goes to the dead-letter stream and its run ends `dead` with the
reason, while other work goes on."""

import signal
import time

import harness

MAX_ATTEMPTS = 2


def main():
    with harness.Cluster(name="max-attempts", config={
            "worker.reclaim_idle": "3s",
            "worker.max_attempts": MAX_ATTEMPTS,
            "worker.noop_executor": True,
            "worker.noop_sleep": "60s"}) as c:
        c.migrate()
        # No scheduler: one hand-made publication, so every retry is an XAUTOCLAIM.
        sid = c.add_source_sql("doomed")
        run_id = c.insert_run_sql(sid)
        entry = c.xadd_job(run_id, sid)
        c.sql("UPDATE discovery_runs SET stream_id = %s, published_at = now() WHERE id = %s",
              (entry.decode(), run_id))

        killed = []
        for attempt in range(1, MAX_ATTEMPTS + 1):
            w = c.start_worker(label="worker-%d" % attempt)
            row = c.wait_for(lambda: (lambda r: r if r["status"] == "running" and
                                      r["attempts"] == attempt else None)(c.run_row(run_id)),
                             timeout=30, what="claim number %d of run %d" % (attempt, run_id))
            killed.append(row["worker"])
            time.sleep(0.5)
            assert c.stop(w, sig=signal.SIGKILL) == -signal.SIGKILL

        # The next worker finds the message delivered MAX_ATTEMPTS times already.
        last = c.start_worker(label="worker-last", config_overrides={"worker.noop_sleep": "0s"})
        done = c.wait_run(run_id, timeout=60)
        assert done["status"] == "dead", "expected dead after %d attempts: %s" % (
            MAX_ATTEMPTS, harness._short_row(done))
        assert done["attempts"] == MAX_ATTEMPTS, harness._short_row(done)
        assert done["error"], "a dead run says why: %s" % harness._short_row(done)
        assert done["finished_at"] is not None
        rd = c.redis()
        c.wait_for(lambda: rd.xlen(c.dead_stream) == 1, timeout=15,
                   what="the exhausted message in the dead-letter stream")
        blob = b" ".join(k + b"=" + v for _, f in rd.xrange(c.dead_stream) for k, v in f.items())
        assert entry in blob or c.job_message(run_id, sid)[:20] in blob, \
            "dead-letter entry does not name %s: %r" % (entry, blob)
        c.wait_for(lambda: c.pending_count() == 0, timeout=15,
                   what="the exhausted message to be acknowledged")

        # The worker goes on with other jobs.
        s2 = c.add_source_sql("fine")
        r2 = c.insert_run_sql(s2)
        c.xadd_job(r2, s2)
        ok = c.wait_run(r2, timeout=30)
        assert ok["status"] == "succeeded" and ok["attempts"] == 1, harness._short_row(ok)
        c.assert_running(last)
        assert c.stop(last) == 0
        print("ok: run %d dead after %d attempts (workers %s killed)"
              % (run_id, MAX_ATTEMPTS, ", ".join(killed)))


if __name__ == "__main__":
    main()
