/* Webhook deliveries: claim in PostgreSQL (attempts is the fencing token, as for runs), post
 * with the worker's HTTP client under the network policy, record the outcome, then ack (or
 * dead-letter) the stream entry. Every step that cannot finish leaves the entry pending or the
 * row recoverable by the scheduler, so no state change is lost. */
#include "worker/deliver.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/pg.h"
#include "common/redis.h"
#include "common/stream.h"
#include "worker/http.h"

#define ENTRY_ID_MAX 64

/* $1 delivery, $2 worker, $3 worker.max_attempts, $4 seconds after which a claim is stale. */
static const char SQL_CLAIM[] =
    "UPDATE notify_deliveries SET status = 'sending', attempts = attempts + 1, "
    "heartbeat_at = now(), worker = $2 "
    "WHERE id = $1 AND attempts < $3 AND next_attempt_at <= now() "
    "AND (status = 'queued' OR (status = 'sending' "
    "     AND heartbeat_at < now() - make_interval(secs => $4::double precision))) "
    "RETURNING attempts, webhook, idempotency_key, body, content_type";

static const char SQL_STATE[] = "SELECT status, attempts FROM notify_deliveries WHERE id = $1";

static const char SQL_BURY[] =
    "UPDATE notify_deliveries SET status = 'dead', finished_at = now(), heartbeat_at = NULL, "
    "error = format('gave up after %s attempts%s', attempts, "
    "               coalesce(': last error: ' || error, '')) "
    "WHERE id = $1 AND attempts >= $2 AND (status = 'queued' OR (status = 'sending' "
    "     AND heartbeat_at < now() - make_interval(secs => $3::double precision))) "
    "RETURNING id";

/* $1 id, $2 attempt, $3 status (delivered, queued, dead), $4 http status or NULL, $5 error or
 * NULL, $6 backoff seconds. Only the current attempt may write. */
static const char SQL_FINISH[] =
    "UPDATE notify_deliveries SET status = $3, http_status = $4::int, error = $5, "
    "heartbeat_at = NULL, "
    "finished_at = CASE WHEN $3 IN ('delivered', 'dead') THEN now() END, "
    "next_attempt_at = CASE WHEN $3 = 'queued' "
    "  THEN now() + make_interval(secs => $6::double precision) ELSE next_attempt_at END, "
    "stream_id = CASE WHEN $3 = 'queued' THEN NULL ELSE stream_id END, "
    "published_at = CASE WHEN $3 = 'queued' THEN NULL ELSE published_at END "
    "WHERE id = $1 AND attempts = $2 AND status = 'sending' RETURNING id";

struct djob {
    char entry[ENTRY_ID_MAX];
    struct cap_job job;
    struct djob *next;
};

struct cap_deliverer {
    const struct cap_config *cfg;
    char consumer[160];
    struct cap_policy policy;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct djob *head, *tail;
    int queued;
    int stop;
    pthread_t threads[CAP_DELIVER_THREADS];
    int nthreads;
    struct cap_metric *m_out;
};

int64_t cap_deliver_backoff_s(int64_t attempt, long retry_after_s)
{
    int64_t s = 1;
    for (int64_t i = 1; i < attempt && s < 600; i++)
        s *= 2;
    if (s > 600)
        s = 600;
    if (retry_after_s > s)
        s = retry_after_s > 3600 ? 3600 : retry_after_s;
    return s;
}

