#!/usr/bin/python3
"""What PostgreSQL spends that the product cannot take away by writing less: two floors behind
the figures of bench/scan/e2e.py (issue 13).

    CAP_BUILD_DIR=build-e2e bench/pg/floors.py [--sessions 30] [--rows 10160]

1. A capctl command's own session. Every capctl command opens a new PostgreSQL session, whose
   backend starts, authenticates and fills its catalog and plan caches for whatever the
   command touches. Measured two ways in one cluster (tests/e2e/harness.py: a PostgreSQL and a
   Redis of its own, a worker with the no-op executor):
   - whole commands: `capctl source trigger NAME --wait`, `capctl source list` and a bare
     session (connect, `SELECT 1`, exit), --sessions times each; the server's CPU is what the
     postmaster reaped from its exited children (cutime + cstime, in 10 ms ticks, averaged);
   - statement by statement: the statements `capctl source trigger --wait` runs (their texts
     read from ctl/source.c and ctl/query.c), each on a new session, the backend's CPU read to
     the nanosecond from /proc/PID/schedstat after each one (its exit is not in these).
2. The observation chain index (endpoint_observations_chain, GIN): what an inserted row and a
   lookup cost with a pending list (fastupdate on, gin_pending_list_limit 1 MB, migration 021)
   and without one (migration 002), on a table of 200,000 rows with chains shaped as the
   scan's (a leaf of its own and one shared intermediate). Lookups run with
   enable_seqscan off, so that each is the index's own cost.

Prints a Markdown section for bench/RESULTS.md. Needs /usr/bin/python3 with psycopg2 and redis
(as the e2e tests) and a build of capctl, cap-scheduler and cap-worker in CAP_BUILD_DIR."""

import argparse
import os
import platform
import re
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
import harness  # noqa: E402
import psycopg2  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def c_string(path, name):
    """The text of `static const char NAME[] = "..." "...";` in a C file of this tree."""
    with open(os.path.join(SRC, path)) as f:
        src = f.read()
    m = re.search(r"static const char %s\[\] =\s*(.*?);\n" % re.escape(name), src, re.S)
    if not m:
        raise SystemExit("%s: %s not found" % (path, name))
    return "".join(bytes(s, "utf-8").decode("unicode_escape")
                   for s in re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1)))


def sched_ms(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0]) / 1e6


def reaped_ms(postmaster):
    with open("/proc/%d/stat" % postmaster) as f:
        x = f.read().rsplit(")", 1)[1].split()
    return (int(x[13]) + int(x[14])) * 1000.0 / TICK


def whole_commands(c, postmaster, n):
    """Server CPU per command, ms, from the postmaster's reaped children."""
    out = {}

    def bare():
        conn = psycopg2.connect(c.pg_url)
        conn.cursor().execute("SELECT 1")
        conn.close()
    cmds = [("a bare session (connect, SELECT 1, exit)", bare),
            ("capctl source list", lambda: c.capctl_ok("source", "list")),
            ("capctl source trigger NAME --wait",
             lambda: c.capctl_ok("source", "trigger", "floor", "--wait", "--timeout", "60s"))]
    for label, fn in cmds:
        fn()  # once before: the first of each fills shared caches
        time.sleep(0.5)
        t0 = reaped_ms(postmaster)
        for _ in range(n):
            fn()
        time.sleep(0.5)
        out[label] = (reaped_ms(postmaster) - t0) / n
    return out


def statements(c, n):
    """Server CPU of each statement of `capctl source trigger --wait` on new sessions: median
    and min ms over n sessions."""
    steps = [
        ("start and authenticate (to the first statement's end)", None),
        ("SET TimeZone", "SET TimeZone TO 'UTC'"),
        ("look the source up", c_string("ctl/source.c", "SQL_ID")),
        ("insert the run", c_string("ctl/source.c", "SQL_TRIGGER")),
        ("first status poll", c_string("ctl/source.c", "SQL_RUN_STATUS")),
        ("second status poll", c_string("ctl/source.c", "SQL_RUN_STATUS")),
        ("the run as JSON", c_string("ctl/query.c", "SQL_RUN_SHOW_JSON")),
    ]
    sid = c.sql("SELECT id FROM discovery_sources WHERE name = 'floor'")[0][0]
    res = {k: [] for k, _ in steps}
    for _ in range(n):
        conn = psycopg2.connect(c.pg_url)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        last = sched_ms(pid)
        res[steps[0][0]].append(last)
        run = None
        for label, q in steps[1:]:
            if "$1" in q:
                arg = "floor" if label == "look the source up" else (sid if run is None else run)
                cur.execute(q.replace("$1", "%s"), (arg,))
            else:
                cur.execute(q)
            rows = cur.fetchall() if cur.description else []
            if label == "insert the run":
                run = rows[0][0] if rows else c.sql(
                    "SELECT max(id) FROM discovery_runs WHERE source_id = %s", (sid,))[0][0]
            now = sched_ms(pid)
            res[label].append(now - last)
            last = now
        conn.close()
        c.wait_run(run, timeout=60)
    return [(k, statistics.median(v), min(v)) for k, v in res.items()]


