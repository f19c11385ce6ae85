"""Redis specifics of the job spine: AUTH with a user and password from redis.url (and the
password never in a log), and the MINID trim that keeps every pending and undelivered entry
while dropping acknowledged ones."""

import glob
import os
import time

import redis as redis_mod

import harness

USER = "capuser"
PASSWORD = "s3cret/pa ss"          # needs percent-encoding in the URL
PASSWORD_URL = "s3cret%2Fpa%20ss"


def check_auth(c):
    admin = c.redis()
    admin.execute_command("ACL", "SETUSER", USER, "on", ">" + PASSWORD, "~*", "&*", "+@all")
    url = "redis://%s:%s@127.0.0.1:%d/0" % (USER, PASSWORD_URL, c.redis_port)
    # The default user goes away: only the URL's credentials can reach Redis now.
    admin.execute_command("ACL", "SETUSER", "default", "off")
    rd = redis_mod.Redis(host="127.0.0.1", port=c.redis_port, username=USER, password=PASSWORD)
    try:
        c.redis().ping()
        raise AssertionError("the default user should be refused after ACL SETUSER default off")
    except redis_mod.RedisError:
        pass

    over = {"redis.url": url, "worker.noop_executor": True}
    sched = c.start_scheduler(config_overrides=over)
    worker = c.start_worker(config_overrides=over)
    sid = c.add_source_sql("auth-src")
    run = c.insert_run_sql(sid)
    row = c.wait_run(run, timeout=30)
    assert row["status"] == "succeeded", row
    assert rd.xlen(b"cap:discovery") >= 0

    # A wrong password: the worker keeps retrying with a clear error, never logs the secret.
    bad = dict(over, **{"redis.url": "redis://%s:wrong-%s@127.0.0.1:%d/0"
                        % (USER, PASSWORD_URL, c.redis_port)})
    bad_worker = c.start_worker(config_overrides=bad, label="worker-badpass")
    c.wait_for(lambda: "connect_retry" in open(bad_worker.log_path).read(), timeout=20,
               what="the worker with a wrong password to report it")
    c.assert_running(bad_worker)
    text = open(bad_worker.log_path).read()
    assert "WRONGPASS" in text or "invalid username-password" in text, text[-2000:]
    for p in (sched, worker, bad_worker):
        c.stop(p)
    for path in glob.glob(os.path.join(c.tmpdir, "logs", "*.log")):
        with open(path, errors="replace") as f:
            body = f.read()
        assert PASSWORD not in body and PASSWORD_URL not in body, \
            "the redis password appears in %s" % path
    admin2 = redis_mod.Redis(host="127.0.0.1", port=c.redis_port, username=USER, password=PASSWORD)
    admin2.execute_command("ACL", "SETUSER", "default", "on", "nopass", "~*", "&*", "+@all")


def check_trim(c):
    rd = c.redis()
    stream, group = c.stream, c.group
    # One worker, one job at a time, each job 2 s: at any moment one entry is pending and the
    # rest are undelivered; the scheduler's trim must keep all of them.
    over = {"worker.noop_executor": True, "worker.noop_sleep": "2s", "worker.max_jobs": 1,
            "scheduler.tick": "500ms"}
    ids = [c.add_source_sql("trim-%d" % i) for i in range(4)]
    sched = c.start_scheduler(config_overrides=over)
    runs = [c.insert_run_sql(s) for s in ids]
    c.wait_for(lambda: all(r[0] for r in c.sql(
        "SELECT stream_id IS NOT NULL FROM discovery_runs WHERE id = ANY(%s)", (runs,))),
        timeout=20, what="all runs published")
    worker = c.start_worker(config_overrides=over)
    c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE status = 'running'")[0][0] == 1,
               timeout=20, what="the first run to start")
    time.sleep(1.5)  # at least two scheduler sweeps (and trims) while work is outstanding
    entries = {e[0].decode() for e in rd.xrange(stream)}
    wanted = {r[0] for r in c.sql("SELECT stream_id FROM discovery_runs WHERE id = ANY(%s) "
                                  "AND status IN ('queued', 'running')", (runs,))}
    missing = wanted - entries
    assert not missing, "trim dropped pending or undelivered entries: %s" % missing
    for r in runs:
        assert c.wait_run(r, timeout=60)["status"] == "succeeded"
    # Once everything is acknowledged, the trim removes what came before the last delivery.
    c.wait_for(lambda: rd.xlen(stream) <= 1, timeout=20, what="acknowledged entries trimmed")
    pending = rd.xpending(stream, group)
    assert pending["pending"] == 0, pending
    c.stop(worker)
    c.stop(sched)


def main():
    with harness.Cluster(name="spine-redis") as c:
        c.migrate()
        check_trim(c)
        check_auth(c)
    print("ok")


if __name__ == "__main__":
    main()
