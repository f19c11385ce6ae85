/* capctl read commands and managed certificates: runs list|show, findings list (findings ack
 * and unack are in ctl/workflow.c), endpoints history, managed add|remove|list. Text
 * tables show a compact set of columns; JSON carries every column under its schema name. */
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>

#include "common/pg.h"
#include "ctl/ctl.h"
#include "ctl/export.h"
#include "ctl/out.h"
#include "ctl/validate.h"

static const char SYN_RUNS[] = "capctl runs list [--source NAME] [--limit N] | runs show ID";
static const char SYN_FINDINGS[] =
    "capctl findings list [--format table|json|csv] [--source NAME] [--kind K] [--open]"
    " [--limit N]"
    " | findings ack ID --reason TEXT [--until DATE] [--by NAME] | findings unack ID";
static const char SYN_ENDPOINTS[] = "capctl endpoints history HOST:PORT [--limit N]";
static const char SYN_MANAGED[] = "capctl managed add|remove FINGERPRINT | managed list";

/* --- SQL ------------------------------------------------------------------------------- */

static const char SQL_SOURCE_EXISTS[] = "SELECT 1 FROM discovery_sources WHERE name = $1";
static const char SQL_KIND_EXISTS[] = "SELECT 1 FROM finding_kinds WHERE kind = $1";
/* Acknowledgements and suppression rules that have ended open their findings again. */
static const char SQL_EXPIRE[] = "SELECT cap_findings_expire()";

static const char SQL_RUNS_TABLE[] =
    "SELECT r.id, s.name AS source, r.trigger, r.status,"
    " date_trunc('second', r.queued_at) AS queued_at,"
    " date_trunc('second', r.started_at) AS started_at,"
    " date_trunc('second', r.finished_at) AS finished_at, r.attempts,"
    " r.targets_done || '/' || r.targets_total AS targets, r.error"
    " FROM discovery_runs r JOIN discovery_sources s ON s.id = r.source_id"
    " WHERE ($1::text IS NULL OR s.name = $1)"
    " ORDER BY r.id DESC LIMIT $2::bigint";
static const char SQL_RUNS_JSON[] =
    "SELECT r.*, s.name AS source_name"
    " FROM discovery_runs r JOIN discovery_sources s ON s.id = r.source_id"
    " WHERE ($1::text IS NULL OR s.name = $1)"
    " ORDER BY r.id DESC LIMIT $2::bigint";
/* Every column, then the counts of a sweep's addresses that never answered, read from stats
 * (0 when the run did not count them). */
static const char SQL_RUN_SHOW[] =
    "SELECT r.*, s.name AS source_name, cap_run_stat(r.stats, 'silent') AS silent,"
    " cap_run_stat(r.stats, 'closed') AS closed, cap_run_stat(r.stats, 'no_route') AS no_route"
    " FROM discovery_runs r JOIN discovery_sources s ON s.id = r.source_id WHERE r.id = $1::bigint";
/* The same with the run's shards, for JSON (shard_list: one object per shard). */
static const char SQL_RUN_SHOW_JSON[] =
    "SELECT r.*, s.name AS source_name, cap_run_stat(r.stats, 'silent') AS silent,"
    " cap_run_stat(r.stats, 'closed') AS closed, cap_run_stat(r.stats, 'no_route') AS no_route,"
    " (SELECT coalesce(json_agg(json_build_object('shard', sh.shard, 'first_target',"
    "  sh.first_target, 'end_target', sh.end_target, 'status', sh.status, 'attempts', sh.attempts,"
    "  'worker', sh.worker, 'targets_done', sh.items_done, 'targets_total', sh.items_total,"
    "  'started_at', sh.started_at, 'finished_at', sh.finished_at, 'error', sh.error)"
    "  ORDER BY sh.shard), '[]'::json) FROM discovery_run_shards sh WHERE sh.run_id = r.id)"
    "  AS shard_list"
    " FROM discovery_runs r JOIN discovery_sources s ON s.id = r.source_id WHERE r.id = $1::bigint";
