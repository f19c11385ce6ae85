"""capctl exports against a real PostgreSQL: `inventory --format table|json|csv|pem` with each
filter (--source through endpoints and CT sightings, --issuer, --name label by label, --expiring,
--pqc, --unmanaged), `findings list --format json|csv`, the content of every format (JSON keys
= column names, RFC 4180 CSV with NULL apart from "", PEM blocks that parse back to the stored
DER with an escaped comment line), every bad value with its one-line message and exit code, and
streaming: 200,000 rows exported as CSV and JSON while capctl's peak RSS stays small."""

import csv
import datetime
import hashlib
import io
import json
import os
import re
import subprocess
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import harness

NOW = datetime.datetime.now(datetime.timezone.utc)
BULK_ROWS = 200000
# Peak RSS allowed for an export of BULK_ROWS rows (an unsanitized capctl takes about 11 MB,
# as for one row; a table of the same rows, which is not streamed, about 60 MB). A sanitized
# capctl takes about 19 MB for one row before it reads any, so it is held to its growth over an
# export of one row instead.
RSS_LIMIT_KB = 20 * 1024
RSS_GROWTH_KB = 6 * 1024


def check(cond, what, r=None):
    if not cond:
        extra = ""
        if r is not None:
            extra = "\nexit %s\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout[:4000],
                                                            r.stderr[:4000])
        raise AssertionError(what + extra)


def columns(c, table):
    return [r[0] for r in c.sql("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                                " AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,))]


def raw_capctl(c, *args):
    """capctl ARGS, which must succeed; returns stdout as bytes (line ends untouched)."""
    argv = [harness.binary("ctl/capctl"), "--config", c.config_path] + list(args)
    p = subprocess.run(argv, capture_output=True, env=c._env(None), cwd=c.tmpdir, timeout=120)
    check(p.returncode == 0, "capctl %s: exit %d %r" % (args, p.returncode, p.stderr))
    return p.stdout


def make_cert(cn, key, issuer_cn="Export Test CA"):
    """A real certificate (DER), so that PEM exports can be parsed back."""
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW - datetime.timedelta(days=1))
         .not_valid_after(NOW + datetime.timedelta(days=30)))
    return b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# name -> subject, issuer, sans, days to expiry, key, bits, pqc, precert, tbs
CERTS = {
    # Served by an endpoint of the network source "lab"; managed.
    "A": ("CN=www.example.com,O=Example", "CN=Test CA One,O=Example Trust",
          ["www.example.com", "example.com"], 10, "RSA", 2048, "transition", False, "t" * 64),
    # Seen in a CT log by the source "ct".
    "B": ("CN=api.other.net", "CN=Other CA,O=Other", ["api.other.net"], 100, "EC", 256,
          "transition", False, None),
    # Hostile text; names that only look like example.com; expired.
    "C": ('CN=notexample.com,O=Evil "Co", Ltd\nX\x1b[31m\u202e', "CN=Shady CA",
          ["notexample.com", "example.com.evil.net"], -1, "RSA", 1024, "vulnerable", False, None),
    # A precertificate whose final certificate (A, same tbs) is managed; seen by "ct".
    "D": ("CN=shop.example.com", "CN=Precert CA", ["shop.example.com"], 50, "ML-DSA-65", None,
          "ready", True, "t" * 64),
    # No SANs: the CN (upper case) is its name; served by an endpoint of "other".
    "E": ("CN=Legacy.Example.COM", "CN=Test CA One,O=Example Trust", [], 400, "DSA", 3072,
          "unknown", False, None),
}
ORDER = ["C", "A", "D", "B", "E"]  # by not_after


