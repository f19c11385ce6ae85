"""Inventory writer against a migrated throwaway PostgreSQL: runs the C driver
tests/unit/test_inventory.c in its --pg mode (three runs through the real writer: certificate,
endpoint and observation rows, drift once per changed endpoint and never twice for one run,
fencing, findings raised and resolved; then re-scans that confirm without rewriting), then
checks the rows it left from outside."""

import harness


def main():
    with harness.Cluster(name="inventory", start_redis=False) as c:
        c.capctl_ok("migrate")
        harness.run_driver("tests/test_inventory", "--pg", c.pg_url)

        # From outside: one drift in the first scenario (and one in the re-scans), every run
        # counted, each open finding unique.
        # (and two in the run where two endpoints swap certificates)
        assert c.sql("SELECT count(*) FROM drift_events")[0][0] == 4
        first = "source_id = (SELECT id FROM discovery_sources WHERE name = 'inv')"
        runs = c.sql("SELECT targets_done, ok_count, unreachable_count, new_certificates, "
                     "drift_count FROM discovery_runs WHERE " + first + " ORDER BY id")
        assert runs == [(4, 2, 1, 4, 0), (3, 2, 1, 1, 1), (4, 2, 2, 1, 0), (50, 7, 0, 0, 0)], runs
        # the same runs in the generic counters (the last one written as a CT run would)
        items = c.sql("SELECT items_total, items_done, items_ok, items_failed "
                      "FROM discovery_runs WHERE " + first + " ORDER BY id")
        assert items == [(0, 4, 2, 2), (0, 3, 2, 1), (0, 4, 2, 2), (100, 50, 49, 1)], items
        dup = c.sql("SELECT kind, subject_key, count(*) FROM findings WHERE status = 'open' "
                    "GROUP BY 1, 2 HAVING count(*) > 1")
        assert dup == [], dup
        obs = c.sql("SELECT count(*) FROM endpoint_observations GROUP BY endpoint_id, run_id "
                    "HAVING count(*) > 1")
        assert obs == [], obs
        bad = c.sql("SELECT count(*) FROM findings WHERE status = 'resolved' "
                    "AND resolved_at IS NULL")
        assert bad == [(0,)], bad
        # the re-scans' runs: every observation written, confirmations dropped at the end
        runs = c.sql("SELECT items_done, items_ok, new_certificates, drift_count "
                     "FROM discovery_runs WHERE source_id = (SELECT id FROM discovery_sources "
                     "WHERE name = 'inv2') ORDER BY id")
        assert runs == [(4, 4, 5, 0), (4, 4, 0, 0), (5, 5, 0, 0), (5, 5, 0, 1), (5, 5, 0, 0),
                        (5, 5, 0, 2)], runs
        assert c.sql("SELECT count(*) FROM run_confirmed_findings") == [(0,)]
    print("test_inventory: ok")


if __name__ == "__main__":
    main()
