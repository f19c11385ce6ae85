#!/usr/bin/python3
"""Network scan benchmark: this scanner's engine (bench/scan/scan_bench.c) against
`nmap -Pn --script ssl-cert` and `sslscan` over the same loopback TLS fleet, in one run.

    bench/scan/run.py [--build-dir build-bench] [--servers 60] [--repeat 20]

Builds a release (no sanitizer) copy of the libraries in the build dir, starts the fleet of
tests/e2e/tlsfleet.py (ECDSA P-256 certificates, TLS 1.3, X25519), checks that the three tools
saw the same leaf SHA-256 fingerprints, and prints a Markdown section for bench/RESULTS.md:
handshakes/s, CPU per handshake, peak memory, `openssl speed` for X25519 and ECDSA P-256 (the
client's cryptography), RSS with 10,000 handshakes in flight, endpoints/s over a /16 where
nothing listens. Needs nmap and sslscan (Debian packages) and root for the file limits."""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import platform
import random
import re
import resource
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
        "-o", exe] + sh(["pkg-config", "--libs", "openssl", "libcurl", "libmicrohttpd", "json-c",
                         "libpq", "hiredis", "msgpack", "yaml-0.1"]).stdout.split() +
       ["-lpthread", "-lm"])
    return exe


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(SRC, "build-bench"))
    ap.add_argument("--servers", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--inflight", type=int, default=10000)
    ap.add_argument("--fleet", choices=("openssl", "python"), default="openssl",
                    help="servers: openssl s_server processes (default) or tests/e2e/tlsfleet.py")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    exe = build(a.build_dir)
    tmp = tempfile.mkdtemp(prefix="cap-bench-scan-")
    # Port 443, so nmap's ssl-cert takes the port as TLS without service detection.
    fleet = tlsfleet.Fleet(tmp, port=443)
    for i in range(a.servers):
        fleet.tls("s%d" % i, fleet.cert("s%d.bench.test" % i))
    servers = []
    if a.fleet == "python":
        fleet.start()
    else:
        # one `openssl s_server` process per address: C servers, so the clients are measured
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
    want = {s.cert.fingerprint for s in fleet.servers}
    cidr, port = fleet.cidr(), fleet.port
    res = {}
    try:
        # this scanner: one pass for the fingerprints, then --repeat passes for the rates
        fpfile = os.path.join(tmp, "ours.txt")
        out, wall, cpu, rss = timed([exe, "--cidr", cidr, "--port", str(port), "--slots", "64",
                                     "--fingerprints", fpfile])
        ours_fps = {l.split()[0] for l in open(fpfile)}
        out, wall, cpu, rss = timed([exe, "--cidr", cidr, "--port", str(port), "--slots", "64",
                                     "--repeat", str(a.repeat)])
        ok = a.servers * a.repeat
        res["ours"] = dict(hs=ok, wall=wall, cpu=cpu, rss=rss, fps=ours_fps)

        # nmap ssl-cert over the same range and port
        xml = os.path.join(tmp, "nmap.xml")
        _, wall, cpu, rss = timed(["nmap", "-Pn", "-n", "-T5", "--script", "ssl-cert", "-p",
                                   str(port), "-oX", xml, cidr])
        fps = set()
        for elem in ET.parse(xml).iter("elem"):
            if elem.get("key") == "pem" and elem.text:
                fps.add(pem_fp(elem.text))
        res["nmap"] = dict(hs=len(fps), wall=wall, cpu=cpu, rss=rss, fps=fps)

        # sslscan, certificate only (cipher enumeration off), every endpoint
        targets = os.path.join(tmp, "targets.txt")
        with open(targets, "w") as f:
            for s in fleet.servers:
                f.write("%s:%d\n" % (s.addr, port))
        xml = os.path.join(tmp, "sslscan.xml")
        _, wall, cpu, rss = timed(["sslscan", "--no-colour", "--show-certificate",
                                   "--no-ciphersuites", "--no-fallback", "--no-renegotiation",
                                   "--no-compression", "--no-heartbleed", "--no-groups",
                                   "--no-check-certificate", "--targets=" + targets,
                                   "--xml=" + xml])
        fps = set()
        text = open(xml).read()
        for m in re.finditer(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S):
            fps.add(pem_fp(m.group(0)))
        res["sslscan"] = dict(hs=len(fps), wall=wall, cpu=cpu, rss=rss, fps=fps)

        # OpenSSL's own client, one blocking handshake after another, for a floor of what a
        # TLS 1.3 handshake costs a client with this OpenSSL (not the crypto alone)
        out, wall, cpu, rss = timed(["openssl", "s_time", "-connect",
                                     "%s:%d" % (fleet.servers[0].addr, port), "-new", "-time", "4"])
        m = re.search(r"(\d+) connections in [\d.]+s", out)
        res["s_time"] = dict(hs=int(m.group(1)) if m else 0, wall=wall, cpu=cpu, rss=rss,
                             fps=want)
    finally:
        fleet.stop()
        for p in servers:
            p.terminate()
            p.wait()

    for name, r in res.items():
        r["same"] = r["fps"] == want
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
    b = fleet.base.packed
    empty = "127.%d.0.0/16" % ((b[1] + 1) % 250 + 1)
    out, wall16, cpu16, _ = timed([exe, "--cidr", empty, "--port", str(port), "--slots", "1024",
                                   "--timeout", "3000"])
    r16 = json.loads(out)

    ours = res["ours"]
    cpu_ms = ours["cpu"] * 1000 / ours["hs"]
    ceiling_ms = (2 * x25519_s + verify_s) * 1000 if x25519_s and verify_s else None
    print("## Network scan\n")
    print("Machine: %s, %d cores (%s), %s, OpenSSL %s. Command: `bench/scan/run.py "
          "--servers %d --repeat %d --fleet %s` (release build, no sanitizers). Fleet: %d TLS "
          "servers (%s; ECDSA P-256 certificates, TLS 1.3, X25519) on one /26 of 127/8, port "
          "443, on the same two cores as the clients: server CPU is in the wall times, so CPU "
          "per handshake is the figure that compares the clients.\n"
          % (platform.machine(), os.cpu_count(), cpu_model(), platform.platform(),
             sh(["openssl", "version"]).stdout.split()[1], a.servers, a.repeat, a.fleet,
             a.servers, "one `openssl s_server` process each" if a.fleet == "openssl"
             else "tests/e2e/tlsfleet.py, Python threads"))
    print("| tool | handshakes | wall s | handshakes/s | CPU ms/handshake | peak RSS MB | "
          "same leaf SHA-256 as the fleet |")
    print("|---|---|---|---|---|---|---|")
    for name in ("ours", "nmap", "sslscan", "s_time"):
        r = res[name]
        label = {"ours": "this scanner (engine, 64 slots)", "nmap": "nmap -Pn --script ssl-cert",
                 "sslscan": "sslscan --show-certificate (no cipher enumeration)",
                 "s_time": "openssl s_time -new (one server, sequential; reference)"}[name]
        print("| %s | %d | %.2f | %.1f | %.2f | %.1f | %s |" % (
            label, r["hs"], r["wall"], r["hs"] / r["wall"], r["cpu"] * 1000 / max(r["hs"], 1),
            r["rss"] / 1024.0, "n/a" if name == "s_time" else "yes" if r["same"] else
            "NO (%d of %d)" % (len(r["fps"] & want), len(want))))
    print()
    print("`openssl speed -seconds 3 ecdhx25519 ecdsap256`: X25519 op %.3f ms, ECDSA P-256 verify "
          "%.3f ms; client cryptography per TLS 1.3 handshake (X25519 keygen + derive, one "
          "CertificateVerify check) about %.3f ms, against %.3f ms of CPU measured per handshake "
          "(%.1fx, which includes the kernel's loopback TCP and the record layer).\n"
          % (x25519_s * 1000, verify_s * 1000, ceiling_ms, cpu_ms, cpu_ms / ceiling_ms))
    print("Handshakes in flight: %d probes held at once against listeners that read the "
          "ClientHello and never answer: RSS %.1f MB above the process start, %.0f bytes per "
          "handshake in flight (slot, request, socket, OpenSSL state).\n"
          % (held["held"], (held["rss_held_kb"] - held["rss_start_kb"]) / 1024.0,
             held["bytes_per_inflight"]))
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
