"""One network_scan run across many workers, in a network namespace of the test's own: a /22
of 127.x (an nftables table drops the SYNs of every address but eight TLS servers, one per
shard) with scan.shard_targets 256 and scan.shard_size 128, so a run is eight shards.

1. Two workers share the run; one is killed with SIGKILL in the middle of a shard. The run
   still counts every target once (targets done = targets total = 1024), observes each live
   endpoint exactly once, its shards' slices tile the range, and the killed shard ran again.
2. Redis loses everything (FLUSHALL) in the middle of a run: no shard is lost, the run ends
   with every target counted, and the finding of an endpoint whose certificate changed (in a
   scanned slice) resolves.
3. A run whose later shards fail (the source shrank under it) ends partial, names the slices
   not scanned, and resolves nothing from them: the finding of an endpoint in such a slice
   stays open although its certificate changed.
"""

import signal
import time

import harness
import tlsfleet

harness.in_own_netns("the shards test (nftables)")

RANGE = "127.81.0.0/22"  # 1024 addresses, one port: 1024 targets
TARGETS = 1024
SHARD = 128
SHARDS = TARGETS // SHARD


def shard_rows(c, run_id):
    return c.sql_dicts("SELECT * FROM discovery_run_shards WHERE run_id = %s ORDER BY shard",
                       (run_id,))


def check_tiling(rows):
    """The slices are contiguous, in order, and cover the targets exactly."""
    at = 0
    for r in rows:
        assert r["first_target"] == at, (r["shard"], r["first_target"], at)
        assert r["end_target"] > r["first_target"], r
        at = r["end_target"]
    assert at == TARGETS, "slices end at %d, want %d" % (at, TARGETS)


def observations(c, run_id):
    return c.sql("SELECT host(e.address), count(*) FROM endpoint_observations o "
                 "JOIN endpoints e ON e.id = o.endpoint_id WHERE o.run_id = %s "
                 "GROUP BY 1 ORDER BY 1", (run_id,))


def finding(c, fp):
    rows = c.sql("SELECT status FROM findings WHERE kind = 'self_signed' "
                 "AND subject_key = %s ORDER BY id DESC LIMIT 1", ("cert:" + fp,))
    return rows[0][0] if rows else None


