"""Secrets never appear in logs: a database password that libpq cannot decode (a bare '%' in the
URL, a common slip) must not be echoed by cap-scheduler or cap-worker. The configuration check
refuses such a URL at start-up (exit 1, the key named, the password masked)."""

import harness

SECRET = "Hunter%zz2topsecret"


def main():
    with harness.Cluster(name="review-secret-log") as c:
        c.migrate()
        url = "postgresql://cap:%s@127.0.0.1:%d/certautopilot" % (SECRET, c.pg_port)
        procs = [c.start_scheduler(config_overrides={"database.url": url}),
                 c.start_worker(config_overrides={"database.url": url})]
        c.wait_for(lambda: all(p.poll() is not None for p in procs), timeout=20,
                   what="both daemons to refuse the URL at start-up")
        for p in procs:
            assert p.returncode == 1, (p.label, p.returncode)
            text = c.log_text(p)
            assert "config_invalid" in text and "database.url" in text, text[-1000:]
        for p in procs:
            text = c.log_text(p)
            assert "Hunter" not in text and "topsecret" not in text, (
                "the database password is in the log of %s: %s"
                % (p.label,
                   [ln for ln in text.splitlines() if "topsecret" in ln][:1]))
        print("ok: no password in the logs")


if __name__ == "__main__":
    main()
