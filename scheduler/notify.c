/* Webhook notifications on the scheduler's tick. Dispatch turns notify_events into
 * notify_deliveries in one transaction (events marked dispatched with the messages inserted,
 * so an event is in exactly one message per webhook, never lost, never doubled); publishing is
 * the same outbox as for runs: the row first, then the XADD, its id stored on the row. */
#include "scheduler/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/job.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/notify.h"
#include "common/pg.h"
#include "common/stream.h"

/* Transaction-level advisory lock of the dispatch (fixed for ever, like the retention's): one
 * replica at a time, so that the events of a run are not split between two digests. */
#define DISPATCH_LOCK_KEY "7161530812449580416"
#define PRUNE_BATCH 1000

static const char SQL_LOCK[] = "SELECT pg_try_advisory_xact_lock($1::bigint)";

/* $1 batch, $2 hold (s). Events whose run is over or that have none, oldest first, with what a
 * message shows. The events of a run still going go together once the oldest of them has
 * waited the hold: a long run sends a digest every hold, not one every tick. */
static const char SQL_EVENTS[] =
    "SELECT e.id, e.event, e.kind, e.severity, coalesce(e.finding_id, 0), "
    " coalesce(e.run_id, 0), coalesce(e.source_id, 0), s.name, "
    " CASE WHEN ep.id IS NOT NULL THEN ep.host || ':' || ep.port "
    "      WHEN c.fingerprint_sha256 IS NOT NULL THEN coalesce(c.sans[1], c.subject) "
    "      WHEN e.subject_key LIKE 'name:%' THEN substr(e.subject_key, 6) "
    "      ELSE e.subject_key END, "
    " e.subject_key, e.reason, e.created_at "
    "FROM notify_events e "
    "LEFT JOIN discovery_sources s ON s.id = e.source_id "
    "LEFT JOIN findings f ON f.id = e.finding_id "
    "LEFT JOIN endpoints ep ON ep.id = f.endpoint_id AND f.subject_key LIKE 'endpoint:%' "
    "LEFT JOIN discovered_certificates c ON c.fingerprint_sha256 = f.fingerprint_sha256 "
    " AND f.subject_key LIKE 'cert:%' "
    "LEFT JOIN discovery_runs r ON r.id = e.run_id "
    "WHERE e.dispatched_at IS NULL "
    "AND (r.id IS NULL OR r.status NOT IN ('queued', 'running') "
    "     OR (SELECT min(x.created_at) FROM notify_events x WHERE x.run_id = e.run_id "
    "         AND x.dispatched_at IS NULL) < now() - make_interval(secs => $2::double precision)) "
    "ORDER BY e.id LIMIT $1 FOR UPDATE OF e SKIP LOCKED";

static const char SQL_INSERT_DELIVERY[] =
    "INSERT INTO notify_deliveries (webhook, idempotency_key, digest, event_ids, source_id, "
    " run_id, body, content_type) "
    "VALUES ($1, $2, $3::boolean, $4::bigint[], NULLIF($5::bigint, 0), NULLIF($6::bigint, 0), "
    " $7, 'application/json') "
    "ON CONFLICT (webhook, idempotency_key) DO NOTHING";

static const char SQL_DISPATCHED[] =
    "UPDATE notify_events SET dispatched_at = now() WHERE id = ANY($1::bigint[])";

/* $1 stale after (s), $2 worker.max_attempts. */
static const char SQL_RECOVER[] =
    "UPDATE notify_deliveries d SET "
    "status = CASE WHEN d.attempts >= $2 THEN 'dead' ELSE 'queued' END, "
    "finished_at = CASE WHEN d.attempts >= $2 THEN now() END, heartbeat_at = NULL, "
    "stream_id = NULL, published_at = NULL, "
    "error = format('worker %s lost while sending (claimed %s)', d.worker, d.heartbeat_at) "
    "WHERE d.id IN (SELECT id FROM notify_deliveries WHERE status = 'sending' "
    " AND heartbeat_at < now() - make_interval(secs => $1::double precision) "
    " ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED) RETURNING d.id, d.status";