int cap_deliver_post(const struct cap_webhook *w, const struct cap_policy *policy, const char *body,
                     const char *ctype, const char *key, struct cap_deliver_result *res,
                     struct cap_err *err)
{
    struct cap_http_limits lim = {
        .connect_ms = w->timeout_ms,
        .stall_s = 0,
        .total_ms = w->timeout_ms,
        .max_inflight = 1,
        .user_agent = "CertAutoPilot-discovery-notify/1",
    };
    struct cap_http *h = cap_http_new(policy, &lim, err);
    if (!h)
        return -1;
    struct cap_http_req *r = calloc(1, sizeof *r);
    char keyh[CAP_NOTIFY_KEY_MAX + 32], auth[4200];
    if (!r) {
        cap_http_free(h);
        cap_err_set(err, CAP_E_NOMEM, "delivering a notification: out of memory");
        return -1;
    }
    snprintf(keyh, sizeof keyh, "Idempotency-Key: %s", key);
    const char *hdrs[4] = {keyh, "Expect:", NULL, NULL};
    if (w->token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", w->token);
        hdrs[2] = auth;
    }
    snprintf(r->url, sizeof r->url, "%s", w->url);
    r->body_max = CAP_DELIVER_BODY_MAX;
    r->post = body;
    r->post_len = strlen(body);
    r->content_type = ctype;
    r->extra_headers = hdrs;
    r->max_redirects = 0; /* a webhook that moved is a configuration to fix, not to follow */
    char red[200];
    cap_notify_url_redacted(w->url, red, sizeof red);
    memset(res, 0, sizeof *res);
    res->retry_after_s = -1;
    int rc = 0;
    if (cap_http_start(h, r, err) < 0) {
        rc = -1;
    } else {
        struct cap_http_req *done = NULL;
        while (!done && cap_http_inflight(h) > 0)
            done = cap_http_wait(h, 1000);
        if (!done) {
            rc = -1;
            cap_err_set(err, CAP_E_IO, "delivering to %s: the request never completed", red);
        }
    }
    if (rc == 0) {
        res->http_status = r->status;
        res->retry_after_s = r->retry_after_s;
        switch (r->result) {
        case CAP_HTTP_DONE:
            if (r->status >= 200 && r->status < 300) {
                res->outcome = CAP_DELIVER_DELIVERED;
            } else {
                res->outcome =
                    (r->status == 429 || r->status >= 500) ? CAP_DELIVER_RETRY : CAP_DELIVER_DEAD;
                char snippet[80] = "";
                if (r->body)
                    cap_err_quote(snippet, sizeof snippet, r->body, r->len > 48 ? 48 : r->len);
                snprintf(res->error, sizeof res->error, "%s answered HTTP %ld%s%s%s", red,
                         r->status, snippet[0] ? ": \"" : "", snippet, snippet[0] ? "\"" : "");
            }
            break;
        case CAP_HTTP_POLICY:
            /* The address will not become allowed by waiting. */
            res->outcome = CAP_DELIVER_DEAD;
            snprintf(res->error, sizeof res->error, "%s: %s", red, r->error);
            break;
        case CAP_HTTP_TOO_BIG:
        case CAP_HTTP_RATIO:
            /* It answered; only the status matters, and it was lost with the body. */
            res->outcome = CAP_DELIVER_RETRY;
            snprintf(res->error, sizeof res->error, "%s: answer larger than %d bytes", red,
                     CAP_DELIVER_BODY_MAX);
            break;
        case CAP_HTTP_TIMEOUT:
        case CAP_HTTP_TRANSPORT:
            res->outcome = CAP_DELIVER_RETRY;
            snprintf(res->error, sizeof res->error, "%s: %s", red, r->error);
            break;
        default:
            rc = -1;
            cap_err_set(err, CAP_E_NOMEM, "delivering to %s: %s", red, r->error);
            break;
        }
    }
    cap_http_cancel(h, r);
    free(r);
    cap_http_free(h);
    return rc;
}

/* ---- the threads ---- */

struct conns {
    PGconn *pg;
    redisContext *rd;
};

static int ensure(struct cap_deliverer *d, struct conns *c, struct cap_err *err)
{
    if (c->pg && PQstatus(c->pg) != CONNECTION_OK) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (!c->pg && !(c->pg = cap_pg_connect(d->cfg->database_url, "cap-worker-notify", err)))
        return -1;
    if (c->rd && c->rd->err) {
        redisFree(c->rd);
        c->rd = NULL;
    }
    if (!c->rd && !(c->rd = cap_redis_connect(d->cfg->redis_url, 5000, err)))
        return -1;
    return 0;
}

