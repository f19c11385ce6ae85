"""CT monitor against a hostile log (issue 12, item 3): every bomb a get-entries answer can be (a
gzip body that decodes to 24 MiB of {"entries":[{},{},...]}, 6 MiB of the same uncompressed,
under the body cap of a 100-entry request, which json-c would grow about 264 times, arrays nested
100,000 deep, and more entries than asked for) is refused before any JSON tree is built: the
worker that read it survives with its peak RSS (VmHWM) bounded, the other worker too, the log
gets a ct_log_misbehaving finding, the checkpoint stays on what was stored, and the next run
reads on and resolves the finding."""

import sys

import harness
from ctlog_util import TestLog, add_source, checkpoint, expected, sightings, trigger, wait_idle

ENTRIES = 300
# Peak RSS allowed to a worker, in MiB: generous for ASan, and far below what the flood made of
# it before the structural pre-check (over 1.5 GiB).
HWM_BOUND_MB = 256
BOMBS = [
    ("gzipbomb", 24, "decompression cap"),
    ("flood", 6 << 20, "entry 0 lacks its leaf_input"),
    ("deep", 100000, "entry that is not an object"),
    ("many", 1, "more than the 100 entries asked for"),
]


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for process %d" % pid)


def misbehaving(c, sid, status="open"):
    return c.sql("SELECT severity, details->>'reason' FROM findings WHERE "
                 "kind = 'ct_log_misbehaving' AND subject_key = %s AND status = %s",
                 ("source:%d" % sid, status))


def main():
    with harness.Cluster(name="cthostile", config={"ct.run_budget": 100000}) as c, \
            TestLog(c.tmpdir, entries=ENTRIES, batch_max=100, seed=11, match_rate=0.3) as log:
        c.capctl_ok("migrate")
        c.start_scheduler()
        workers = [c.start_worker(), c.start_worker()]
        sid = add_source(c, "hostile", "--domain", "example.com", "--domain",
                         "xn--bcher-kva.example", "--log", log.url,
                         "--log-key", log.key_file, "--backfill-from", "0")
        wait_idle(c, sid, timeout=180, until=lambda: (checkpoint(c, sid, log.url) or {}).get(
            "next_index") == ENTRIES)
        base = {w.pid: vm_hwm_kb(w.pid) // 1024 for w in workers}
        print("peak RSS after the first read (MiB): %s" % base)
        for kind, arg, msg in BOMBS:
            # 100 new entries: the run asks for exactly 100, the body cap is about 6.4 MiB.
            size = log.grow(100)
            before = checkpoint(c, sid, log.url)["next_index"]
            log.clear()
            log.fault(kind, count=1, arg=arg)
            run, _ = trigger(c, "hostile")
            log.clear()
            for w in workers:
                c.assert_running(w)
            err = run["error"] or ""
            assert run["status"] == "failed" and "log misbehaving" in err and msg in err, \
                (kind, run)
            f = misbehaving(c, sid)
            assert f and f[0][0] == "high" and msg in f[0][1], (kind, f)
            cp = checkpoint(c, sid, log.url)
            assert cp["next_index"] == before, (kind, before, cp)
            hwm = {w.pid: vm_hwm_kb(w.pid) // 1024 for w in workers}
            assert all(v < HWM_BOUND_MB for v in hwm.values()), \
                "%s: peak RSS %s MiB, bound %d" % (kind, hwm, HWM_BOUND_MB)
            # The log behaves again: read on, the finding resolved.
            run, _ = trigger(c, "hostile")
            assert run["status"] == "succeeded", (kind, run)
            assert checkpoint(c, sid, log.url)["next_index"] == size, kind
            assert not misbehaving(c, sid) and misbehaving(c, sid, "resolved"), kind
            print("%s: %s; peak RSS %s MiB" % (kind, err, hwm))
        size = log.stats()["tree_size"]
        got = [tuple(x) for x in sightings(c, sid)]
        assert got == expected(log.truth(), size), (len(got), len(expected(log.truth(), size)))
        for w in workers:
            c.assert_running(w)
        print("ct hostile log e2e: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        raise
