/* The executor interface: what a source type (network_scan, ct_log, and the benchmark-only
 * noop) implements to run one claimed run inside cap-worker, and the source row it runs. */
#ifndef CAP_EXECUTOR_H
#define CAP_EXECUTOR_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/source/source.h"

/* A source row as read from discovery_sources at execution time (never from the message). What
 * its type needs is spec, parsed by the type's descriptor (common/source/) into that type's
 * struct: struct cap_network_scan_spec for network_scan, struct cap_ct_log_spec for ct_log. */
struct cap_source {
    int64_t id;
    char *name;
    char *type;
    char *schedule;
    const struct cap_source_type *desc; /* NULL when this build has no descriptor of type */
    void *spec;                         /* desc's typed struct; NULL with desc */
};

/* The columns cap_source_from_row reads, in order, for a query over discovery_sources AS s. */
#define CAP_SOURCE_COLUMNS_SQL "s.id, s.name, s.type, s.schedule, s.spec"
#define CAP_SOURCE_COLUMNS_N 5

/* Fills out from row `row` of r, whose columns col0.. are CAP_SOURCE_COLUMNS_SQL, parsing spec
 * with the type's descriptor. A type without a descriptor loads with desc and spec NULL (its
 * executor, if any, is told so). Returns 0, or -1 with err (a spec the descriptor refuses). */
int cap_source_from_row(const PGresult *r, int row, int col0, struct cap_source *out,
                        struct cap_err *err);

/* Loads source id with c. Returns 0, or -1 with err (missing source is CAP_E_INVALID). */
int cap_source_load(PGconn *c, int64_t id, struct cap_source *out, struct cap_err *err);
void cap_source_cleanup(struct cap_source *s);

enum cap_run_status { CAP_RUN_SUCCEEDED = 0, CAP_RUN_PARTIAL, CAP_RUN_FAILED };

/* Everything an executor may use while it runs one job. It runs on its own job thread and may
 * block on ctx->pg (a connection of its own). */
struct cap_run_ctx {
    const struct cap_config *cfg;
    PGconn *pg;
    int64_t run_id;
    int64_t source_id;
    int64_t attempt;          /* fencing token: every write must carry it (the shard's own
                               * attempts when shard is set) */
    int32_t shard;            /* shard of the run this job executes (from 1); 0: the whole run */
    uint64_t first_target;    /* shard only: its slice [first_target, end_target) of the run's */
    uint64_t end_target;      /* target sequence */
    const struct cap_source *src;
    const char *worker_name;
    const atomic_int *stopping; /* non-zero once the worker drains: stop early, keep results */
};

struct cap_run_outcome {
    enum cap_run_status status;
    char error[512];      /* summary for discovery_runs.error ("" when none) */
    bool run_again;       /* ask the scheduler for the next run at once (CT backlog) */
    bool interrupted;     /* stopped early because ctx->stopping was set: the worker puts the
                           * run back to queued instead of recording this outcome */
    bool split;           /* the run was split into shards (cap_run_split): the worker leaves
                           * it running and acks its entry; its shards end it */
    bool recorded;        /* a shard's final status is written already (cap_run_shard_finish) */
};

struct cap_executor {
    const char *type;
    /* Called once per worker process before any job (may start threads). NULL: nothing. */
    int (*init)(const struct cap_config *cfg, struct cap_err *err);
    /* Called once at exit after all jobs ended. NULL: nothing. */
    void (*shutdown)(void);
    /* Runs the job. Returns 0 with out filled (the run then ends with out->status), or -1 with
     * err: the run ends failed with err's message, or, when err->code is CAP_E_FENCED, the
     * worker drops the job because another attempt owns the run. */
    int (*execute)(struct cap_run_ctx *ctx, struct cap_run_outcome *out, struct cap_err *err);
};

/* The executor for type, or NULL. "noop" is only returned when worker.noop_executor is set. */
const struct cap_executor *cap_executor_find(const struct cap_config *cfg, const char *type);

