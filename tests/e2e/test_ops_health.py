"""Health and readiness of cap-scheduler and cap-worker: /healthz answers 200 while the
process lives, /readyz is ready once PostgreSQL, Redis and the migrations are, fails with the
reason while Redis is stopped and recovers when it returns; before the migrations it is not
ready either. Every log line is one JSON object with the common fields."""

import harness
from test_ops_metrics import check_logs, get, wait_status


def main():
    wport, sport = harness.free_port(), harness.free_port()
    with harness.Cluster(name="ops-health") as c:
        # Not migrated yet: alive, not ready, and the reason says why.
        w = c.start_worker(config_overrides={"telemetry.metrics_listen": "127.0.0.1:%d" % wport})
        s = c.start_scheduler(config_overrides={"telemetry.metrics_listen": "127.0.0.1:%d" % sport})
        procs = ((w, wport), (s, sport))
        for p, port in procs:
            body = wait_status(c, port, "/healthz", 200, 30, "%s /healthz" % p.label)
            assert body == "ok\n", body
            st, body = get(port, "/readyz")
            assert st == 503 and "migration" in body, (p.label, st, body)

        c.capctl_ok("migrate")
        for p, port in procs:
            wait_status(c, port, "/readyz", 200, 60, "%s /readyz after migrate" % p.label)
            st, _ = get(port, "/nope")
            assert st == 404, st

        # Readiness follows Redis; liveness does not.
        c.stop_redis()
        for p, port in procs:
            body = wait_status(c, port, "/readyz", 503, 30,
                               "%s /readyz to fail without Redis" % p.label)
            assert "not ready" in body and "redis" in body.lower(), body
            st, _ = get(port, "/healthz")
            assert st == 200, "%s /healthz %s while Redis is down" % (p.label, st)
        c.start_redis()
        for p, port in procs:
            wait_status(c, port, "/readyz", 200, 60, "%s /readyz to recover with Redis" % p.label)
            c.assert_running(p)

        assert c.stop(w) == 0 and c.stop(s) == 0, "programs did not exit 0 on SIGTERM"
        check_logs(c, (w, s))
    print("test_ops_health: ok")


if __name__ == "__main__":
    main()