def main():
    with harness.Cluster(name="shards", config={
            "network.allow_loopback": True,
            "scheduler.tick": "1s",
            "scheduler.requeue_after": "3s",
            "worker.reclaim_idle": "3s",
            "worker.max_jobs": 4,
            "scan.shard_targets": 256,
            "scan.shard_size": SHARD,
            "scan.connect_rate": 150,
            "logging.level": "info"}) as c:
        c.migrate()
        fleet = tlsfleet.Fleet(c.tmpdir, base="127.81.0.0")
        # one live server per shard, at offset 5 of its slice; the first and the last are
        # self-signed (a self_signed finding on each certificate)
        live = []
        self_signed = {}
        for i in range(SHARDS):
            addr = "127.81.%d.%d" % ((i * SHARD + 5) // 256, (i * SHARD + 5) % 256)
            ss = i in (0, SHARDS - 1)
            cert = fleet.cert("s%d.shards.test" % i, self_signed=ss)
            srv = fleet.tls("s%d" % i, cert, addr=addr)
            live.append(srv)
            if ss:
                self_signed[i] = cert
        harness.nft("""
table inet capshards {
    set answer { type ipv4_addr; elements = { %s } }
    chain input {
        type filter hook input priority 0; policy accept;
        ip daddr %s ip daddr != @answer tcp flags & (syn | ack) == syn drop
    }
}
""" % (", ".join(s.addr for s in live), RANGE))
        fleet.start()
        sid = c.add_source_sql("wide", cidrs=[RANGE], ports=[fleet.port], timeout_ms=1500,
                               concurrency=8)
        c.start_scheduler()
        a = c.start_worker(label="worker-a")
        b = c.start_worker(label="worker-b")

        # 1. a worker killed with SIGKILL in the middle of a shard
        run1 = c.insert_run_sql(sid)
        c.wait_for(lambda: c.run_row(run1)["shards"] == SHARDS, timeout=60,
                   what="run %d to be split into %d shards" % (run1, SHARDS))
        a_name = c.wait_for(lambda: c.sql(
            "SELECT sh.worker FROM discovery_run_shards sh WHERE sh.run_id = %s "
            "AND sh.status = 'running' AND sh.items_done > 0 AND sh.worker LIKE %s LIMIT 1",
            (run1, "%-" + str(a.pid) + "-%")), timeout=60,
            what="worker-a to be in the middle of a shard")[0][0]
        killed = c.sql("SELECT shard FROM discovery_run_shards WHERE run_id = %s "
                       "AND worker = %s AND status = 'running'", (run1, a_name))
        assert c.stop(a, sig=signal.SIGKILL) == -signal.SIGKILL
        # the live row shows progress summed over the shards while it runs
        mid = c.run_row(run1)
        assert mid["status"] == "running" and mid["targets_total"] == TARGETS, \
            harness._short_row(mid)
        done = c.wait_run(run1, timeout=180)
        rows = shard_rows(c, run1)
        assert done["status"] == "succeeded", harness._short_row(done)
        assert done["targets_done"] == TARGETS and done["targets_total"] == TARGETS, \
            harness._short_row(done)
        assert done["items_done"] == TARGETS and done["ok_count"] == SHARDS, \
            harness._short_row(done)
        assert [r["status"] for r in rows] == ["succeeded"] * SHARDS, \
            [(r["shard"], r["status"], r["error"]) for r in rows]
        check_tiling(rows)
        assert sum(r["items_done"] for r in rows) == TARGETS, [r["items_done"] for r in rows]
        for (k,) in killed:
            r = rows[k - 1]
            assert r["attempts"] >= 2 and r["worker"] != a_name, \
                "killed shard %d: attempts %d, worker %s" % (k, r["attempts"], r["worker"])
        assert killed, "worker-a held no running shard when killed"
        obs = observations(c, run1)
        assert obs == sorted((s.addr, 1) for s in live), obs
        stats = done["stats"]
        assert stats.get("silent") == TARGETS - SHARDS, stats
        assert c.sql("SELECT count(*) FROM drift_events WHERE run_id = %s", (run1,))[0][0] == 0
        assert done["new_certificates"] >= SHARDS, harness._short_row(done)
        fps = {i: c.sql("SELECT o.fingerprint_sha256 FROM endpoint_observations o JOIN endpoints e "
                        "ON e.id = o.endpoint_id WHERE o.run_id = %s AND host(e.address) = %s",
                        (run1, live[i].addr))[0][0] for i in self_signed}
        for i, fp in fps.items():
            assert finding(c, fp) == "open", (i, finding(c, fp))
        # capctl shows the shards: range, worker, status, attempts, progress
        out = c.capctl_ok("runs", "show", str(run1)).stdout
        assert "shards:" in out and "%d-%d" % (TARGETS - SHARD, TARGETS - 1) in out, out
        shown = c.capctl_json("runs", "show", str(run1))
        shown = shown[0] if isinstance(shown, list) else shown
        assert [x["shard"] for x in shown["shard_list"]] == list(range(1, SHARDS + 1)), shown
        assert all(x["status"] == "succeeded" and x["worker"] for x in shown["shard_list"]), shown
        assert sum(x["targets_done"] for x in shown["shard_list"]) == TARGETS, shown
        print("ok: run %d in %d shards over 2 workers, shard(s) %s re-run after SIGKILL, "
              "%d targets counted once" % (run1, SHARDS, [k for (k,) in killed], TARGETS))

        wc = c.start_worker(label="worker-c")
        # 2. FLUSHALL in the middle of a run; the first endpoint's certificate changed
        fleet.swap(live[0], fleet.cert("s0b.shards.test"))
        run2 = c.insert_run_sql(sid)
        c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_run_shards WHERE run_id = %s "
                                 "AND status <> 'queued'", (run2,))[0][0] >= 2, timeout=60,
                   what="two shards of run %d to be claimed" % run2)
        c.redis().flushall()
        flushed_at = time.time()
        done = c.wait_run(run2, timeout=240)
        rows = shard_rows(c, run2)
        assert done["status"] == "succeeded", (harness._short_row(done),
                                               [(r["shard"], r["status"], r["error"]) for r in rows])
        assert done["targets_done"] == TARGETS == done["targets_total"], harness._short_row(done)
        assert observations(c, run2) == sorted((s.addr, 1) for s in live)
        assert finding(c, fps[0]) == "resolved", finding(c, fps[0])
        assert finding(c, fps[SHARDS - 1]) == "open", finding(c, fps[SHARDS - 1])
        print("ok: run %d survived FLUSHALL (%.1fs after it), resolved the changed endpoint's "
              "finding" % (run2, time.time() - flushed_at))

        # 3. later shards fail: the source shrinks to its first half while the run goes (one
        # worker running one job at a time, so the shards after the first wait their turn)
        fleet.swap(live[SHARDS - 1], fleet.cert("s7b.shards.test"))
        for p in (b, wc):
            assert c.stop(p) == 0
        c.start_worker(label="worker-d", config_overrides={"worker.max_jobs": 1})
        run3 = c.insert_run_sql(sid)
        c.wait_for(lambda: c.run_row(run3)["shards"] == SHARDS, timeout=60,
                   what="run %d to be split" % run3)
        c.sql("UPDATE discovery_sources SET spec = jsonb_set(spec, '{cidrs}', "
              "'[\"127.81.0.0/23\"]') WHERE id = %s", (sid,))
        done = c.wait_run(run3, timeout=240)
        rows = shard_rows(c, run3)
        failed = [r for r in rows if r["status"] == "failed"]
        assert done["status"] == "partial", harness._short_row(done)
        assert failed and all(r["first_target"] >= 512 or r["end_target"] > 512 for r in failed), \
            [(r["shard"], r["status"]) for r in rows]
        last = rows[-1]
        assert last["status"] == "failed" and "changed since the run was split" in last["error"], \
            last
        assert "targets %d-%d not scanned" % (last["first_target"], last["end_target"] - 1) \
            in done["error"], done["error"]
        # the last endpoint was not scanned: its old certificate's finding stays open
        assert finding(c, fps[SHARDS - 1]) == "open", finding(c, fps[SHARDS - 1])
        assert c.sql("SELECT count(*) FROM endpoint_observations o JOIN endpoints e "
                     "ON e.id = o.endpoint_id WHERE o.run_id = %s AND host(e.address) = %s",
                     (run3, live[SHARDS - 1].addr))[0][0] == 0
        print("ok: run %d partial with %d failed slices named; nothing resolved from them"
              % (run3, len(failed)))

        # 4. capctl source trigger --wait follows the shards as they advance
        r = c.capctl("source", "trigger", "wide", "--wait", "--timeout", "3m", timeout=240)
        assert r.returncode == 0, r.stdout + r.stderr
        progress = [l for l in r.stderr.splitlines() if "shards" in l and "targets" in l]
        assert progress, r.stderr
        assert "shards:" in r.stdout and "succeeded" in r.stdout, r.stdout
        print("ok: trigger --wait printed %d progress lines, e.g. %r" % (len(progress),
                                                                         progress[-1]))
        c.check_sanitizers()


if __name__ == "__main__":
    main()
