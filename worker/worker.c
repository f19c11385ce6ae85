/* The worker's job loop: XREADGROUP/XAUTOCLAIM on the main thread, claims batched in one
 * PostgreSQL round trip, executors on a pool of job threads (each with its own PostgreSQL and
 * Redis connection, so finishing and acking a job never waits for the main loop). */
#include "worker/worker.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/job.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/pg.h"
#include "common/redis.h"
#include "common/stream.h"
#include "worker/deliver.h"
#include "worker/executor.h"

#define STREAM_ID_MAX 64

static int worker_run(const struct cap_config *cfg, atomic_int *stop, struct cap_err *err);
#define READ_BATCH_MAX 256

static const char SQL_CLAIM[] =
    "UPDATE discovery_runs r SET status = 'running', attempts = r.attempts + 1, "
    "started_at = now(), heartbeat_at = now(), worker = $3, error = NULL "
    "FROM unnest($1::bigint[], $2::bigint[]) AS t(run_id, source_id), discovery_sources s "
    "WHERE r.id = t.run_id AND r.source_id = t.source_id AND s.id = r.source_id "
    "AND r.attempts < $4 "
    "AND (r.status = 'queued' OR (r.status = 'running' AND r.shards = 0 "
    "     AND r.heartbeat_at < now() - make_interval(secs => $5::double precision))) "
    "RETURNING r.id, r.attempts, " CAP_SOURCE_COLUMNS_SQL;

static const char SQL_BURY[] =
    "UPDATE discovery_runs SET status = 'dead', finished_at = now(), "
    "error = format('gave up after %s attempts%s', attempts, "
    "               coalesce(': last error: ' || error, '')) "
    "WHERE id = ANY($1::bigint[]) AND attempts >= $2 "
    "AND (status = 'queued' OR (status = 'running' AND shards = 0 "
    "     AND heartbeat_at < now() - make_interval(secs => $3::double precision))) "
    "RETURNING id";

/* Final statuses of many runs in one round trip; only runs still held by our attempt move. */
static const char SQL_FINISH[] =
    "UPDATE discovery_runs r SET status = t.st, finished_at = now(), heartbeat_at = now(), "
    "error = NULLIF(t.err, '') "
    "FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[]) AS t(id, att, st, err) "
    "WHERE r.id = t.id AND r.attempts = t.att AND r.status = 'running' RETURNING r.id";

/* The same for shards (migration 017): a shard of a running run is claimed, fenced, buried,
 * heartbeated and requeued like a run, on its own row. */
static const char SQL_CLAIM_SHARD[] =
    "UPDATE discovery_run_shards sh SET status = 'running', attempts = sh.attempts + 1, "
    "started_at = now(), heartbeat_at = now(), worker = $4, error = NULL, "
    /* an attempt counts its slice from zero */
    "items_done = 0, items_ok = 0, items_failed = 0, stats = '{}' "
    "FROM unnest($1::bigint[], $2::bigint[], $3::int[]) AS t(run_id, source_id, shard), "
    "discovery_runs r, discovery_sources s "
    "WHERE sh.run_id = t.run_id AND sh.shard = t.shard AND r.id = sh.run_id "
    "AND r.source_id = t.source_id AND r.status = 'running' AND s.id = r.source_id "
    "AND sh.attempts < $5 "
    "AND (sh.status = 'queued' OR (sh.status = 'running' "
    "     AND sh.heartbeat_at < now() - make_interval(secs => $6::double precision))) "
    "RETURNING sh.run_id, sh.attempts, " CAP_SOURCE_COLUMNS_SQL
    ", sh.shard, sh.first_target, sh.end_target";

static const char SQL_BURY_SHARD[] =
    "UPDATE discovery_run_shards sh SET status = 'dead', finished_at = now(), "
    "error = format('gave up after %s attempts%s', sh.attempts, "
    "               coalesce(': last error: ' || sh.error, '')) "
    "FROM unnest($1::bigint[], $2::int[]) AS t(run_id, shard) "
    "WHERE sh.run_id = t.run_id AND sh.shard = t.shard AND sh.attempts >= $3 "
    "AND (sh.status = 'queued' OR (sh.status = 'running' "
    "     AND sh.heartbeat_at < now() - make_interval(secs => $4::double precision))) "
    "RETURNING sh.run_id, sh.shard";

static const char SQL_HEARTBEAT_SHARD[] =
    "UPDATE discovery_run_shards sh SET heartbeat_at = now() "
    "FROM unnest($1::bigint[], $2::int[], $3::int[]) AS t(run_id, shard, att) "
    "WHERE sh.run_id = t.run_id AND sh.shard = t.shard AND sh.attempts = t.att "
    "AND sh.status = 'running'";

/* A shard given back (drain, lost database) is published again at once as a new entry (its
 * old one is acked): shards of a run wait behind it (sched.c publishes them in turn). */
static const char SQL_REQUEUE_SHARD[] =
    "UPDATE discovery_run_shards SET status = 'queued', heartbeat_at = NULL, stream_id = NULL, "
    "published_at = NULL, error = $4 || ' on worker ' || $5 || '; will be retried' "
    "WHERE run_id = $1 AND attempts = $2 AND shard = $3 AND status = 'running'";

/* A run that stopped with a backlog queues its successor at once (labelled `backlog`); the
 * insert's trigger wakes the schedulers, which publish it. */
static const char SQL_RUN_AGAIN[] =
    "INSERT INTO discovery_runs (source_id, trigger) "
    "SELECT s.id, 'backlog' FROM discovery_sources s WHERE s.id = ANY($1::bigint[]) "
    "ON CONFLICT (source_id) WHERE status IN ('queued', 'running') DO NOTHING";

static const char SQL_HEARTBEAT[] =
    "UPDATE discovery_runs r SET heartbeat_at = now() "
    "FROM unnest($1::bigint[], $2::int[]) AS t(id, att) "
    "WHERE r.id = t.id AND r.attempts = t.att AND r.status = 'running'";

static const char SQL_ABANDON[] =
    "UPDATE discovery_runs SET status = 'queued', heartbeat_at = NULL, "
    "error = 'abandoned by worker ' || $3 || ' on shutdown; will be retried' "
    "WHERE id = $1 AND attempts = $2 AND status = 'running'";

/* A run whose database connection broke under it (a PostgreSQL restart): back to queued, to be
 * run again from the start by any worker (its attempts count on). */
static const char SQL_REQUEUE_LOST_DB[] =
    "UPDATE discovery_runs SET status = 'queued', heartbeat_at = NULL, "
    "error = 'database connection lost during the run on worker ' || $3 || '; will be retried' "
    "WHERE id = $1 AND attempts = $2 AND status = 'running'";

/* How long a job thread tries to reach PostgreSQL again before it leaves the run to the
 * scheduler's sweep of stale heartbeats. */
#define DB_LOST_RETRY_MS 30000

struct job {
    int64_t run_id;
    int64_t source_id;
    int64_t attempt;
    int32_t shard; /* 0: the whole run */
    int64_t first_target, end_target;
    char type[32];
    char stream_id[STREAM_ID_MAX];
    int64_t started_ms;
    struct cap_source src; /* read with the claim */
    int have_src;
    char load_err[CAP_ERR_MSG_MAX];
    /* the result, for the finisher */
    const char *status;
    char error[600];
    bool run_again;
    double secs;
    struct job *qnext;         /* waiting for a thread, or for the finisher */
    struct job *anext, *aprev; /* active list, for heartbeats and drain */
};

