"""A source type is its descriptor, its executor, one row in each registry and one row in the
database. The database's rows of the built-in types are what their descriptors say (so the
STARTTLS protocols, bounds and defaults it checks are the C tables'), and test_echo, a type
that only the test programs know (tests/tools/echo_capctl and echo_worker, from
tests/tools/echo_type.h), goes the whole way: registered in the database from its descriptor,
added, listed, edited and refused by a capctl built with it, checked by the database when
written by SQL, triggered by the stock capctl and run by a worker built with its executor; a
stock worker fails its runs, saying why."""

import json
import subprocess

import harness


def check(cond, what, r=None):
    if not cond:
        extra = ""
        if r is not None:
            extra = "\nexit %s\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr)
        raise AssertionError(what + extra)


def echo_capctl(c, *args):
    argv = [harness.binary("tests/echo_capctl"), "--config", c.config_path] + list(args)
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=c._env(None), cwd=c.tmpdir, timeout=120)


def schemas():
    out = subprocess.run([harness.binary("tests/echo_capctl"), "--schema"], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return {s["type"]: s for s in json.loads(out)}


def type_rows(c):
    rows = c.sql("SELECT type, fields, needs_one_of, needs_constraint FROM discovery_source_types")
    return {t: {"type": t, "fields": f, "needs_one_of": n, "needs_constraint": k}
            for t, f, n, k in rows}


def test_rows_are_the_descriptors(c):
    """Migration 009's rows equal what the descriptors say, field by field."""
    want = schemas()
    got = type_rows(c)
    check(set(got) == {"network_scan", "ct_log"}, "the database knows the two types: %s" % got)
    for t in got:
        check(got[t] == want[t], "%s: database %s\n  descriptor %s" % (t, got[t], want[t]))
    check(got["network_scan"]["fields"]["starttls"]["choices"] ==
          ["smtp", "imap", "pop3", "ldap", "postgres", "none"], "the STARTTLS protocols")
    print("ok: discovery_source_types = the descriptors")


def test_echo_type(c):
    echo = schemas()["test_echo"]
    # The stock programs do not know it.
    r = c.capctl("source", "add", "hi", "--type", "test_echo")
    check(r.returncode == 2 and '--type "test_echo": must be network_scan or ct_log' in r.stderr,
          "stock capctl refuses the type", r)
    # Its migration row, from the descriptor.
    c.sql("INSERT INTO discovery_source_types (type, fields, needs_one_of, needs_constraint)"
          " VALUES (%s, %s, %s, %s)", (echo["type"], json.dumps(echo["fields"]),
                                       echo["needs_one_of"], echo["needs_constraint"]))

    r = echo_capctl(c, "source", "add", "hi", "--type", "test_echo", "--word", "hello,there",
                    "--times", "2", "--tone", "loud", "--note", "bye")
    check(r.returncode == 0 and 'source "hi" added' in r.stdout, "echo_capctl adds it", r)
    row = c.sql_dicts("SELECT * FROM discovery_sources WHERE name = 'hi'")[0]
    check(row["spec"] == {"words": ["hello", "there"], "times": 2, "tone": "loud",
                          "note": "bye"}, "spec: %s" % row["spec"])
    check(row["schedule"] == "manual" and row["cidrs"] == [] and row["domains"] == [],
          "the old columns stay at their defaults: %s" % row)
    r = echo_capctl(c, "source", "list")
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("hi ")]
    check(r.returncode == 0 and line and "test_echo" in line[0] and "hello there" in line[0],
          "listed with its summary", r)
    r = echo_capctl(c, "source", "--help")
    check("capctl source add NAME --type test_echo --word WORD..." in r.stdout and
          "[--times 1]" in r.stdout and "[--add-word|--remove-word WORD]..." in r.stdout and
          "[--no-note]" in r.stdout, "the synopsis has the type", r)

    for args, code, msg in (
            (["source", "add", "x", "--type", "test_echo"], 2,
             "source add: a test_echo source needs --word"),
            (["source", "add", "x", "--type", "test_echo", "--word", "a", "--times", "9"], 1,
             '--times "9": must be an integer 1-5'),
            (["source", "add", "x", "--type", "test_echo", "--word", "a", "--tone", "shout"], 1,
             '--tone "shout": must be plain or loud'),
            (["source", "add", "x", "--type", "test_echo", "--word", "a", "--cidr",
              "10.0.0.0/8"], 2, "--cidr applies to network_scan sources, not test_echo"),
            (["source", "add", "x", "--type", "network_scan", "--cidr", "10.0.0.0/8",
              "--word", "a"], 2, "--word applies to test_echo sources, not network_scan"),
            (["source", "edit", "hi", "--note", "x", "--no-note"], 2,
             "--note and --no-note contradict each other"),
            (["source", "edit", "hi", "--remove-word", "nope"], 1,
             '--remove-word "nope": source "hi" has no such entry'),
            (["source", "edit", "hi", "--remove-word", "hello,there"], 1,
             'source "hi": a test_echo source needs at least one --word')):
        r = echo_capctl(c, *args)
        check(r.returncode == code and msg in r.stderr, "%s: want %d %r" % (args, code, msg), r)
    r = echo_capctl(c, "source", "edit", "hi", "--no-note", "--add-word", "again", "--times", "1")
    check(r.returncode == 0, "edit", r)
    check(c.sql("SELECT spec FROM discovery_sources WHERE name = 'hi'")[0][0] ==
          {"words": ["hello", "there", "again"], "times": 1, "tone": "loud", "note": None},
          "edited spec")

    # The database holds a row written by SQL to the same rules, from the type's row.
    import psycopg2
    for cols, msg in (({"words": []}, "test_echo_has_words"),
                      ({"words": ["a"], "times": 9}, 'spec field "times": 9 is not an integer'),
                      ({"words": ["a"], "tone": "shout"}, '"shout" is not one of'),
                      ({"words": ["a"], "hosts": ["b"]}, None)):
        try:
            spec = dict(cols)
            c.sql("INSERT INTO discovery_sources (name, type, spec) VALUES ('bad', 'test_echo',"
                  " %s)", (json.dumps(spec),))
            raise AssertionError("the database accepted %s" % cols)
        except psycopg2.Error as e:
            check(e.pgcode == "23514" and (msg is None or msg in str(e)),
                  "%s: %s %s" % (cols, e.pgcode, e))

    # A stock worker has no executor for it: the run fails and says so.
    sched = c.start_scheduler()
    worker = c.start_worker()
    r = c.capctl("source", "trigger", "hi", "--wait", "--timeout", "60s")
    check(r.returncode == 1, "a stock worker fails the run", r)
    run = c.sql_dicts("SELECT * FROM discovery_runs WHERE source_id = (SELECT id FROM"
                      " discovery_sources WHERE name = 'hi') ORDER BY id DESC LIMIT 1")[0]
    check(run["status"] == "failed" and
          'source type "test_echo" is not implemented yet in this worker build' in run["error"],
          "the stock worker says why: %s" % run)
    c.stop(worker)

    # A worker built with its executor runs it; the stock capctl triggers it like any other.
    worker = c.start_process("tests/echo_worker", label="echo-worker")
    r = c.capctl("source", "trigger", "hi", "--wait", "--timeout", "60s")
    check(r.returncode == 0, "the echo worker runs it", r)
    run = c.sql_dicts("SELECT * FROM discovery_runs WHERE source_id = (SELECT id FROM"
                      " discovery_sources WHERE name = 'hi') ORDER BY id DESC LIMIT 1")[0]
    check(run["status"] == "succeeded" and run["error"] == "HELLO THERE AGAIN",
          "the executor read its typed spec: %s" % run)
    check(run["items_total"] == 3 and run["items_done"] == 3 and run["targets_total"] == 3,
          "and wrote its progress: %s" % run)
    c.stop(worker)
    c.stop(sched)
    print("ok: test_echo, a third type, end to end")


def main():
    with harness.Cluster(name="capctl-source-type") as c:
        c.migrate()
        test_rows_are_the_descriptors(c)
        test_echo_type(c)
        c.check_sanitizers()
    print("ok: capctl source types")


if __name__ == "__main__":
    main()
