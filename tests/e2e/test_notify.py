"""Webhook notifications against a real PostgreSQL, Redis, scheduler and workers, and a local
HTTP receiver (http.server on 127.0.0.1):

- findings written by plain SQL (as any tool may) notify: opened, escalated, resolved, and
  reopened when an acknowledgement expires; acknowledged and suppressed findings do not;
- a run that ends failed notifies; the receiver fails the first attempts (HTTP 500, then a
  timeout) and the worker is killed with SIGKILL while the receiver stalls mid-delivery:
  the message still arrives, every attempt with the same idempotency key;
- a run that opens hundreds of findings arrives as one digest per webhook (bounded list, a
  count of the rest), in both formats; filters (min_severity, kinds) hold;
- a 4xx answer, or an address the network policy refuses, kills a delivery at once
  (dead-lettered); a 429 with Retry-After is waited out with the same key;
- a run still going holds its events (one digest at its end, or after the hold);
- a delivery an older worker dead-letters and drops is published again from PostgreSQL;
- every state change a webhook wants arrives in some delivered message;
- capctl notify test and list; a refused address fails with the policy's reason;
- a bad webhook configuration is a one-line error naming the bad value.
"""

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness


def check(cond, what, r=None):
    if not cond:
        extra = ""
        if r is not None:
            extra = "\nexit %s\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr)
        raise AssertionError(what + extra)


