/* Per-run helpers for executors: loading the source definition (any type: its descriptor
 * parses the spec), the fencing check every write transaction starts with, and progress
 * counters. */
#include "worker/executor.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/pg.h"

static const char SQL_LOAD_SOURCE[] =
    "SELECT " CAP_SOURCE_COLUMNS_SQL " FROM discovery_sources s WHERE s.id = $1";

static const char SQL_FENCE[] =
    "SELECT 1 FROM discovery_runs WHERE id = $1 AND attempts = $2 AND status = 'running' "
    "FOR SHARE";

/* $1 run, $2 attempt, $3..$8 items total, done, ok, failed, new certificates, drifts (-1:
 * unchanged), $9 stats to merge. The new values are computed once (v), and the older columns
 * are written from them in the same statement; the fence is checked again on the row updated. */
static const char SQL_PROGRESS[] =
    "WITH v AS (SELECT id, "
    "CASE WHEN $3::bigint < 0 THEN items_total ELSE $3::bigint END AS total, "
    "CASE WHEN $4::bigint < 0 THEN items_done ELSE $4::bigint END AS done, "
    "CASE WHEN $5::bigint < 0 THEN items_ok ELSE $5::bigint END AS ok, "
    "CASE WHEN $6::bigint < 0 THEN items_failed ELSE $6::bigint END AS failed, "
    "CASE WHEN $7::bigint < 0 THEN new_certificates ELSE $7::bigint END AS new_certs, "
    "CASE WHEN $8::bigint < 0 THEN drift_count ELSE $8::bigint END AS drifts, "
    "stats || coalesce($9::jsonb, '{}'::jsonb) AS stats "
    "FROM discovery_runs WHERE id = $1 AND attempts = $2 AND status = 'running') "
    "UPDATE discovery_runs r SET items_total = v.total, items_done = v.done, items_ok = v.ok, "
    "items_failed = v.failed, new_certificates = v.new_certs, drift_count = v.drifts, "
    "stats = v.stats, targets_total = v.total, targets_done = v.done, "
    "ok_count = CASE WHEN v.stats ? 'matches' THEN cap_run_stat(v.stats, 'matches') "
    "ELSE v.ok END, "
    "unreachable_count = cap_run_stat(v.stats, 'unreachable'), heartbeat_at = now() "
    "FROM v WHERE r.id = v.id AND r.attempts = $2 AND r.status = 'running'";

static char *dup_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

void cap_source_cleanup(struct cap_source *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->type);
    free(s->schedule);
    if (s->desc)
        cap_source_spec_free(s->desc, s->spec);
    memset(s, 0, sizeof *s);
}

int cap_source_from_row(const PGresult *r, int row, int col0, struct cap_source *out,
                        struct cap_err *err)
{
    struct cap_source s = {0};
    s.id = cap_pg_get_i64(r, row, col0 + 0);
    s.name = dup_or_null(r, row, col0 + 1);
    s.type = dup_or_null(r, row, col0 + 2);
    s.schedule = dup_or_null(r, row, col0 + 3);
    if (!s.name || !s.type || !s.schedule) {
        cap_err_set(err, CAP_E_NOMEM, "loading source %lld: out of memory", (long long)s.id);
        cap_source_cleanup(&s);
        return -1;
    }
    /* A type this build does not know keeps no spec: finding no executor says so later. */
    s.desc = cap_source_type_find(s.type);
    if (s.desc && cap_source_spec_parse(s.desc, PQgetvalue(r, row, col0 + 4), &s.spec, err) < 0) {
        cap_err_prefix(err, "source \"%s\": ", s.name);
        s.desc = NULL;
        cap_source_cleanup(&s);
        return -1;
    }
    *out = s;
    return 0;
}

int cap_source_load(PGconn *c, int64_t id, struct cap_source *out, struct cap_err *err)
{
    char ib[24];
    const char *p[] = {cap_pg_i64(ib, id)};
    PGresult *r = cap_pg_exec(c, "load source", SQL_LOAD_SOURCE, 1, p, err);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        cap_err_set(err, CAP_E_INVALID, "source %lld no longer exists", (long long)id);
        return -1;
    }
    int rc = cap_source_from_row(r, 0, 0, out, err);
    PQclear(r);
    return rc;
}

int cap_run_fence(struct cap_run_ctx *ctx, struct cap_err *err)
{
    char rb[24], ab[24];
    const char *p[] = {cap_pg_i64(rb, ctx->run_id), cap_pg_i64(ab, ctx->attempt)};
    PGresult *r = cap_pg_exec(ctx->pg, "fence run", SQL_FENCE, 2, p, err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    PQclear(r);
    if (n != 1) {
        cap_err_set(err, CAP_E_FENCED, "run %lld: attempt %lld is no longer current",
                    (long long)ctx->run_id, (long long)ctx->attempt);
        return -1;
    }
    return 0;
}

int cap_run_progress(struct cap_run_ctx *ctx, const struct cap_progress *p, struct cap_err *err)
{
    if (p->stats) {
        struct json_object *o = json_tokener_parse(p->stats);
        bool object = o && json_object_is_type(o, json_type_object);
        json_object_put(o);
        if (!object) {
            char q[CAP_ERR_VALUE_MAX * 4 + 8];
            cap_err_set(err, CAP_E_INVALID, "run %lld: progress stats are not a JSON object: \"%s\"",
                        (long long)ctx->run_id,
                        cap_err_quote(q, sizeof(q), p->stats, strlen(p->stats)));
            return -1;
        }
    }
    char b[8][24];
    const char *params[] = {cap_pg_i64(b[0], ctx->run_id),
                            cap_pg_i64(b[1], ctx->attempt),
                            cap_pg_i64(b[2], p->items_total),
                            cap_pg_i64(b[3], p->items_done),
                            cap_pg_i64(b[4], p->items_ok),
                            cap_pg_i64(b[5], p->items_failed),
                            cap_pg_i64(b[6], p->new_certificates),
                            cap_pg_i64(b[7], p->drifts),
                            p->stats};
    PGresult *r = cap_pg_exec(ctx->pg, "update run progress", SQL_PROGRESS, 9, params, err);
    if (!r)
        return -1;
    int n = (int)strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    if (n != 1) {
        cap_err_set(err, CAP_E_FENCED, "run %lld: attempt %lld is no longer current",
                    (long long)ctx->run_id, (long long)ctx->attempt);
        return -1;
    }
    return 0;
}
