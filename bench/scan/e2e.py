#!/usr/bin/python3
"""Network scan benchmark through the whole product: what a scanned endpoint costs a user, beside
what the engine alone costs (bench/scan/scan_bench.c), a bare libssl client (`openssl s_time
-new`) and `nmap --script ssl-cert`, all in the same run against the same fleet.

    bench/scan/e2e.py [--build-dir build-bench] [--endpoints 254] [--triggers 8] [--rounds 3]
                      [--concurrency 64] [--inflight 10000] [--baseline BUILD_DIR]
                      [--warmup N] [--perf FILE] [--pg-statements [--explain FILE]]

The README's local system in the shape tests/e2e/harness.py gives it (a PostgreSQL 15 and a Redis
of its own, fsync off; Release cap-scheduler and cap-worker, logging at info, scheduler tick 5 s):
a `network_scan` source over one CIDR of 127/8 where --endpoints TLS servers listen on port 443,
one address each, each with its own ECDSA P-256 leaf signed by an intermediate (a chain of 2),
served by one bench/scan/fleet.c process. `capctl source trigger NAME --wait` runs --triggers
times: the first scan stores everything, the others are re-scans that confirm (nothing changed).
Then --scheduled re-scans that the scheduler starts, as when a schedule falls due (the source's
next run set to now and the scheduler woken, as a schedule change wakes it): no capctl, so no
new PostgreSQL backend per run; the benchmark waits on its own connection, left out.
Around every trigger the benchmark reads the CPU of every process the
run takes: the worker, the scheduler, Redis (utime + stime from /proc, in 10 ms ticks), and
PostgreSQL (the postmaster and its live children to the nanosecond from /proc/PID/schedstat,
and through the postmaster's cutime/cstime every backend that exited meanwhile: capctl's own
included); and what the run wrote: WAL bytes (pg_current_wal_lsn() before and after, flushed)
and, from pg_waldump over the same range, the heap rows inserted, updated and locked and the
index entries, per table. Then a second source, over the next CIDR of the same size where nothing
listens, is triggered as often: what a run costs that stores nothing (the per-run floor).

Beside it, in each round against the same fleet: the engine alone (scan_bench, --triggers passes
with --concurrency slots), `openssl s_time -new` against one server for 4 s, and nmap ssl-cert
over the CIDR once, each under GNU time (user and system CPU). Once at the end: 10,000
handshakes held in flight (scan_bench --hold, as run.py does) and `openssl speed` for the
client's cryptography. --perf FILE records the worker (perf record -g) during the re-scans of
the first round.

--baseline BUILD_DIR measures another build's cap-worker, cap-scheduler and capctl (the commit
before a change, say) in the same rounds, taking turns with --build-dir's: the machine is shared,
and only figures taken side by side compare.

Each round uses a fresh cluster; the fleet stays. Figures are medians over --rounds. Prints a
Markdown section for bench/RESULTS.md; every figure of the last run goes to
$TMPDIR/cap-bench-e2e-last.json. Needs root (file limits; the servers run as nobody), nmap,
PostgreSQL's pg_waldump, and /usr/bin/python3 with psycopg2 and redis (as the e2e tests)."""

import argparse
import asyncio
import collections
import ipaddress
import json
import os
import platform
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import harness  # noqa: E402  (tests/e2e: PostgreSQL and Redis of its own, capctl, processes)
import run as scanrun  # noqa: E402  (bench/scan/run.py: build, fleet, timing, nmap parsing)
import tlsfleet  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PG_BIN = os.environ.get("CAP_PG_BIN", "/usr/lib/postgresql/15/bin")
TABLES = ("discovered_certificates", "endpoints", "endpoint_observations", "findings",
          "drift_events", "discovery_runs")


def build(build_dir):
    exe, fleet_exe = scanrun.build(build_dir)
    scanrun.sh(["cmake", "--build", build_dir, "-j2", "--target", "capctl", "cap-scheduler",
                "cap-worker"])
    return exe, fleet_exe


def stat(pid):
    """(ppid, utime+stime, cutime+cstime) of pid in clock ticks, None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            x = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(x[1]), int(x[11]) + int(x[12]), int(x[13]) + int(x[14])


def run_s(pid, st):
    """CPU seconds of a single-threaded process (a PostgreSQL backend) so far, to the
    nanosecond from /proc/PID/schedstat (utime and stime come in 10 ms ticks, as coarse as what a
    re-scan costs a backend), or from st's ticks when schedstat is not there."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0]) / 1e9
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return st[1] / TICK


def pg_cpu_s(postmaster):
    """CPU seconds of a PostgreSQL instance so far: the postmaster, its children alive now, and
    those already reaped (the postmaster's cutime/cstime, in ticks)."""
    kids = 0.0
    for d in os.listdir("/proc"):
        if d.isdigit():
            s = stat(int(d))
            if s and s[0] == postmaster:
                kids += run_s(int(d), s)
    own = stat(postmaster)
    return run_s(postmaster, own) + own[2] / TICK + kids


PG_PARTS = ("worker", "scheduler", "capctl", "background")


def pg_parts_s(c, postmaster):
    """PostgreSQL's CPU seconds so far by whom it served: the worker's backends, the
    scheduler's, the backends that have exited (capctl's: one per command; an autovacuum worker
    that came and went would land here too), and the background processes (checkpointer, WAL
    writer, autovacuum launcher, ...) with the postmaster. The bench's own connection is left
    out (it runs no statement while a trigger is measured)."""
    who = {}
    for pid, app, btype in c.sql("SELECT pid, application_name, backend_type "
                                 "FROM pg_stat_activity"):
        if btype != "client backend":
            who[pid] = "background"
        elif app.startswith("cap-worker"):
            who[pid] = "worker"
        elif app.startswith("cap-scheduler"):
            who[pid] = "scheduler"
        else:
            who[pid] = "bench"
    out = dict.fromkeys(PG_PARTS + ("bench",), 0.0)
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat(int(d))
            if st and st[0] == postmaster:
                out[who.get(int(d), "background")] += run_s(int(d), st)
    own = stat(postmaster)
    out["background"] += run_s(postmaster, own)
    out["capctl"] += own[2] / TICK
    return out


