"""CT monitor crash safety: a worker killed with SIGKILL in the middle of a catch-up leaves the
checkpoint on a fully stored prefix; another worker reclaims the run and finishes it with no
gap and no loss (sightings equal the generator's ground truth exactly), for RFC 6962 and for
a tiled log."""

import signal
import sys
import time

import harness
from ctlog_util import (TestLog, add_source, checkpoint, expected, sightings, source_id,
                        wait_idle)

ENTRIES = 3000


def crash_and_resume(c, log, name, url, worker, slow):
    add_source(c, name, "--domain", "example.com",
                "--domain", "xn--bcher-kva.example", "--log", url, "--log-key", log.key_file,
                "--backfill-from", "0")
    sid = source_id(c, name)
    # Slow answers keep the run busy long enough to be killed with part of it stored.
    log.fault("slow", count=40, arg=slow)

    def partly():
        cp = checkpoint(c, sid, url)
        return cp and 0 < cp["next_index"] < ENTRIES
    c.wait_for(partly, timeout=90, what="%s checkpoint part way" % name)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    at_kill = checkpoint(c, sid, url)["next_index"]
    # Everything below the checkpoint is stored, nothing is missing below it.
    got = [tuple(x) for x in sightings(c, sid)]
    want_prefix = expected(log.truth(), at_kill)
    assert [x for x in got if x[0] < at_kill] == want_prefix, (name, at_kill)
    log.clear()
    w2 = c.start_worker()
    wait_idle(c, sid, timeout=180,
              until=lambda: (checkpoint(c, sid, url) or {}).get("next_index") == ENTRIES)
    runs = c.sql_dicts("SELECT id, status, attempts, error FROM discovery_runs WHERE "
                       "source_id = %s ORDER BY id", (sid,))
    assert all(r["status"] == "succeeded" for r in runs), runs
    assert any(r["attempts"] >= 2 for r in runs), "the killed run was reclaimed: %s" % runs
    got = [tuple(x) for x in sightings(c, sid)]
    want = expected(log.truth(), ENTRIES)
    assert got == want, (name, len(got), len(want), sorted(set(want) - set(got))[:5])
    cp = checkpoint(c, sid, url)
    assert cp["backlog"] == 0 and cp["verified"] and cp["has_frontier"], cp
    print("%s: killed at checkpoint %d, resumed to %d with %d matches" % (
        name, at_kill, ENTRIES, len(want)))
    return w2


def main():
    with harness.Cluster(name="ctresume", config={"ct.run_budget": 100000}) as c, \
            TestLog(c.tmpdir, entries=ENTRIES, batch_max=50, seed=7) as log:
        c.capctl_ok("migrate")
        c.start_scheduler()
        w = c.start_worker()
        w = crash_and_resume(c, log, "resume-rfc", log.url, w, 0.4)
        crash_and_resume(c, log, "resume-tiled", log.tiled_url, w, 1.5)
        print("ct resume e2e: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