/* A split run's shards, for the table output. */
static const char SQL_RUN_SHARDS[] =
    "SELECT shard, first_target || '-' || (end_target - 1) AS targets, status, attempts,"
    " worker, items_done || '/' || items_total AS done, error"
    " FROM discovery_run_shards WHERE run_id = $1::bigint ORDER BY shard";

/* Observations of an endpoint, newest first, each with the drift event its run recorded
 * (drift_events is unique per endpoint and run). $1 host name, $2 port, $3 address or NULL. */
#define ENDPOINT_FROM                                                                              \
    " FROM endpoints e JOIN endpoint_observations o ON o.endpoint_id = e.id"                       \
    " LEFT JOIN drift_events d ON d.endpoint_id = o.endpoint_id AND d.run_id = o.run_id"           \
    " WHERE e.port = $2::int AND (lower(e.host) = $1 OR e.sni = $1"                                \
    "  OR ($3::inet IS NOT NULL AND e.address = $3::inet))"                                        \
    " ORDER BY o.observed_at DESC, o.id DESC LIMIT $4::bigint"
static const char SQL_ENDPOINT_TABLE[] =
    "SELECT date_trunc('second', o.observed_at) AS observed_at, host(e.address) AS address,"
    " e.sni, o.run_id, o.outcome, left(o.fingerprint_sha256, 16) AS fingerprint,"
    " o.tls_version, o.kex_group, o.kex_pqc, array_to_string(d.changed, ',') AS drift,"
    " o.error" ENDPOINT_FROM;
static const char SQL_ENDPOINT_JSON[] =
    "SELECT o.id, o.endpoint_id, e.host, e.address, e.port, e.sni, e.status, o.run_id,"
    " o.observed_at, o.outcome, o.fingerprint_sha256, o.chain, o.tls_version, o.cipher_suite,"
    " o.kex_group, o.kex_group_id, o.kex_pqc, o.error, d.id AS drift_event_id,"
    " d.old_fingerprint_sha256, d.new_fingerprint_sha256, d.changed, d.detected_at" ENDPOINT_FROM;

static const char SQL_MANAGED_ADD[] =
    "INSERT INTO managed_certificates (fingerprint_sha256) VALUES ($1)"
    " ON CONFLICT (fingerprint_sha256) DO NOTHING RETURNING 1";
static const char SQL_MANAGED_REMOVE[] =
    "DELETE FROM managed_certificates WHERE fingerprint_sha256 = $1 RETURNING 1";
static const char SQL_MANAGED_LIST[] =
    "SELECT fingerprint_sha256, managed_since FROM managed_certificates"
    " ORDER BY managed_since DESC, fingerprint_sha256";

/* --- helpers --------------------------------------------------------------------------- */

enum { OPT_SOURCE = 1, OPT_LIMIT, OPT_KIND, OPT_OPEN, OPT_FORMAT, OPT_ACK };

/* Checks that source `name` exists (when given), so a typo is an error, not an empty list. */
static int check_source(PGconn *c, const char *name, struct cap_err *err)
{
    if (!name)
        return 0;
    const char *p[] = {name};
    PGresult *r = cap_pg_exec(c, "look up source", SQL_SOURCE_EXISTS, 1, p, err);
    if (!r)
        return -1;
    int found = PQntuples(r);
    PQclear(r);
    if (!found) {
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        cap_err_set(err, CAP_E_INVALID, "source \"%s\" does not exist",
                    cap_err_quote(q, sizeof q, name, strlen(name)));
        return -1;
    }
    return 0;
}

/* Checks that kind `kind` is in the catalogue (when given), so a typo is an error too. */
static int check_kind(PGconn *c, const char *kind, struct cap_err *err)
{
    if (!kind)
        return 0;
    const char *p[] = {kind};
    PGresult *r = cap_pg_exec(c, "look up kind", SQL_KIND_EXISTS, 1, p, err);
    if (!r)
        return -1;
    int found = PQntuples(r);
    PQclear(r);
    if (!found) {
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        cap_err_set(err, CAP_E_INVALID,
                    "--kind \"%s\": unknown kind (the kinds are listed in docs/findings.md and in "
                    "the table finding_kinds)",
                    cap_err_quote(q, sizeof q, kind, strlen(kind)));
        return -1;
    }
    return 0;
}

