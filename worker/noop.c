/* The benchmark-only no-op executor (worker.noop_executor): takes the full job path (claim,
 * status, heartbeat, ack) and does no work, optionally sleeping worker.noop_sleep. */
#include <time.h>

#include "worker/executor.h"

static int noop_execute(struct cap_run_ctx *ctx, struct cap_run_outcome *out, struct cap_err *err)
{
    int64_t left = ctx->cfg->worker_noop_sleep_ms;
    while (left > 0 && !atomic_load(ctx->stopping)) {
        int64_t step = left > 50 ? 50 : left;
        struct timespec ts = {step / 1000, (long)(step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        left -= step;
    }
    if (left > 0) {
        /* Cut short by the drain: say so, so the worker puts the run back to queued. */
        cap_err_set(err, CAP_E_IO, "no-op job interrupted by shutdown");
        return -1;
    }
    out->status = CAP_RUN_SUCCEEDED;
    out->error[0] = '\0';
    out->run_again = false;
    return 0;
}

const struct cap_executor cap_noop_executor = {
    .type = "noop",
    .init = NULL,
    .shutdown = NULL,
    .execute = noop_execute,
};