/* $1 batch, $2 scheduler.requeue_after (s). */
static const char SQL_TO_PUBLISH[] =
    "SELECT id, attempts, stream_id FROM notify_deliveries "
    "WHERE status = 'queued' AND next_attempt_at <= now() "
    "AND (stream_id IS NULL OR published_at < now() - make_interval(secs => $2::double precision)) "
    "ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED";

static const char SQL_PUBLISHED[] =
    "UPDATE notify_deliveries d SET stream_id = t.sid, published_at = now() "
    "FROM unnest($1::bigint[], $2::text[]) AS t(id, sid) WHERE d.id = t.id";

/* $1 retention (s), $2 batch. */
static const char SQL_PRUNE_DELIVERIES[] =
    "DELETE FROM notify_deliveries WHERE id IN (SELECT id FROM notify_deliveries "
    " WHERE status IN ('delivered', 'dead') "
    " AND finished_at < now() - make_interval(secs => $1::double precision) "
    " ORDER BY finished_at LIMIT $2::int)";

static const char SQL_PRUNE_EVENTS[] =
    "DELETE FROM notify_events WHERE id IN (SELECT id FROM notify_events "
    " WHERE dispatched_at < now() - make_interval(secs => $1::double precision) "
    " ORDER BY dispatched_at LIMIT $2::int)";

static struct cap_metric *m_messages, *m_published, *m_recovered;

static void metrics_once(void)
{
    if (m_messages)
        return;
    m_messages = cap_metrics_counter(
        "cap_notify_messages_total",
        "Webhook messages built from events, by type (single, digest).", "type");
    m_published = cap_metrics_counter("cap_notify_published_total",
                                      "Webhook delivery jobs added to the stream.", NULL);
    m_recovered = cap_metrics_counter(
        "cap_notify_recovered_total",
        "Deliveries put back to queued (or dead) after their worker vanished mid-send.", NULL);
}

static void rollback(PGconn *c)
{
    if (PQtransactionStatus(c) != PQTRANS_IDLE)
        PQclear(PQexec(c, "ROLLBACK"));
}

static int64_t i64(const PGresult *r, int row, int col)
{
    return cap_pg_get_i64(r, row, col);
}

static const char *str_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

struct row {
    struct cap_notify_event ev;
    int64_t source_id;
    const char *source_name;
    int64_t group_run; /* run of the message: 0 when none */
};

/* Rows sorted by (source, run, id): a group is one message per webhook. */
static int by_row(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->source_id != y->source_id)
        return x->source_id < y->source_id ? -1 : 1;
    if (x->group_run != y->group_run)
        return x->group_run < y->group_run ? -1 : 1;
    return x->ev.id < y->ev.id ? -1 : x->ev.id > y->ev.id;
}

/* Inserts one message for webhook w from the events ev[0..n) of one group. */
static int insert_message(PGconn *pg, const struct cap_webhook *w, const struct row *g,
                          struct cap_notify_event *ev, size_t n, struct cap_err *err)
{
    struct cap_notify_msg m = {.source_id = g->source_id,
                               .source_name = g->source_name,
                               .run_id = g->group_run,
                               .ev = ev,
                               .n = n};
    char key[CAP_NOTIFY_KEY_MAX];
    if (cap_notify_key(&m, key, sizeof key) < 0) {
        cap_err_set(err, CAP_E_INVALID, "notification: cannot build its key");
        return -1;
    }
    char *body = cap_notify_format(w->format, w->name, &m, key, err);
    if (!body)
        return -1;
    int64_t *ids = calloc(n, sizeof *ids);
    char *ia = NULL;
    int rc = -1;
    if (ids) {
        for (size_t i = 0; i < n; i++)
            ids[i] = ev[i].id;
        ia = cap_pg_i64_array(ids, n);
    }
    if (!ia) {
        cap_err_set(err, CAP_E_NOMEM, "dispatching notifications: out of memory");
    } else {
        char sb[24], rb[24];
        const char *p[] = {w->name,
                           key,
                           n > 1 ? "true" : "false",
                           ia,
                           cap_pg_i64(sb, g->source_id),
                           cap_pg_i64(rb, g->group_run),
                           body};
        rc = cap_pg_cmd(pg, "insert delivery", SQL_INSERT_DELIVERY, 7, p, err);
        if (rc == 0) {
            cap_metric_add(m_messages, n > 1 ? "digest" : "single", 1);
            cap_log(CAP_LOG_INFO, "notification_queued", CAP_LS("webhook", w->name),
                    CAP_LS("key", key), CAP_LI("events", (int64_t)n));
        }
    }
    free(ids);
    free(ia);
    free(body);
    return rc;
}

