"""Statements kept prepared on a connection (common/pg.c, cap_pg_keep_prepared), against a
throwaway PostgreSQL: runs the C driver tests/unit/test_pg.c in its --pg mode (one prepared
statement per distinct text, a text rebuilt in the same buffer never mistaken for the last one,
a statement a migration or a pooler invalidated prepared again). The workers' connections keep
their statements prepared by default, so every end-to-end test of a worker runs through it."""

import harness


def main():
    with harness.Cluster(name="pg-prepared", start_redis=False) as c:
        c.capctl_ok("migrate")
        harness.run_driver("tests/test_pg", "--pg", c.pg_url, timeout=120)
    print("test_pg_prepared: ok")


if __name__ == "__main__":
    main()
