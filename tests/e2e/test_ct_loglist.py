"""The CT log list as data, end to end: a worker reads its logs from a v3 log list served by the
test CT log (ct.log_list_url) and follows the list as it changes, with no restart: a new shard
appears and is read, an old one retires and is read to its final tree head, then dropped; a log
whose log_id is not its key's hash is refused; a broken or missing list keeps the last good
one."""

import base64
import datetime
import hashlib
import json
import os
import time

from cryptography.hazmat.primitives import serialization

import harness
from ctlog_util import TestLog, add_source, checkpoint, expected, source_id, trigger, wait_idle
from test_ops_metrics import get, parse, total


def key_of(log):
    """(base64 DER SubjectPublicKeyInfo, base64 SHA-256 of it) of a test log's key."""
    with open(log.key_file, "rb") as f:
        pub = serialization.load_pem_public_key(f.read())
    der = pub.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode(), base64.b64encode(hashlib.sha256(der).digest()).decode()


def ts(days):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(desc, log, state, start_days, end_days, tiled=False, log_id=None):
    key, lid = key_of(log)
    e = {"description": desc, "log_id": log_id or lid, "key": key, "mmd": 86400,
         "state": {state: {"timestamp": ts(-60)}},
         "temporal_interval": {"start_inclusive": ts(start_days), "end_exclusive": ts(end_days)}}
    if tiled:
        e["submission_url"] = log.tiled_url
        e["monitoring_url"] = log.tiled_url
    else:
        e["url"] = log.url
    return e


def write_list(path, ops):
    doc = {"version": "1.%d" % int(time.time()), "log_list_timestamp": ts(0), "operators": ops}
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(path + ".tmp", path)


def sightings_of(c, sid, url):
    return c.sql("SELECT log_index, fingerprint_sha256 FROM ct_sightings WHERE source_id = %s "
                 "AND log_url = %s ORDER BY log_index", (sid, url))


def list_row(c, url):
    rows = c.sql_dicts("SELECT * FROM ct_log_list WHERE log_url = %s", (url,))
    return rows[0] if rows else None


