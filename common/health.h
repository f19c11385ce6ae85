/* Readiness checks shared by cap-scheduler and cap-worker: PostgreSQL reachable with the
 * migrations this build expects applied, Redis reachable. Blocking; for the HTTP thread. */
#ifndef CAP_HEALTH_H
#define CAP_HEALTH_H

#include "common/config.h"
#include "common/err.h"

/* Newest migration number this build knows (from the migrations/ folder at build time). */
int cap_health_schema_version(void);

/* Returns 0 when Postgres and Redis answer and schema_migrations holds the newest migration;
 * -1 with err naming what is not ready. ud is the struct cap_config. */
int cap_health_ready(void *ud, struct cap_err *err);

#endif
