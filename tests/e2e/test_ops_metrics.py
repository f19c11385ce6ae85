"""Live metrics of cap-scheduler and cap-worker: once both are ready, /metrics passes
`promtool check metrics` (Debian package prometheus), lists the documented metrics, and its
counters move when a network scan runs against a local TLS server. (Health and readiness:
test_ops_health.py.)"""

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import harness

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

WORKER_METRICS = ("cap_jobs_started_total", "cap_jobs_finished_total", "cap_job_duration_seconds",
                  "cap_handshakes_total", "cap_handshake_duration_seconds",
                  "cap_handshakes_in_flight", "cap_handshake_slots")
SCHEDULER_METRICS = ("cap_runs_enqueued_total", "cap_scheduler_sweep_duration_seconds",
                     "cap_stream_length", "cap_stream_pending")


def get(port, path, timeout=5):
    """(status, body) of GET http://127.0.0.1:port/path; (None, error) when unreachable."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def parse(text):
    """{(name, frozenset(labels)): value} of a Prometheus text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "unparsable metrics line: %r" % line
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def total(samples, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def promtool_check(text, who):
    exe = shutil.which("promtool")
    if not exe:
        raise AssertionError("missing: promtool (Debian package prometheus)")
    r = subprocess.run([exe, "check", "metrics"], input=text, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("promtool check metrics of %s failed (exit %d):\n%s"
                             % (who, r.returncode, r.stdout))


class TLSServer:
    """A TLS server on 127.0.0.1 that completes handshakes with a certificate made here."""

    def __init__(self, tmpdir):
        self.tmpdir = tmpdir
        self.generation = 0
        self.rotate()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def rotate(self):
        """Serves a new self-signed certificate (new key) from now on."""
        self.generation += 1
        cert = os.path.join(self.tmpdir, "srv%d.pem" % self.generation)
        key = os.path.join(self.tmpdir, "srv%d.key" % self.generation)
        cfg = os.path.join(self.tmpdir, "srv.cnf")
        with open(cfg, "w") as f:
            # An end-entity certificate (openssl's default x509 extensions make a CA).
            f.write("[req]\ndistinguished_name = dn\nx509_extensions = ee\nprompt = no\n"
                    "[dn]\nCN = metrics.test\n"
                    "[ee]\nbasicConstraints = critical, CA:FALSE\n"
                    "subjectAltName = DNS:metrics.test\nextendedKeyUsage = serverAuth\n")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                        "-config", cfg, "-keyout", key, "-out", cert], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.ctx = ctx

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                conn.settimeout(5)
                with self.ctx.wrap_socket(conn, server_side=True) as s:
                    self.handshakes += 1
                    s.settimeout(0.5)
                    try:
                        s.recv(1)
                    except (socket.timeout, OSError, ssl.SSLError):
                        pass
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self):
        self._stop = True
        self.sock.close()
        self.thread.join(5)


def wait_status(c, port, path, status, timeout, what):
    last = [None]

    def probe():
        last[0] = get(port, path)
        return last[0][0] == status
    try:
        c.wait_for(probe, timeout=timeout, what=what)
    except AssertionError as e:
        raise AssertionError("%s; last answer: %r" % (e, last[0]))
    return last[0][1]


def check_logs(c, procs):
    """Every line a program logged is one JSON object with ts, level, component, event."""
    for p in procs:
        n = 0
        for line in c.log_text(p).splitlines():
            if not line.strip() or line.startswith(("==", "    #", "SUMMARY")):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                hint = ""
                if re.match(r"(WARNING|NOTICE|ERROR|INFO|DEBUG):  ", line):
                    hint = (" (a libpq notice printed by libpq's default notice processor: "
                            "install a notice receiver that logs through cap_log)")
                raise AssertionError("%s logged a line that is not JSON: %r%s"
                                     % (p.label, line, hint))
            for key in ("ts", "level", "component", "event"):
                assert key in ev, "%s log line lacks %s: %r" % (p.label, key, line)
            n += 1
        assert n > 0, "%s logged nothing" % p.label


def main():
    wport, sport = harness.free_port(), harness.free_port()
    with harness.Cluster(name="ops-metrics", config={"worker.reclaim_idle": "5s"}) as c:
        c.capctl_ok("migrate")
        w = c.start_worker(config_overrides={"telemetry.metrics_listen": "127.0.0.1:%d" % wport,
                                             "worker.max_concurrent_discovery": 37})
        s = c.start_scheduler(config_overrides={"telemetry.metrics_listen": "127.0.0.1:%d" % sport})
        for p, port in ((w, wport), (s, sport)):
            body = wait_status(c, port, "/healthz", 200, 30, "%s /healthz" % p.label)
            assert body == "ok\n", body
            wait_status(c, port, "/readyz", 200, 30, "%s /readyz ready" % p.label)
            st, _ = get(port, "/nope")
            assert st == 404, st

        before_w = parse(get(wport, "/metrics")[1])
        before_s = parse(get(sport, "/metrics")[1])

        # A real scan moves the counters.
        srv = TLSServer(c.tmpdir)
        try:
            c.capctl_ok("source", "add", "metrics-scan", "--type", "network_scan",
                        "--cidr", "127.0.0.1/32", "--port", srv.port, "--timeout", "3s")
            r = c.capctl("source", "trigger", "metrics-scan", "--wait", timeout=120)
            assert r.returncode == 0, "scan run did not succeed:\n%s\n%s" % (r.stdout, r.stderr)
            assert srv.handshakes >= 1, "the worker never completed a handshake with the server"
        finally:
            srv.close()

        wtext = get(wport, "/metrics")[1]
        stext = get(sport, "/metrics")[1]
        promtool_check(wtext, "cap-worker")
        promtool_check(stext, "cap-scheduler")
        after_w, after_s = parse(wtext), parse(stext)
        names_w = {n for n, _ in after_w} | set(re.findall(r"^# TYPE (\S+)", wtext, re.M))
        names_s = {n for n, _ in after_s} | set(re.findall(r"^# TYPE (\S+)", stext, re.M))
        missing = [m for m in WORKER_METRICS if m not in names_w]
        missing += [m for m in SCHEDULER_METRICS if m not in names_s]
        assert not missing, "metrics missing from /metrics: %s" % missing

        def moved(after, before, name, **labels):
            return total(after, name, **labels) - total(before, name, **labels)

        assert moved(after_w, before_w, "cap_jobs_started_total", source_type="network_scan") == 1
        assert moved(after_w, before_w, "cap_jobs_finished_total", source_type="network_scan") == 1
        assert moved(after_w, before_w, "cap_job_duration_seconds_count",
                     source_type="network_scan") == 1
        assert moved(after_w, before_w, "cap_handshakes_total", outcome="ok") >= 1, \
            "cap_handshakes_total{outcome=\"ok\"} did not move"
        assert moved(after_w, before_w, "cap_handshake_duration_seconds_count") >= 1
        assert total(after_w, "cap_handshake_slots") == 37, \
            "cap_handshake_slots is not worker.max_concurrent_discovery (37)"
        assert 0 <= total(after_w, "cap_handshakes_in_flight") <= 37
        assert moved(after_s, before_s, "cap_scheduler_sweep_duration_seconds_count") >= 1

        assert c.stop(w) == 0 and c.stop(s) == 0, "programs did not exit 0 on SIGTERM"
    print("test_ops_metrics: ok")


if __name__ == "__main__":
    main()