def proc_cpu_s(pid):
    s = stat(pid)
    return s[1] / TICK


class Waldump:
    """Rows and index entries per table from pg_waldump over an LSN range."""

    REC = re.compile(r"^rmgr: (\S+)\s+len \(rec/tot\):\s*(\d+)/\s*(\d+), tx:\s*\d+, lsn: \S+, "
                     r"prev \S+, desc: (\S+)(.*)$")
    REL = re.compile(r"rel \d+/\d+/(\d+)")

    def __init__(self, c):
        self.c = c
        self.waldir = os.path.join(c.tmpdir, "pg", "data", "pg_wal")

    def relmap(self):
        rows = self.c.sql(
            "SELECT c.relfilenode, coalesce(t.relname, o.relname, c.relname), "
            "c.relkind::text FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid "
            "LEFT JOIN pg_class t ON t.oid = i.indrelid "
            "LEFT JOIN pg_class o ON o.reltoastrelid = c.oid WHERE c.relfilenode <> 0")
        return {int(r[0]): (r[1], r[2]) for r in rows}

    def lsn(self):
        """The WAL position after a flush (a commit with synchronous_commit on writes out what
        the asynchronous commits of the run left in the buffers), so pg_waldump can read it."""
        conn = self.c._conn()
        conn.autocommit = False
        with conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = on")
            cur.execute("SELECT txid_current()")
        conn.commit()
        conn.autocommit = True
        return self.c.sql("SELECT pg_current_wal_lsn()::text")[0][0]

    def bytes(self, a, b):
        return int(self.c.sql("SELECT pg_wal_lsn_diff(%s, %s)", (b, a))[0][0])

    def tables(self, a, b):
        """{table: Counter(ins, upd, hot, lock, del, idx, bytes)} between LSNs a and b."""
        rels = self.relmap()
        p = subprocess.run([os.path.join(PG_BIN, "pg_waldump"), "-p", self.waldir, "-s", a,
                            "-e", b], capture_output=True, text=True)
        out = collections.defaultdict(collections.Counter)
        for line in p.stdout.splitlines():
            m = self.REC.match(line)
            if not m:
                continue
            rmgr, tot, desc, rest = m.group(1), int(m.group(3)), m.group(4), m.group(5)
            rel = self.REL.search(rest)
            name, kind = rels.get(int(rel.group(1)), ("other", "r")) if rel else ("other", "-")
            if name not in TABLES:
                name = "other"
            cnt = out[name]
            cnt["bytes"] += tot
            cnt["bytes " + rmgr] += tot
            if kind == "i":
                if desc.startswith("INSERT") or desc.startswith("SPLIT"):
                    cnt["idx"] += 1 if desc.startswith("INSERT") else 0
                continue
            if rmgr == "Heap":
                if desc.startswith("INSERT"):
                    cnt["ins"] += 1
                elif desc.startswith("HOT_UPDATE"):
                    cnt["upd"] += 1
                    cnt["hot"] += 1
                elif desc.startswith("UPDATE"):
                    cnt["upd"] += 1
                elif desc.startswith("LOCK"):
                    cnt["lock"] += 1
                elif desc.startswith("DELETE"):
                    cnt["del"] += 1
            elif rmgr == "Heap2" and desc == "MULTI_INSERT":
                n = re.search(r"ntuples:? (\d+)", rest)
                cnt["ins"] += int(n.group(1)) if n else 1
        return out


def make_fleet(fleet_exe, tmp, n, threads):
    """n TLS servers on port 443, one address each of a block of 127/8, each with its own P-256
    leaf signed by the intermediate. Returns (CFleet, cidr, {addr: leaf fingerprint}, the next
    CIDR of the same size, where nothing listens)."""
    bits = max(2, (n + 1).bit_length())
    size = 1 << bits
    certs = tlsfleet.Fleet(os.path.join(tmp, "e2e"), port=443)
    for attempt in range(3):
        second = random.randint(100, 250)
        base = ipaddress.ip_address("127.%d.0.0" % second) + random.randrange(0, 65536,
                                                                                    size)
        addrs = [str(base + 1 + i) for i in range(n)]
        leafs = [certs.cert("e%d.e2e.bench.test" % i, via_intermediate=True) for i in range(n)]
        try:
            cf = scanrun.CFleet(fleet_exe, tmp, "e2e", [(a, 443, leafs[i])
                                                        for i, a in enumerate(addrs)], threads)
            return (cf, "%s/%d" % (base, 32 - bits),
                    {a: leafs[i].fingerprint for i, a in enumerate(addrs)},
                    "%s/%d" % (base + size, 32 - bits))
        except RuntimeError as e:
            if attempt == 2:
                raise
            print("fleet: %s; trying another block" % e, file=sys.stderr)


def timed_split(cmd):
    """Runs cmd under GNU time: (stdout, wall s, user s, system s, max RSS kB)."""
    fd, tfile = tempfile.mkstemp(prefix="cap-bench-time-")
    os.close(fd)
    t0 = time.time()
    p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", tfile] + cmd,
                       capture_output=True, text=True)
    wall = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError("%s failed (%s): %s" % (cmd[0], p.returncode, p.stderr[-2000:]))
    with open(tfile) as f:
        user, sys_, rss = f.read().split()[-3:]
    os.unlink(tfile)
    return p.stdout, wall, float(user), float(sys_), int(rss)