struct worker {
    const struct cap_config *cfg;
    char name[160];
    char claim_cursor[STREAM_ID_MAX]; /* where the next XAUTOCLAIM goes on */
    atomic_int *stop;
    atomic_int stopping; /* executors see this */
    redisContext *rd;
    PGconn *pg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *qhead, *qtail;
    struct job *fhead, *ftail; /* finished, waiting for the finisher */
    pthread_cond_t fcv;
    int fin_shutdown;
    pthread_t finisher;
    struct job *active;
    int nactive; /* claimed and not yet written back */
    int nbusy;   /* waiting for or inside a job thread */
    int shutdown_threads;
    pthread_t *threads;
    struct job_thread *jt; /* one per thread */
    struct job_thread **idle; /* idle job threads, the one idle longest first */
    int nidle;
    int nthreads;
    struct cap_metric *m_started, *m_finished, *m_duration, *m_dead, *m_poison, *m_dup;
    struct cap_deliverer *deliver; /* notify_deliver jobs (worker/deliver.c) */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *status_name(enum cap_run_status s)
{
    return s == CAP_RUN_SUCCEEDED ? "succeeded" : s == CAP_RUN_PARTIAL ? "partial" : "failed";
}

/* ---- job threads ---- */

struct thread_conns {
    PGconn *pg;
    redisContext *rd;
};

/* PostgreSQL and Redis are reconnected separately: results and heartbeats need only
 * PostgreSQL, so a Redis outage never costs a finished run. */
static int ensure_pg(struct worker *w, PGconn **pg, const char *app, struct cap_err *err)
{
    if (*pg && PQstatus(*pg) != CONNECTION_OK) {
        PQfinish(*pg);
        *pg = NULL;
    }
    if (!*pg) {
        if (!(*pg = cap_pg_connect(w->cfg->database_url, app, err)))
            return -1;
        /* The worker runs the same statements on every connection all day long. */
        if (w->cfg->database_prepared_statements && cap_pg_keep_prepared(*pg) < 0)
            cap_log(CAP_LOG_WARN, "pg_prepared_off", CAP_LS("app", app),
                    CAP_LS("err", "out of memory: statements run unprepared on this connection"));
    }
    return 0;
}

static int ensure_redis(struct worker *w, redisContext **rd, int ensure_group, struct cap_err *err)
{
    if (*rd && (*rd)->err) {
        redisFree(*rd);
        *rd = NULL;
    }
    if (!*rd) {
        if (!(*rd = cap_redis_connect(w->cfg->redis_url, 5000, err)))
            return -1;
        if (ensure_group && cap_stream_ensure_group(*rd, w->cfg, err) < 0) {
            redisFree(*rd);
            *rd = NULL;
            return -1;
        }
    }
    return 0;
}

static void ack(struct worker *w, redisContext *rd, const char *id)
{
    const char *argv[] = {"XACK", w->cfg->redis_stream, w->cfg->redis_group, id};
    struct cap_err err = {0};
    redisReply *r = cap_redis_cmd(rd, "acking job", 4, argv, NULL, &err);
    if (!r) {
        /* The message stays pending; XAUTOCLAIM hands it to a worker that finds the run
         * finished and acks it then. */
        cap_log(CAP_LOG_WARN, "ack_failed", CAP_LS("entry", id), CAP_LS("err", err.msg));
        return;
    }
    freeReplyObject(r);
}

/* Acks a job's entry from its job thread (a shard's end, or a run split into shards: nothing
 * for the finisher to write). A failed ack leaves the entry pending; whoever reclaims it finds
 * the job done and acks it. */
static void job_ack(struct worker *w, struct thread_conns *tc, const struct job *j)
{
    struct cap_err err = {0};
    if (ensure_redis(w, &tc->rd, 0, &err) < 0) {
        cap_log(CAP_LOG_WARN, "ack_failed", CAP_LS("entry", j->stream_id), CAP_LS("err", err.msg));
        return;
    }
    ack(w, tc->rd, j->stream_id);
}

/* Puts a shard this worker holds back to queued (published again by the schedulers at once).
 * 0, or -1 with err. */
static int requeue_shard(struct worker *w, PGconn *pg, const struct job *j, const char *why,
                         struct cap_err *err)
{
    char rb[24], ab[24], sb[24];
    const char *p[] = {cap_pg_i64(rb, j->run_id), cap_pg_i64(ab, j->attempt),
                       cap_pg_i64(sb, j->shard), why, w->name};
    return cap_pg_cmd(pg, "requeue shard", SQL_REQUEUE_SHARD, 5, p, err);
}

/* The run's database connection broke: reconnect with backoff (up to DB_LOST_RETRY_MS, or
 * until the worker drains) and put the run back to queued. When PostgreSQL stays away the run
 * is left running: its heartbeat goes stale and the scheduler's sweep requeues it. */
static void requeue_lost_db(struct worker *w, struct thread_conns *tc, struct job *j,
                            const char *why)
{
    cap_log(CAP_LOG_WARN, "run_db_lost", CAP_LI("run_id", j->run_id), CAP_LI("attempt", j->attempt),
            CAP_LS("err", why));
    int64_t until = mono_ms() + DB_LOST_RETRY_MS;
    useconds_t pause = 100000;
    for (;;) {
        struct cap_err e2 = {0};
        if (ensure_pg(w, &tc->pg, "cap-worker-job", &e2) == 0) {
            char rb[24], ab[24];
            const char *p[] = {cap_pg_i64(rb, j->run_id), cap_pg_i64(ab, j->attempt), w->name};
            int rq = j->shard > 0 ? requeue_shard(w, tc->pg, j,
                                                  "database connection lost during the shard", &e2)
                                  : cap_pg_cmd(tc->pg, "requeue run after a lost connection",
                                               SQL_REQUEUE_LOST_DB, 3, p, &e2);
            if (rq == 0) {
                cap_log(CAP_LOG_INFO, "run_requeued", CAP_LI("run_id", j->run_id),
                        CAP_LI("shard", j->shard),
                        CAP_LS("err", "database connection lost; the run will be retried"));
                if (j->shard > 0)
                    job_ack(w, tc, j);
                return;
            }
        }
        if (mono_ms() >= until || atomic_load(&w->stopping)) {
            cap_log(CAP_LOG_WARN, "run_left_to_sweep", CAP_LI("run_id", j->run_id),
                    CAP_LS("err", e2.msg));
            return;
        }
        usleep(pause);
        pause = pause < 2000000 ? pause * 2 : pause;
    }
}

/* A shard's end, on its job thread: written by the executor already (out->recorded) or here
 * (a failed shard, or an executor that does not end shards itself), then its entry acked.
 * Returns 0 (the job is done with here). */
static int end_shard(struct worker *w, struct thread_conns *tc, struct job *j,
                     struct cap_run_ctx *ctx, int xrc, const struct cap_run_outcome *out,
                     const struct cap_err *xerr, double secs)
{
    const char *status = xrc == 0 ? status_name(out->status) : "failed";
    char error[600];
    snprintf(error, sizeof error, "%s", xrc == 0 ? out->error : xerr->msg);
    for (char *c = error; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    if (xrc != 0 || !out->recorded) {
        struct cap_err err = {0};
        bool ended = false;
        if (cap_run_shard_finish(ctx, xrc == 0 ? out->status : CAP_RUN_FAILED, error, NULL, NULL,
                                 &ended, &err) != 0) {
            /* Fenced: another attempt owns it. Otherwise the shard stays running, its
             * heartbeat goes stale and it is run again. */
            cap_log(CAP_LOG_WARN, err.code == CAP_E_FENCED ? "run_fenced" : "shard_end_failed",
                    CAP_LI("run_id", j->run_id), CAP_LI("shard", j->shard),
                    CAP_LI("attempt", j->attempt), CAP_LS("err", err.msg));
            return 0;
        }
    }
    char labels[80];
    snprintf(labels, sizeof labels, "%s,%s", j->type, status);
    cap_metric_add(w->m_finished, labels, 1);
    cap_metric_observe(w->m_duration, j->type, secs);
    cap_log(strcmp(status, "failed") == 0 ? CAP_LOG_WARN : CAP_LOG_INFO, "shard_finished",
            CAP_LI("run_id", j->run_id), CAP_LI("shard", j->shard), CAP_LS("status", status),
            CAP_LD("seconds", secs), CAP_LS("err", error));
    job_ack(w, tc, j);
    return 0;
}

/* Runs one claimed job on a job thread; the result goes to the finisher. Returns 1 when the
 * job was handed to the finisher, 0 when it is done with here (fenced or requeued). */
static int execute_job(struct worker *w, struct thread_conns *tc, struct job *j)
{
    struct cap_err err = {0};
    if (ensure_pg(w, &tc->pg, "cap-worker-job", &err) < 0) {
        /* Leave the message pending and the run running: its heartbeat goes stale and
         * another worker (or this one, later) reclaims it. */
        cap_log(CAP_LOG_ERROR, "job_connect_failed", CAP_LI("run_id", j->run_id),
                CAP_LS("err", err.msg));
        return 0;
    }
    struct cap_run_outcome out = {.status = CAP_RUN_FAILED};
    const char *status = "failed";
    int interrupted = 0;
    const struct cap_executor *ex = j->have_src ? cap_executor_find(w->cfg, j->src.type) : NULL;
    cap_metric_add(w->m_started, j->type, 1);
    int64_t t0 = mono_ms();
    cap_log(CAP_LOG_INFO, "run_started", CAP_LI("run_id", j->run_id),
            CAP_LI("source_id", j->source_id), CAP_LI("attempt", j->attempt),
            CAP_LS("source_type", j->type));
    j->error[0] = '\0';
    if (!j->have_src) {
        snprintf(j->error, sizeof j->error, "%s", j->load_err);
    } else if (!ex) {
        snprintf(j->error, sizeof j->error,
                 "source type \"%s\" is not implemented yet in this worker build", j->src.type);
    } else {
        struct cap_run_ctx ctx = {
            .cfg = w->cfg,
            .pg = tc->pg,
            .run_id = j->run_id,
            .source_id = j->source_id,
            .attempt = j->attempt,
            .shard = j->shard,
            .first_target = (uint64_t)j->first_target,
            .end_target = (uint64_t)j->end_target,
            .src = &j->src,
            .worker_name = w->name,
            .stopping = &w->stopping,
        };
        int xrc = ex->execute(&ctx, &out, &err);
        if (atomic_load(&w->stopping) && (xrc < 0 ? err.code != CAP_E_FENCED : out.interrupted))
            interrupted = 1;
        if (xrc == 0 && out.split) {
            /* Its shards run it now, on any worker; the run's own entry is done with. */
            job_ack(w, tc, j);
            return 0;
        }
        if (j->shard > 0 && !interrupted && !(xrc < 0 && err.code == CAP_E_FENCED) &&
            !(xrc < 0 && PQstatus(tc->pg) != CONNECTION_OK)) {
            return end_shard(w, tc, j, &ctx, xrc, &out, &err, (double)(mono_ms() - t0) / 1000.0);
        }
        if (xrc == 0) {
            status = status_name(out.status);
            snprintf(j->error, sizeof j->error, "%s", out.error);
            j->run_again = out.run_again;
        } else if (err.code == CAP_E_FENCED) {
            cap_log(CAP_LOG_WARN, "run_fenced", CAP_LI("run_id", j->run_id),
                    CAP_LI("attempt", j->attempt), CAP_LS("err", err.msg));
            return 0;
        } else if (PQstatus(tc->pg) != CONNECTION_OK) {
            /* Not the run's fault: nothing it wrote is lost (batches commit whole), so it is
             * run again rather than recorded as failed. */
            requeue_lost_db(w, tc, j, err.msg);
            return 0;
        } else {
            snprintf(j->error, sizeof j->error, "%s", err.msg);
        }
    }
    j->secs = (double)(mono_ms() - t0) / 1000.0;
    j->status = status;
    /* Messages may quote peer bytes: keep the stored text printable ASCII. */
    for (char *c = j->error; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';

    if (interrupted) {
        /* Cut short by the drain: let another worker redo it rather than record a run that
         * only looks partial or failed because we stopped. A run that completed is recorded
         * as it ended, whatever its status. */
        char rb[24], ab[24];
        const char *p[] = {cap_pg_i64(rb, j->run_id), cap_pg_i64(ab, j->attempt), w->name};
        struct cap_err e2 = {0};
        if (j->shard > 0) {
            if (requeue_shard(w, tc->pg, j, "abandoned on shutdown", &e2) == 0)
                job_ack(w, tc, j);
        } else {
            cap_pg_cmd(tc->pg, "requeue interrupted run", SQL_ABANDON, 3, p, &e2);
        }
        cap_log(CAP_LOG_INFO, "run_requeued", CAP_LI("run_id", j->run_id),
                CAP_LI("shard", j->shard), CAP_LS("err", e2.msg));
        return 0;
    }
    if (j->shard > 0) {
        /* Never ran (its source could not be loaded, or no executor): the shard fails. */
        struct cap_run_ctx ctx = {.cfg = w->cfg,
                                  .pg = tc->pg,
                                  .run_id = j->run_id,
                                  .source_id = j->source_id,
                                  .attempt = j->attempt,
                                  .shard = j->shard,
                                  .worker_name = w->name,
                                  .stopping = &w->stopping};
        struct cap_err xerr = {0};
        snprintf(xerr.msg, sizeof xerr.msg, "%s", j->error);
        return end_shard(w, tc, j, &ctx, -1, &out, &xerr, j->secs);
    }
    return 1;
}

/* Removes a job from the active list and frees it. Called with w->mu held. */
static void retire_locked(struct worker *w, struct job *j)
{
    if (j->aprev)
        j->aprev->anext = j->anext;
    else
        w->active = j->anext;
    if (j->anext)
        j->anext->aprev = j->aprev;
    w->nactive--;
    cap_source_cleanup(&j->src);
    free(j);
}

/* A job thread and what it waits on. A queued job wakes the thread that went idle last (LIFO,
 * as PgBouncer hands out server connections): a worker that is not busy keeps running its jobs
 * on the same few threads, whose PostgreSQL sessions have their statements prepared and planned
 * and their catalog caches filled, where waking any thread would spread the runs over all of
 * them and pay for that on each. */
struct job_thread {
    struct worker *w;
    pthread_cond_t cv;
    bool idle; /* on w->idle */
};

/* Wakes the job thread that went idle last, if any. Called with w->mu held. */
static void wake_idle_locked(struct worker *w)
{
    if (w->nidle == 0)
        return;
    struct job_thread *t = w->idle[--w->nidle];
    t->idle = false;
    pthread_cond_signal(&t->cv);
}

static void idle_remove_locked(struct worker *w, struct job_thread *t)
{
    if (!t->idle)
        return;
    for (int i = 0; i < w->nidle; i++) {
        if (w->idle[i] == t) {
            memmove(&w->idle[i], &w->idle[i + 1], (size_t)(w->nidle - i - 1) * sizeof *w->idle);
            w->nidle--;
            break;
        }
    }
    t->idle = false;
}

static void *job_thread(void *arg)
{
    struct job_thread *self = arg;
    struct worker *w = self->w;
    struct thread_conns tc = {0};
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->qhead && !w->shutdown_threads) {
            if (!self->idle) {
                w->idle[w->nidle++] = self;
                self->idle = true;
            }
            pthread_cond_wait(&self->cv, &w->mu);
        }
        idle_remove_locked(w, self);
        struct job *j = w->qhead;
        if (!j) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        w->qhead = j->qnext;
        if (!w->qhead)
            w->qtail = NULL;
        pthread_mutex_unlock(&w->mu);

        int to_finisher = execute_job(w, &tc, j);

        pthread_mutex_lock(&w->mu);
        w->nbusy--;
        if (to_finisher) {
            j->qnext = NULL;
            if (w->ftail)
                w->ftail->qnext = j;
            else
                w->fhead = j;
            w->ftail = j;
            pthread_cond_signal(&w->fcv);
        } else {
            retire_locked(w, j);
        }
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    if (tc.pg)
        PQfinish(tc.pg);
    if (tc.rd)
        redisFree(tc.rd);
    return NULL;
}

#define FINISH_BATCH_MAX 1000

/* Writes one batch of results: statuses in one statement, then one XACK for every run whose
 * status we wrote. 0, or -1 when the database could not be reached (the batch is kept). */
static int finish_batch(struct worker *w, struct thread_conns *tc, struct job **jobs, int n)
{
    struct cap_err err = {0};
    if (ensure_pg(w, &tc->pg, "cap-worker-finish", &err) < 0) {
        cap_log(CAP_LOG_WARN, "finish_retry", CAP_LS("err", err.msg));
        return -1;
    }
    int64_t *ids = calloc((size_t)n, sizeof *ids), *atts = calloc((size_t)n, sizeof *atts);
    const char **sts = calloc((size_t)n, sizeof *sts), **errs = calloc((size_t)n, sizeof *errs);
    char *ia = NULL, *aa = NULL, *sa = NULL, *ea = NULL;
    int rc = -1;
    if (!ids || !atts || !sts || !errs)
        goto out;
    for (int i = 0; i < n; i++) {
        ids[i] = jobs[i]->run_id;
        atts[i] = jobs[i]->attempt;
        sts[i] = jobs[i]->status;
        errs[i] = jobs[i]->error;
    }
    ia = cap_pg_i64_array(ids, (size_t)n);
    aa = cap_pg_i64_array(atts, (size_t)n);
    sa = cap_pg_text_array(sts, (size_t)n);
    ea = cap_pg_text_array(errs, (size_t)n);
    if (!ia || !aa || !sa || !ea)
        goto out;
    const char *p[] = {ia, aa, sa, ea};
    PGresult *r = cap_pg_exec(tc->pg, "finish runs", SQL_FINISH, 4, p, &err);
    if (!r) {
        cap_log(CAP_LOG_WARN, "finish_retry", CAP_LS("err", err.msg));
        /* A statement the server refuses (not a lost connection) will not improve by retrying. */
        if (err.code == CAP_E_INVALID)
            rc = -2;
        goto out;
    }
    const char **argv = calloc((size_t)n + 3, sizeof *argv);
    int na = 0, nagain = 0;
    argv[0] = "XACK";
    argv[1] = w->cfg->redis_stream;
    argv[2] = w->cfg->redis_group;
    for (int i = 0; i < n; i++) {
        struct job *j = jobs[i];
        int written = 0;
        for (int k = 0; k < PQntuples(r); k++)
            if (cap_pg_get_i64(r, k, 0) == j->run_id)
                written = 1;
        if (!written) {
            cap_log(CAP_LOG_WARN, "run_fenced", CAP_LI("run_id", j->run_id),
                    CAP_LI("attempt", j->attempt), CAP_LS("err", "attempt no longer current"));
            continue;
        }
        char labels[80];
        snprintf(labels, sizeof labels, "%s,%s", j->type, j->status);
        cap_metric_add(w->m_finished, labels, 1);
        cap_metric_observe(w->m_duration, j->type, j->secs);
        cap_log(strcmp(j->status, "failed") == 0 ? CAP_LOG_WARN : CAP_LOG_INFO, "run_finished",
                CAP_LI("run_id", j->run_id), CAP_LS("status", j->status),
                CAP_LD("seconds", j->secs), CAP_LS("err", j->error));
        if (argv)
            argv[3 + na++] = j->stream_id;
        if (j->run_again)
            ids[nagain++] = j->source_id;
    }
    PQclear(r);
    if (nagain) {
        char *ga = cap_pg_i64_array(ids, (size_t)nagain);
        const char *gp[] = {ga};
        cap_err_clear(&err);
        if (!ga || cap_pg_cmd(tc->pg, "ask for the next run", SQL_RUN_AGAIN, 1, gp, &err) < 0)
            cap_log(CAP_LOG_WARN, "run_again_failed", CAP_LS("err", err.msg));
        free(ga);
    }
    cap_err_clear(&err);
    if (argv && na && ensure_redis(w, &tc->rd, 0, &err) < 0) {
        /* Recorded in PostgreSQL already; the messages stay pending and whoever reclaims them
         * finds the runs finished and acks them. */
        cap_log(CAP_LOG_WARN, "ack_failed", CAP_LI("count", na), CAP_LS("err", err.msg));
    } else if (argv && na) {
        redisReply *ar = cap_redis_cmd(tc->rd, "acking jobs", 3 + na, argv, NULL, &err);
        if (ar)
            freeReplyObject(ar);
        else
            /* The messages stay pending; a reclaim finds the runs finished and acks them. */
            cap_log(CAP_LOG_WARN, "ack_failed", CAP_LI("count", na), CAP_LS("err", err.msg));
    }
    free(argv);
    rc = 0;
out:
    free(ia);
    free(aa);
    free(sa);
    free(ea);
    free(ids);
    free(atts);
    free(sts);
    free(errs);
    return rc;
}

/* The finisher thread: takes every result waiting, writes them in batches. */
static void *finisher_thread(void *arg)
{
    struct worker *w = arg;
    struct thread_conns tc = {0};
    struct job **batch = calloc(FINISH_BATCH_MAX, sizeof *batch);
    int failures = 0;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->fhead && !w->fin_shutdown)
            pthread_cond_wait(&w->fcv, &w->mu);
        if (!w->fhead) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        int n = 0;
        while (w->fhead && n < FINISH_BATCH_MAX && batch) {
            batch[n++] = w->fhead;
            w->fhead = w->fhead->qnext;
        }
        if (!w->fhead)
            w->ftail = NULL;
        pthread_mutex_unlock(&w->mu);

        int frc = finish_batch(w, &tc, batch, n);
        if (frc == -2)
            cap_log(CAP_LOG_ERROR, "finish_refused", CAP_LI("count", n));
        if (frc == -1 && !w->fin_shutdown) {
            /* Put the batch back in front and retry after a pause. */
            pthread_mutex_lock(&w->mu);
            for (int i = n - 1; i >= 0; i--) {
                batch[i]->qnext = w->fhead;
                if (!w->fhead)
                    w->ftail = batch[i];
                w->fhead = batch[i];
            }
            pthread_mutex_unlock(&w->mu);
            failures++;
            usleep(failures < 10 ? 200000 : 1000000);
            continue;
        }
        failures = 0;
        pthread_mutex_lock(&w->mu);
        for (int i = 0; i < n; i++)
            retire_locked(w, batch[i]);
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    free(batch);
    if (tc.pg)
        PQfinish(tc.pg);
    if (tc.rd)
        redisFree(tc.rd);
    return NULL;
}

/* ---- main thread: reading, claiming, housekeeping ---- */

struct entry {
    char id[STREAM_ID_MAX];
    const char *raw; /* job bytes, inside the reply */
    size_t raw_len;
    int deleted; /* the entry was trimmed while pending */
    struct cap_job job;
    int valid;
};

static int main_reconnect(struct worker *w, struct cap_err *err)
{
    if (ensure_pg(w, &w->pg, "cap-worker", err) < 0)
        return -1;
    return ensure_redis(w, &w->rd, 1, err);
}

static void dead_letter(struct worker *w, const struct entry *e, const char *reason)
{
    struct cap_err err = {0};
    if (cap_stream_dead_letter(w->rd, w->cfg, e->id, reason, e->raw, e->raw_len, &err) < 0) {
        /* Keep it pending: a later reclaim retries the dead-lettering. */
        cap_log(CAP_LOG_ERROR, "dead_letter_failed", CAP_LS("entry", e->id),
                CAP_LS("err", err.msg));
        return;
    }
    ack(w, w->rd, e->id);
}

/* Hands one claimed row (of SQL_CLAIM, or SQL_CLAIM_SHARD with its three more columns) to a job
 * thread, for the entry it came from. */
static void dispatch_row(struct worker *w, PGresult *r, int k, struct entry *e)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->run_id = cap_pg_get_i64(r, k, 0);
    j->source_id = e->job.source_id;
    j->attempt = cap_pg_get_i64(r, k, 1);
    if (PQnfields(r) >= 2 + CAP_SOURCE_COLUMNS_N + 3) {
        j->shard = (int32_t)cap_pg_get_i64(r, k, 2 + CAP_SOURCE_COLUMNS_N);
        j->first_target = cap_pg_get_i64(r, k, 3 + CAP_SOURCE_COLUMNS_N);
        j->end_target = cap_pg_get_i64(r, k, 4 + CAP_SOURCE_COLUMNS_N);
    }
    struct cap_err serr = {0};
    j->have_src = cap_source_from_row(r, k, 2, &j->src, &serr) == 0;
    snprintf(j->load_err, sizeof j->load_err, "%s", serr.msg);
    snprintf(j->type, sizeof j->type, "%s", PQgetvalue(r, k, 4));
    snprintf(j->stream_id, sizeof j->stream_id, "%s", e->id);
    j->started_ms = now_ms();
    cap_log(CAP_LOG_INFO, "run_claimed", CAP_LI("run_id", j->run_id), CAP_LI("shard", j->shard),
            CAP_LI("attempt", j->attempt), CAP_LS("entry", j->stream_id),
            CAP_LI("queue_ms", j->started_ms - e->job.enqueued_at_ms));
    e->valid = 0;
    pthread_mutex_lock(&w->mu);
    j->anext = w->active;
    if (w->active)
        w->active->aprev = j;
    w->active = j;
    w->nactive++;
    w->nbusy++;
    if (w->qtail)
        w->qtail->qnext = j;
    else
        w->qhead = j;
    w->qtail = j;
    wake_idle_locked(w);
    pthread_mutex_unlock(&w->mu);
}

