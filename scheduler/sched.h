/* cap-scheduler's sweep: judges schedules, turns due sources into queued runs (FOR UPDATE
 * SKIP LOCKED, so replicas never double a run), publishes queued runs to the job stream as an
 * outbox, recovers runs whose worker vanished, trims the stream with MINID, and prunes old
 * observations and runs (retention.*, one replica at a time). Woken by LISTEN/NOTIFY and by
 * its tick. */
#ifndef CAP_SCHED_H
#define CAP_SCHED_H

#include <stdatomic.h>

#include "common/config.h"
#include "common/err.h"

/* Runs until *stop becomes non-zero. Returns 0, or -1 with err when start-up failed. Blocks. */
int cap_sched_run(const struct cap_config *cfg, atomic_int *stop, struct cap_err *err);

#endif