/* One dispatch transaction. Returns the events taken (0: nothing left), or -1. */
static int dispatch_batch(PGconn *pg, const struct cap_config *cfg, struct cap_err *err)
{
    if (cap_pg_cmd(pg, "begin", "BEGIN", 0, NULL, err) < 0)
        return -1;
    const char *lp[] = {DISPATCH_LOCK_KEY};
    PGresult *l = cap_pg_exec(pg, "notify dispatch lock", SQL_LOCK, 1, lp, err);
    if (!l) {
        rollback(pg);
        return -1;
    }
    int got = strcmp(PQgetvalue(l, 0, 0), "t") == 0;
    PQclear(l);
    if (!got) {
        rollback(pg);
        return 0;
    }
    char lim[24], hold[24];
    snprintf(hold, sizeof hold, "%d", CAP_SCHED_NOTIFY_HOLD_S);
    const char *p[] = {cap_pg_i64(lim, CAP_SCHED_NOTIFY_BATCH), hold};
    PGresult *r = cap_pg_exec(pg, "select events to notify", SQL_EVENTS, 2, p, err);
    if (!r) {
        rollback(pg);
        return -1;
    }
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        rollback(pg);
        return 0;
    }
    struct row *rows = calloc((size_t)n, sizeof *rows);
    struct cap_notify_event *pick = calloc((size_t)n, sizeof *pick);
    int64_t *ids = calloc((size_t)n, sizeof *ids);
    char *ia = NULL;
    int rc = -1;
    if (!rows || !pick || !ids) {
        cap_err_set(err, CAP_E_NOMEM, "dispatching notifications: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct row *w = &rows[i];
        w->ev = (struct cap_notify_event){
            .id = i64(r, i, 0),
            .event = PQgetvalue(r, i, 1),
            .kind = PQgetvalue(r, i, 2),
            .severity = PQgetvalue(r, i, 3),
            .finding_id = i64(r, i, 4),
            .run_id = i64(r, i, 5),
            .subject = str_or_null(r, i, 8),
            .subject_key = str_or_null(r, i, 9),
            .reason = str_or_null(r, i, 10),
            .at = PQgetvalue(r, i, 11),
        };
        w->source_id = i64(r, i, 6);
        w->source_name = str_or_null(r, i, 7);
        w->group_run = w->ev.run_id;
        ids[i] = w->ev.id;
    }
    qsort(rows, (size_t)n, sizeof *rows, by_row);
    for (int a = 0; a < n;) {
        int b = a;
        while (b < n && rows[b].source_id == rows[a].source_id &&
               rows[b].group_run == rows[a].group_run)
            b++;
        for (size_t k = 0; k < cfg->notify_webhooks_n; k++) {
            const struct cap_webhook *wh = &cfg->notify_webhooks[k];
            size_t np = 0;
            for (int i = a; i < b; i++)
                if (cap_notify_wants(wh, rows[i].ev.kind, rows[i].ev.severity, rows[i].source_name))
                    pick[np++] = rows[i].ev;
            if (np && insert_message(pg, wh, &rows[a], pick, np, err) < 0)
                goto out;
        }
        a = b;
    }
    ia = cap_pg_i64_array(ids, (size_t)n);
    const char *dp[] = {ia};
    if (!ia) {
        cap_err_set(err, CAP_E_NOMEM, "dispatching notifications: out of memory");
        goto out;
    }
    if (cap_pg_cmd(pg, "mark events dispatched", SQL_DISPATCHED, 1, dp, err) < 0 ||
        cap_pg_cmd(pg, "commit", "COMMIT", 0, NULL, err) < 0)
        goto out;
    rc = n;
out:
    if (rc < 0)
        rollback(pg);
    PQclear(r);
    free(rows);
    free(pick);
    free(ids);
    free(ia);
    return rc;
}