def setup_inventory(c):
    lab = c.add_source_sql("lab")
    other = c.add_source_sql("other")
    ct = c.add_source_sql("ct", type="ct_log")
    c.add_source_sql("idle")
    fps, ders = {}, {}
    key = ec.generate_private_key(ec.SECP256R1())
    for name, (subject, issuer, sans, days, alg, bits, pqc, precert, tbs) in CERTS.items():
        der = make_cert("%s.cert.test" % name.lower(), key)
        fp = hashlib.sha256(der).hexdigest()
        fps[name], ders[name] = fp, der
        c.sql("INSERT INTO discovered_certificates (fingerprint_sha256, subject, issuer, sans,"
              " serial, not_before, not_after, key_algorithm, key_bits, signature_algorithm,"
              " pqc_class, is_precert, tbs_sha256, der) VALUES (%s, %s, %s, %s, %s,"
              " now() - interval '1 day', now() + make_interval(days => %s), %s, %s,"
              " 'ecdsa-with-SHA256', %s, %s, %s, %s)",
              (fp, subject, issuer, sans, "0" + name, days, alg, bits, pqc, precert, tbs, der))
    c.sql("INSERT INTO endpoints (host, address, port, sni, source_id, status, fingerprint_sha256)"
          " VALUES ('www.example.com', '127.0.0.1', 443, 'www.example.com', %s, 'online', %s),"
          " ('legacy.example.com', '127.0.0.2', 443, '', %s, 'online', %s)",
          (lab, fps["A"], other, fps["E"]))
    c.sql("INSERT INTO ct_sightings (fingerprint_sha256, source_id, log_url, log_index) VALUES"
          " (%s, %s, 'https://log.test/', 1), (%s, %s, 'https://log.test/', 2)",
          (fps["B"], ct, fps["D"], ct))
    c.sql("INSERT INTO managed_certificates (fingerprint_sha256) VALUES (%s)", (fps["A"],))
    return fps, ders


def names_of(fps, rows, key="fingerprint_sha256"):
    by_fp = {v: k for k, v in fps.items()}
    return [by_fp.get(r[key], r[key]) for r in rows]


def test_json_and_filters(c, fps):
    inv = c.capctl_json("inventory")
    check(names_of(fps, inv) == ORDER, "all, soonest expiry first: %s" % names_of(fps, inv))
    want = set(columns(c, "discovered_certificates")) - {"der"} | {"managed"}
    check(all(set(x) == want for x in inv), "keys: %s" % sorted(set(inv[0]) ^ want))
    managed = {n: x["managed"] for n, x in zip(names_of(fps, inv), inv)}
    check(managed == {"A": True, "D": True, "B": False, "C": False, "E": False},
          "managed (D through its final certificate A): %s" % managed)
    same = json.loads(c.capctl_ok("inventory", "--format", "json").stdout)
    check(same == inv, "--format json is --json")
    check(inv[names_of(fps, inv).index("C")]["subject"] == CERTS["C"][0], "text kept exactly")

    cases = [
        (["--source", "lab"], ["A"]),
        (["--source", "ct"], ["D", "B"]),
        (["--source", "other"], ["E"]),
        (["--source", "idle"], []),
        (["--issuer", "test ca one"], ["A", "E"]),
        (["--issuer", "TEST CA ONE,O=EXAMPLE"], ["A", "E"]),
        (["--issuer", "%"], []),  # a substring, never a LIKE pattern
        (["--issuer", "_"], []),
        (["--name", "example.com"], ["A", "D", "E"]),
        (["--name", "EXAMPLE.COM."], ["A", "D", "E"]),
        (["--name", "www.example.com"], ["A"]),
        (["--name", "legacy.example.com"], ["E"]),  # by its CN
        (["--name", "xample.com"], []),  # label by label
        (["--name", "com"], ["C", "A", "D", "E"]),
        (["--name", "evil.net"], ["C"]),
        (["--expiring", "30"], ["C", "A"]),
        (["--expiring", "0"], ["C"]),
        (["--pqc", "vulnerable"], ["C"]),
        (["--pqc", "READY"], ["D"]),
        (["--pqc", "unknown"], ["E"]),
        (["--unmanaged"], ["C", "B", "E"]),
        (["--name", "example.com", "--unmanaged", "--pqc", "unknown"], ["E"]),
        (["--source", "ct", "--expiring", "60"], ["D"]),
        (["--limit", "2"], ["C", "A"]),
    ]
    for args, want_names in cases:
        got = names_of(fps, c.capctl_json("inventory", *args))
        check(got == want_names, "inventory %s: want %s, got %s" % (args, want_names, got))
    # The filters apply to every format.
    r = c.capctl_ok("inventory", "--format", "csv", "--name", "example.com", "--unmanaged")
    rows = list(csv.DictReader(io.StringIO(r.stdout, newline="")))
    check(names_of(fps, rows) == ["E"], "csv filtered: %s" % rows)
    r = c.capctl_ok("inventory", "--format", "pem", "--source", "ct")
    check(r.stdout.count("BEGIN CERTIFICATE") == 2, "pem filtered", r)
    r = c.capctl_ok("inventory", "--pqc", "ready")
    lines = r.stdout.splitlines()
    check(len(lines) == 2 and "shop.example.com" in lines[1], "table filtered", r)
    print("ok: inventory json and filters")


