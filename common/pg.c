/* libpq helpers: connections, named parameterised statements, errors with SQLSTATE, and text
 * array conversion. */
#include "common/pg.h"

#include "common/log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <libpq-events.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char last_sqlstate[6];

/* Copies a libpq message (which may span lines, with tabs) as one line without trailing space. */
static void one_line(char *out, size_t n, const char *msg)
{
    size_t o = 0;
    int space = 0;
    for (const char *p = msg; *p && o + 1 < n; p++) {
        if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
            space = o > 0;
            continue;
        }
        if (space && o + 2 < n)
            out[o++] = ' ';
        space = 0;
        out[o++] = *p;
    }
    out[o] = '\0';
}

static void notice_to_log(void *arg, const char *message)
{
    (void)arg;
    char line[300];
    one_line(line, sizeof line, message);
    cap_log(CAP_LOG_WARN, "pg_notice", CAP_LS("err", line));
}

PGconn *cap_pg_connect(const char *url, const char *app, struct cap_err *err)
{
    /* libpq's parse errors quote the offending part of the URL, which may be the password. */
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &perr);
    if (perr)
        PQfreemem(perr);
    if (!opts) {
        cap_err_set(err, CAP_E_INVALID,
                    "connecting to PostgreSQL: database.url does not parse as a connection "
                    "string (check the percent-encoding of user and password)");
        return NULL;
    }
    PQconninfoFree(opts);
    /* Keepalives and a TCP user timeout notice a peer that vanished (a partition) instead of
     * waiting for ever; values in the URL win, since it comes last. */
    const char *keys[] = {"application_name",
                          "connect_timeout",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          NULL};
    const char *vals[] = {app, "10", "1", "15", "5", "3", "30000", url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        cap_err_set(err, CAP_E_NOMEM, "connecting to PostgreSQL: out of memory");
        return NULL;
    }
    /* Server notices (warnings) become log events, never bare text on stdout. */
    PQsetNoticeProcessor(c, notice_to_log, NULL);
    if (PQstatus(c) != CONNECTION_OK) {
        /* libpq's message names host and port, never the password. */
        char msg[200];
        one_line(msg, sizeof msg, PQerrorMessage(c));
        cap_err_set(err, CAP_E_IO, "connecting to PostgreSQL: %s", msg);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* ---- statements kept prepared per connection (cap_pg_keep_prepared) ----
 *
 * A connection that keeps its statements prepared holds, as libpq instance data, the texts it
 * has prepared: each distinct text is parsed once per session as "cap_s<N>", and every later
 * run of the same text binds to it, so the server neither parses it again nor (once its plan
 * cache settles on a generic plan) plans it again. Texts are compared whole, never by address:
 * a statement built in a buffer may differ from the last one built there. */

#define STMT_MAX 96 /* distinct texts per connection; past it, statements run unnamed */

struct stmt_entry {
    uint64_t hash;
    char *sql;
};

struct stmt_cache {
    size_t n;
    struct stmt_entry e[STMT_MAX];
};

static void stmt_cache_clear(struct stmt_cache *sc)
{
    for (size_t i = 0; i < sc->n; i++)
        free(sc->e[i].sql);
    sc->n = 0;
}

static int stmt_event(PGEventId id, void *info, void *arg)
{
    (void)arg;
    if (id == PGEVT_CONNRESET) {
        /* A reset is a new session: nothing is prepared there. */
        struct stmt_cache *sc = PQinstanceData(((PGEventConnReset *)info)->conn, stmt_event);
        if (sc)
            stmt_cache_clear(sc);
    } else if (id == PGEVT_CONNDESTROY) {
        PGconn *c = ((PGEventConnDestroy *)info)->conn;
        struct stmt_cache *sc = PQinstanceData(c, stmt_event);
        if (sc) {
            stmt_cache_clear(sc);
            free(sc);
        }
    }
    return 1;
}

int cap_pg_keep_prepared(PGconn *c)
{
    if (PQinstanceData(c, stmt_event))
        return 0;
    struct stmt_cache *sc = calloc(1, sizeof *sc);
    if (!sc)
        return -1;
    if (!PQregisterEventProc(c, stmt_event, "cap_pg_statements", NULL) ||
        !PQsetInstanceData(c, stmt_event, sc)) {
        free(sc);
        return -1;
    }
    return 0;
}

/* FNV-1a over the text. */
static uint64_t stmt_hash(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

/* The index of sql's entry in sc, preparing it on c first when this session has not; -1 when
 * the cache is full or out of memory (*err_out NULL: run it unnamed), or when the server
 * refused to prepare it (*err_out: its error, reported as the statement's own). */
static long stmt_entry(PGconn *c, struct stmt_cache *sc, const char *sql, int n, PGresult **err_out)
{
    *err_out = NULL;
    uint64_t h = stmt_hash(sql);
    for (size_t i = 0; i < sc->n; i++)
        if (sc->e[i].sql && sc->e[i].hash == h && strcmp(sc->e[i].sql, sql) == 0)
            return (long)i;
    if (sc->n == STMT_MAX)
        return -1;
    char *copy = strdup(sql);
    if (!copy)
        return -1;
    char stmt[24];
    snprintf(stmt, sizeof stmt, "cap_s%zu", sc->n);
    PGresult *p = PQprepare(c, stmt, sql, n, NULL);
    if (!p || PQresultStatus(p) != PGRES_COMMAND_OK) {
        free(copy);
        *err_out = p;
        return -1;
    }
    PQclear(p);
    sc->e[sc->n].hash = h;
    sc->e[sc->n].sql = copy;
    return (long)sc->n++;
}

/* Runs sql on c through its prepared statement; NULL when the connection does not keep
 * statements prepared or this one cannot be (the caller runs it unnamed). A prepared statement
 * that no longer fits (a migration changed what it returns: SQLSTATE 0A000) or is gone (a
 * pooler discarded the session's statements: 26000) is forgotten, and prepared again under a
 * new name (names follow the count of entries ever made, never reused); outside a transaction
 * that happens at once and the statement runs again, inside one the transaction has failed
 * and the caller's retry prepares it. */
static PGresult *exec_prepared(PGconn *c, const char *sql, int n, const char *const *params)
{
    struct stmt_cache *sc = PQinstanceData(c, stmt_event);
    if (!sc)
        return NULL;
    bool idle = PQtransactionStatus(c) == PQTRANS_IDLE;
    for (int attempt = 0;; attempt++) {
        PGresult *perr = NULL;
        long i = stmt_entry(c, sc, sql, n, &perr);
        if (i < 0)
            return perr;
        char stmt[24];
        snprintf(stmt, sizeof stmt, "cap_s%ld", i);
        PGresult *r = PQexecPrepared(c, stmt, n, params, NULL, NULL, 0);
        const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (!state || (strcmp(state, "0A000") != 0 && strcmp(state, "26000") != 0))
            return r;
        free(sc->e[i].sql);
        sc->e[i].sql = NULL;
        if (!idle || attempt > 0)
            return r;
        PQclear(r);
    }
}

PGresult *cap_pg_exec(PGconn *c, const char *name, const char *sql, int n,
                      const char *const *params, struct cap_err *err)
{
    last_sqlstate[0] = '\0';
    PGresult *r = exec_prepared(c, sql, n, params);
    if (!r)
        r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return r;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    snprintf(last_sqlstate, sizeof last_sqlstate, "%s", state ? state : "");
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg)
        msg = PQerrorMessage(c);
    char clean[200];
    one_line(clean, sizeof clean, msg ? msg : "unknown error");
    int code = (PQstatus(c) != CONNECTION_OK || !state || state[0] == '0' || state[0] == '5' ||
                strncmp(state, "40", 2) == 0 || strncmp(state, "57", 2) == 0 ||
                strncmp(state, "08", 2) == 0)
                   ? CAP_E_IO
                   : CAP_E_INVALID;
    cap_err_set(err, code, "%s: %s (SQLSTATE %s)", name, clean, state ? state : "none");
    PQclear(r);
    return NULL;
}

int cap_pg_cmd(PGconn *c, const char *name, const char *sql, int n, const char *const *params,
               struct cap_err *err)
{
    PGresult *r = cap_pg_exec(c, name, sql, n, params, err);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

const char *cap_pg_last_sqlstate(void)
{
    return last_sqlstate;
}

const char *cap_pg_i64(char *buf, int64_t v)
{
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

int64_t cap_pg_get_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const char *s = PQgetvalue(r, row, col);
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s)
        return 0;
    return (int64_t)v;
}

void cap_pg_free_strv(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

char **cap_pg_parse_text_array(const char *lit, size_t *n_out, struct cap_err *err)
{
    size_t len = strlen(lit);
    if (len < 2 || lit[0] != '{' || lit[len - 1] != '}') {
        cap_err_set(err, CAP_E_INVALID, "text array: expected {...}");
        return NULL;
    }
    /* At most one element per byte, plus the terminator. */
    char **v = calloc(len + 1, sizeof *v);
    char *buf = malloc(len + 1);
    if (!v || !buf) {
        free(v);
        free(buf);
        cap_err_set(err, CAP_E_NOMEM, "text array: out of memory");
        return NULL;
    }
    size_t n = 0, i = 1;
    while (i < len - 1) {
        size_t b = 0;
        int quoted = 0;
        if (lit[i] == '"') {
            quoted = 1;
            i++;
            while (i < len - 1 && lit[i] != '"') {
                if (lit[i] == '\\' && i + 1 < len - 1)
                    i++;
                buf[b++] = lit[i++];
            }
            if (lit[i] != '"')
                goto bad;
            i++;
        } else {
            while (i < len - 1 && lit[i] != ',')
                buf[b++] = lit[i++];
        }
        buf[b] = '\0';
        if (quoted || strcmp(buf, "NULL") != 0) {
            v[n] = strdup(buf);
            if (!v[n])
                goto bad;
            n++;
        }
        if (i < len - 1) {
            if (lit[i] != ',')
                goto bad;
            i++;
        }
    }
    free(buf);
    if (n_out)
        *n_out = n;
    return v;
bad:
    free(buf);
    cap_pg_free_strv(v);
    cap_err_set(err, CAP_E_INVALID, "text array: malformed literal");
    return NULL;
}

char *cap_pg_i64_array(const int64_t *v, size_t n)
{
    char *s = malloc(n * 22 + 3);
    if (!s)
        return NULL;
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(s + o, 23, "%s%" PRId64, i ? "," : "", v[i]);
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

char *cap_pg_text_array(const char *const *v, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += 2 * strlen(v[i]) + 3;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t o = 0;
    out[o++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            out[o++] = ',';
        out[o++] = '"';
        for (const char *p = v[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                out[o++] = '\\';
            out[o++] = *p;
        }
        out[o++] = '"';
    }
    out[o++] = '}';
    out[o] = '\0';
    return out;
}