static void ack(struct cap_deliverer *d, struct conns *c, const char *entry)
{
    const char *argv[] = {"XACK", d->cfg->redis_stream, d->cfg->redis_group, entry};
    struct cap_err err = {0};
    redisReply *r = cap_redis_cmd(c->rd, "acking delivery", 4, argv, NULL, &err);
    if (r)
        freeReplyObject(r);
    else
        /* Pending still: a reclaim finds the delivery finished and acks it then. */
        cap_log(CAP_LOG_WARN, "ack_failed", CAP_LS("entry", entry), CAP_LS("err", err.msg));
}

static void dead_letter(struct cap_deliverer *d, struct conns *c, const struct djob *j,
                        const char *reason)
{
    uint8_t raw[CAP_JOB_MAX_BYTES];
    struct cap_err err = {0};
    int n = cap_job_encode(&j->job, raw, sizeof raw, &err);
    if (cap_stream_dead_letter(c->rd, d->cfg, j->entry, reason, n > 0 ? (const char *)raw : NULL,
                               n > 0 ? (size_t)n : 0, &err) < 0) {
        cap_log(CAP_LOG_ERROR, "dead_letter_failed", CAP_LS("entry", j->entry),
                CAP_LS("err", err.msg));
        return;
    }
    ack(d, c, j->entry);
}

/* The longest webhook timeout: a claim younger than reclaim_idle plus this is still live. */
static double stale_s(const struct cap_config *cfg)
{
    int64_t t = cfg->notify_webhooks_n ? 0 : 10000;
    for (size_t i = 0; i < cfg->notify_webhooks_n; i++)
        if (cfg->notify_webhooks[i].timeout_ms > t)
            t = cfg->notify_webhooks[i].timeout_ms;
    return (double)(cfg->worker_reclaim_idle_ms + t) / 1000.0;
}

/* A delivery that could not be claimed: dead when out of attempts, left pending while another
 * worker is sending it, acked when it is finished (or gone, or waiting for its backoff: the
 * scheduler publishes it again then). */
static void not_claimed(struct cap_deliverer *d, struct conns *c, const struct djob *j,
                        const char *idb, const char *staleb)
{
    char maxb[24];
    const char *p[] = {idb, cap_pg_i64(maxb, d->cfg->worker_max_attempts), staleb};
    struct cap_err err = {0};
    PGresult *b = cap_pg_exec(c->pg, "bury delivery", SQL_BURY, 3, p, &err);
    if (!b) {
        cap_log(CAP_LOG_ERROR, "bury_failed", CAP_LI("delivery_id", j->job.delivery_id),
                CAP_LS("err", err.msg));
        return;
    }
    int buried = PQntuples(b) > 0;
    PQclear(b);
    if (buried) {
        cap_metric_add(d->m_out, "dead", 1);
        cap_log(CAP_LOG_WARN, "delivery_dead", CAP_LI("delivery_id", j->job.delivery_id),
                CAP_LS("entry", j->entry), CAP_LS("err", "out of attempts"));
        dead_letter(d, c, j, "delivery exceeded worker.max_attempts");
        return;
    }
    PGresult *s = cap_pg_exec(c->pg, "read delivery", SQL_STATE, 1, p, &err);
    if (!s) {
        cap_log(CAP_LOG_ERROR, "claim_failed", CAP_LS("err", err.msg));
        return;
    }
    const char *st = PQntuples(s) ? PQgetvalue(s, 0, 0) : "gone";
    if (strcmp(st, "sending") == 0) {
        cap_log(CAP_LOG_INFO, "delivery_in_flight", CAP_LI("delivery_id", j->job.delivery_id),
                CAP_LS("entry", j->entry));
    } else {
        cap_log(CAP_LOG_INFO, "duplicate_delivery", CAP_LI("delivery_id", j->job.delivery_id),
                CAP_LS("entry", j->entry), CAP_LS("status", st));
        ack(d, c, j->entry);
    }
    PQclear(s);
}