class Receiver:
    """Records every POST; per path, a script of answers for the first requests ("500",
    ("stall", seconds), "400"), then 200."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # dicts: path, key, body (parsed), status, t
        self.scripts = {}
        self.counts = {}
        recv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                with recv.lock:
                    i = recv.counts.get(self.path, 0)
                    recv.counts[self.path] = i + 1
                    script = recv.scripts.get(self.path, [])
                    step = script[i] if i < len(script) else "200"
                    rec = {"path": self.path, "key": self.headers.get("Idempotency-Key"),
                           "auth": self.headers.get("Authorization"),
                           "ctype": self.headers.get("Content-Type"),
                           "raw": raw, "step": step, "t": time.time(), "answered": False}
                    try:
                        rec["body"] = json.loads(raw)
                    except ValueError:
                        rec["body"] = None
                    recv.requests.append(rec)
                if isinstance(step, tuple):
                    time.sleep(step[1])
                    step = "200"
                code = int(step)
                try:
                    self.send_response(code)
                    if code == 429:
                        self.send_header("Retry-After", "3")
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"ok" if code == 200 else b"no")
                    with recv.lock:
                        rec["answered"] = True
                        rec["code"] = code
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def got(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def wait_for(c, fn, what, timeout=60):
    return c.wait_for(fn, timeout=timeout, what=what, interval=0.2)


def delivered_ok(recv, path):
    return [r for r in recv.got(path) if r.get("answered") and r.get("code") == 200]


def insert_finding(c, kind, severity, subject, source_id, run_id=None):
    return c.sql("INSERT INTO findings (kind, severity, subject_key, source_id, run_id) "
                 "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                 (kind, severity, subject, source_id, run_id))[0][0]


def bad_config(c, webhooks, message, env=None):
    """capctl with these webhooks must fail with one line naming the bad value."""
    path = c.config_with({"notify.webhooks": webhooks}) if webhooks is not None else c.config_path
    r = c.capctl("notify", "list", config_path=path, extra_env=env)
    check(r.returncode == 1, "bad webhook config %s: want exit 1" % (webhooks,), r)
    lines = r.stderr.strip().splitlines()
    check(len(lines) == 1, "bad webhook config: want one line", r)
    check(message in lines[0], "bad webhook config: want %r in the message" % message, r)
    return lines[0]


def main():
    recv = Receiver()
    try:
        run(recv)
    finally:
        recv.close()


def run(recv):
    hooks = [
        {"name": "ops", "url": recv.url("/ops"), "format": "json", "timeout": "5s"},
        {"name": "chat", "url": recv.url("/chat/T000/B000/secretpath"), "format": "slack",
         "min_severity": "high", "timeout": "5s"},
        {"name": "flaky", "url": recv.url("/flaky"), "kinds": ["run_failed"],
         "timeout": "2s"},
        {"name": "broken", "url": recv.url("/broken"), "kinds": ["revoked"], "timeout": "5s"},
        {"name": "limited", "url": recv.url("/limited"), "kinds": ["run_dead"], "timeout": "5s"},
        {"name": "meta", "url": "http://169.254.169.254/hook", "kinds": ["ct_log_misbehaving"]},
    ]
    cfg = {"notify.webhooks": hooks, "worker.max_attempts": 6, "scheduler.tick": "500ms",
           "scheduler.requeue_after": "3s"}
    with harness.Cluster("notify", config=cfg) as c:
        c.migrate()
        # The token of a webhook comes from a file (secrets through *_FILE).
        tok = os.path.join(c.tmpdir, "token")
        with open(tok, "w") as f:
            f.write("s3cret-token\n")
        os.chmod(tok, 0o644)
        hooks[0]["token_file"] = tok
        c.config = dict(c.config)
        c.config["notify.webhooks"] = hooks
        c.config_path = c.write_config(c.config, "config.yaml")

        # ---- bad configuration: one line naming the value
        bad_config(c, [{"name": "x", "url": recv.url("/x"), "kinds": ["nope"]}], '"nope" is not a finding kind')
        bad_config(c, [{"name": "x", "url": recv.url("/x"), "min_severity": "urgent"}],
                   '"urgent" is not a severity')
        bad_config(c, [{"name": "x", "url": recv.url("/x"), "format": "xml"}],
                   '"xml" is not a message format')
        bad_config(c, [{"name": "x", "url": "ftp://example.com/hook"}],
                   "is not an http:// or https:// URL")
        bad_config(c, [{"name": "x", "url_file": "/nonexistent/hook-url"}],
                   'file "/nonexistent/hook-url": cannot open')
        bad_config(c, [{"name": "x"}], "a webhook needs url or url_file")
        bad_config(c, [{"name": "a", "url": recv.url("/a")}, {"name": "a", "url": recv.url("/b")}],
                   '"a" is the name of two webhooks')
        bad_config(c, [{"name": "x", "url": recv.url("/x"), "colour": "red"}],
                   'unknown key "colour"')
        line = bad_config(c, None, "is not an http:// or https:// URL",
                          env={"CERTAUTOPILOT_NOTIFY_WEBHOOKS": "http://127.0.0.1:1/a, gopher://h/s3cretpath"})
        check("s3cretpath" not in line, "the path of a webhook URL (a secret) was printed: " + line)
        print("test_notify: bad configurations refused with one line each")

        # ---- capctl notify test and list
        r = c.capctl_ok("notify", "test", "ops")
        check("delivered" in r.stdout, "notify test: want delivered", r)
        t = recv.got("/ops")
        check(len(t) == 1 and t[0]["body"]["test"] is True, "notify test: want one test message")
        check(t[0]["key"] == t[0]["body"]["idempotency_key"] and t[0]["key"].startswith("cap:test:"),
              "notify test: header and body keys differ: %r" % t[0])
        check(t[0]["auth"] == "Bearer s3cret-token", "token_file not sent: %r" % t[0]["auth"])
        r = c.capctl_ok("notify", "test", "chat")
        body = recv.got("/chat/T000/B000/secretpath")[0]["body"]
        check(set(body) == {"text", "blocks"} and body["blocks"][0]["type"] == "section",
              "slack test body shape: %r" % body)
        r = c.capctl("notify", "test", "meta")
        check(r.returncode == 1 and "refused by network policy" in r.stderr
              and "169.254" in r.stderr, "notify test to a refused address", r)
        check(len(r.stderr.strip().splitlines()) == 1, "notify test failure: one line", r)
        r = c.capctl("notify", "test", "nosuch")
        check(r.returncode == 1 and '"nosuch" is not in notify.webhooks' in r.stderr,
              "notify test of an unknown name", r)
        lst = c.capctl_json("notify", "list")
        check([w["name"] for w in lst] == ["ops", "chat", "flaky", "broken", "limited", "meta"],
              "notify list: %r" % lst)
        check("secretpath" not in json.dumps(lst), "notify list shows a webhook URL's path")
        print("test_notify: capctl notify test and list")

        sched = c.start_scheduler()
        worker = c.start_worker()
        src = c.add_source_sql("edge", enabled=False)
        other = c.add_source_sql("quiet", enabled=False)

        # ---- one finding's life: opened, escalated, resolved
        fid = insert_finding(c, "expiring", "medium", "name:shop.example", src)
        wait_for(c, lambda: [r for r in delivered_ok(recv, "/ops")
                             if r["body"].get("events") and r["body"]["events"][0]["finding_id"] == fid],
                 "opened finding delivered to ops")
        c.sql("UPDATE findings SET severity = 'high' WHERE id = %s", (fid,))
        c.sql("UPDATE findings SET status = 'resolved', resolved_at = now() WHERE id = %s", (fid,))

        def events_of(path, finding):
            out = []
            for r in delivered_ok(recv, path):
                b = r["body"]
                for e in (b.get("events") or []):
                    if e["finding_id"] == finding:
                        out.append(e["event"])
            return out

        wait_for(c, lambda: sorted(set(events_of("/ops", fid))) == ["escalated", "opened", "resolved"],
                 "opened, escalated and resolved delivered to ops")
        ops = [r for r in delivered_ok(recv, "/ops") if not r["body"]["test"]]
        for r in ops:
            b = r["body"]
            check(r["key"] == b["idempotency_key"], "header and body key differ")
            check(b["source"] == "edge" and b["digest"] == (b["count"] > 1),
                  "message fields: %r" % b)
            for e in b["events"]:
                check(e["idempotency_key"] == "cap:f%d:%s:e%d" % (fid, e["event"], e["event_id"]),
                      "key of a finding event: %r" % e["idempotency_key"])
                check(e["subject"] == "shop.example", "subject: %r" % e)
            if b["count"] == 1:
                check(b["idempotency_key"] == b["events"][0]["idempotency_key"],
                      "a single event's message has the event's key")
        # chat wants high and above: the escalation and the resolution (high), not the opening.
        def chat_events():
            got = {r["key"] for r in delivered_ok(recv, "/chat/T000/B000/secretpath")}
            rows = c.sql("SELECT d.idempotency_key, e.event FROM notify_deliveries d, "
                         "unnest(d.event_ids) AS x(id) JOIN notify_events e ON e.id = x.id "
                         "WHERE d.webhook = 'chat' AND e.finding_id = %s", (fid,))
            return sorted(ev for key, ev in rows if key in got)

        wait_for(c, lambda: chat_events() == ["escalated", "resolved"], "chat messages")
        chat = [r for r in delivered_ok(recv, "/chat/T000/B000/secretpath")
                if "test message" not in r["body"]["text"]]
        check(all("medium" not in r["body"]["text"] for r in chat), "chat got a medium event")
        check(all(r["body"]["blocks"][1]["elements"][0]["text"] == "idempotency key " + r["key"]
                  for r in chat), "slack message carries its key in a context block")
        check(any("high expiring escalated: shop.example" in r["body"]["blocks"][0]["text"]["text"]
                  for r in chat), "slack lists the event: %r" % [r["body"] for r in chat])
        print("test_notify: a finding's life arrives (json and slack)")

        # ---- acknowledged and suppressed findings do not notify; an expired ack reopens
        before = len(recv.got("/ops"))
        c.capctl_ok("suppress", "add", "--kind", "tls_error", "--reason", "lab hosts")
        insert_finding(c, "tls_error", "low", "name:lab.example", src)
        f2 = insert_finding(c, "untrusted", "medium", "name:intranet.example", other)
        wait_for(c, lambda: "opened" in events_of("/ops", f2), "untrusted opened")
        c.sql("UPDATE findings SET status = 'acknowledged', ack_reason = 'known', "
              "ack_until = now() + interval '3 seconds' WHERE id = %s", (f2,))
        time.sleep(2)
        c.sql("UPDATE findings SET last_seen_at = now() WHERE id = %s", (f2,))
        wait_for(c, lambda: "reopened" in events_of("/ops", f2), "reopened after ack expiry")
        kinds_seen = [e["kind"] for r in recv.got("/ops")[before:] if r["body"] and r["body"].get("events")
                      for e in r["body"]["events"]]
        check("tls_error" not in kinds_seen, "a suppressed finding was notified")
        check(c.sql("SELECT count(*) FROM notify_events WHERE kind = 'tls_error'")[0][0] == 0,
              "a suppressed finding wrote an event")
        print("test_notify: suppressed and acknowledged findings stay quiet; expiry reopens")

        # ---- a run that opens hundreds of findings: one digest per webhook
        run = c.sql("INSERT INTO discovery_runs (source_id, trigger, status, started_at, "
                    "heartbeat_at, attempts) VALUES (%s, 'manual', 'running', now(), now(), 1) "
                    "RETURNING id", (src,))[0][0]
        n = 300
        c.sql("INSERT INTO findings (kind, severity, subject_key, source_id, run_id) "
              "SELECT CASE WHEN i %% 10 = 0 THEN 'self_signed' ELSE 'pqc_vulnerable' END, "
              "CASE WHEN i %% 10 = 0 THEN 'high' ELSE 'info' END, 'name:h' || i || '.example', "
              "%s, %s FROM generate_series(1, %s) AS i", (src, run, n))
        time.sleep(2)  # the run is still going: its events wait for it
        check(not [r for r in recv.got("/ops") if r["body"] and r["body"].get("run_id") == run],
              "events of a run in progress were sent before it ended")
        c.sql("UPDATE discovery_runs SET status = 'succeeded', finished_at = now() WHERE id = %s",
              (run,))
        wait_for(c, lambda: [r for r in delivered_ok(recv, "/ops") if r["body"].get("run_id") == run],
                 "digest delivered to ops")
        wait_for(c, lambda: [r for r in delivered_ok(recv, "/chat/T000/B000/secretpath")
                             if "run %d" % run in r["body"]["text"]], "digest delivered to chat")
        time.sleep(2)
        digests = [r for r in recv.got("/ops") if r["body"] and r["body"].get("run_id") == run]
        keys = {r["key"] for r in digests}
        check(len(keys) == 1, "ops: want one digest for the run, got keys %r" % keys)
        d = digests[0]["body"]
        check(d["digest"] is True and d["count"] == n and d["counts"] == {"opened": n},
              "digest counts: %r" % {k: d[k] for k in ("digest", "count", "counts")})
        check(len(d["events"]) == 50 and d["omitted"] == n - 50, "digest list bounded")
        check(all(e["severity"] == "high" for e in d["events"][:n // 10]),
              "digest lists the most severe first")
        check(len(digests[0]["raw"]) < 64 * 1024, "digest body bounded: %d bytes" % len(digests[0]["raw"]))
        check(d["idempotency_key"].startswith("cap:digest:s%d:r%d:" % (src, run))
              and d["idempotency_key"].endswith(":n%d" % n), "digest key: %r" % d["idempotency_key"])
        chat = [r for r in recv.got("/chat/T000/B000/secretpath") if "run %d" % run in r["body"]["text"]]
        check(len({r["key"] for r in chat}) == 1, "chat: one digest")
        check("%d changes" % (n // 10) in chat[0]["body"]["text"],
              "chat digest counts only high and above: %r" % chat[0]["body"]["text"])
        check(len(chat[0]["body"]["blocks"][0]["text"]["text"]) <= 3000, "slack section bounded")
        print("test_notify: %d findings of one run arrive as one digest per webhook (json %d "
              "bytes, slack %d bytes)" % (n, len(digests[0]["raw"]), len(chat[0]["raw"])))

        # A run that lasts sends what it has once the oldest of its events waited 2 minutes
        # (the wait is shortened here by dating the events back).
        lrun = c.sql("INSERT INTO discovery_runs (source_id, trigger, status, started_at, "
                     "heartbeat_at, attempts) VALUES (%s, 'manual', 'running', now(), now(), 1) "
                     "RETURNING id", (other,))[0][0]
        for i in range(3):
            insert_finding(c, "weak_key", "high", "name:long%d.example" % i, other, lrun)
        time.sleep(1.5)
        check(not [r for r in recv.got("/ops") if r["body"] and r["body"].get("run_id") == lrun],
              "events of a running run went out before the hold")
        c.sql("UPDATE discovery_runs SET heartbeat_at = now() WHERE id = %s", (lrun,))
        c.sql("UPDATE notify_events SET created_at = created_at - interval '3 minutes' "
              "WHERE id = (SELECT min(id) FROM notify_events WHERE run_id = %s)", (lrun,))
        wait_for(c, lambda: [r for r in delivered_ok(recv, "/ops")
                             if r["body"].get("run_id") == lrun], "digest of a long run")
        lr = [r for r in recv.got("/ops") if r["body"] and r["body"].get("run_id") == lrun]
        check(len(lr) == 1 and lr[0]["body"]["count"] == 3, "long run: one digest of its 3 events")
        check(c.run_row(lrun)["status"] == "running", "the long run is still running")
        c.sql("UPDATE discovery_runs SET status = 'succeeded', finished_at = now() WHERE id = %s",
              (lrun,))

        # ---- a 4xx answer: dead at once, dead-lettered
        recv.scripts["/broken"] = ["400"] * 10
        rid = insert_finding(c, "revoked", "critical", "name:revoked.example", src)
        row = wait_for(c, lambda: c.sql_dicts("SELECT * FROM notify_deliveries WHERE webhook = "
                                              "'broken' AND status = 'dead'"), "broken dead")[0]
        check(row["attempts"] == 1 and row["http_status"] == 400 and "HTTP 400" in row["error"],
              "a 4xx delivery: %r" % {k: row[k] for k in ("attempts", "http_status", "error")})
        check("/broken" not in row["error"] or "secret" not in row["error"], "error shows the path")
        dl = c.redis().xrange(c.dead_stream)
        check(any(b"HTTP 400" in v for _, f in dl for v in f.values()),
              "the dead delivery is in the dead-letter stream")
        del rid

        # ---- a webhook at an address the network policy refuses: dead at once, with its reason
        insert_finding(c, "ct_log_misbehaving", "high", "source:%d" % other, other)
        row = wait_for(c, lambda: c.sql_dicts("SELECT * FROM notify_deliveries WHERE webhook = "
                                              "'meta' AND status = 'dead'"), "meta dead")[0]
        check(row["attempts"] == 1 and row["http_status"] is None
              and "refused by network policy" in row["error"] and "/hook" not in row["error"],
              "a refused webhook address: %r" % {k: row[k] for k in ("attempts", "error")})

        # ---- 429 with Retry-After: 3 is waited out, with the same key
        recv.scripts["/limited"] = ["429"]
        drun = c.sql("INSERT INTO discovery_runs (source_id, trigger, status, started_at, "
                     "heartbeat_at, attempts) VALUES (%s, 'manual', 'running', now(), now(), 5) "
                     "RETURNING id", (other,))[0][0]
        c.sql("UPDATE discovery_runs SET status = 'dead', finished_at = now() WHERE id = %s", (drun,))
        wait_for(c, lambda: delivered_ok(recv, "/limited"), "limited delivered after a 429")
        lim = recv.got("/limited")
        check(len(lim) == 2 and lim[0]["key"] == lim[1]["key"], "429 then 200, one key: %r"
              % [(r["step"], r["key"]) for r in lim])
        check(lim[1]["t"] - lim[0]["t"] >= 2.9, "Retry-After 3 not honoured: %.2fs"
              % (lim[1]["t"] - lim[0]["t"]))
        check(lim[1]["body"]["events"][0]["event"] == "dead", "run dead event: %r" % lim[1]["body"])

        # ---- a failed run: 500, a timeout, then a worker killed mid-delivery
        recv.scripts["/flaky"] = ["500", ("stall", 4), ("stall", 8)]
        frun = c.sql("INSERT INTO discovery_runs (source_id, trigger, status, started_at, "
                     "heartbeat_at, attempts) VALUES (%s, 'manual', 'running', now(), now(), 1) "
                     "RETURNING id", (other,))[0][0]
        c.sql("UPDATE discovery_runs SET status = 'failed', finished_at = now(), "
              "error = 'boom' WHERE id = %s", (frun,))
        wait_for(c, lambda: len(recv.got("/flaky")) >= 3, "third attempt reaches the receiver",
                 timeout=90)
        time.sleep(0.5)  # the worker is now inside the stalled request
        c.stop(worker, signal.SIGKILL)
        worker2 = c.start_worker()
        wait_for(c, lambda: delivered_ok(recv, "/flaky"), "flaky delivered after the kill",
                 timeout=120)
        fl = recv.got("/flaky")
        keys = {r["key"] for r in fl}
        check(len(keys) == 1, "every attempt carries the same key: %r" % keys)
        check(all(r["body"]["idempotency_key"] == r["key"] for r in fl), "body key = header key")
        check(fl[0]["body"]["events"][0]["event"] == "failed"
              and fl[0]["body"]["events"][0]["run_id"] == frun, "flaky got the failed run")
        row = wait_for(c, lambda: c.sql_dicts("SELECT * FROM notify_deliveries WHERE webhook = "
                                              "'flaky' AND status = 'delivered'"), "flaky row")[0]
        check(row["attempts"] >= 4, "flaky: want at least 4 attempts, got %d" % row["attempts"])
        print("test_notify: 500, timeout and a SIGKILL mid-delivery: delivered, %d attempts, one key"
              % row["attempts"])

        # ---- an older worker dead-letters a notify_deliver job it does not know: the scheduler
        # publishes the delivery again from PostgreSQL, whether the entry was trimmed or not
        c.stop(worker2)
        old_fid = insert_finding(c, "expired", "critical", "name:old.example", other)
        wait_for(c, lambda: c.sql("SELECT count(*) FROM notify_deliveries d JOIN notify_events e "
                                  "ON e.id = ANY(d.event_ids) WHERE e.finding_id = %s "
                                  "AND d.stream_id IS NOT NULL", (old_fid,))[0][0] == 2,
                 "deliveries of the new finding published")
        rd = c.redis()
        got = rd.xreadgroup(c.group, "old-worker", {c.stream: ">"}, count=100)
        taken = [eid for _, entries in got for eid, _ in entries]
        check(len(taken) == 2, "the old worker reads both deliveries: %r" % got)
        for i, eid in enumerate(taken):
            rd.xadd(c.dead_stream, {b"entry": eid, b"reason": b"job field \"type\": unknown job type"})
            rd.xack(c.stream, c.group, eid)
            if i == 0:
                rd.xdel(c.stream, eid)
        worker3 = c.start_worker()
        wait_for(c, lambda: "expired" in [e["kind"] for r in delivered_ok(recv, "/ops")
                                          for e in (r["body"].get("events") or [])],
                 "a delivery lost by an old worker arrives", timeout=60)
        wait_for(c, lambda: c.sql("SELECT count(*) FROM notify_deliveries d JOIN notify_events e "
                                  "ON e.id = ANY(d.event_ids) WHERE e.finding_id = %s "
                                  "AND d.status = 'delivered'", (old_fid,))[0][0] == 2,
                 "both lost deliveries delivered (one entry trimmed, one acked in place)")
        check(any(e.get("event") == "delivery_republished" for e in c.log_events(sched)),
              "the scheduler republished the lost deliveries")
        print("test_notify: deliveries an older worker dropped are published again")

        # ---- none lost: every event a webhook wants is in a delivered message it received
        wait_for(c, lambda: c.sql("SELECT count(*) FROM notify_deliveries "
                                  "WHERE status IN ('queued', 'sending')")[0][0] == 0,
                 "all deliveries finished")
        wait_for(c, lambda: c.sql("SELECT count(*) FROM notify_events WHERE dispatched_at IS NULL")[0][0] == 0,
                 "all events dispatched")
        rows = c.sql("SELECT d.idempotency_key, e.id FROM notify_deliveries d, "
                     "unnest(d.event_ids) AS e(id) WHERE d.webhook = 'ops' AND d.status = 'delivered'")
        got_keys = {r["key"] for r in delivered_ok(recv, "/ops")}
        covered = {eid for key, eid in rows if key in got_keys}
        want = {r[0] for r in c.sql("SELECT id FROM notify_events")}
        check(want and want <= covered, "ops: events never delivered: %s" % sorted(want - covered)[:20])
        m = c.sql_dicts("SELECT status, count(*) AS n FROM notify_deliveries GROUP BY status")
        print("test_notify: every one of %d events reached ops; deliveries %s"
              % (len(want), {r["status"]: r["n"] for r in m}))
        # Dashboards read the deliveries through the view, as the read-only role may.
        c.sql("CREATE ROLE notify_reader LOGIN IN ROLE cap_dashboard")
        c.sql("SET ROLE notify_reader")
        view = c.sql_dicts("SELECT webhook, status, count(*) AS n, sum(events) AS events "
                           "FROM cap_notify_deliveries GROUP BY 1, 2 ORDER BY 1, 2")
        c.sql("RESET ROLE")
        check({(r["webhook"], r["status"]) for r in view} >= {("broken", "dead"), ("flaky", "delivered"),
                                                             ("ops", "delivered")},
              "cap_notify_deliveries: %r" % view)
        lst = c.capctl_json("notify", "list")
        byname = {w["name"]: w for w in lst}
        check(byname["broken"]["dead"] == 1 and byname["flaky"]["delivered"] == 1,
              "notify list counts: %r" % lst)
        c.assert_running(sched)
        c.assert_running(worker3)


if __name__ == "__main__":
    main()
