#!/usr/bin/python3
"""Soak of the scan engine: --inflight probes (10,000) kept outstanding for --duration seconds
(300) against a local fleet of slow and hostile TLS servers, with RSS, descriptors, probes in
flight and the lateness of every result sampled. A documented command, not run by CI:

    sudo bench/soak/run.py [--duration 300] [--inflight 10000] [--timeout-ms 10000]
                           [--build-dir build-soak] [--json FILE]

Needs root (the open-file limits: 10,000 sockets on each side). Loopback only: every server
listens on one random 127.x.y.0/24.

Builds a release (no sanitizer) copy of the libraries in the build dir and two C programs:
bench/soak/hostile.c (the fleet: one epoll loop) and bench/soak/soak_driver.c (the engine
alone, as bench/scan/scan_bench.c, with --slots TLS slots so every handshake gets one). The
driver picks each new probe's target by weight (--weights, shares of submissions):

  tarpit   accepts, never answers (a handshake timeout)
  trickle  a real TLS server sending one byte every --trickle-ms (a timeout mid-handshake)
  slowtls  a real TLS server sending --slow-chunk bytes every --slow-ms (completes, slowly)
  silent   a listener that never accepts: SYNs dropped once its queue is full (connect timeout)
  reset    after the ClientHello and 0.2-3 s, half a ServerHello and a TCP reset
  garbage  after the ClientHello and 0.2-3 s, 4 KB of random bytes
  tls      a normal TLS server (ECDSA P-256, leaf + intermediate)
  refused  an address where nothing listens

Samples every --sample seconds: the driver's VmRSS and open descriptors (/proc/self), probes
outstanding, in TLS slots and connecting, results by outcome; for every result its lateness,
elapsed_ms - timeout_ms (elapsed counted by the engine from the first SYN) and, from the
driver's side, time from submission to result minus the timeout. Prints a Markdown report; the
exit status is 0 when the aims hold: --inflight probes held in the engine (at least 95 % in
every sample of the steady state), RSS and descriptors flat (mean of the first and last window
of the steady state within --flat-pct), no result later than 20 % of its timeout, and the
descriptors back to their start once drained. The machine's other load counts: a starved
fleet or engine holds fewer probes, which the report shows."""

import argparse
import ipaddress
import json
import os
import platform
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import tlsfleet  # noqa: E402

KINDS = ("tarpit", "trickle", "slowtls", "silent", "reset", "garbage", "tls", "refused")
TLS_KINDS = ("trickle", "slowtls", "tls")
DEFAULT_WEIGHTS = "tarpit=25,trickle=20,slowtls=20,silent=5,reset=10,garbage=10,tls=5,refused=5"


def sh(cmd, **kw):
    p = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if p.returncode != 0:
        sys.exit("run.py: %s failed (%d):\n%s" % (" ".join(cmd[:4]), p.returncode,
                                                  (p.stdout + p.stderr)[-3000:]))
    return p


def build(build_dir, libs):
    """Builds the libraries (unless libs is false: the ones already in build_dir) and the two
    programs; returns their paths."""
    if libs:
        sh(["cmake", "-S", SRC, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
            "-DENABLE_SANITIZERS=OFF"])
        sh(["cmake", "--build", build_dir, "-j2", "--target", "cap_worker", "cap_common"])
    warn = ["-O2", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Wformat=2", "-Wshadow",
            "-Werror"]
    driver = os.path.join(build_dir, "soak_driver")
    sh(["cc"] + warn + ["-I", SRC, os.path.join(SRC, "bench", "soak", "soak_driver.c"),
                        os.path.join(build_dir, "worker", "libcap_worker.a"),
                        os.path.join(build_dir, "common", "libcap_common.a"), "-o", driver] +
       sh(["pkg-config", "--libs", "libcares", "openssl", "libcurl", "libmicrohttpd", "json-c",
           "libidn2", "libpq", "hiredis", "msgpack", "yaml-0.1"]).stdout.split() +
       ["-lpthread", "-lm"])
    hostile = os.path.join(build_dir, "soak_hostile")
    sh(["cc"] + warn + [os.path.join(SRC, "bench", "soak", "hostile.c"), "-o", hostile] +
       sh(["pkg-config", "--libs", "openssl"]).stdout.split())
    return driver, hostile


