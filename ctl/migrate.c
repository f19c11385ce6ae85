/* `capctl migrate`: applies the embedded migrations in order, each in its own transaction,
 * recorded in schema_migrations, under an advisory lock so replicas may run it at once. */
#include "ctl/migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pg.h"
#include "ctl/out.h"

static const char SQL_TRY_LOCK[] = "SELECT pg_try_advisory_lock($1::bigint)";
static const char SQL_LOCK[] = "SELECT pg_advisory_lock($1::bigint)";
static const char SQL_UNLOCK[] = "SELECT pg_advisory_unlock($1::bigint)";
static const char SQL_CREATE_TABLE[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version integer PRIMARY KEY,"
                                       " name text NOT NULL,"
                                       " checksum text NOT NULL,"
                                       " applied_at timestamptz NOT NULL DEFAULT now())";
static const char SQL_COMMENT_TABLE[] =
    "COMMENT ON TABLE schema_migrations IS "
    "'Migrations applied by capctl migrate: version, file name, SHA-256 of the file, when.'";
static const char SQL_APPLIED[] =
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version";
static const char SQL_RECORD[] =
    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1::int, $2, $3)";
static const char SQL_HAS_TABLE[] = "SELECT to_regclass('schema_migrations') IS NOT NULL";

/* Status of every known migration joined with what the database recorded. $1 versions, $2
 * names, $3 checksums of this binary's migrations. Between head and tail: the applied set (the
 * table, or an empty set when the table does not exist yet). */
static const char SQL_STATUS_HEAD[] =
    "SELECT coalesce(k.version, m.version) AS version, coalesce(k.name, m.name) AS name,"
    " CASE WHEN m.version IS NULL THEN 'pending' WHEN k.version IS NULL THEN 'unknown'"
    "      WHEN m.checksum <> k.checksum THEN 'changed' ELSE 'applied' END AS status,"
    " coalesce(m.checksum, k.checksum) AS checksum, m.applied_at"
    " FROM unnest($1::int[], $2::text[], $3::text[]) AS k(version, name, checksum)"
    " FULL JOIN ";
static const char SQL_STATUS_TAIL[] = " AS m ON m.version = k.version ORDER BY 1";
static const char STATUS_TABLE[] = "schema_migrations";
static const char STATUS_NONE[] =
    "(SELECT NULL::int AS version, NULL::text AS name, NULL::text AS checksum,"
    " NULL::timestamptz AS applied_at WHERE false)";

/* Runs a statement whose result is not needed, with no parameters. */
static int simple(PGconn *c, const char *name, const char *sql, struct cap_err *err)
{
    return cap_pg_cmd(c, name, sql, 0, NULL, err);
}

/* Line number (1-based) of byte offset pos (1-based, as PostgreSQL reports it) in sql. */
static int line_of(const char *sql, size_t len, long pos)
{
    int line = 1;
    for (long i = 0; i < pos - 1 && (size_t)i < len; i++)
        if (sql[i] == '\n')
            line++;
    return line;
}

/* Runs one migration's SQL inside the open transaction. The text is our own, embedded at
 * build time, and holds many statements, so it goes through the simple query protocol. */
static int exec_migration(PGconn *c, const struct cap_ctl_migration *m, struct cap_err *err)
{
    PGresult *r = PQexec(c, m->sql);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
        PQclear(r);
        return 0;
    }
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *pos = r ? PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION) : NULL;
    char where[48] = "";
    if (pos) {
        char *end = NULL;
        long p = strtol(pos, &end, 10);
        if (end != pos && p > 0)
            snprintf(where, sizeof where, " at line %d", line_of(m->sql, m->len, p));
    }
    char clean[160];
    snprintf(clean, sizeof clean, "%s", msg ? msg : PQerrorMessage(c));
    size_t l = strlen(clean);
    while (l && (clean[l - 1] == '\n' || clean[l - 1] == ' '))
        clean[--l] = '\0';
    cap_err_set(err, CAP_E_INVALID, "migration %s failed%s: %s (SQLSTATE %s)", m->name, where,
                clean, state ? state : "none");
    PQclear(r);
    return -1;
}

/* Applies one migration and records it, in one transaction. */
static int apply_one(PGconn *c, const struct cap_ctl_migration *m, struct cap_err *err)
{
    if (simple(c, "begin migration", "BEGIN", err) < 0)
        return -1;
    char v[24];
    snprintf(v, sizeof v, "%d", m->version);
    const char *p[] = {v, m->name, m->checksum};
    if (exec_migration(c, m, err) < 0 ||
        cap_pg_cmd(c, "record migration", SQL_RECORD, 3, p, err) < 0 ||
        simple(c, "commit migration", "COMMIT", err) < 0) {
        PQclear(PQexec(c, "ROLLBACK"));
        return -1;
    }
    return 0;
}

static const struct cap_ctl_migration *find(const struct cap_ctl_migration *list, size_t n,
                                            int version)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].version == version)
            return &list[i];
    return NULL;
}