/* True while the entry can still reach a worker: pending (a worker holds it) or not yet
 * delivered to the group. An entry that was delivered and acknowledged without the delivery
 * finishing (an older worker dead-letters the type it does not know) is lost even while it is
 * still in the stream, untrimmed. When Redis cannot say, the entry is taken as alive. */
static int entry_alive(redisContext *rd, const struct cap_config *cfg, const char *id)
{
    const char *pargv[] = {"XPENDING", cfg->redis_stream, cfg->redis_group, id, id, "1"};
    redisReply *r = redisCommandArgv(rd, 6, pargv, NULL);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return 1;
    }
    int alive = r->elements > 0;
    freeReplyObject(r);
    if (alive)
        return 1;
    const char *gargv[] = {"XINFO", "GROUPS", cfg->redis_stream};
    if (!(r = redisCommandArgv(rd, 3, gargv, NULL)))
        return 1;
    alive = 1;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i];
        const char *name = NULL, *last = NULL;
        for (size_t f = 0; g->type == REDIS_REPLY_ARRAY && f + 1 < g->elements; f += 2) {
            if (g->element[f]->type != REDIS_REPLY_STRING ||
                g->element[f + 1]->type != REDIS_REPLY_STRING)
                continue;
            if (!strcmp(g->element[f]->str, "name"))
                name = g->element[f + 1]->str;
            else if (!strcmp(g->element[f]->str, "last-delivered-id"))
                last = g->element[f + 1]->str;
        }
        if (name && last && !strcmp(name, cfg->redis_group))
            alive = cap_stream_id_cmp(id, last) > 0;
    }
    freeReplyObject(r);
    return alive;
}

/* Publishes one batch of due deliveries. Returns how many rows it looked at, or -1. */
static int publish_batch(PGconn *pg, redisContext *rd, const struct cap_config *cfg,
                         struct cap_err *err)
{
    if (cap_pg_cmd(pg, "begin", "BEGIN", 0, NULL, err) < 0)
        return -1;
    char lim[24], req[32];
    snprintf(req, sizeof req, "%.3f", (double)cfg->scheduler_requeue_after_ms / 1000.0);
    const char *p[] = {cap_pg_i64(lim, cfg->scheduler_batch), req};
    PGresult *r = cap_pg_exec(pg, "select deliveries to publish", SQL_TO_PUBLISH, 2, p, err);
    if (!r) {
        rollback(pg);
        return -1;
    }
    int n = PQntuples(r), np = 0, rc = -1;
    int64_t *ids = calloc((size_t)n + 1, sizeof *ids);
    char **sids = calloc((size_t)n + 1, sizeof *sids);
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    if (!ids || !sids) {
        cap_err_set(err, CAP_E_NOMEM, "publishing deliveries: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct cap_job job = {.type = CAP_JOB_NOTIFY,
                              .delivery_id = i64(r, i, 0),
                              .attempt = i64(r, i, 1),
                              .enqueued_at_ms = now_ms};
        char sid[64];
        if (!PQgetisnull(r, i, 2) && entry_alive(rd, cfg, PQgetvalue(r, i, 2))) {
            snprintf(sid, sizeof sid, "%s", PQgetvalue(r, i, 2));
        } else if (cap_stream_publish(rd, cfg, &job, sid, sizeof sid, err) < 0) {
            break;
        } else {
            cap_metric_add(m_published, NULL, 1);
            if (!PQgetisnull(r, i, 2))
                cap_log(CAP_LOG_WARN, "delivery_republished",
                        CAP_LI("delivery_id", job.delivery_id),
                        CAP_LS("lost_entry", PQgetvalue(r, i, 2)), CAP_LS("entry", sid));
        }
        ids[np] = job.delivery_id;
        if (!(sids[np] = strdup(sid)))
            break;
        np++;
    }
    if (np > 0) {
        char *ia = cap_pg_i64_array(ids, (size_t)np);
        char *sa = cap_pg_text_array((const char *const *)sids, (size_t)np);
        const char *q[] = {ia, sa};
        struct cap_err e2 = {0};
        if (ia && sa &&
            cap_pg_cmd(pg, "store delivery stream ids", SQL_PUBLISHED, 2, q, &e2) == 0 &&
            cap_pg_cmd(pg, "commit", "COMMIT", 0, NULL, &e2) == 0)
            rc = cap_err_isset(err) ? -1 : n;
        else if (!cap_err_isset(err))
            cap_err_set(err, e2.code, "%s", e2.msg);
        free(ia);
        free(sa);
    } else if (!cap_err_isset(err) && cap_pg_cmd(pg, "commit", "COMMIT", 0, NULL, err) == 0) {
        rc = 0;
    }
out:
    if (rc < 0)
        rollback(pg);
    PQclear(r);
    for (int i = 0; sids && i < np; i++)
        free(sids[i]);
    free(sids);
    free(ids);
    return rc;
}

