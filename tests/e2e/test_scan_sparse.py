"""Sparse ranges end to end, in a network namespace of the test's own: a /22 of 127.x where an
nftables table drops the SYNs of every address except a few TLS servers and a few closed
addresses (the kernel resets those), as a firewalled enterprise range does.

- the source defaults (concurrency 8) find every live endpoint in about one timeout, write no
  row for an empty address, and count them on the run (silent, closed, no_route);
- an endpoint that answered before and no longer does is unreachable (offline), not empty;
- the per-host deadline holds for connect, STARTTLS and handshake;
- a run over a silent range beside a run over a live fleet leaves the live one's pace within
  20 % of running alone (pending connects and TLS slots shared by what each run holds).
"""

import ipaddress
import json
import time

import harness
import tlsfleet

harness.in_own_netns("the sparse-range test (nftables)")

RANGE = "127.77.0.0/22"        # 1024 addresses, one port
DEAD = "127.78.0.0/20"         # every address silent (fairness)
CLOSED = ["127.77.2.%d" % i for i in range(1, 21)]


def run_source(c, sid, timeout=180):
    return c.wait_run(c.insert_run_sql(sid), timeout=timeout)


def duration(run):
    return (run["finished_at"] - run["started_at"]).total_seconds()


def main():
    with harness.Cluster(name="sparse", config={
            "network.allow_loopback": True,
            "logging.level": "info"}) as c:
        c.migrate()
        fleet = tlsfleet.Fleet(c.tmpdir, base="127.77.1.0", hold_s=0.05)
        live = [fleet.tls("live%d" % i, fleet.cert("live%d.sparse.test" % i)) for i in range(6)]
        # the deadline targets: silent (listed), a STARTTLS server that never greets, a tarpit
        smtp_stall = fleet.add("smtp_stall", "tarpit", port=587)
        tarpit = fleet.add("tarpit", "tarpit")
        # a live fleet for the fairness runs: 64 TLS servers on their own /26
        busy = tlsfleet.Fleet(c.tmpdir + "/busy", base="127.79.0.0", hold_s=0.15)
        for i in range(60):
            busy.tls("b%d" % i, busy.cert("b%d.busy.test" % i))
        answer = [srv.addr for srv in live] + [smtp_stall.addr, tarpit.addr] + CLOSED
        harness.nft("""
table inet capsparse {
    set answer { type ipv4_addr; elements = { %s } }
    chain input {
        type filter hook input priority 0; policy accept;
        ip daddr %s ip daddr != @answer tcp flags & (syn | ack) == syn drop
        ip daddr %s tcp flags & (syn | ack) == syn drop
    }
}
""" % (", ".join(answer), RANGE, DEAD))
        fleet.start()
        busy.start()
        try:
            # the shape: silent drops, closed resets, live answers
            import socket
            for addr, want in (("127.77.0.9", "timeout"), (CLOSED[0], "refused")):
                s = socket.socket()
                s.settimeout(1)
                try:
                    s.connect((addr, fleet.port))
                    got = "connected"
                except socket.timeout:
                    got = "timeout"
                except ConnectionRefusedError:
                    got = "refused"
                finally:
                    s.close()
                assert got == want, (addr, got, want)

            c.start_scheduler()
            c.start_worker()

            # ---- the sparse range with the source defaults (but a 2 s timeout)
            sid = c.add_source_sql("sparse", cidrs=[RANGE], ports=[fleet.port], timeout_ms=2000)
            t0 = time.time()
            run = run_source(c, sid)
            took = time.time() - t0
            print("sparse /22: %s in %.1f s (run %.1f s), stats %s"
                  % (run["status"], took, duration(run), json.dumps(run["stats"])))
            # a slot per connect (8 at a time, 2 s each) would take 1000 x 2 / 8 = 250 s
            assert duration(run) < 60, duration(run)
            assert run["status"] == "partial", harness._short_row(run)  # the tarpit times out
            rows = c.sql_dicts(
                "SELECT host(e.address) AS address, e.port, e.status, o.outcome, "
                "o.fingerprint_sha256, o.error FROM endpoints e "
                "JOIN endpoint_observations o ON o.endpoint_id = e.id AND o.run_id = %s",
                (run["id"],))
            by_addr = {r["address"]: r for r in rows}
            want = {srv.addr for srv in live} | {tarpit.addr}
            assert set(by_addr) == want, sorted(by_addr)
            for srv in live:
                r = by_addr[srv.addr]
                assert r["outcome"] == "ok" and r["fingerprint_sha256"] == srv.cert.fingerprint, r
            assert by_addr[tarpit.addr]["outcome"] == "timeout", by_addr[tarpit.addr]
            assert c.sql("SELECT count(*) FROM endpoints")[0][0] == len(want)
            n_unreach = c.sql("SELECT count(*) FROM findings WHERE kind = 'unreachable'")[0][0]
            assert n_unreach == 1, n_unreach  # the tarpit: it connected, then said nothing
            st = run["stats"]
            # the smtp_stall address answers SYNs, but listens on 587 only: closed on this port
            assert st.get("closed") == len(CLOSED) + 1, st
            assert st.get("silent") == 1024 - len(want) - len(CLOSED) - 1, st
            assert st.get("no_route", 0) == 0, st
            assert run["targets_done"] == run["targets_total"] == 1024, harness._short_row(run)
            shown = c.capctl_json("runs", "show", str(run["id"]))
            shown = shown[0] if isinstance(shown, list) else shown
            assert shown["silent"] == st["silent"] and shown["closed"] == st["closed"], shown

            # ---- an endpoint that answered before and now does not: unreachable, offline
            fleet.stop_server(live[0])
            run2 = run_source(c, sid)
            off = c.sql_dicts(
                "SELECT e.status, o.outcome FROM endpoints e JOIN endpoint_observations o "
                "ON o.endpoint_id = e.id AND o.run_id = %s WHERE host(e.address) = %s",
                (run2["id"], live[0].addr))
            assert off and off[0]["outcome"] == "refused" and off[0]["status"] == "offline", off
            assert c.sql("SELECT count(*) FROM findings WHERE kind = 'unreachable' "
                         "AND status = 'open'")[0][0] == 2
            assert run2["stats"].get("closed") == len(CLOSED) + 1, run2["stats"]
            assert c.sql("SELECT count(*) FROM endpoints")[0][0] == len(want)

            # ---- the per-host deadline: connect, STARTTLS and handshake, 1 s each
            did = c.add_source_sql("deadline", cidrs=["127.77.3.250/32", "%s/32" % tarpit.addr,
                                                      "%s/32" % smtp_stall.addr],
                                   ports=[fleet.port, 587], timeout_ms=1000)
            run3 = run_source(c, did)
            errs = {(r["address"], r["port"]): r for r in c.sql_dicts(
                "SELECT host(e.address) AS address, e.port, o.outcome, o.error "
                "FROM endpoint_observations o JOIN endpoints e ON e.id = o.endpoint_id "
                "WHERE o.run_id = %s", (run3["id"],))}
            print("deadline run: %.2f s" % duration(run3), sorted(errs.items()))
            silent_obs = errs[("127.77.3.250", fleet.port)]
            assert silent_obs["outcome"] == "timeout" and "(connect)" in silent_obs["error"]
            assert "(handshake)" in errs[(tarpit.addr, fleet.port)]["error"], errs
            assert "(starttls)" in errs[(smtp_stall.addr, 587)]["error"], errs
            assert duration(run3) < 6, duration(run3)

            # ---- fairness: the live fleet alone, then beside a silent /20
            lid = c.add_source_sql("busy", cidrs=[busy.cidr()], ports=[busy.port],
                                   timeout_ms=5000, concurrency=4)
            alone = duration(run_source(c, lid))
            dead_id = c.add_source_sql("dead", cidrs=[DEAD], ports=[443], timeout_ms=5000)
            dead_run = c.insert_run_sql(dead_id)
            c.wait_for(lambda: c.run_row(dead_run)["status"] == "running", what="dead run runs")
            time.sleep(2)  # it holds its pending connects now
            beside_run = run_source(c, lid)
            beside = duration(beside_run)
            print("live fleet: %.2f s alone, %.2f s beside a silent /20" % (alone, beside))
            assert beside <= alone * 1.2 + 0.5, (alone, beside)
            dead = c.wait_run(dead_run, timeout=300)
            print("silent /20: %s in %.1f s, stats %s" % (dead["status"], duration(dead),
                                                           json.dumps(dead["stats"])))
            assert dead["stats"].get("silent") == 4096, dead["stats"]
            assert c.sql("SELECT count(*) FROM endpoints WHERE address <<= %s::inet",
                         (DEAD,))[0][0] == 0
        finally:
            fleet.stop()
            busy.stop()
    print("test_scan_sparse: ok")


if __name__ == "__main__":
    main()