/* Reads --limit into buf (default def); 0 or -1 with err. */
static int read_limit(const struct cap_ctl_args *a, int64_t def, char *buf, int64_t *out,
                      struct cap_err *err)
{
    int64_t v = def;
    const char *t = cap_ctl_args_get(a, OPT_LIMIT);
    if (t && cap_ctl_validate_int("--limit", t, 1, 1000000000, &v, err) < 0)
        return -1;
    cap_pg_i64(buf, v);
    *out = v;
    return 0;
}

/* Says on stderr when a listing stopped at its limit. */
static void note_limit(long rows, int64_t limit)
{
    if (rows >= 0 && rows == limit)
        fprintf(stderr, "capctl: showing the first %ld rows; --limit N shows more\n", rows);
}

int cap_ctl_show_run(struct cap_ctl *ctl, PGconn *c, int64_t id, struct cap_err *err)
{
    char idb[24];
    const char *p[] = {cap_pg_i64(idb, id)};
    long rows = cap_ctl_out_query(c, ctl->json, true, "show run",
                                  ctl->json ? SQL_RUN_SHOW_JSON : SQL_RUN_SHOW, 1, p, NULL, err);
    if (rows < 0)
        return -1;
    if (rows == 0) {
        cap_err_set(err, CAP_E_INVALID, "run %s does not exist", idb);
        return -1;
    }
    if (!ctl->json) {
        /* A run split over workers: its shards (range, worker, status, attempts, progress). */
        PGresult *r = cap_pg_exec(c, "show shards", SQL_RUN_SHARDS, 1, p, err);
        if (!r)
            return -1;
        if (PQntuples(r) > 0) {
            printf("\nshards:\n");
            cap_ctl_out_table(stdout, r, NULL);
        }
        PQclear(r);
    }
    return 0;
}

/* --- runs ------------------------------------------------------------------------------ */

