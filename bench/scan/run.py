#!/usr/bin/python3
"""Network scan benchmark: this scanner's engine (bench/scan/scan_bench.c) against
`nmap -Pn --script ssl-cert` and `sslscan` over the same loopback TLS fleet, in one run.

    bench/scan/run.py [--build-dir build-bench] [--servers 60] [--repeat 20] [--scale 1000]
                      [--fleet c|openssl|python] [--fleet-threads N]

Builds a release (no sanitizer) copy of the libraries in the build dir and two C programs:
scan_bench (the engine alone) and fleet (bench/scan/fleet.c: one process, one epoll loop per
core, TLS on many loopback addresses, each with its own certificate). Two passes, each
checking per endpoint (address -> leaf SHA-256) that every tool saw the right certificate:

- servers: --servers TLS servers on one /26 (ECDSA P-256 certificates from
  tests/e2e/tlsfleet.py, TLS 1.3, X25519), served by fleet.c (default), one `openssl s_server`
  process each, or tlsfleet.py's Python threads; this scanner --repeat times over, nmap
  ssl-cert, sslscan, and `openssl s_time` as a reference;
- scale: --scale addresses (rounded up to a power of two, so one CIDR holds exactly them) on
  port 443, 16 certificates round-robin, all served by one fleet.c process; this scanner once,
  nmap ssl-cert and sslscan once each.

Prints a Markdown section for bench/RESULTS.md: handshakes/s, CPU per handshake (the client's
and the fleet's), peak memory, `openssl speed` for X25519 and ECDSA P-256 (the client's
cryptography), RSS with 10,000 handshakes in flight, endpoints/s over a /16 where nothing
listens. Needs nmap and sslscan (Debian packages) and root for the file limits."""

import argparse
import asyncio
import base64
import hashlib
import ipaddress
import json
import os
import platform
import random
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import tlsfleet  # noqa: E402


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def build(build_dir):
    sh(["cmake", "-S", SRC, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
        "-DENABLE_SANITIZERS=OFF"])
    sh(["cmake", "--build", build_dir, "-j2", "--target", "cap_worker", "cap_common"])
    exe = os.path.join(build_dir, "scan_bench")
    sh(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", "-I", SRC,
        os.path.join(SRC, "bench", "scan", "scan_bench.c"),
        os.path.join(build_dir, "worker", "libcap_worker.a"),
        os.path.join(build_dir, "common", "libcap_common.a"),
        "-o", exe] + sh(["pkg-config", "--libs", "libcares", "openssl", "libcurl", "libmicrohttpd",
                         "json-c", "libidn2", "libpq", "hiredis", "msgpack",
                         "yaml-0.1"]).stdout.split() +
       ["-lpthread", "-lm"])
    fleet_exe = os.path.join(build_dir, "fleet")
    sh(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", os.path.join(SRC, "bench", "scan", "fleet.c"),
        "-o", fleet_exe] + sh(["pkg-config", "--libs", "openssl"]).stdout.split())
    return exe, fleet_exe