def gin(c, rows):
    """Per inserted row and per lookup, ms, with and without a pending list."""
    c.sql("CREATE TABLE floor_chain (id bigserial PRIMARY KEY, chain text[] NOT NULL)")
    inter = "ab" * 32
    c.sql("INSERT INTO floor_chain (chain) SELECT ARRAY[md5(g::text) || md5((g + 1)::text), %s] "
          "FROM generate_series(1, 200000) g", (inter,))
    c.sql("CREATE INDEX floor_chain_gin ON floor_chain USING gin (chain) WITH (fastupdate = off)")
    c.sql("VACUUM ANALYZE floor_chain")
    conn = psycopg2.connect(c.pg_url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cur.execute("SET enable_seqscan = off")
    out = []
    base = 1000000
    for label, ddl in (("no pending list (fastupdate off)", "fastupdate = off"),
                       ("pending list of 1 MB (fastupdate on)",
                        "fastupdate = on, gin_pending_list_limit = 1024"),
                       ("no pending list, again", "fastupdate = off")):
        cur.execute("ALTER INDEX floor_chain_gin SET (%s)" % ddl)
        cur.execute("SELECT gin_clean_pending_list('floor_chain_gin')")
        t0 = sched_ms(pid)
        for i in range(rows // 254):
            cur.execute("INSERT INTO floor_chain (chain) SELECT ARRAY[md5((g * 7 + %s)::text) "
                        "|| md5(g::text), %s] FROM generate_series(1, 254) g", (base + i, inter))
        ins = (sched_ms(pid) - t0) / (rows // 254 * 254)
        base += rows
        t0 = sched_ms(pid)
        for i in range(200):
            cur.execute("SELECT EXISTS (SELECT 1 FROM floor_chain WHERE chain @> ARRAY[%s])",
                        ("absent%d" % i,))
            cur.fetchall()
        look = (sched_ms(pid) - t0) / 200
        out.append((label, ins, look))
    conn.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--rows", type=int, default=10160, help="rows inserted per GIN setting")
    a = ap.parse_args()
    load0 = os.getloadavg()
    cfg = {"worker.noop_executor": True, "worker.noop_sleep": "0s", "scheduler.tick": "5s"}
    with harness.Cluster(name="bench-pg-floors", config=cfg) as c:
        c.migrate()
        c.add_source_sql("floor")
        c.start_scheduler()
        c.start_worker()
        c.wait_for(lambda: c.group_info() is not None, 30, "the worker's consumer group")
        postmaster = c._servers["postgres"][0].pid
        cmds = whole_commands(c, postmaster, a.sessions)
        stmts = statements(c, a.sessions)
        gins = gin(c, a.rows)
    load1 = os.getloadavg()
    print("## PostgreSQL floors (bench/pg/floors.py)\n")
    print("Machine: %s, %d cores, %s. Load average %.1f at the start, %.1f at the end. Command: "
          "`bench/pg/floors.py --sessions %d --rows %d`.\n"
          % (platform.machine(), os.cpu_count(), platform.platform(), load0[0], load1[0],
             a.sessions, a.rows))
    print("A capctl command's own session, server CPU per command (the postmaster's reaped "
          "children, %d commands each, 10 ms ticks averaged):\n" % a.sessions)
    print("| command | server CPU ms |")
    print("|---|---|")
    for k, v in cmds.items():
        print("| %s | %.1f |" % (k, v))
    print("\nThe statements of `capctl source trigger --wait`, each session new (%d sessions; "
          "server CPU from /proc/PID/schedstat, the backend's exit not included):\n"
          % a.sessions)
    print("| step | median ms | min ms |")
    print("|---|---|---|")
    for k, med, mn in stmts:
        print("| %s | %.2f | %.2f |" % (k, med, mn))
    print("| all of them | %.2f | |" % sum(m for _, m, _ in stmts))
    print("\nThe chain index (GIN) on a table of 200,000 rows, %d rows inserted 254 at a time "
          "per setting, 200 lookups of absent fingerprints (enable_seqscan off):\n" % a.rows)
    print("| setting | ms per inserted row (table and its GIN) | ms per lookup |")
    print("|---|---|---|")
    for label, ins, look in gins:
        print("| %s | %.4f | %.3f |" % (label, ins, look))


if __name__ == "__main__":
    main()
