"""Self-test of the e2e harness: PostgreSQL and Redis come up on loopback ports as an
unprivileged user, the config file names them, and capctl migrate applies the schema."""

import os
import signal
import socket
import sys

import harness


def main():
    with harness.Cluster(name="harness") as c:
        # PostgreSQL: our database, reachable by URL, served by an unprivileged user.
        assert c.sql("SELECT current_database()") == [("certautopilot",)]
        assert c.sql("SELECT current_setting('fsync')") == [("off",)]
        assert c.sql("SELECT current_setting('listen_addresses')") == [("127.0.0.1",)]
        assert c.sql("SELECT %s::int + 1", (41,)) == [(42,)]
        pg_proc = c._servers["postgres"][0]
        if os.geteuid() == 0:
            uid = os.stat("/proc/%d" % pg_proc.pid).st_uid
            assert uid != 0, "postgres runs as root (uid %d)" % uid

        # Redis: answers, empty, no persistence.
        r = c.redis()
        assert r.ping() is True
        assert r.dbsize() == 0
        assert list(r.config_get("save").values()) in ([""], [b""]), r.config_get("save")
        assert list(r.config_get("appendonly").values()) in (["no"], [b"no"])
        r.set(b"k", b"v")
        assert r.get(b"k") == b"v"

        # Restarting Redis keeps the port and loses the data (no persistence).
        c.stop_redis()
        try:
            c.redis().ping()
            raise AssertionError("redis still answers after stop_redis")
        except harness.redis_mod.ConnectionError:
            pass
        c.start_redis()
        assert c.redis().get(b"k") is None

        # The config file names both servers and the test settings.
        text = open(c.config_path).read()
        assert c.pg_url in text and c.redis_url in text, text
        assert "allow_loopback: true" in text, text
        assert '"127.0.0.1:%d' % c.pg_port not in text  # urls are full URLs, not host:port
        for port in (c.pg_port, c.redis_port):
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.close()

        # wait_for fails with the name of what it waited for.
        try:
            c.wait_for(lambda: False, timeout=0.3, what="the impossible")
            raise AssertionError("wait_for did not time out")
        except AssertionError as e:
            assert "the impossible" in str(e), e

        # Schema: capctl migrate applies it, and a second run is a no-op.
        r1 = c.capctl("migrate")
        assert r1.returncode == 0, "capctl migrate failed (%d):\n%s\n%s" % (
            r1.returncode, r1.stdout, r1.stderr)
        tables = {t for (t,) in c.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")}
        for t in ("discovery_sources", "discovery_runs", "discovered_certificates",
                  "schema_migrations", "findings", "ct_checkpoints"):
            assert t in tables, "table %s missing after migrate: %s" % (t, sorted(tables))
        n = c.sql("SELECT count(*) FROM schema_migrations")[0][0]
        c.capctl_ok("migrate")
        assert c.sql("SELECT count(*) FROM schema_migrations")[0][0] == n

        tmp = c.tmpdir
        pg_pid = pg_proc.pid
    # Everything stopped and removed at exit.
    assert not os.path.exists(tmp), "temporary folder %s left behind" % tmp
    try:
        os.kill(pg_pid, 0)
        raise AssertionError("postgres (pid %d) still running after the cluster closed" % pg_pid)
    except ProcessLookupError:
        pass
    print("ok")


if __name__ == "__main__":
    main()
