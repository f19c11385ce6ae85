/* capctl finding workflow: findings ack|unack and suppress add|list|remove. capctl checks what
 * people type and writes plain rows; the database (migrations/014_finding_workflow.sql) does
 * the rest for every writer: who and when, a drift closed when acknowledged, rules applied to
 * the findings they cover, and findings opened again when their acknowledgement ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pg.h"
#include "ctl/ctl.h"
#include "ctl/out.h"
#include "ctl/validate.h"

#define QUOTE_MAX (CAP_ERR_VALUE_MAX * 4 + 8)

static const char SYN_ACK[] =
    "capctl findings ack ID --reason TEXT [--until DATE] [--by NAME] | findings unack ID";
static const char SYN_SUPPRESS[] =
    "capctl suppress add --kind K [--source S] [--subject PATTERN] --reason TEXT [--until DATE]"
    " [--by NAME] | suppress list | suppress remove ID";

/* --- SQL ------------------------------------------------------------------------------- */

static const char SQL_BEGIN[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

/* Acknowledgements and rules that have ended open their findings again (see the migration). */
static const char SQL_EXPIRE[] = "SELECT cap_findings_expire()";

static const char SQL_FINDING_LOCK[] =
    "SELECT status, kind, subject_key, suppression_id FROM findings WHERE id = $1::bigint"
    " FOR UPDATE";
/* $1 id, $2 reason, $3 until (Unix seconds or NULL), $4 who (NULL: the database user), $5 a
 * duration in seconds (or NULL), counted from the database's clock as the row is written. ack_at is
 * set so that acknowledging again counts as a new acknowledgement. */
static const char SQL_ACK[] =
    "UPDATE findings SET status = 'acknowledged', ack_reason = $2,"
    " ack_until = coalesce(to_timestamp($3::bigint),"
    " clock_timestamp() + make_interval(secs => $5::bigint)),"
    " ack_by = $4, ack_at = clock_timestamp() WHERE id = $1::bigint"
    " RETURNING status, ack_by, to_char(ack_until, 'YYYY-MM-DD HH24:MI:SS') || ' UTC'";
static const char SQL_UNACK[] =
    "UPDATE findings SET status = 'open', reopen_reason = 'unacknowledged'"
    " WHERE id = $1::bigint RETURNING status, suppression_id";
static const char SQL_FINDING_JSON[] =
    "SELECT f.*, s.name AS source_name FROM findings f"
    " LEFT JOIN discovery_sources s ON s.id = f.source_id WHERE f.id = $1::bigint";

static const char SQL_KIND_EXISTS[] = "SELECT 1 FROM finding_kinds WHERE kind = $1";
static const char SQL_SOURCE_ID[] = "SELECT id FROM discovery_sources WHERE name = $1";
/* $1 kind, $2 source id, $3 pattern, $4 reason, $5 until (Unix seconds), $6 who, $7 a duration
 * from the database's now in seconds. */
static const char SQL_RULE_ADD[] =
    "INSERT INTO finding_suppressions (kind, source_id, subject_pattern, reason, until,"
    " created_by) VALUES ($1, $2::bigint, $3, $4, coalesce(to_timestamp($5::bigint),"
    " clock_timestamp() + make_interval(secs => $7::bigint)), coalesce($6, session_user))"
    " RETURNING id";

#define RULE_COUNT                                                                                 \
    "(SELECT count(*) FROM findings f WHERE f.suppression_id = r.id AND f.status = 'suppressed')"
#define RULE_ACTIVE "(r.until IS NULL OR r.until > now())"
static const char SQL_RULES_TABLE[] =
    "SELECT r.id, r.kind, coalesce(s.name, '(any)') AS source,"
    " coalesce(r.subject_pattern, '*') AS subject, " RULE_ACTIVE " AS active, " RULE_COUNT
    " AS suppressed, date_trunc('second', r.until) AS until, r.created_by,"
    " date_trunc('second', r.created_at) AS created_at, r.reason"
    " FROM finding_suppressions r LEFT JOIN discovery_sources s ON s.id = r.source_id"
    " WHERE $1::bigint IS NULL OR r.id = $1::bigint ORDER BY r.id";
static const char SQL_RULES_JSON[] =
    "SELECT r.*, s.name AS source_name, " RULE_ACTIVE " AS active, " RULE_COUNT
    " AS suppressed_findings"
    " FROM finding_suppressions r LEFT JOIN discovery_sources s ON s.id = r.source_id"
    " WHERE $1::bigint IS NULL OR r.id = $1::bigint ORDER BY r.id";

/* The rule as JSON (its columns and source_name) and the findings it suppresses. */
static const char SQL_RULE_LOCK[] =
    "SELECT (to_jsonb(r) || jsonb_build_object('source_name', s.name))::text,"
    " ARRAY(SELECT f.id FROM findings f WHERE f.suppression_id = r.id"
    "  AND f.status = 'suppressed' ORDER BY f.id)::text"
    " FROM finding_suppressions r LEFT JOIN discovery_sources s ON s.id = r.source_id"
    " WHERE r.id = $1::bigint FOR UPDATE OF r";
static const char SQL_RULE_REMOVE[] = "DELETE FROM finding_suppressions WHERE id = $1::bigint";
/* $1 the rule's findings, $2 the rule as JSON: what became of the findings. */
static const char SQL_RULE_REMOVED[] =
    "SELECT count(*) FILTER (WHERE status = 'open'),"
    " count(*) FILTER (WHERE status = 'suppressed'),"
    " jsonb_build_array($2::jsonb || jsonb_build_object("
    "  'reopened_findings', count(*) FILTER (WHERE status = 'open'),"
    "  'resuppressed_findings', count(*) FILTER (WHERE status = 'suppressed')))::text"
    " FROM findings WHERE id = ANY($1::bigint[])";

/* --- helpers --------------------------------------------------------------------------- */

enum { OPT_REASON = 1, OPT_UNTIL, OPT_BY, OPT_KIND, OPT_SOURCE, OPT_SUBJECT };

/* Who acts: --by, else $USER (then $LOGNAME), else NULL (the database records its user). */
static int read_by(const struct cap_ctl_args *a, const char **out, struct cap_err *err)
{
    const char *by = cap_ctl_args_get(a, OPT_BY);
    const char *opt = "--by";
    if (!by) {
        by = getenv("USER");
        opt = "$USER";
        if (!by || !by[0]) {
            by = getenv("LOGNAME");
            opt = "$LOGNAME";
        }
        if (by && !by[0])
            by = NULL;
    }
    if (by && cap_ctl_validate_text(opt, by, CAP_CTL_BY_MAX, err) < 0)
        return -1;
    *out = by;
    return 0;
}

/* Checks --reason and --until. A date goes to *until (Unix seconds in until_buf), a duration
 * to *span (seconds in span_buf); the other, or both when --until is not given, is NULL. */
static int read_reason_until(const struct cap_ctl_args *a, char *until_buf, const char **until,
                             char *span_buf, const char **span, struct cap_err *err)
{
    if (cap_ctl_validate_text("--reason", cap_ctl_args_get(a, OPT_REASON), CAP_CTL_REASON_MAX,
                              err) < 0)
        return -1;
    const char *u = cap_ctl_args_get(a, OPT_UNTIL);
    *until = NULL;
    *span = NULL;
    if (u) {
        int64_t t = 0, secs = 0;
        if (cap_ctl_validate_until("--until", u, (int64_t)time(NULL), &t, err) < 0)
            return -1;
        if (cap_ctl_until_span(u, &secs))
            *span = cap_pg_i64(span_buf, secs);
        else
            *until = cap_pg_i64(until_buf, t);
    }
    return 0;
}

static int expire(PGconn *c, struct cap_err *err)
{
    return cap_pg_cmd(c, "expire acknowledgements", SQL_EXPIRE, 0, NULL, err);
}

/* Ends a failed transaction and returns CAP_CTL_FAIL with err. */
static int fail_rollback(PGconn *c, const struct cap_err *err)
{
    PQclear(PQexec(c, SQL_ROLLBACK));
    return cap_ctl_fail(err);
}

/* --- findings ack / unack -------------------------------------------------------------- */

int cap_ctl_cmd_findings_ack(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{"reason", CAP_CTL_VALUE, OPT_REASON},
                                                    {"until", CAP_CTL_VALUE, OPT_UNTIL},
                                                    {"by", CAP_CTL_VALUE, OPT_BY},
                                                    {NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 2, SYN_ACK, &a);
    if (rc)
        return rc;
    bool ack = a.npos > 0 && strcmp(a.pos[0], "ack") == 0;
    if (a.npos != 2)
        return cap_ctl_usage(SYN_ACK, "findings %s: give one finding ID", ack ? "ack" : "unack");
    if (ack && !cap_ctl_args_has(&a, OPT_REASON))
        return cap_ctl_usage(SYN_ACK, "findings ack: --reason is required");
    if (!ack && (cap_ctl_args_has(&a, OPT_REASON) || cap_ctl_args_has(&a, OPT_UNTIL)))
        return cap_ctl_usage(SYN_ACK, "findings unack takes no --reason or --until");

    struct cap_err err = {0};
    int64_t id = 0;
    char idb[24], untilb[24], spanb[24];
    const char *until = NULL, *span = NULL, *by = NULL;
    if (cap_ctl_validate_int("finding ID", a.pos[1], 1, INT64_MAX, &id, &err) < 0 ||
        (ack && read_reason_until(&a, untilb, &until, spanb, &span, &err) < 0) ||
        read_by(&a, &by, &err) < 0)
        return cap_ctl_fail(&err);
    cap_pg_i64(idb, id);
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c || expire(c, &err) < 0 || cap_pg_cmd(c, "begin", SQL_BEGIN, 0, NULL, &err) < 0)
        return cap_ctl_fail(&err);

    const char *p1[] = {idb};
    PGresult *r = cap_pg_exec(c, "look up finding", SQL_FINDING_LOCK, 1, p1, &err);
    if (!r)
        return fail_rollback(c, &err);
    if (PQntuples(r) == 0) {
        PQclear(r);
        cap_err_set(&err, CAP_E_INVALID, "finding %s does not exist", idb);
        return fail_rollback(c, &err);
    }
    /* kind and subject come from rows any tool may write: escaped for the terminal. */
    char status[16], kind[CAP_CTL_CELL_MAX * 6], subject[CAP_CTL_CELL_MAX * 6], rule[24];
    snprintf(status, sizeof status, "%s", PQgetvalue(r, 0, 0));
    cap_ctl_out_display(PQgetvalue(r, 0, 1), CAP_CTL_CELL_MAX, kind, sizeof kind);
    cap_ctl_out_display(PQgetvalue(r, 0, 2), CAP_CTL_CELL_MAX * 4, subject, sizeof subject);
    snprintf(rule, sizeof rule, "%s", PQgetvalue(r, 0, 3));
    bool drift = strcmp(PQgetvalue(r, 0, 1), "drift") == 0;
    PQclear(r);

    if (ack && strcmp(status, "resolved") == 0) {
        cap_err_set(&err, CAP_E_INVALID,
                    "finding %s is resolved; only open, acknowledged or suppressed findings can "
                    "be acknowledged",
                    idb);
        return fail_rollback(c, &err);
    }
    if (ack && drift && (until || span)) {
        cap_err_set(&err, CAP_E_INVALID,
                    "finding %s is a drift: acknowledging it closes it as an expected change, so "
                    "--until does not apply",
                    idb);
        return fail_rollback(c, &err);
    }
    if (!ack && strcmp(status, "suppressed") == 0) {
        cap_err_set(&err, CAP_E_INVALID,
                    "finding %s is suppressed by rule %s, not acknowledged (capctl suppress remove "
                    "%s lifts the rule)",
                    idb, rule, rule);
        return fail_rollback(c, &err);
    }
    if (!ack && strcmp(status, "acknowledged") != 0) {
        cap_err_set(&err, CAP_E_INVALID, "finding %s is not acknowledged (it is %s)", idb, status);
        return fail_rollback(c, &err);
    }

    const char *p[] = {idb, cap_ctl_args_get(&a, OPT_REASON), until, by, span};
    r = ack ? cap_pg_exec(c, "acknowledge finding", SQL_ACK, 5, p, &err)
            : cap_pg_exec(c, "unacknowledge finding", SQL_UNACK, 1, p, &err);
    if (!r)
        return fail_rollback(c, &err);
    char now_status[16], who[CAP_CTL_BY_MAX + 1], ends[40], now_rule[24];
    snprintf(now_status, sizeof now_status, "%s", PQgetvalue(r, 0, 0));
    snprintf(who, sizeof who, "%s", ack ? PQgetvalue(r, 0, 1) : "");
    snprintf(ends, sizeof ends, "%s", ack ? PQgetvalue(r, 0, 2) : "");
    snprintf(now_rule, sizeof now_rule, "%s", ack ? "" : PQgetvalue(r, 0, 1));
    PQclear(r);
    if (cap_pg_cmd(c, "commit", SQL_COMMIT, 0, NULL, &err) < 0)
        return cap_ctl_fail(&err);

    if (ctl->json) {
        if (cap_ctl_out_json_query(c, "show finding", SQL_FINDING_JSON, 1, p1, &err) < 0)
            return cap_ctl_fail(&err);
        return CAP_CTL_OK;
    }
    char shown[sizeof who * 6];
    cap_ctl_out_display(who, sizeof who, shown, sizeof shown);
    if (ack && strcmp(now_status, "resolved") == 0)
        printf("finding %s (%s %s) closed as an expected change by %s\n", idb, kind, subject,
               shown);
    else if (ack)
        printf("finding %s (%s %s) acknowledged by %s %s%s\n", idb, kind, subject, shown,
               ends[0] ? "until " : "with no end", ends);
    else if (strcmp(now_status, "suppressed") == 0)
        printf("finding %s (%s %s) is no longer acknowledged; suppression rule %s covers it, so "
               "it is suppressed\n",
               idb, kind, subject, now_rule);
    else
        printf("finding %s (%s %s) is open again\n", idb, kind, subject);
    return CAP_CTL_OK;
}