class CFleet:
    """One bench/scan/fleet.c process serving every (addr, port, Cert) of listeners."""

    def __init__(self, exe, tmp, name, listeners, threads):
        self.config = os.path.join(tmp, name + ".conf")
        with open(self.config, "w") as f:
            for addr, port, cert in listeners:
                f.write("%s %d %s %s\n" % (addr, port, cert.cert_path, cert.key_path))
        self.stderr = open(os.path.join(tmp, name + ".err"), "w+")
        self.p = subprocess.Popen([exe, "--config", self.config, "--threads", str(threads),
                                   "--timeout-ms", "10000"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        line = self.p.stdout.readline()
        if line.strip() != "ready":
            self.p.kill()
            self.p.wait()
            self.stderr.seek(0)
            raise RuntimeError("fleet did not start: %s" % self.stderr.read()[-2000:])

    def stats(self):
        """The fleet's counters and its CPU seconds so far (see fleet.c)."""
        self.p.send_signal(signal.SIGUSR1)
        line = self.p.stdout.readline()
        if not line.startswith("stats "):
            raise RuntimeError("fleet: unexpected output %r" % line)
        return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}

    def stop(self):
        self.p.terminate()
        out = self.p.communicate(timeout=30)[0]
        if self.p.returncode != 0:
            raise RuntimeError("fleet exited with %s" % self.p.returncode)
        self.stderr.close()
        return out


def proc_cpu_s(pids):
    """User+system CPU seconds of the given processes so far (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def parse_ours(path):
    """addr -> leaf SHA-256 from scan_bench --fingerprints."""
    got = {}
    for line in open(path):
        fp, hostport = line.split()
        got[hostport.rsplit(":", 1)[0]] = fp
    return got


def parse_nmap(path, port):
    """addr -> leaf SHA-256 from nmap's XML, for the hosts where ssl-cert gave a PEM."""
    got = {}
    for host in ET.parse(path).iter("host"):
        addr = next((a.get("addr") for a in host.iter("address")
                     if a.get("addrtype") == "ipv4"), None)
        for p in host.iter("port"):
            if p.get("portid") != str(port):
                continue
            for script in p.iter("script"):
                if script.get("id") != "ssl-cert":
                    continue
                for elem in script.iter("elem"):
                    if elem.get("key") == "pem" and elem.text and addr:
                        got[addr] = pem_fp(elem.text)
    return got


def parse_sslscan(path):
    """addr -> leaf SHA-256 from sslscan's XML: the first certificate of each ssltest."""
    got = {}
    text = open(path).read()
    for chunk in text.split("<ssltest ")[1:]:
        m = re.match(r'host="([^"]*)"', chunk)
        c = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", chunk, re.S)
        if m and c:
            got[m.group(1)] = pem_fp(c.group(0))
    return got


def matched(got, want):
    """How many endpoints of want (addr -> fingerprint) got saw with the right certificate."""
    return sum(1 for a, fp in want.items() if got.get(a) == fp)


def timed(cmd, **kw):
    """Runs cmd under GNU time; returns (stdout, wall s, cpu s, max RSS kB) of that process
    alone (not counting the pages of this Python process that a fork would copy)."""
    fd, tfile = tempfile.mkstemp(prefix="cap-bench-time-")
    os.close(fd)
    t0 = time.time()
    p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", tfile] + cmd,
                       capture_output=True, text=True, **kw)
    wall = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError("%s failed (%s): %s" % (cmd[0], p.returncode, p.stderr[-2000:]))
    with open(tfile) as f:
        user, sys_, rss = f.read().split()[-3:]
    os.unlink(tfile)
    return p.stdout, wall, float(user) + float(sys_), int(rss)


def pem_fp(pem):
    b64 = "".join(l for l in pem.strip().splitlines() if not l.startswith("-----"))
    return hashlib.sha256(base64.b64decode(b64)).hexdigest()


def openssl_speed():
    out = sh(["openssl", "speed", "-seconds", "3", "ecdhx25519", "ecdsap256"]).stdout
    m = re.search(r"253 bits ecdh \(X25519\)\s+[\d.]+s\s+([\d.]+)", out)
    x25519_s = 1.0 / float(m.group(1)) if m else None
    m = re.search(r"256 bits ecdsa \(nistp256\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", out)
    verify_s = 1.0 / float(m.group(2)) if m else None
    if x25519_s is None or verify_s is None:
        raise RuntimeError("cannot read openssl speed output:\n" + out)
    return x25519_s, verify_s, out


async def holder(addrs, port, ready, stop):
    conns = []

    async def handle(reader, writer):
        conns.append(writer)
        try:
            await reader.read(4096)  # the ClientHello; never answered
            await stop.wait()
        except (ConnectionError, asyncio.CancelledError):
            pass
    servers = [await asyncio.start_server(handle, a, port, backlog=4096) for a in addrs]
    ready.set()
    await stop.wait()
    for s in servers:
        s.close()
    for w in conns:
        w.close()
    for t in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
        t.cancel()


