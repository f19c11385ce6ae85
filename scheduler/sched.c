/* The scheduler's sweep and its wait on LISTEN/NOTIFY. Every step takes its rows with
 * FOR UPDATE SKIP LOCKED, so any number of replicas may sweep at once without doubling work.
 * Retention (retention.observations, retention.runs) prunes old rows in small batches at the
 * end of a sweep, one replica at a time. */
#include "scheduler/sched.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include "common/job.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/pg.h"
#include "common/redis.h"
#include "common/schedule.h"
#include "common/stream.h"
#include "scheduler/notify.h"

static const char SQL_UNJUDGED[] = "SELECT id, schedule FROM discovery_sources "
                                   "WHERE schedule_judged IS DISTINCT FROM schedule "
                                   "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";

static const char SQL_JUDGE_OK[] =
    "UPDATE discovery_sources s SET schedule_judged = t.sched, last_error = NULL, "
    "next_run_at = CASE WHEN t.n < 0 THEN NULL ELSE to_timestamp(t.n) END "
    "FROM unnest($1::bigint[], $2::bigint[], $3::text[]) AS t(id, n, sched) "
    "WHERE s.id = t.id AND s.schedule = t.sched";

static const char SQL_JUDGE_BAD[] =
    "UPDATE discovery_sources SET schedule_judged = schedule, enabled = false, "
    "next_run_at = NULL, last_error = $2 WHERE id = $1";

static const char SQL_DUE[] =
    "SELECT id, schedule, extract(epoch FROM next_run_at)::bigint, "
    "extract(epoch FROM now())::bigint FROM discovery_sources "
    "WHERE enabled AND next_run_at <= now() AND schedule_judged = schedule "
    "ORDER BY next_run_at LIMIT $1 FOR UPDATE SKIP LOCKED";

static const char SQL_INSERT_RUNS[] =
    "INSERT INTO discovery_runs (source_id, trigger) "
    "SELECT unnest($1::bigint[]), 'schedule' "
    "ON CONFLICT (source_id) WHERE status IN ('queued', 'running') DO NOTHING";

static const char SQL_MOVE_NEXT[] =
    "UPDATE discovery_sources s SET next_run_at = "
    "CASE WHEN t.n < 0 THEN NULL ELSE to_timestamp(t.n) END "
    "FROM unnest($1::bigint[], $2::bigint[]) AS t(id, n) WHERE s.id = t.id";

static const char SQL_RECOVER_STALE[] =
    "WITH stale AS (SELECT id FROM discovery_runs WHERE status = 'running' AND shards = 0 "
    "  AND heartbeat_at < now() - make_interval(secs => $1::double precision) "
    "  ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED) "
    "UPDATE discovery_runs r SET "
    "status = CASE WHEN r.attempts >= $2 THEN 'dead' ELSE 'queued' END, "
    "finished_at = CASE WHEN r.attempts >= $2 THEN now() END, "
    "stream_id = NULL, published_at = NULL, "
    "error = format('worker %s lost: no heartbeat since %s', r.worker, r.heartbeat_at) "
    "FROM stale WHERE r.id = stale.id RETURNING r.id, r.status";

/* The same for the shards of split runs (migration 017). A sharded run is never stale itself. */
static const char SQL_RECOVER_STALE_SHARDS[] =
    "WITH stale AS (SELECT run_id, shard FROM discovery_run_shards WHERE status = 'running' "
    "  AND heartbeat_at < now() - make_interval(secs => $1::double precision) "
    "  ORDER BY heartbeat_at LIMIT 1000 FOR UPDATE SKIP LOCKED) "
    "UPDATE discovery_run_shards sh SET "
    "status = CASE WHEN sh.attempts >= $2 THEN 'dead' ELSE 'queued' END, "
    "finished_at = CASE WHEN sh.attempts >= $2 THEN now() END, "
    "stream_id = NULL, published_at = NULL, "
    "error = format('worker %s lost: no heartbeat since %s', sh.worker, sh.heartbeat_at) "
    "FROM stale WHERE sh.run_id = stale.run_id AND sh.shard = stale.shard "
    "RETURNING sh.run_id, sh.status, sh.shard";

/* Unpublished runs first (new ones), then runs published so long ago that their entry may be
 * lost; each arm walks its own partial index. */
static const char SQL_TO_PUBLISH[] =
    "SELECT id, source_id, attempts, stream_id, trigger FROM discovery_runs "
    "WHERE status = 'queued' AND id IN ("
    " (SELECT id FROM discovery_runs WHERE status = 'queued' AND stream_id IS NULL "
    "  ORDER BY id LIMIT $1) "
    " UNION ALL "
    " (SELECT id FROM discovery_runs WHERE status = 'queued' AND stream_id IS NOT NULL "
    "  AND published_at < now() - make_interval(secs => $2::double precision) "
    "  ORDER BY published_at LIMIT $1)) "
    "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED";

static const char SQL_PUBLISHED[] =
    "UPDATE discovery_runs r SET stream_id = t.sid, published_at = now() "
    "FROM unnest($1::bigint[], $2::text[]) AS t(id, sid) WHERE r.id = t.id";

/* Shards of a run go to the stream one at a time: the next when a worker claimed the last one
 * (the claim wakes the schedulers), so every idle worker takes a share of a large run instead
 * of the first one reading them all. Then shards published so long ago that their entry may be
 * lost. Columns as SQL_TO_PUBLISH, with the shard number for trigger. */
