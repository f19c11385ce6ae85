/* cap-worker's job loop: a consumer of the job stream that claims runs in PostgreSQL (the
 * attempt count is the fencing token), runs them on job threads through the executor of their
 * source type, keeps heartbeats, reclaims messages of dead workers, dead-letters poison, and
 * drains on SIGTERM. */
#ifndef CAP_WORKER_H
#define CAP_WORKER_H

#include <stdatomic.h>

#include "common/config.h"
#include "common/err.h"

/* Runs the worker until *stop becomes non-zero, then drains: in-flight jobs get
 * worker.drain_grace to finish; those that do not are put back to `queued` and their messages
 * stay pending for another worker. Returns 0 after a clean drain, 1 when jobs were abandoned,
 * -1 with err when start-up failed. Blocks. */
int cap_worker_run(const struct cap_config *cfg, atomic_int *stop, struct cap_err *err);

#endif
