"""Host names end to end, in a network namespace of the test's own (loopback only, no IPv6
route): names resolved many at once (c-ares) through network.dns_servers, each once per run.

- 1000 listed names behind a local DNS server that answers after 200 ms resolve in seconds
  (one at a time would take 200 s); each is asked once per type;
- a listed name that does not resolve is an unresolvable finding (low) on name:HOST, resolved
  when the name resolves again;
- a dual-stack name on a worker without an IPv6 route records only its IPv4 endpoint (the
  IPv6 address is counted as no_route, nothing is stored for it).
"""

import json
import time

import dnsserver
import harness
import tlsfleet

harness.in_own_netns("the host-name scan test (a worker without an IPv6 route)")

N_NAMES = 1000
N_MISSING = 100


def main():
    records = {}
    closed = ["127.81.1.%d" % i for i in range(1, 101)]  # nothing listens: reset at once
    names = ["n%04d.bulk.test" % i for i in range(N_NAMES)]
    for i, name in enumerate(names[N_MISSING:]):
        records[name] = [closed[i % len(closed)]]
    with harness.Cluster(name="scandns", config={"network.allow_loopback": True}) as c:
        c.migrate()
        fleet = tlsfleet.Fleet(c.tmpdir, base="127.81.0.0")
        dual = fleet.tls("dual", fleet.cert("dual.test", sans=["dual.test"]))
        records["dual.test"] = [dual.addr, "2001:db8::443"]
        dns = dnsserver.DnsServer(records, delay=0.2)
        dns.start()
        fleet.start()
        try:
            c.start_scheduler()
            c.start_worker(config_overrides={
                "network.dns_servers": ["127.0.0.1:%d" % dns.port]})
            sid = c.add_source_sql("names", hosts=names + ["dual.test"], ports=[fleet.port],
                                   timeout_ms=5000)
            t0 = time.time()
            run = c.wait_run(c.insert_run_sql(sid), timeout=180)
            took = time.time() - t0
            print("1001 names: %s in %.1f s, stats %s" % (run["status"], took,
                                                          json.dumps(run["stats"])))
            assert run["status"] == "partial", harness._short_row(run)
            # one name at a time would take 1001 x 0.2 s; many at once: a few seconds
            assert took < 40, took
            for name in names + ["dual.test"]:
                assert dns.queries_by_type[(name, "A")] == 1, (name, dns.queries_by_type[(name, "A")])
                assert dns.queries_by_type[(name, "AAAA")] == 1, name

            unres = c.sql_dicts("SELECT subject_key, severity, details FROM findings "
                                "WHERE kind = 'unresolvable' AND status = 'open'")
            assert sorted(f["subject_key"] for f in unres) == \
                sorted("name:" + n for n in names[:N_MISSING]), len(unres)
            assert all(f["severity"] == "low" for f in unres)
            assert "NXDOMAIN" in unres[0]["details"]["reason"], unres[0]
            # the names that resolved to closed addresses are listed targets: unreachable
            n_unreach = c.sql("SELECT count(*) FROM findings WHERE kind = 'unreachable' "
                              "AND status = 'open'")[0][0]
            assert n_unreach == N_NAMES - N_MISSING, n_unreach

            # the dual-stack name: its IPv4 endpoint only, the IPv6 address counted
            eps = c.sql_dicts("SELECT host(address) AS address, status FROM endpoints "
                              "WHERE sni = 'dual.test'")
            assert eps == [{"address": dual.addr, "status": "online"}], eps
            assert run["stats"].get("no_route") == 1, run["stats"]
            assert c.sql("SELECT count(*) FROM endpoints WHERE family(address) = 6")[0][0] == 0

            # the missing names appear: their findings resolve on the next run
            for i, name in enumerate(names[:N_MISSING]):
                dns.records[dnsserver.norm(name)] = dns.records[dnsserver.norm(names[-1 - i])]
            run2 = c.wait_run(c.insert_run_sql(sid), timeout=180)
            left = c.sql("SELECT count(*) FROM findings WHERE kind = 'unresolvable' "
                         "AND status = 'open'")[0][0]
            gone = c.sql("SELECT count(*) FROM findings WHERE kind = 'unresolvable' "
                         "AND status = 'resolved' AND resolved_at IS NOT NULL")[0][0]
            assert left == 0 and gone == N_MISSING, (left, gone, harness._short_row(run2))
        finally:
            fleet.stop()
            dns.stop()
    print("test_scan_dns: ok")


if __name__ == "__main__":
    main()