/* Claims the runs and shards of valid entries (one statement each) and hands them to job
 * threads. */
static void claim_and_dispatch(struct worker *w, struct entry *ents, size_t n)
{
    int64_t runs[READ_BATCH_MAX], srcs[READ_BATCH_MAX], sruns[READ_BATCH_MAX],
        ssrcs[READ_BATCH_MAX], snums[READ_BATCH_MAX];
    size_t nv = 0, ns = 0;
    for (size_t i = 0; i < n; i++) {
        if (ents[i].deleted) {
            cap_metric_add(w->m_poison, NULL, 1);
            cap_log(CAP_LOG_WARN, "entry_trimmed", CAP_LS("entry", ents[i].id));
            dead_letter(w, &ents[i],
                        "entry was removed from the stream while pending; its run is "
                        "re-published from PostgreSQL");
            continue;
        }
        if (!ents[i].valid)
            continue;
        if (ents[i].job.shard > 0) {
            sruns[ns] = ents[i].job.run_id;
            ssrcs[ns] = ents[i].job.source_id;
            snums[ns] = ents[i].job.shard;
            ns++;
        } else {
            runs[nv] = ents[i].job.run_id;
            srcs[nv] = ents[i].job.source_id;
            nv++;
        }
    }
    if (nv == 0 && ns == 0)
        return;
    char maxb[24];
    char idle[32];
    snprintf(idle, sizeof idle, "%.3f", (double)w->cfg->worker_reclaim_idle_ms / 1000.0);
    cap_pg_i64(maxb, w->cfg->worker_max_attempts);
    for (int pass = 0; pass < 2; pass++) {
        bool shards = pass == 1;
        size_t cnt = shards ? ns : nv;
        if (cnt == 0)
            continue;
        char *ra = cap_pg_i64_array(shards ? sruns : runs, cnt);
        char *sa = cap_pg_i64_array(shards ? ssrcs : srcs, cnt);
        char *na = shards ? cap_pg_i64_array(snums, cnt) : NULL;
        struct cap_err err = {0};
        PGresult *r = NULL;
        if (ra && sa && !shards) {
            const char *p[] = {ra, sa, w->name, maxb, idle};
            r = cap_pg_exec(w->pg, "claim runs", SQL_CLAIM, 5, p, &err);
        } else if (ra && sa && na) {
            const char *p[] = {ra, sa, na, w->name, maxb, idle};
            r = cap_pg_exec(w->pg, "claim shards", SQL_CLAIM_SHARD, 6, p, &err);
        }
        free(ra);
        free(sa);
        free(na);
        if (!r) {
            /* Messages stay pending and come back through XAUTOCLAIM. */
            cap_log(CAP_LOG_ERROR, "claim_failed",
                    CAP_LS("err", err.msg[0] ? err.msg : "no memory"));
            for (size_t i = 0; i < n; i++)
                if (ents[i].valid && (ents[i].job.shard > 0) == shards)
                    ents[i].valid = 0;
            continue;
        }
        for (int k = 0; k < PQntuples(r); k++) {
            int64_t run = cap_pg_get_i64(r, k, 0);
            int64_t shard = shards ? cap_pg_get_i64(r, k, 2 + CAP_SOURCE_COLUMNS_N) : 0;
            for (size_t i = 0; i < n; i++) {
                if (ents[i].valid && ents[i].job.run_id == run && ents[i].job.shard == shard) {
                    dispatch_row(w, r, k, &ents[i]);
                    break;
                }
            }
        }
        PQclear(r);
    }

    /* What was not claimed: runs and shards out of attempts die; the rest are duplicates of
     * live or finished ones (or runs deleted with their source) and are acked. */
    int64_t rest[READ_BATCH_MAX], srest[READ_BATCH_MAX], rshard[READ_BATCH_MAX];
    size_t nr = 0, nrs = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ents[i].valid)
            continue;
        if (ents[i].job.shard > 0) {
            srest[nrs] = ents[i].job.run_id;
            rshard[nrs++] = ents[i].job.shard;
        } else {
            rest[nr++] = ents[i].job.run_id;
        }
    }
    PGresult *b = NULL, *bs = NULL;
    struct cap_err err = {0};
    bool failed = false;
    if (nr) {
        char *rra = cap_pg_i64_array(rest, nr);
        const char *bp[] = {rra, maxb, idle};
        b = rra ? cap_pg_exec(w->pg, "bury runs", SQL_BURY, 3, bp, &err) : NULL;
        failed |= !b;
        free(rra);
    }
    if (nrs) {
        char *rra = cap_pg_i64_array(srest, nrs), *rsa = cap_pg_i64_array(rshard, nrs);
        const char *bp[] = {rra, rsa, maxb, idle};
        bs = rra && rsa ? cap_pg_exec(w->pg, "bury shards", SQL_BURY_SHARD, 4, bp, &err) : NULL;
        failed |= !bs;
        free(rra);
        free(rsa);
    }
    for (size_t i = 0; i < n; i++) {
        if (!ents[i].valid)
            continue;
        bool shard = ents[i].job.shard > 0;
        PGresult *res = shard ? bs : b;
        if (!res)
            continue; /* stays pending: XAUTOCLAIM brings it back */
        int buried = 0;
        for (int k = 0; k < PQntuples(res); k++)
            if (cap_pg_get_i64(res, k, 0) == ents[i].job.run_id &&
                (!shard || cap_pg_get_i64(res, k, 1) == ents[i].job.shard))
                buried = 1;
        if (buried) {
            cap_metric_add(w->m_dead, NULL, 1);
            cap_log(CAP_LOG_WARN, "run_dead", CAP_LI("run_id", ents[i].job.run_id),
                    CAP_LI("shard", ents[i].job.shard), CAP_LS("entry", ents[i].id));
            dead_letter(w, &ents[i],
                        shard ? "shard exceeded worker.max_attempts"
                              : "run exceeded worker.max_attempts");
        } else {
            cap_metric_add(w->m_dup, NULL, 1);
            cap_log(CAP_LOG_INFO, "duplicate_delivery", CAP_LI("run_id", ents[i].job.run_id),
                    CAP_LI("shard", ents[i].job.shard), CAP_LS("entry", ents[i].id));
            ack(w, w->rd, ents[i].id);
        }
    }
    if (b)
        PQclear(b);
    if (bs)
        PQclear(bs);
    if (failed)
        cap_log(CAP_LOG_ERROR, "bury_failed", CAP_LS("err", err.msg));
}