/* Adds an executor (a test's, or one a build links in) beside the built-in ones; call it from
 * main() before the worker starts. e must outlive the process. Returns 0, or -1 with err when
 * its type has an executor already or the table is full. */
int cap_executor_register(const struct cap_executor *e, struct cap_err *err);

/* init/shutdown of every registered executor. */
int cap_executors_init(const struct cap_config *cfg, struct cap_err *err);
void cap_executors_shutdown(void);

/* Inside an open transaction on ctx->pg: locks the run row (FOR SHARE) and checks the run is
 * still running under ctx->attempt (for a shard: the shard's row and attempts). Returns -1 with
 * CAP_E_FENCED when another attempt owns it. Every executor write transaction starts with it. */
int cap_run_fence(struct cap_run_ctx *ctx, struct cap_err *err);

/* Splits the running run of ctx (a whole run, not a shard) into ceil(total / size) shards,
 * contiguous slices of its target sequence, queued for any worker (the schedulers publish them);
 * the run stays running and its counts become the sums of its shards'. Fenced, one
 * transaction. Returns the number of shards, or -1 with err (CAP_E_FENCED: another attempt owns
 * the run). */
int cap_run_split(struct cap_run_ctx *ctx, uint64_t total, uint64_t size, struct cap_err *err);

/* Called inside cap_run_shard_finish's transaction when the shard ending is the last of its run
 * and every other shard completed (succeeded or partial): the executor resolves what the whole
 * run re-examined. 0, or -1 with err (the shard's end is rolled back). */
typedef int (*cap_run_last_shard_fn)(struct cap_run_ctx *ctx, void *arg, struct cap_err *err);

/* Ends the shard of ctx with status and error ("" none), fenced, in one transaction that first
 * locks the run, so shards of a run end one at a time; when it is the last open shard the run
 * ends too (migration 017's trigger: status and error from all shards). last (may be NULL) runs
 * first when this is the last shard and the others completed and status is not failed. Sets
 * *run_ended (may be NULL) when the run ended. Returns 0, or -1 with err (CAP_E_FENCED when
 * another attempt owns the shard). */
int cap_run_shard_finish(struct cap_run_ctx *ctx, enum cap_run_status status, const char *error,
                         cap_run_last_shard_fn last, void *arg, bool *run_ended,
                         struct cap_err *err);

/* A run's progress, as cap_run_progress writes it. A count at -1 is left as it is. The items
 * are what the source type processes (network_scan: targets; ct_log: log entries). */
struct cap_progress {
    int64_t items_total;      /* to process */
    int64_t items_done;       /* processed so far */
    int64_t items_ok;         /* of which with a result */
    int64_t items_failed;     /* of which failed */
    int64_t new_certificates; /* certificates first seen by this run */
    int64_t drifts;           /* drift events this run recorded */
    const char *stats;        /* JSON object of the type's own counts, merged into the run's
                               * stats (network_scan: silent, closed, no_route, unreachable,
                               * tls_error; ct_log: matches); NULL: none */
};

/* Every count left as it is: start from this and set what changed. */
#define CAP_PROGRESS_KEEP                                                                          \
    {                                                                                              \
        .items_total = -1, .items_done = -1, .items_ok = -1, .items_failed = -1,                   \
        .new_certificates = -1, .drifts = -1, .stats = NULL                                        \
    }

/* The one writer of a run's progress: sets discovery_runs.items_*, new_certificates,
 * drift_count and stats from p, keeps the older columns dashboards read in step with them
 * (targets_total and targets_done: the items; ok_count: items_ok, or stats matches when the
 * run has it; unreachable_count: stats unreachable), and moves heartbeat_at. Fenced, one
 * statement (inside the caller's transaction when one is open). Returns 0, or -1 with err
 * (CAP_E_FENCED when another attempt owns the run; CAP_E_INVALID when stats is not a JSON
 * object). Blocks. */
int cap_run_progress(struct cap_run_ctx *ctx, const struct cap_progress *p, struct cap_err *err);

#endif