def test_table(c, fps):
    r = c.capctl_ok("inventory")
    lines = r.stdout.splitlines()
    check(lines[0].split() == ["fingerprint", "subject", "not_after", "key", "pqc_class",
                               "precert", "managed", "issuer"], "table header", r)
    check(len(lines) == 6 and lines[2].startswith(fps["A"][:16]), "table rows", r)
    check("\x1b" not in r.stdout and "\\x1b[31m" in r.stdout, "table escapes controls", r)
    check(r.stderr == "", "no note below the limit", r)
    r = c.capctl_ok("inventory", "--limit", "2")
    check(len(r.stdout.splitlines()) == 3 and "--limit N shows more" in r.stderr, "limit", r)
    print("ok: inventory table")


def test_csv(c, fps):
    raw = raw_capctl(c, "inventory", "--format", "csv")
    check(raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n") + 1,
          "CRLF line ends; a bare newline only inside the quoted subject: %r" % raw[:2000])
    r = c.capctl_ok("inventory", "--format", "csv")
    rows = list(csv.reader(io.StringIO(r.stdout, newline="")))
    want = [x for x in columns(c, "discovered_certificates") if x != "der"] + ["managed"]
    check(rows[0] == want, "header = columns in table order, der left out: %s" % rows[0])
    recs = [dict(zip(rows[0], x)) for x in rows[1:]]
    check(names_of(fps, recs) == ORDER, "csv rows: %s" % names_of(fps, recs))
    byname = dict(zip(names_of(fps, recs), recs))
    a, cc, d, e = byname["A"], byname["C"], byname["D"], byname["E"]
    check(cc["subject"] == CERTS["C"][0], "quoted subject round-trips: %r" % cc["subject"])
    check(a["sans"] == "{www.example.com,example.com}" and e["sans"] == "{}",
          "arrays as PostgreSQL text: %s %s" % (a["sans"], e["sans"]))
    check(a["managed"] == "true" and d["managed"] == "true" and cc["managed"] == "false"
          and d["is_precert"] == "true", "booleans as true/false: %s" % d)
    check(d["key_bits"] == "" and a["key_bits"] == "2048", "NULL is an empty field")
    check(json.loads(a["revocation"]) == {}, "jsonb as JSON text: %r" % a["revocation"])
    check(a["not_after"].endswith("+00"), "times in UTC: %s" % a["not_after"])
    # NULL is an empty field, an empty string is "".
    c.sql("UPDATE discovered_certificates SET key_curve = '' WHERE fingerprint_sha256 = %s",
          (fps["A"],))
    raw = raw_capctl(c, "inventory", "--format", "csv", "--source", "lab").decode()
    line = raw.split("\r\n")[1]
    fields = next(csv.reader([line]))
    i = rows[0].index("key_curve")
    check(fields[i] == "" and line.count('""') >= 1, "empty string quoted: %s" % line)
    c.sql("UPDATE discovered_certificates SET key_curve = NULL WHERE fingerprint_sha256 = %s",
          (fps["A"],))
    # No rows: the header alone.
    raw = raw_capctl(c, "inventory", "--format", "csv", "--source", "idle")
    check(raw == (",".join(want) + "\r\n").encode(), "csv of nothing is its header: %r" % raw)
    r = c.capctl_ok("inventory", "--format", "json", "--source", "idle")
    check(json.loads(r.stdout) == [], "json of nothing is []", r)
    r = c.capctl_ok("inventory", "--format", "pem", "--source", "idle")
    check(r.stdout == "", "pem of nothing is empty", r)
    print("ok: inventory csv")


