#!/usr/bin/python3
"""Sparse-range benchmark (issue 10): this project with default settings, end to end, against
`nmap -sS -T4 -Pn --script ssl-cert` and `nmap -sT ...` over a loopback /20 where most
addresses drop the SYN, and this project alone over a /16 where every address does.

    bench/sparse/run.py [--build-dir build-sparse] [--worktree] [--repeat 2] [--nmap-repeat 1]
                        [--product-timeout 300] [--skip-nmap] [--only sparse20|silent16]
                        [--layout scattered|clustered] [--seed 10] [--keep]

Needs root (it runs itself through sudo otherwise), nftables, nmap, PostgreSQL 15 and Redis
(Debian packages). It re-runs itself inside a network namespace of its own (`unshare --net`),
brings `lo` up there and adds an nftables table `inet capsparse` that lives only in that
namespace (deleted at the end, and gone with the namespace anyway). Traffic: 127.0.0.0/8 only.

- Build: the committed tree (`git archive HEAD`, so edits in progress elsewhere in the checkout
  do not break the run; --worktree builds the working tree instead) into BUILD_DIR/src, Release,
  no sanitizers: cap-worker, cap-scheduler, capctl and bench/scan/fleet.c.
- Network: 127.16.0.0/20 x ports 443 and 8443 (8,192 targets): 40 TLS endpoints on 32 addresses
  (24 with 443 only, 8 with both; one fleet.c process, each endpoint its own ECDSA P-256
  certificate), 256 closed addresses (nothing listens: the kernel answers RST; port 8443 of the
  24 one-port addresses is closed too), the rest silent (SYN dropped by nftables). The 288
  answering addresses are spread at random over the /20 (--layout scattered) or all lie in its
  first /23 (--layout clustered); nmap's pace depends on that, this project's should not. And
  127.32.0.0/16 x the same ports, every SYN dropped (131,072 targets). The shape is checked
  before measuring: silent addresses time out, closed ones refuse, every endpoint answers TLS
  with its own certificate.
- This project: per measurement a fresh tests/e2e/harness.py Cluster (PostgreSQL + Redis on
  loopback), cap-scheduler and one cap-worker with the default configuration except
  `network.allow_loopback: true` (metrics on their default listeners, which are free in the
  namespace); `capctl source add sparse --type network_scan --cidr CIDR --port 443 --port 8443`
  (source defaults: concurrency 8, timeout 5 s) then `capctl source trigger sparse --wait`.
  Measured: wall from the trigger to the run's end (the run row's queued_at to finished_at, and
  capctl's own wall), CPU of the worker, the scheduler, Redis and every PostgreSQL process of the
  cluster (utime+stime of the live processes and of their reaped children, before and after),
  the worker's peak RSS (VmHWM), its descriptors, RSS and pending connects every 100 ms (a worker
  metric whose name holds "pending" when there is one, else the sockets in SYN-SENT from `ss`),
  rows written (endpoints, endpoint_observations, findings) and the leaf fingerprints of the ok
  observations against the fleet's. A run that has not finished after --product-timeout
  seconds is reported as not finished, with how far it got.
- nmap: -sS and -sT, -T4 -Pn -n -p443,8443 --script ssl-cert -oX over the /20 (-n: no reverse
  DNS, which this project does not do either): wall, CPU and peak RSS (GNU time), certificates
  from the XML's PEM (SHA-256 of the DER), port states.

Prints one line per measurement on stderr as it ends, and at the end a Markdown section for
bench/RESULTS.md with the aims of issue 10 read against the figures."""

import argparse
import concurrent.futures
import hashlib
import importlib.util
import ipaddress
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NETNS_ENV = "CAP_SPARSE_OUTER_NETNS"   # the namespace we left; set by the re-exec
SPARSE = ipaddress.ip_network("127.16.0.0/20")
SILENT = ipaddress.ip_network("127.32.0.0/16")
PORTS = (443, 8443)
LIVE_ONE_PORT, LIVE_BOTH, CLOSED = 24, 8, 256
NFT_TABLE = "capsparse"
WORKER_METRICS = "127.0.0.1:9102"   # cap-worker's default telemetry.metrics_listen
AIM_SPEEDUP, AIM_SILENT_S, AIM_BYTES_PER_PENDING = 5.0, 120.0, 1024

scan_run = None   # bench/scan/run.py, loaded in main() (CFleet, timed, pem_fp, cpu_model)
harness = None    # tests/e2e/harness.py
tlsfleet = None   # tests/e2e/tlsfleet.py