def tool_run(cmd, fleet_stats):
    """timed(cmd), and what the fleet spent meanwhile: the differences of fleet_stats()."""
    s0 = fleet_stats()
    out, wall, cpu, rss = timed(cmd)
    s1 = fleet_stats()
    return out, dict(wall=wall, cpu=cpu, rss=rss,
                     fleet={k: s1[k] - s0[k] for k in s1 if k in s0 and k != "maxrss_kb"})


def sslscan_cmd(targets, xml):
    # certificate only (cipher enumeration off), every endpoint of the targets file
    return ["sslscan", "--no-colour", "--show-certificate", "--no-ciphersuites", "--no-fallback",
            "--no-renegotiation", "--no-compression", "--no-heartbleed", "--no-groups",
            "--no-check-certificate", "--targets=" + targets, "--xml=" + xml]


def scale_pass(exe, fleet_exe, tmp, n, threads, avoid):
    """--scale: n addresses rounded up to a power of two (one CIDR holds exactly them) on port
    443, 16 certificates round-robin, one fleet.c process; this scanner, nmap and sslscan once
    each. Returns (cidr, addresses, {tool: result}, fleet maxrss kB)."""
    bits = max(0, (n - 1).bit_length())
    size = 1 << bits
    certs_fleet = tlsfleet.Fleet(os.path.join(tmp, "scale"), port=443)
    certs = [certs_fleet.cert("r%d.scale.bench.test" % i) for i in range(16)]
    for attempt in range(3):
        # a random block of 127.x.0.0/16 (x as tlsfleet picks it, away from the other runs)
        second = random.choice([x for x in range(100, 251) if x not in avoid])
        base = ipaddress.ip_address("127.%d.0.0" % second) + random.randrange(0, 65536, size)
        cidr = "%s/%d" % (base, 32 - bits)
        addrs = [str(base + i) for i in range(size)]
        try:
            cf = CFleet(fleet_exe, tmp, "scale", [(addr, 443, certs[i % len(certs)])
                                                  for i, addr in enumerate(addrs)], threads)
            break
        except RuntimeError as e:
            if attempt == 2:
                raise
            print("scale fleet on %s: %s; trying another block" % (cidr, e), file=sys.stderr)
    want = {addr: certs[i % len(certs)].fingerprint for i, addr in enumerate(addrs)}
    res = {}
    try:
        fpfile = os.path.join(tmp, "scale-ours.txt")
        out, r = tool_run([exe, "--cidr", cidr, "--port", "443", "--slots", "64",
                           "--fingerprints", fpfile], cf.stats)
        r["got"] = parse_ours(fpfile)
        r["hs"] = json.loads(out)["ok"]
        res["ours"] = r

        xml = os.path.join(tmp, "scale-nmap.xml")
        _, r = tool_run(["nmap", "-Pn", "-n", "-T5", "--script", "ssl-cert", "-p", "443",
                         "-oX", xml, cidr], cf.stats)
        r["got"] = parse_nmap(xml, 443)
        r["hs"] = len(r["got"])
        res["nmap"] = r

        targets = os.path.join(tmp, "scale-targets.txt")
        with open(targets, "w") as f:
            for addr in addrs:
                f.write("%s:443\n" % addr)
        xml = os.path.join(tmp, "scale-sslscan.xml")
        _, r = tool_run(sslscan_cmd(targets, xml), cf.stats)
        r["got"] = parse_sslscan(xml)
        r["hs"] = len(r["got"])
        res["sslscan"] = r
        maxrss = cf.stats()["maxrss_kb"]
    finally:
        cf.stop()
    for r in res.values():
        r["matched"] = matched(r["got"], want)
    return cidr, size, res, maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(SRC, "build-bench"))
    ap.add_argument("--servers", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--inflight", type=int, default=10000)
    ap.add_argument("--scale", type=int, default=1000,
                    help="addresses of the scale pass (rounded up to a power of two), 0: none")
    ap.add_argument("--fleet", choices=("c", "openssl", "python"), default="c",
                    help="servers of the first pass: one bench/scan/fleet.c process (default), "
                         "openssl s_server processes or tests/e2e/tlsfleet.py")
    ap.add_argument("--fleet-threads", type=int, default=os.cpu_count() or 1,
                    help="epoll threads of fleet.c (default: one per core)")
    a = ap.parse_args()
    if not 0 <= a.scale <= 8192:
        ap.error("--scale %d: expected 0 to 8192 (two listening sockets per address and "
                 "thread must fit the file limit)" % a.scale)
    if not 1 <= a.servers <= 62:
        ap.error("--servers %d: expected 1 to 62 (one /26)" % a.servers)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    exe, fleet_exe = build(a.build_dir)
    tmp = tempfile.mkdtemp(prefix="cap-bench-scan-")
    # Port 443, so nmap's ssl-cert takes the port as TLS without service detection.
    fleet = tlsfleet.Fleet(tmp, port=443)
    for i in range(a.servers):
        fleet.tls("s%d" % i, fleet.cert("s%d.bench.test" % i))
    servers = []
    cfleet = None
    if a.fleet == "python":
        fleet.start()
    elif a.fleet == "c":
        cfleet = CFleet(fleet_exe, tmp, "servers",
                        [(s.addr, fleet.port, s.cert) for s in fleet.servers], a.fleet_threads)
    else:
        # one `openssl s_server` process per address
        for s in fleet.servers:
            servers.append(subprocess.Popen(
                ["openssl", "s_server", "-quiet", "-naccept", "1000000", "-accept",
                 "%s:%d" % (s.addr, fleet.port), "-cert", s.cert.cert_path, "-key",
                 s.cert.key_path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL))
        for s in fleet.servers:
            for _ in range(100):
                try:
                    socket.create_connection((s.addr, fleet.port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)

    def fleet_stats():
        if cfleet:
            return cfleet.stats()
        if servers:
            return {"cpu_s": proc_cpu_s([p.pid for p in servers])}
        return {"cpu_s": time.process_time()}  # tlsfleet's threads, in this process
    want = {s.addr: s.cert.fingerprint for s in fleet.servers}
    cidr, port = fleet.cidr(), fleet.port
    res = {}
    fleet_maxrss = None
    try:
        # this scanner: one pass for the fingerprints, then --repeat passes for the rates
        fpfile = os.path.join(tmp, "ours.txt")
        timed([exe, "--cidr", cidr, "--port", str(port), "--slots", "64",
               "--fingerprints", fpfile])
        out, r = tool_run([exe, "--cidr", cidr, "--port", str(port), "--slots", "64",
                           "--repeat", str(a.repeat)], fleet_stats)
        r["hs"] = json.loads(out)["ok"]
        r["got"] = parse_ours(fpfile)
        res["ours"] = r

        # nmap ssl-cert over the same range and port
        xml = os.path.join(tmp, "nmap.xml")
        _, r = tool_run(["nmap", "-Pn", "-n", "-T5", "--script", "ssl-cert", "-p", str(port),
                         "-oX", xml, cidr], fleet_stats)
        r["got"] = parse_nmap(xml, port)
        r["hs"] = len(r["got"])
        res["nmap"] = r

        targets = os.path.join(tmp, "targets.txt")
        with open(targets, "w") as f:
            for s in fleet.servers:
                f.write("%s:%d\n" % (s.addr, port))
        xml = os.path.join(tmp, "sslscan.xml")
        _, r = tool_run(sslscan_cmd(targets, xml), fleet_stats)
        r["got"] = parse_sslscan(xml)
        r["hs"] = len(r["got"])
        res["sslscan"] = r

        # OpenSSL's own client, one blocking handshake after another, for a floor of what a
        # TLS 1.3 handshake costs a client with this OpenSSL (not the crypto alone)
        out, r = tool_run(["openssl", "s_time", "-connect",
                           "%s:%d" % (fleet.servers[0].addr, port), "-new", "-time", "4"],
                          fleet_stats)
        m = re.search(r"(\d+) connections in [\d.]+s", out)
        r["hs"] = int(m.group(1)) if m else 0
        r["got"] = None
        res["s_time"] = r
        if cfleet:
            fleet_maxrss = cfleet.stats()["maxrss_kb"]
    finally:
        if cfleet:
            cfleet.stop()
        fleet.stop()
        for p in servers:
            p.terminate()
            p.wait()
    for r in res.values():
        if r["got"] is not None:
            r["matched"] = matched(r["got"], want)

    b = fleet.base.packed
    empty_second = (b[1] + 1) % 250 + 1
    scale = None
    if a.scale:
        scale = scale_pass(exe, fleet_exe, tmp, a.scale, a.fleet_threads, (b[1], empty_second))
    x25519_s, verify_s, speed_out = openssl_speed()

    # 10,000 handshakes in flight against listeners that take the ClientHello and never answer
    hold_addrs = [str(fleet.base + 200 + i) for i in range(8)]
    hold_port = random.randint(20000, 60000)
    loop = asyncio.new_event_loop()
    ready, stop = threading.Event(), None

    def run_holder():
        nonlocal stop
        asyncio.set_event_loop(loop)
        stop = asyncio.Event()
        loop.run_until_complete(holder(hold_addrs, hold_port, ready, stop))
    th = threading.Thread(target=run_holder, daemon=True)
    th.start()
    ready.wait(10)
    out, _, _, _ = timed([exe, "--cidr", "%s/29" % hold_addrs[0], "--port", str(hold_port),
                          "--slots", str(a.inflight), "--timeout", "60000", "--hold",
                          str(a.inflight)])
    held = json.loads(out)
    loop.call_soon_threadsafe(stop.set)
    th.join(10)

    # a /16 where nothing listens: connection refused at once, endpoints per second
    empty = "127.%d.0.0/16" % empty_second
    out, wall16, cpu16, _ = timed([exe, "--cidr", empty, "--port", str(port), "--slots", "1024",
                                   "--timeout", "3000"])
    r16 = json.loads(out)

    ours = res["ours"]
    cpu_ms = ours["cpu"] * 1000 / ours["hs"]
    ceiling_ms = (2 * x25519_s + verify_s) * 1000 if x25519_s and verify_s else None
    fleet_desc = {
        "c": "one `bench/scan/fleet.c` process, %d epoll threads" % a.fleet_threads,
        "openssl": "one `openssl s_server` process each",
        "python": "tests/e2e/tlsfleet.py, Python threads"}[a.fleet]
    print("## Network scan\n")
    print("Machine: %s, %d cores (%s), %s, OpenSSL %s. Command: `bench/scan/run.py "
          "--servers %d --repeat %d --scale %d --fleet %s` (release build, no sanitizers). "
          "Fleet: %d TLS servers (%s; ECDSA P-256 certificates, TLS 1.0 to 1.3, X25519, no "
          "session cache, no tickets) on one /26 of 127/8, port 443, on the same two cores as "
          "the clients: server CPU is in the wall times, so CPU per handshake is the figure "
          "that compares the clients; the fleet's own CPU per handshake and the cores it kept "
          "busy are beside it.\n"
          % (platform.machine(), os.cpu_count(), cpu_model(), platform.platform(),
             sh(["openssl", "version"]).stdout.split()[1], a.servers, a.repeat, a.scale,
             a.fleet, a.servers, fleet_desc))
    labels = {"ours": "this scanner (engine, 64 slots)", "nmap": "nmap -Pn --script ssl-cert",
              "sslscan": "sslscan --show-certificate (no cipher enumeration)",
              "s_time": "openssl s_time -new (one server, sequential; reference)"}

    def fleet_cols(r):
        f = r["fleet"]
        return "%.2f | %.2f" % (f["cpu_s"] * 1000 / max(r["hs"], 1), f["cpu_s"] / r["wall"])

    def match_col(r, n):
        if r.get("matched") is None:
            return "n/a"
        return "yes" if r["matched"] == n else "NO (%d of %d)" % (r["matched"], n)
    print("| tool | handshakes | wall s | handshakes/s | CPU ms/handshake | peak RSS MB | "
          "fleet CPU ms/handshake | fleet cores busy | right leaf SHA-256 at every endpoint |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("ours", "nmap", "sslscan", "s_time"):
        r = res[name]
        print("| %s | %d | %.2f | %.1f | %.2f | %.1f | %s | %s |" % (
            labels[name], r["hs"], r["wall"], r["hs"] / r["wall"],
            r["cpu"] * 1000 / max(r["hs"], 1), r["rss"] / 1024.0, fleet_cols(r),
            match_col(r, len(want))))
    print()
    if cfleet:
        print("What the fleet saw per endpoint (connections accepted / handshakes completed): "
              "%s; fleet peak RSS %.1f MB.\n" % ("; ".join(
                  "%s %.1f / %.1f" % (n, res[n]["fleet"]["accepted"] / len(want) /
                                      (a.repeat if n == "ours" else 1),
                                      res[n]["fleet"]["ok"] / len(want) /
                                      (a.repeat if n == "ours" else 1))
                  for n in ("ours", "nmap", "sslscan")), fleet_maxrss / 1024.0))
    if scale:
        scidr, size, sres, smaxrss = scale
        print("Scale: %d endpoints (%s, port 443; --scale %d rounded up to a power of two), 16 "
              "certificates round-robin over the addresses, all served by one `fleet.c` process "
              "(%d epoll threads, peak RSS %.1f MB); each tool once over them, checked per "
              "endpoint (address -> leaf SHA-256).\n"
              % (size, scidr, a.scale, a.fleet_threads, smaxrss / 1024.0))
        print("| tool | endpoints | wall s | handshakes/s | CPU ms/handshake | peak RSS MB | "
              "fleet CPU ms/handshake | fleet cores busy | fleet connections per endpoint | "
              "all endpoints matched |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name in ("ours", "nmap", "sslscan"):
            r = sres[name]
            print("| %s | %d | %.2f | %.1f | %.2f | %.1f | %s | %.1f | %s |" % (
                labels[name], size, r["wall"], r["hs"] / r["wall"],
                r["cpu"] * 1000 / max(r["hs"], 1), r["rss"] / 1024.0, fleet_cols(r),
                r["fleet"]["accepted"] / size, match_col(r, size)))
        print()
        print("Handshakes per second, this scanner against nmap: %.1fx over %d endpoints, "
              "%.1fx over %d.\n" % (
                  (res["ours"]["hs"] / res["ours"]["wall"]) / (res["nmap"]["hs"] /
                                                              res["nmap"]["wall"]),
                  len(want), (sres["ours"]["hs"] / sres["ours"]["wall"]) /
                  max(sres["nmap"]["hs"] / sres["nmap"]["wall"], 1e-9), size))
    print("`openssl speed -seconds 3 ecdhx25519 ecdsap256`: X25519 op %.3f ms, ECDSA P-256 verify "
          "%.3f ms; client cryptography per TLS 1.3 handshake (X25519 keygen + derive, one "
          "CertificateVerify check) about %.3f ms, against %.3f ms of CPU measured per handshake "
          "(%.1fx, which includes the kernel's loopback TCP and the record layer).\n"
          % (x25519_s * 1000, verify_s * 1000, ceiling_ms, cpu_ms, cpu_ms / ceiling_ms))
    rss_mb = (held["rss_held_kb"] - held["rss_start_kb"]) / 1024.0
    if held.get("handshaking", 0) >= held["held"]:
        out_desc = "all with their ClientHello out"
    else:
        out_desc = "%d of them with their ClientHello out" % held.get("handshaking", 0)
    print("Handshakes in flight: %d probes held, %s, against listeners that read the "
          "ClientHello and never answer: RSS %.1f MB above the process start, %.0f bytes per "
          "handshake (%.0f of them allocated by OpenSSL; heap in use %.0f bytes per "
          "handshake).\n"
          % (held["held"], out_desc, rss_mb, held["bytes_per_inflight"],
             held["openssl_bytes_per_inflight"], held["heap_bytes_per_inflight"]))
    print("A /16 where nothing listens (%s, 1024 slots): %d endpoints in %.2f s, %.0f "
          "endpoints/s, all refused: %s.\n" % (empty, r16["endpoints"], r16["seconds"],
                                              r16["endpoints_per_s"],
                                              "yes" if r16["refused"] == r16["endpoints"] else
                                              "no (%d refused)" % r16["refused"]))


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