def test_pem(c, fps, ders):
    r = c.capctl_ok("inventory", "--format", "pem")
    out = r.stdout
    check("\x1b" not in out and "\u202e" not in out, "no terminal controls in the PEM", r)
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----\n.*?-----END CERTIFICATE-----\n", out,
                        re.S)
    got = [x509.load_pem_x509_certificate(b.encode()).public_bytes(serialization.Encoding.DER)
           for b in blocks]
    check(got == [ders[n] for n in ORDER], "PEM blocks are the stored DER, in order")
    lines = out.split("\n")
    comments = [ln for ln in lines if ln.startswith("#")]
    check(len(comments) == 5, "one comment per certificate: %s" % comments)
    for n, com in zip(ORDER, comments):
        check(com.startswith("# sha256=%s subject=" % fps[n]), "comment names %s: %s" % (n, com))
        nxt = lines[lines.index(com) + 1]
        check(nxt == "-----BEGIN CERTIFICATE-----", "comment right before its block")
    check(comments[0] == '# sha256=%s subject=CN=notexample.com,O=Evil "Co", Ltd X\\x1b[31m'
          '\\u202e' % fps["C"], "subject escaped on one line: %r" % comments[0])
    body = [ln for ln in lines if ln and not ln.startswith("#") and not ln.startswith("-----")]
    check(all(len(ln) <= 64 for ln in body), "base64 lines of 64")
    # openssl reads it too.
    p = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=out,
                       capture_output=True, text=True)
    check(p.returncode == 0 and fps["C"].upper() in p.stdout.replace(":", ""),
          "openssl reads the first block: %s %s" % (p.stdout, p.stderr))
    print("ok: inventory pem")


def test_findings(c):
    sid = c.sql("SELECT id FROM discovery_sources WHERE name = 'lab'")[0][0]
    c.sql("INSERT INTO findings (kind, severity, status, subject_key, source_id, details) VALUES"
          " ('expiring', 'medium', 'open', 'cert:a', %s, '{\"days\": 10, \"note\": \"x,\\\"y\\\"\"}'),"
          " ('drift', 'medium', 'resolved', 'endpoint:1', %s, '{}'),"
          " ('unreachable', 'low', 'open', 'endpoint:2', NULL, '{}')", (sid, sid))
    fl = c.capctl_json("findings", "list")
    want = set(columns(c, "findings")) | {"source_name"}
    check(len(fl) == 3 and all(set(f) == want for f in fl), "json keys: %s" % fl)
    exp = [f for f in fl if f["kind"] == "expiring"][0]
    check(exp["details"] == {"days": 10, "note": 'x,"y"'} and exp["source_name"] == "lab", exp)
    same = json.loads(c.capctl_ok("findings", "list", "--format", "json").stdout)
    check(same == fl, "--format json is --json")
    r = c.capctl_ok("findings", "list", "--format", "csv")
    rows = list(csv.reader(io.StringIO(r.stdout, newline="")))
    check(rows[0] == columns(c, "findings") + ["source_name"], "csv header: %s" % rows[0])
    recs = [dict(zip(rows[0], x)) for x in rows[1:]]
    check(sorted(x["kind"] for x in recs) == ["drift", "expiring", "unreachable"], recs)
    exp = [x for x in recs if x["kind"] == "expiring"][0]
    check(json.loads(exp["details"]) == {"days": 10, "note": 'x,"y"'}, exp)
    check([x for x in recs if x["kind"] == "unreachable"][0]["source_name"] == "", "NULL")
    r = c.capctl_ok("findings", "list", "--format", "csv", "--open", "--source", "lab")
    check([x[1] for x in list(csv.reader(io.StringIO(r.stdout, newline="")))[1:]] ==
          ["expiring"], "csv filters", r)
    r = c.capctl_ok("findings", "list", "--format", "csv", "--limit", "1")
    check(len(r.stdout.splitlines()) == 2 and "--limit N shows more" in r.stderr, "limit", r)
    r = c.capctl_ok("findings", "list")
    check("expiring" in r.stdout and r.stdout.splitlines()[0].startswith("id"), "table", r)
    print("ok: findings list json and csv")