/* --- suppress -------------------------------------------------------------------------- */

static int suppress_add(struct cap_ctl *ctl, const struct cap_ctl_args *a)
{
    if (a->npos != 1)
        return cap_ctl_usage(SYN_SUPPRESS, "unexpected argument \"%s\"", a->pos[1]);
    if (!cap_ctl_args_has(a, OPT_KIND))
        return cap_ctl_usage(SYN_SUPPRESS, "suppress add: --kind is required");
    if (!cap_ctl_args_has(a, OPT_REASON))
        return cap_ctl_usage(SYN_SUPPRESS, "suppress add: --reason is required");
    struct cap_err err = {0};
    char untilb[24], spanb[24], q[QUOTE_MAX];
    const char *until = NULL, *span = NULL, *by = NULL;
    const char *kind = cap_ctl_args_get(a, OPT_KIND);
    const char *source = cap_ctl_args_get(a, OPT_SOURCE);
    const char *pattern = cap_ctl_args_get(a, OPT_SUBJECT);
    if (read_reason_until(a, untilb, &until, spanb, &span, &err) < 0 ||
        (pattern && cap_ctl_validate_pattern("--subject", pattern, &err) < 0) ||
        read_by(a, &by, &err) < 0)
        return cap_ctl_fail(&err);
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c)
        return cap_ctl_fail(&err);

    const char *pk[] = {kind};
    PGresult *r = cap_pg_exec(c, "look up kind", SQL_KIND_EXISTS, 1, pk, &err);
    if (!r)
        return cap_ctl_fail(&err);
    int known = PQntuples(r);
    PQclear(r);
    if (!known) {
        cap_err_set(&err, CAP_E_INVALID,
                    "--kind \"%s\": unknown kind (the kinds are listed in docs/findings.md and in "
                    "the table finding_kinds)",
                    cap_err_quote(q, sizeof q, kind, strlen(kind)));
        return cap_ctl_fail(&err);
    }
    char sid[24] = "";
    if (source) {
        const char *ps[] = {source};
        r = cap_pg_exec(c, "look up source", SQL_SOURCE_ID, 1, ps, &err);
        if (!r)
            return cap_ctl_fail(&err);
        if (PQntuples(r) == 0) {
            PQclear(r);
            cap_err_set(&err, CAP_E_INVALID, "source \"%s\" does not exist",
                        cap_err_quote(q, sizeof q, source, strlen(source)));
            return cap_ctl_fail(&err);
        }
        snprintf(sid, sizeof sid, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    if (expire(c, &err) < 0)
        return cap_ctl_fail(&err);
    const char *p[] = {
        kind, source ? sid : NULL, pattern, cap_ctl_args_get(a, OPT_REASON), until, by, span};
    r = cap_pg_exec(c, "add suppression rule", SQL_RULE_ADD, 7, p, &err);
    if (!r)
        return cap_ctl_fail(&err);
    char id[24];
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);

    const char *pid[] = {id};
    if (ctl->json) {
        if (cap_ctl_out_json_query(c, "show suppression rule", SQL_RULES_JSON, 1, pid, &err) < 0)
            return cap_ctl_fail(&err);
        return CAP_CTL_OK;
    }
    printf("suppression rule %s added\n", id);
    if (cap_ctl_out_query(c, false, true, "show suppression rule", SQL_RULES_TABLE, 1, pid, NULL,
                          &err) < 0)
        return cap_ctl_fail(&err);
    return CAP_CTL_OK;
}

