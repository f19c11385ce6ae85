"""CT monitor: a precertificate's identity comes from data the log signed (issue 12, item 7). Its
fingerprint is taken from extra_data (RFC 6962) or the data tile (static-ct), which no signature
covers, so the precertificate must be the leaf's: its TBSCertificate without the poison extension
equal to the one in the Merkle leaf. Precertificates issued by a Precertificate Signing
Certificate (the leaf then names the final CA as issuer, RFC 6962 3.2) are read and stored on both
kinds of log (the tiled one lists the PSC by fingerprint, fetched from issuer/<hex>); a log that
serves a rogue precertificate with an entry, here one whose fingerprint is managed (which would
hide ct_new_certificate), gets a ct_log_misbehaving finding and the rogue precertificate is not
stored, while the read goes on."""

import sys

import harness
from ctlog_util import TestLog, add_source, checkpoint, expected, sightings, trigger, wait_idle

ENTRIES = 400


def findings(c, sid, status):
    return c.sql("SELECT details->>'reason' FROM findings WHERE kind = 'ct_log_misbehaving' "
                 "AND subject_key = %s AND status = %s", ("source:%d" % sid, status))


def main():
    with harness.Cluster(name="ctprecert") as c, \
            TestLog(c.tmpdir, entries=ENTRIES, batch_max=100, seed=5, match_rate=0.3,
                    precert_rate=0.6, extra=["--psc-rate", "0.5"]) as log:
        c.capctl_ok("migrate")
        c.start_scheduler()
        c.start_worker()
        truth = log.truth()
        psc = [t for t in truth if t["match"] and t["psc"]]
        assert len(psc) >= 5, "the log should hold matching PSC precertificates (%d)" % len(psc)

        # --- PSC-issued precertificates are the leaf's, read and stored -----------------------
        sids = {}
        for name, url in (("pre-rfc", log.url), ("pre-tiled", log.tiled_url)):
            sid = add_source(c, name, "--domain", "example.com", "--domain",
                             "xn--bcher-kva.example", "--log", url, "--log-key", log.key_file,
                             "--backfill-from", "0")
            sids[name] = sid
            run = wait_idle(c, sid, timeout=180, until=lambda: (checkpoint(c, sid, url) or {}).get(
                "next_index") == ENTRIES)
            assert run["status"] == "succeeded", (name, run)
            got = [tuple(x) for x in sightings(c, sid)]
            assert got == expected(truth, ENTRIES), (name, len(got))
            assert not findings(c, sid, "open"), (name, findings(c, sid, "open"))
            rows = c.sql("SELECT count(*) FROM discovered_certificates WHERE is_precert AND "
                         "fingerprint_sha256 = ANY(%s)", ([t["fingerprint"] for t in psc],))
            assert rows[0][0] == len(psc), (name, rows, len(psc))
            print("%s: %d matches, %d precertificates issued by a PSC" % (name, len(got),
                                                                         len(psc)))

        # --- a rogue precertificate, managed, served with a matching entry ----------------------
        for name, url in (("pre-rfc", log.url), ("pre-tiled", log.tiled_url)):
            sid = sids[name]
            start = log.stats()["tree_size"]
            size = log.grow(60)
            truth = log.truth()
            i = next(t["index"] for t in truth[start:] if t["match"] and t["precert"])
            rogue = log.ctl("rogue?index=%d" % i)["fingerprint"]
            c.capctl_ok("managed", "add", rogue)
            log.clear()
            log.fault("precert_mismatch", count=1, arg=i)
            run, _ = trigger(c, name)
            log.clear()
            err = run["error"] or ""
            assert run["status"] == "failed" and "log misbehaving" in err and \
                ("entry %d: precertificate does not match" % i) in err, (name, run)
            f = findings(c, sid, "open")
            assert f and "entry %d" % i in f[0][0], (name, f)
            assert c.sql("SELECT count(*) FROM discovered_certificates WHERE "
                         "fingerprint_sha256 = %s", (rogue,))[0][0] == 0, "rogue stored"
            assert not c.sql("SELECT 1 FROM ct_sightings WHERE source_id = %s AND log_url = %s "
                             "AND log_index = %s", (sid, url, i)), "rogue sighting"
            # The read went on past it: everything else is stored, the checkpoint at the end.
            assert checkpoint(c, sid, url)["next_index"] == size, name
            got = [tuple(x) for x in sightings(c, sid)]
            want = [x for x in expected(truth, size) if x[0] != i]
            assert got == want, (name, len(got), len(want))
            run, _ = trigger(c, name)
            assert run["status"] == "succeeded", (name, run)
            assert not findings(c, sid, "open") and findings(c, sid, "resolved"), name
            print("%s: %s" % (name, err))
        print("ct precert e2e: ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        raise