static void recover(PGconn *pg, const struct cap_config *cfg)
{
    int64_t t = cfg->notify_webhooks_n ? 0 : 10000;
    for (size_t i = 0; i < cfg->notify_webhooks_n; i++)
        if (cfg->notify_webhooks[i].timeout_ms > t)
            t = cfg->notify_webhooks[i].timeout_ms;
    char stale[32], maxb[24];
    /* Later than a worker's own reclaim (reclaim_idle + timeout): the stream goes first. */
    snprintf(stale, sizeof stale, "%.3f", (double)(2 * cfg->worker_reclaim_idle_ms + t) / 1000.0);
    const char *p[] = {stale, cap_pg_i64(maxb, cfg->worker_max_attempts)};
    struct cap_err e = {0};
    PGresult *r = cap_pg_exec(pg, "recover stale deliveries", SQL_RECOVER, 2, p, &e);
    if (!r) {
        cap_log(CAP_LOG_WARN, "notify_recover_failed", CAP_LS("err", e.msg));
        return;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        cap_metric_add(m_recovered, NULL, 1);
        cap_log(CAP_LOG_WARN, "delivery_recovered", CAP_LI("delivery_id", i64(r, i, 0)),
                CAP_LS("status", PQgetvalue(r, i, 1)));
    }
    PQclear(r);
}

static void prune(PGconn *pg, const struct cap_config *cfg)
{
    if (cfg->retention_notifications_ms <= 0)
        return;
    char ret[32], lim[24];
    snprintf(ret, sizeof ret, "%.3f", (double)cfg->retention_notifications_ms / 1000.0);
    const char *p[] = {ret, cap_pg_i64(lim, PRUNE_BATCH)};
    struct cap_err e = {0};
    if (cap_pg_cmd(pg, "prune deliveries", SQL_PRUNE_DELIVERIES, 2, p, &e) < 0 ||
        cap_pg_cmd(pg, "prune notify events", SQL_PRUNE_EVENTS, 2, p, &e) < 0)
        cap_log(CAP_LOG_WARN, "notify_prune_failed", CAP_LS("err", e.msg));
}

void cap_sched_notify_tick(PGconn *pg, redisContext *rd, const struct cap_config *cfg)
{
    metrics_once();
    struct cap_err e = {0};
    /* Ten batches a tick at most: the rest waits for the next tick rather than the sweep. */
    for (int i = 0; i < 10 && dispatch_batch(pg, cfg, &e) == CAP_SCHED_NOTIFY_BATCH; i++)
        ;
    if (cap_err_isset(&e)) {
        cap_log(CAP_LOG_WARN, "notify_dispatch_failed", CAP_LS("err", e.msg));
        cap_err_clear(&e);
    }
    recover(pg, cfg);
    for (int i = 0; i < 10 && publish_batch(pg, rd, cfg, &e) >= cfg->scheduler_batch; i++)
        ;
    if (cap_err_isset(&e))
        cap_log(CAP_LOG_WARN, "notify_publish_failed", CAP_LS("err", e.msg));
    prune(pg, cfg);
}
