/* Per-run helpers for executors: loading the source definition, the fencing check every
 * write transaction starts with, and progress counters. */
#include "worker/executor.h"

#include <stdlib.h>
#include <string.h>

#include "common/pg.h"

static const char SQL_LOAD_SOURCE[] =
    "SELECT " CAP_SOURCE_COLUMNS_SQL " FROM discovery_sources s WHERE s.id = $1";

static const char SQL_FENCE[] =
    "SELECT 1 FROM discovery_runs WHERE id = $1 AND attempts = $2 AND status = 'running' "
    "FOR SHARE";

static const char SQL_PROGRESS[] =
    "UPDATE discovery_runs SET "
    "targets_total = CASE WHEN $3::bigint < 0 THEN targets_total ELSE $3::bigint END, "
    "targets_done = CASE WHEN $4::bigint < 0 THEN targets_done ELSE $4::bigint END, "
    "ok_count = CASE WHEN $5::bigint < 0 THEN ok_count ELSE $5::bigint END, "
    "unreachable_count = CASE WHEN $6::bigint < 0 THEN unreachable_count ELSE $6::bigint END, "
    "new_certificates = CASE WHEN $7::bigint < 0 THEN new_certificates ELSE $7::bigint END, "
    "drift_count = CASE WHEN $8::bigint < 0 THEN drift_count ELSE $8::bigint END, "
    "heartbeat_at = now() "
    "WHERE id = $1 AND attempts = $2 AND status = 'running'";

static char **text_array(const PGresult *r, int row, int col, size_t *n, struct cap_err *err)
{
    if (PQgetisnull(r, row, col)) {
        *n = 0;
        return calloc(1, sizeof(char *));
    }
    return cap_pg_parse_text_array(PQgetvalue(r, row, col), n, err);
}

static char *dup_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

void cap_source_cleanup(struct cap_source *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->type);
    free(s->schedule);
    cap_pg_free_strv(s->cidrs);
    cap_pg_free_strv(s->hosts);
    free(s->ports);
    cap_pg_free_strv(s->domains);
    cap_pg_free_strv(s->log_urls);
    free(s->log_protocol);
    free(s->log_key);
    cap_pg_free_strv(s->expected_issuers);
    memset(s, 0, sizeof *s);
}

int cap_source_from_row(const PGresult *r, int row, int col0, struct cap_source *out,
                        struct cap_err *err)
{
    struct cap_source s = {0};
    s.id = cap_pg_get_i64(r, row, col0 + 0);
    s.name = dup_or_null(r, row, col0 + 1);
    s.type = dup_or_null(r, row, col0 + 2);
    s.schedule = dup_or_null(r, row, col0 + 3);
    s.cidrs = text_array(r, row, col0 + 4, &s.cidrs_n, err);
    s.hosts = text_array(r, row, col0 + 5, &s.hosts_n, err);
    size_t np = 0;
    char **ports = text_array(r, row, col0 + 6, &np, err);
    s.timeout_ms = (int)cap_pg_get_i64(r, row, col0 + 7);
    s.concurrency = (int)cap_pg_get_i64(r, row, col0 + 8);
    s.domains = text_array(r, row, col0 + 9, &s.domains_n, err);
    s.log_urls = text_array(r, row, col0 + 10, &s.log_urls_n, err);
    s.log_protocol = dup_or_null(r, row, col0 + 11);
    s.log_key = dup_or_null(r, row, col0 + 12);
    s.expected_issuers = text_array(r, row, col0 + 13, &s.expected_issuers_n, err);
    s.backfill_from = PQgetisnull(r, row, col0 + 14) ? -1 : cap_pg_get_i64(r, row, col0 + 14);
    s.connect_rate = PQgetisnull(r, row, col0 + 15) ? 0 : (int)cap_pg_get_i64(r, row, col0 + 15);
    if (ports) {
        s.ports = calloc(np ? np : 1, sizeof(int));
        for (size_t i = 0; s.ports && i < np; i++)
            s.ports[i] = (int)strtol(ports[i], NULL, 10);
        s.ports_n = np;
        cap_pg_free_strv(ports);
    }
    if (cap_err_isset(err) || !s.name || !s.type || !s.ports || !s.cidrs || !s.hosts ||
        !s.domains || !s.log_urls || !s.expected_issuers) {
        cap_err_set(err, CAP_E_NOMEM, "loading source %lld: out of memory", (long long)s.id);
        cap_source_cleanup(&s);
        return -1;
    }
    *out = s;
    return 0;
}

int cap_source_load(PGconn *c, int64_t id, struct cap_source *out, struct cap_err *err)
{
    char ib[24];
    const char *p[] = {cap_pg_i64(ib, id)};
    PGresult *r = cap_pg_exec(c, "load source", SQL_LOAD_SOURCE, 1, p, err);
    if (!r)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        cap_err_set(err, CAP_E_INVALID, "source %lld no longer exists", (long long)id);
        return -1;
    }
    int rc = cap_source_from_row(r, 0, 0, out, err);
    PQclear(r);
    return rc;
}

int cap_run_fence(struct cap_run_ctx *ctx, struct cap_err *err)
{
    char rb[24], ab[24];
    const char *p[] = {cap_pg_i64(rb, ctx->run_id), cap_pg_i64(ab, ctx->attempt)};
    PGresult *r = cap_pg_exec(ctx->pg, "fence run", SQL_FENCE, 2, p, err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    PQclear(r);
    if (n != 1) {
        cap_err_set(err, CAP_E_FENCED, "run %lld: attempt %lld is no longer current",
                    (long long)ctx->run_id, (long long)ctx->attempt);
        return -1;
    }
    return 0;
}

int cap_run_progress(struct cap_run_ctx *ctx, int64_t targets_total, int64_t targets_done,
                     int64_t ok, int64_t unreachable, int64_t new_certs, int64_t drifts,
                     struct cap_err *err)
{
    char b[8][24];
    const char *p[] = {cap_pg_i64(b[0], ctx->run_id),  cap_pg_i64(b[1], ctx->attempt),
                       cap_pg_i64(b[2], targets_total), cap_pg_i64(b[3], targets_done),
                       cap_pg_i64(b[4], ok),            cap_pg_i64(b[5], unreachable),
                       cap_pg_i64(b[6], new_certs),     cap_pg_i64(b[7], drifts)};
    PGresult *r = cap_pg_exec(ctx->pg, "update run progress", SQL_PROGRESS, 8, p, err);
    if (!r)
        return -1;
    int n = (int)strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    if (n != 1) {
        cap_err_set(err, CAP_E_FENCED, "run %lld: attempt %lld is no longer current",
                    (long long)ctx->run_id, (long long)ctx->attempt);
        return -1;
    }
    return 0;
}