static void deliver_one(struct cap_deliverer *d, struct conns *c, struct djob *j)
{
    struct cap_err err = {0};
    if (ensure(d, c, &err) < 0) {
        /* Left pending: XAUTOCLAIM brings it back once the connections return. */
        cap_log(CAP_LOG_WARN, "delivery_connect_failed", CAP_LI("delivery_id", j->job.delivery_id),
                CAP_LS("err", err.msg));
        return;
    }
    char idb[24], maxb[24], staleb[32];
    snprintf(staleb, sizeof staleb, "%.3f", stale_s(d->cfg));
    const char *p[] = {cap_pg_i64(idb, j->job.delivery_id), d->consumer,
                       cap_pg_i64(maxb, d->cfg->worker_max_attempts), staleb};
    PGresult *r = cap_pg_exec(c->pg, "claim delivery", SQL_CLAIM, 4, p, &err);
    if (!r) {
        cap_log(CAP_LOG_ERROR, "claim_failed", CAP_LI("delivery_id", j->job.delivery_id),
                CAP_LS("err", err.msg));
        return;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        not_claimed(d, c, j, idb, staleb);
        return;
    }
    int64_t attempt = cap_pg_get_i64(r, 0, 0);
    const char *hook = PQgetvalue(r, 0, 1);
    cap_log(CAP_LOG_INFO, "delivery_claimed", CAP_LI("delivery_id", j->job.delivery_id),
            CAP_LI("attempt", attempt), CAP_LS("webhook", hook), CAP_LS("entry", j->entry));
    const struct cap_webhook *w = cap_notify_find(d->cfg, hook);
    struct cap_deliver_result res = {.retry_after_s = -1};
    if (!w) {
        /* Perhaps a configuration not yet rolled out to every worker: try again later. */
        res.outcome = CAP_DELIVER_RETRY;
        char q[96];
        snprintf(res.error, sizeof res.error,
                 "webhook \"%s\" is not in this worker's notify.webhooks",
                 cap_err_quote(q, sizeof q, hook, strlen(hook)));
    } else if (cap_deliver_post(w, &d->policy, PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4),
                                PQgetvalue(r, 0, 2), &res, &err) < 0) {
        res.outcome = CAP_DELIVER_RETRY;
        snprintf(res.error, sizeof res.error, "%s", err.msg);
    }
    PQclear(r);
    const char *status = res.outcome == CAP_DELIVER_DELIVERED     ? "delivered"
                         : res.outcome == CAP_DELIVER_DEAD        ? "dead"
                         : attempt >= d->cfg->worker_max_attempts ? "dead"
                                                                  : "queued";
    int64_t backoff = cap_deliver_backoff_s(attempt, res.retry_after_s);
    char ab[24], hb[24], bb[24];
    const char *fp[] = {idb,
                        cap_pg_i64(ab, attempt),
                        status,
                        res.http_status ? cap_pg_i64(hb, res.http_status) : NULL,
                        res.error[0] ? res.error : NULL,
                        cap_pg_i64(bb, backoff)};
    cap_err_clear(&err);
    PGresult *f = NULL;
    /* The outcome must reach PostgreSQL: a lost connection is retried for a while; if it stays
     * away the claim goes stale and the delivery is sent again (same key). */
    for (int tries = 0; tries < 20; tries++) {
        cap_err_clear(&err);
        if (ensure(d, c, &err) == 0 &&
            (f = cap_pg_exec(c->pg, "finish delivery", SQL_FINISH, 6, fp, &err)))
            break;
        if (err.code == CAP_E_INVALID)
            break;
        usleep(250000);
    }
    if (!f) {
        cap_log(CAP_LOG_ERROR, "delivery_finish_failed", CAP_LI("delivery_id", j->job.delivery_id),
                CAP_LS("err", err.msg));
        return;
    }
    int written = PQntuples(f) > 0;
    PQclear(f);
    const char *outcome = !written                           ? "fenced"
                          : strcmp(status, "delivered") == 0 ? "delivered"
                          : strcmp(status, "dead") == 0      ? "dead"
                                                             : "retry";
    cap_metric_add(d->m_out, outcome, 1);
    cap_log(strcmp(outcome, "delivered") == 0 ? CAP_LOG_INFO : CAP_LOG_WARN, "delivery_finished",
            CAP_LI("delivery_id", j->job.delivery_id), CAP_LI("attempt", attempt),
            CAP_LS("outcome", outcome), CAP_LI("http_status", res.http_status),
            CAP_LI("retry_in_s", strcmp(outcome, "retry") == 0 ? backoff : 0),
            CAP_LS("err", res.error));
    if (written && strcmp(status, "dead") == 0)
        dead_letter(d, c, j, res.error[0] ? res.error : "delivery gave up");
    else
        ack(d, c, j->entry);
}