RUN_FINAL = ("succeeded", "partial", "failed", "dead")


def scheduled_run(c, name, timeout=600):
    """A run the scheduler starts, as when a source's schedule falls due: the source's
    next_run_at set to now() and the scheduler woken (the NOTIFY a schedule change sends), so
    its sweep queues the run (trigger 'schedule') and publishes it. Waits on the bench's own
    connection (its backend is left out of the figures) until the run ends; returns the run as
    `capctl --json run show` would give its id and status."""
    sid, last = c.sql("SELECT s.id, coalesce(max(r.id), 0) FROM discovery_sources s "
                      "LEFT JOIN discovery_runs r ON r.source_id = s.id WHERE s.name = %s "
                      "GROUP BY s.id", (name,))[0]
    c.sql("WITH u AS (UPDATE discovery_sources SET next_run_at = now() WHERE id = %s "
          "RETURNING id) SELECT pg_notify('cap_scheduler', 'source ' || id) FROM u", (sid,))
    t_end = time.time() + timeout
    while time.time() < t_end:
        rows = c.sql("SELECT id, status, trigger FROM discovery_runs WHERE source_id = %s "
                     "AND id > %s ORDER BY id LIMIT 1", (sid, last))
        if rows and rows[0][1] in RUN_FINAL:
            if rows[0][2] != "schedule":
                raise RuntimeError("run %s of %s was started by %s, not the schedule"
                                   % (rows[0][0], name, rows[0][2]))
            return {"id": rows[0][0], "status": rows[0][1]}
        time.sleep(0.05)
    raise RuntimeError("no scheduled run of %s ended within %d s" % (name, timeout))


