/* Readiness: one short-lived connection to each service per probe. */
#include "common/health.h"

#include <stdlib.h>

#include "common/pg.h"
#include "common/redis.h"

#ifndef CAP_SCHEMA_VERSION
#error "CAP_SCHEMA_VERSION must be defined by the build"
#endif

int cap_health_schema_version(void)
{
    return CAP_SCHEMA_VERSION;
}

int cap_health_ready(void *ud, struct cap_err *err)
{
    const struct cap_config *cfg = ud;
    PGconn *pg = cap_pg_connect(cfg->database_url, "cap-readyz", err);
    if (!pg)
        return -1;
    PGresult *r = cap_pg_exec(pg, "reading schema version",
                              "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL,
                              err);
    if (!r) {
        PQfinish(pg);
        cap_err_prefix(err, "migrations not applied: ");
        return -1;
    }
    long long v = cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    PQfinish(pg);
    if (v < CAP_SCHEMA_VERSION) {
        cap_err_set(err, CAP_E_INVALID, "schema at migration %lld, this build needs %d: run capctl migrate",
                    v, CAP_SCHEMA_VERSION);
        return -1;
    }
    redisContext *rc = cap_redis_connect(cfg->redis_url, 2000, err);
    if (!rc)
        return -1;
    const char *argv[] = {"PING"};
    redisReply *rep = cap_redis_cmd(rc, "redis PING", 1, argv, NULL, err);
    redisFree(rc);
    if (!rep)
        return -1;
    freeReplyObject(rep);
    return 0;
}
