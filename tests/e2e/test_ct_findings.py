"""CT monitor end to end: a matching certificate or precertificate found in a CT log gets the
certificate findings the network scan raises (expired, weak_key, pqc_vulnerable, ...) besides the
ct_* ones; entries that do not match get none; a precertificate whose final certificate is
managed still gets them (without the unmanaged-only ones)."""

import datetime
import sys

import harness
from ctlog_util import TestLog, add_source, checkpoint, expected, sightings, wait_idle

ENTRIES = 400
CERT_KINDS = ("expired", "weak_key", "weak_signature", "self_signed", "expiring",
              "san_case_duplicate", "pqc_vulnerable")


def cert_findings(c, sid):
    """{kind: {fingerprint: (severity, details)}} of the open certificate findings of sid."""
    out = {k: {} for k in CERT_KINDS}
    for kind, fp, sev, details in c.sql(
            "SELECT kind, fingerprint_sha256, severity, details FROM findings "
            "WHERE source_id = %s AND status = 'open' AND kind = ANY(%s)", (sid, list(CERT_KINDS))):
        assert fp not in out[kind], "two open %s findings for %s" % (kind, fp)
        out[kind][fp] = (sev, details)
    return out


def read_all(c, name, log, *extra):
    sid = add_source(c, name, "--domain", "example.com", "--domain", "XN--BCHER-KVA.example",
                     "--log", log.url, "--log-key", log.key_file, "--backfill-from", "0", *extra)
    done = lambda: (checkpoint(c, sid, log.url) or {}).get("next_index") == ENTRIES
    run = wait_idle(c, sid, timeout=180, until=done)
    assert run["status"] == "succeeded", run
    return sid


def main():
    with harness.Cluster(name="ctfind") as c, \
            TestLog(c.tmpdir, entries=ENTRIES, batch_max=100, seed=7, match_rate=0.3,
                    extra=["--weak-key-rate", "0.4"]) as log:
        c.capctl_ok("migrate")
        c.start_scheduler()
        c.start_worker()
        truth = log.truth()
        matched = {t["fingerprint"]: t for t in truth if t["match"]}
        weak = {fp for fp, t in matched.items() if t["weak_key"]}
        assert any(matched[fp]["precert"] for fp in weak) and \
            any(not matched[fp]["precert"] for fp in weak), "weak certificates and precertificates"

        sid = read_all(c, "certs", log)
        got = [tuple(r) for r in sightings(c, sid)]
        assert got == expected(truth, ENTRIES), "sightings: %d stored" % len(got)

        f = cert_findings(c, sid)
        # weak_key: exactly the matching entries with the 1024-bit RSA key, precerts included.
        assert set(f["weak_key"]) == weak, (len(f["weak_key"]), len(weak))
        for fp, (sev, d) in f["weak_key"].items():
            assert sev == "high" and d["reason"] == "RSA key of 1024 bits", (fp, sev, d)
        # expired: every match whose notAfter has passed (a fifth of the generator's leaves
        # ended ten days before the log started), critical.
        utc = datetime.datetime.now(datetime.timezone.utc)
        now = utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        soon = (utc + datetime.timedelta(days=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
        want_expired = {fp for fp, t in matched.items() if t["not_after"] < now}
        assert want_expired and all(matched[fp]["validity"] == "expired" for fp in want_expired)
        assert set(f["expired"]) == want_expired, (len(f["expired"]), len(want_expired))
        for fp, (sev, d) in f["expired"].items():
            assert sev == "critical" and d["reason"].startswith("expired at "), (fp, sev, d)
            assert d["not_after"] == matched[fp]["not_after"], d
        # expiring: the matches that end within scan.expiring_days (14) and are not managed
        # (none is yet), medium.
        want_expiring = {fp for fp, t in matched.items() if now <= t["not_after"] < soon}
        assert want_expiring and all(matched[fp]["validity"] == "expiring"
                                     for fp in want_expiring)
        assert set(f["expiring"]) == want_expiring, (len(f["expiring"]), len(want_expiring))
        for fp, (sev, d) in f["expiring"].items():
            assert sev == "medium", (fp, sev, d)
        # Every leaf key is classical (EC P-256 or RSA).
        assert set(f["pqc_vulnerable"]) == set(matched), len(f["pqc_vulnerable"])
        # Nothing the generator does not make; nothing on entries that do not match.
        for kind in ("weak_signature", "self_signed", "san_case_duplicate"):
            assert f[kind] == {}, (kind, list(f[kind])[:3])
        others = c.sql("SELECT count(*) FROM findings WHERE kind = ANY(%s) "
                       "AND NOT (fingerprint_sha256 = ANY(%s))", (list(CERT_KINDS), list(matched)))
        assert others[0][0] == 0, "certificate findings on entries that do not match"
        # The ct_* findings are there as before.
        newf = {r[0] for r in c.sql("SELECT fingerprint_sha256 FROM findings WHERE "
                                    "kind = 'ct_new_certificate' AND source_id = %s", (sid,))}
        assert newf == set(matched), (len(newf), len(matched))
        print("certificate findings: %d matches, %d weak, %d expired, %d expiring" %
              (len(matched), len(weak), len(want_expired), len(want_expiring)))

        # A weak, expiring precertificate whose final certificate is managed (same
        # TBSCertificate): no ct_new_certificate and no expiring (unmanaged-only), but weak_key
        # is raised again once resolved; another expiring precertificate still gets expiring.
        pres = sorted(fp for fp in weak & want_expiring if matched[fp]["precert"])
        others = sorted(fp for fp in want_expiring - weak if matched[fp]["precert"])
        assert pres and others, "weak and plain expiring precertificates in the log"
        pre = pres[0]
        final_fp = "f" * 64
        c.sql("INSERT INTO discovered_certificates SELECT (jsonb_populate_record(d, "
              "jsonb_build_object('fingerprint_sha256', %s::text, 'is_precert', false))).* "
              "FROM discovered_certificates d WHERE d.fingerprint_sha256 = %s", (final_fp, pre))
        c.capctl_ok("managed", "add", final_fp)
        c.sql("UPDATE findings SET status = 'resolved', resolved_at = now() "
              "WHERE fingerprint_sha256 = %s", (pre,))
        sid2 = read_all(c, "certs2", log)
        f2 = cert_findings(c, sid2)
        assert pre in f2["weak_key"] and pre not in f2["expiring"], "managed precert findings"
        assert f2["weak_key"][pre][1].get("precert") is True, f2["weak_key"][pre]
        assert others[0] in f2["expiring"], "an unmanaged expiring precertificate"
        new2 = {r[0] for r in c.sql("SELECT fingerprint_sha256 FROM findings WHERE "
                                    "kind = 'ct_new_certificate' AND source_id = %s", (sid2,))}
        assert pre not in new2, "a precert of a managed certificate is not new"
        print("managed precertificate: weak_key, no expiring, no ct_new_certificate")
    print("ok: ct findings")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print("FAIL: %s" % e, file=sys.stderr)
        raise
