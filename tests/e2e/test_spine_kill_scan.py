"""kill -9 of a worker in the middle of a real network_scan: the scan of a loopback tarpit (a
listener that accepts and never answers the TLS handshake) is reclaimed by a second worker,
which scans again and ends the run with the timeout recorded once, under attempt 2."""

import signal
import socket
import threading
import time

import harness

TIMEOUT_MS = 6000


class Tarpit:
    """Accepts TCP connections on 127.0.0.1 and holds them open without a byte of answer."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns = []
        self.lock = threading.Lock()
        self.stopping = False
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.conns.append(conn)

    def count(self):
        with self.lock:
            return self.accepted

    def close(self):
        self.stopping = True
        self.sock.close()
        for conn in self.conns:
            conn.close()


def main():
    tarpit = Tarpit()
    try:
        with harness.Cluster(name="kill-scan", config={
                "scheduler.tick": "1s",
                "worker.reclaim_idle": "3s"}) as c:
            c.migrate()
            sid = c.add_source_sql("tarpit", cidrs=["127.0.0.1/32"], ports=[tarpit.port],
                                   timeout_ms=TIMEOUT_MS, concurrency=1)
            c.start_scheduler()
            a = c.start_worker(label="worker-a")
            run_id = c.insert_run_sql(sid)

            c.wait_for(lambda: tarpit.count() >= 1, timeout=20,
                       what="worker-a to connect to the tarpit on port %d" % tarpit.port)
            row = c.run_row(run_id)
            assert row["status"] == "running" and row["attempts"] == 1, harness._short_row(row)
            first_worker = row["worker"]
            assert c.stop(a, sig=signal.SIGKILL) == -signal.SIGKILL
            killed_at = time.time()
            # Nothing was recorded for the half-done scan.
            assert c.sql("SELECT count(*) FROM endpoint_observations WHERE run_id = %s",
                         (run_id,))[0][0] == 0

            c.start_worker(label="worker-b")
            c.wait_for(lambda: tarpit.count() >= 2, timeout=30,
                       what="worker-b to reclaim the run and connect to the tarpit again")
            done = c.wait_run(run_id, timeout=60)
            took = time.time() - killed_at
            assert done["attempts"] == 2, harness._short_row(done)
            assert done["worker"] != first_worker, harness._short_row(done)
            # One unreachable endpoint: the run is partial, not succeeded and not failed.
            assert done["status"] == "partial", harness._short_row(done)
            assert done["unreachable_count"] == 1 and done["ok_count"] == 0, \
                harness._short_row(done)
            obs = c.sql("SELECT o.outcome, e.port FROM endpoint_observations o "
                        "JOIN endpoints e ON e.id = o.endpoint_id WHERE o.run_id = %s",
                        (run_id,))
            assert obs == [("timeout", tarpit.port)], obs
            # The second scan waited for the handshake deadline, not less.
            assert took >= TIMEOUT_MS / 1000.0, "run ended %.1fs after the kill" % took
            assert tarpit.count() == 2, "%d connections to the tarpit" % tarpit.count()
            assert len(c.runs(sid)) == 1
            print("ok: scan reclaimed after kill -9, ended partial with a timeout (%.1fs)" % took)
    finally:
        tarpit.close()


if __name__ == "__main__":
    main()