/* Checks what the database recorded against list; fills applied[i] for each known migration
 * already applied. Unknown applied versions are reported on stderr (a newer capctl ran). */
static int check_applied(PGconn *c, const struct cap_ctl_migration *list, size_t n, bool *applied,
                         struct cap_err *err)
{
    PGresult *r = cap_pg_exec(c, "read schema_migrations", SQL_APPLIED, 0, NULL, err);
    if (!r)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        int version = (int)cap_pg_get_i64(r, i, 0);
        const char *name = PQgetvalue(r, i, 1);
        const char *sum = PQgetvalue(r, i, 2);
        const struct cap_ctl_migration *m = find(list, n, version);
        if (!m) {
            fprintf(stderr,
                    "capctl: warning: the database has migration %s (version %d) which this "
                    "capctl does not know; a newer capctl applied it\n",
                    name, version);
            continue;
        }
        if (strcmp(m->checksum, sum) != 0) {
            cap_err_set(err, CAP_E_INVALID,
                        "migration %s was changed after it was applied (checksum %.12s... in the "
                        "database, %.12s... in this capctl); applied migrations must never be "
                        "edited: add a new numbered migration instead",
                        m->name, sum, m->checksum);
            rc = -1;
            break;
        }
        applied[m - list] = true;
    }
    PQclear(r);
    return rc;
}

int cap_ctl_migrate_apply(PGconn *c, const struct cap_ctl_migration *list, size_t n, bool quiet,
                          struct cap_err *err)
{
    const char *key[] = {CAP_CTL_MIGRATE_LOCK_KEY};
    PGresult *r = cap_pg_exec(c, "take migrate lock", SQL_TRY_LOCK, 1, key, err);
    if (!r)
        return -1;
    bool got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!got) {
        fprintf(stderr, "capctl: waiting for another capctl migrate to finish\n");
        if (cap_pg_cmd(c, "wait for migrate lock", SQL_LOCK, 1, key, err) < 0)
            return -1;
    }

    int rc = -1;
    bool *applied = calloc(n ? n : 1, sizeof *applied);
    if (!applied) {
        cap_err_set(err, CAP_E_NOMEM, "migrate: out of memory");
        goto out;
    }
    if (simple(c, "create schema_migrations", SQL_CREATE_TABLE, err) < 0 ||
        simple(c, "comment schema_migrations", SQL_COMMENT_TABLE, err) < 0 ||
        check_applied(c, list, n, applied, err) < 0)
        goto out;
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (applied[i])
            continue;
        if (apply_one(c, &list[i], err) < 0)
            goto out;
        if (!quiet)
            printf("applied %s\n", list[i].name);
        done++;
    }
    if (!quiet && done == 0)
        printf("up to date (%zu migrations applied)\n", n);
    rc = 0;
out:
    free(applied);
    /* The lock belongs to the connection: released here, or when the connection ends anyway. */
    struct cap_err ignore = {0};
    cap_pg_cmd(c, "release migrate lock", SQL_UNLOCK, 1, key, &ignore);
    return rc;
}

/* Writes "{1,2,3}" for the versions of list into a malloc'd string. */
static char *versions_literal(const struct cap_ctl_migration *list, size_t n)
{
    size_t cap = 3 + n * 12;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, cap - o, "%s%d", i ? "," : "", list[i].version);
    snprintf(s + o, cap - o, "}");
    return s;
}

int cap_ctl_migrate_status(PGconn *c, const struct cap_ctl_migration *list, size_t n, bool json,
                           struct cap_err *err)
{
    PGresult *r = cap_pg_exec(c, "look for schema_migrations", SQL_HAS_TABLE, 0, NULL, err);
    if (!r)
        return -1;
    bool has = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);

    const char **names = calloc(n ? n : 1, sizeof *names);
    const char **sums = calloc(n ? n : 1, sizeof *sums);
    char *vers = versions_literal(list, n);
    char *name_lit = NULL, *sum_lit = NULL;
    int rc = -1;
    if (!names || !sums || !vers) {
        cap_err_set(err, CAP_E_NOMEM, "migrate status: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = list[i].name;
        sums[i] = list[i].checksum;
    }
    name_lit = cap_pg_text_array(names, n);
    sum_lit = cap_pg_text_array(sums, n);
    if (!name_lit || !sum_lit) {
        cap_err_set(err, CAP_E_NOMEM, "migrate status: out of memory");
        goto out;
    }
    char sql[sizeof SQL_STATUS_HEAD + sizeof STATUS_NONE + sizeof SQL_STATUS_TAIL];
    snprintf(sql, sizeof sql, "%s%s%s", SQL_STATUS_HEAD, has ? STATUS_TABLE : STATUS_NONE,
             SQL_STATUS_TAIL);
    const char *p[] = {vers, name_lit, sum_lit};
    if (cap_ctl_out_query(c, json, false, "migrate status", sql, 3, p, "no migrations", err) < 0)
        goto out;
    rc = 0;
out:
    free(names);
    free(sums);
    free(vers);
    free(name_lit);
    free(sum_lit);
    return rc;
}
