"""A job delivered twice runs once: the same job is XADDed twice by hand (as a scheduler that
re-published it would); the second delivery finds the run live or finished and is acked
without a second claim."""

import time

import harness


def main():
    with harness.Cluster(name="duplicate", config={
            "worker.noop_executor": True,
            "worker.noop_sleep": "2s",
            "worker.max_jobs": 4}) as c:
        c.migrate()
        # No scheduler: the test publishes by hand.
        sid = c.add_source_sql("dup")
        run_id = c.insert_run_sql(sid)
        job = c.job_message(run_id, sid, attempt=0)
        id1 = c.xadd_job(run_id, sid, fields={b"job": job})
        c.sql("UPDATE discovery_runs SET stream_id = %s, published_at = now() WHERE id = %s",
              (id1.decode(), run_id))
        id2 = c.xadd_job(run_id, sid, fields={b"job": job})
        assert id1 != id2

        # A second, unrelated run after the duplicates proves the worker went on.
        sid2 = c.add_source_sql("after")
        run2 = c.insert_run_sql(sid2)
        id3 = c.xadd_job(run2, sid2)
        c.sql("UPDATE discovery_runs SET stream_id = %s, published_at = now() WHERE id = %s",
              (id3.decode(), run2))

        w = c.start_worker()
        done = c.wait_run(run_id, timeout=40)
        assert done["status"] == "succeeded", harness._short_row(done)
        assert c.wait_run(run2, timeout=40)["status"] == "succeeded"

        # All three entries read and acknowledged.
        def all_acked():
            g = c.group_info()
            return g is not None and g.get("pending") == 0 and g.get("lag") in (0, None) and \
                c.pending_count() == 0
        c.wait_for(all_acked, timeout=20, what="all three stream entries to be acknowledged")
        time.sleep(1)
        again = c.run_row(run_id)
        assert again["attempts"] == 1, "the duplicate was claimed again: %s" % \
            harness._short_row(again)
        assert again["status"] == "succeeded"
        assert again["finished_at"] == done["finished_at"], "the run was finished twice"
        assert c.redis().xlen(c.dead_stream) == 0, "a duplicate is not a poison message"
        assert len(c.runs(sid)) == 1
        c.assert_running(w)
        assert c.stop(w) == 0
        print("ok: run %d claimed once for two deliveries (%s, %s)" % (run_id, id1, id2))


if __name__ == "__main__":
    main()
