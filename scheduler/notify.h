/* The scheduler's share of webhook notifications (migration 018): events become messages,
 * messages become notify_deliver jobs on the stream, stale claims come back, old rows go. */
#ifndef CAP_SCHED_NOTIFY_H
#define CAP_SCHED_NOTIFY_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "common/config.h"

/* Events of a run still going wait for the run to end, so that a sweep's findings go out as
 * one digest; a long run's go out together when the oldest has waited this long. */
#define CAP_SCHED_NOTIFY_HOLD_S 120
/* Events one dispatch transaction takes. */
#define CAP_SCHED_NOTIFY_BATCH 5000

/* One tick: dispatch ready events (one replica at a time, under an advisory lock), put back
 * deliveries whose worker vanished, publish deliveries that are due, prune old rows. Failures
 * are logged and never fail the sweep; pg must be outside a transaction. Blocks. */
void cap_sched_notify_tick(PGconn *pg, redisContext *rd, const struct cap_config *cfg);

#endif