/* Parses one [id, [field, value, ...] | nil] entry of a stream reply. */
static void parse_entry(struct worker *w, redisReply *e, struct entry *out)
{
    memset(out, 0, sizeof *out);
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
        e->element[0]->type != REDIS_REPLY_STRING)
        return;
    snprintf(out->id, sizeof out->id, "%s", e->element[0]->str);
    if (e->elements < 2 || e->element[1]->type != REDIS_REPLY_ARRAY) {
        /* nil fields: the entry was deleted (trimmed) while pending. */
        out->deleted = 1;
        return;
    }
    redisReply *f = e->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        if (f->element[i]->type == REDIS_REPLY_STRING && strcmp(f->element[i]->str, "job") == 0 &&
            f->element[i + 1]->type == REDIS_REPLY_STRING) {
            out->raw = f->element[i + 1]->str;
            out->raw_len = f->element[i + 1]->len;
        }
    }
    struct cap_err err = {0};
    if (!out->raw)
        cap_err_set(&err, CAP_E_INVALID, "stream entry has no \"job\" field");
    else if (cap_job_decode((const uint8_t *)out->raw, out->raw_len, &out->job, &err) == 0)
        out->valid = 1;
    if (!out->valid) {
        cap_metric_add(w->m_poison, NULL, 1);
        cap_log(CAP_LOG_WARN, "poison_message", CAP_LS("entry", out->id), CAP_LS("err", err.msg));
        dead_letter(w, out, err.msg);
    }
}