def log(msg):
    print("bench/sparse: " + msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


# ----------------------------------------------------------------------------- set-up

def enter_namespace():
    """Runs this script again as root inside a new network namespace, unless it already is."""
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if not sudo:
            sys.exit("bench/sparse: needs root (nftables, a network namespace, nmap -sS)")
        os.execv(sudo, [sudo, "-E", sys.executable, os.path.abspath(__file__)] + sys.argv[1:])
    here = os.readlink("/proc/self/ns/net")
    outer = os.environ.get(NETNS_ENV)
    if outer and outer != here:
        sh(["ip", "link", "set", "lo", "up"])
        return
    env = dict(os.environ)
    env[NETNS_ENV] = here
    os.execvpe("unshare", ["unshare", "--net", "--fork", "--kill-child", "--", sys.executable,
                           os.path.abspath(__file__)] + sys.argv[1:], env)


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(build_dir, worktree):
    """A Release copy of the committed tree (or the working tree) in build_dir; returns
    (dict of program paths, description of the code built)."""
    src = os.path.join(build_dir, "src")
    if worktree:
        src = SRC
        what = "working tree at %s" % sh(["git", "-C", SRC, "describe", "--always",
                                           "--dirty"]).stdout.strip()
    else:
        commit = sh(["git", "-C", SRC, "rev-parse", "HEAD"]).stdout.strip()
        shutil.rmtree(src, ignore_errors=True)
        os.makedirs(src)
        archive = subprocess.Popen(["git", "-C", SRC, "archive", commit], stdout=subprocess.PIPE)
        sh(["tar", "-x", "-C", src], stdin=archive.stdout)
        if archive.wait() != 0:
            raise RuntimeError("git archive %s failed" % commit)
        what = "commit %s" % sh(["git", "-C", SRC, "log", "-1", "--format=%h (%s)",
                                 commit]).stdout.strip()
    obj = os.path.join(build_dir, "obj")
    sh(["cmake", "-S", src, "-B", obj, "-DCMAKE_BUILD_TYPE=Release", "-DENABLE_SANITIZERS=OFF"])
    sh(["cmake", "--build", obj, "-j%d" % (os.cpu_count() or 2), "--target", "cap-worker",
        "cap-scheduler", "capctl"])
    fleet = os.path.join(build_dir, "fleet")
    sh(["cc", "-O2", "-std=c11", "-D_GNU_SOURCE", os.path.join(src, "bench", "scan", "fleet.c"),
        "-o", fleet] + sh(["pkg-config", "--libs", "openssl"]).stdout.split())
    return {"obj": obj, "src": src, "fleet": fleet}, what


class Layout:
    """Which addresses of the /20 serve TLS, refuse, or stay silent; the certificates."""

    def __init__(self, tmp, seed, kind):
        rnd = random.Random(seed)
        hosts = [str(a) for a in SPARSE.hosts()]   # not the network or broadcast address
        if kind == "clustered":   # every answering address in the first /23 of the range
            hosts = hosts[:511]
        self.kind = kind
        picked = rnd.sample(hosts, LIVE_ONE_PORT + LIVE_BOTH + CLOSED)
        self.live = sorted(picked[:LIVE_ONE_PORT + LIVE_BOTH], key=ipaddress.ip_address)
        both = set(rnd.sample(self.live, LIVE_BOTH))
        self.closed = sorted(picked[LIVE_ONE_PORT + LIVE_BOTH:], key=ipaddress.ip_address)
        certs = tlsfleet.Fleet(tmp, port=443)
        self.endpoints = []   # (addr, port, Cert)
        for addr in self.live:
            for port in PORTS if addr in both else PORTS[:1]:
                n = len(self.endpoints)
                self.endpoints.append((addr, port, certs.cert("e%02d.sparse.bench.test" % n)))
        self.want = {(a, p): c.fingerprint for a, p, c in self.endpoints}
        reach = set(self.live) | set(self.closed)
        self.silent = [a for a in (str(x) for x in SPARSE) if a not in reach]
        self.refused_targets = len(self.live) * len(PORTS) - len(self.endpoints) + \
            len(self.closed) * len(PORTS)


def nft(args, **kw):
    return sh(["nft"] + args, **kw)


def nft_setup(layout):
    reach = ", ".join(layout.live + layout.closed)
    rules = """table inet %(t)s {
    set reach {
        type ipv4_addr
        elements = { %(reach)s }
    }
    chain input {
        type filter hook input priority filter; policy accept;
        ip daddr %(sparse)s ip daddr != @reach tcp flags & (syn | ack) == syn counter drop comment "sparse"
        ip daddr %(silent)s tcp flags & (syn | ack) == syn counter drop comment "silent"
    }
}
""" % {"t": NFT_TABLE, "reach": reach, "sparse": SPARSE, "silent": SILENT}
    nft(["-f", "-"], input=rules)


def nft_counters():
    """{"sparse": SYNs dropped so far, "silent": ...} from the table's counters."""
    out = {}
    data = json.loads(nft(["-j", "list", "chain", "inet", NFT_TABLE, "input"]).stdout)
    for item in data.get("nftables", []):
        rule = item.get("rule")
        if not rule:
            continue
        for e in rule.get("expr", []):
            if "counter" in e:
                out[rule.get("comment", "?")] = e["counter"]["packets"]
    return out


def nft_teardown():
    subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], capture_output=True)


def verify_shape(layout):
    """Silent addresses time out, closed ones refuse, every endpoint serves its certificate."""
    rnd = random.Random(1)

    def connect(addr, port, timeout):
        s = socket.socket()
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
            return "open"
        except socket.timeout:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
        finally:
            s.close()

    def leaf(addr, port):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection((addr, port), timeout=5) as s:
            with ctx.wrap_socket(s) as t:
                return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()

    checks = []   # (what, function, args, expected)
    for a in rnd.sample(layout.silent, 6):
        for p in PORTS:
            checks.append(("silent %s:%d" % (a, p), connect, (a, p, 1.5), "timeout"))
    for a in rnd.sample([str(x) for x in SILENT.hosts()], 6):
        for p in PORTS:
            checks.append(("silent /16 %s:%d" % (a, p), connect, (a, p, 1.5), "timeout"))
    for a in rnd.sample(layout.closed, 16):
        for p in PORTS:
            checks.append(("closed %s:%d" % (a, p), connect, (a, p, 1.5), "refused"))
    for a in layout.live:
        for p in PORTS:
            if (a, p) not in layout.want:
                checks.append(("live address, closed port %s:%d" % (a, p), connect,
                               (a, p, 1.5), "refused"))
    for a, p, c in layout.endpoints:
        checks.append(("endpoint %s:%d" % (a, p), leaf, (a, p), c.fingerprint))
    with concurrent.futures.ThreadPoolExecutor(64) as ex:
        futs = [(what, want, ex.submit(fn, *args)) for what, fn, args, want in checks]
        bad = []
        for what, want, f in futs:
            try:
                got = f.result()
            except Exception as e:  # a refused or failed handshake at an endpoint
                got = "%s: %s" % (type(e).__name__, e)
            if got != want:
                bad.append("%s: expected %s, got %s" % (what, want[:16], got[:80]))
    if bad:
        raise RuntimeError("the sparse network is not as built:\n  " + "\n  ".join(bad))
    return len(checks)


# ----------------------------------------------------------------------------- process figures