static const char SQL_TO_PUBLISH_SHARDS[] =
    "SELECT sh.run_id, r.source_id, sh.attempts, sh.stream_id, sh.shard "
    "FROM discovery_run_shards sh JOIN discovery_runs r ON r.id = sh.run_id "
    "WHERE sh.status = 'queued' AND (sh.run_id, sh.shard) IN ("
    " (SELECT DISTINCT ON (x.run_id) x.run_id, x.shard FROM discovery_run_shards x "
    "  WHERE x.status = 'queued' AND x.stream_id IS NULL AND NOT EXISTS ("
    "   SELECT 1 FROM discovery_run_shards y WHERE y.run_id = x.run_id "
    "   AND y.status = 'queued' AND y.stream_id IS NOT NULL) "
    "  ORDER BY x.run_id, x.shard LIMIT $1) "
    " UNION ALL "
    " (SELECT x.run_id, x.shard FROM discovery_run_shards x "
    "  WHERE x.status = 'queued' AND x.stream_id IS NOT NULL "
    "  AND x.published_at < now() - make_interval(secs => $2::double precision) "
    "  ORDER BY x.published_at LIMIT $1)) "
    "ORDER BY sh.run_id, sh.shard LIMIT $1 FOR UPDATE OF sh SKIP LOCKED";

static const char SQL_PUBLISHED_SHARDS[] =
    "UPDATE discovery_run_shards sh SET stream_id = t.sid, published_at = now() "
    "FROM unnest($1::bigint[], $3::int[], $2::text[]) AS t(id, shard, sid) "
    "WHERE sh.run_id = t.id AND sh.shard = t.shard";

/* What publish() reads and writes: runs, or shards. */
struct outbox {
    const char *what;
    const char *select_sql;
    const char *published_sql;
    bool shards;
};
static const struct outbox OUTBOX_RUNS = {"runs", SQL_TO_PUBLISH, SQL_PUBLISHED, false};
static const struct outbox OUTBOX_SHARDS = {"shards", SQL_TO_PUBLISH_SHARDS, SQL_PUBLISHED_SHARDS,
                                            true};

static const char SQL_EXPIRE_ACKS[] = "SELECT cap_findings_expire()";

/* ---- retention ----------------------------------------------------------------------------
 *
 * A pass walks old rows oldest first through a cursor ((time, id) of the last row looked at),
 * PRUNE_BATCH rows per statement, observations first and then finished runs. Each statement
 * commits on its own, so no lock lives longer than one batch; a tick spends at most
 * PRUNE_TICK_BUDGET_S on it and the pass goes on at the next tick. A pass starts at most every
 * PRUNE_PASS_TICKS ticks, by the one replica that holds the advisory lock for it. */

/* Session advisory lock held by the replica running a pass (fixed for ever: every version of
 * the scheduler must take the same lock). */
#define PRUNE_LOCK_KEY "7161530812449580415"
#define PRUNE_BATCH 1000         /* rows one statement looks at (observations, detached rows) */
#define PRUNE_RUN_BATCH 200      /* runs one statement looks at */
#define PRUNE_TICK_BUDGET_S 0.5  /* time one tick may spend pruning */
#define PRUNE_TICK_STATEMENTS 50 /* statements one tick may run */
#define PRUNE_PASS_TICKS 60      /* a new pass starts at most every 60 ticks (5 min by default) */

static const char SQL_PRUNE_LOCK[] = "SELECT pg_try_advisory_lock($1::bigint)";
static const char SQL_PRUNE_UNLOCK[] = "SELECT pg_advisory_unlock($1::bigint)";

/* An old observation c goes unless it is one of these: the newest observation of its endpoint
 * (all of them, in a tie); when ok with a leaf, the newest such (drift compares a new leaf with
 * it); one a drift event or an unresolved finding names (capctl endpoints history shows a drift
 * on its observation); one of a run that is not over. The newest ones are scalar subqueries, so
 * that each is one probe of an index on endpoint_id, never a join with the whole table. */
#define OBS_PRUNABLE                                                                               \
    "c.observed_at < (SELECT max(n.observed_at) FROM endpoint_observations n "                     \
    " WHERE n.endpoint_id = c.endpoint_id) "                                                       \
    "AND (c.outcome <> 'ok' OR c.fingerprint_sha256 IS NULL OR c.run_id < (SELECT max(n.run_id) "  \
    " FROM endpoint_observations n WHERE n.endpoint_id = c.endpoint_id AND n.outcome = 'ok' "      \
    " AND n.fingerprint_sha256 IS NOT NULL)) "                                                     \
    "AND NOT EXISTS (SELECT 1 FROM drift_events d WHERE d.endpoint_id = c.endpoint_id "            \
    " AND d.run_id = c.run_id) "                                                                   \
    "AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.endpoint_id = c.endpoint_id "                \
    " AND f.run_id = c.run_id AND f.status <> 'resolved') "                                        \
    "AND EXISTS (SELECT 1 FROM discovery_runs r WHERE r.id = c.run_id "                            \
    " AND r.status IN ('succeeded', 'partial', 'failed', 'dead'))"

/* $1 retention (s), $2 and $3 the cursor, $4 batch size. Looks at the next $4 observations older
 * than the retention and deletes those OBS_PRUNABLE lets go. Returns the rows looked at, the rows
 * deleted and the new cursor. */
static const char SQL_PRUNE_OBS[] =
    "WITH c AS (SELECT o.id, o.endpoint_id, o.run_id, o.observed_at, o.outcome, "
    " o.fingerprint_sha256 FROM endpoint_observations o "
    " WHERE o.observed_at < now() - make_interval(secs => $1::double precision) "
    " AND (o.observed_at, o.id) > ($2::timestamptz, $3::bigint) "
    " ORDER BY o.observed_at, o.id LIMIT $4::int), "
    "gone AS (DELETE FROM endpoint_observations x USING c WHERE x.id = c.id AND " OBS_PRUNABLE
    " RETURNING 1), "
    "last AS (SELECT observed_at, id FROM c ORDER BY observed_at DESC, id DESC LIMIT 1) "
    "SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM gone), "
    "(SELECT observed_at FROM last), (SELECT id FROM last)";