static void handle_entries(struct worker *w, redisReply *arr)
{
    size_t n = arr->elements < READ_BATCH_MAX ? arr->elements : READ_BATCH_MAX;
    struct entry *ents = calloc(n ? n : 1, sizeof *ents);
    if (!ents)
        return;
    for (size_t i = 0; i < n; i++) {
        parse_entry(w, arr->element[i], &ents[i]);
        /* Webhook deliveries have threads of their own; when those are busy the entry stays
         * pending and comes back through XAUTOCLAIM. */
        if (ents[i].valid && ents[i].job.type == CAP_JOB_NOTIFY) {
            ents[i].valid = 0;
            if (!w->deliver || cap_deliverer_submit(w->deliver, ents[i].id, &ents[i].job) < 0)
                cap_log(CAP_LOG_WARN, "delivery_deferred", CAP_LS("entry", ents[i].id));
        }
    }
    claim_and_dispatch(w, ents, n);
    free(ents);
}

/* XREADGROUP for up to `free_slots` new messages, blocking at most block_ms. */
static int read_new(struct worker *w, int free_slots, int block_ms, struct cap_err *err)
{
    char count[16], block[16];
    snprintf(count, sizeof count, "%d", free_slots);
    snprintf(block, sizeof block, "%d", block_ms);
    const char *argv[] = {
        "XREADGROUP", "GROUP",   w->cfg->redis_group,  w->name, "COUNT", count, "BLOCK",
        block,        "STREAMS", w->cfg->redis_stream, ">"};
    redisReply *r = redisCommandArgv(w->rd, 11, argv, NULL);
    if (!r) {
        cap_err_set(err, CAP_E_IO, "reading jobs: redis connection failed: %s", w->rd->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "NOGROUP", 7) == 0) {
            /* Redis lost its data (or the group was removed): recreate and go on. */
            cap_log(CAP_LOG_WARN, "group_missing", CAP_LS("stream", w->cfg->redis_stream));
            freeReplyObject(r);
            return cap_stream_ensure_group(w->rd, w->cfg, err);
        }
        cap_err_set(err, CAP_E_IO, "reading jobs: %.160s", r->str);
        freeReplyObject(r);
        return -1;
    }
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t s = 0; s < r->elements; s++) {
            redisReply *st = r->element[s];
            if (st->type == REDIS_REPLY_ARRAY && st->elements == 2 &&
                st->element[1]->type == REDIS_REPLY_ARRAY)
                handle_entries(w, st->element[1]);
        }
    }
    freeReplyObject(r);
    return 0;
}

