"""network_scan against hostile servers: garbage, a one-byte-a-second drip, a 1 MB certificate,
a close mid-handshake, and a server that demands a client certificate (its certificate arrives
before the handshake fails and must still be recorded). The worker must not crash, must end
each probe by its deadline, and its memory must stay bounded and no socket may outlive its probe over
repeated scans. Also: progress counters move while a run goes, a worker killed mid-run
leaves what it had found, and a host name that resolves into a refused range is refused after
resolution."""

import signal

import os
import ssl
import sys
import time

import harness
import tlsfleet
from cryptography import x509

COPIES = 4
TIMEOUT_MS = 2000
RUNS = 3


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def client_sockets(addrs, port):
    """TCP sockets (any state) whose remote end is one of addrs:port: the scanner's own
    connections to the fleet, from /proc/net/tcp."""
    want = set()
    for a in addrs:
        b = bytes(int(x) for x in a.split("."))
        want.add("%08X:%04X" % (int.from_bytes(b, "little"), port))
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            if line.split()[2] in want:
                n += 1
    return n


def main():
    with harness.Cluster(name="scanhostile", config={
            "worker.max_concurrent_discovery": 16,
            "network.deny": ["127.0.0.1/32"],
            "logging.level": "info"}) as c:
        c.migrate()
        f = tlsfleet.Fleet(c.tmpdir)
        kinds = {}
        for kind in ("garbage", "drip", "midclose"):
            kinds[kind] = [f.add("%s%d" % (kind, i), kind) for i in range(COPIES)]
        big = f.cert("huge.fleet.test", extra_ext=x509.UnrecognizedExtension(
            x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x00" * (1024 * 1024)))
        kinds["huge"] = [f.tls("huge%d" % i, big) for i in range(COPIES)]
        demanding = f.cert("clientauth.fleet.test")
        kinds["clientauth"] = []
        for i in range(2):
            srv = f.tls("clientauth%d" % i, demanding, max_version=ssl.TLSVersion.TLSv1_2)
            srv.ctx.verify_mode = ssl.CERT_REQUIRED
            srv.ctx.load_verify_locations(cadata=f.ca.public_bytes(
                tlsfleet.serialization.Encoding.PEM).decode())
            kinds["clientauth"].append(srv)
        f.start()
        try:
            c.start_scheduler()
            # A small ASan quarantine so RSS reflects what the worker really holds.
            w = c.start_worker(extra_env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:"
                                          "quarantine_size_mb=4"})
            cidrs = ["%s/32" % srv.addr for group in kinds.values() for srv in group]
            addrs = [srv.addr for group in kinds.values() for srv in group]
            sid = c.add_source_sql("hostile", cidrs=cidrs, ports=[f.port], timeout_ms=TIMEOUT_MS,
                                   concurrency=16)
            samples = []
            for i in range(RUNS):
                run_id = c.insert_run_sql(sid)
                t0 = time.time()
                if i == 0:
                    # results are written as they come: counters move before the run ends
                    seen = c.wait_for(lambda: (lambda r: r if r["status"] == "running" and
                                               r["targets_done"] > 0 else None)(c.run_row(run_id)),
                                      timeout=30, interval=0.05,
                                      what="progress counters of a running scan")
                    assert seen["targets_total"] == len(cidrs), seen["targets_total"]
                    assert seen["targets_done"] < len(cidrs), seen["targets_done"]
                run = c.wait_run(run_id, timeout=120)
                took = (run["finished_at"] - run["started_at"]).total_seconds()
                c.assert_running(w)
                time.sleep(0.5)
                samples.append((rss_kb(w.pid), client_sockets(addrs, f.port)))
                print("hostile run %d: %s in %.2fs (wall %.1fs), worker RSS %d kB, sockets to the fleet %d"
                      % (i + 1, run["status"], took, time.time() - t0, samples[-1][0],
                         samples[-1][1]))
                assert run["status"] == "partial", harness._short_row(run)
                # every probe ends by its deadline: 18 endpoints, 16 slots, 2 s each at most
                assert took < 2 * TIMEOUT_MS / 1000.0 + 3.0, took
                obs = c.sql_dicts(
                    "SELECT host(e.address) AS address, o.outcome, o.error, o.chain, "
                    "o.fingerprint_sha256 FROM endpoint_observations o "
                    "JOIN endpoints e ON e.id = o.endpoint_id WHERE o.run_id = %s", (run_id,))
                by_addr = {o["address"]: o for o in obs}
                assert len(by_addr) == len(cidrs), len(by_addr)
                for srv in kinds["garbage"] + kinds["midclose"] + kinds["huge"]:
                    o = by_addr[srv.addr]
                    assert o["outcome"] == "tls_error", (srv.name, o)
                    assert o["error"], (srv.name, o)
                for srv in kinds["drip"]:
                    o = by_addr[srv.addr]
                    assert o["outcome"] == "timeout", (srv.name, o)
                for srv in kinds["huge"]:
                    assert "excessive" in by_addr[srv.addr]["error"] or \
                        "too long" in by_addr[srv.addr]["error"], by_addr[srv.addr]
                for srv in kinds["clientauth"]:
                    o = by_addr[srv.addr]
                    assert o["outcome"] == "tls_error", (srv.name, o)
                    assert o["chain"] and o["chain"][0] == demanding.fingerprint, \
                        "certificate sent before the failure not recorded: %s" % o
            n = c.sql("SELECT count(*) FROM discovered_certificates WHERE fingerprint_sha256 = %s",
                      (demanding.fingerprint,))[0][0]
            assert n == 1
            # memory and descriptors do not grow from one scan to the next
            growth_kb = samples[-1][0] - samples[0][0]
            assert growth_kb < 20 * 1024, "worker RSS grew by %d kB over %d hostile scans" % (
                growth_kb, RUNS - 1)
            assert all(n == 0 for _, n in samples), "scanner sockets left open: %s" % samples
            c.assert_running(w)

            # a host name resolving into network.deny is refused after resolution
            hid = c.add_source_sql("denied_name", hosts=["localhost"], ports=[f.port],
                                   timeout_ms=1000)
            hrun = c.wait_run(c.insert_run_sql(hid), timeout=60)
            pf = c.sql_dicts("SELECT details FROM findings WHERE kind = 'policy_block' AND "
                             "run_id = %s", (hrun["id"],))
            assert len(pf) == 1, pf
            det = pf[0]["details"]
            assert det["hosts"] == ["localhost"], det
            assert {"reason": "network.deny 127.0.0.1/32", "count": 1} in det["ranges"], det
            assert c.sql("SELECT count(*) FROM endpoints WHERE address = '127.0.0.1'")[0][0] == 0

            # a worker killed in the middle of a run keeps what it had written
            slow = c.add_source_sql("slow", cidrs=cidrs, ports=[f.port], timeout_ms=20000,
                                    concurrency=16)
            kid = c.insert_run_sql(slow)
            c.wait_for(lambda: c.run_row(kid)["targets_done"] >= len(cidrs) - COPIES,
                       timeout=30, interval=0.1, what="the fast endpoints of the slow run written")
            c.stop(w, sig=signal.SIGKILL, timeout=10)
            n = c.sql("SELECT count(*) FROM endpoint_observations WHERE run_id = %s", (kid,))[0][0]
            assert n >= len(cidrs) - COPIES, n
            assert c.run_row(kid)["status"] == "running"
        finally:
            f.stop()
    print("test_scan_hostile: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
