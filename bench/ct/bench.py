#!/usr/bin/python3
"""CT monitor benchmark: one local test log of N entries (half precertificates, a few percent
matching), read from index 0 by cap-worker (a ct_log source) and, in the same run, by
certspotter (Debian package) pointed at the same log with the same watch list.

Reports entries/s, CPU seconds per 100,000 entries and peak resident memory of each monitor,
the CPU the log server itself used, and checks that both found the same matches.

    CAP_BUILD_DIR=build CAP_SOURCE_DIR=. PYTHONPATH=tests/e2e bench/ct/bench.py [--entries 200000]

With --sources 1,20 it measures the shared reader instead (issue 15): for each count, in a fresh
cluster, that many ct_log sources with different suffixes (the first one the watch list above)
are placed at index 0 of the log while it publishes nothing, then the whole log is published
and every source triggered at once; it reports wall time, worker CPU, PostgreSQL CPU (the
postmaster, its live children and the reaped ones), the requests the log served and the
entries it served, then runs certspotter as above.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "e2e"))
import harness  # noqa: E402
from ctlog_util import TestLog, checkpoint, source_id  # noqa: E402


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / tck


def proc_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def bench_ours(c, log, n):
    w = c.start_worker()
    time.sleep(1.0)
    cpu0 = proc_cpu(w.pid)
    t0 = time.time()
    c.capctl_ok("source", "add", "bench", "--type", "ct_log", "--domain", "example.com",
                "--domain", "xn--bcher-kva.example", "--log", log.url, "--log-key",
                log.key_file, "--backfill-from", "0", "--trigger")
    sid = source_id(c, "bench")
    c.wait_for(lambda: (checkpoint(c, sid, log.url) or {}).get("next_index") == n,
               timeout=3600, what="bench checkpoint at %d" % n, interval=0.1)
    secs = time.time() - t0
    cpu = proc_cpu(w.pid) - cpu0
    hwm = proc_hwm_kib(w.pid)
    fps = {r[0] for r in c.sql("SELECT fingerprint_sha256 FROM ct_sightings WHERE source_id = %s",
                               (sid,))}
    ev = [e for e in c.log_events(w) if e.get("event") in ("run_claimed", "ct_log_read",
                                                           "ct_run_done", "inventory_batch")]
    batches = [e for e in ev if e["event"] == "inventory_batch"]
    for e in ev:
        if e["event"] != "inventory_batch":
            print("  worker %s %s" % (e["ts"], e["event"]))
    print("  worker: %d inventory batches" % len(batches))
    return {"seconds": secs, "cpu": cpu, "hwm_kib": hwm, "matches": len(fps), "fps": fps}


def stat(pid):
    """(ppid, utime+stime, cutime+cstime) of pid in clock ticks, None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            x = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(x[1]), int(x[11]) + int(x[12]), int(x[13]) + int(x[14])


def pg_cpu(postmaster):
    """CPU seconds of a PostgreSQL instance so far: the postmaster, its live children and the
    reaped ones (its cutime/cstime)."""
    kids = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(int(d))
            if st and st[0] == postmaster:
                kids += st[1]
    own = stat(postmaster)
    return (own[1] + own[2] + kids) / os.sysconf("SC_CLK_TCK")


# Suffixes of the other sources: brands the test log never names (--others brands), or first
# five names the log does hold, beside certificates of the first source's (--others mixed).
BRANDS = ["brand%d.test" % i for i in range(100)]
MIXED = ["example.org", "example.co", "evil-example.com", "notexample.com",
         "example.community"] + BRANDS


def bench_sources(log, n, k, rate, others):
    """k sources on the log of n entries, read at once after the log is published."""
    cfg = {"ct.max_requests_per_second": rate}
    with harness.Cluster(name="benchct%d" % k, config=cfg) as c:
        c.capctl_ok("migrate")
        c.start_scheduler()
        w = c.start_worker()
        postmaster = c._servers["postgres"][0].pid
        log.ctl("publish?size=0")
        names = []
        for i in range(k):
            name = "bench%02d" % i
            doms = ["--domain", "example.com", "--domain", "xn--bcher-kva.example"] if i == 0 \
                else ["--domain", others[i - 1]]
            c.capctl_ok("source", "add", name, "--type", "ct_log", *doms, "--log", log.url,
                        "--log-key", log.key_file, "--backfill-from", "0", "--trigger")
            names.append(name)
        sids = [source_id(c, x) for x in names]
        c.wait_for(lambda: c.sql("SELECT count(*) FROM ct_checkpoints WHERE next_index = 0 AND "
                                 "reader_key IS NOT NULL")[0][0] == k and c.sql(
                                     "SELECT count(*) FROM discovery_runs WHERE status IN "
                                     "('queued', 'running')")[0][0] == 0,
                   timeout=300, what="sources placed at 0")
        time.sleep(1.0)
        st0 = log.stats()
        cpu0, pg0, t0 = proc_cpu(w.pid), pg_cpu(postmaster), time.time()
        log.ctl("publish")
        for x in names:
            c.capctl_ok("source", "trigger", x)
        c.wait_for(lambda: c.sql("SELECT count(*) FROM ct_checkpoints WHERE next_index = %s",
                                 (n,))[0][0] == k, timeout=3600, what="all checkpoints at %d" % n,
                   interval=0.1)
        secs = time.time() - t0
        c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE status IN "
                                 "('queued', 'running')")[0][0] == 0, timeout=300,
                   what="runs done", interval=0.1)
        cpu, pgc = proc_cpu(w.pid) - cpu0, pg_cpu(postmaster) - pg0
        st1 = log.stats()
        fps = {r[0] for r in c.sql("SELECT fingerprint_sha256 FROM ct_sightings WHERE "
                                   "source_id = %s", (sids[0],))}
        per_source = c.sql("SELECT count(*) FROM ct_sightings GROUP BY source_id")
        runs = c.sql("SELECT count(*) FROM discovery_runs")[0][0]
        return {"k": k, "seconds": secs, "cpu": cpu, "pg_cpu": pgc, "hwm_kib": proc_hwm_kib(w.pid),
                "requests": st1["requests"] - st0["requests"],
                "served": st1["entries_served"] - st0["entries_served"], "fps": fps,
                "matches_all": sum(r[0] for r in per_source), "runs": runs}