/* One XAUTOCLAIM call from the saved cursor. Redis scans at most COUNT x 10 pending entries
 * per call, so the cursor it returns is kept and the next call goes on from there; returns 1
 * when the scan wrapped around to 0-0 (a full pass is done), 0 otherwise. */
static int autoclaim_step(struct worker *w, int free_slots)
{
    char idle[24], count[16];
    snprintf(idle, sizeof idle, "%" PRId64, w->cfg->worker_reclaim_idle_ms);
    snprintf(count, sizeof count, "%d", free_slots);
    const char *argv[] = {"XAUTOCLAIM",
                          w->cfg->redis_stream,
                          w->cfg->redis_group,
                          w->name,
                          idle,
                          w->claim_cursor,
                          "COUNT",
                          count};
    struct cap_err err = {0};
    redisReply *r = cap_redis_cmd(w->rd, "reclaiming jobs", 8, argv, NULL, &err);
    if (!r) {
        if (!strstr(err.msg, "NOGROUP"))
            cap_log(CAP_LOG_WARN, "autoclaim_failed", CAP_LS("err", err.msg));
        snprintf(w->claim_cursor, sizeof w->claim_cursor, "0-0");
        return 1;
    }
    int wrapped = 1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(w->claim_cursor, sizeof w->claim_cursor, "%s", r->element[0]->str);
        wrapped = strcmp(w->claim_cursor, "0-0") == 0;
    }
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2) {
        redisReply *ents = r->element[1];
        if (ents->type == REDIS_REPLY_ARRAY && ents->elements) {
            cap_log(CAP_LOG_INFO, "jobs_reclaimed", CAP_LI("count", ents->elements));
            handle_entries(w, ents);
        }
        /* Redis 7 lists entries that were deleted while pending; they are already gone from
         * the pending list. Their runs come back from PostgreSQL (stale heartbeat). */
        if (r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY) {
            redisReply *del = r->element[2];
            for (size_t i = 0; i < del->elements; i++) {
                if (del->element[i]->type != REDIS_REPLY_STRING)
                    continue;
                struct entry e = {0};
                snprintf(e.id, sizeof e.id, "%s", del->element[i]->str);
                e.deleted = 1;
                cap_metric_add(w->m_poison, NULL, 1);
                cap_log(CAP_LOG_WARN, "entry_trimmed", CAP_LS("entry", e.id));
                struct cap_err de = {0};
                cap_stream_dead_letter(w->rd, w->cfg, e.id,
                                       "entry was removed from the stream while pending; its "
                                       "run is re-published from PostgreSQL",
                                       NULL, 0, &de);
            }
        }
    }
    freeReplyObject(r);
    return wrapped;
}

/* Takes over messages idle longer than worker.reclaim_idle (their worker died), going on from
 * where the last pass stopped, until a full pass is done, the slots are full, or 16 calls. */
static void autoclaim(struct worker *w, int free_slots)
{
    for (int calls = 0; calls < 16 && free_slots > 0; calls++) {
        if (autoclaim_step(w, free_slots))
            break;
        pthread_mutex_lock(&w->mu);
        free_slots = w->nthreads - w->nbusy;
        pthread_mutex_unlock(&w->mu);
    }
}

