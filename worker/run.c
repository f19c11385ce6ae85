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

static const char SQL_FENCE_SHARD[] =
    "SELECT 1 FROM discovery_run_shards WHERE run_id = $1 AND attempts = $2 AND shard = $3 "
    "AND status = 'running' FOR SHARE";

/* A shard's progress: its items and stats on its own row (a trigger sums them into the run).
 * The certificates and drift events it records are counted for the whole run when it ends.
 * $1 run, $2 attempt, $3 shard, $4..$7 items total, done, ok, failed (-1: unchanged), $8
 * stats to merge. */
static const char SQL_PROGRESS_SHARD[] =
    "UPDATE discovery_run_shards SET "
    "items_total = CASE WHEN $4::bigint < 0 THEN items_total ELSE $4::bigint END, "
    "items_done = CASE WHEN $5::bigint < 0 THEN items_done ELSE $5::bigint END, "
    "items_ok = CASE WHEN $6::bigint < 0 THEN items_ok ELSE $6::bigint END, "
    "items_failed = CASE WHEN $7::bigint < 0 THEN items_failed ELSE $7::bigint END, "
    "stats = stats || coalesce($8::jsonb, '{}'::jsonb), heartbeat_at = now() "
    "WHERE run_id = $1 AND attempts = $2 AND shard = $3 AND status = 'running'";