static int suppress_list(struct cap_ctl *ctl, const struct cap_ctl_args *a)
{
    if (a->npos != 1)
        return cap_ctl_usage(SYN_SUPPRESS, "unexpected argument \"%s\"", a->pos[1]);
    if (a->nopts > 0)
        return cap_ctl_usage(SYN_SUPPRESS, "suppress list takes no options");
    struct cap_err err = {0};
    PGconn *c = cap_ctl_db(ctl, &err);
    const char *p[] = {NULL};
    if (!c || expire(c, &err) < 0 ||
        cap_ctl_out_query(c, ctl->json, false, "list suppression rules",
                          ctl->json ? SQL_RULES_JSON : SQL_RULES_TABLE, 1, p,
                          "no suppression rules", &err) < 0)
        return cap_ctl_fail(&err);
    return CAP_CTL_OK;
}

static int suppress_remove(struct cap_ctl *ctl, const struct cap_ctl_args *a)
{
    if (a->npos != 2)
        return cap_ctl_usage(SYN_SUPPRESS, "suppress remove: give one rule ID");
    if (a->nopts > 0)
        return cap_ctl_usage(SYN_SUPPRESS, "suppress remove takes no options");
    struct cap_err err = {0};
    int64_t id = 0;
    char idb[24];
    if (cap_ctl_validate_int("rule ID", a->pos[1], 1, INT64_MAX, &id, &err) < 0)
        return cap_ctl_fail(&err);
    cap_pg_i64(idb, id);
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c || expire(c, &err) < 0 || cap_pg_cmd(c, "begin", SQL_BEGIN, 0, NULL, &err) < 0)
        return cap_ctl_fail(&err);
    const char *p[] = {idb};
    PGresult *r = cap_pg_exec(c, "look up suppression rule", SQL_RULE_LOCK, 1, p, &err);
    if (!r)
        return fail_rollback(c, &err);
    if (PQntuples(r) == 0) {
        PQclear(r);
        cap_err_set(&err, CAP_E_INVALID, "suppression rule %s does not exist", idb);
        return fail_rollback(c, &err);
    }
    char *rule_json = strdup(PQgetvalue(r, 0, 0));
    char *ids = strdup(PQgetvalue(r, 0, 1));
    PQclear(r);
    if (!rule_json || !ids) {
        free(rule_json);
        free(ids);
        cap_err_set(&err, CAP_E_NOMEM, "remove suppression rule: out of memory");
        return fail_rollback(c, &err);
    }
    const char *pr[] = {ids, rule_json};
    PGresult *done = NULL;
    if (cap_pg_cmd(c, "remove suppression rule", SQL_RULE_REMOVE, 1, p, &err) == 0)
        done = cap_pg_exec(c, "count reopened findings", SQL_RULE_REMOVED, 2, pr, &err);
    free(rule_json);
    free(ids);
    if (!done)
        return fail_rollback(c, &err);
    if (cap_pg_cmd(c, "commit", SQL_COMMIT, 0, NULL, &err) < 0) {
        PQclear(done);
        return cap_ctl_fail(&err);
    }
    if (ctl->json)
        printf("%s\n", PQgetvalue(done, 0, 2));
    else if (cap_pg_get_i64(done, 0, 1) > 0)
        printf("suppression rule %s removed; %s of its findings are open again, %s suppressed by "
               "another rule\n",
               idb, PQgetvalue(done, 0, 0), PQgetvalue(done, 0, 1));
    else
        printf("suppression rule %s removed; %s of its findings are open again\n", idb,
               PQgetvalue(done, 0, 0));
    PQclear(done);
    return CAP_CTL_OK;
}

int cap_ctl_cmd_suppress(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{"kind", CAP_CTL_VALUE, OPT_KIND},
                                                    {"source", CAP_CTL_VALUE, OPT_SOURCE},
                                                    {"subject", CAP_CTL_VALUE, OPT_SUBJECT},
                                                    {"reason", CAP_CTL_VALUE, OPT_REASON},
                                                    {"until", CAP_CTL_VALUE, OPT_UNTIL},
                                                    {"by", CAP_CTL_VALUE, OPT_BY},
                                                    {NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 2, SYN_SUPPRESS, &a);
    if (rc)
        return rc;
    if (a.npos == 0)
        return cap_ctl_usage(SYN_SUPPRESS, "suppress: missing subcommand (add, list or remove)");
    const char *sub = a.pos[0];
    if (strcmp(sub, "add") == 0)
        return suppress_add(ctl, &a);
    if (strcmp(sub, "list") == 0)
        return suppress_list(ctl, &a);
    if (strcmp(sub, "remove") == 0)
        return suppress_remove(ctl, &a);
    char q[QUOTE_MAX];
    return cap_ctl_usage(SYN_SUPPRESS, "suppress: unknown subcommand \"%s\"",
                         cap_err_quote(q, sizeof q, sub, strlen(sub)));
}