def suffix_match(name):
    n = name.lower().rstrip(".")
    return any(n == s or n.endswith("." + s) for s in ("example.com", "xn--bcher-kva.example"))


def cn_only_match(tmp, fp):
    """True when certspotter's copy of fp has DNS SANs, none matching, and a matching CN."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    path = os.path.join(tmp, "cs-state", "certs", fp[:2], fp + ".pem")
    try:
        pem = open(path, "rb").read()
        cert = x509.load_pem_x509_certificate(pem)
    except (OSError, ValueError):
        return False
    try:
        sans = cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        return False
    cns = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return bool(sans) and not any(suffix_match(x) for x in sans) and \
        any(suffix_match(x) for x in cns)


def bench_certspotter(tmp, log, n):
    exe = shutil.which("certspotter")
    if not exe:
        return None
    der = open(log.key_file).read()
    from cryptography.hazmat.primitives import serialization
    k = serialization.load_pem_public_key(der.encode())
    spki = k.public_bytes(serialization.Encoding.DER,
                          serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64
    import hashlib
    loglist = {"version": "1", "operators": [{"name": "bench", "email": ["a@b"], "logs": [{
        "description": "bench log", "log_id": base64.b64encode(hashlib.sha256(spki).digest()).decode(),
        "key": base64.b64encode(spki).decode(), "url": log.url, "mmd": 86400,
        "state": {"usable": {"timestamp": "2026-01-01T00:00:00Z"}}}]}]}
    ll = os.path.join(tmp, "loglist.json")
    json.dump(loglist, open(ll, "w"))
    wl = os.path.join(tmp, "watchlist")
    open(wl, "w").write(".example.com\n.xn--bcher-kva.example\n")
    state = os.path.join(tmp, "cs-state")
    os.makedirs(state, exist_ok=True)
    out = open(os.path.join(tmp, "certspotter.out"), "w")
    t0 = time.time()
    p = subprocess.Popen([exe, "-logs", ll, "-watchlist", wl, "-state_dir", state, "-stdout",
                          "-verbose"], stdout=out, stderr=subprocess.STDOUT)
    served0 = log.stats()["entries_served"]
    deadline = time.time() + 3600
    cpu = hwm = 0
    while time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
        cpu = proc_cpu(p.pid)
        hwm = proc_hwm_kib(p.pid)
        with open(os.path.join(tmp, "certspotter.out")) as f:
            if "finished downloading entries" in f.read():
                break
    secs = time.time() - t0
    last = log.stats()["entries_served"]
    p.send_signal(signal.SIGTERM)
    p.wait(30)
    out.close()
    text = open(os.path.join(tmp, "certspotter.out")).read()
    fps = set()
    for root, _, files in os.walk(os.path.join(state, "certs")):
        for f in files:
            if f.endswith(".pem") and len(f) == 68:
                fps.add(f[:64])
    return {"seconds": secs, "cpu": cpu, "hwm_kib": hwm, "served": last - served0,
            "fps": fps, "output_tail": text[-2000:]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=200000)
    ap.add_argument("--cache", default="/var/tmp/cap-bench-ct-%d.pkl")
    ap.add_argument("--sources", help="comma-separated source counts: the shared reader bench")
    ap.add_argument("--others", choices=("brands", "mixed"), default="brands",
                    help="suffixes of the sources after the first (--sources)")
    ap.add_argument("--rate", type=int, default=1000,
                    help="ct.max_requests_per_second for --sources (certspotter is not paced)")
    args = ap.parse_args()
    n = args.entries
    if args.sources:
        return main_sources(args, n)
    with harness.Cluster(name="benchct") as c:
        t0 = time.time()
        with TestLog(c.tmpdir, entries=n, batch_max=1000, seed=42, match_rate=0.03,
                     extra=["--cache", args.cache % n], start_timeout=3600) as log:
            print("log of %d entries ready in %.0f s" % (n, time.time() - t0))
            c.capctl_ok("migrate")
            c.start_scheduler()
            srv_cpu0 = proc_cpu(log.proc.pid)
            ours = bench_ours(c, log, n)
            srv_ours = proc_cpu(log.proc.pid) - srv_cpu0
            truth = {t["fingerprint"] for t in log.truth() if t["match"]}
            srv_cpu0 = proc_cpu(log.proc.pid)
            cs = bench_certspotter(c.tmpdir, log, n)
            srv_cs = proc_cpu(log.proc.pid) - srv_cpu0
            print("cap-worker: %d entries in %.1f s = %.0f entries/s; CPU %.2f s = %.2f CPU s "
                  "per 100k; peak RSS %.1f MiB; matches %d (ground truth %d, equal: %s); "
                  "log server CPU %.1f s" % (
                      n, ours["seconds"], n / ours["seconds"], ours["cpu"],
                      ours["cpu"] * 100000 / n, ours["hwm_kib"] / 1024, ours["matches"],
                      len(truth), ours["fps"] == truth, srv_ours))
            if cs is None:
                print("certspotter: not installed (apt-get install certspotter)")
            else:
                print("certspotter: %d entries in %.1f s = %.0f entries/s; CPU %.2f s = %.2f CPU s "
                      "per 100k; peak RSS %.1f MiB; matches %d (same as cap-worker: %s); "
                      "log server CPU %.1f s" % (
                          n, cs["seconds"], n / cs["seconds"], cs["cpu"], cs["cpu"] * 100000 / n,
                          cs["hwm_kib"] / 1024, len(cs["fps"]), cs["fps"] == ours["fps"], srv_cs))
                extra = cs["fps"] - ours["fps"]
                explained = sum(1 for fp in extra if cn_only_match(c.tmpdir, fp))
                print("only certspotter: %d, of which %d have DNS SANs that do not match and a "
                      "subject CN that does (certspotter also matches the CN when there are "
                      "SANs; this monitor, as the issue asks, uses the CN only when there are "
                      "none); only cap-worker: %d" % (len(extra), explained,
                                                      len(ours["fps"] - cs["fps"])))
            print("machine: %d cores, load average %s" % (os.cpu_count(),
                                                          open("/proc/loadavg").read().split()[:3]))


def main_sources(args, n):
    import tempfile
    tmp = tempfile.mkdtemp(prefix="cap-bench-ct-")
    t0 = time.time()
    with TestLog(tmp, entries=n, batch_max=1000, seed=42, match_rate=0.03,
                 extra=["--cache", args.cache % n], start_timeout=3600) as log:
        print("log of %d entries ready in %.0f s" % (n, time.time() - t0))
        truth = {t["fingerprint"] for t in log.truth() if t["match"]}
        res = []
        for k in [int(x) for x in args.sources.split(",")]:
            r = bench_sources(log, n, k, args.rate, BRANDS if args.others == "brands" else MIXED)
            res.append(r)
            cps = n / (r["cpu"] + r["pg_cpu"])
            print("%2d sources: %d entries in %.1f s = %.0f entries/s; worker CPU %.2f s, "
                  "PostgreSQL CPU %.2f s, together %.0f entries per CPU-second; requests %d, "
                  "entries served %d; peak RSS %.1f MiB; runs %d; first source's matches %d "
                  "(ground truth %d, equal: %s); matches of all sources %d" % (
                      k, n, r["seconds"], n / r["seconds"], r["cpu"], r["pg_cpu"], cps,
                      r["requests"], r["served"], r["hwm_kib"] / 1024, r["runs"],
                      len(r["fps"]), len(truth), r["fps"] == truth, r["matches_all"]))
            sys.stdout.flush()
        if len(res) > 1:
            a, b = res[0], res[-1]
            print("%d vs %d sources: requests x%.2f, worker CPU x%.2f, worker+PostgreSQL CPU "
                  "x%.2f, wall x%.2f" % (b["k"], a["k"], b["requests"] / a["requests"],
                                         b["cpu"] / a["cpu"],
                                         (b["cpu"] + b["pg_cpu"]) / (a["cpu"] + a["pg_cpu"]),
                                         b["seconds"] / a["seconds"]))
        log.ctl("publish")
        srv0 = proc_cpu(log.proc.pid)
        cs = bench_certspotter(tmp, log, n)
        if cs is None:
            print("certspotter: not installed (apt-get install certspotter)")
        else:
            print("certspotter: %d entries in %.1f s = %.0f entries/s; CPU %.2f s = %.0f entries "
                  "per CPU-second; peak RSS %.1f MiB; matches %d; log server CPU %.1f s" % (
                      n, cs["seconds"], n / cs["seconds"], cs["cpu"], n / cs["cpu"],
                      cs["hwm_kib"] / 1024, len(cs["fps"]), proc_cpu(log.proc.pid) - srv0))
            one = res[0]
            print("entries per CPU-second, one source (worker + PostgreSQL) / certspotter: %.1fx"
                  % ((n / (one["cpu"] + one["pg_cpu"])) / (n / cs["cpu"])))
        print("machine: %d cores, load average %s" % (os.cpu_count(),
                                                      open("/proc/loadavg").read().split()[:3]))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
