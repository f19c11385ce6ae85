"""capctl source trigger --wait: waits for the run's final status, prints the run, exits 0 for
succeeded or partial and 1 for failed, dead or a timeout; end to end through the scheduler and a
worker (no-op executor), and with statuses written by SQL for the outcomes a no-op cannot give."""

import json
import subprocess
import time

import harness


def check(cond, what, out=None):
    if not cond:
        raise AssertionError(what + ("\n%s" % (out,) if out is not None else ""))


def start_wait(c, name, *extra):
    argv = [harness.binary("ctl/capctl"), "--config", c.config_path, "source", "trigger", name,
            "--wait"] + list(extra)
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=c._env(None), cwd=c.tmpdir)


def active_run(c, sid):
    rows = c.sql("SELECT id FROM discovery_runs WHERE source_id = %s AND status IN "
                 "('queued', 'running')", (sid,))
    return rows[0][0] if rows else None


def finish_by_sql(c, name, status, error=None):
    """Triggers --wait on `name`, then moves its run to running and `status` by SQL."""
    sid = c.sql("SELECT id FROM discovery_sources WHERE name = %s", (name,))[0][0]
    p = start_wait(c, name, "--timeout", "60s")
    run = c.wait_for(lambda: active_run(c, sid), timeout=30, what="capctl to queue a run")
    time.sleep(0.5)
    check(p.poll() is None, "capctl --wait returned before the run finished")
    c.sql("UPDATE discovery_runs SET status = 'running', started_at = now() WHERE id = %s", (run,))
    time.sleep(0.5)
    check(p.poll() is None, "capctl --wait returned while the run was running")
    c.sql("UPDATE discovery_runs SET status = %s, error = %s, finished_at = now() WHERE id = %s",
          (status, error, run))
    out, err = p.communicate(timeout=30)
    return run, p.returncode, out, err


def main():
    with harness.Cluster(name="capctl-wait", config={
            "scheduler.tick": "60s",
            "worker.noop_executor": True,
            "worker.noop_sleep": "1s"}) as c:
        c.migrate()
        c.capctl_ok("source", "add", "sqlonly", "--type", "network_scan", "--cidr", "127.0.0.1/32")

        run, rc, out, err = finish_by_sql(c, "sqlonly", "succeeded")
        check(rc == 0, "succeeded: exit 0 (got %d)" % rc, err)
        check("succeeded" in out and str(run) in out, "prints the run", out)
        run, rc, out, err = finish_by_sql(c, "sqlonly", "partial", "2 of 3 unreachable")
        check(rc == 0, "partial: exit 0 (got %d)" % rc, err)
        run, rc, out, err = finish_by_sql(c, "sqlonly", "failed", "boom")
        check(rc == 1, "failed: exit 1 (got %d)" % rc, err)
        check("capctl: run %d ended failed: boom" % run in err, "says why", err)
        check("failed" in out, "prints the failed run too", out)
        run, rc, out, err = finish_by_sql(c, "sqlonly", "dead", "worker lost")
        check(rc == 1 and "ended dead: worker lost" in err, "dead: exit 1", err)

        # Nobody runs it: the wait times out.
        t0 = time.time()
        r = c.capctl("source", "trigger", "sqlonly", "--wait", "--timeout", "1s")
        check(r.returncode == 1 and "is still queued after 1000 ms" in r.stderr,
              "timeout: exit 1", r.stderr)
        check(time.time() - t0 < 15, "the timeout is honoured")
        c.sql("UPDATE discovery_runs SET status = 'failed', finished_at = now() "
              "WHERE status = 'queued'")

        # The whole path: scheduler, Redis, worker, back to PostgreSQL.
        c.capctl_ok("source", "add", "lab", "--type", "network_scan", "--cidr", "127.0.0.1/32")
        c.start_scheduler()
        c.start_worker()
        t0 = time.time()
        r = c.capctl("source", "trigger", "lab", "--wait", "--timeout", "60s", "--json")
        check(r.returncode == 0, "trigger --wait through the spine exit %d" % r.returncode,
              r.stdout + r.stderr)
        runs = json.loads(r.stdout)
        check(len(runs) == 1 and runs[0]["status"] == "succeeded", "run JSON", r.stdout)
        check(runs[0]["source_name"] == "lab" and runs[0]["trigger"] == "manual", r.stdout)
        check(runs[0]["started_at"] is not None and runs[0]["finished_at"] is not None, r.stdout)
        check("queued for source \"lab\"" in r.stderr, "progress on stderr", r.stderr)
        print("ok: trigger --wait through scheduler and worker in %.1fs" % (time.time() - t0))
    print("ok: capctl trigger --wait")


if __name__ == "__main__":
    main()