/* A finished run r goes unless a row that cannot lose it names it (an observation, a drift
 * event: both cascade; an unresolved finding), or it is its source's newest run or newest
 * successful run (source health reads them). */
#define RUN_PRUNABLE                                                                               \
    "NOT EXISTS (SELECT 1 FROM endpoint_observations o WHERE o.run_id = r.id) "                    \
    "AND NOT EXISTS (SELECT 1 FROM drift_events d WHERE d.run_id = r.id) "                         \
    "AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.run_id = r.id AND f.status <> 'resolved') "  \
    "AND r.id <> (SELECT max(y.id) FROM discovery_runs y WHERE y.source_id = r.source_id) "        \
    "AND r.id IS DISTINCT FROM (SELECT y.id FROM discovery_runs y "                                \
    " WHERE y.source_id = r.source_id AND y.status IN ('succeeded', 'partial') "                   \
    " ORDER BY y.id DESC LIMIT 1)"

/* $1 retention (s), $2 and $3 the cursor, $4 batch size. Looks at the next $4 runs that ended
 * before the retention; returns the rows looked at, the new cursor and the ids of those that
 * may go. */
static const char SQL_PRUNE_RUNS_PICK[] =
    "WITH c AS (SELECT x.id, x.source_id, coalesce(x.finished_at, x.queued_at) AS t "
    " FROM discovery_runs x WHERE x.status IN ('succeeded', 'partial', 'failed', 'dead') "
    " AND coalesce(x.finished_at, x.queued_at) "
    "  < now() - make_interval(secs => $1::double precision) "
    " AND (coalesce(x.finished_at, x.queued_at), x.id) > ($2::timestamptz, $3::bigint) "
    " ORDER BY coalesce(x.finished_at, x.queued_at), x.id LIMIT $4::int), "
    "last AS (SELECT t, id FROM c ORDER BY t DESC, id DESC LIMIT 1) "
    "SELECT (SELECT count(*) FROM c), (SELECT t FROM last), (SELECT id FROM last), "
    "(SELECT coalesce(array_agg(r.id ORDER BY r.id), '{}') FROM c r WHERE " RUN_PRUNABLE ")";

/* $1 run ids, $2 batch size. Rows whose foreign key would be set to NULL by the runs' delete
 * get it here, $2 at a time (rows a worker holds are skipped and seen again by the next pass):
 * certificates first stored by those runs, and resolved findings they last refreshed. */
static const char SQL_PRUNE_RUNS_DETACH[] =
    "WITH c AS (UPDATE discovered_certificates d SET first_seen_run_id = NULL "
    " WHERE d.fingerprint_sha256 IN (SELECT x.fingerprint_sha256 FROM discovered_certificates x "
    "  WHERE x.first_seen_run_id = ANY($1::bigint[]) ORDER BY x.fingerprint_sha256 "
    "  LIMIT $2::int FOR UPDATE SKIP LOCKED) RETURNING 1), "
    "f AS (UPDATE findings f SET run_id = NULL "
    " WHERE f.id IN (SELECT x.id FROM findings x WHERE x.run_id = ANY($1::bigint[]) "
    "  AND x.status = 'resolved' ORDER BY x.id LIMIT $2::int FOR UPDATE SKIP LOCKED) "
    " RETURNING 1) "
    "SELECT (SELECT count(*) FROM c), (SELECT count(*) FROM f)";

/* $1 run ids. Deletes those still free to go that nothing names any more, so the delete
 * cascades to nothing and sets nothing to NULL. */
static const char SQL_PRUNE_RUNS_DELETE[] =
    "DELETE FROM discovery_runs r WHERE r.id = ANY($1::bigint[]) "
    "AND r.status IN ('succeeded', 'partial', 'failed', 'dead') "
    "AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.run_id = r.id) "
    "AND NOT EXISTS (SELECT 1 FROM discovered_certificates d WHERE d.first_seen_run_id = r.id) "
    "AND " RUN_PRUNABLE;

enum prune_phase {
    PRUNE_IDLE,        /* between passes */
    PRUNE_OBS,         /* observations */
    PRUNE_RUNS_PICK,   /* runs: choose the next batch */
    PRUNE_RUNS_DETACH, /* runs: clear references to the batch */
    PRUNE_RUNS_DELETE, /* runs: delete the batch */
    PRUNE_DONE,        /* the pass has looked at everything */
};

struct prune {
    enum prune_phase phase;
    bool locked;       /* this connection holds PRUNE_LOCK_KEY */
    double next_pass;  /* monotonic time the next pass may start */
    double pass_start; /* monotonic time the pass started */
    char cur_t[64];    /* cursor: time and id of the last row looked at */
    int64_t cur_id;
    char *runs;     /* bigint array literal of the runs the batch deletes, or NULL */
    bool runs_last; /* that batch reached the end of the old runs */
    long long obs_deleted, runs_deleted, detached;
};