/* Keeps our own pending messages and our runs' heartbeat_at fresh. */
static void heartbeat(struct worker *w)
{
    struct cap_err cerr = {0};
    int pg_ok = ensure_pg(w, &w->pg, "cap-worker", &cerr) == 0;
    int rd_ok = ensure_redis(w, &w->rd, 1, &cerr) == 0;
    pthread_mutex_lock(&w->mu);
    int n = w->nactive;
    int64_t *ids = calloc((size_t)n + 1, sizeof *ids);
    int64_t *atts = calloc((size_t)n + 1, sizeof *atts);
    const char **argv = calloc((size_t)n + 7, sizeof *argv);
    char(*sids)[STREAM_ID_MAX] = calloc((size_t)n + 1, STREAM_ID_MAX);
    int64_t *shards = calloc((size_t)n + 1, sizeof *shards);
    int k = 0, nruns = 0, nshards = 0;
    /* Runs from the front of ids/atts, shards from the back (with their numbers). */
    for (struct job *j = w->active; j && ids && atts && argv && sids && shards && k < n;
         j = j->anext) {
        int at = j->shard > 0 ? n - 1 - nshards++ : nruns++;
        ids[at] = j->run_id;
        atts[at] = j->attempt;
        shards[at] = j->shard;
        memcpy(sids[k], j->stream_id, STREAM_ID_MAX);
        k++;
    }
    pthread_mutex_unlock(&w->mu);
    if (k > 0) {
        struct cap_err err = {0};
        if (!pg_ok)
            cap_log(CAP_LOG_WARN, "heartbeat_failed", CAP_LS("err", cerr.msg));
        if (pg_ok && nruns > 0) {
            char *ia = cap_pg_i64_array(ids, (size_t)nruns);
            char *aa = cap_pg_i64_array(atts, (size_t)nruns);
            const char *p[] = {ia, aa};
            if (ia && aa && cap_pg_cmd(w->pg, "heartbeat runs", SQL_HEARTBEAT, 2, p, &err) < 0)
                cap_log(CAP_LOG_WARN, "heartbeat_failed", CAP_LS("err", err.msg));
            free(ia);
            free(aa);
        }
        if (pg_ok && nshards > 0) {
            size_t from = (size_t)(n - nshards);
            char *ia = cap_pg_i64_array(ids + from, (size_t)nshards);
            char *sa = cap_pg_i64_array(shards + from, (size_t)nshards);
            char *aa = cap_pg_i64_array(atts + from, (size_t)nshards);
            const char *p[] = {ia, sa, aa};
            cap_err_clear(&err);
            if (ia && sa && aa &&
                cap_pg_cmd(w->pg, "heartbeat shards", SQL_HEARTBEAT_SHARD, 3, p, &err) < 0)
                cap_log(CAP_LOG_WARN, "heartbeat_failed", CAP_LS("err", err.msg));
            free(ia);
            free(sa);
            free(aa);
        }
        argv[0] = "XCLAIM";
        argv[1] = w->cfg->redis_stream;
        argv[2] = w->cfg->redis_group;
        argv[3] = w->name;
        argv[4] = "0";
        for (int i = 0; i < k; i++)
            argv[5 + i] = sids[i];
        argv[5 + k] = "JUSTID";
        cap_err_clear(&err);
        redisReply *r =
            rd_ok ? cap_redis_cmd(w->rd, "refreshing pending jobs", 6 + k, argv, NULL, &err) : NULL;
        if (r)
            freeReplyObject(r);
        else if (rd_ok)
            cap_log(CAP_LOG_WARN, "heartbeat_failed", CAP_LS("err", err.msg));
    }
    free(ids);
    free(atts);
    free(shards);
    free(argv);
    free(sids);
}

/* Removes consumers that have been idle for long and hold nothing pending. Consumers with
 * pending entries are left alone: XAUTOCLAIM takes their entries first (deleting a consumer
 * would drop its pending entries). */
static void prune_consumers(struct worker *w)
{
    const char *argv[] = {"XINFO", "CONSUMERS", w->cfg->redis_stream, w->cfg->redis_group};
    redisReply *r = redisCommandArgv(w->rd, 4, argv, NULL);
    if (!r)
        return;
    long long max_idle = w->cfg->worker_reclaim_idle_ms * 10;
    if (max_idle < 600000)
        max_idle = 600000;
    if (r->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *c = r->element[i];
            if (c->type != REDIS_REPLY_ARRAY)
                continue;
            const char *name = NULL;
            long long pending = -1, idle = -1;
            for (size_t f = 0; f + 1 < c->elements; f += 2) {
                if (c->element[f]->type != REDIS_REPLY_STRING)
                    continue;
                redisReply *v = c->element[f + 1];
                if (!strcmp(c->element[f]->str, "name") && v->type == REDIS_REPLY_STRING)
                    name = v->str;
                else if (!strcmp(c->element[f]->str, "pending") && v->type == REDIS_REPLY_INTEGER)
                    pending = v->integer;
                else if (!strcmp(c->element[f]->str, "idle") && v->type == REDIS_REPLY_INTEGER)
                    idle = v->integer;
            }
            if (name && pending == 0 && idle > max_idle && strcmp(name, w->name) != 0) {
                const char *dargv[] = {"XGROUP", "DELCONSUMER", w->cfg->redis_stream,
                                       w->cfg->redis_group, name};
                redisReply *d = redisCommandArgv(w->rd, 5, dargv, NULL);
                if (d)
                    freeReplyObject(d);
                cap_log(CAP_LOG_INFO, "consumer_pruned", CAP_LS("consumer", name));
            }
        }
    }
    freeReplyObject(r);
}

static void requeue_abandoned(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    for (struct job *j = w->active; j; j = j->anext) {
        char rb[24], ab[24];
        const char *p[] = {cap_pg_i64(rb, j->run_id), cap_pg_i64(ab, j->attempt), w->name};
        struct cap_err err = {0};
        if (j->shard > 0)
            requeue_shard(w, w->pg, j, "abandoned on shutdown", &err);
        else
            cap_pg_cmd(w->pg, "requeue abandoned run", SQL_ABANDON, 3, p, &err);
        cap_log(CAP_LOG_WARN, "run_abandoned", CAP_LI("run_id", j->run_id),
                CAP_LS("entry", j->stream_id), CAP_LS("err", err.msg));
    }
    pthread_mutex_unlock(&w->mu);
}

struct watchdog {
    atomic_int *stop;
    atomic_int done;
    int64_t limit_ms;
};

/* Enforces the drain deadline even when a thread sits in a call that never returns (a database
 * that stopped answering): worker.drain_grace after SIGTERM, plus a little for the requeue,
 * the process leaves. Its runs go stale and are recovered like those of a killed worker. */
static void *watchdog_thread(void *arg)
{
    struct watchdog *wd = arg;
    while (!atomic_load(wd->stop) && !atomic_load(&wd->done))
        usleep(50000);
    int64_t deadline = mono_ms() + wd->limit_ms;
    while (!atomic_load(&wd->done)) {
        if (mono_ms() >= deadline) {
            cap_log(CAP_LOG_WARN, "drain_deadline", CAP_LI("limit_ms", wd->limit_ms),
                    CAP_LS("err", "in-flight work abandoned; its runs will be recovered"));
            fflush(stdout);
            _exit(0);
        }
        usleep(20000);
    }
    return NULL;
}

static struct watchdog wd_state;

int cap_worker_run(const struct cap_config *cfg, atomic_int *stop, struct cap_err *err)
{
    wd_state.stop = stop;
    atomic_store(&wd_state.done, 0);
    wd_state.limit_ms = cfg->worker_drain_grace_ms + 2000;
    pthread_t wdt;
    if (pthread_create(&wdt, NULL, watchdog_thread, &wd_state) == 0)
        pthread_detach(wdt);
    int rc = worker_run(cfg, stop, err);
    atomic_store(&wd_state.done, 1);
    return rc;
}

