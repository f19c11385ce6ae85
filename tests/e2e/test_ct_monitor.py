"""CT monitor end to end: a ct_log source reads the project's test CT log (RFC 6962 and tiled),
stores exactly the matching certificates and precertificates with their sightings and findings,
splits a long catch-up across runs, resumes across runs with consistency checks, and reports a
misbehaving log without moving its checkpoint."""

import sys

import harness
from ctlog_util import (TestLog, add_source, checkpoint, expected, latest_run, sightings,
                        source_id, trigger, wait_idle)

ENTRIES = 1200


def check_exact(c, sid, log, upto, what):
    got = [(i, fp) for i, fp in sightings(c, sid)]
    want = expected(log.truth(), upto)
    assert got == want, "%s: sightings differ: %d stored, %d expected; missing %s; extra %s" % (
        what, len(got), len(want), sorted(set(want) - set(got))[:5], sorted(set(got) - set(want))[:5])
    return want


def main():
    with harness.Cluster(name="ct", config={"ct.run_budget": 500}) as c, \
            TestLog(c.tmpdir, entries=ENTRIES, batch_max=100) as log:
        c.capctl_ok("migrate")
        c.start_scheduler()
        worker = c.start_worker()

        # --- RFC 6962, backfill from 0, budget splits the catch-up into runs -----------------
        # A matching certificate CertAutoPilot already manages gets no ct_new_certificate.
        managed_fp = next(t["fingerprint"] for t in log.truth() if t["match"] and not t["precert"])
        c.capctl_ok("managed", "add", managed_fp)
        sid = add_source(c, "shadow", "--domain", "example.com", "--domain",
                         "XN--BCHER-KVA.example", "--log", log.url, "--log-key", log.key_file,
                         "--expected-issuer", "Good CA", "--backfill-from", "0")
        c.wait_for(lambda: c.sql("SELECT 1 FROM discovery_runs WHERE source_id = %s", (sid,)),
                   timeout=30, what="first run queued")
        done = lambda: (checkpoint(c, sid, log.url) or {}).get("next_index") == ENTRIES
        wait_idle(c, sid, timeout=180, until=done)
        runs = c.sql_dicts("SELECT id, status, trigger, error FROM discovery_runs "
                           "WHERE source_id = %s ORDER BY id", (sid,))
        assert all(r["status"] == "succeeded" for r in runs), runs
        assert len(runs) >= 3, "a 1200-entry catch-up with budget 500 takes 3 runs: %s" % runs
        cp = checkpoint(c, sid, log.url)
        assert cp["next_index"] == ENTRIES and cp["tree_size"] == ENTRIES, cp
        assert cp["backlog"] == 0 and cp["verified"] and cp["has_frontier"], cp
        want = check_exact(c, sid, log, ENTRIES, "rfc6962 backfill")
        assert len(want) > 50, "the generator should give enough matches (%d)" % len(want)

        # Tricky names never matched; matches include CN-only and IDN names.
        truth = log.truth()
        stored = {fp for _, fp in sightings(c, sid)}
        for t in truth:
            if any(n in ("notexample.com", "example.com.evil.net") for n in t["names"]) and \
                    not t["match"]:
                assert t["fingerprint"] not in stored, t
        assert any(t["cn_only"] and t["match"] for t in truth)
        assert any(t["fingerprint"] in stored and t["cn_only"] for t in truth)
        assert any(t["fingerprint"] in stored and
                   any("xn--bcher-kva" in n.lower() for n in t["names"]) for t in truth)

        # Inventory rows: precerts flagged, fingerprints are of the precertificate.
        pre = c.sql("SELECT count(*) FROM discovered_certificates WHERE is_precert")[0][0]
        want_pre = sum(1 for t in truth if t["match"] and t["precert"])
        assert pre == want_pre, (pre, want_pre)

        # Findings: one ct_new_certificate per match; unexpected issuer for the other CA.
        newf = c.sql("SELECT fingerprint_sha256, details->>'issuer' FROM findings "
                     "WHERE kind = 'ct_new_certificate' AND source_id = %s", (sid,))
        assert managed_fp in {fp for _, fp in want}
        assert sorted(f for f, _ in newf) == sorted(fp for _, fp in want if fp != managed_fp), \
            "ct_new_certificate"
        assert all("CtLog Test" in (iss or "") for _, iss in newf), newf[:3]
        unexp = sorted(r[0] for r in c.sql(
            "SELECT fingerprint_sha256 FROM findings WHERE kind = 'ct_unexpected_issuer' "
            "AND severity = 'high' AND source_id = %s", (sid,)))
        want_unexp = sorted(t["fingerprint"] for t in truth if t["match"] and "Other" in t["issuer"])
        assert unexp == want_unexp, (len(unexp), len(want_unexp))
        print("rfc6962 backfill: %d runs, %d matches" % (len(runs), len(want)))

        # --- growth: resume from the checkpoint, consistency proof, new matches ------------
        size = log.grow(150)
        run, _ = trigger(c, "shadow")
        assert run["status"] == "succeeded", run
        assert checkpoint(c, sid, log.url)["next_index"] == size
        check_exact(c, sid, log, size, "after growth")
        assert log.stats()["consistency"] >= 1

        # --- 429 with Retry-After is honoured; the run still succeeds -----------------------
        size = log.grow(100)
        log.fault("429", count=2, arg=1)
        run, _ = trigger(c, "shadow")
        assert run["status"] == "succeeded", run
        check_exact(c, sid, log, size, "after 429")

        # --- each fault is a clear error; the checkpoint stays on stored entries ------------
        faults = [("500", 20, None, "HTTP 500"), ("truncated", 1, None, "malformed JSON"),
                  ("badb64", 1, None, "base64"), ("badleaf", 1, None, "leaf"),
                  ("longleaf", 1, None, "trailing bytes"), ("badtype", 1, None, "entry type 7"),
                  ("huge", 4, None, "response larger than"),
                  ("slow", 50, 60, "stalled connection")]
        for kind, count, arg, msg in faults:
            size = log.grow(100)
            before = checkpoint(c, sid, log.url)["next_index"]
            log.clear()
            log.fault(kind, count=count, arg=arg)
            run, _ = trigger(c, "shadow")
            log.clear()
            assert run["status"] == "failed", (kind, run)
            assert msg in (run["error"] or ""), (kind, run["error"])
            cp = checkpoint(c, sid, log.url)
            assert before <= cp["next_index"] < size, (kind, before, cp)
            check_exact(c, sid, log, cp["next_index"], "after fault %s" % kind)
            run, _ = trigger(c, "shadow")
            assert run["status"] == "succeeded", (kind, run)
            assert checkpoint(c, sid, log.url)["next_index"] == size
            check_exact(c, sid, log, size, "recovered from %s" % kind)
            print("fault %s: %s" % (kind, c.sql("SELECT error FROM discovery_runs WHERE "
                                                 "source_id = %s AND status = 'failed' ORDER BY "
                                                 "id DESC LIMIT 1", (sid,))[0][0]))

        # --- misbehaviour: forked tree, bad signature, shrinking tree -----------------------
        for kind, msg in (("fork", "consistency"), ("badsig", "signature"), ("shrink", "shrank")):
            size = log.grow(20)
            cp_before = checkpoint(c, sid, log.url)
            log.clear()
            log.fault(kind, count=1, arg=100)
            run, _ = trigger(c, "shadow")
            log.clear()
            assert run["status"] == "failed", (kind, run)
            assert "misbehaving" in run["error"] and msg in run["error"], (kind, run["error"])
            f = c.sql("SELECT severity, details->>'reason' FROM findings WHERE "
                      "kind = 'ct_log_misbehaving' AND subject_key = %s AND status = 'open'",
                      ("source:%d" % sid,))
            assert f and f[0][0] == "high" and msg in f[0][1], (kind, f)
            cp = checkpoint(c, sid, log.url)
            assert cp["next_index"] == cp_before["next_index"], (kind, cp_before, cp)
            # the log behaves again: the next run reads it and resolves the finding
            run, _ = trigger(c, "shadow")
            assert run["status"] == "succeeded", (kind, run)
            f = c.sql("SELECT status, resolved_at IS NOT NULL FROM findings WHERE "
                      "kind = 'ct_log_misbehaving' AND subject_key = %s ORDER BY id DESC LIMIT 1",
                      ("source:%d" % sid,))
            assert f and f[0][0] == "resolved" and f[0][1], (kind, f)
        check_exact(c, sid, log, log.stats()["tree_size"], "after misbehaviour")

        # --- static-ct (tiled) with protocol probing -----------------------------------------
        add_source(c, "tiled", "--domain", "example.com",
                    "--domain", "XN--BCHER-KVA.example", "--log", log.tiled_url, "--log-key",
                    log.key_file, "--backfill-from", "0")
        tid = source_id(c, "tiled")
        c.wait_for(lambda: c.sql("SELECT 1 FROM discovery_runs WHERE source_id = %s", (tid,)),
                   timeout=30, what="tiled run queued")
        size = log.stats()["tree_size"]
        run = wait_idle(c, tid, timeout=180, until=lambda: (checkpoint(
            c, tid, log.tiled_url) or {}).get("next_index") == size)
        assert run["status"] == "succeeded", run
        cp = checkpoint(c, tid, log.tiled_url)
        assert cp["next_index"] == size and cp["verified"], cp
        check_exact(c, tid, log, size, "tiled backfill")
        size = log.grow(300)
        run, _ = trigger(c, "tiled")
        assert run["status"] == "succeeded", run
        check_exact(c, tid, log, size, "tiled after growth")
        log.fault("fork", count=1)
        log.grow(10)
        run, _ = trigger(c, "tiled")
        log.clear()
        assert run["status"] == "failed" and "misbehaving" in run["error"], run

        # --- a new source starts at the current size, then reads only what is new ----------
        add_source(c, "fresh", "--domain", "example.com",
                    "--domain", "xn--bcher-kva.example", "--log", log.url, "--log-key", log.key_file)
        fid = source_id(c, "fresh")
        c.wait_for(lambda: c.sql("SELECT 1 FROM discovery_runs WHERE source_id = %s", (fid,)),
                   timeout=30, what="fresh run queued")
        run = wait_idle(c, fid)
        assert run["status"] == "succeeded", run
        start = log.stats()["tree_size"]
        assert checkpoint(c, fid, log.url)["next_index"] == start
        assert sightings(c, fid) == []
        end = log.grow(200)
        run, _ = trigger(c, "fresh")
        assert run["status"] == "succeeded", run
        got = sightings(c, fid)
        want = [x for x in expected(log.truth(), end) if x[0] >= start]
        got = [tuple(x) for x in got]
        assert got == want, (start, end, sorted(set(want) - set(got)), sorted(set(got) - set(want)))
        cp = checkpoint(c, fid, log.url)
        assert cp["has_frontier"] and cp["next_index"] == end, cp

        # --- backfill from the middle: the audit path of the first entry gives the frontier,
        # so the root of the whole tree is still checked when the read reaches the tree head.
        for name, url, proto in (("mid", log.url, "rfc6962"),
                                 ("mid-tiled", log.tiled_url, "static-ct")):
            add_source(c, name, "--domain", "example.com",
                       "--domain", "xn--bcher-kva.example", "--log", url, "--log-key",
                       log.key_file, "--backfill-from", "333", "--log-protocol", proto)
            mid = source_id(c, name)
            size = log.stats()["tree_size"]
            run = wait_idle(c, mid, timeout=120, until=lambda: (checkpoint(
                c, mid, url) or {}).get("next_index") == size)
            assert run["status"] == "succeeded", run
            cp = checkpoint(c, mid, url)
            assert cp["has_frontier"] and cp["verified"], cp
            got = [tuple(x) for x in sightings(c, mid)]
            want = [x for x in expected(log.truth(), size) if x[0] >= 333]
            assert got == want, (name, len(got), len(want))

        # --- two logs in one source: one misbehaves, the other is read; the run is partial --
        log.clear()
        log.fault("badsig", count=1)
        two = add_source(c, "two", "--domain", "example.com", "--domain",
                         "xn--bcher-kva.example", "--log", log.url, "--log", log.tiled_url,
                         "--log-key", log.key_file, "--backfill-from", "0")
        size = log.stats()["tree_size"]
        run = wait_idle(c, two, until=lambda: (checkpoint(c, two, log.tiled_url) or {}).get(
            "next_index") == size)
        log.clear()
        # (ct.run_budget 500: the tiled log takes several runs; the first one met the fault.)
        first = c.sql_dicts("SELECT status, error FROM discovery_runs WHERE source_id = %s "
                            "ORDER BY id LIMIT 1", (two,))[0]
        assert first["status"] == "partial", first
        assert log.url in first["error"] and "signature" in first["error"] and \
            log.tiled_url not in first["error"], first["error"]
        assert run["status"] == "succeeded", run
        got = c.sql("SELECT log_index, fingerprint_sha256 FROM ct_sightings WHERE source_id = %s "
                    "AND log_url = %s ORDER BY log_index", (two, log.tiled_url))
        assert [tuple(x) for x in got] == expected(log.truth(), size)
        # the later runs read both logs cleanly: the bad signature's finding is resolved
        f = c.sql("SELECT status FROM findings WHERE kind = 'ct_log_misbehaving' "
                  "AND subject_key = %s", ("source:%d" % two,))
        assert [x[0] for x in f] == ["resolved"], f

        # --- a log without a key is read, its checkpoint marked unverified -----------------
        nsid = add_source(c, "nokey", "--domain", "example.com", "--domain",
                          "xn--bcher-kva.example", "--log", log.url, "--backfill-from", "0")
        size = log.stats()["tree_size"]
        run = wait_idle(c, nsid, until=lambda: (checkpoint(c, nsid, log.url) or {}).get(
            "next_index") == size)
        assert run["status"] == "succeeded", run
        cp = checkpoint(c, nsid, log.url)
        assert not cp["verified"] and cp["has_frontier"], cp
        assert [tuple(x) for x in sightings(c, nsid)] == expected(log.truth(), size)

        # --- plain http needs network.allow_loopback; the network policy guards every
        # connection: loopback refused without it, a metadata address always (capctl refuses
        # to save one, so it is written with SQL as another client could) --------------------
        c.stop(worker)
        sth_calls = log.stats()["get-sth"]
        worker = c.start_worker(config_overrides={"network.allow_loopback": False})
        hsid = add_source(c, "plainhttp", "--domain", "example.com", "--log", log.url)
        run = wait_idle(c, hsid)
        assert run["status"] == "failed" and "allow_loopback" in (run["error"] or ""), run
        lsid = add_source(c, "loopback", "--domain", "example.com", "--log",
                          "https://localhost:%d/" % log.port)
        run = wait_idle(c, lsid)
        assert run["status"] == "failed" and "network policy" in (run["error"] or ""), run
        c.sql("INSERT INTO discovery_sources (name, type, domains, log_urls) VALUES "
              "('meta', 'ct_log', '{example.com}', '{https://169.254.169.254/ct/}')")
        msid = source_id(c, "meta")
        c.wait_for(lambda: c.sql("SELECT schedule_judged IS NOT NULL FROM discovery_sources "
                                 "WHERE id = %s", (msid,))[0][0], timeout=30, what="judged")
        c.capctl_ok("source", "trigger", "meta")
        run = wait_idle(c, msid)
        assert run["status"] == "failed" and "network policy" in (run["error"] or "") and \
            "169.254" in run["error"], run
        assert log.stats()["get-sth"] == sth_calls, "no request may reach the log"
        print("policy: %s" % run["error"])
        print("ct monitor e2e: ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
