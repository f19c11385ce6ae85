/* common/pg.c: statements kept prepared on a connection (cap_pg_keep_prepared). Without
 * arguments, the parts that need no server; with --pg URL (run by tests/e2e/test_pg_prepared.py
 * against a throwaway PostgreSQL), what the server sees: one prepared statement per distinct
 * text, results the same as unnamed statements, a text rebuilt in the same buffer never taken
 * for the last one, and a statement that a migration or a pooler invalidated prepared again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pg.h"
#include "tests/unit/test.h"

/* How many statements this session has prepared whose text is sql ("%" for all). */
static long prepared(PGconn *c, const char *like)
{
    struct cap_err e = {0};
    const char *p[] = {like};
    PGresult *r = cap_pg_exec(c, "count prepared",
                              "SELECT count(*) FROM pg_prepared_statements "
                              "WHERE name LIKE 'cap_s%' AND statement LIKE $1",
                              1, p, &e);
    if (!r) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    long n = (long)cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    return n;
}

/* Runs sql with one parameter (NULL: SQL NULL) and returns the first cell as an integer. */
static long long one(PGconn *c, const char *sql, const char *arg)
{
    struct cap_err e = {0};
    const char *p[] = {arg};
    PGresult *r = cap_pg_exec(c, "one", sql, 1, p, &e);
    if (!r) {
        fprintf(stderr, "unexpected error: %s\n", e.msg);
        exit(1);
    }
    long long v = (long long)cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    return v;
}

static void cmd(PGconn *c, const char *sql)
{
    struct cap_err e = {0};
    if (cap_pg_cmd(c, "command", sql, 0, NULL, &e) != 0) {
        fprintf(stderr, "unexpected error: %s\n", e.msg);
        exit(1);
    }
}

static int run_pg(const char *url)
{
    struct cap_err e = {0};
    PGconn *plain = cap_pg_connect(url, "test-pg-plain", &e);
    PGconn *c = cap_pg_connect(url, "test-pg", &e);
    CHECK(plain && c);
    CHECK_EQ(0, cap_pg_keep_prepared(c));
    CHECK_EQ(0, cap_pg_keep_prepared(c)); /* twice: still one cache */

    /* A plain connection prepares nothing. */
    CHECK_EQ(7, one(plain, "SELECT $1::int + 1", "6"));
    CHECK_EQ(0, prepared(plain, "%"));

    /* One prepared statement per distinct text, run with different parameters. */
    const char *add = "SELECT $1::int + 100";
    for (int i = 0; i < 12; i++) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", i);
        CHECK_EQ(i + 100, one(c, add, arg));
    }
    CHECK_EQ(1, prepared(c, "SELECT $1::int + 100"));
    /* NULL parameters as SQL NULL, as unnamed. */
    CHECK_EQ(1, one(c, "SELECT ($1::int IS NULL)::int", NULL));
    CHECK_EQ(0, one(c, "SELECT ($1::int IS NULL)::int", "3"));

    /* The same buffer holding another text: another statement, never the first one's. */
    char buf[64];
    snprintf(buf, sizeof buf, "SELECT $1::int * %d", 2);
    CHECK_EQ(10, one(c, buf, "5"));
    snprintf(buf, sizeof buf, "SELECT $1::int * %d", 3);
    CHECK_EQ(15, one(c, buf, "5"));
    snprintf(buf, sizeof buf, "SELECT $1::int * %d", 2);
    CHECK_EQ(12, one(c, buf, "6"));
    CHECK_EQ(2, prepared(c, "SELECT $1::int * %"));

    /* Errors are the statement's own, with SQLSTATE, and leave the connection usable. */
    struct cap_err e2 = {0};
    const char *bad[] = {"x"};
    CHECK(cap_pg_exec(c, "bad cast", "SELECT $1::int", 1, bad, &e2) == NULL);
    CHECK(strstr(e2.msg, "bad cast: invalid input syntax for type integer") != NULL);
    CHECK(strstr(e2.msg, "(SQLSTATE 22P02)") != NULL);
    CHECK_STR("22P02", cap_pg_last_sqlstate());
    CHECK_EQ(4, one(c, "SELECT $1::int", "4"));
    struct cap_err e3 = {0};
    CHECK(cap_pg_exec(c, "syntax", "SELEC 1", 0, NULL, &e3) == NULL);
    CHECK(strstr(e3.msg, "syntax: syntax error") != NULL);

    /* A migration changes what a statement returns: outside a transaction it is prepared
     * again at once and returns the new shape. */
    cmd(c, "CREATE TABLE t (a int)");
    cmd(c, "INSERT INTO t VALUES (1)");
    const char *star = "SELECT * FROM t WHERE a = $1::int";
    struct cap_err e4 = {0};
    const char *p1[] = {"1"};
    PGresult *r = cap_pg_exec(c, "star", star, 1, p1, &e4);
    CHECK(r && PQnfields(r) == 1);
    PQclear(r);
    cmd(plain, "ALTER TABLE t ADD COLUMN b int DEFAULT 7");
    r = cap_pg_exec(c, "star", star, 1, p1, &e4);
    if (!r)
        fprintf(stderr, "%s\n", e4.msg);
    CHECK(r && PQnfields(r) == 2 && strcmp(PQgetvalue(r, 0, 1), "7") == 0);
    PQclear(r);

    /* Inside a transaction the transaction fails (as for any error), and the retry, in a new
     * transaction, runs the statement prepared again. */
    cmd(plain, "ALTER TABLE t ADD COLUMN x int DEFAULT 8");
    cmd(c, "BEGIN");
    struct cap_err e5 = {0};
    r = cap_pg_exec(c, "star", star, 1, p1, &e5);
    CHECK(r == NULL);
    CHECK(strstr(e5.msg, "(SQLSTATE 0A000)") != NULL);
    cmd(c, "ROLLBACK");
    r = cap_pg_exec(c, "star", star, 1, p1, &e5);
    CHECK(r && PQnfields(r) == 3 && strcmp(PQgetvalue(r, 0, 2), "8") == 0);
    PQclear(r);

    /* A pooler that discards the session's statements: prepared again. */
    cmd(plain, "SELECT 1"); /* (the plain connection is not the one discarded) */
    PGresult *d = PQexec(c, "DEALLOCATE ALL");
    CHECK(d && PQresultStatus(d) == PGRES_COMMAND_OK);
    PQclear(d);
    CHECK_EQ(0, prepared(plain, "%")); /* per session: still nothing there */
    CHECK_EQ(111, one(c, add, "11"));
    CHECK_EQ(1, prepared(c, "SELECT $1::int + 100"));

    /* Many distinct texts: past the cache's size they run unnamed, and still right. */
    for (int i = 0; i < 200; i++) {
        snprintf(buf, sizeof buf, "SELECT $1::int + %d", 1000 + i);
        CHECK_EQ(1000 + i + 1, one(c, buf, "1"));
    }
    long n = prepared(c, "%");
    CHECK(n >= 50 && n <= 96); /* at most STMT_MAX, names never reused */

    PQfinish(c);
    PQfinish(plain);
    return 0;
}

int main(int argc, char **argv)
{
    /* Without a server: numbers in and out. */
    char b[24];
    CHECK_STR("-9223372036854775808", cap_pg_i64(b, INT64_MIN));
    if (argc == 3 && strcmp(argv[1], "--pg") == 0) {
        if (run_pg(argv[2]) != 0)
            return 1;
    } else if (argc != 1) {
        fprintf(stderr, "usage: test_pg [--pg URL]\n");
        return 2;
    }
    printf("test_pg: %d checks passed\n", cap_test_checks);
    return 0;
}