def raise_nofile(want, need):
    """Raises the open-file limits towards want (root; a container may forbid raising the hard
    limit) and fails unless the soft limit reaches need."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (ValueError, OSError):
            pass  # the hard limit as it is
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < need:
        sys.exit("run.py: the open-file hard limit is %d, %d needed (TLS slots + pending "
                 "connects + 256 in the driver); run as root or lower --slots/--pending"
                 % (hard, need))


def free_port(addrs):
    """A port that binds on every address of addrs."""
    for _ in range(50):
        port = random.randint(20000, 60000)
        socks = []
        try:
            for a in addrs:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((a, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no port free on every soak address")


def proc_status(pid):
    """(VmRSS kB, open descriptors) of pid, from /proc."""
    rss = -1
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def tcp_counters():
    """Kernel TCP counters of this network namespace (all processes): SYNs dropped at a full
    accept queue, SYNs sent again."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for head, vals in zip(lines[0::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            d = dict(zip(head.split()[1:], (int(v) for v in vals.split()[1:])))
            return {"listen_overflows": d.get("ListenOverflows", 0),
                    "syn_retrans": d.get("TCPSynRetrans", 0)}
    return {"listen_overflows": 0, "syn_retrans": 0}


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def pct_change(a, b):
    return (b - a) * 100.0 / a if a else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=300, help="seconds of load (default 300)")
    ap.add_argument("--inflight", type=int, default=10000, help="probes kept outstanding")
    ap.add_argument("--timeout-ms", type=int, default=10000, help="each probe's deadline")
    ap.add_argument("--sample", type=int, default=5, help="seconds between samples")
    ap.add_argument("--slots", type=int, default=12000, help="engine TLS slots")
    ap.add_argument("--pending", type=int, default=4096, help="engine pending-connect budget")
    ap.add_argument("--connect-rate", type=int, default=5000, help="engine connects per second")
    ap.add_argument("--weights", default=DEFAULT_WEIGHTS,
                    help="shares of submissions per kind (default %s)" % DEFAULT_WEIGHTS)
    ap.add_argument("--addrs-per-kind", type=int, default=4)
    ap.add_argument("--trickle-ms", type=int, default=300)
    ap.add_argument("--slow-chunk", type=int, default=64)
    ap.add_argument("--slow-ms", type=int, default=250)
    ap.add_argument("--flat-pct", type=float, default=5.0,
                    help="largest change of mean RSS or descriptors, first to last window")
    ap.add_argument("--build-dir", default=os.path.join(SRC, "build-soak"))
    ap.add_argument("--no-build-libs", action="store_true",
                    help="link with the libraries already in the build dir (no cmake)")
    ap.add_argument("--json", help="also write every driver line (JSON) to this file")
    a = ap.parse_args()
    weights = {}
    for item in a.weights.split(","):
        k, _, v = item.partition("=")
        if k not in KINDS or not v.isdigit():
            ap.error("--weights: %r: expected kind=integer, kinds %s" % (item, ", ".join(KINDS)))
        if int(v) > 0:
            weights[k] = int(v)
    if not 1 <= a.addrs_per_kind <= 25:
        ap.error("--addrs-per-kind: 1 to 25 (one /24 holds them all)")
    if os.geteuid() != 0:
        sys.exit("run.py: run as root (10,000 sockets on each side need a higher open-file "
                 "hard limit)")
    raise_nofile(65536, max(a.slots + a.pending, a.inflight + 64) + 256)
    driver, hostile = build(a.build_dir, not a.no_build_libs)
    tmp = tempfile.mkdtemp(prefix="cap-soak-")

    # One random 127.x.y.0/24, addrs_per_kind addresses per kind, one port for all.
    base = ipaddress.ip_address("127.%d.%d.0" % (random.randint(100, 250),
                                                 random.randint(1, 250)))
    addrs = {k: [str(base + 1 + i * a.addrs_per_kind + n) for n in range(a.addrs_per_kind)]
             for i, k in enumerate(KINDS)}
    port = free_port([x for k in KINDS if k != "refused" for x in addrs[k]])
    certs_fleet = tlsfleet.Fleet(tmp)
    certs = [certs_fleet.cert("soak%d.bench.test" % i, via_intermediate=True)
             for i in range(a.addrs_per_kind)]
    fleet_conf = os.path.join(tmp, "hostile.conf")
    targets = os.path.join(tmp, "targets.conf")
    with open(fleet_conf, "w") as f, open(targets, "w") as t:
        for k in KINDS:
            for n, addr in enumerate(addrs[k]):
                if k in TLS_KINDS:
                    f.write("%s %d %s %s %s\n" % (addr, port, k, certs[n].cert_path,
                                                  certs[n].key_path))
                elif k != "refused":
                    f.write("%s %d %s\n" % (addr, port, k))
                if k in weights:
                    t.write("%s %s %d %d\n" % (k, addr, port, weights[k]))
    fleet_err = open(os.path.join(tmp, "hostile.err"), "w+")
    fleet = subprocess.Popen([hostile, "--config", fleet_conf, "--trickle-ms", str(a.trickle_ms),
                              "--slow-chunk", str(a.slow_chunk), "--slow-ms", str(a.slow_ms)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=fleet_err,
                             text=True)
    if fleet.stdout.readline().strip() != "ready":
        fleet.kill()
        fleet.wait()
        fleet_err.seek(0)
        sys.exit("run.py: the hostile fleet did not start: %s" % fleet_err.read()[-2000:])

    cmd = [driver, "--targets", targets, "--inflight", str(a.inflight), "--timeout",
           str(a.timeout_ms), "--duration", str(a.duration), "--sample", str(a.sample),
           "--slots", str(a.slots), "--pending", str(a.pending), "--connect-rate",
           str(a.connect_rate)]
    drv_err = open(os.path.join(tmp, "driver.err"), "w+")
    raw = open(a.json, "w") if a.json else None
    samples, summary = [], None
    t_start = time.time()
    tcp0 = tcp_counters()
    drv = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=drv_err,
                           text=True)
    try:
        for line in drv.stdout:
            if raw:
                raw.write(line)
            d = json.loads(line)
            if d["type"] == "sample":
                d["fleet_rss_kb"], d["fleet_fds"] = proc_status(fleet.pid)
                samples.append(d)
                res = d["results"]
                print("t=%5.1fs %-5s rss=%.1fMB fds=%d outstanding=%d slots=%d connecting=%d "
                      "ok=%d timeout=%d tls_error=%d refused=%d late_max=%dms cpu=%.2f"
                      % (d["t"], d["phase"], d["rss_kb"] / 1024.0, d["fds"], d["outstanding"],
                         d["in_slots"], d["connecting"], res["ok"], res["timeout"],
                         res["tls_error"], res["refused"], res["late_max_ms"], d["cpu"]),
                      file=sys.stderr, flush=True)
            elif d["type"] == "summary":
                summary = d
        drv.wait()
    finally:
        if drv.poll() is None:
            drv.kill()
            drv.wait()
        fleet.send_signal(signal.SIGUSR1)
        fleet_stats = fleet.stdout.readline().split()[1:]
        fleet.terminate()
        fleet.communicate(timeout=30)
        if raw:
            raw.close()
    if drv.returncode != 0 or not summary:
        drv_err.seek(0)
        sys.exit("run.py: the driver failed (%s): %s" % (drv.returncode, drv_err.read()[-3000:]))
    fleet_stats = dict(kv.split("=") for kv in fleet_stats)
    tcp1 = tcp_counters()
    tcp = {k: tcp1[k] - tcp0[k] for k in tcp0}
    ok = report(a, samples, summary, fleet_stats, time.time() - t_start, weights, tcp)
    sys.exit(0 if ok else 1)