def test_errors(c):
    cases = [
        (["inventory", "--format", "xml"], 2, 'capctl: --format "xml": must be table, json, csv '
                                              'or pem'),
        (["inventory", "--format", "csv", "--json"], 2,
         "capctl: --json and --format csv contradict each other"),
        (["inventory", "--format"], 2, "option --format needs a value"),
        (["inventory", "--colour"], 2, 'unknown option "--colour"'),
        (["inventory", "extra"], 2, 'unexpected argument "extra"'),
        (["findings", "list", "--format", "pem"], 2,
         'capctl: --format "pem": must be table, json or csv'),
        (["inventory", "--pqc", "safe"], 1,
         'capctl: --pqc "safe": must be vulnerable, transition, ready or unknown'),
        (["inventory", "--source", "nosuch"], 1, 'capctl: source "nosuch" does not exist'),
        (["findings", "list", "--format", "csv", "--source", "nosuch"], 1,
         'capctl: source "nosuch" does not exist'),
        (["inventory", "--expiring", "soon"], 1, 'capctl: --expiring "soon": must be an integer'),
        (["inventory", "--expiring", "-1"], 1, 'capctl: --expiring "-1": must be an integer'),
        (["inventory", "--name", ""], 1, 'capctl: --name "": empty suffix'),
        (["inventory", "--name", "."], 1, 'capctl: --name ".": empty suffix'),
        (["inventory", "--name", "*.example.com"], 1,
         'capctl: --name "*.example.com": give the suffix alone ("example.com")'),
        (["inventory", "--name", "10.0.0.1"], 1,
         'capctl: --name "10.0.0.1": an IP address; --name matches DNS names'),
        (["inventory", "--name", "a..b"], 1, 'capctl: --name "a..b": empty label'),
        (["inventory", "--name", "bad_name.example"], 1,
         'capctl: --name "bad_name.example": invalid character'),
        (["inventory", "--issuer", ""], 1, 'capctl: --issuer "": must be 1-256 bytes'),
        (["inventory", "--issuer", "x" * 257], 1, "must be 1-256 bytes"),
        (["inventory", "--issuer", "CA\x1b[2J"], 1,
         'capctl: --issuer "CA\\x1b[2J": must be UTF-8 text without control characters'),
        (["inventory", "--limit", "0"], 1, 'capctl: --limit "0": must be an integer'),
    ]
    for args, code, msg in cases:
        r = c.capctl(*args)
        check(r.returncode == code, "capctl %s: want exit %d" % (args, code), r)
        check(msg in r.stderr, "capctl %s: want message %r" % (args, msg), r)
        check(r.stdout == "", "capctl %s: nothing on stdout" % args, r)
        first = r.stderr.splitlines()[0]
        check(first.startswith("capctl: ") and msg.replace("capctl: ", "") in first,
              "one line names the value: %r" % first, r)
        check(("usage: capctl" in r.stderr) == (code == 2), "synopsis only on usage errors", r)
    r = c.capctl("inventory", "--help")
    check(r.returncode == 0 and "--format table|json|csv|pem" in r.stdout
          and "--unmanaged" in r.stdout, "inventory --help", r)
    r = c.capctl("findings", "list", "--help")
    check(r.returncode == 0 and "--format table|json|csv" in r.stdout, "findings list --help", r)
    print("ok: errors")


