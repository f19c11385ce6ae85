"""Poison stream entries (garbage, no job field, unknown version, wrong types, unknown job
type) are dead-lettered and acknowledged, the worker does not crash, and good jobs published
before and after them run."""

import time

import harness


def main():
    with harness.Cluster(name="poison", config={
            "worker.noop_executor": True,
            "worker.noop_sleep": "0s"}) as c:
        c.migrate()
        s1 = c.add_source_sql("good-1")
        s2 = c.add_source_sql("good-2")
        r1 = c.insert_run_sql(s1)
        r2 = c.insert_run_sql(s2)
        rd = c.redis()

        good_ids = [c.xadd_job(r1, s1)]
        # Poison entries name a run that does not exist, so that nothing they say can touch the
        # good runs.
        bad = 999999
        poison = [
            {b"job": b"\xc1\xff garbage \x00"},                                   # not msgpack
            {b"payload": c.job_message(bad, s2)},                                  # no job field
            {b"job": c.job_message(bad, s2, version=99)},                          # unknown version
            {b"job": harness.msgpack_pack({"v": 1, "type": "discovery_execute", "run_id": "x",
                                           "source_id": s2, "attempt": 0,
                                           "enqueued_at": 1})},                   # wrong type
            {b"job": c.job_message(bad, s2, type="format_disk")},                  # unknown type
            {b"job": harness.msgpack_pack([1, 2, 3])},                            # not a map
            {b"job": c.job_message(bad, s2)[:-3]},                                 # truncated
        ]
        poison_ids = [rd.xadd(c.stream, f) for f in poison]
        good_ids.append(c.xadd_job(r2, s2))
        for rid, sid_ in ((r1, good_ids[0]), (r2, good_ids[1])):
            c.sql("UPDATE discovery_runs SET stream_id = %s, published_at = now() WHERE id = %s",
                  (sid_.decode(), rid))

        w = c.start_worker()
        for rid in (r1, r2):
            done = c.wait_run(rid, timeout=40)
            assert done["status"] == "succeeded", harness._short_row(done)
            assert done["attempts"] == 1, harness._short_row(done)

        # Every poison entry is in the dead-letter stream, and nothing else is.
        c.wait_for(lambda: rd.xlen(c.dead_stream) >= len(poison), timeout=20,
                   what="%d poison entries in the dead-letter stream" % len(poison))
        time.sleep(1)
        dead = rd.xrange(c.dead_stream)
        assert len(dead) == len(poison), "dead-letter stream holds %d entries for %d poison " \
            "messages: %r" % (len(dead), len(poison), dead)
        # Each dead-lettered entry can be traced back to its original: its id or its payload.
        blob = b"\n".join(b" ".join(k + b"=" + v for k, v in fields.items())
                          for _, fields in dead)
        for pid, f in zip(poison_ids, poison):
            payload = list(f.values())[0]
            assert pid in blob or payload in blob, \
                "dead-letter stream has no trace of entry %s (%r)" % (pid, payload)
        for gid in good_ids:
            assert gid not in blob, "good job %s was dead-lettered" % gid

        c.wait_for(lambda: c.pending_count() == 0, timeout=15,
                   what="every entry (poison ones too) to be acknowledged")
        c.assert_running(w)

        # And the worker still takes new work.
        s3 = c.add_source_sql("good-3")
        r3 = c.insert_run_sql(s3)
        c.xadd_job(r3, s3)
        assert c.wait_run(r3, timeout=30)["status"] == "succeeded"
        assert c.stop(w) == 0, "worker did not exit 0 on SIGTERM"
        print("ok: %d poison entries dead-lettered, 3 good jobs ran" % len(poison))


if __name__ == "__main__":
    main()