static void *deliver_thread(void *arg)
{
    struct cap_deliverer *d = arg;
    struct conns c = {0};
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!d->head && !d->stop)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->stop) {
            pthread_mutex_unlock(&d->mu);
            break;
        }
        struct djob *j = d->head;
        d->head = j->next;
        if (!d->head)
            d->tail = NULL;
        d->queued--;
        pthread_mutex_unlock(&d->mu);
        deliver_one(d, &c, j);
        free(j);
    }
    if (c.pg)
        PQfinish(c.pg);
    if (c.rd)
        redisFree(c.rd);
    return NULL;
}

struct cap_deliverer *cap_deliverer_new(const struct cap_config *cfg, const char *consumer,
                                        struct cap_err *err)
{
    struct cap_deliverer *d = calloc(1, sizeof *d);
    if (!d) {
        cap_err_set(err, CAP_E_NOMEM, "starting deliveries: out of memory");
        return NULL;
    }
    d->cfg = cfg;
    snprintf(d->consumer, sizeof d->consumer, "%s", consumer);
    if (cap_http_global_init(err) < 0) {
        free(d);
        return NULL;
    }
    if (cap_policy_init(&d->policy, cfg, err) < 0) {
        cap_http_global_cleanup();
        free(d);
        return NULL;
    }
    d->m_out = cap_metrics_counter("cap_notify_deliveries_total",
                                   "Webhook delivery attempts, by outcome.", "outcome");
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    for (int i = 0; i < CAP_DELIVER_THREADS; i++)
        if (pthread_create(&d->threads[d->nthreads], NULL, deliver_thread, d) == 0)
            d->nthreads++;
    return d;
}

int cap_deliverer_submit(struct cap_deliverer *d, const char *entry_id, const struct cap_job *job)
{
    struct djob *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    snprintf(j->entry, sizeof j->entry, "%s", entry_id);
    j->job = *job;
    pthread_mutex_lock(&d->mu);
    if (d->stop || d->queued >= CAP_DELIVER_QUEUE_MAX || d->nthreads == 0) {
        pthread_mutex_unlock(&d->mu);
        free(j);
        return -1;
    }
    if (d->tail)
        d->tail->next = j;
    else
        d->head = j;
    d->tail = j;
    d->queued++;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    return 0;
}

void cap_deliverer_free(struct cap_deliverer *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (int i = 0; i < d->nthreads; i++)
        pthread_join(d->threads[i], NULL);
    while (d->head) {
        struct djob *n = d->head->next;
        free(d->head);
        d->head = n;
    }
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    cap_policy_cleanup(&d->policy);
    cap_http_global_cleanup();
    free(d);
}