def main():
    with harness.Cluster(name="ctlist") as c:
        listpath = os.path.join(c.tmpdir, "log_list.json")
        with TestLog(c.tmpdir, entries=300, batch_max=100, seed=1,
                     extra=["--log-list", listpath]) as a, \
                TestLog(c.tmpdir, entries=200, batch_max=100, seed=2) as b:
            c.capctl_ok("migrate")
            c.start_scheduler()
            mport = harness.free_port()
            worker = c.start_worker(config_overrides={
                "ct.log_list_url": a.url + "log-list.json", "ct.log_list_refresh": "1s",
                "telemetry.metrics_listen": "127.0.0.1:%d" % mport})
            bad_url = a.url + "bad/"
            _, b_id = key_of(b)
            # v1: shard A takes today's certificates; shard B is a future one (its interval
            # starts after the longest certificate issued today ends); a third entry's log_id is
            # another log's.
            bad = entry("Bad id", a, "usable", -30, 200, log_id=b_id)
            bad["url"] = bad_url
            # One this worker cannot read (a URL past its 511 bytes) is left out, not the run
            # failed.
            long_url = a.url + "x" * 600 + "/"
            too_long = entry("Too long", a, "usable", -30, 200)
            too_long["url"] = long_url
            write_list(listpath, [
                {"name": "Test A", "email": ["a@example.com"],
                 "logs": [entry("Test A shard 1", a, "usable", -30, 200), bad, too_long],
                 "tiled_logs": []},
                {"name": "Test B", "email": ["b@example.com"], "logs": [],
                 "tiled_logs": [entry("Test B shard 2", b, "usable", 400, 600, tiled=True)]}])

            sid = add_source(c, "watch", "--domain", "example.com", "--domain",
                             "XN--BCHER-KVA.example", "--backfill-from", "0")
            run = wait_idle(c, sid, timeout=180,
                            until=lambda: (checkpoint(c, sid, a.url) or {}).get("next_index") == 300)
            assert run["status"] == "succeeded", run
            assert any(e.get("event") == "ct_log_refused" and \
                       e.get("log", "").startswith(a.url + "xxxx") and
                       "log url of" in e.get("err", "") for e in c.log_events(worker)), \
                "a log the worker cannot read is logged and left out"
            assert checkpoint(c, sid, b.tiled_url) is None, "a future shard is not read"
            assert checkpoint(c, sid, bad_url) is None, "a refused log is not read"
            got = sightings_of(c, sid, a.url)
            assert [tuple(r) for r in got] == expected(a.truth(), 300), "shard A sightings"
            ra, rb, rbad = list_row(c, a.url), list_row(c, b.tiled_url), list_row(c, bad_url)
            assert ra and ra["current"] and ra["listed"] and ra["state"] == "usable", ra
            assert ra["operator"] == "Test A" and ra["protocol"] == "rfc6962", ra
            assert rb and not rb["current"] and rb["protocol"] == "static-ct", rb
            assert rbad and not rbad["current"] and "does not match the key" in rbad["refused"], \
                rbad
            assert "ct_log_refused" in c.log_text(worker), "the refused log is logged"
            print("v1: shard A read (%d matches), future shard and refused log left alone"
                  % len(got))

            # v2 while the worker runs: A retires after 40 more entries; B takes new
            # certificates now.
            a.grow(40)
            write_list(listpath, [
                {"name": "Test A", "logs": [entry("Test A shard 1", a, "retired", -30, 200)]},
                {"name": "Test B", "tiled_logs": [
                    entry("Test B shard 2", b, "usable", -1, 600, tiled=True)]}])
            time.sleep(1.5)  # past ct.log_list_refresh
            run, _ = trigger(c, "watch", timeout=180)
            assert run["status"] == "succeeded", run
            cpa, cpb = checkpoint(c, sid, a.url), checkpoint(c, sid, b.tiled_url)
            assert cpa["next_index"] == 340, "the retired shard is read to its final tree head: %s" \
                % cpa
            assert cpb and cpb["next_index"] == 200, "the new shard is read: %s" % cpb
            assert [tuple(r) for r in sightings_of(c, sid, a.url)] == expected(a.truth(), 340)
            assert [tuple(r) for r in sightings_of(c, sid, b.tiled_url)] == \
                expected(b.truth(), 200), "shard B sightings"
            ra, rb = list_row(c, a.url), list_row(c, b.tiled_url)
            assert not ra["current"] and ra["state"] == "retired" and ra["left_at"], ra
            assert rb["current"] and rb["left_at"] is None, rb

            # Once caught up, the retired shard is dropped: its growth is not read.
            a.grow(30)
            b.grow(20)
            run, _ = trigger(c, "watch", timeout=180)
            assert run["status"] == "succeeded", run
            assert checkpoint(c, sid, a.url)["next_index"] == 340, "the retired shard is dropped"
            assert checkpoint(c, sid, b.tiled_url)["next_index"] == 220
            print("v2: new shard read from 0, retired shard read to 340 then dropped")

            # A broken list keeps the last good one.
            with open(listpath, "w") as f:
                f.write('{"operators": [')
            time.sleep(1.5)
            b.grow(10)
            run, _ = trigger(c, "watch", timeout=180)
            assert run["status"] == "succeeded", run
            assert checkpoint(c, sid, b.tiled_url)["next_index"] == 230
            # And so does a list that is gone (404).
            os.unlink(listpath)
            time.sleep(1.5)
            b.grow(5)
            run, _ = trigger(c, "watch", timeout=180)
            assert run["status"] == "succeeded", run
            assert checkpoint(c, sid, b.tiled_url)["next_index"] == 235
            fails = [e for e in c.log_events(worker) if e.get("event") == "ct_log_list_failed"]
            assert any("invalid JSON" in e.get("err", "") for e in fails), fails
            assert any("HTTP 404" in e.get("err", "") for e in fails), fails
            assert all(e.get("kept") == "last good list" for e in fails), fails
            events = [e.get("event") for e in c.log_events(worker)]
            reads = events.count("ct_log_list_read")
            assert reads >= 2, "the list was read %d times" % reads

            # The same worker did it all, and its metrics say so.
            c.assert_running(worker)
            st, body = get(mport, "/metrics")
            assert st == 200, body
            m = parse(body)
            assert total(m, "cap_ct_log_list_refreshes_total", outcome="ok") >= 2, body
            assert total(m, "cap_ct_log_list_refreshes_total", outcome="error") >= 2, body
            assert total(m, "cap_ct_log_list_current_logs") == 1, body
            assert total(m, "cap_ct_log_list_last_success_timestamp_seconds") > time.time() - 600
            # The dashboard views see the logs and their states.
            lag = {r["log_url"]: r for r in c.sql_dicts("SELECT * FROM cap_ct_log_lag")}
            assert lag[a.url]["state"] == "retired" and not lag[a.url]["current"], lag
            assert lag[a.url]["tree_size"] == 340 and lag[a.url]["lag_entries"] == 0, lag[a.url]
            assert lag[b.tiled_url]["lag_entries"] == 0 and lag[b.tiled_url]["sources"] == 1
            assert lag[bad_url]["sources"] == 0 and lag[bad_url]["tree_size"] is None
            c.check_sanitizers()
            print("test_ct_loglist: ok (%d list reads, no restart)" % reads)


if __name__ == "__main__":
    main()
