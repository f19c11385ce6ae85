#!/usr/bin/python3
"""bench/queue: jobs per second through cap-scheduler, Redis, cap-worker and PostgreSQL with the
no-op executor (full path: claim, status, heartbeat, ack), and enqueue-to-start latency at a
steady rate, beside Sidekiq (Debian's ruby-sidekiq) doing no-op jobs on the same Redis.

    bench/queue/bench.py [--jobs 100000] [--rate 1000] [--seconds 20] [--workers 2]

Builds a Release tree in build-bench/ (no sanitizers) unless CAP_BUILD_DIR is set, starts its
own PostgreSQL and Redis through the e2e harness, and prints a Markdown section for
bench/RESULTS.md. Loopback only.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))


def build():
    bdir = os.environ.get("CAP_BUILD_DIR") or os.path.join(SRC, "build-bench")
    if "CAP_BUILD_DIR" not in os.environ:
        subprocess.run(["cmake", "-S", SRC, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release",
                        "-DENABLE_SANITIZERS=OFF"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", bdir, "-j2", "--target", "cap-worker",
                        "cap-scheduler", "capctl"], check=True, stdout=subprocess.DEVNULL)
    os.environ["CAP_BUILD_DIR"] = bdir
    os.environ.setdefault("CAP_SOURCE_DIR", SRC)
    return bdir


def machine_cpu_seconds():
    """Total non-idle CPU seconds of the machine (all cores) from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    vals = [int(x) for x in parts]
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def pct(vals, p):
    if not vals:
        return float("nan")
    vals = sorted(vals)
    k = min(len(vals) - 1, max(0, int(round(p / 100.0 * (len(vals) - 1)))))
    return vals[k]


