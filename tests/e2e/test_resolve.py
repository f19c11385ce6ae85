"""Host-name resolution (worker/scan/resolve.c, driven through tests/resolve_cli) against DNS
servers the test runs on loopback ports (dnsserver.py): 1000 names at once answered after
200 ms, A before AAAA, NXDOMAIN and no-record names, duplicates asked once, truncated answers
retried over TCP, SERVFAIL and REFUSED, failover to a second server, a server that never
answers and one that is not there. Every run names its servers, so nothing but loopback is
ever asked; the system configuration (/etc/hosts, then /etc/resolv.conf) is tested only in a
mount namespace whose two files point at a loopback server (needs root)."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import dnsserver
import harness

BULK = 1000
DELAY = 0.2


def cli_path():
    return harness.binary("tests/resolve_cli")


def run_cli(args, names, prefix=(), timeout=120):
    """Runs resolve_cli with names on stdin: (results, seconds, stderr)."""
    t0 = time.monotonic()
    p = subprocess.run(list(prefix) + [cli_path()] + args, input="".join(n + "\n" for n in names),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    took = time.monotonic() - t0
    for m in harness.SANITIZER_MARKERS:
        assert m not in p.stderr, "resolve_cli: sanitizer report:\n" + p.stderr[-4000:]
    assert p.returncode == 0, "resolve_cli exited %d:\n%s" % (p.returncode, p.stderr[-4000:])
    out = [json.loads(line) for line in p.stdout.splitlines()]
    # one line per name, in order; a name longer than 253 bytes comes back cut (and failed)
    assert [r["name"] for r in out] == [n[:253] for n in names], p.stdout[-2000:]
    return out, took, p.stderr.strip()


def server_arg(srv):
    return ["--server", "127.0.0.1:%d" % srv.port]


def bulk_records():
    """1000 names: 4 in 10 with A only, 3 with A and AAAA, 1 with AAAA only, 2 unknown."""
    records, expect, names = {}, {}, []
    for i in range(BULK):
        name = "n%04d.bulk.test" % i
        names.append(name)
        kind = i % 10
        v4 = ["10.%d.%d.%d" % (kind, i // 250, i % 250 + k) for k in range(1 + i % 3)]
        v6 = ["2001:db8:%x::%x" % (kind, i + 1)]
        if kind <= 3:
            records[name] = v4
            expect[name] = v4
        elif kind <= 6:
            records[name] = v6 + v4  # AAAA listed first: the answer still has A first
            expect[name] = v4 + v6
        elif kind == 7:
            records[name] = v6
            expect[name] = v6
        else:
            expect[name] = None
    return records, expect, names


def check_bulk():
    records, expect, names = bulk_records()
    # The same names again, in other spellings: each must be asked once in all.
    dups = ["n0001.bulk.test", "N0004.BULK.TEST.", "n0008.bulk.test", "n0009.Bulk.Test"]
    given = names[:500] + dups + names[500:]
    with dnsserver.DnsServer(records, delay=DELAY) as srv:
        try:
            out, took, summary = run_cli(server_arg(srv) + ["--timeout", "5000"], given)
            print("bulk: %s (%.2f s wall, %d queries)" % (summary, took,
                                                          sum(srv.queries.values())))
            assert took < 10, "%d names took %.1f s" % (len(given), took)
            for r in out:
                key = r["name"].lower().rstrip(".")
                want = expect[key]
                if want is None:
                    assert r["status"] == -1 and r["addrs"] == [], r
                    assert r["error"] == "does not resolve (NXDOMAIN)", r
                else:
                    assert r["status"] == 0 and r["error"] == "", r
                    assert r["addrs"] == want, (r, want)
                # every name waited for the server's delay, none waited for a timeout
                assert DELAY * 1000 - 10 <= r["elapsed_ms"] < 4000, r
            for name in names:
                assert srv.queries[name] <= 4, (name, srv.queries[name])
            for d in dups:
                key = d.lower().rstrip(".")
                assert srv.queries_by_type[(key, "A")] == 1, (d, srv.queries_by_type[(key, "A")])
                assert srv.queries_by_type[(key, "AAAA")] == 1, d
            # no search domain was appended, no other name asked
            assert set(srv.queries) == set(names), sorted(set(srv.queries) - set(names))[:5]
            assert srv.malformed == 0
        except AssertionError:
            print("dnsserver log:\n" + srv.dump())
            raise


def check_answers():
    records = {
        "big.test": ["10.1.%d.%d" % (i // 200, i % 200) for i in range(40)],
        "dup.test": ["10.9.0.1", "10.9.0.1", "10.9.0.2", "2001:db8::9", "2001:db8::9"],
        "many.test": ["2001:db8::%x" % (i + 1) for i in range(10)] + ["10.2.0.%d" % i for i in range(10)],
        "v6only.test": ["2001:db8::66"],
    }
    rcodes = {"fail.test": dnsserver.SERVFAIL, "refused.test": dnsserver.REFUSED}
    names = ["big.test", "dup.test", "many.test", "v6only.test", "fail.test", "refused.test",
             "192.0.2.55", "2001:db8::77", "bad..name.test", "x" * 254]
    with dnsserver.DnsServer(records, delay=0.05, rcodes=rcodes) as srv:
        try:
            out, took, summary = run_cli(server_arg(srv) + ["--timeout", "3000"], names)
            print("answers: %s" % summary)
            by = {n: r for n, r in zip(names, out)}
            # 40 A records do not fit 512 bytes: truncated over UDP, asked again over TCP
            assert by["big.test"]["addrs"] == records["big.test"][:16], by["big.test"]
            assert srv.tcp_queries["big.test"] >= 1, srv.tcp_queries
            assert by["dup.test"]["addrs"] == ["10.9.0.1", "10.9.0.2", "2001:db8::9"], by
            # at most 16 addresses: all 10 A ones, then the first 6 AAAA ones
            assert by["many.test"]["addrs"] == (records["many.test"][10:] +
                                                records["many.test"][:6]), by["many.test"]
            assert by["v6only.test"]["addrs"] == ["2001:db8::66"], by
            assert by["fail.test"]["error"] == "server failure (SERVFAIL)", by["fail.test"]
            assert by["refused.test"]["error"] == "query refused (REFUSED)", by
            # one server: a SERVFAIL is final, not asked again and again
            assert srv.queries["fail.test"] == 2, srv.queries["fail.test"]
            # IP literals are their own answer, without a query
            assert by["192.0.2.55"]["addrs"] == ["192.0.2.55"] and by["192.0.2.55"]["status"] == 0
            assert by["2001:db8::77"]["addrs"] == ["2001:db8::77"], by
            assert "192.0.2.55" not in srv.queries
            assert by["bad..name.test"]["error"] == "not a valid dns name", by
            assert by["x" * 254]["error"] == "name longer than 253 bytes", by
            assert srv.malformed == 0
        except AssertionError:
            print("dnsserver log:\n" + srv.dump())
            raise


def check_timeouts():
    names = ["slow%02d.test" % i for i in range(50)]
    with dnsserver.DnsServer({}, silent=True) as srv:
        out, took, summary = run_cli(server_arg(srv) + ["--timeout", "1500"], names)
        print("silent server: %s (%.2f s wall)" % (summary, took))
        assert 1.4 < took < 1.5 + 2.0, took
        for r in out:
            assert r["status"] == -1 and r["error"] == "no answer within 1500 ms", r
            assert 1450 <= r["elapsed_ms"] <= 2500, r
        for n in names:
            # an A and an AAAA query, each tried twice at most
            assert 2 <= srv.queries[n] <= 4, (n, srv.queries[n])

    # Nothing listens on this port: refused at once (ICMP), or timed out where the network
    # stack sends no port-unreachable (some sandboxes); either way within the deadline.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
    s.close()
    out, took, summary = run_cli(["--server", "127.0.0.1:%d" % closed, "--timeout", "1000"],
                                 ["gone.test"])
    print("closed port: %s: %s" % (summary, out[0]["error"]))
    assert out[0]["status"] == -1, out
    assert out[0]["error"] in ("dns server unreachable (connection refused)",
                               "no answer within 1000 ms"), out
    assert took < 1.0 + 2.0, took


def check_failover():
    records = {"split.test": ["10.77.0.1"]}
    with dnsserver.DnsServer({}, rcodes={"split.test": dnsserver.SERVFAIL}) as bad, \
            dnsserver.DnsServer({}, silent=True) as mute, \
            dnsserver.DnsServer(records) as good:
        # the first server fails: the second one is asked at once
        out, _, _ = run_cli(server_arg(bad) + server_arg(good) + ["--timeout", "3000"],
                            ["split.test"])
        assert out[0]["addrs"] == ["10.77.0.1"] and out[0]["elapsed_ms"] < 1000, out
        # the first server is mute: the second is asked after one try's wait (3000 / 6 ms)
        out, _, _ = run_cli(server_arg(mute) + server_arg(good) + ["--timeout", "3000"],
                            ["split.test"])
        assert out[0]["addrs"] == ["10.77.0.1"], out
        assert 450 <= out[0]["elapsed_ms"] < 2000, out
        # both fail: the error says so without naming a server
        out, _, _ = run_cli(server_arg(bad) + server_arg(bad) + ["--timeout", "2000"],
                            ["split.test"])
        assert out[0]["error"] == ("no usable answer from any dns server (refused, failed or "
                                   "unreachable)"), out
    print("failover: ok")


def check_bad_servers():
    for bad, why in (("localhost:53", "not an IP address"), ("10.0.0.1:0", "port must be"),
                     ("[::1]", 'expected ":PORT"'), ("::1:53", None),
                     ("[fe80::1%eth0]:53", "not an IPv6")):
        p = subprocess.run([cli_path(), "--server", bad, "--timeout", "50", "192.0.2.1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        if why is None:
            assert p.returncode == 0, (bad, p.stderr)
            continue
        assert p.returncode == 1 and p.stdout == "", (bad, p.returncode, p.stdout)
        assert ('dns server "%s": ' % bad) in p.stderr and why in p.stderr, (bad, p.stderr)
    print("bad servers: ok")


def check_system_config():
    """No servers given: /etc/hosts (every line naming the host) first, then the servers of
    /etc/resolv.conf, whose search list is not applied. Both files are replaced in a mount
    namespace of the resolver's own; the server listens on 127.0.0.83:53."""
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        print("NOTE: no mount namespace here (needs root): the system configuration is not "
              "tested")
        return
    records = {"dns.sys.test": ["10.8.0.1", "2001:db8:8::1"], "multi.sys.test": ["10.99.0.1"]}
    try:
        srv = dnsserver.DnsServer(records, delay=0.05, host="127.0.0.83", port=53).start()
    except OSError as e:
        print("NOTE: cannot listen on 127.0.0.83:53 (%s): the system configuration is not tested"
              % e)
        return
    with tempfile.TemporaryDirectory() as d:
        try:
            hosts = os.path.join(d, "hosts")
            resolv = os.path.join(d, "resolv.conf")
            with open(hosts, "w") as f:
                f.write("127.0.0.1 localhost\nfd00::7 multi.sys.test\n10.7.0.1 multi.sys.test "
                        "alias.sys.test\n10.7.0.2 MULTI.sys.test\n")
            with open(resolv, "w") as f:
                f.write("nameserver 127.0.0.83\nsearch example.invalid\noptions ndots:5\n")
            prefix = ["unshare", "-m", "sh", "-c",
                      'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && '
                      'shift && exec "$@"', hosts, resolv]
            names = ["multi.sys.test", "Alias.Sys.Test.", "dns.sys.test", "nx.sys.test",
                     "Multi.Sys.Test."]
            out, _, summary = run_cli(["--timeout", "3000"], names, prefix=prefix)
            print("system configuration: %s" % summary)
            by = {r["name"]: r for r in out}
            assert by["multi.sys.test"]["addrs"] == ["10.7.0.1", "10.7.0.2", "fd00::7"], by
            assert by["Multi.Sys.Test."]["addrs"] == by["multi.sys.test"]["addrs"], by
            assert by["Alias.Sys.Test."]["addrs"] == ["10.7.0.1"], by
            assert by["dns.sys.test"]["addrs"] == ["10.8.0.1", "2001:db8:8::1"], by
            assert by["nx.sys.test"]["error"] == "does not resolve (NXDOMAIN)", by
            assert srv.queries["multi.sys.test"] == 0 and srv.queries["alias.sys.test"] == 0
            assert set(srv.queries) == {"dns.sys.test", "nx.sys.test"}, srv.queries
        except AssertionError:
            print("dnsserver log:\n" + srv.dump())
            raise
        finally:
            srv.stop()


def main():
    cli_path()
    check_bad_servers()
    check_answers()
    check_failover()
    check_timeouts()
    check_system_config()
    check_bulk()
    print("test_resolve: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