static const char SQL_BEGIN[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

/* $1 run, $2 targets, $3 shard size. */
static const char SQL_SPLIT_SHARDS[] =
    "INSERT INTO discovery_run_shards (run_id, shard, first_target, end_target, items_total) "
    "SELECT $1::bigint, g, (g - 1) * $3::bigint, least(g * $3::bigint, $2::bigint), "
    "least(g * $3::bigint, $2::bigint) - (g - 1) * $3::bigint "
    "FROM generate_series(1, (($2::bigint + $3::bigint - 1) / $3::bigint)::int) AS g";

/* $1 run, $2 attempt, $3 shards. */
static const char SQL_SPLIT_RUN[] =
    "UPDATE discovery_runs SET shards = $3, heartbeat_at = now() "
    "WHERE id = $1 AND attempts = $2 AND status = 'running' AND shards = 0";

static const char SQL_SPLIT_ROLLUP[] = "SELECT cap_run_shards_rollup($1::bigint)";

/* Shards of a run end one at a time: each locks the run first. */
static const char SQL_LOCK_RUN[] =
    "SELECT 1 FROM discovery_runs WHERE id = $1 AND status = 'running' FOR UPDATE";

/* $1 run, $2 shard: the other shards still open, and those that did not complete. */
static const char SQL_OTHER_SHARDS[] =
    "SELECT count(*) FILTER (WHERE status IN ('queued', 'running')), "
    "count(*) FILTER (WHERE status IN ('failed', 'dead')) "
    "FROM discovery_run_shards WHERE run_id = $1 AND shard <> $2";

/* $1 run, $2 attempt, $3 shard, $4 status, $5 error. */
static const char SQL_END_SHARD[] =
    "UPDATE discovery_run_shards SET status = $4, finished_at = now(), "
    "heartbeat_at = now(), error = NULLIF($5, '') "
    "WHERE run_id = $1 AND attempts = $2 AND shard = $3 AND status = 'running'";

static const char SQL_RUN_STATUS[] = "SELECT status FROM discovery_runs WHERE id = $1";

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

static void set_fenced(const struct cap_run_ctx *ctx, struct cap_err *err)
{
    if (ctx->shard > 0)
        cap_err_set(err, CAP_E_FENCED, "run %lld shard %d: attempt %lld is no longer current",
                    (long long)ctx->run_id, (int)ctx->shard, (long long)ctx->attempt);
    else
        cap_err_set(err, CAP_E_FENCED, "run %lld: attempt %lld is no longer current",
                    (long long)ctx->run_id, (long long)ctx->attempt);
}

int cap_run_fence(struct cap_run_ctx *ctx, struct cap_err *err)
{
    char rb[24], ab[24], sb[24];
    const char *p[] = {cap_pg_i64(rb, ctx->run_id), cap_pg_i64(ab, ctx->attempt),
                       cap_pg_i64(sb, ctx->shard)};
    PGresult *r = ctx->shard > 0 ? cap_pg_exec(ctx->pg, "fence shard", SQL_FENCE_SHARD, 3, p, err)
                                 : cap_pg_exec(ctx->pg, "fence run", SQL_FENCE, 2, p, err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    PQclear(r);
    if (n != 1) {
        set_fenced(ctx, err);
        return -1;
    }
    return 0;
}

/* Runs a fenced UPDATE of one row (ctx's run or shard): 0 when it changed the row, -1 with err
 * otherwise (CAP_E_FENCED when it changed none: another attempt owns it). */
static int update_one(struct cap_run_ctx *ctx, const char *what, const char *sql, int n,
                      const char *const *params, struct cap_err *err)
{
    PGresult *r = cap_pg_exec(ctx->pg, what, sql, n, params, err);
    if (!r)
        return -1;
    int rows = (int)strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    if (rows != 1) {
        set_fenced(ctx, err);
        return -1;
    }
    return 0;
}

static void rollback(PGconn *c)
{
    PGresult *r = PQexec(c, SQL_ROLLBACK);
    PQclear(r);
}

int cap_run_split(struct cap_run_ctx *ctx, uint64_t total, uint64_t size, struct cap_err *err)
{
    if (ctx->shard > 0 || size == 0 || total <= size || total > (uint64_t)INT64_MAX ||
        (total + size - 1) / size > 1000000) {
        cap_err_set(err, CAP_E_INVALID, "run %lld: cannot split %llu targets into shards of %llu",
                    (long long)ctx->run_id, (unsigned long long)total, (unsigned long long)size);
        return -1;
    }
    int64_t n = (int64_t)((total + size - 1) / size);
    char rb[24], ab[24], tb[24], zb[24], nb[24];
    const char *ins[] = {cap_pg_i64(rb, ctx->run_id), cap_pg_i64(tb, (int64_t)total),
                         cap_pg_i64(zb, (int64_t)size)};
    const char *upd[] = {rb, cap_pg_i64(ab, ctx->attempt), cap_pg_i64(nb, n)};
    if (cap_pg_cmd(ctx->pg, "begin split", SQL_BEGIN, 0, NULL, err) != 0)
        return -1;
    if (cap_run_fence(ctx, err) != 0 ||
        update_one(ctx, "mark run split", SQL_SPLIT_RUN, 3, upd, err) != 0)
        goto fail;
    if (cap_pg_cmd(ctx->pg, "insert shards", SQL_SPLIT_SHARDS, 3, ins, err) != 0 ||
        cap_pg_cmd(ctx->pg, "sum shards", SQL_SPLIT_ROLLUP, 1, ins, err) != 0 ||
        cap_pg_cmd(ctx->pg, "commit split", SQL_COMMIT, 0, NULL, err) != 0)
        goto fail;
    return (int)n;
fail:
    rollback(ctx->pg);
    return -1;
}

int cap_run_shard_finish(struct cap_run_ctx *ctx, enum cap_run_status status, const char *error,
                         cap_run_last_shard_fn last, void *arg, bool *run_ended,
                         struct cap_err *err)
{
    static const char *const names[] = {"succeeded", "partial", "failed"};
    if (run_ended)
        *run_ended = false;
    char rb[24], ab[24], sb[24];
    const char *p[] = {cap_pg_i64(rb, ctx->run_id), cap_pg_i64(ab, ctx->attempt),
                       cap_pg_i64(sb, ctx->shard), names[status], error ? error : ""};
    const char *other[] = {rb, sb};
    if (ctx->shard <= 0) {
        cap_err_set(err, CAP_E_INVALID, "run %lld: not a shard", (long long)ctx->run_id);
        return -1;
    }
    if (cap_pg_cmd(ctx->pg, "begin shard end", SQL_BEGIN, 0, NULL, err) != 0)
        return -1;
    PGresult *r = cap_pg_exec(ctx->pg, "lock run", SQL_LOCK_RUN, 1, p, err);
    if (!r)
        goto fail;
    int live = PQntuples(r);
    PQclear(r);
    if (live != 1 || cap_run_fence(ctx, err) != 0) {
        if (!cap_err_isset(err))
            set_fenced(ctx, err);
        goto fail;
    }
    if (!(r = cap_pg_exec(ctx->pg, "count open shards", SQL_OTHER_SHARDS, 2, other, err)))
        goto fail;
    int64_t open = cap_pg_get_i64(r, 0, 0), bad = cap_pg_get_i64(r, 0, 1);
    PQclear(r);
    if (open == 0 && bad == 0 && status != CAP_RUN_FAILED && last && last(ctx, arg, err) != 0)
        goto fail;
    if (update_one(ctx, "end shard", SQL_END_SHARD, 5, p, err) != 0)
        goto fail;
    bool run_done = false;
    if (open == 0) {
        if (!(r = cap_pg_exec(ctx->pg, "read run status", SQL_RUN_STATUS, 1, p, err)))
            goto fail;
        run_done = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "running") != 0;
        PQclear(r);
    }
    if (cap_pg_cmd(ctx->pg, "commit shard end", SQL_COMMIT, 0, NULL, err) != 0)
        goto fail;
    if (run_ended)
        *run_ended = run_done;
    return 0;
fail:
    rollback(ctx->pg);
    return -1;
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
    if (ctx->shard > 0) {
        const char *sp[] = {cap_pg_i64(b[0], ctx->run_id),  cap_pg_i64(b[1], ctx->attempt),
                            cap_pg_i64(b[2], ctx->shard),   cap_pg_i64(b[3], p->items_total),
                            cap_pg_i64(b[4], p->items_done), cap_pg_i64(b[5], p->items_ok),
                            cap_pg_i64(b[6], p->items_failed), p->stats};
        return update_one(ctx, "update shard progress", SQL_PROGRESS_SHARD, 8, sp, err);
    }
    const char *params[] = {cap_pg_i64(b[0], ctx->run_id),
                            cap_pg_i64(b[1], ctx->attempt),
                            cap_pg_i64(b[2], p->items_total),
                            cap_pg_i64(b[3], p->items_done),
                            cap_pg_i64(b[4], p->items_ok),
                            cap_pg_i64(b[5], p->items_failed),
                            cap_pg_i64(b[6], p->new_certificates),
                            cap_pg_i64(b[7], p->drifts),
                            p->stats};
    return update_one(ctx, "update run progress", SQL_PROGRESS, 9, params, err);
}
