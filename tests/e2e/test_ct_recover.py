"""CT monitor: a checkpoint never stays stuck (issue 12, item 8). A log that serves one entry
other than its tree's in a run cut short by ct.run_budget used to leave a wrong frontier in the
checkpoint: every later run then failed at the tree size and went back to that same frontier.
Now the end of a run proves the frontier it built (the log's inclusion proof, or its hash tiles,
against the signed root), and a wrong one goes back to where the run started, which was proven,
so the next run reads the entries again and the source recovers by itself, RFC 6962 and tiled.
A wrong frontier already stored (a worker died mid-read, or an older version left it) is found
before the read and replaced by the proven one."""

import struct
import sys

import harness
from ctlog_util import TestLog, add_source, checkpoint, expected, sightings, trigger, wait_idle

ENTRIES = 1200
BUDGET = 500
FORGED = 100


def findings(c, sid, status=None):
    q = ("SELECT status, details->>'reason' FROM findings WHERE kind = 'ct_log_misbehaving' "
         "AND subject_key = %s")
    rows = c.sql(q + " ORDER BY id", ("source:%d" % sid,))
    return [r for r in rows if status is None or r[0] == status]


def recover(c, name, sid, url, size, tries=6):
    """Runs name (as its schedule would) until its checkpoint is at size after a run that
    succeeded. Returns the number of runs it took, or fails."""
    runs = 0
    for _ in range(tries):
        run = wait_idle(c, sid, timeout=240)
        cp = checkpoint(c, sid, url)
        if cp and cp["next_index"] == size and run["status"] == "succeeded":
            return c.sql("SELECT count(*) FROM discovery_runs WHERE source_id = %s", (sid,))[0][0]
        print("%s: checkpoint %s, last run %s: %s" % (name, cp and cp["next_index"],
                                                      run["status"], run["error"]))
        trigger(c, name, timeout=240)
        runs += 1
    raise AssertionError("%s: stuck at %s after %d more runs" % (
        name, checkpoint(c, sid, url), runs))


def main():
    with harness.Cluster(name="ctrecover", config={"ct.run_budget": BUDGET}) as c, \
            TestLog(c.tmpdir, entries=ENTRIES, batch_max=100, seed=3) as log:
        c.capctl_ok("migrate")
        c.start_scheduler()
        c.start_worker()
        truth = log.truth()
        for name, url in (("forged-rfc", log.url), ("forged-tiled", log.tiled_url)):
            # --- one forged entry in the first run, which the budget ends before the tree size
            log.clear()
            log.fault("forge", count=1, arg=FORGED)
            sid = add_source(c, name, "--domain", "example.com", "--domain",
                             "xn--bcher-kva.example", "--log", url, "--log-key", log.key_file,
                             "--backfill-from", "0")
            n = recover(c, name, sid, url, ENTRIES)
            assert log.stats()["faults"] >= 1
            f = findings(c, sid)
            assert f and all(s == "resolved" for s, _ in f), (name, f)
            assert any("do not hash to the log's tree" in r for _, r in f), (name, f)
            got = [tuple(x) for x in sightings(c, sid)]
            assert got == expected(truth, ENTRIES), (name, len(got))
            cp = checkpoint(c, sid, url)
            assert cp["backlog"] == 0 and cp["has_frontier"], cp
            print("%s: recovered from a forged entry %d in %d runs (%s)" % (name, FORGED, n,
                                                                          f[0][1]))

            # --- a wrong frontier stored below the tree size is replaced before the read ------
            bogus = struct.pack(">Q", 600) + bytes(range(32)) * bin(600).count("1")
            c.sql("UPDATE ct_checkpoints SET next_index = 600, frontier = %s "
                  "WHERE source_id = %s AND log_url = %s", (bogus, sid, url))
            before = len(findings(c, sid))
            trigger(c, name, timeout=240)
            recover(c, name, sid, url, ENTRIES)
            f = findings(c, sid)
            assert len(f) > before and all(s == "resolved" for s, _ in f), (name, f)
            assert any("as read before do not hash to the log's tree" in r for _, r in f[before:]), \
                (name, f[before:])
            got = [tuple(x) for x in sightings(c, sid)]
            assert got == expected(truth, ENTRIES), (name, len(got))
            print("%s: a wrong stored frontier replaced (%s)" % (name, f[-1][1]))
        print("ct recover e2e: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        raise