static int worker_run(const struct cap_config *cfg, atomic_int *stop, struct cap_err *err)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w) {
        cap_err_set(err, CAP_E_NOMEM, "starting worker: out of memory");
        return -1;
    }
    w->cfg = cfg;
    w->stop = stop;
    snprintf(w->claim_cursor, sizeof w->claim_cursor, "0-0");
    char host[64] = "worker";
    gethostname(host, sizeof host - 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(w->name, sizeof w->name, "%s-%d-%04lx", host, (int)getpid(),
             (unsigned long)(ts.tv_nsec & 0xffff));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_cond_init(&w->fcv, NULL);
    w->m_started = cap_metrics_counter("cap_jobs_started_total", "Jobs started, by source type.",
                                       "source_type");
    w->m_finished = cap_metrics_counter("cap_jobs_finished_total",
                                        "Jobs finished, by source type and final status.",
                                        "source_type,status");
    w->m_duration = cap_metrics_histogram(
        "cap_job_duration_seconds", "Time from claim to final status.", "source_type", NULL, 0);
    w->m_dead = cap_metrics_counter("cap_jobs_dead_total",
                                    "Runs given up after worker.max_attempts.", NULL);
    w->m_poison = cap_metrics_counter(
        "cap_stream_poison_total", "Stream entries dead-lettered as unreadable or trimmed.", NULL);
    w->m_dup = cap_metrics_counter("cap_jobs_duplicate_total",
                                   "Deliveries of runs already live or finished (acked).", NULL);

    int retry_ms = 200;
    while (main_reconnect(w, err) < 0) {
        if (atomic_load(stop)) {
            /* Stopped before Redis or PostgreSQL ever answered: nothing in flight. */
            if (w->pg)
                PQfinish(w->pg);
            if (w->rd)
                redisFree(w->rd);
            pthread_mutex_destroy(&w->mu);
            pthread_cond_destroy(&w->cv);
            pthread_cond_destroy(&w->fcv);
            free(w);
            cap_err_clear(err);
            cap_log0(CAP_LOG_INFO, "worker_stopped");
            return 0;
        }
        cap_log(CAP_LOG_WARN, "connect_retry", CAP_LS("err", err->msg));
        cap_err_clear(err);
        usleep((useconds_t)retry_ms * 1000);
        retry_ms = retry_ms < 5000 ? retry_ms * 2 : 5000;
    }
    if (cap_executors_init(cfg, err) < 0) {
        PQfinish(w->pg);
        redisFree(w->rd);
        free(w);
        return -1;
    }
    if (!(w->deliver = cap_deliverer_new(cfg, w->name, err))) {
        cap_executors_shutdown();
        PQfinish(w->pg);
        redisFree(w->rd);
        free(w);
        return -1;
    }
    w->nthreads = cfg->worker_max_jobs > 0 ? cfg->worker_max_jobs : 1;
    w->threads = calloc((size_t)w->nthreads, sizeof *w->threads);
    w->jt = calloc((size_t)w->nthreads, sizeof *w->jt);
    w->idle = calloc((size_t)w->nthreads, sizeof *w->idle);
    if (!w->threads || !w->jt || !w->idle) {
        cap_err_set(err, CAP_E_NOMEM, "worker: out of memory for %d job threads", w->nthreads);
        free(w->threads);
        free(w->jt);
        free(w->idle);
        cap_deliverer_free(w->deliver);
        cap_executors_shutdown();
        PQfinish(w->pg);
        redisFree(w->rd);
        free(w);
        return -1;
    }
    for (int i = 0; i < w->nthreads; i++) {
        w->jt[i].w = w;
        pthread_cond_init(&w->jt[i].cv, NULL);
        pthread_create(&w->threads[i], NULL, job_thread, &w->jt[i]);
    }
    pthread_create(&w->finisher, NULL, finisher_thread, w);
    cap_log(CAP_LOG_INFO, "worker_started", CAP_LS("consumer", w->name),
            CAP_LI("max_jobs", w->nthreads),
            CAP_LI("max_concurrent_discovery", cfg->worker_max_concurrent_discovery));

    int64_t hb_every =
        cfg->worker_heartbeat_ms > 0 ? cfg->worker_heartbeat_ms : cfg->worker_reclaim_idle_ms / 4;
    if (hb_every < 100)
        hb_every = 100;
    int64_t claim_every =
        cfg->worker_reclaim_idle_ms / 2 > 200 ? cfg->worker_reclaim_idle_ms / 2 : 200;
    int64_t next_hb = mono_ms() + hb_every, next_claim = mono_ms(), next_prune = mono_ms() + 60000;
    retry_ms = 200;
    while (!atomic_load(stop)) {
        struct cap_err e = {0};
        int64_t now = mono_ms();
        if (now >= next_hb) {
            /* Whatever is down, keep what can be kept fresh (runs in PostgreSQL, pending
             * messages in Redis). */
            heartbeat(w);
            next_hb = now + hb_every;
        }
        if (main_reconnect(w, &e) < 0) {
            cap_log(CAP_LOG_WARN, "connect_retry", CAP_LS("err", e.msg));
            int64_t nap = retry_ms;
            if (nap > next_hb - mono_ms())
                nap = next_hb - mono_ms() > 10 ? next_hb - mono_ms() : 10;
            usleep((useconds_t)nap * 1000);
            retry_ms = retry_ms < 5000 ? retry_ms * 2 : 5000;
            continue;
        }
        retry_ms = 200;
        pthread_mutex_lock(&w->mu);
        int free_slots = w->nthreads - w->nbusy;
        pthread_mutex_unlock(&w->mu);
        if (free_slots > READ_BATCH_MAX)
            free_slots = READ_BATCH_MAX;
        if (free_slots > 0 && now >= next_claim) {
            autoclaim(w, free_slots);
            next_claim = now + claim_every;
            pthread_mutex_lock(&w->mu);
            free_slots = w->nthreads - w->nbusy;
            pthread_mutex_unlock(&w->mu);
        }
        if (now >= next_prune) {
            prune_consumers(w);
            next_prune = now + 60000;
        }
        if (free_slots <= 0) {
            /* All job threads busy: wait for one to finish (or the next heartbeat). */
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_nsec += 50 * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
            pthread_mutex_lock(&w->mu);
            if (w->nbusy >= w->nthreads)
                pthread_cond_timedwait(&w->cv, &w->mu, &dl);
            pthread_mutex_unlock(&w->mu);
            continue;
        }
        int64_t until_hb = next_hb - mono_ms();
        int block = (int)(until_hb < 1000 ? (until_hb > 10 ? until_hb : 10) : 1000);
        if (read_new(w, free_slots, block, &e) < 0) {
            cap_log(CAP_LOG_WARN, "read_failed", CAP_LS("err", e.msg));
            usleep(200000);
        }
    }

    /* Drain: no more reads; in-flight jobs get worker.drain_grace. */
    atomic_store(&w->stopping, 1);
    cap_log(CAP_LOG_INFO, "worker_draining", CAP_LI("in_flight", w->nactive));
    int64_t deadline = mono_ms() + cfg->worker_drain_grace_ms;
    int64_t next_hb2 = mono_ms() + hb_every;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        int left = w->nactive;
        pthread_mutex_unlock(&w->mu);
        if (left == 0 || mono_ms() >= deadline)
            break;
        if (mono_ms() >= next_hb2) {
            heartbeat(w);
            next_hb2 = mono_ms() + hb_every;
        }
        usleep(20000);
    }
    pthread_mutex_lock(&w->mu);
    int left = w->nactive;
    w->shutdown_threads = 1;
    pthread_cond_broadcast(&w->cv);
    for (int i = 0; i < w->nthreads; i++)
        pthread_cond_signal(&w->jt[i].cv);
    pthread_mutex_unlock(&w->mu);
    if (left > 0) {
        struct cap_err e = {0};
        if (ensure_pg(w, &w->pg, "cap-worker", &e) == 0)
            requeue_abandoned(w);
        cap_log(CAP_LOG_WARN, "worker_stopped", CAP_LI("abandoned", left));
        return 1;
    }
    for (int i = 0; w->threads && i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_mutex_lock(&w->mu);
    w->fin_shutdown = 1;
    pthread_cond_broadcast(&w->fcv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->finisher, NULL);
    cap_deliverer_free(w->deliver);
    cap_executors_shutdown();
    for (int i = 0; i < w->nthreads; i++)
        pthread_cond_destroy(&w->jt[i].cv);
    free(w->jt);
    free(w->idle);
    free(w->threads);
    if (w->pg)
        PQfinish(w->pg);
    if (w->rd)
        redisFree(w->rd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    pthread_cond_destroy(&w->fcv);
    free(w);
    cap_log0(CAP_LOG_INFO, "worker_stopped");
    return 0;
}
