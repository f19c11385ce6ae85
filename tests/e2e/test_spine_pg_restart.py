"""A PostgreSQL restart while a scan run is writing does not fail the run: the worker sees its
connection gone, reconnects with backoff, puts the run back to queued (attempts count on), and
the run is done again from the start and ends with every result (before: the run ended
`failed` with 0 observations)."""

import time

import harness
import tlsfleet


def main():
    with harness.Cluster(name="pgrestart", config={
            "network.allow_loopback": True, "scheduler.tick": "1s",
            "scheduler.requeue_after": "3s"}) as c:
        c.migrate()
        fleet = tlsfleet.Fleet(c.tmpdir, hold_s=0.25)
        servers = [fleet.tls("s%d" % i, fleet.cert("s%d.pg.test" % i)) for i in range(40)]
        fleet.start()
        try:
            c.start_scheduler()
            w = c.start_worker()
            # 40 endpoints, 2 at a time, each held 0.25 s: about 5 s of writing results
            sid = c.add_source_sql("slow", cidrs=[fleet.cidr()], ports=[fleet.port],
                                   concurrency=2, timeout_ms=5000)
            rid = c.insert_run_sql(sid)
            c.wait_for(lambda: c.sql("SELECT count(*) FROM endpoint_observations "
                                     "WHERE run_id = %s", (rid,))[0][0] >= 4,
                       timeout=60, what="the run has written some results")
            c.restart_postgres(down_s=1.0)
            run = c.wait_run(rid, timeout=180)
            print("after the restart: %s" % harness._short_row(run))
            assert run["status"] == "succeeded", harness._short_row(run)
            assert run["attempts"] >= 2, run["attempts"]
            n = c.sql("SELECT count(*) FROM endpoint_observations o JOIN endpoints e "
                      "ON e.id = o.endpoint_id WHERE o.run_id = %s AND o.outcome = 'ok'",
                      (rid,))[0][0]
            assert n == len(servers), n
            events = [e.get("event") for e in c.log_events(w)]
            assert "run_db_lost" in events and "run_requeued" in events, \
                [e for e in events if e and e.startswith("run_")]
            c.assert_running(w)
        finally:
            fleet.stop()
    print("test_spine_pg_restart: ok")


if __name__ == "__main__":
    main()