def trigger(c, wd, name, procs, cf, want, scheduled=False):
    """One run of source NAME: `capctl source trigger NAME --wait`, or with scheduled a run the
    scheduler starts (scheduled_run); returns what the run took and wrote."""
    def cpu_now():
        # PostgreSQL's comes from pg_parts_s, by whom it served
        cpu = {k: proc_cpu_s(pid) for k, pid in procs.items() if k != "postgres"}
        cpu["fleet"] = cf.stats()["cpu_s"]
        return cpu
    lsn0 = wd.lsn()
    time.sleep(0.3)
    parts0 = pg_parts_s(c, procs["postgres"])
    cpu0 = cpu_now()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    if scheduled:
        run = scheduled_run(c, name)
        wall = time.time() - t0
    else:
        r = c.capctl("--json", "source", "trigger", name, "--wait", "--timeout", "10m",
                     timeout=700)
        wall = time.time() - t0
        if r.returncode != 0:
            raise RuntimeError("capctl source trigger failed: %s %s" % (r.stdout, r.stderr))
        run = json.loads(r.stdout)
        if isinstance(run, list):
            run = run[0]
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    time.sleep(0.3)  # capctl's backend exits and is reaped
    cpu1 = cpu_now()
    parts1 = pg_parts_s(c, procs["postgres"])
    lsn1 = wd.lsn()
    rid = run["id"]
    got = dict(c.sql("SELECT host(e.address), o.fingerprint_sha256 FROM "
                     "endpoint_observations o JOIN endpoints e ON e.id = o.endpoint_id "
                     "WHERE o.run_id = %s AND o.outcome = 'ok'", (rid,)))
    cpu = {k: cpu1[k] - cpu0[k] for k in cpu0}
    cpu["capctl"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    for k in PG_PARTS:
        cpu["pg_" + k] = parts1[k] - parts0[k]
    # PostgreSQL's CPU for the product: every part but the benchmark's own backend (which
    # waits for a scheduled run by polling)
    cpu["postgres"] = sum(cpu["pg_" + k] for k in PG_PARTS)
    res = dict(run=rid, status=run.get("status"), endpoints=len(got),
               matched=sum(1 for ad, fp in want.items() if got.get(ad) == fp), wall=wall,
               cpu=cpu, wal=wd.bytes(lsn0, lsn1), tables=wd.tables(lsn0, lsn1))
    print("  %s%s: run %s %s, %d endpoints (%d right), %.2f s, worker %.3f s, postgres %.3f s, "
          "WAL %d B" % (name, " (scheduled)" if scheduled else "", rid, res["status"], len(got),
                        res["matched"], wall, cpu["worker"], cpu["postgres"], res["wal"]),
          file=sys.stderr)
    return res


STATEMENTS_SQL = (
    "SELECT calls, total_exec_time + total_plan_time, total_plan_time, rows, "
    "CASE WHEN toplevel THEN '' ELSE '(nested) ' END "
    "|| left(regexp_replace(query, '\\s+', ' ', 'g'), 80) FROM pg_stat_statements "
    "ORDER BY total_exec_time + total_plan_time DESC LIMIT 20")


def observation_floor(c, postmaster, last_run, n, copies=8):
    """What storing one observation per endpoint costs PostgreSQL at the least: the last run's
    observations copied into a new run with one INSERT ... SELECT (no client data to parse, no
    fence, no upserts), `copies` runs per measure (CPU time is read in clock ticks, 10 ms: one
    copy of 254 rows is about one tick), n measures. Returns [(rows, PostgreSQL CPU s)]."""
    out = []
    src = c.sql("SELECT source_id FROM discovery_runs WHERE id = %s", (last_run,))[0][0]
    for _ in range(n):
        runs = [c.sql("INSERT INTO discovery_runs (source_id, trigger, status, finished_at) "
                      "VALUES (%s, 'manual', 'succeeded', now()) RETURNING id", (src,))[0][0]
                for _ in range(copies)]
        time.sleep(0.3)
        cpu0 = pg_cpu_s(postmaster)
        rows = 0
        for run in runs:
            rows += c.sql("WITH i AS (INSERT INTO endpoint_observations (endpoint_id, run_id, "
                          "observed_at, outcome, fingerprint_sha256, chain, tls_version, "
                          "cipher_suite, kex_group, kex_group_id, kex_pqc, error) "
                          "SELECT endpoint_id, %s, now(), outcome, fingerprint_sha256, chain, "
                          "tls_version, cipher_suite, kex_group, kex_group_id, kex_pqc, error "
                          "FROM endpoint_observations WHERE run_id = %s RETURNING 1) "
                          "SELECT count(*) FROM i", (run, last_run))[0][0]
        time.sleep(0.3)
        out.append((rows, pg_cpu_s(postmaster) - cpu0))
    return out


def product_round(a, cidr, empty_cidr, want, cf, perf_file=None, statements=False):
    """One fresh cluster: the fleet's source triggered a.triggers times, then a source over a
    CIDR where nothing listens (a run that stores nothing) a.triggers times. Returns
    {"fleet": [per trigger], "empty": [per trigger]}. statements: PostgreSQL runs with
    pg_stat_statements (a diagnostic round) and its top statements of the re-scans are printed."""
    cfg = {"logging.level": "info", "scheduler.tick": "5s", "worker.reclaim_idle": "60s"}
    res = {"fleet": [], "empty": [], "floor": [], "sched": []}
    with harness.Cluster(name="bench-e2e", config=cfg) as c:
        if statements:
            c.sql("ALTER SYSTEM SET shared_preload_libraries = %s"
                  % ("pg_stat_statements, auto_explain" if a.explain else "pg_stat_statements"))
            c.restart_postgres()
            if a.explain:
                c.sql("ALTER SYSTEM SET auto_explain.log_min_duration = '1ms'")
                c.sql("ALTER SYSTEM SET auto_explain.log_analyze = on")
            c.sql("ALTER SYSTEM SET pg_stat_statements.track_planning = on")
            c.sql("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
            c.sql("SELECT pg_reload_conf()")
            c.sql("CREATE EXTENSION pg_stat_statements")
        c.migrate()
        procs = {"scheduler": c.start_scheduler().pid, "worker": c.start_worker().pid,
                 "postgres": c._servers["postgres"][0].pid, "redis": c._servers["redis"][0].pid}
        c.capctl_ok("source", "add", "e2e", "--type", "network_scan", "--cidr", cidr, "--port",
                    "443", "--concurrency", str(a.concurrency), "--timeout", "5s")
        c.capctl_ok("source", "add", "empty", "--type", "network_scan", "--cidr", empty_cidr,
                    "--port", "443", "--concurrency", str(a.concurrency), "--timeout", "5s")
        wd = Waldump(c)
        # the worker is ready once it has joined the stream's group
        c.wait_for(lambda: c.group_info() is not None, 30, "the worker's consumer group")
        time.sleep(1)
        perf = None
        for i in range(a.triggers):
            if i == 1 and a.warmup:
                # re-scans not counted: a worker's connections run for days, and PostgreSQL
                # plans a prepared statement only until its plan cache settles (five runs per
                # connection, and the runs spread over the worker's job threads)
                for _ in range(a.warmup):
                    trigger(c, wd, "e2e", procs, cf, want)
            if i == 1 and perf_file:
                perf = subprocess.Popen(["perf", "record", "-g", "-F", "999", "-o", perf_file,
                                         "-p", str(procs["worker"])], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            if i == 1 and statements:
                c.sql("SELECT pg_stat_statements_reset()")
            res["fleet"].append(trigger(c, wd, "e2e", procs, cf, want))
        if perf:
            perf.send_signal(2)
            perf.wait(60)
        if statements and a.scheduled:
            print("  top statements of the %d re-scans above (calls, ms, of which planning, "
                  "rows):" % (a.triggers - 1), file=sys.stderr)
            for row in c.sql(STATEMENTS_SQL):
                print("  %5d %8.1f %7.1f %6d  %s" % row, file=sys.stderr)
            c.sql("SELECT pg_stat_statements_reset()")
        for _ in range(a.scheduled):
            res["sched"].append(trigger(c, wd, "e2e", procs, cf, want, scheduled=True))
        if statements and a.explain:
            with open(os.path.join(c.logdir, "postgres.log")) as f, open(a.explain, "w") as o:
                o.write(f.read())
            print("  plans of the statements over 1 ms: %s" % a.explain, file=sys.stderr)
        if statements:
            print("  top statements of the %d %s re-scans (calls, ms, of which planning, rows):"
                  % ((a.scheduled, "scheduled") if a.scheduled else (a.triggers - 1, "")),
                  file=sys.stderr)
            for row in c.sql(STATEMENTS_SQL):
                print("  %5d %8.1f %7.1f %6d  %s" % row, file=sys.stderr)
        res["floor"] = observation_floor(c, procs["postgres"], res["fleet"][-1]["run"], 3)
        if statements:
            c.sql("SELECT pg_stat_statements_reset()")
        for i in range(a.triggers):
            res["empty"].append(trigger(c, wd, "empty", procs, cf, {}))
        if statements:
            print("  top statements of the %d runs that store nothing (calls, ms, of which "
                  "planning, rows):" % a.triggers, file=sys.stderr)
            for row in c.sql(STATEMENTS_SQL):
                print("  %5d %8.1f %7.1f %6d  %s" % row, file=sys.stderr)
        counts = c.sql("SELECT (SELECT count(*) FROM endpoint_observations), "
                       "(SELECT count(*) FROM discovered_certificates), "
                       "(SELECT count(*) FROM findings WHERE status = 'open'), "
                       "(SELECT count(*) FROM drift_events)")[0]
        print("  stored: %d observations, %d certificates, %d open findings, %d drift events"
              % counts, file=sys.stderr)
    return res


def engine_profile(a, exe, cidr, path):
    """scan_bench under `perf record` (--triggers passes); returns [(share %, shared object)]."""
    scanrun.sh(["perf", "record", "-q", "-o", path, "-F", "2000", "--", exe, "--cidr", cidr,
                "--port", "443", "--slots", str(a.concurrency), "--repeat", str(a.triggers)])
    out = subprocess.run(["perf", "report", "-i", path, "--no-children", "--sort", "dso",
                          "--stdio", "-g", "none"], capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\S+)", line)
        if m and not line.lstrip().startswith("#"):
            rows.append((float(m.group(1)), m.group(2)))
    return rows


def reference_round(a, exe, cidr, want, cf):
    """The engine alone (--triggers passes), openssl s_time, nmap ssl-cert: CPU per handshake."""
    out = {}

    def fleet_cpu():
        return cf.stats()["cpu_s"]
    fpfile = tempfile.mktemp(prefix="cap-bench-fp-")
    f0 = fleet_cpu()
    o, wall, user, sys_, rss = timed_split([exe, "--cidr", cidr, "--port", "443", "--slots",
                                            str(a.concurrency), "--repeat", str(a.triggers)])
    hs = json.loads(o)["ok"]
    out["engine"] = dict(hs=hs, wall=wall, user=user, sys=sys_, rss=rss, fleet=fleet_cpu() - f0)
    timed_split([exe, "--cidr", cidr, "--port", "443", "--slots", str(a.concurrency),
                 "--fingerprints", fpfile])
    out["engine"]["matched"] = scanrun.matched(scanrun.parse_ours(fpfile), want)
    os.unlink(fpfile)

    first = next(iter(want))
    f0 = fleet_cpu()
    o, wall, user, sys_, rss = timed_split(["openssl", "s_time", "-connect", "%s:443" % first,
                                            "-new", "-time", "4"])
    m = re.search(r"(\d+) connections in [\d.]+s", o)
    out["s_time"] = dict(hs=int(m.group(1)) if m else 0, wall=wall, user=user, sys=sys_, rss=rss,
                         fleet=fleet_cpu() - f0)

    xml = tempfile.mktemp(prefix="cap-bench-nmap-", suffix=".xml")
    f0 = fleet_cpu()
    o, wall, user, sys_, rss = timed_split(["nmap", "-Pn", "-n", "-T5", "--script", "ssl-cert",
                                            "-p", "443", "-oX", xml, cidr])
    got = scanrun.parse_nmap(xml, 443)
    os.unlink(xml)
    out["nmap"] = dict(hs=len(got), wall=wall, user=user, sys=sys_, rss=rss,
                       fleet=fleet_cpu() - f0, matched=scanrun.matched(got, want))
    return out


def inflight(exe, n):
    """scan_bench --hold n against listeners that take the ClientHello and never answer."""
    base = ipaddress.ip_address("127.%d.%d.200" % (random.randint(100, 250),
                                                   random.randint(0, 255)))
    addrs = [str(base + i) for i in range(8)]
    port = random.randint(20000, 60000)
    loop = asyncio.new_event_loop()
    ready, box = threading.Event(), {}

    def run_holder():
        asyncio.set_event_loop(loop)
        box["stop"] = asyncio.Event()
        loop.run_until_complete(scanrun.holder(addrs, port, ready, box["stop"]))
    th = threading.Thread(target=run_holder, daemon=True)
    th.start()
    ready.wait(10)
    o, _, _, _ = scanrun.timed([exe, "--cidr", "%s/29" % addrs[0], "--port", str(port),
                                "--slots", str(n), "--timeout", "60000", "--hold", str(n)])
    loop.call_soon_threadsafe(box["stop"].set)
    th.join(10)
    return json.loads(o)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build-dir", default=os.path.join(SRC, "build-bench"))
    ap.add_argument("--endpoints", type=int, default=254)
    ap.add_argument("--triggers", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64,
                    help="the source's concurrency and the engine's slots")
    ap.add_argument("--inflight", type=int, default=10000, help="0: no memory pass")
    ap.add_argument("--fleet-threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--perf", help="perf record -g the worker during the re-scans of round 1 "
                                   "into this file")
    ap.add_argument("--perf-engine", metavar="FILE",
                    help="perf record the engine alone (scan_bench) in round 1 into this file and "
                         "report its CPU by shared object (what of it is this project's code)")
    ap.add_argument("--baseline", metavar="BUILD_DIR",
                    help="another build (cap-worker, cap-scheduler, capctl) measured in the same "
                         "rounds, alternating with --build-dir's, e.g. the commit before a change")
    ap.add_argument("--pg-statements", action="store_true",
                    help="one more round with pg_stat_statements (not counted): PostgreSQL's "
                         "top statements of the re-scans")
    ap.add_argument("--warmup", type=int, default=0, metavar="N",
                    help="N re-scans after the first trigger that are not counted, so that the "
                         "re-scans measured are those of a worker that has run for a while")
    ap.add_argument("--scheduled", type=int, default=7, metavar="N",
                    help="after the triggered re-scans, N re-scans the scheduler starts (the "
                         "source made due and the scheduler woken, as a schedule does): no "
                         "capctl, no new PostgreSQL backend per run")
    ap.add_argument("--explain", metavar="FILE",
                    help="with --pg-statements: the plans (auto_explain, analyzed) of statements "
                         "over 1 ms in that round, into FILE")
    a = ap.parse_args()
    if not 1 <= a.endpoints <= 4094 or a.triggers < 2 or a.rounds < 1:
        ap.error("--endpoints 1..4094, --triggers >= 2, --rounds >= 1")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    build_dir = os.path.abspath(a.build_dir)
    exe, fleet_exe = build(build_dir)
    builds = [("this build", build_dir)]
    if a.baseline:
        builds.append(("baseline", os.path.abspath(a.baseline)))
    os.environ["CAP_SOURCE_DIR"] = SRC
    tmp = tempfile.mkdtemp(prefix="cap-bench-e2e-")
    load0 = os.getloadavg()
    cf, cidr, want, empty_cidr = make_fleet(fleet_exe, tmp, a.endpoints, a.fleet_threads)
    res = {label: {"rounds": [], "empties": [], "floors": [], "scheds": []}
           for label, _ in builds}
    refs = []
    try:
        for i in range(a.rounds):
            # the builds take turns, each going first in every other round
            for label, bdir in (builds if i % 2 == 0 else builds[::-1]):
                print("round %d of %d, %s (%s)" % (i + 1, a.rounds, label, bdir),
                      file=sys.stderr)
                os.environ["CAP_BUILD_DIR"] = bdir
                pr = product_round(a, cidr, empty_cidr, want, cf,
                                   a.perf if i == 0 and bdir == build_dir else None)
                res[label]["rounds"].append(pr["fleet"])
                res[label]["empties"].append(pr["empty"])
                res[label]["floors"].append(pr["floor"])
                res[label]["scheds"].append(pr["sched"])
            os.environ["CAP_BUILD_DIR"] = build_dir
            refs.append(reference_round(a, exe, cidr, want, cf))
            if i == 0 and a.perf_engine:
                refs[-1]["profile"] = engine_profile(a, exe, cidr, a.perf_engine)
            print("  engine %.3f ms, s_time %.3f ms, nmap %.3f ms per handshake" % tuple(
                (refs[-1][k]["user"] + refs[-1][k]["sys"]) * 1000 / max(refs[-1][k]["hs"], 1)
                for k in ("engine", "s_time", "nmap")), file=sys.stderr)
        if a.pg_statements:
            print("diagnostic round (pg_stat_statements)", file=sys.stderr)
            product_round(a, cidr, empty_cidr, want, cf, statements=True)
    finally:
        cf.stop()
    held = inflight(exe, a.inflight) if a.inflight else None
    x25519_s, verify_s, _ = scanrun.openssl_speed()
    load1 = os.getloadavg()
    report(a, cidr, empty_cidr, res, refs, held, x25519_s, verify_s, load0, load1)


def report(a, cidr, empty_cidr, res, refs, held, x25519_s, verify_s, load0, load1):
    procs = ("worker", "postgres", "scheduler", "redis")
    rounds, empties = res["this build"]["rounds"], res["this build"]["empties"]
    labels_b = list(res)

    def per_ep(rs, key):
        """CPU ms per endpoint of process key over the triggers rs of one round."""
        return sum(r["cpu"][key] for r in rs) * 1000 / max(sum(r["endpoints"] for r in rs), 1)
    phases = {"first scan": lambda rs: rs[:1], "re-scans (confirming)": lambda rs: rs[1:],
              "all %d triggers" % a.triggers: lambda rs: rs}
    print("## Network scan, end to end\n")
    print("Machine: %s, %d cores (%s), %s, OpenSSL %s, PostgreSQL 15 (tests/e2e/harness.py: "
          "fsync, full_page_writes and synchronous_commit off), Redis %s. Load average %.1f at "
          "the start, %.1f at the end (1 min). Command: `bench/scan/e2e.py --endpoints %d "
          "--triggers %d --rounds %d --concurrency %d%s` (Release, no sanitizers). Fleet: %d TLS "
          "servers on %s port 443, one address each, each its own ECDSA P-256 leaf under one "
          "intermediate (chain of 2), one `fleet.c` process. The product: cap-scheduler and "
          "cap-worker at logging level info, a `network_scan` source over the CIDR with "
          "concurrency %d, `capctl source trigger --wait` %d times in a fresh cluster per round%s; "
          "medians over %d rounds.%s\n"
          % (platform.machine(), os.cpu_count(), scanrun.cpu_model(), platform.platform(),
             scanrun.sh(["openssl", "version"]).stdout.split()[1],
             scanrun.sh(["redis-server", "--version"]).stdout.split()[2].split("=")[-1],
             load0[0], load1[0], a.endpoints, a.triggers, a.rounds, a.concurrency,
             (" --warmup %d" % a.warmup) if a.warmup else "", a.endpoints,
             cidr, a.concurrency, a.triggers,
             (" (after the first, %d re-scans not counted: a worker that has run for a while)"
              % a.warmup) if a.warmup else "", a.rounds,
             " The baseline build (`--baseline`) ran in the same rounds, taking turns with this "
             "build." if len(labels_b) > 1 else ""))
    print("| CPU ms per endpoint | worker | PostgreSQL (all its processes but the benchmark's own "
          "backend) | scheduler | Redis | "
          "worker + PostgreSQL | capctl (client) | fleet | wall s per trigger |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label in labels_b:
        brs = res[label]["rounds"]
        for name, sel in phases.items():
            cols = [med([per_ep(sel(rs), p) for rs in brs]) for p in procs]
            both = med([per_ep(sel(rs), "worker") + per_ep(sel(rs), "postgres") for rs in brs])
            cap = med([per_ep(sel(rs), "capctl") for rs in brs])
            fl = med([per_ep(sel(rs), "fleet") for rs in brs])
            wall = med([statistics.mean(r["wall"] for r in sel(rs)) for rs in brs])
            print("| %s%s | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f |"
                  % (label + ", " if len(labels_b) > 1 else "", name, cols[0], cols[1],
                     cols[2], cols[3], both, cap, fl, wall))
        srs = [rs for rs in res[label]["scheds"] if rs]
        if srs:
            cols = [med([per_ep(rs, p) for rs in srs]) for p in procs]
            print("| %sscheduled re-scans (no capctl) | %.3f | %.3f | %.3f | %.3f | %.3f | - | "
                  "%.3f | %.2f |"
                  % (label + ", " if len(labels_b) > 1 else "", cols[0], cols[1], cols[2],
                     cols[3], med([per_ep(rs, "worker") + per_ep(rs, "postgres")
                                   for rs in srs]),
                     med([per_ep(rs, "fleet") for rs in srs]),
                     med([statistics.mean(r["wall"] for r in rs) for rs in srs])))
    print()
    if len(labels_b) > 1:
        print("The fleet does the same work in every build, so its CPU in the same triggers "
              "shows how fast the machine was at the time; per unit of it (re-scans): " +
              "; ".join("%s worker %.2f, PostgreSQL %.2f" % (
                  label,
                  med([per_ep(rs[1:], "worker") / per_ep(rs[1:], "fleet")
                       for rs in res[label]["rounds"]]),
                  med([per_ep(rs[1:], "postgres") / per_ep(rs[1:], "fleet")
                       for rs in res[label]["rounds"]])) for label in labels_b) + ".\n")

    for label in labels_b:
        def per_run(key, label=label):
            return med([sum(r["cpu"][key] for r in rs) * 1000 / len(rs)
                        for rs in res[label]["empties"]])
        print("A run that stores nothing%s (the same source settings over %s, where nothing "
              "listens: %d refused connects counted, no endpoint): CPU ms per run: worker %.2f, "
              "PostgreSQL %.2f, scheduler %.2f, Redis %.2f; %.3f ms of PostgreSQL per endpoint "
              "of the fleet's runs; WAL %d bytes per run.\n"
              % (" (" + label + ")" if len(labels_b) > 1 else "", empty_cidr,
                 1 << (32 - int(empty_cidr.split("/")[1])), per_run("worker"),
                 per_run("postgres"), per_run("scheduler"), per_run("redis"),
                 per_run("postgres") / a.endpoints,
                 med([r["wal"] for rs in res[label]["empties"] for r in rs])))
    print("PostgreSQL's CPU by whom it served, ms per run (means over the rounds; live "
          "processes read to the nanosecond from /proc/PID/schedstat, the backends that exited "
          "in 10 ms ticks from the postmaster's cutime): the worker's connections, the "
          "scheduler's, the backends that exited during the trigger (capctl's own: a new "
          "backend per command), and the background processes with the postmaster.\n")
    print("| ms per run | worker's backends | scheduler's | capctl's | background | all |")
    print("|---|---|---|---|---|---|")
    for label in labels_b:
        for what, runs in (("re-scans (confirming)", [r for rs in res[label]["rounds"]
                                                      for r in rs[1:]]),
                           ("scheduled re-scans", [r for rs in res[label]["scheds"]
                                                   for r in rs]),
                           ("runs that store nothing", [r for rs in res[label]["empties"]
                                                        for r in rs])):
            if not runs or "pg_worker" not in runs[0]["cpu"]:
                continue
            mean = {k: 1000 * sum(r["cpu"]["pg_" + k] for r in runs) / len(runs)
                    for k in PG_PARTS}
            print("| %s%s | %.1f | %.1f | %.1f | %.1f | %.1f |"
                  % (label + ", " if len(labels_b) > 1 else "", what, mean["worker"],
                     mean["scheduler"], mean["capctl"], mean["background"],
                     sum(mean.values())))
    print()
    for label in labels_b:
        fl = [cpu * 1000 / max(rows, 1) for fs in res[label]["floors"] for rows, cpu in fs]
        if fl:
            print("Storing the observations alone%s (the last run's %d rows copied into a new run "
                  "by one INSERT ... SELECT, 8 runs per measure, 3 measures a round, in the same "
                  "cluster, with the table's indexes): PostgreSQL %.3f ms per endpoint (median; "
                  "min %.3f, max %.3f).\n"
                  % (" (" + label + ")" if len(labels_b) > 1 else "", a.endpoints,
                     med(fl), min(fl), max(fl)))
    eps = [r["endpoints"] for rs in rounds for r in rs]
    right = [r["matched"] for rs in rounds for r in rs]
    print("Endpoints stored per trigger: %d to %d, right leaf at every endpoint: %s.\n"
          % (min(eps), max(eps), "yes" if min(right) == a.endpoints else
             "NO (%d of %d)" % (min(right), a.endpoints)))

    def ref(k, f):
        return med([f(r[k]) for r in refs])
    labels = {"engine": "this scanner's engine alone (scan_bench, %d slots, %d passes)"
                        % (a.concurrency, a.triggers),
              "s_time": "openssl s_time -new (bare libssl client, blocking, one server)",
              "nmap": "nmap -Pn -T5 --script ssl-cert"}
    print("| same run, same fleet | handshakes | CPU ms per handshake | of which user | system | "
          "fleet CPU ms per handshake | right leaf at every endpoint |")
    print("|---|---|---|---|---|---|---|")
    for k in ("engine", "s_time", "nmap"):
        m = ref(k, lambda r: r.get("matched", -1))
        print("| %s | %d | %.3f | %.3f | %.3f | %.3f | %s |" % (
            labels[k], ref(k, lambda r: r["hs"]),
            ref(k, lambda r: (r["user"] + r["sys"]) * 1000 / max(r["hs"], 1)),
            ref(k, lambda r: r["user"] * 1000 / max(r["hs"], 1)),
            ref(k, lambda r: r["sys"] * 1000 / max(r["hs"], 1)),
            ref(k, lambda r: r["fleet"] * 1000 / max(r["hs"], 1)),
            "n/a" if m < 0 else "yes" if m == a.endpoints else "NO (%d)" % m))
    print()
    eng = ref("engine", lambda r: (r["user"] + r["sys"]) * 1000 / max(r["hs"], 1))
    eng_sys = ref("engine", lambda r: r["sys"] * 1000 / max(r["hs"], 1))
    nmap = ref("nmap", lambda r: (r["user"] + r["sys"]) * 1000 / max(r["hs"], 1))
    crypto = (2 * x25519_s + verify_s) * 1000
    allk = "all %d triggers" % a.triggers
    w_all = med([per_ep(rs, "worker") for rs in rounds])
    w_re = med([per_ep(rs[1:], "worker") for rs in rounds])
    p_all = med([per_ep(rs, "postgres") for rs in rounds])
    p_re = med([per_ep(rs[1:], "postgres") for rs in rounds])
    wp_all = med([per_ep(rs, "worker") + per_ep(rs, "postgres") for rs in rounds])
    print("Floor of the engine: client cryptography per TLS 1.3 handshake (`openssl speed`: "
          "X25519 keygen + derive %.3f ms, ECDSA P-256 verify %.3f ms) %.3f ms plus the engine's "
          "system time %.3f ms = %.3f ms.\n" % (2 * x25519_s * 1000, verify_s * 1000, crypto,
                                                eng_sys, crypto + eng_sys))
    prof = next((r["profile"] for r in refs if r.get("profile")), None)
    if prof:
        print("Where the engine's CPU goes (`perf record` of scan_bench in round 1, %d passes; "
              "share of samples by shared object; scan_bench is the engine's own code, linked "
              "in): %s.\n" % (a.triggers, ", ".join("%s %.1f %%" % (d, x)
                                                   for x, d in prof if x >= 0.05)))
    print("Against the aims of issue 13 (%s; re-scans in brackets):\n" % allk)
    print("- worker CPU per endpoint / engine CPU per handshake: %.2fx (%.2fx); aim at most "
          "1.25x" % (w_all / eng, w_re / eng))
    print("- PostgreSQL CPU per endpoint: %.3f ms (%.3f ms); aim at most 0.1 ms" % (p_all, p_re))
    scheds = [rs for rs in res["this build"]["scheds"] if rs]
    if scheds:
        print("- PostgreSQL CPU per endpoint of a re-scan the scheduler starts (no capctl): "
              "%.3f ms (per round: %s); aim at most 0.1 ms"
              % (med([per_ep(rs, "postgres") for rs in scheds]),
                 ", ".join("%.3f" % per_ep(rs, "postgres") for rs in scheds)))
    print("- engine CPU per handshake / its floor: %.2fx; aim at most 1.5x"
          % (eng / (crypto + eng_sys)))
    if held:
        print("- memory per handshake in flight: %.0f bytes (%.0f of them allocated by OpenSSL; "
              "%d probes held, %d with their ClientHello out); aim at most 1.2x what libssl "
              "allocates" % (held["bytes_per_inflight"], held["openssl_bytes_per_inflight"],
                             held["held"], held.get("handshaking", 0)))
    print("- worker + PostgreSQL CPU per endpoint / nmap's CPU per handshake: %.2fx (%.2fx); "
          "aim at most 0.4x\n" % (wp_all / nmap, med([per_ep(rs[1:], "worker") +
                                                       per_ep(rs[1:], "postgres")
                                                       for rs in rounds]) / nmap))

    print("What one trigger writes (medians; WAL bytes from pg_current_wal_lsn() before and "
          "after; rows and index entries from pg_waldump over the same range):\n")
    print("| | WAL bytes | WAL bytes per endpoint | " + " | ".join(
        "%s: rows ins / upd (HOT) / locked, index entries" % t for t in TABLES) +
        " | other WAL bytes |")
    print("|---|---|---|" + "---|" * len(TABLES) + "---|")
    for label in labels_b:
        for name, sel in (("first scan", lambda rs: rs[:1]), ("re-scan", lambda rs: rs[1:])):
            trig = [r for rs in res[label]["rounds"] for r in sel(rs)]
            cells = []
            for t in TABLES:
                def g(k, t=t):
                    return med([r["tables"].get(t, {}).get(k, 0) for r in trig])
                cells.append("%d / %d (%d) / %d, %d" % (g("ins"), g("upd"), g("hot"),
                                                        g("lock"), g("idx")))
            print("| %s%s | %d | %.0f | %s | %d |" % (
                label + ", " if len(labels_b) > 1 else "", name,
                med([r["wal"] for r in trig]),
                med([r["wal"] / max(r["endpoints"], 1) for r in trig]), " | ".join(cells),
                med([r["tables"].get("other", {}).get("bytes", 0) for r in trig])))
    print()
    for label in labels_b:
        print("Raw per round%s (worker / PostgreSQL CPU ms per endpoint, first scan; re-scans): "
              % (" (" + label + ")" if len(labels_b) > 1 else "") +
              "; ".join("%.3f / %.3f; %.3f / %.3f" % (per_ep(rs[:1], "worker"),
                                                       per_ep(rs[:1], "postgres"),
                                                       per_ep(rs[1:], "worker"),
                                                       per_ep(rs[1:], "postgres"))
                        for rs in res[label]["rounds"]) + ".\n")
    json.dump({"builds": res, "refs": refs, "held": held}, open(
        os.path.join(tempfile.gettempdir(), "cap-bench-e2e-last.json"), "w"), default=dict)


if __name__ == "__main__":
    main()