def vm_hwm_kb(pid):
    """VmHWM (peak resident set) of a running process in kB, or 0 once it has exited."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_kb(c, args, out_path):
    """Runs capctl ARGS with stdout to out_path; returns (exit code, stderr, peak RSS in kB).
    The peak is capctl's own VmHWM, read every few milliseconds while it runs: the rusage of a
    child also counts the pages of this (large) Python process it was forked from."""
    argv = [harness.binary("ctl/capctl"), "--config", c.config_path] + list(args)
    env = c._env({"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1:quarantine_size_mb=0"})
    peak = 0
    with open(out_path, "wb") as out, open(out_path + ".err", "wb") as err:
        p = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=c.tmpdir)
        while p.poll() is None:
            peak = max(peak, vm_hwm_kb(p.pid))
            time.sleep(0.002)
    with open(out_path + ".err") as f:
        return p.returncode, f.read(), peak


def test_streaming(c):
    c.sql("INSERT INTO discovered_certificates (fingerprint_sha256, subject, issuer, sans, serial,"
          " not_after, key_algorithm, key_bits, signature_algorithm, pqc_class, der)"
          " SELECT encode(sha256(('bulk' || i)::bytea), 'hex'), 'CN=host' || i || '.bulk.example',"
          " 'CN=Bulk CA', ARRAY['host' || i || '.bulk.example', 'alt' || i || '.bulk.example'],"
          " to_hex(i), now() + make_interval(days => 1000 + i %% 3650), 'RSA', 2048,"
          " 'sha256WithRSAEncryption', 'transition', decode(repeat('30', 300), 'hex')"
          " FROM generate_series(1, %s) i", (BULK_ROWS,))
    path = os.path.join(c.tmpdir, "bulk.csv")
    rc, err, small = peak_rss_kb(c, ["inventory", "--format", "csv", "--issuer", "bulk ca",
                                     "--limit", "1"], path)
    check(rc == 0, "one-row export: exit %d %s" % (rc, err))
    with open(harness.binary("ctl/capctl"), "rb") as f:
        sanitized = b"__asan_init" in f.read()
    limit = small + RSS_GROWTH_KB if sanitized else RSS_LIMIT_KB
    figures = []
    for fmt in ("csv", "json"):
        rc, err, peak = peak_rss_kb(c, ["inventory", "--format", fmt, "--issuer", "bulk ca"],
                                    path)
        check(rc == 0, "bulk %s export: exit %d %s" % (fmt, rc, err))
        check(err == "", "no limit note on an export: %r" % err)
        size = os.path.getsize(path)
        with open(path, newline="") as f:
            if fmt == "csv":
                rows = list(csv.reader(f))
                check(rows[0][0] == "fingerprint_sha256", "header")
                fps = {r[0] for r in rows[1:]}
                n = len(rows) - 1
            else:
                data = json.load(f)
                fps = {r["fingerprint_sha256"] for r in data}
                n = len(data)
        check(n == BULK_ROWS and len(fps) == BULK_ROWS,
              "%s export: %d rows (%d distinct), want %d" % (fmt, n, len(fps), BULK_ROWS))
        figures.append("%s %d rows, %.1f MB: peak RSS %d kB" % (fmt, n, size / 1e6, peak))
        check(peak < limit, "%s export of %d rows: peak RSS %d kB, want under %d kB (one row: "
              "%d kB)" % (fmt, n, peak, limit, small))
    os.unlink(path)
    print("ok: streaming%s (one row: peak RSS %d kB; %s)"
          % (" (sanitized: growth only)" if sanitized else "", small, "; ".join(figures)))


def main():
    with harness.Cluster(name="export", start_redis=False) as c:
        c.migrate()
        fps, ders = setup_inventory(c)
        test_json_and_filters(c, fps)
        test_table(c, fps)
        test_csv(c, fps)
        test_pem(c, fps, ders)
        test_findings(c)
        test_errors(c)
        test_streaming(c)
    print("ok: capctl exports")


if __name__ == "__main__":
    main()