def report(a, samples, s, fleet_stats, wall, weights, tcp):
    timeout_s = a.timeout_ms / 1000.0
    run = [x for x in samples if x["phase"] == "run"]
    # steady state: after the ramp (one deadline), one more deadline (every kind has come
    # round once) and one more sample
    steady = [x for x in run if x["t"] >= 2 * timeout_s + a.sample]
    if len(steady) < 2:
        steady = run
    span = steady[-1]["t"] - steady[0]["t"] if steady else 0
    win = min(60.0, span / 3.0) if span > 0 else 0
    first = [x for x in steady if x["t"] <= steady[0]["t"] + win]
    last = [x for x in steady if x["t"] >= steady[-1]["t"] - win]
    rss_a, rss_b = mean([x["rss_kb"] for x in first]), mean([x["rss_kb"] for x in last])
    fd_a, fd_b = mean([x["fds"] for x in first]), mean([x["fds"] for x in last])
    out_a = mean([x["outstanding"] for x in steady])
    eng = [x["in_slots"] + x["pending"] for x in steady]
    # descriptors beyond one per probe in the engine (each holds one socket); the two counts
    # are read a moment apart, so probes that start or end in between show as a few either way
    extra = [x["fds"] - x["in_slots"] - x["pending"] for x in steady]
    rss_flat = abs(pct_change(rss_a, rss_b)) <= a.flat_pct
    fds_flat = abs(pct_change(fd_a, fd_b)) <= a.flat_pct
    held = bool(eng) and min(eng) >= 0.95 * a.inflight
    late_ok = s["late_over20"] == 0
    drained_ok = s["left_outstanding"] == 0 and s["fds_drained"] <= s["fds_start"] + 2
    print("## Soak: %d probes in flight for %d s\n" % (a.inflight, a.duration))
    print("Machine: %s, %d cores, %s, OpenSSL %s. Command: `bench/soak/run.py --duration %d "
          "--inflight %d --timeout-ms %d` (release build, no sanitizers; load average %s at "
          "the end). Engine: %d TLS slots, %d pending connects, %d connects/s; every probe's "
          "deadline %d ms, the probes outstanding raised evenly from 0 over the first deadline "
          "(so the deadlines are spread). Submissions by kind: %s. Wall time %.0f s (the drain "
          "included).\n"
          % (platform.machine(), os.cpu_count(), platform.platform(),
             sh(["openssl", "version"]).stdout.split()[1], a.duration, a.inflight,
             a.timeout_ms, " ".join("%.2f" % x for x in os.getloadavg()), a.slots, a.pending,
             a.connect_rate, a.timeout_ms,
             ", ".join("%s %d" % (k, v) for k, v in weights.items()), wall))
    print("| t s | driver RSS MB | driver fds | outstanding | in engine (slots + pending) | "
          "connecting | handshaking | results/s | ok | timeout | tls_error | refused | "
          "latest ms past deadline | driver CPU cores | fleet fds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    prev_t = 0.0
    for x in samples:
        r = x["results"]
        n = r["ok"] + r["timeout"] + r["tls_error"] + r["refused"] + r["other"]
        dt = x["t"] - prev_t
        prev_t = x["t"]
        print("| %.0f%s | %.1f | %d | %d | %d | %d | %d | %.0f | %d | %d | %d | %d | %d | %.2f | "
              "%d |" % (x["t"], "" if x["phase"] == "run" else " (drain)", x["rss_kb"] / 1024.0,
                        x["fds"], x["outstanding"], x["in_slots"] + x["pending"],
                        x["connecting"], x["handshaking"], n / dt if dt > 0 else 0, r["ok"],
                        r["timeout"], r["tls_error"], r["refused"], r["late_max_ms"], x["cpu"],
                        x["fleet_fds"]))
    print()
    print("Steady state: from t = %.0f s (the ramp, one more deadline and one sample after the "
          "start) to the "
          "end of the load; windows of %.0f s at each end compared.\n" % (
              steady[0]["t"] if steady else 0, win))
    print("- RSS: %.1f MB first window, %.1f MB last window (%+.1f %%; min %.1f, max %.1f MB "
          "in the steady state; %.1f MB at start, before any probe): %s" % (
              rss_a / 1024.0, rss_b / 1024.0, pct_change(rss_a, rss_b),
              min(x["rss_kb"] for x in steady) / 1024.0,
              max(x["rss_kb"] for x in steady) / 1024.0, s["rss_start_kb"] / 1024.0,
              "flat" if rss_flat else "NOT flat"))
    print("- Descriptors: %.0f first window, %.0f last window (%+.1f %%): %s; beyond one per "
          "probe in the engine %d to %d in the steady state; %d at start, %d once drained, %d "
          "after the engine was freed: %s" % (
              fd_a, fd_b, pct_change(fd_a, fd_b), "flat" if fds_flat else "NOT flat",
              min(extra) if extra else 0, max(extra) if extra else 0, s["fds_start"],
              s["fds_drained"], s["fds_freed"], "none leaked" if drained_ok else "LEAKED"))
    print("- Probes outstanding (submitted, not yet returned): %.0f on average in the steady "
          "state; in the engine (TLS slots + pending connects) %.0f on average, %d to %d: %s; "
          "peak TLS slots in use %d, peak pending %d; requeued %d, local failures %d" % (
              out_a, mean(eng), min(eng) if eng else 0, max(eng) if eng else 0,
              "held" if held else "NOT held (under 95 %% of %d at times)" % a.inflight,
              s["inflight_peak"], s["pending_peak"], s["requeued"], s["local_failures"]))

    def cpu_per_result(xs):
        """Driver cores and CPU ms per result over samples xs (each covers --sample s)."""
        n = sum(sum(x["results"][k] for k in ("ok", "timeout", "tls_error", "refused",
                                               "other")) for x in xs)
        cores = mean([x["cpu"] for x in xs])
        return cores, cores * a.sample * len(xs) * 1000.0 / n if n else float("nan")
    (ca, ma), (cb, mb) = cpu_per_result(first), cpu_per_result(last)
    print("- Driver CPU (engine loop and driver thread): %.2f cores, %.3f ms per result in the "
          "first window; %.2f cores, %.3f ms per result in the last" % (ca, ma, cb, mb))
    la, lt, lq = s["late"], s["late_timeouts"], s["late_queued"]
    print("- Lateness (elapsed_ms - timeout_ms, clamped at 0), all %d results: p50 %d, p99 %d, "
          "p99.9 %d, worst %d ms; the %d timeouts alone: p50 %d, p99 %d, p99.9 %d, worst %d "
          "ms; %d results later than 20 %% of the deadline (%d ms): %s" % (
              la["n"], la["p50_ms"], la["p99_ms"], la["p999_ms"], la["max_ms"], lt["n"],
              lt["p50_ms"], lt["p99_ms"], lt["p999_ms"], lt["max_ms"], s["late_over20"],
              s["limit20_ms"], "none late" if late_ok else "LATE"))
    print("- From the driver's side (submission to result, minus the deadline: the wait for "
          "the connect budget and pacing included): p99 %d, worst %d ms; %d later than 20 %%"
          % (lq["p99_ms"], lq["max_ms"], s["queued_over20"]))
    o = s["outcomes"]
    print("- Outcomes: %d submitted, %d results: ok %d, timeout %d, tls_error %d, refused %d, "
          "other %d; connects never completed: silent %d, closed %d, no_route %d; %.0f "
          "results/s; driver CPU %.1f s (%.2f cores)\n" % (
              s["submitted"], la["n"], o["ok"], o["timeout"], o["tls_error"], o["refused"],
              o["other"], o["silent"], o["closed"], o["no_route"], la["n"] / s["seconds"],
              s["cpu_s"], s["cpu_s"] / s["seconds"]))
    print("| kind | ok | timeout | tls_error | refused | silent | closed | worst ms past "
          "deadline |")
    print("|---|---|---|---|---|---|---|---|")
    for k, c in s["by_kind"].items():
        print("| %s | %d | %d | %d | %d | %d | %d | %d |" % (
            k, c["ok"], c["timeout"], c["tls_error"], c["refused"], c["silent"], c["closed"],
            c["late_max_ms"]))
    print()
    print("Fleet (bench/soak/hostile.c): %s accepted, %s handshakes completed, %s resets, %s "
          "garbage answers, %s closed by the client, %s closed idle; %.1f s CPU, peak RSS "
          "%.1f MB.\n" % (
              fleet_stats.get("accepted"), fleet_stats.get("tls_ok"), fleet_stats.get("resets"),
              fleet_stats.get("garbage"), fleet_stats.get("peer_closed"),
              fleet_stats.get("idle_closed"), float(fleet_stats.get("cpu_s", 0)),
              float(fleet_stats.get("maxrss_kb", 0)) / 1024.0))
    print("Kernel, whole network namespace, during the run: %d SYNs dropped at a full accept "
          "queue (the silent listeners' by design, and any other listener's when its process "
          "falls behind), %d SYNs sent again (connects that then take 1 s or more).\n"
          % (tcp["listen_overflows"], tcp["syn_retrans"]))
    ok = held and rss_flat and fds_flat and late_ok and drained_ok
    print("Aims: %d in flight held %s, RSS flat %s, descriptors flat %s, none later than 20 %% "
          "%s, drained with no descriptor left %s." % ((a.inflight,) + tuple(
              "yes" if x else "NO" for x in (held, rss_flat, fds_flat, late_ok, drained_ok))))
    return ok


if __name__ == "__main__":
    main()