int cap_ctl_cmd_runs(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {
        {"source", CAP_CTL_VALUE, OPT_SOURCE}, {"limit", CAP_CTL_VALUE, OPT_LIMIT}, {NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 2, SYN_RUNS, &a);
    if (rc)
        return rc;
    if (a.npos == 0)
        return cap_ctl_usage(SYN_RUNS, "runs: missing subcommand (list or show)");
    const char *sub = a.pos[0];
    struct cap_err err = {0};
    if (strcmp(sub, "list") == 0) {
        if (a.npos > 1)
            return cap_ctl_usage(SYN_RUNS, "unexpected argument \"%s\"", a.pos[1]);
        char lim[24];
        int64_t limit = 0;
        if (read_limit(&a, 20, lim, &limit, &err) < 0)
            return cap_ctl_fail(&err);
        PGconn *c = cap_ctl_db(ctl, &err);
        const char *source = cap_ctl_args_get(&a, OPT_SOURCE);
        if (!c || check_source(c, source, &err) < 0)
            return cap_ctl_fail(&err);
        const char *p[] = {source, lim};
        long rows =
            cap_ctl_out_query(c, ctl->json, false, "list runs",
                              ctl->json ? SQL_RUNS_JSON : SQL_RUNS_TABLE, 2, p, "no runs", &err);
        if (rows < 0)
            return cap_ctl_fail(&err);
        note_limit(rows, limit);
        return CAP_CTL_OK;
    }
    if (strcmp(sub, "show") == 0) {
        if (a.npos != 2)
            return cap_ctl_usage(SYN_RUNS, "runs show: give one run ID");
        if (cap_ctl_args_has(&a, OPT_SOURCE) || cap_ctl_args_has(&a, OPT_LIMIT))
            return cap_ctl_usage(SYN_RUNS, "runs show takes no options");
        int64_t id = 0;
        if (cap_ctl_validate_int("run ID", a.pos[1], 1, INT64_MAX, &id, &err) < 0)
            return cap_ctl_fail(&err);
        PGconn *c = cap_ctl_db(ctl, &err);
        if (!c)
            return cap_ctl_fail(&err);
        if (cap_ctl_show_run(ctl, c, id, &err) < 0)
            return cap_ctl_fail(&err);
        return CAP_CTL_OK;
    }
    return cap_ctl_usage(SYN_RUNS, "runs: unknown subcommand \"%s\"", sub);
}

/* --- findings -------------------------------------------------------------------------- */

int cap_ctl_cmd_findings(struct cap_ctl *ctl, int argc, char **argv)
{
    /* The options of ack and unack are read here too, to find the subcommand; their handler
     * parses the line again with its own options. */
    static const struct cap_ctl_opt_spec specs[] = {{"source", CAP_CTL_VALUE, OPT_SOURCE},
                                                    {"kind", CAP_CTL_VALUE, OPT_KIND},
                                                    {"open", CAP_CTL_FLAG, OPT_OPEN},
                                                    {"limit", CAP_CTL_VALUE, OPT_LIMIT},
                                                    {"format", CAP_CTL_VALUE, OPT_FORMAT},
                                                    {"reason", CAP_CTL_VALUE, OPT_ACK},
                                                    {"until", CAP_CTL_VALUE, OPT_ACK},
                                                    {"by", CAP_CTL_VALUE, OPT_ACK},
                                                    {NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 2, SYN_FINDINGS, &a);
    if (rc)
        return rc;
    if (a.npos > 0 && (strcmp(a.pos[0], "ack") == 0 || strcmp(a.pos[0], "unack") == 0))
        return cap_ctl_cmd_findings_ack(ctl, argc, argv);
    if (a.npos > 1 && strcmp(a.pos[0], "list") == 0)
        return cap_ctl_usage(SYN_FINDINGS, "unexpected argument \"%s\"", a.pos[1]);
    if (cap_ctl_args_has(&a, OPT_ACK))
        return cap_ctl_usage(SYN_FINDINGS, "--reason, --until and --by apply to findings ack");
    if (a.npos != 1 || strcmp(a.pos[0], "list") != 0)
        return cap_ctl_usage(SYN_FINDINGS,
                             a.npos ? "findings: unknown subcommand \"%s\""
                                    : "findings: missing subcommand (list, ack or unack)%s",
                             a.npos ? a.pos[0] : "");
    enum cap_ctl_format format;
    if ((rc = cap_ctl_export_pick_format(ctl->json, cap_ctl_args_get(&a, OPT_FORMAT),
                                         CAP_CTL_FINDINGS_FORMATS, SYN_FINDINGS, &format)) != 0)
        return rc;
    struct cap_err err = {0};
    char lim[24];
    int64_t limit = 0;
    if (read_limit(&a, 200, lim, &limit, &err) < 0)
        return cap_ctl_fail(&err);
    PGconn *c = cap_ctl_db(ctl, &err);
    const char *source = cap_ctl_args_get(&a, OPT_SOURCE);
    if (!c || check_source(c, source, &err) < 0 ||
        check_kind(c, cap_ctl_args_get(&a, OPT_KIND), &err) < 0 ||
        cap_pg_cmd(c, "expire acknowledgements", SQL_EXPIRE, 0, NULL, &err) < 0)
        return cap_ctl_fail(&err);
    /* The table stops at 200 rows; an export streams them all unless told. */
    bool all = format != CAP_CTL_FORMAT_TABLE && !cap_ctl_args_has(&a, OPT_LIMIT);
    const char *p[] = {source, cap_ctl_args_get(&a, OPT_KIND),
                       cap_ctl_args_has(&a, OPT_OPEN) ? "true" : "false", all ? NULL : lim};
    long rows = cap_ctl_export_findings(c, format, p, &err);
    if (rows < 0)
        return cap_ctl_fail(&err);
    if (!all)
        note_limit(rows, limit);
    return CAP_CTL_OK;
}

/* --- endpoints ------------------------------------------------------------------------- */

int cap_ctl_cmd_endpoints(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{"limit", CAP_CTL_VALUE, OPT_LIMIT},
                                                    {NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 2, SYN_ENDPOINTS, &a);
    if (rc)
        return rc;
    if (a.npos == 0 || strcmp(a.pos[0], "history") != 0)
        return cap_ctl_usage(SYN_ENDPOINTS,
                             a.npos ? "endpoints: unknown subcommand \"%s\""
                                    : "endpoints: missing subcommand (history)%s",
                             a.npos ? a.pos[0] : "");
    if (a.npos != 2)
        return cap_ctl_usage(SYN_ENDPOINTS, "endpoints history: give one HOST:PORT");
    struct cap_err err = {0};
    char host[CAP_CTL_HOSTNAME_MAX + 1];
    int port = 0;
    char lim[24];
    int64_t limit = 0;
    if (cap_ctl_validate_host_port(a.pos[1], host, sizeof host, &port, &err) < 0 ||
        read_limit(&a, 50, lim, &limit, &err) < 0)
        return cap_ctl_fail(&err);
    uint8_t bytes[16];
    bool is_addr = inet_pton(AF_INET, host, bytes) == 1 || inet_pton(AF_INET6, host, bytes) == 1;
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c)
        return cap_ctl_fail(&err);
    char portb[24];
    const char *p[] = {host, cap_pg_i64(portb, port), is_addr ? host : NULL, lim};
    long rows = cap_ctl_out_query(c, ctl->json, false, "endpoint history",
                                  ctl->json ? SQL_ENDPOINT_JSON : SQL_ENDPOINT_TABLE, 4, p,
                                  "no observations of this endpoint", &err);
    if (rows < 0)
        return cap_ctl_fail(&err);
    note_limit(rows, limit);
    return CAP_CTL_OK;
}

/* --- managed --------------------------------------------------------------------------- */

int cap_ctl_cmd_managed(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 2, SYN_MANAGED, &a);
    if (rc)
        return rc;
    if (a.npos == 0)
        return cap_ctl_usage(SYN_MANAGED, "managed: missing subcommand (add, remove or list)");
    const char *sub = a.pos[0];
    struct cap_err err = {0};
    if (strcmp(sub, "list") == 0) {
        if (a.npos != 1)
            return cap_ctl_usage(SYN_MANAGED, "unexpected argument \"%s\"", a.pos[1]);
        PGconn *c = cap_ctl_db(ctl, &err);
        if (!c || cap_ctl_out_query(c, ctl->json, false, "list managed", SQL_MANAGED_LIST, 0, NULL,
                                    "no managed certificates", &err) < 0)
            return cap_ctl_fail(&err);
        return CAP_CTL_OK;
    }
    bool add = strcmp(sub, "add") == 0;
    if (!add && strcmp(sub, "remove") != 0)
        return cap_ctl_usage(SYN_MANAGED, "managed: unknown subcommand \"%s\"", sub);
    if (a.npos != 2)
        return cap_ctl_usage(SYN_MANAGED, "managed %s: give one FINGERPRINT", sub);
    char fp[65];
    if (cap_ctl_validate_fingerprint(a.pos[1], fp, sizeof fp, &err) < 0)
        return cap_ctl_fail(&err);
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c)
        return cap_ctl_fail(&err);
    const char *p[] = {fp};
    PGresult *r = cap_pg_exec(c, add ? "add managed certificate" : "remove managed certificate",
                              add ? SQL_MANAGED_ADD : SQL_MANAGED_REMOVE, 1, p, &err);
    if (!r)
        return cap_ctl_fail(&err);
    int changed = PQntuples(r);
    PQclear(r);
    if (add) {
        if (!ctl->json)
            printf(changed ? "%s is now managed\n" : "%s was already managed\n", fp);
    } else if (!changed) {
        cap_err_set(&err, CAP_E_INVALID, "%s is not a managed certificate", fp);
        return cap_ctl_fail(&err);
    } else if (!ctl->json) {
        printf("%s is no longer managed\n", fp);
    }
    if (ctl->json) {
        static const char SQL_ONE[] = "SELECT fingerprint_sha256, managed_since"
                                      " FROM managed_certificates WHERE fingerprint_sha256 = $1";
        if (cap_ctl_out_json_query(c, "show managed", SQL_ONE, 1, p, &err) < 0)
            return cap_ctl_fail(&err);
    }
    return CAP_CTL_OK;
}