def proc_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def tree_pids(root):
    """root and every live descendant."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(proc_stat(int(d))[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_cpu_s(root):
    """CPU seconds of root's process tree so far: utime+stime of every live process plus
    cutime+cstime (its reaped children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in tree_pids(root):
        try:
            f = proc_stat(pid)
        except OSError:
            continue
        total += sum(int(x) for x in f[11:15])
    return total / tick


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def nofile_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return line.split()[3]
    return "?"


def metrics_text():
    try:
        with urllib.request.urlopen("http://%s/metrics" % WORKER_METRICS, timeout=1) as r:
            return r.read().decode("utf-8", "replace")
    except OSError:
        return None


def metric_values(text):
    """{metric name: sum over its label sets} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            try:
                out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            except ValueError:
                pass
    return out


def pending_metric(values):
    """The worker's gauge of pending connects, by name: one holding "pending" (and "connect"
    if several do), never the stream's."""
    names = [n for n in values if "pending" in n and "stream" not in n
             and not n.endswith(("_bucket", "_sum", "_count", "_total", "_max"))]
    names.sort(key=lambda n: ("connect" not in n, n))
    return names[0] if names else None


def syn_sent(cidr):
    out = subprocess.run(["ss", "-H", "-tn", "state", "syn-sent", "dst", cidr],
                         capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


class Sampler(threading.Thread):
    """Every interval: the worker's RSS, descriptors, pending connects, handshakes in flight
    (and, beside a pending metric, the sockets in SYN-SENT every fifth sample)."""

    def __init__(self, pid, interval, cidr):
        super().__init__(daemon=True)
        self.pid, self.interval, self.cidr = pid, interval, cidr
        self.samples = []   # (t, rss kB, fds, pending, in flight, SYN-SENT or None)
        self.pending_source = None
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            t = time.monotonic()
            try:
                rss = status_kb(self.pid, "VmRSS")
                fds = len(os.listdir("/proc/%d/fd" % self.pid))
            except OSError:
                break
            text = metrics_text()
            values = metric_values(text) if text else {}
            name = pending_metric(values)
            if name:
                pending, self.pending_source = values[name], "metric `%s`" % name
            else:
                pending = syn_sent(self.cidr)
                self.pending_source = "sockets in SYN-SENT to the range (`ss`)"
            # the kernel's count as well, every fifth sample, to check the metric against
            kernel = syn_sent(self.cidr) if name and len(self.samples) % 5 == 0 else None
            self.samples.append((t, rss, fds, pending, values.get("cap_handshakes_in_flight"),
                                 kernel))
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def stop(self):
        self._halt.set()
        self.join(10)


# ----------------------------------------------------------------------------- this project

def product_pass(bins, cidr, layout, timeout, interval, fleet):
    """One end-to-end run of this project over cidr x PORTS in a fresh cluster; returns a dict."""
    config = {"logging.level": None, "scheduler.tick": None, "worker.reclaim_idle": None,
              "telemetry.metrics_listen": None}
    res = {"cidr": cidr, "targets": ipaddress.ip_network(cidr).num_addresses * len(PORTS)}
    with harness.Cluster(name="sparse", config=config) as c:
        c.migrate()
        c.capctl_ok("source", "add", "sparse", "--type", "network_scan", "--cidr", cidr,
                    "--port", str(PORTS[0]), "--port", str(PORTS[1]))
        src_id = c.sql("SELECT id FROM discovery_sources WHERE name = 'sparse'")[0][0]
        sched = c.start_scheduler()
        worker = c.start_worker()
        deadline = time.time() + 30
        while metrics_text() is None:
            c.assert_running(worker)
            if time.time() > deadline:
                raise RuntimeError("cap-worker's metrics did not answer on " + WORKER_METRICS)
            time.sleep(0.1)
        time.sleep(1.0)
        res["rss_idle_kb"] = status_kb(worker.pid, "VmRSS")
        res["nofile"] = nofile_limit(worker.pid)
        roots = {"worker": worker.pid, "scheduler": sched.pid,
                 "redis": c._servers["redis"][0].pid, "postgres": c._servers["postgres"][0].pid}
        cpu0 = {k: tree_cpu_s(p) for k, p in roots.items()}
        syn0 = nft_counters()
        fleet0 = fleet.stats() if fleet else None
        sampler = Sampler(worker.pid, interval, cidr)
        sampler.start()
        t0 = time.monotonic()
        r = c.capctl("source", "trigger", "sparse", "--wait", "--timeout", "%ds" % timeout,
                     timeout=timeout + 60)
        res["capctl_wall"] = time.monotonic() - t0
        run = c.sql_dicts("SELECT *, extract(epoch FROM finished_at - queued_at) AS wall, "
                          "extract(epoch FROM clock_timestamp() - queued_at) AS elapsed "
                          "FROM discovery_runs WHERE source_id = %s ORDER BY id DESC LIMIT 1",
                          (src_id,))[0]
        cpu1 = {k: tree_cpu_s(p) for k, p in roots.items()}
        res["hwm_kb"] = status_kb(worker.pid, "VmHWM")
        sampler.stop()
        res["syn_dropped"] = sum(nft_counters().values()) - sum(syn0.values())
        if fleet:
            f1 = fleet.stats()
            res["fleet"] = {k: f1[k] - fleet0[k] for k in ("accepted", "ok")}
        res["cpu"] = {k: cpu1[k] - cpu0[k] for k in roots}
        res["finished"] = run["status"] not in ("queued", "running")
        if not res["finished"]:
            c.stop(worker, signal.SIGKILL, 10)   # no drain for a run we give up on
        res["status"] = run["status"]
        res["capctl_rc"] = r.returncode
        res["wall"] = float(run["wall"]) if res["finished"] else float(run["elapsed"])
        res["targets_total"] = run["targets_total"] or res["targets"]
        res["targets_done"] = run["targets_done"]
        res["stats"] = run["stats"]
        res["samples"] = sampler.samples
        res["pending_source"] = sampler.pending_source
        run_id = run["id"]

        eps = c.sql("SELECT id, host(address), port FROM endpoints")
        empty = {i for i, a, p in eps if (a, p) not in layout.want}
        res["endpoints"] = len(eps)
        res["empty_endpoints"] = len(empty)
        obs = c.sql("SELECT endpoint_id, outcome FROM endpoint_observations WHERE run_id = %s",
                    (run_id,))
        res["observations"] = len(obs)
        res["empty_observations"] = sum(1 for e, _ in obs if e in empty)
        fnd = c.sql("SELECT kind, endpoint_id FROM findings WHERE source_id = %s", (src_id,))
        res["findings"] = len(fnd)
        res["empty_findings"] = sum(1 for _, e in fnd if e in empty)
        kinds = {}
        for k, _ in fnd:
            kinds[k] = kinds.get(k, 0) + 1
        res["finding_kinds"] = kinds
        got = c.sql("SELECT host(e.address), e.port, o.fingerprint_sha256 "
                    "FROM endpoint_observations o JOIN endpoints e ON e.id = o.endpoint_id "
                    "WHERE o.run_id = %s AND o.outcome = 'ok'", (run_id,))
        res["got"] = {(a, p): fp for a, p, fp in got}
        res["matched"] = sum(1 for k, fp in layout.want.items() if res["got"].get(k) == fp)
        if r.returncode != 0 and res["finished"] and run["status"] not in ("partial",):
            log("capctl trigger --wait exited %d: %s" % (r.returncode, r.stderr.strip()[-300:]))
        c.stop(worker, signal.SIGTERM, 30)
        c.stop(sched, signal.SIGTERM, 30)
    return res


def shards_pass(bins, cidr, workers, kill_frac, timeout, reclaim_idle=None):
    """One run of the silent range with the default configuration on `workers` worker processes
    (the run is split into shards, scan.shard_targets and scan.shard_size at their defaults);
    with kill_frac, worker 1 is killed with SIGKILL once that share of the targets is done and
    the rest of the fleet carries on. Returns a dict: wall, CPU, shards, per worker peak RSS
    and descriptors, and what the kill cost."""
    config = {"logging.level": None, "scheduler.tick": None, "worker.reclaim_idle": reclaim_idle,
              "telemetry.metrics_listen": None}
    res = {"cidr": cidr, "workers": workers, "kill_frac": kill_frac, "reclaim_idle": reclaim_idle,
           "targets": ipaddress.ip_network(cidr).num_addresses * len(PORTS)}
    with harness.Cluster(name="shards", config=config) as c:
        c.migrate()
        c.capctl_ok("source", "add", "sparse", "--type", "network_scan", "--cidr", cidr,
                    "--port", str(PORTS[0]), "--port", str(PORTS[1]))
        src_id = c.sql("SELECT id FROM discovery_sources WHERE name = 'sparse'")[0][0]
        sched = c.start_scheduler()
        procs = [c.start_worker(label="worker-%d" % (i + 1),
                                config_overrides={"telemetry.metrics_listen": "off"})
                 for i in range(workers)]
        time.sleep(1.5)
        for w in procs:
            c.assert_running(w)
        peaks = {w.pid: {"fds": 0, "rss_kb": 0} for w in procs}
        halt = threading.Event()

        def sample():
            while not halt.is_set():
                for w in procs:
                    try:
                        n = len(os.listdir("/proc/%d/fd" % w.pid))
                        rss = status_kb(w.pid, "VmRSS") or 0
                    except OSError:
                        continue
                    pk = peaks[w.pid]
                    pk["fds"], pk["rss_kb"] = max(pk["fds"], n), max(pk["rss_kb"], rss)
                halt.wait(0.2)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        roots = {"worker-%d" % (i + 1): w.pid for i, w in enumerate(procs)}
        roots.update({"scheduler": sched.pid, "redis": c._servers["redis"][0].pid,
                      "postgres": c._servers["postgres"][0].pid})
        cpu0 = {k: tree_cpu_s(p) for k, p in roots.items()}
        run_id = c.sql("INSERT INTO discovery_runs (source_id, trigger) VALUES (%s, 'manual') "
                       "RETURNING id", (src_id,))[0][0]
        t0 = time.monotonic()
        killed = None
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            row = c.run_row(run_id)
            if row["status"] not in ("queued", "running"):
                break
            if kill_frac and killed is None and row["targets_total"] and \
                    row["targets_done"] >= kill_frac * res["targets"]:
                victim = procs[0]
                held = c.sql("SELECT count(*) FROM discovery_run_shards WHERE run_id = %s "
                             "AND status = 'running' AND worker LIKE %s",
                             (run_id, "%-" + str(victim.pid) + "-%"))[0][0]
                cpu0.pop("worker-1", None)
                c.stop(victim, signal.SIGKILL, 10)
                killed = {"at_s": time.monotonic() - t0, "done": row["targets_done"],
                          "shards_held": held}
            time.sleep(0.2)
        wall_poll = time.monotonic() - t0
        halt.set()
        sampler.join(5)
        run = c.sql_dicts("SELECT *, extract(epoch FROM finished_at - queued_at) AS wall "
                          "FROM discovery_runs WHERE id = %s", (run_id,))[0]
        cpu1 = {k: tree_cpu_s(p) for k, p in roots.items() if k in cpu0}
        res["cpu"] = {k: cpu1[k] - cpu0[k] for k in cpu1}
        res["status"] = run["status"]
        res["finished"] = run["status"] not in ("queued", "running")
        res["wall"] = float(run["wall"]) if res["finished"] else wall_poll
        res["targets_done"], res["targets_total"] = run["targets_done"], run["targets_total"]
        sh = c.sql_dicts("SELECT shard, status, attempts, worker, "
                         "extract(epoch FROM finished_at - started_at) AS secs "
                         "FROM discovery_run_shards WHERE run_id = %s ORDER BY shard", (run_id,))
        res["shards"] = len(sh)
        res["shard_attempts"] = sum(x["attempts"] for x in sh)
        res["shard_workers"] = len({x["worker"] for x in sh})
        res["shard_secs"] = [float(x["secs"]) for x in sh if x["secs"] is not None]
        res["rows"] = c.sql("SELECT (SELECT count(*) FROM endpoints), "
                            "(SELECT count(*) FROM endpoint_observations)")[0]
        res["per_worker"] = [dict(peaks[w.pid], nofile=None) for w in procs]
        res["killed"] = killed
        for w in procs[1:] if killed else procs:
            c.stop(w, signal.SIGTERM, 30)
        c.stop(sched, signal.SIGTERM, 30)
    return res


def shards_report(meta, rows):
    """Markdown for bench/RESULTS.md: the silent /16 on 1 and 4 workers, and with a kill."""
    out = ["### Shards: the silent /16 x 2 ports on one and on four workers (issue 11)", "",
           "Command: `%s` (%s). Machine: %s." % (meta["command"], meta["code"],
                                                       meta["versions"]), "",
           "| workers | kill | status | wall s | speed-up | targets done | shards (attempts) "
           "| workers used | worker CPU s | PostgreSQL CPU s | peak RSS per worker MB "
           "| peak descriptors per worker | rows written |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    base = [r["wall"] for r in rows if r["workers"] == 1 and not r["kill_frac"]]
    base = min(base) if base else None
    for r in rows:
        wcpu = sum(v for k, v in r["cpu"].items() if k.startswith("worker"))
        kill = "-" if not r["killed"] else "worker 1 at %.0f s (%d shards held)" % (
            r["killed"]["at_s"], r["killed"]["shards_held"])
        if r.get("reclaim_idle"):
            kill += ", worker.reclaim_idle %s" % r["reclaim_idle"]
        out.append("| %d | %s | %s | %.1f | %s | %d/%d | %d (%d) | %d | %.1f | %.1f | %s | %s "
                   "| %d endpoints, %d observations |" % (
                       r["workers"], kill, r["status"], r["wall"],
                       "%.2fx" % (base / r["wall"]) if base else "-",
                       r["targets_done"], r["targets_total"], r["shards"], r["shard_attempts"],
                       r["shard_workers"], wcpu, r["cpu"].get("postgres", 0.0),
                       "/".join("%.0f" % (p["rss_kb"] / 1024.0) for p in r["per_worker"]),
                       "/".join(str(p["fds"]) for p in r["per_worker"]),
                       r["rows"][0], r["rows"][1]))
    return "\n".join(out)


def pending_figures(res):
    """(peak pending, RSS kB at that sample, bytes per pending connect above the idle RSS)."""
    samples = [s for s in res["samples"] if s[3] is not None]
    if not samples:
        return 0, None, None
    peak = max(s[3] for s in samples)
    at = [s for s in samples if s[3] == peak][-1]
    if peak <= 0:
        return 0, at[1], None
    return peak, at[1], (at[1] - res["rss_idle_kb"]) * 1024.0 / peak


def describe_product(label, i, r):
    peak_pending, _, per = pending_figures(r)
    done = "finished (%s)" % r["status"] if r["finished"] else \
        "DID NOT FINISH (%d of %d targets)" % (r["targets_done"], r["targets_total"])
    return ("%s, this project, run %d: %s in %.1f s; worker CPU %.1f s, peak RSS %.1f MB, "
            "peak fds %d, peak pending %d%s; %d/%d certificates; rows: %d endpoints, %d "
            "observations, %d findings (%d/%d/%d on empty addresses)"
            % (label, i, done, r["wall"], r["cpu"]["worker"], r["hwm_kb"] / 1024.0,
               max((s[2] for s in r["samples"]), default=0), peak_pending,
               "" if per is None else " (%.0f B each)" % per, r["matched"],
               r["want_n"],
               r["endpoints"], r["observations"], r["findings"], r["empty_endpoints"],
               r["empty_observations"], r["empty_findings"]))


# ----------------------------------------------------------------------------- nmap

def parse_nmap(path):
    """({(addr, port): leaf SHA-256}, {state: count of address:port}) from nmap's XML."""
    got, states = {}, {}
    for host in ET.parse(path).iter("host"):
        addr = next((a.get("addr") for a in host.iter("address")
                     if a.get("addrtype") == "ipv4"), None)
        for xp in host.iter("extraports"):
            st = xp.get("state")
            states[st] = states.get(st, 0) + int(xp.get("count", "0"))
        for p in host.iter("port"):
            st = p.find("state")
            st = st.get("state") if st is not None else "?"
            states[st] = states.get(st, 0) + 1
            for script in p.iter("script"):
                if script.get("id") != "ssl-cert":
                    continue
                for elem in script.iter("elem"):
                    if elem.get("key") == "pem" and elem.text and addr:
                        got[(addr, int(p.get("portid")))] = scan_run.pem_fp(elem.text)
    return got, states


def nmap_pass(mode, tmp, layout, fleet, i):
    xml = os.path.join(tmp, "nmap-%s-%d.xml" % (mode, i))
    cmd = ["nmap", "-" + mode, "-T4", "-Pn", "-n", "-p", ",".join(str(p) for p in PORTS),
           "--script", "ssl-cert", "-oX", xml, str(SPARSE)]
    syn0 = nft_counters()
    f0 = fleet.stats()
    _, wall, cpu, rss = scan_run.timed(cmd)
    f1 = fleet.stats()
    got, states = parse_nmap(xml)
    return {"cmd": " ".join(cmd[:-3] + ["-oX", "FILE", cmd[-1]]), "wall": wall, "cpu": cpu,
            "rss_kb": rss, "got": got, "states": states,
            "matched": sum(1 for k, fp in layout.want.items() if got.get(k) == fp),
            "syn_dropped": sum(nft_counters().values()) - sum(syn0.values()),
            "fleet": {k: f1[k] - f0[k] for k in ("accepted", "ok")}}


# ----------------------------------------------------------------------------- report

def versions():
    def first(cmd, pat=None):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True).stdout
        except OSError:
            return "?"
        m = re.search(pat, out) if pat else None
        return m.group(1) if m else out.strip().splitlines()[0] if out.strip() else "?"
    return {"openssl": first(["openssl", "version"], r"OpenSSL (\S+)"),
            "nmap": first(["nmap", "--version"], r"Nmap version (\S+)"),
            "postgres": first([os.path.join(harness.PG_BIN, "postgres"), "--version"],
                              r"(\d+\.\d+)"),
            "redis": first([harness.REDIS_SERVER, "--version"], r"v=(\S+)"),
            "nft": first(["nft", "--version"], r"v(\S+)")}


def fmt_s(x):
    return "%.1f" % x if x < 100 else "%.0f" % x


def product_wall_cell(r):
    if r["finished"]:
        return fmt_s(r["wall"])
    return "did not finish in %s (%d of %d targets)" % (fmt_s(r["wall"]), r["targets_done"],
                                                       r["targets_total"])


def empty_counts(r):
    """What the run counted without storing (its stats: silent, closed, no_route)."""
    st = r["stats"] if isinstance(r["stats"], dict) else {}
    keys = [k for k in ("silent", "closed", "no_route") if k in st]
    return ", ".join("%s %s" % (k, st[k]) for k in keys) if keys else "—"


def eta_s(r):
    """Seconds the whole run would take at the pace measured (None when nothing was done)."""
    if r["finished"]:
        return r["wall"]
    if not r["targets_done"]:
        return None
    return r["wall"] * r["targets_total"] / r["targets_done"]


def report(a, meta, layout, sparse, silent):
    v = meta["versions"]
    out = []
    w = out.append
    w("## Sparse ranges\n")
    w("Machine: %s, %d cores (%s), Linux %s, OpenSSL %s, nmap %s, PostgreSQL %s, Redis %s, "
      "nftables %s. Code: %s, Release, no sanitizers. Command: `%s` (root; %s)."
      % (platform.machine(), os.cpu_count(), scan_run.cpu_model(), platform.release(),
         v["openssl"], v["nmap"], v["postgres"], v["redis"], v["nft"], meta["code"],
         meta["command"], "one network namespace made by the run, nftables table "
         "`inet %s` in it" % NFT_TABLE))
    w("")
    w("Network (loopback, in the namespace): %s x ports %s = %d targets: %d TLS endpoints on %d "
      "addresses (%s; %d with 443 only, %d with both; one `bench/scan/fleet.c` process, each "
      "endpoint its own ECDSA P-256 certificate), %d closed addresses (the kernel answers RST; "
      "port 8443 of the one-port addresses too: %d refused targets), %d silent addresses (SYN "
      "dropped by nftables: %d targets). Silent range: %s x the same ports = %d targets, every "
      "SYN dropped. Shape checked before measuring (%d probes: silent ones time out, closed "
      "ones refuse, every endpoint serves its own certificate)."
      % (SPARSE, " and ".join(str(p) for p in PORTS), SPARSE.num_addresses * len(PORTS),
         len(layout.endpoints), len(layout.live), "answering addresses spread at random over "
         "the /20" if layout.kind == "scattered" else "answering addresses all in the first /23",
         LIVE_ONE_PORT, LIVE_BOTH, len(layout.closed),
         layout.refused_targets, len(layout.silent), len(layout.silent) * len(PORTS), SILENT,
         SILENT.num_addresses * len(PORTS), meta["checks"]))
    w("")
    w("This project: a fresh cluster per run (tests/e2e/harness.py: PostgreSQL %s with fsync "
      "off, Redis, both on loopback), cap-scheduler and one cap-worker with the default "
      "configuration but `network.allow_loopback: true`; `capctl source add sparse --type "
      "network_scan --cidr CIDR --port 443 --port 8443` (source defaults: concurrency 8, "
      "timeout 5 s), then `capctl source trigger sparse --wait`. Wall: the run's `queued_at` to "
      "`finished_at`. CPU: utime+stime before and after, the worker, the scheduler, Redis and "
      "every PostgreSQL process of the cluster (reaped children included). A run is given up "
      "after %d s (`--product-timeout`)." % (v["postgres"], a.product_timeout))
    w("")
    n_want = len(layout.want)
    if sparse:
        w("### %s x 2 ports (%d targets, %d endpoints)\n" % (SPARSE, SPARSE.num_addresses * 2,
                                                            n_want))
        w("| tool | wall s | CPU s | peak RSS MB | certificates (right leaf) | endpoints / "
          "observations / findings written | of them for empty addresses | SYNs dropped | "
          "fleet connections / handshakes |")
        w("|---|---|---|---|---|---|---|---|---|")
        for i, r in enumerate(sparse["product"], 1):
            w("| this project, defaults (run %d) | %s | %.1f (worker) | %.1f | %d of %d | "
              "%d / %d / %d | %d / %d / %d | %d | %d / %d |"
              % (i, product_wall_cell(r), r["cpu"]["worker"], r["hwm_kb"] / 1024.0,
                 r["matched"], n_want, r["endpoints"], r["observations"], r["findings"],
                 r["empty_endpoints"], r["empty_observations"], r["empty_findings"],
                 r["syn_dropped"], r["fleet"]["accepted"], r["fleet"]["ok"]))
        for mode in ("sS", "sT"):
            for i, r in enumerate(sparse.get(mode, []), 1):
                w("| `nmap -%s -T4 -Pn -n --script ssl-cert` (run %d) | %s | %.1f | %.1f | "
                  "%d of %d | — | — | %d | %d / %d |"
                  % (mode, i, fmt_s(r["wall"]), r["cpu"], r["rss_kb"] / 1024.0, r["matched"],
                     n_want, r["syn_dropped"], r["fleet"]["accepted"], r["fleet"]["ok"]))
        w("")
        w("This project's CPU by process, and what the runs recorded:\n")
        w("| run | worker CPU s | scheduler | Redis | PostgreSQL | worker peak fds | peak pending "
          "connects | run status | targets done | counted, not stored | findings by kind |")
        w("|---|---|---|---|---|---|---|---|---|---|---|")
        for i, r in enumerate(sparse["product"], 1):
            c = r["cpu"]
            w("| %d | %.2f | %.2f | %.2f | %.2f | %d | %d | %s | %d of %d | %s | %s |"
              % (i, c["worker"], c["scheduler"], c["redis"], c["postgres"],
                 max((s[2] for s in r["samples"]), default=0), pending_figures(r)[0],
                 r["status"], r["targets_done"], r["targets_total"], empty_counts(r),
                 ", ".join("%s %d" % kv for kv in sorted(r["finding_kinds"].items())) or "none"))
        w("")
        nm = sparse.get("sS")
        if nm:
            states = nm[0]["states"]
            w("nmap -sS saw: %s (address:port)." % ", ".join(
                "%s %d" % kv for kv in sorted(states.items())))
            w("")
    if silent:
        w("### %s x 2 ports, every address silent (%d targets), one worker\n"
          % (SILENT, SILENT.num_addresses * 2))
        w("| run | wall s | targets done | targets/s | worker CPU s | PostgreSQL CPU s | peak "
          "RSS MB | peak fds | peak pending connects | RSS idle -> at peak pending MB | bytes "
          "per pending connect | endpoints / observations / findings | counted, not stored |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for i, r in enumerate(silent, 1):
            peak, rss_at, per = pending_figures(r)
            w("| %d | %s | %d of %d | %s | %.1f | %.1f | %.1f | %d | %d | %.1f -> %s | %s | "
              "%d / %d / %d | %s |"
              % (i, product_wall_cell(r), r["targets_done"], r["targets_total"],
                 fmt_s(r["targets_done"] / max(r["wall"], 1e-9)), r["cpu"]["worker"],
                 r["cpu"]["postgres"], r["hwm_kb"] / 1024.0,
                 max((s[2] for s in r["samples"]), default=0), peak, r["rss_idle_kb"] / 1024.0,
                 "%.1f" % (rss_at / 1024.0) if rss_at else "?",
                 "%.0f" % per if per is not None else "n/a", r["endpoints"], r["observations"],
                 r["findings"], empty_counts(r)))
        w("")
        kernel = [max((s[5] for s in r["samples"] if s[5] is not None), default=None)
                  for r in silent]
        w("Pending connects: %s, sampled every %.0f ms with the worker's RSS and descriptors "
          "(worker descriptor limit %s)%s." % (
              silent[0]["pending_source"], a.interval * 1000, silent[0]["nofile"],
              "" if kernel[0] is None else "; peak sockets in SYN-SENT to the range (`ss`, every "
              "%.0f ms): %s" % (a.interval * 5000, " / ".join(str(k) for k in kernel))))
        w("")
    w("Read against the aims of issue 10:\n")
    w(aims(a, layout, sparse, silent))
    return "\n".join(out)


def aims(a, layout, sparse, silent):
    lines = []
    n_want = len(layout.want)
    if sparse:
        prod = sparse["product"]
        nm = sparse.get("sS")
        if nm:
            nmap_best = min(r["wall"] for r in nm)
            nmap_worst = max(r["wall"] for r in nm)
            parts = []
            for i, r in enumerate(prod, 1):
                if r["finished"]:
                    parts.append("run %d %.1fx (%.1f s)" % (i, nmap_best / r["wall"], r["wall"]))
                else:
                    eta = eta_s(r)
                    parts.append("run %d did not finish in %.0f s, at most %.2fx%s"
                                 % (i, r["wall"], nmap_worst / r["wall"],
                                    "; at its pace the whole range would take about %.0f s "
                                    "(%.2fx)" % (eta, nmap_best / eta) if eta else ""))
            ok = all(r["finished"] and nmap_best / r["wall"] >= AIM_SPEEDUP for r in prod)
            lines.append("- **The /20 with default settings at least %.0fx faster than `nmap -sS "
                         "-T4` (%s s, so at most %.1f s): %s.** %s."
                         % (AIM_SPEEDUP, " / ".join(fmt_s(r["wall"]) for r in nm),
                            nmap_best / AIM_SPEEDUP, "met" if ok else "not met",
                            "; ".join(parts)))
        else:
            lines.append("- The /20 against `nmap -sS -T4`: nmap not run (`--skip-nmap`).")
        found = ["%d of %d" % (r["matched"], n_want) for r in prod]
        ok = all(r["matched"] == n_want for r in prod)
        lines.append("- **Every certificate found: %s** (%s%s)." % (
            "met" if ok else "not met", ", ".join(found),
            "" if all(r["finished"] for r in prod) else "; an unfinished run counts what it "
            "had written when it was given up"))
        rows = ["%d / %d / %d" % (r["empty_endpoints"], r["empty_observations"],
                                  r["empty_findings"]) for r in prod]
        ok = all(r["empty_endpoints"] == r["empty_observations"] == r["empty_findings"] == 0
                 for r in prod)
        lines.append("- **Zero rows for empty addresses: %s** (endpoints / observations / "
                     "findings for address:ports that never completed a connect: %s)."
                     % ("met" if ok else "not met", ", ".join(rows)))
    if silent:
        parts = []
        for i, r in enumerate(silent, 1):
            if r["finished"]:
                parts.append("run %d %.1f s, %d endpoints" % (i, r["wall"], r["endpoints"]))
            else:
                eta = eta_s(r)
                parts.append("run %d did not finish in %.0f s (%d of %d targets, %s targets/s%s"
                             "), %d endpoints written by then"
                             % (i, r["wall"], r["targets_done"], r["targets_total"],
                                fmt_s(r["targets_done"] / r["wall"]),
                                ": about %.1f h for the whole range" % (eta / 3600) if eta
                                else "", r["endpoints"]))
        ok = all(r["finished"] and r["wall"] < AIM_SILENT_S and r["endpoints"] == 0
                 for r in silent)
        lines.append("- **Silent /16 x 2 ports in under %.0f s on one worker, no rows: %s.** %s."
                     % (AIM_SILENT_S, "met" if ok else "not met", "; ".join(parts)))
        parts, ok = [], True
        for i, r in enumerate(silent, 1):
            peak, _, per = pending_figures(r)
            if per is None:
                parts.append("run %d: no pending connect seen" % i)
                ok = False
            else:
                parts.append("run %d: %.0f bytes (%d pending at the peak)" % (i, per, peak))
                ok = ok and per <= AIM_BYTES_PER_PENDING
        lines.append("- **At most 1 KB of worker memory per pending connect: %s.** %s%s."
                     % ("met" if ok else "not met", "; ".join(parts),
                        "" if not all(pending_figures(r)[0] < 100 for r in silent) else
                        "; with so few connects pending the figure is mostly the noise of "
                        "the worker's RSS, not a cost per connect"))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default=os.path.join(SRC, "build-sparse"))
    ap.add_argument("--worktree", action="store_true",
                    help="build the working tree instead of the committed HEAD")
    ap.add_argument("--repeat", type=int, default=2, help="runs of this project per pass")
    ap.add_argument("--nmap-repeat", type=int, default=1, help="runs of each nmap mode")
    ap.add_argument("--product-timeout", type=int, default=300,
                    help="seconds after which a run of this project is given up")
    ap.add_argument("--skip-nmap", action="store_true")
    ap.add_argument("--only", choices=("sparse20", "silent16", "shards16"))
    ap.add_argument("--workers", default="1,4",
                    help="shards16: worker counts to run the silent /16 with (comma-separated)")
    ap.add_argument("--kill", action="store_true",
                    help="shards16: also a run on the most workers with worker 1 killed with "
                         "SIGKILL half-way")
    ap.add_argument("--reclaim-idle", default=None,
                    help="shards16: worker.reclaim_idle for the runs (default: the default, 60s)")
    ap.add_argument("--interval", type=float, default=0.1, help="sampling interval, seconds")
    ap.add_argument("--seed", type=int, default=10, help="which addresses live and refuse")
    ap.add_argument("--layout", choices=("scattered", "clustered"), default="scattered",
                    help="answering addresses spread over the /20 (default) or all in its first "
                         "/23 (nmap's pace depends on it: it learns its timeouts per group of "
                         "hosts from the ones that answer)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folders")
    a = ap.parse_args()
    if a.repeat < 1 or a.nmap_repeat < 1 or a.product_timeout < 10:
        ap.error("--repeat and --nmap-repeat must be at least 1, --product-timeout at least 10")
    command = "bench/sparse/run.py " + " ".join(sys.argv[1:])
    enter_namespace()

    if a.keep:
        os.environ["CAP_E2E_KEEP"] = "1"
    log("building (Release, no sanitizers) in %s" % a.build_dir)
    bins, code = build(a.build_dir, a.worktree)
    # the helpers of the tree that was built: bench/scan/run.py (CFleet, timed, pem_fp,
    # cpu_model; it imports tests/e2e/tlsfleet.py) and tests/e2e/harness.py
    global scan_run, harness, tlsfleet
    scan_run = load("scan_run", os.path.join(bins["src"], "bench", "scan", "run.py"))
    tlsfleet = scan_run.tlsfleet
    harness = load("harness", os.path.join(bins["src"], "tests", "e2e", "harness.py"))
    os.environ["CAP_BUILD_DIR"] = bins["obj"]
    os.environ["CAP_SOURCE_DIR"] = bins["src"]
    tmp = tempfile.mkdtemp(prefix="cap-bench-sparse-")
    layout = Layout(tmp, a.seed, a.layout)
    meta = {"command": command.strip(), "code": code, "versions": versions()}
    sparse, silent = None, None
    fleet = None
    try:
        nft_setup(layout)
        fleet = scan_run.CFleet(bins["fleet"], tmp, "sparse",
                                [(ad, p, c) for ad, p, c in layout.endpoints], 1)
        meta["checks"] = verify_shape(layout)
        log("network as built: %d endpoints, %d closed and %d silent addresses in %s, %s silent "
            "(%d checks)" % (len(layout.endpoints), len(layout.closed), len(layout.silent),
                             SPARSE, SILENT, meta["checks"]))
        if a.only == "shards16":
            rows = []
            counts = [int(x) for x in a.workers.split(",") if x.strip()]
            plan = [(n, None) for n in counts] + ([(max(counts), 0.5)] if a.kill else [])
            for i in range(1, a.repeat + 1):
                for n, kf in plan:
                    r = shards_pass(bins, str(SILENT), n, kf, a.product_timeout, a.reclaim_idle)
                    rows.append(r)
                    log("%s on %d worker(s)%s run %d: %s in %.1f s, %d/%d targets, %d shards "
                        "(%d attempts) on %d workers" % (
                            SILENT, n, " with a kill" if kf else "", i, r["status"], r["wall"],
                            r["targets_done"], r["targets_total"], r["shards"],
                            r["shard_attempts"], r["shard_workers"]))
            print(shards_report(meta, rows))
            return
        if a.only in (None, "sparse20"):
            sparse = {"product": []}
            rounds = max(a.repeat, 0 if a.skip_nmap else a.nmap_repeat)
            for i in range(1, rounds + 1):
                if i <= a.repeat:
                    r = product_pass(bins, str(SPARSE), layout, a.product_timeout, a.interval,
                                     fleet)
                    r["want_n"] = len(layout.want)
                    sparse["product"].append(r)
                    log(describe_product(str(SPARSE), i, r))
                if not a.skip_nmap and i <= a.nmap_repeat:
                    for mode in ("sS", "sT"):
                        r = nmap_pass(mode, tmp, layout, fleet, i)
                        sparse.setdefault(mode, []).append(r)
                        log("%s, nmap -%s run %d: %.1f s, CPU %.1f s, peak RSS %.1f MB, %d/%d "
                            "certificates, ports %s" % (SPARSE, mode, i, r["wall"], r["cpu"],
                                                        r["rss_kb"] / 1024.0, r["matched"],
                                                        len(layout.want), r["states"]))
        if a.only in (None, "silent16"):
            silent = []
            for i in range(1, a.repeat + 1):
                r = product_pass(bins, str(SILENT), layout, a.product_timeout, a.interval, None)
                r["want_n"] = 0
                silent.append(r)
                log(describe_product(str(SILENT), i, r))
    finally:
        if fleet:
            fleet.stop()
        nft_teardown()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(report(a, meta, layout, sparse, silent))


if __name__ == "__main__":
    main()
