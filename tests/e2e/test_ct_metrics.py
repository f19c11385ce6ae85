"""CT lag you can see: while a ct_log source reads the test CT log, the worker's /metrics shows
entries read and matched going up, the checkpoint lag going down and requests counted by
outcome (rate limits included); after the read, the counts are exact, the lag is 0 and the last
successful read is now."""

import time

import harness
from ctlog_util import TestLog, add_source, checkpoint, source_id, wait_idle
from test_ops_metrics import get, parse, promtool_check, total

ENTRIES = 3000


def main():
    with harness.Cluster(name="ctmetrics") as c, \
            TestLog(c.tmpdir, entries=ENTRIES, batch_max=50) as log:
        c.capctl_ok("migrate")
        c.start_scheduler()
        mport = harness.free_port()
        worker = c.start_worker(config_overrides={
            "telemetry.metrics_listen": "127.0.0.1:%d" % mport})
        c.wait_for(lambda: get(mport, "/metrics")[0] == 200, timeout=60, what="worker /metrics")
        # Two rate limits, then slow answers: the read takes several seconds, so the scrapes
        # below land in the middle of it.
        log.fault("429", count=2, arg=1)
        log.fault("slow", count=100, arg=0.4)
        t0 = time.time()
        sid = add_source(c, "lagging", "--domain", "example.com", "--domain",
                         "XN--BCHER-KVA.example", "--log", log.url, "--log-key", log.key_file,
                         "--backfill-from", "0")
        url = log.url
        during = []  # (entries read, lag, ok requests) scraped while the run was running

        def running():
            rows = c.sql("SELECT count(*) FROM discovery_runs WHERE source_id = %s AND "
                         "status = 'running'", (sid,))
            return rows[0][0] > 0

        deadline = time.time() + 180
        while time.time() < deadline:
            st, body = get(mport, "/metrics")
            assert st == 200, body
            is_running = running()
            m = parse(body)
            if is_running:
                during.append((total(m, "cap_ct_entries_read_total", log=url),
                               total(m, "cap_ct_checkpoint_lag_entries", log=url),
                               total(m, "cap_ct_requests_total", log=url, outcome="ok")))
            if (checkpoint(c, sid, url) or {}).get("next_index") == ENTRIES and not is_running:
                break
            time.sleep(0.2)
        wait_idle(c, sid, timeout=60)
        print("scrapes during the read: %s" % during)

        reads = [r for r, _, _ in during]
        mid = [r for r in reads if 0 < r < ENTRIES]
        assert len(set(mid)) >= 2, \
            "entries read should move during the read (seen %s)" % sorted(set(reads))
        assert reads == sorted(reads), "a counter never goes down: %s" % reads
        lags = [lag for _, lag, _ in during if lag > 0]
        assert lags and max(lags) <= ENTRIES and min(lags) < max(lags), \
            "the lag should go down during the read: %s" % [lag for _, lag, _ in during]
        oks = [ok for _, _, ok in during]
        assert len(set(oks)) >= 2, "requests should be counted as they complete: %s" % oks

        st, body = get(mport, "/metrics")
        m = parse(body)
        promtool_check(body, "cap-worker")
        truth = log.truth()
        matches = sum(1 for t in truth if t["match"])
        assert total(m, "cap_ct_entries_read_total", log=url) == ENTRIES, body
        assert total(m, "cap_ct_entries_matched_total", log=url) == matches, (matches, body)
        assert total(m, "cap_ct_checkpoint_lag_entries", log=url) == 0, body
        assert total(m, "cap_ct_requests_total", log=url, outcome="rate_limited") == 2, body
        assert total(m, "cap_ct_requests_total", log=url, outcome="ok") >= ENTRIES // 50, body
        assert total(m, "cap_ct_requests_total", log=url, outcome="error") == 0, body
        last = total(m, "cap_ct_last_read_timestamp_seconds", log=url)
        assert t0 <= last <= time.time() + 1, (t0, last)

        # The per-source view agrees: caught up.
        lag = c.sql_dicts("SELECT * FROM cap_ct_source_lag WHERE source_id = %s", (sid,))
        assert len(lag) == 1 and lag[0]["lag_entries"] == 0 and lag[0]["log_url"] == url, lag
        c.assert_running(worker)
        c.check_sanitizers()
        print("test_ct_metrics: ok (%d scrapes during the read, %d matches)"
              % (len(during), matches))


if __name__ == "__main__":
    main()