def ours(c, jobs, rate, seconds, workers):
    c.migrate()
    c.sql("INSERT INTO discovery_sources (name, type, cidrs) SELECT 'bench-' || g, 'network_scan',"
          " '{127.0.0.1/32}' FROM generate_series(1, %s) g", (jobs,))
    sched = c.start_scheduler()
    # Sources are long-lived: let the scheduler judge their schedules before measuring.
    c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_sources WHERE schedule_judged IS NULL")[0][0] == 0,
               timeout=600, interval=0.5, what="schedules judged")
    # Sidekiq-style burn-down: the queue is filled first (runs queued and published), then the
    # workers start and drain it.
    c.sql("INSERT INTO discovery_runs (source_id, trigger) SELECT id, 'manual' FROM discovery_sources")
    c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE stream_id IS NULL")[0][0] == 0,
               timeout=600, interval=0.5, what="all runs published")
    cpu0 = machine_cpu_seconds()
    t0 = time.time()
    procs = [sched] + [c.start_worker() for _ in range(workers)]
    c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE status <> 'succeeded'")[0][0] == 0,
               timeout=1800, interval=0.5, what="burn-down of %d no-op jobs" % jobs)
    wall = time.time() - t0
    cpu = machine_cpu_seconds() - cpu0
    span = c.sql("SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM discovery_runs")[0][0]
    own_cpu = sum(proc_cpu_seconds(p.pid) for p in procs[1:])
    burn = {"jobs": jobs, "wall": wall, "span": float(span), "rate": jobs / float(span),
            "machine_cpu": cpu, "own_cpu": own_cpu}

    # The two measurements are kept apart: the burn-down leaves 100k dead row versions and
    # acknowledged stream entries; vacuum them and let one full sweep trim the stream first.
    c.sql("VACUUM ANALYZE discovery_runs")
    time.sleep(6)
    # Steady rate: runs inserted at `rate` per second (round robin over the idle sources).
    first = c.sql("SELECT max(id) FROM discovery_runs")[0][0]
    ids = [r[0] for r in c.sql("SELECT id FROM discovery_sources ORDER BY id")]
    tick = 0.01
    per_tick = rate * tick
    start = time.time()
    sent = 0
    conn = c._conn()
    while time.time() - start < seconds:
        due = int((time.time() - start) / tick) * per_tick
        batch = []
        while sent < due:
            batch.append(ids[sent % len(ids)])
            sent += 1
        if batch:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO discovery_runs (source_id, trigger) SELECT unnest(%s::bigint[]), 'manual'",
                            (batch,))
        time.sleep(tick / 2)
    c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE id > %s AND status <> 'succeeded'",
                             (first,))[0][0] == 0, timeout=600, interval=0.5, what="steady-rate jobs")
    rows = c.sql("SELECT extract(epoch FROM started_at - queued_at), "
                 "extract(epoch FROM published_at - queued_at) FROM discovery_runs WHERE id > %s", (first,))
    lat = [float(r[0]) * 1000 for r in rows]
    pub = [float(r[1]) * 1000 for r in rows]
    print("steady: queued-to-published p50 %.1f ms p99 %.1f ms" % (pct(pub, 50), pct(pub, 99)), file=sys.stderr)
    for p in procs:
        c.stop(p)
    steady = {"sent": sent, "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else 0}
    return burn, steady


def sidekiq(c, jobs, rate, seconds):
    if not shutil.which("sidekiq"):
        raise SystemExit("bench/queue: the peer is missing: apt-get install ruby-sidekiq")
    r = c.redis()
    r.flushall()
    env = dict(os.environ, REDIS_URL=c.redis_url)
    subprocess.run(["ruby", os.path.join(HERE, "sidekiq_push.rb"), "burn", str(jobs)], check=True,
                   env=env, cwd=HERE)
    cpu0 = machine_cpu_seconds()
    log = open(os.path.join(c.tmpdir, "sidekiq.log"), "w")
    p = subprocess.Popen(["sidekiq", "-r", os.path.join(HERE, "sidekiq_noop.rb"), "-c", "10"],
                         env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT)
    first = None
    while True:
        left = r.llen("queue:default")
        now = time.time()
        if first is None and left < jobs:
            first = now
        if left == 0:
            break
        if p.poll() is not None:
            raise SystemExit("bench/queue: sidekiq exited early, see %s" % log.name)
        time.sleep(0.05)
    span = time.time() - first
    cpu = machine_cpu_seconds() - cpu0
    own_cpu = proc_cpu_seconds(p.pid)
    burn = {"jobs": jobs, "span": span, "rate": jobs / span, "machine_cpu": cpu, "own_cpu": own_cpu}
    subprocess.run(["ruby", os.path.join(HERE, "sidekiq_push.rb"), "steady", str(rate), str(seconds)],
                   check=True, env=env, cwd=HERE, stdout=subprocess.DEVNULL)
    deadline = time.time() + 120
    while r.llen("queue:default") > 0 and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    lat = [float(x) * 1000 for x in r.lrange("bench:lat", 0, -1)]
    p.terminate()
    p.wait(timeout=30)
    steady = {"sent": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else 0}
    return burn, steady


def machine():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return "%d cores (%s), %.0f GiB, Linux %s" % (os.cpu_count(), model, mem, platform.release())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100000)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    build()
    import harness
    cfg = {"worker.noop_executor": True, "logging.level": "warn", "scheduler.batch": 2000,
           "worker.max_jobs": 64, "worker.reclaim_idle": "60s"}
    with harness.Cluster(name="bench-queue", config=cfg) as c:
        ob, osd = ours(c, a.jobs, a.rate, a.seconds, a.workers)
        sb, ssd = sidekiq(c, a.jobs, a.rate, a.seconds)
    print("## Job queue (bench/queue)\n")
    print("Machine: %s. Command: `bench/queue/bench.py --jobs %d --rate %d --seconds %d --workers %d`"
          " (Release build, PostgreSQL 15 and Redis 7.0 on the same machine, fsync off). Burn-down:"
          " the queue is filled first, then the consumers start; jobs/s from first start to last"
          " finish. Steady: jobs inserted at the rate, latency from queued_at (ours) or enqueue"
          " time (Sidekiq) to the start of the job, after a VACUUM of the runs table and one"
          " scheduler sweep following the burn-down. CPU: whole machine during the burn-down, and"
          " the consumer processes alone.\n"
          % (machine(), a.jobs, a.rate, a.seconds, a.workers))
    print("| | burn-down of %d no-op jobs | jobs/s | CPU s (whole machine) | CPU s (queue processes) |"
          " steady %d jobs/s: enqueue-to-start p50 | p99 | max |" % (a.jobs, a.rate))
    print("|---|---|---|---|---|---|---|---|")
    print("| %d cap-worker + PostgreSQL (scheduler for steady rate) | %.1f s | %.0f | %.1f | %.1f | %.1f ms | %.1f ms | %.1f ms |"
          % (a.workers, ob["span"], ob["rate"], ob["machine_cpu"], ob["own_cpu"], osd["p50"], osd["p99"], osd["max"]))
    print("| Sidekiq 6.4 (-c 10, Redis only) | %.1f s | %.0f | %.1f | %.1f | %.1f ms | %.1f ms | %.1f ms |"
          % (sb["span"], sb["rate"], sb["machine_cpu"], sb["own_cpu"], ssd["p50"], ssd["p99"], ssd["max"]))


if __name__ == "__main__":
    main()
