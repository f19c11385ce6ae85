"""Host-name targets: every address of a name is probed (one endpoint per address, the name as
host and SNI), an address of the name inside a refused range is skipped and reported, and a
certificate that does not cover the name is a name_mismatch finding. The worker runs in a
mount namespace of its own whose /etc/hosts gives the names several loopback addresses (and
one link-local one); nothing outside that process sees the file."""

import os
import subprocess
import sys

import harness
import tlsfleet


def main():
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        print("NOTE: no mount namespace here (needs root): host names with several addresses "
              "are not tested")
        return
    with harness.Cluster(name="scannames", config={"logging.level": "info"}) as c:
        c.migrate()
        f = tlsfleet.Fleet(c.tmpdir)
        a = f.tls("a", f.cert("multi.fleet.test"))
        b = f.tls("b", f.cert("multi.fleet.test"))
        other = f.tls("other", f.cert("something-else.fleet.test"))
        hosts = os.path.join(c.tmpdir, "hosts")
        with open(hosts, "w") as fh:
            fh.write("127.0.0.1 localhost\n%s multi.fleet.test\n%s multi.fleet.test\n"
                     "169.254.1.1 multi.fleet.test\n%s mismatch.fleet.test\n"
                     % (a.addr, b.addr, other.addr))
        wrapper = os.path.join(c.tmpdir, "worker-with-hosts.sh")
        with open(wrapper, "w") as fh:
            fh.write("#!/bin/sh\n# cap-worker with its own /etc/hosts, in a mount namespace\n"
                     "exec unshare -m sh -c 'mount --bind \"$0\" /etc/hosts && exec \"$@\"' "
                     "'%s' '%s' \"$@\"\n" % (hosts, harness.binary("worker/cap-worker")))
        os.chmod(wrapper, 0o755)
        f.start()
        try:
            c.start_scheduler()
            w = c.start_process(wrapper, label="worker-hosts")
            sid = c.add_source_sql("names", hosts=["multi.fleet.test", "mismatch.fleet.test"],
                                   ports=[f.port], timeout_ms=3000)
            run = c.wait_run(c.insert_run_sql(sid), timeout=60)
            assert run["status"] == "succeeded", harness._short_row(run)
            assert run["targets_total"] == 3 and run["targets_done"] == 3, harness._short_row(run)
            rows = c.sql_dicts(
                "SELECT host(e.address) AS address, e.host, e.sni, o.outcome, o.fingerprint_sha256, "
                "e.id AS endpoint_id FROM endpoint_observations o JOIN endpoints e "
                "ON e.id = o.endpoint_id WHERE o.run_id = %s", (run["id"],))
            by = {(r["address"], r["sni"]): r for r in rows}
            assert set(by) == {(a.addr, "multi.fleet.test"), (b.addr, "multi.fleet.test"),
                               (other.addr, "mismatch.fleet.test")}, sorted(by)
            for srv in (a, b):
                r = by[(srv.addr, "multi.fleet.test")]
                assert r["host"] == "multi.fleet.test" and r["outcome"] == "ok", r
                assert r["fingerprint_sha256"] == srv.cert.fingerprint, r
                n = c.sql("SELECT count(*) FROM findings WHERE kind = 'name_mismatch' AND "
                          "status = 'open' AND endpoint_id = %s", (r["endpoint_id"],))[0][0]
                assert n == 0, r
            r = by[(other.addr, "mismatch.fleet.test")]
            n = c.sql("SELECT count(*) FROM findings WHERE kind = 'name_mismatch' AND "
                      "status = 'open' AND endpoint_id = %s", (r["endpoint_id"],))[0][0]
            assert n == 1, r
            pf = c.sql_dicts("SELECT details FROM findings WHERE kind = 'policy_block' AND "
                             "run_id = %s", (run["id"],))
            assert len(pf) == 1, pf
            det = pf[0]["details"]
            assert det["hosts"] == ["multi.fleet.test"], det
            assert det["ranges"] == [{"reason": "link-local (169.254.0.0/16)", "count": 1}], det
            assert c.sql("SELECT count(*) FROM endpoints WHERE address <<= '169.254.0.0/16'")[0][0] == 0
            c.assert_running(w)
        finally:
            f.stop()
    print("test_scan_names: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
