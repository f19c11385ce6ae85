"""Webhook notifications from a real network scan: a worker scans a loopback fleet of 40
self-signed servers, which opens well over a hundred findings in one run; each webhook gets
one digest for the run (its events held until the run ended), whose counts match the findings
the run opened. A second run that no longer sees the cause of some of them (certificates
swapped for ones the fleet's CA signs) resolves them, and that goes out as one digest too."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness
import tlsfleet

SERVERS = 40


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def main():
    got = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            with lock:
                got.append((self.path, self.headers.get("Idempotency-Key"), body))
            self.send_response(204)
            self.end_headers()

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = "http://127.0.0.1:%d" % srv.server_address[1]
    hooks = [{"name": "ops", "url": url + "/ops"},
             {"name": "sec", "url": url + "/sec", "min_severity": "high", "format": "slack"}]
    try:
        with harness.Cluster("notify-scan", config={"notify.webhooks": hooks}) as c:
            c.migrate()
            fleet = tlsfleet.Fleet(c.tmpdir)
            servers = [fleet.tls("s%d" % i, fleet.cert("s%d.fleet.test" % i, self_signed=True))
                       for i in range(SERVERS)]
            fleet.start()
            try:
                c.start_scheduler()
                c.start_worker()
                sid = c.add_source_sql("fleet", cidrs=[s.addr + "/32" for s in servers],
                                       ports=[fleet.port], timeout_ms=3000)
                run1 = c.wait_run(c.insert_run_sql(sid), timeout=180)
                check(run1["status"] in ("succeeded", "partial"), "run 1: %s" % run1["status"])
                opened = c.sql("SELECT count(*) FROM findings WHERE source_id = %s", (sid,))[0][0]
                high = c.sql("SELECT count(*) FROM findings WHERE source_id = %s AND "
                             "cap_severity_rank(severity) <= 2", (sid,))[0][0]
                check(opened >= 100, "the scan opened only %d findings" % opened)

                def of_run(path, run_id):
                    with lock:
                        return [(k, b) for p, k, b in got if p == path
                                and (b.get("run_id") == run_id or "run %d" % run_id in b.get("text", ""))]

                c.wait_for(lambda: of_run("/ops", run1["id"]) and of_run("/sec", run1["id"]),
                           timeout=60, what="digests of run 1")
                ops = of_run("/ops", run1["id"])
                check(len(ops) == 1, "ops: %d messages for one run" % len(ops))
                key, d = ops[0]
                check(d["digest"] and d["count"] == opened and d["counts"] == {"opened": opened},
                      "ops digest: count %s counts %s, want %d opened" % (d["count"], d["counts"], opened))
                check(key == d["idempotency_key"] and len(d["events"]) == 50
                      and d["omitted"] == opened - 50, "ops digest listing")
                sec = of_run("/sec", run1["id"])
                check(len(sec) == 1 and ("%d changes" % high) in sec[0][1]["text"],
                      "sec digest: want %d high events in one message: %r" % (high, sec))
                print("test_notify_scan: a scan of %d servers opened %d findings: one digest per "
                      "webhook (%d to sec)" % (SERVERS, opened, high))

                for s in servers[:5]:
                    fleet.swap(s, fleet.cert(s.name + ".fleet.test"))
                run2 = c.wait_run(c.insert_run_sql(sid), timeout=180)
                resolved = c.sql("SELECT count(*) FROM findings WHERE source_id = %s AND "
                                 "status = 'resolved'", (sid,))[0][0]
                check(resolved >= 5, "run 2 resolved only %d findings" % resolved)
                c.wait_for(lambda: of_run("/ops", run2["id"]), timeout=60, what="digest of run 2")
                ops2 = of_run("/ops", run2["id"])
                check(len(ops2) == 1, "ops: %d messages for run 2" % len(ops2))
                check(ops2[0][1]["counts"].get("resolved") == resolved,
                      "run 2 digest counts %r, want %d resolved" % (ops2[0][1]["counts"], resolved))
                print("test_notify_scan: run 2 resolved %d findings: one digest %r"
                      % (resolved, ops2[0][1]["counts"]))
            finally:
                fleet.stop()
    finally:
        srv.shutdown()
        srv.server_close()


if __name__ == "__main__":
    main()