struct sched {
    const struct cap_config *cfg;
    atomic_int *stop;
    PGconn *pg;
    redisContext *rd;
    struct cap_metric *m_enqueued, *m_sweep, *m_published, *m_recovered, *m_disabled;
    struct cap_metric *m_stream_len, *m_stream_pending, *m_pruned;
    struct prune prune;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int begin(PGconn *c, struct cap_err *err)
{
    return cap_pg_cmd(c, "begin", "BEGIN", 0, NULL, err);
}

static int commit(PGconn *c, struct cap_err *err)
{
    return cap_pg_cmd(c, "commit", "COMMIT", 0, NULL, err);
}

static void rollback(PGconn *c)
{
    if (PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
}

/* Opens the transaction of one sweep step and runs its locking SELECT, with $1 the batch size
 * and $2 extra when given. NULL (transaction rolled back) on failure. */
static PGresult *locked_select(struct sched *s, const char *name, const char *sql,
                               const char *extra, struct cap_err *err)
{
    if (begin(s->pg, err) < 0)
        return NULL;
    char lim[24];
    const char *p[] = {cap_pg_i64(lim, s->cfg->scheduler_batch), extra};
    PGresult *r = cap_pg_exec(s->pg, name, sql, extra ? 2 : 1, p, err);
    if (!r)
        rollback(s->pg);
    return r;
}

/* Parses each source whose schedule text changed since it was last judged: computes its next
 * due time, or disables it with the parser's message in last_error. */
static int judge(struct sched *s, int *more, struct cap_err *err)
{
    *more = 0;
    PGresult *r = locked_select(s, "select unjudged sources", SQL_UNJUDGED, NULL, err);
    if (!r)
        return -1;
    int64_t now = (int64_t)time(NULL);
    int n = PQntuples(r);
    int64_t *ids = calloc((size_t)n + 1, sizeof *ids), *next = calloc((size_t)n + 1, sizeof *next);
    const char **texts = calloc((size_t)n + 1, sizeof *texts);
    int nok = 0;
    if (!ids || !next || !texts) {
        cap_err_set(err, CAP_E_NOMEM, "judging schedules: out of memory");
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        int64_t id = cap_pg_get_i64(r, i, 0);
        const char *text = PQgetvalue(r, i, 1);
        struct cap_schedule sch;
        struct cap_err perr = {0};
        if (cap_schedule_parse(text, &sch, &perr) == 0) {
            ids[nok] = id;
            next[nok] = cap_schedule_next(&sch, now, (uint64_t)id);
            texts[nok] = text;
            nok++;
        } else {
            char ib[24];
            const char *q[] = {cap_pg_i64(ib, id), perr.msg};
            if (cap_pg_cmd(s->pg, "disable source", SQL_JUDGE_BAD, 2, q, err) < 0)
                goto fail;
            cap_metric_add(s->m_disabled, NULL, 1);
            cap_log(CAP_LOG_WARN, "source_disabled", CAP_LI("source_id", id),
                    CAP_LS("err", perr.msg));
        }
    }
    if (nok > 0) {
        /* All valid schedules in one statement: a thousand new sources cost one round trip. */
        char *ia = cap_pg_i64_array(ids, (size_t)nok), *na = cap_pg_i64_array(next, (size_t)nok);
        char *ta = cap_pg_text_array(texts, (size_t)nok);
        const char *q[] = {ia, na, ta};
        int rc = ia && na && ta ? cap_pg_cmd(s->pg, "set next runs", SQL_JUDGE_OK, 3, q, err) : -1;
        if (!ia || !na || !ta)
            cap_err_set(err, CAP_E_NOMEM, "judging schedules: out of memory");
        free(ia);
        free(na);
        free(ta);
        if (rc < 0)
            goto fail;
    }
    *more = n >= s->cfg->scheduler_batch;
    free(ids);
    free(next);
    free(texts);
    PQclear(r);
    return commit(s->pg, err);
fail:
    free(ids);
    free(next);
    free(texts);
    PQclear(r);
    rollback(s->pg);
    return -1;
}

/* Turns due sources into queued runs and moves their next_run_at, in one transaction. */
static int enqueue_due(struct sched *s, int *more, struct cap_err *err)
{
    *more = 0;
    PGresult *r = locked_select(s, "select due sources", SQL_DUE, NULL, err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        return commit(s->pg, err);
    }
    int64_t *ids = calloc((size_t)n, sizeof *ids), *next = calloc((size_t)n, sizeof *next);
    if (!ids || !next) {
        free(ids);
        free(next);
        PQclear(r);
        rollback(s->pg);
        cap_err_set(err, CAP_E_NOMEM, "enqueue due sources: out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        ids[i] = cap_pg_get_i64(r, i, 0);
        int64_t due = cap_pg_get_i64(r, i, 2), now = cap_pg_get_i64(r, i, 3);
        struct cap_schedule sch;
        struct cap_err perr = {0};
        /* Judged already, so this parses; -1 (manual) clears next_run_at. */
        next[i] = cap_schedule_parse(PQgetvalue(r, i, 1), &sch, &perr) == 0
                      ? cap_schedule_next_after_run(&sch, due, now, (uint64_t)ids[i])
                      : -1;
    }
    PQclear(r);
    char *ia = cap_pg_i64_array(ids, (size_t)n), *na = cap_pg_i64_array(next, (size_t)n);
    const char *q1[] = {ia};
    const char *q2[] = {ia, na};
    int rc = -1;
    PGresult *ins = NULL;
    if (ia && na &&
        (ins = cap_pg_exec(s->pg, "insert scheduled runs", SQL_INSERT_RUNS, 1, q1, err)) &&
        cap_pg_cmd(s->pg, "move next run", SQL_MOVE_NEXT, 2, q2, err) == 0 &&
        commit(s->pg, err) == 0) {
        long inserted = strtol(PQcmdTuples(ins), NULL, 10);
        cap_metric_add(s->m_enqueued, "schedule", (double)inserted);
        cap_log(CAP_LOG_INFO, "runs_enqueued", CAP_LI("due", n), CAP_LI("queued", inserted));
        *more = n >= s->cfg->scheduler_batch;
        rc = 0;
    } else {
        rollback(s->pg);
    }
    if (ins)
        PQclear(ins);
    free(ia);
    free(na);
    free(ids);
    free(next);
    return rc;
}

/* Runs left `running` without a heartbeat for twice worker.reclaim_idle go back to `queued`
 * (or `dead` once out of attempts): their owner died where the stream cannot tell. */
static int recover_stale(struct sched *s, struct cap_err *err)
{
    char idle[32], maxb[24];
    snprintf(idle, sizeof idle, "%.3f", 2.0 * (double)s->cfg->worker_reclaim_idle_ms / 1000.0);
    const char *p[] = {idle, cap_pg_i64(maxb, s->cfg->worker_max_attempts)};
    PGresult *r = cap_pg_exec(s->pg, "recover stale runs", SQL_RECOVER_STALE, 2, p, err);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        cap_metric_add(s->m_recovered, NULL, 1);
        cap_log(CAP_LOG_WARN, "run_recovered", CAP_LI("run_id", cap_pg_get_i64(r, i, 0)),
                CAP_LS("status", PQgetvalue(r, i, 1)));
    }
    PQclear(r);
    if (!(r = cap_pg_exec(s->pg, "recover stale shards", SQL_RECOVER_STALE_SHARDS, 2, p, err)))
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        cap_metric_add(s->m_recovered, NULL, 1);
        cap_log(CAP_LOG_WARN, "run_recovered", CAP_LI("run_id", cap_pg_get_i64(r, i, 0)),
                CAP_LI("shard", cap_pg_get_i64(r, i, 2)), CAP_LS("status", PQgetvalue(r, i, 1)));
    }
    PQclear(r);
    return 0;
}

/* True when the entry is still in the stream (undelivered or pending): republishing it would
 * only make a duplicate. */
static int entry_exists(struct sched *s, const char *id)
{
    const char *argv[] = {"XRANGE", s->cfg->redis_stream, id, id};
    redisReply *r = redisCommandArgv(s->rd, 4, argv, NULL);
    int exists = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0;
    if (r)
        freeReplyObject(r);
    return exists;
}

/* The outbox: queued runs (or shards) without a stream entry (new, or lost with Redis's data)
 * are published; the entry id is stored on the row in the same transaction that locked it. */
static int publish_from(struct sched *s, const struct outbox *ob, int *more, struct cap_err *err)
{
    *more = 0;
    char req[32];
    snprintf(req, sizeof req, "%.3f", (double)s->cfg->scheduler_requeue_after_ms / 1000.0);
    char what[48];
    snprintf(what, sizeof what, "select %s to publish", ob->what);
    PGresult *r = locked_select(s, what, ob->select_sql, req, err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        return commit(s->pg, err);
    }
    int64_t *ids = calloc((size_t)n, sizeof *ids);
    int64_t *shards = calloc((size_t)n, sizeof *shards);
    char **sids = calloc((size_t)n, sizeof *sids);
    int np = 0, rc = -1;
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    if (!ids || !sids || !shards) {
        cap_err_set(err, CAP_E_NOMEM, "publishing runs: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct cap_job job = {
            .run_id = cap_pg_get_i64(r, i, 0),
            .source_id = cap_pg_get_i64(r, i, 1),
            .attempt = cap_pg_get_i64(r, i, 2),
            .enqueued_at_ms = now_ms,
            .shard = ob->shards ? (int32_t)cap_pg_get_i64(r, i, 4) : 0,
        };
        char sid[64];
        if (!PQgetisnull(r, i, 3) && entry_exists(s, PQgetvalue(r, i, 3))) {
            /* Still waiting in the stream: just note that we looked. */
            snprintf(sid, sizeof sid, "%s", PQgetvalue(r, i, 3));
        } else if (cap_stream_publish(s->rd, s->cfg, &job, sid, sizeof sid, err) < 0) {
            break;
        } else {
            cap_metric_add(s->m_published, NULL, 1);
            if (!PQgetisnull(r, i, 3))
                cap_log(CAP_LOG_WARN, "run_republished", CAP_LI("run_id", job.run_id),
                        CAP_LI("shard", job.shard), CAP_LS("lost_entry", PQgetvalue(r, i, 3)),
                        CAP_LS("entry", sid));
        }
        ids[np] = job.run_id;
        shards[np] = job.shard;
        sids[np] = strdup(sid);
        if (!sids[np])
            break;
        np++;
    }
    if (np > 0) {
        char *ia = cap_pg_i64_array(ids, (size_t)np);
        char *sa = cap_pg_text_array((const char *const *)sids, (size_t)np);
        char *na = cap_pg_i64_array(shards, (size_t)np);
        const char *q[] = {ia, sa, na};
        struct cap_err e2 = {0};
        if (ia && sa && na &&
            cap_pg_cmd(s->pg, "store stream ids", ob->published_sql, ob->shards ? 3 : 2, q,
                       &e2) == 0 &&
            commit(s->pg, &e2) == 0) {
            rc = cap_err_isset(err) ? -1 : 0;
            *more = np == n && n >= s->cfg->scheduler_batch;
        } else {
            cap_err_set(err, e2.code, "%s", e2.msg);
        }
        free(ia);
        free(sa);
        free(na);
    }
out:
    if (rc < 0)
        rollback(s->pg);
    PQclear(r);
    for (int i = 0; sids && i < np; i++)
        free(sids[i]);
    free(sids);
    free(ids);
    free(shards);
    return rc;
}

#define OUTBOX_ALL 3 /* 1: runs, 2: shards */

/* Runs first, then shards (which: OUTBOX_ALL, or a wake-up's mask); *more when either has
 * more waiting. */
static int publish_some(struct sched *s, int which, int *more, struct cap_err *err)
{
    int more_runs = 0, more_shards = 0;
    if (((which & 1) && publish_from(s, &OUTBOX_RUNS, &more_runs, err) < 0) ||
        ((which & 2) && publish_from(s, &OUTBOX_SHARDS, &more_shards, err) < 0))
        return -1;
    *more = more_runs || more_shards;
    return 0;
}

static int publish(struct sched *s, int *more, struct cap_err *err)
{
    return publish_some(s, OUTBOX_ALL, more, err);
}

static void prune_reset(struct sched *s);

static int connect_all(struct sched *s, struct cap_err *err)
{
    if (s->pg && PQstatus(s->pg) != CONNECTION_OK) {
        PQfinish(s->pg);
        s->pg = NULL;
        /* The advisory lock went with the session: a pass starts again from the beginning. */
        prune_reset(s);
    }
    if (!s->pg) {
        if (!(s->pg = cap_pg_connect(s->cfg->database_url, "cap-scheduler", err)))
            return -1;
        /* Every sweep runs the same statements: parsed once per session, and planned until
         * PostgreSQL's plan cache settles, not on every tick. */
        if (s->cfg->database_prepared_statements && cap_pg_keep_prepared(s->pg) < 0)
            cap_log(CAP_LOG_WARN, "pg_prepared_off", CAP_LS("app", "cap-scheduler"),
                    CAP_LS("err", "out of memory: statements run unprepared on this connection"));
        if (cap_pg_cmd(s->pg, "listen", "LISTEN cap_scheduler", 0, NULL, err) < 0) {
            PQfinish(s->pg);
            s->pg = NULL;
            return -1;
        }
    }
    if (s->rd && s->rd->err) {
        redisFree(s->rd);
        s->rd = NULL;
    }
    if (!s->rd) {
        if (!(s->rd = cap_redis_connect(s->cfg->redis_url, 10000, err)))
            return -1;
        if (cap_stream_ensure_group(s->rd, s->cfg, err) < 0) {
            redisFree(s->rd);
            s->rd = NULL;
            return -1;
        }
    }
    return 0;
}

static void prune_reset(struct sched *s)
{
    struct prune *p = &s->prune;
    free(p->runs);
    p->runs = NULL;
    p->locked = false;
    p->phase = PRUNE_IDLE;
}

static double retention_s(int64_t ms)
{
    return (double)ms / 1000.0;
}

/* Moves the cursor to the time and id in columns tcol and tcol + 1 of r (left alone when the
 * batch looked at nothing). */
static int prune_cursor(struct prune *p, const PGresult *r, int tcol, struct cap_err *err)
{
    if (PQgetisnull(r, 0, tcol))
        return 0;
    const char *t = PQgetvalue(r, 0, tcol);
    if (strlen(t) >= sizeof p->cur_t) {
        cap_err_set(err, CAP_E_INVALID, "retention: timestamp \"%.64s\" too long", t);
        return -1;
    }
    snprintf(p->cur_t, sizeof p->cur_t, "%s", t);
    p->cur_id = cap_pg_get_i64(r, 0, tcol + 1);
    return 0;
}

static void prune_cursor_reset(struct prune *p)
{
    snprintf(p->cur_t, sizeof p->cur_t, "-infinity");
    p->cur_id = 0;
}

/* The runs part of a pass, or its end when runs are kept for ever. */
static void prune_to_runs(struct sched *s)
{
    prune_cursor_reset(&s->prune);
    s->prune.phase = s->cfg->retention_runs_ms > 0 ? PRUNE_RUNS_PICK : PRUNE_DONE;
}

/* Runs one statement of the pass and moves its phase on. 0, or -1 with err. */
static int prune_step(struct sched *s, struct cap_err *err)
{
    struct prune *p = &s->prune;
    char ret[32], idb[24], lim[24];
    PGresult *r = NULL;
    switch (p->phase) {
    case PRUNE_OBS: {
        snprintf(ret, sizeof ret, "%.3f", retention_s(s->cfg->retention_observations_ms));
        const char *q[] = {ret, p->cur_t, cap_pg_i64(idb, p->cur_id), cap_pg_i64(lim, PRUNE_BATCH)};
        if (!(r = cap_pg_exec(s->pg, "prune observations", SQL_PRUNE_OBS, 4, q, err)))
            return -1;
        int64_t seen = cap_pg_get_i64(r, 0, 0), gone = cap_pg_get_i64(r, 0, 1);
        p->obs_deleted += gone;
        cap_metric_add(s->m_pruned, "endpoint_observations", (double)gone);
        if (prune_cursor(p, r, 2, err) < 0)
            break;
        if (seen < PRUNE_BATCH)
            prune_to_runs(s);
        PQclear(r);
        return 0;
    }
    case PRUNE_RUNS_PICK: {
        snprintf(ret, sizeof ret, "%.3f", retention_s(s->cfg->retention_runs_ms));
        const char *q[] = {ret, p->cur_t, cap_pg_i64(idb, p->cur_id),
                           cap_pg_i64(lim, PRUNE_RUN_BATCH)};
        if (!(r = cap_pg_exec(s->pg, "pick runs to prune", SQL_PRUNE_RUNS_PICK, 4, q, err)))
            return -1;
        int64_t seen = cap_pg_get_i64(r, 0, 0);
        if (prune_cursor(p, r, 1, err) < 0)
            break;
        const char *ids = PQgetvalue(r, 0, 3);
        p->runs_last = seen < PRUNE_RUN_BATCH;
        if (strcmp(ids, "{}") != 0) {
            if (!(p->runs = strdup(ids))) {
                cap_err_set(err, CAP_E_NOMEM, "retention: out of memory");
                break;
            }
            p->phase = PRUNE_RUNS_DETACH;
        } else if (p->runs_last) {
            p->phase = PRUNE_DONE;
        }
        PQclear(r);
        return 0;
    }
    case PRUNE_RUNS_DETACH: {
        const char *q[] = {p->runs, cap_pg_i64(lim, PRUNE_BATCH)};
        if (!(r = cap_pg_exec(s->pg, "detach rows from pruned runs", SQL_PRUNE_RUNS_DETACH, 2, q,
                              err)))
            return -1;
        int64_t certs = cap_pg_get_i64(r, 0, 0), finds = cap_pg_get_i64(r, 0, 1);
        p->detached += certs + finds;
        if (certs < PRUNE_BATCH && finds < PRUNE_BATCH)
            p->phase = PRUNE_RUNS_DELETE;
        PQclear(r);
        return 0;
    }
    case PRUNE_RUNS_DELETE: {
        const char *q[] = {p->runs};
        if (!(r = cap_pg_exec(s->pg, "prune runs", SQL_PRUNE_RUNS_DELETE, 1, q, err)))
            return -1;
        long gone = strtol(PQcmdTuples(r), NULL, 10);
        p->runs_deleted += gone;
        cap_metric_add(s->m_pruned, "discovery_runs", (double)gone);
        free(p->runs);
        p->runs = NULL;
        p->phase = p->runs_last ? PRUNE_DONE : PRUNE_RUNS_PICK;
        PQclear(r);
        return 0;
    }
    case PRUNE_IDLE:
    case PRUNE_DONE:
        return 0;
    }
    PQclear(r);
    return -1;
}

/* Ends the pass: releases the lock (when the session still has it) and logs what it did. */
static void prune_end(struct sched *s, const char *why)
{
    struct prune *p = &s->prune;
    if (p->locked && PQstatus(s->pg) == CONNECTION_OK) {
        struct cap_err e = {0};
        const char *q[] = {PRUNE_LOCK_KEY};
        rollback(s->pg);
        if (cap_pg_cmd(s->pg, "retention unlock", SQL_PRUNE_UNLOCK, 1, q, &e) < 0)
            cap_log(CAP_LOG_WARN, "retention_unlock_failed", CAP_LS("err", e.msg));
    }
    double took = mono_s() - p->pass_start;
    if (why)
        cap_log(CAP_LOG_WARN, "retention_failed", CAP_LI("observations_deleted", p->obs_deleted),
                CAP_LI("runs_deleted", p->runs_deleted), CAP_LD("duration_s", took),
                CAP_LS("err", why));
    else
        cap_log(CAP_LOG_INFO, "retention_pass", CAP_LI("observations_deleted", p->obs_deleted),
                CAP_LI("runs_deleted", p->runs_deleted), CAP_LI("references_cleared", p->detached),
                CAP_LD("duration_s", took));
    prune_reset(s);
}

/* Retention's share of a tick: starts a pass when one is due and this replica gets the lock,
 * then runs statements of the pass within the tick's budget. Failures are logged and end the
 * pass; they never fail the sweep. */
static void prune(struct sched *s)
{
    const struct cap_config *cfg = s->cfg;
    struct prune *p = &s->prune;
    if (cfg->retention_observations_ms <= 0 && cfg->retention_runs_ms <= 0)
        return;
    double now = mono_s();
    if (p->phase == PRUNE_IDLE) {
        if (now < p->next_pass)
            return;
        p->next_pass = now + (double)PRUNE_PASS_TICKS * (double)cfg->scheduler_tick_ms / 1000.0;
        struct cap_err e = {0};
        const char *q[] = {PRUNE_LOCK_KEY};
        PGresult *r = cap_pg_exec(s->pg, "retention lock", SQL_PRUNE_LOCK, 1, q, &e);
        if (!r) {
            cap_log(CAP_LOG_WARN, "retention_failed", CAP_LS("err", e.msg));
            return;
        }
        bool got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (!got) {
            cap_log0(CAP_LOG_DEBUG, "retention_skipped_other_replica");
            return;
        }
        *p = (struct prune){
            .phase = PRUNE_OBS, .locked = true, .next_pass = p->next_pass, .pass_start = now};
        prune_cursor_reset(p);
        if (cfg->retention_observations_ms <= 0)
            prune_to_runs(s);
    }
    double deadline = now + PRUNE_TICK_BUDGET_S;
    for (int n = 0; n < PRUNE_TICK_STATEMENTS && p->phase != PRUNE_DONE && !atomic_load(s->stop);
         n++) {
        struct cap_err e = {0};
        if (prune_step(s, &e) < 0) {
            prune_end(s, e.msg);
            return;
        }
        if (mono_s() >= deadline)
            break;
    }
    if (p->phase == PRUNE_DONE)
        prune_end(s, NULL);
}

/* Acknowledgements and suppression rules whose --until has passed: their findings open again
 * (cap_findings_expire, migration 014). Every replica may run it: it only moves rows that are
 * due, under row locks. A failure is logged and never fails the sweep. */
static void expire_acks(struct sched *s)
{
    struct cap_err e = {0};
    PGresult *r = cap_pg_exec(s->pg, "expire acknowledgements", SQL_EXPIRE_ACKS, 0, NULL, &e);
    if (!r) {
        cap_log(CAP_LOG_WARN, "findings_expire_failed", CAP_LS("err", e.msg));
        return;
    }
    long long n = cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    if (n > 0)
        cap_log(CAP_LOG_INFO, "findings_reopened", CAP_LI("count", n),
                CAP_LS("reason", "acknowledgement or suppression expired"));
}

static int sweep(struct sched *s, struct cap_err *err)
{
    double t0 = mono_s();
    int more = 0;
    /* Publish first: a manual trigger should not wait behind schedule bookkeeping. */
    if (publish(s, &more, err) < 0)
        return -1;
    do {
        if (judge(s, &more, err) < 0)
            return -1;
    } while (more && !atomic_load(s->stop));
    do {
        if (enqueue_due(s, &more, err) < 0)
            return -1;
    } while (more && !atomic_load(s->stop));
    if (recover_stale(s, err) < 0)
        return -1;
    do {
        if (publish(s, &more, err) < 0)
            return -1;
    } while (more && !atomic_load(s->stop));
    struct cap_err terr = {0};
    long long trimmed = cap_stream_trim(s->rd, s->cfg, &terr);
    if (trimmed < 0)
        cap_log(CAP_LOG_WARN, "trim_failed", CAP_LS("err", terr.msg));
    long long len, pending;
    if (cap_stream_stats(s->rd, s->cfg, &len, &pending) == 0) {
        cap_metric_set(s->m_stream_len, NULL, (double)len);
        cap_metric_set(s->m_stream_pending, NULL, (double)pending);
    }
    cap_metric_observe(s->m_sweep, NULL, mono_s() - t0);
    expire_acks(s);
    /* After expire_acks: a finding it reopens is notified in this tick. */
    cap_sched_notify_tick(s->pg, s->rd, s->cfg);
    prune(s);
    return 0;
}

/* Waits for a notification or the tick. Returns 0 on timeout, else a mask: WAKE_RUN when runs
 * were queued, WAKE_SHARD when shards were queued or claimed (the outboxes are enough), and
 * WAKE_SOURCE when a source changed or asked for its
 * next run at once (a CT backlog), which needs a full sweep. */
#define WAKE_RUN 1
#define WAKE_SHARD 2
#define WAKE_SOURCE 4
static int wait_wakeup(struct sched *s, int64_t timeout_ms)
{
    int fd = PQsocket(s->pg);
    if (fd < 0) {
        usleep((useconds_t)(timeout_ms > 1000 ? 1000 : timeout_ms) * 1000);
        return 0;
    }
    int notified = 0;
    double deadline = mono_s() + (double)timeout_ms / 1000.0;
    int64_t left = timeout_ms;
    while (left > 0 && !atomic_load(s->stop)) {
        PQconsumeInput(s->pg);
        PGnotify *nt;
        while ((nt = PQnotifies(s->pg))) {
            /* "run ID", or "run ID shard N" (migration 017) */
            if (nt->extra && strncmp(nt->extra, "run ", 4) == 0)
                notified |= strstr(nt->extra, " shard ") ? WAKE_SHARD : WAKE_RUN;
            else
                notified |= WAKE_SOURCE;
            PQfreemem(nt);
        }
        if (notified)
            break;
        /* Wake at least every 500 ms to notice SIGTERM. */
        int64_t step = left > 500 ? 500 : left;
        fd_set rf;
        FD_ZERO(&rf);
        FD_SET(fd, &rf);
        struct timeval tv = {step / 1000, (step % 1000) * 1000};
        int rc = select(fd + 1, &rf, NULL, NULL, &tv);
        if (rc < 0 && errno != EINTR)
            break;
        if (PQstatus(s->pg) != CONNECTION_OK)
            break;
        left = (int64_t)((deadline - mono_s()) * 1000.0);
    }
    return notified;
}

int cap_sched_run(const struct cap_config *cfg, atomic_int *stop, struct cap_err *err)
{
    struct sched s = {.cfg = cfg, .stop = stop};
    s.m_enqueued = cap_metrics_counter("cap_runs_enqueued_total",
                                       "Runs the scheduler queued, by trigger.", "trigger");
    s.m_sweep = cap_metrics_histogram("cap_scheduler_sweep_duration_seconds",
                                      "Duration of one scheduler sweep.", NULL, NULL, 0);
    s.m_published =
        cap_metrics_counter("cap_runs_published_total", "Jobs added to the stream.", NULL);
    s.m_recovered = cap_metrics_counter(
        "cap_runs_recovered_total", "Runs put back to queued after their worker vanished.", NULL);
    s.m_disabled = cap_metrics_counter(
        "cap_sources_disabled_total", "Sources disabled for a schedule that does not parse.", NULL);
    s.m_stream_len = cap_metrics_gauge("cap_stream_length", "Entries in the job stream.", NULL);
    s.m_stream_pending = cap_metrics_gauge(
        "cap_stream_pending", "Entries delivered to workers and not yet acknowledged.", NULL);
    s.m_pruned = cap_metrics_counter("cap_retention_pruned_total",
                                     "Rows deleted by retention, by table.", "table");

    int retry_ms = 200;
    while (!atomic_load(stop) && connect_all(&s, err) < 0) {
        cap_log(CAP_LOG_WARN, "connect_retry", CAP_LS("err", err->msg));
        cap_err_clear(err);
        usleep((useconds_t)retry_ms * 1000);
        retry_ms = retry_ms < 5000 ? retry_ms * 2 : 5000;
    }
    cap_log(CAP_LOG_INFO, "scheduler_started", CAP_LI("tick_ms", cfg->scheduler_tick_ms),
            CAP_LS("stream", cfg->redis_stream));
    double last_full = 0;
    int fast = 0;
    while (!atomic_load(stop)) {
        struct cap_err e = {0};
        if (connect_all(&s, &e) < 0) {
            cap_log(CAP_LOG_WARN, "connect_retry", CAP_LS("err", e.msg));
            usleep((useconds_t)retry_ms * 1000);
            retry_ms = retry_ms < 5000 ? retry_ms * 2 : 5000;
            continue;
        }
        retry_ms = 200;
        int rc;
        if (fast) {
            /* Woken by a NOTIFY between ticks: only the outbox, so a trigger is published
             * within milliseconds; schedules and recovery wait for the tick. */
            int more = 0;
            do {
                rc = publish_some(&s, fast, &more, &e);
            } while (rc == 0 && more && !atomic_load(stop));
        } else {
            rc = sweep(&s, &e);
            last_full = mono_s();
        }
        if (rc < 0) {
            cap_log(CAP_LOG_WARN, "sweep_failed", CAP_LS("err", e.msg));
            if (PQstatus(s.pg) == CONNECTION_OK)
                rollback(s.pg);
            usleep(500000);
            fast = 0;
            continue;
        }
        double tick_s = (double)cfg->scheduler_tick_ms / 1000.0;
        double left = last_full + tick_s - mono_s();
        int notified = left > 0 ? wait_wakeup(&s, (int64_t)(left * 1000.0)) : 0;
        /* WAKE_RUN and WAKE_SHARD are the outboxes' masks (1 and 2) */
        fast = notified && !(notified & WAKE_SOURCE) && mono_s() < last_full + tick_s
                   ? notified
                   : 0;
    }
    prune_reset(&s);
    if (s.pg)
        PQfinish(s.pg);
    if (s.rd)
        redisFree(s.rd);
    cap_log0(CAP_LOG_INFO, "scheduler_stopped");
    return 0;
}
