"""Helpers for the CT monitor's end-to-end tests: start the project's test CT log
(tests/ctlog/ctlog.py) on a free loopback port and talk to its control API."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import harness


class TestLog:
    """A running test CT log; use as a context manager."""

    def __init__(self, tmpdir, entries=1000, batch_max=100, seed=1, match_rate=0.1,
                 precert_rate=0.5, extra=(), start_timeout=120):
        self.tmpdir = tmpdir
        self.port_file = os.path.join(tmpdir, "ctlog-%d.port" % seed)
        self.key_file = os.path.join(tmpdir, "ctlog-%d.pem" % seed)
        self.log_path = os.path.join(tmpdir, "ctlog-%d.log" % seed)
        script = os.path.join(harness.source_dir(), "tests", "ctlog", "ctlog.py")
        argv = ["/usr/bin/python3", script, "--port-file", self.port_file, "--key-file",
                self.key_file, "--entries", str(entries), "--batch-max", str(batch_max),
                "--seed", str(seed), "--match-rate", str(match_rate), "--precert-rate",
                str(precert_rate)] + list(extra)
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.time() + start_timeout
        while not os.path.exists(self.port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.dump()
                raise AssertionError("test CT log did not start")
            time.sleep(0.2)
        self.port = int(open(self.port_file).read())
        self.url = "http://127.0.0.1:%d/" % self.port
        self.tiled_url = "http://127.0.0.1:%d/tiled/" % self.port

    def dump(self):
        self.logf.flush()
        try:
            sys.stderr.write("---- test CT log output ----\n" + open(self.log_path).read()[-4000:])
        except OSError:
            pass

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=60) as r:
            return r.read()

    def ctl(self, path):
        return json.loads(self.get("/ctl/" + path))

    def truth(self):
        return self.ctl("truth")

    def fault(self, kind, count=1, arg=None):
        q = "fault?kind=%s&count=%d" % (kind, count)
        if arg is not None:
            q += "&arg=%s" % arg
        return self.ctl(q)

    def clear(self):
        return self.ctl("clear")

    def grow(self, n):
        return self.ctl("grow?n=%d" % n)["tree_size"]

    def stats(self):
        return self.ctl("stats")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        if et is not None:
            self.dump()
        self.close()
        return False


def source_id(c, name):
    return c.sql("SELECT id FROM discovery_sources WHERE name = %s", (name,))[0][0]


def latest_run(c, sid):
    rows = c.sql_dicts("SELECT * FROM discovery_runs WHERE source_id = %s ORDER BY id DESC LIMIT 1",
                       (sid,))
    return rows[0] if rows else None


def wait_idle(c, sid, timeout=120, until=None):
    """Waits until the source has runs, none is queued or running, and until() (when given) is
    true; returns the last run."""
    def idle():
        rows = c.sql("SELECT count(*) FILTER (WHERE status IN ('queued','running')), count(*) "
                     "FROM discovery_runs WHERE source_id = %s", (sid,))
        return rows[0][0] == 0 and rows[0][1] > 0 and (until is None or until())
    c.wait_for(idle, timeout=timeout, what="runs of source %d to finish" % sid)
    return latest_run(c, sid)


def trigger(c, name, timeout=120):
    """Triggers a run of name and waits for it (and any backlog runs it asks for)."""
    sid = source_id(c, name)
    before = c.sql("SELECT coalesce(max(id), 0) FROM discovery_runs WHERE source_id = %s",
                   (sid,))[0][0]
    c.capctl_ok("source", "trigger", name)
    c.wait_for(lambda: c.sql("SELECT count(*) FROM discovery_runs WHERE source_id = %s AND id > %s",
                             (sid, before))[0][0] > 0, timeout=30, what="run of %s queued" % name)
    return wait_idle(c, sid, timeout), before


def checkpoint(c, sid, url):
    rows = c.sql_dicts("SELECT next_index, tree_size, backlog, verified, root_hash IS NOT NULL AS "
                       "has_root, frontier IS NOT NULL AS has_frontier FROM ct_checkpoints "
                       "WHERE source_id = %s AND log_url = %s", (sid, url))
    return rows[0] if rows else None


def sightings(c, sid):
    return c.sql("SELECT log_index, fingerprint_sha256 FROM ct_sightings WHERE source_id = %s "
                 "ORDER BY log_index", (sid,))


def expected(truth, upto):
    return sorted((t["index"], t["fingerprint"]) for t in truth if t["match"] and t["index"] < upto)


def add_source(c, name, *args):
    """capctl source add NAME --type ct_log ARGS..., then a trigger once the scheduler has judged
    the schedule (a judgement made after the first run asked for its follow-up would move
    next_run_at an hour ahead). Returns the source id."""
    c.capctl_ok("source", "add", name, "--type", "ct_log", *args)
    sid = source_id(c, name)
    c.wait_for(lambda: c.sql("SELECT schedule_judged IS NOT NULL FROM discovery_sources "
                             "WHERE id = %s", (sid,))[0][0], timeout=30, what="schedule judged")
    c.capctl_ok("source", "trigger", name)
    return sid
