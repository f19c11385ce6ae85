/* capctl source commands: add, edit, list, show, enable, disable, delete, trigger [--wait].
 * Every value is validated before anything is written; database refusals (a duplicate name,
 * a CHECK the database enforces) become messages that name the source. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/config.h"
#include "common/pg.h"
#include "common/policy.h"
#include "common/schedule.h"
#include "common/source/ct_log.h"
#include "common/source/network_scan.h"
#include "ctl/ctl.h"
#include "ctl/out.h"
#include "ctl/validate.h"

#define QUOTE_MAX (CAP_ERR_VALUE_MAX * 4 + 8)

static const char SYN_SOURCE[] =
    "capctl source add|edit|list|show|enable|disable|delete|trigger ... (capctl source --help)";
static const char SYN_ADD[] =
    "capctl source add NAME --type network_scan [--cidr CIDR]... [--host NAME]...\n"
    "         [--port N]... [--starttls PORT:PROTOCOL]... [--timeout 5s] [--concurrency 8]\n"
    "         [--connect-rate N] [--schedule S] [--trigger] [--trigger-on-save] [--disabled]\n"
    "       capctl source add NAME --type ct_log --domain SUFFIX... [--log URL]...\n"
    "         [--log-protocol auto|rfc6962|static-ct] [--log-key FILE]\n"
    "         [--expected-issuer SUBSTRING]... [--poll 1h | --schedule S]\n"
    "         [--backfill-from INDEX] [--trigger] [--trigger-on-save] [--disabled]\n"
    "       (repeatable options also take comma-separated values, except --expected-issuer)";
static const char SYN_EDIT[] =
    "capctl source edit NAME [any option of source add except --type]\n"
    "         [--add-cidr|--remove-cidr CIDR]... [--add-host|--remove-host NAME]...\n"
    "         [--add-port|--remove-port N]... [--add-starttls|--remove-starttls PORT:PROTOCOL]...\n"
    "         [--add-domain|--remove-domain SUFFIX]...\n"
    "         [--add-log|--remove-log URL]...\n"
    "         [--add-expected-issuer|--remove-expected-issuer SUBSTRING]...\n"
    "         [--enabled|--disabled] [--no-trigger-on-save] [--no-log-key] [--no-backfill]\n"
    "         [--no-connect-rate] [--rename NEW]";
static const char SYN_LIST[] = "capctl source list";
static const char SYN_SHOW[] = "capctl source show NAME";
static const char SYN_ENABLE[] = "capctl source enable|disable NAME";
static const char SYN_DELETE[] = "capctl source delete NAME";
static const char SYN_TRIGGER[] = "capctl source trigger NAME [--wait [--timeout 10m]]";

/* --- SQL ------------------------------------------------------------------------------- */

static const char SQL_INSERT[] =
    "INSERT INTO discovery_sources (name, type, enabled, schedule, trigger_on_save, cidrs,"
    " hosts, ports, timeout_ms, concurrency, domains, log_urls, log_protocol, log_key,"
    " expected_issuers, backfill_from, starttls, connect_rate)"
    " VALUES ($1, $2, $3::boolean, $4, $5::boolean, $6::cidr[], $7::text[], $8::int[],"
    " $9::int, $10::int, $11::text[], $12::text[], $13, $14, $15::text[], $16::bigint,"
    " $17::text[], $18::int)"
    " RETURNING id";
static const char SQL_UPDATE[] =
    "UPDATE discovery_sources SET name = $1, enabled = $3::boolean, schedule = $4,"
    " trigger_on_save = $5::boolean, cidrs = $6::cidr[], hosts = $7::text[], ports = $8::int[],"
    " timeout_ms = $9::int, concurrency = $10::int, domains = $11::text[],"
    " log_urls = $12::text[], log_protocol = $13, log_key = $14, expected_issuers = $15::text[],"
    " backfill_from = $16::bigint, starttls = $17::text[], connect_rate = $18::int"
    " WHERE id = $19::bigint AND type = $2 RETURNING id";
static const char SQL_LOAD[] =
    "SELECT id, name, type, enabled, schedule, trigger_on_save, cidrs::text[], hosts, ports,"
    " timeout_ms, concurrency, domains, log_urls, log_protocol, log_key, expected_issuers,"
    " backfill_from, starttls, connect_rate FROM discovery_sources WHERE name = $1 FOR UPDATE";
static const char SQL_MAX_RUN[] =
    "SELECT coalesce(max(id), 0) FROM discovery_runs WHERE source_id = $1::bigint";
static const char SQL_SAVE_RUN[] =
    "SELECT id FROM discovery_runs WHERE source_id = $1::bigint AND id > $2::bigint"
    " AND trigger = 'save' ORDER BY id LIMIT 1";
static const char SQL_ID[] = "SELECT id FROM discovery_sources WHERE name = $1";
static const char SQL_TRIGGER[] =
    "INSERT INTO discovery_runs (source_id, trigger) VALUES ($1::bigint, 'manual')"
    " ON CONFLICT (source_id) WHERE status IN ('queued', 'running') DO NOTHING"
    " RETURNING id, status";
static const char SQL_ACTIVE_RUN[] =
    "SELECT id, status FROM discovery_runs WHERE source_id = $1::bigint"
    " AND status IN ('queued', 'running')";
static const char SQL_RUN_STATUS[] =
    "SELECT status, coalesce(error, '') FROM discovery_runs WHERE id = $1::bigint";
static const char SQL_LIST_TABLE[] =
    "SELECT s.name, s.type, s.enabled, s.schedule,"
    " date_trunc('second', s.next_run_at) AS next_run_at,"
    " CASE WHEN s.type = 'network_scan' THEN"
    "   concat_ws(' ', CASE WHEN cardinality(s.cidrs) > 0"
    "                   THEN array_to_string(s.cidrs::text[], ',') END,"
    "             CASE WHEN cardinality(s.hosts) > 0 THEN array_to_string(s.hosts, ',') END,"
    "             'ports ' || CASE WHEN cardinality(s.ports) = 0 THEN '443,8443'"
    "                         ELSE array_to_string(s.ports, ',') END)"
    " ELSE array_to_string(s.domains, ',') END AS targets,"
    " r.id AS last_run, r.status AS last_status, s.last_error"
    " FROM discovery_sources s LEFT JOIN LATERAL (SELECT id, status FROM discovery_runs"
    "   WHERE source_id = s.id ORDER BY id DESC LIMIT 1) r ON true"
    " ORDER BY s.name";
static const char SQL_LIST_JSON[] = "SELECT * FROM discovery_sources ORDER BY name";
static const char SQL_SHOW[] = "SELECT * FROM discovery_sources WHERE name = $1";
static const char SQL_SHOW_RUNS[] =
    "SELECT r.id, r.trigger, r.status, date_trunc('second', r.queued_at) AS queued_at,"
    " date_trunc('second', r.finished_at) AS finished_at,"
    " r.targets_done || '/' || r.targets_total AS targets, r.error"
    " FROM discovery_runs r JOIN discovery_sources s ON s.id = r.source_id"
    " WHERE s.name = $1 ORDER BY r.id DESC LIMIT 5";
static const char SQL_SET_ENABLED[] =
    "UPDATE discovery_sources SET enabled = $2::boolean WHERE name = $1 RETURNING id";
static const char SQL_DELETE[] = "DELETE FROM discovery_sources WHERE name = $1 RETURNING id";

/* --- options --------------------------------------------------------------------------- */

enum source_type { T_ANY = 0, T_NET, T_CT };

enum list_idx { L_CIDRS = 0, L_HOSTS, L_PORTS, L_DOMAINS, L_LOGS, L_ISSUERS, L_STARTTLS, L_N };

/* Option ids: scalars below 100; list i has 100 + 3i (set), +1 (add), +2 (remove). */
enum {
    O_TYPE = 1,
    O_TIMEOUT,
    O_CONCURRENCY,
    O_SCHEDULE,
    O_POLL,
    O_TRIGGER,
    O_TOS,
    O_NO_TOS,
    O_DISABLED,
    O_ENABLED,
    O_LOG_PROTOCOL,
    O_LOG_KEY,
    O_NO_LOG_KEY,
    O_BACKFILL,
    O_NO_BACKFILL,
    O_RENAME,
    O_WAIT,
    O_CONNECT_RATE,
    O_NO_CONNECT_RATE,
    O_LIST_BASE = 100,
};

typedef int (*norm_fn)(const char *opt, const char *in, char *out, size_t n, struct cap_err *err);

static int norm_port(const char *opt, const char *in, char *out, size_t n, struct cap_err *err)
{
    int p = 0;
    if (cap_value_port(opt, in, &p, err) < 0)
        return -1;
    snprintf(out, n, "%d", p);
    return 0;
}

static int norm_url(const char *opt, const char *in, char *out, size_t n, struct cap_err *err)
{
    if (cap_value_url(opt, in, err) < 0)
        return -1;
    snprintf(out, n, "%s", in);
    return 0;
}

static int norm_issuer(const char *opt, const char *in, char *out, size_t n, struct cap_err *err)
{
    if (cap_value_text(opt, in, CAP_CT_ISSUER_MAX, err) < 0)
        return -1;
    snprintf(out, n, "%s", in);
    return 0;
}

struct list_def {
    const char *set, *add, *remove; /* option names */
    int type;
    bool split; /* comma-separated values allowed */
    norm_fn norm;
};

/* Expected issuers are DN substrings, which contain commas ("O=Let's Encrypt, C=US"): they
 * are never split. */
static const struct list_def LISTS[L_N] = {
    [L_CIDRS] = {"cidr", "add-cidr", "remove-cidr", T_NET, true, cap_value_cidr},
    [L_HOSTS] = {"host", "add-host", "remove-host", T_NET, true, cap_value_hostname},
    [L_PORTS] = {"port", "add-port", "remove-port", T_NET, true, norm_port},
    [L_DOMAINS] = {"domain", "add-domain", "remove-domain", T_CT, true, cap_value_domain},
    [L_LOGS] = {"log", "add-log", "remove-log", T_CT, true, norm_url},
    [L_ISSUERS] = {"expected-issuer", "add-expected-issuer", "remove-expected-issuer", T_CT, false,
                   norm_issuer},
    [L_STARTTLS] = {"starttls", "add-starttls", "remove-starttls", T_NET, true,
                    cap_starttls_normalise},
};

/* Scalar options with the type they belong to (T_ANY: both). */
static const struct {
    const char *name;
    int kind, id, type;
} SCALARS[] = {
    {"type", CAP_CTL_VALUE, O_TYPE, T_ANY},
    {"timeout", CAP_CTL_VALUE, O_TIMEOUT, T_NET},
    {"concurrency", CAP_CTL_VALUE, O_CONCURRENCY, T_NET},
    {"connect-rate", CAP_CTL_VALUE, O_CONNECT_RATE, T_NET},
    {"no-connect-rate", CAP_CTL_FLAG, O_NO_CONNECT_RATE, T_NET},
    {"schedule", CAP_CTL_VALUE, O_SCHEDULE, T_ANY},
    {"poll", CAP_CTL_VALUE, O_POLL, T_CT},
    {"trigger", CAP_CTL_FLAG, O_TRIGGER, T_ANY},
    {"trigger-on-save", CAP_CTL_FLAG, O_TOS, T_ANY},
    {"no-trigger-on-save", CAP_CTL_FLAG, O_NO_TOS, T_ANY},
    {"disabled", CAP_CTL_FLAG, O_DISABLED, T_ANY},
    {"enabled", CAP_CTL_FLAG, O_ENABLED, T_ANY},
    {"log-protocol", CAP_CTL_VALUE, O_LOG_PROTOCOL, T_CT},
    {"log-key", CAP_CTL_VALUE, O_LOG_KEY, T_CT},
    {"no-log-key", CAP_CTL_FLAG, O_NO_LOG_KEY, T_CT},
    {"backfill-from", CAP_CTL_VALUE, O_BACKFILL, T_CT},
    {"no-backfill", CAP_CTL_FLAG, O_NO_BACKFILL, T_CT},
    {"rename", CAP_CTL_VALUE, O_RENAME, T_ANY},
};
#define N_SCALARS (sizeof SCALARS / sizeof SCALARS[0])

/* Options only `source edit` takes. */
static bool edit_only(int id)
{
    if (id >= O_LIST_BASE)
        return (id - O_LIST_BASE) % 3 != 0;
    return id == O_NO_TOS || id == O_ENABLED || id == O_NO_LOG_KEY || id == O_NO_BACKFILL ||
           id == O_NO_CONNECT_RATE || id == O_RENAME;
}

/* Builds the option table of add (edit false) or edit. specs has room for every option. */
static void build_specs(struct cap_ctl_opt_spec *specs, bool edit)
{
    size_t n = 0;
    for (size_t i = 0; i < N_SCALARS; i++) {
        if (!edit && edit_only(SCALARS[i].id))
            continue;
        specs[n++] = (struct cap_ctl_opt_spec){SCALARS[i].name, SCALARS[i].kind, SCALARS[i].id};
    }
    for (int l = 0; l < L_N; l++) {
        int base = O_LIST_BASE + 3 * l;
        specs[n++] = (struct cap_ctl_opt_spec){LISTS[l].set, CAP_CTL_LIST, base};
        if (edit) {
            specs[n++] = (struct cap_ctl_opt_spec){LISTS[l].add, CAP_CTL_LIST, base + 1};
            specs[n++] = (struct cap_ctl_opt_spec){LISTS[l].remove, CAP_CTL_LIST, base + 2};
        }
    }
    specs[n] = (struct cap_ctl_opt_spec){NULL, 0, 0};
}

static const char *type_name(int t)
{
    return t == T_NET ? "network_scan" : t == T_CT ? "ct_log" : "any";
}

/* The type an option belongs to. */
static int opt_type(int id)
{
    if (id >= O_LIST_BASE)
        return LISTS[(id - O_LIST_BASE) / 3].type;
    for (size_t i = 0; i < N_SCALARS; i++)
        if (SCALARS[i].id == id)
            return SCALARS[i].type;
    return T_ANY;
}

/* --- string lists ---------------------------------------------------------------------- */

struct strlist {
    char **v;
    size_t n, cap;
};

static void strlist_clear(struct strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    l->n = 0;
}

static void strlist_free(struct strlist *l)
{
    strlist_clear(l);
    free(l->v);
    l->v = NULL;
    l->cap = 0;
}

static ssize_t strlist_find(const struct strlist *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i], s) == 0)
            return (ssize_t)i;
    return -1;
}

/* Appends a copy of s unless it is already there. 0 or -1 (out of memory). */
static int strlist_add(struct strlist *l, const char *s)
{
    if (strlist_find(l, s) >= 0)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(s);
    if (!l->v[l->n])
        return -1;
    l->n++;
    return 0;
}

static void strlist_remove_at(struct strlist *l, size_t i)
{
    free(l->v[i]);
    memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
    l->n--;
}

/* --- the source being written ---------------------------------------------------------- */

struct source_row {
    int64_t id;
    char name[129];
    int type;
    bool enabled, trigger_on_save;
    char schedule[CAP_SCHEDULE_TEXT_MAX + 1];
    struct strlist l[L_N];
    int timeout_ms, concurrency;
    char log_protocol[16];
    char *log_key;
    bool has_backfill;
    int64_t backfill_from;
    int connect_rate; /* 0: NULL, the worker's scan.connect_rate */
};

static void row_cleanup(struct source_row *r)
{
    for (int i = 0; i < L_N; i++)
        strlist_free(&r->l[i]);
    free(r->log_key);
    r->log_key = NULL;
}

/* One validated list operation, in command-line order. */
struct list_op {
    int list, what; /* what: 0 set, 1 add, 2 remove */
    bool first_set; /* the first --X of the line: replaces the list */
    char *value;
    const char *raw; /* as typed, for messages */
};

/* Everything the options of add/edit say, validated and normalised (phase one: no database). */
struct changes {
    struct list_op *ops;
    size_t nops;
    bool has_timeout, has_concurrency, has_schedule, has_protocol, has_backfill, has_connect_rate;
    int timeout_ms, concurrency, connect_rate;
    int64_t backfill_from;
    char schedule[CAP_SCHEDULE_TEXT_MAX + 1];
    char protocol[16];
    char *log_key; /* PEM, when --log-key */
    const char *rename;
};

static void changes_cleanup(struct changes *ch)
{
    for (size_t i = 0; i < ch->nops; i++)
        free(ch->ops[i].value);
    free(ch->ops);
    free(ch->log_key);
    memset(ch, 0, sizeof *ch);
}

/* Reads a file of at most CAP_VALUE_PEM_MAX bytes into a malloc'd buffer. */
static char *read_small_file(const char *opt, const char *path, size_t *len, struct cap_err *err)
{
    char q[QUOTE_MAX];
    FILE *f = fopen(path, "rb");
    if (!f) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": cannot open: %s", opt,
                    cap_err_quote(q, sizeof q, path, strlen(path)), strerror(errno));
        return NULL;
    }
    char *buf = malloc(CAP_VALUE_PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, CAP_VALUE_PEM_MAX + 1, f) : 0;
    int bad = buf ? ferror(f) : 1;
    fclose(f);
    if (bad || n > CAP_VALUE_PEM_MAX) {
        cap_err_set(err, CAP_E_INVALID, "%s \"%s\": %s", opt,
                    cap_err_quote(q, sizeof q, path, strlen(path)),
                    bad ? "cannot read it" : "larger than 64 KiB, not a public key");
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Phase one: validates every option value of a, in order. Returns 0, or -1 with err. */
static int collect_changes(const struct cap_ctl_args *a, struct changes *ch, struct cap_err *err)
{
    char q[QUOTE_MAX];
    memset(ch, 0, sizeof *ch);
    bool seen_set[L_N] = {false};
    size_t cap = 0;
    for (size_t i = 0; i < a->nopts; i++) {
        const struct cap_ctl_opt *o = &a->opts[i];
        char opt[48];
        snprintf(opt, sizeof opt, "--%s", o->name);
        if (o->id >= O_LIST_BASE) {
            int l = (o->id - O_LIST_BASE) / 3, what = (o->id - O_LIST_BASE) % 3;
            char buf[CAP_VALUE_URL_MAX * 2 + 2];
            const char *parts[256];
            int np = 1;
            if (LISTS[l].split) {
                np = cap_ctl_args_split(opt, o->value, buf, sizeof buf, parts, 256, err);
                if (np < 0)
                    return -1;
            } else {
                parts[0] = o->value;
            }
            for (int k = 0; k < np; k++) {
                char norm[CAP_VALUE_URL_MAX + 1];
                if (LISTS[l].norm(opt, parts[k], norm, sizeof norm, err) < 0)
                    return -1;
                if (ch->nops == cap) {
                    cap = cap ? cap * 2 : 16;
                    struct list_op *ops = realloc(ch->ops, cap * sizeof *ops);
                    if (!ops)
                        goto nomem;
                    ch->ops = ops;
                }
                struct list_op *op = &ch->ops[ch->nops];
                op->list = l;
                op->what = what;
                op->first_set = what == 0 && !seen_set[l];
                op->raw = o->value;
                op->value = strdup(norm);
                if (!op->value)
                    goto nomem;
                ch->nops++;
                if (what == 0)
                    seen_set[l] = true;
            }
            continue;
        }
        switch (o->id) {
        case O_TIMEOUT: {
            int64_t ms = 0;
            if (cap_value_duration_ms(opt, o->value, CAP_SCAN_TIMEOUT_MIN_MS,
                                      CAP_SCAN_TIMEOUT_MAX_MS, "100ms and 10m", &ms, err) < 0)
                return -1;
            ch->timeout_ms = (int)ms;
            ch->has_timeout = true;
            break;
        }
        case O_CONCURRENCY: {
            int64_t v = 0;
            if (cap_ctl_validate_int(opt, o->value, 1, CAP_SCAN_CONCURRENCY_MAX, &v, err) < 0)
                return -1;
            ch->concurrency = (int)v;
            ch->has_concurrency = true;
            break;
        }
        case O_CONNECT_RATE: {
            char norm[24];
            const struct cap_source_field *f =
                cap_source_field_find(&cap_network_scan_type, "connect_rate");
            if (f->norm(f, opt, o->value, norm, sizeof norm, err) < 0)
                return -1;
            ch->connect_rate = (int)strtol(norm, NULL, 10);
        }
            ch->has_connect_rate = true;
            break;
        case O_SCHEDULE:
            if (cap_ctl_validate_schedule(opt, o->value, err) < 0)
                return -1;
            snprintf(ch->schedule, sizeof ch->schedule, "%s", o->value);
            ch->has_schedule = true;
            break;
        case O_POLL: {
            int64_t ms = 0;
            if (cap_config_parse_duration_ms(o->value, &ms) < 0) {
                cap_err_set(err, CAP_E_INVALID, "%s \"%s\": not a duration (e.g. 10m, 1h, 1d)", opt,
                            cap_err_quote(q, sizeof q, o->value, strlen(o->value)));
                return -1;
            }
            char sched[CAP_SCHEDULE_TEXT_MAX + 1];
            snprintf(sched, sizeof sched, "every %s", o->value);
            if (cap_ctl_validate_schedule(opt, sched, err) < 0)
                return -1;
            snprintf(ch->schedule, sizeof ch->schedule, "%s", sched);
            ch->has_schedule = true;
            break;
        }
        case O_LOG_PROTOCOL:
            if (strcmp(o->value, "auto") != 0 && strcmp(o->value, "rfc6962") != 0 &&
                strcmp(o->value, "static-ct") != 0) {
                cap_err_set(err, CAP_E_INVALID, "%s \"%s\": must be auto, rfc6962 or static-ct",
                            opt, cap_err_quote(q, sizeof q, o->value, strlen(o->value)));
                return -1;
            }
            snprintf(ch->protocol, sizeof ch->protocol, "%s", o->value);
            ch->has_protocol = true;
            break;
        case O_LOG_KEY: {
            size_t len = 0;
            char *pem = read_small_file(opt, o->value, &len, err);
            if (!pem)
                return -1;
            char *key = cap_value_pem_pubkey(opt, o->value, pem, len, err);
            free(pem);
            if (!key)
                return -1;
            free(ch->log_key);
            ch->log_key = key;
            break;
        }
        case O_BACKFILL:
            if (cap_ctl_validate_int(opt, o->value, 0, INT64_MAX, &ch->backfill_from, err) < 0)
                return -1;
            ch->has_backfill = true;
            break;
        case O_RENAME:
            if (cap_ctl_validate_name(o->value, err) < 0)
                return -1;
            ch->rename = o->value;
            break;
        default:
            break;
        }
    }
    return 0;
nomem:
    cap_err_set(err, CAP_E_NOMEM, "out of memory");
    return -1;
}

/* Options that contradict each other or the source's type: usage errors. */
static int check_combination(const struct cap_ctl_args *a, int type, const char *syn)
{
    for (size_t i = 0; i < a->nopts; i++) {
        int t = opt_type(a->opts[i].id);
        if (t != T_ANY && t != type)
            return cap_ctl_usage(syn, "--%s applies to %s sources, not %s", a->opts[i].name,
                                 type_name(t), type_name(type));
    }
    static const int pairs[][2] = {
        {O_POLL, O_SCHEDULE},        {O_TOS, O_NO_TOS},
        {O_ENABLED, O_DISABLED},     {O_LOG_KEY, O_NO_LOG_KEY},
        {O_BACKFILL, O_NO_BACKFILL}, {O_CONNECT_RATE, O_NO_CONNECT_RATE}};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *x = NULL, *y = NULL;
        for (size_t k = 0; k < a->nopts; k++) {
            if (a->opts[k].id == pairs[i][0])
                x = a->opts[k].name;
            if (a->opts[k].id == pairs[i][1])
                y = a->opts[k].name;
        }
        if (x && y)
            return cap_ctl_usage(syn, "--%s and --%s contradict each other", x, y);
    }
    return 0;
}

/* The entry of a STARTTLS list (normalised "PORT:PROTOCOL") for the port of v, or -1. */
static ssize_t starttls_find_port(const struct strlist *l, const char *v)
{
    size_t plen = strcspn(v, ":");
    for (size_t i = 0; i < l->n; i++)
        if (strncmp(l->v[i], v, plen + 1) == 0)
            return (ssize_t)i;
    return -1;
}

/* Phase two: applies ch and the flags of a to row. -1 with err when a --remove-X names a
 * value the list does not hold, or memory runs out. */
static int apply_changes(struct source_row *row, const struct changes *ch,
                         const struct cap_ctl_args *a, struct cap_err *err)
{
    char q[QUOTE_MAX];
    for (size_t i = 0; i < ch->nops; i++) {
        const struct list_op *op = &ch->ops[i];
        struct strlist *l = &row->l[op->list];
        if (op->first_set)
            strlist_clear(l);
        if (op->what == 2) {
            ssize_t at = strlist_find(l, op->value);
            if (at < 0) {
                cap_err_set(err, CAP_E_INVALID, "--%s \"%s\": source \"%s\" has no such entry",
                            LISTS[op->list].remove,
                            cap_err_quote(q, sizeof q, op->value, strlen(op->value)), row->name);
                return -1;
            }
            strlist_remove_at(l, (size_t)at);
            continue;
        }
        if (op->list == L_STARTTLS) {
            /* One protocol per port: --add-starttls replaces the port's override; two
             * different ones in the list being set contradict each other. */
            ssize_t at = starttls_find_port(l, op->value);
            if (at >= 0 && strcmp(l->v[at], op->value) != 0) {
                if (op->what == 0) {
                    char q2[QUOTE_MAX];
                    cap_err_set(err, CAP_E_INVALID,
                                "--starttls \"%s\": port already given as \"%s\"",
                                cap_err_quote(q, sizeof q, op->value, strlen(op->value)),
                                cap_err_quote(q2, sizeof q2, l->v[at], strlen(l->v[at])));
                    return -1;
                }
                strlist_remove_at(l, (size_t)at);
            }
        }
        if (strlist_add(l, op->value) < 0) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            return -1;
        }
    }
    if (ch->has_timeout)
        row->timeout_ms = ch->timeout_ms;
    if (ch->has_concurrency)
        row->concurrency = ch->concurrency;
    if (ch->has_schedule)
        snprintf(row->schedule, sizeof row->schedule, "%s", ch->schedule);
    if (ch->has_protocol)
        snprintf(row->log_protocol, sizeof row->log_protocol, "%s", ch->protocol);
    if (ch->log_key) {
        free(row->log_key);
        row->log_key = strdup(ch->log_key);
        if (!row->log_key) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            return -1;
        }
    }
    if (cap_ctl_args_has(a, O_NO_LOG_KEY)) {
        free(row->log_key);
        row->log_key = NULL;
    }
    if (ch->has_backfill) {
        row->has_backfill = true;
        row->backfill_from = ch->backfill_from;
    }
    if (cap_ctl_args_has(a, O_NO_BACKFILL))
        row->has_backfill = false;
    if (ch->has_connect_rate)
        row->connect_rate = ch->connect_rate;
    if (cap_ctl_args_has(a, O_NO_CONNECT_RATE))
        row->connect_rate = 0;
    if (cap_ctl_args_has(a, O_TOS))
        row->trigger_on_save = true;
    if (cap_ctl_args_has(a, O_NO_TOS))
        row->trigger_on_save = false;
    if (cap_ctl_args_has(a, O_DISABLED))
        row->enabled = false;
    if (cap_ctl_args_has(a, O_ENABLED))
        row->enabled = true;
    if (ch->rename)
        snprintf(row->name, sizeof row->name, "%s", ch->rename);
    return 0;
}

/* What the row must hold whatever the options were (the database checks the same). */
static int check_row(const struct source_row *row, struct cap_err *err)
{
    if (row->type == T_NET && row->l[L_CIDRS].n + row->l[L_HOSTS].n == 0) {
        cap_err_set(err, CAP_E_INVALID,
                    "source \"%s\": a network_scan source needs at least one --cidr or --host",
                    row->name);
        return -1;
    }
    if (row->l[L_STARTTLS].n > CAP_STARTTLS_OVERRIDES_MAX) {
        cap_err_set(err, CAP_E_INVALID, "source \"%s\": at most %d --starttls overrides, not %zu",
                    row->name, CAP_STARTTLS_OVERRIDES_MAX, row->l[L_STARTTLS].n);
        return -1;
    }
    if (row->type == T_CT && row->l[L_DOMAINS].n == 0) {
        cap_err_set(err, CAP_E_INVALID,
                    "source \"%s\": a ct_log source needs at least one --domain", row->name);
        return -1;
    }
    return 0;
}

/* --- writing --------------------------------------------------------------------------- */

/* Turns a refused INSERT/UPDATE into a message that names the source. */
static void write_error(const PGresult *r, PGconn *c, const char *name, struct cap_err *err)
{
    char q[QUOTE_MAX];
    cap_err_quote(q, sizeof q, name, strlen(name));
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *cons = r ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    if (!msg)
        msg = PQerrorMessage(c);
    if (state && strcmp(state, "23505") == 0 && cons && strstr(cons, "name")) {
        cap_err_set(err, CAP_E_INVALID, "source \"%s\" already exists", q);
        return;
    }
    if (state && strcmp(state, "23514") == 0 && cons) {
        if (strcmp(cons, "network_scan_has_targets") == 0) {
            cap_err_set(err, CAP_E_INVALID,
                        "source \"%s\": a network_scan source needs at least one --cidr or --host",
                        q);
            return;
        }
        if (strcmp(cons, "ct_log_has_domains") == 0) {
            cap_err_set(err, CAP_E_INVALID,
                        "source \"%s\": a ct_log source needs at least one --domain", q);
            return;
        }
    }
    char clean[200];
    snprintf(clean, sizeof clean, "%s", msg ? msg : "unknown error");
    size_t l = strlen(clean);
    while (l && (clean[l - 1] == '\n' || clean[l - 1] == ' '))
        clean[--l] = '\0';
    /* The database's own reasons already name the source ("source \"x\": cidr ..."). */
    if (strncmp(clean, "source \"", 8) == 0)
        cap_err_set(err, CAP_E_INVALID, "%s", clean);
    else
        cap_err_set(err, CAP_E_INVALID, "saving source \"%s\": %s (SQLSTATE %s)", q, clean,
                    state ? state : "none");
}

/* INSERTs (row->id == 0) or UPDATEs the row; sets row->id. 0 or -1 with err. */
static int write_row(PGconn *c, struct source_row *row, struct cap_err *err)
{
    char *arrays[L_N] = {NULL};
    int rc = -1;
    for (int i = 0; i < L_N; i++) {
        arrays[i] = cap_pg_text_array((const char *const *)row->l[i].v, row->l[i].n);
        if (!arrays[i]) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            goto out;
        }
    }
    char tmo[24], conc[24], bf[24], rate[24], idb[24];
    const char *p[19] = {
        row->name,
        type_name(row->type),
        row->enabled ? "true" : "false",
        row->schedule,
        row->trigger_on_save ? "true" : "false",
        arrays[L_CIDRS],
        arrays[L_HOSTS],
        arrays[L_PORTS],
        cap_pg_i64(tmo, row->timeout_ms),
        cap_pg_i64(conc, row->concurrency),
        arrays[L_DOMAINS],
        arrays[L_LOGS],
        row->log_protocol,
        row->log_key,
        arrays[L_ISSUERS],
        row->has_backfill ? cap_pg_i64(bf, row->backfill_from) : NULL,
        arrays[L_STARTTLS],
        row->connect_rate > 0 ? cap_pg_i64(rate, row->connect_rate) : NULL,
        cap_pg_i64(idb, row->id),
    };
    bool update = row->id != 0;
    PGresult *r =
        PQexecParams(c, update ? SQL_UPDATE : SQL_INSERT, update ? 19 : 18, NULL, p, NULL, NULL, 0);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        write_error(r, c, row->name, err);
        PQclear(r);
        goto out;
    }
    if (PQntuples(r) != 1) {
        cap_err_set(err, CAP_E_INVALID, "source \"%s\" changed type or vanished while saving",
                    row->name);
        PQclear(r);
        goto out;
    }
    row->id = cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    rc = 0;
out:
    for (int i = 0; i < L_N; i++)
        free(arrays[i]);
    return rc;
}

/* Loads source `name` (locked FOR UPDATE; call inside a transaction) into row. Returns 1 when
 * found, 0 when it does not exist, -1 with err. */
static int load_row(PGconn *c, const char *name, struct source_row *row, struct cap_err *err)
{
    const char *p[] = {name};
    PGresult *r = cap_pg_exec(c, "load source", SQL_LOAD, 1, p, err);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    row->id = cap_pg_get_i64(r, 0, 0);
    snprintf(row->name, sizeof row->name, "%s", PQgetvalue(r, 0, 1));
    row->type = strcmp(PQgetvalue(r, 0, 2), "ct_log") == 0 ? T_CT : T_NET;
    row->enabled = PQgetvalue(r, 0, 3)[0] == 't';
    snprintf(row->schedule, sizeof row->schedule, "%s", PQgetvalue(r, 0, 4));
    row->trigger_on_save = PQgetvalue(r, 0, 5)[0] == 't';
    static const int cols[L_N] = {
        [L_CIDRS] = 6, [L_HOSTS] = 7,    [L_PORTS] = 8,    [L_DOMAINS] = 11,
        [L_LOGS] = 12, [L_ISSUERS] = 15, [L_STARTTLS] = 17};
    int rc = 1;
    for (int i = 0; i < L_N && rc == 1; i++) {
        size_t n = 0;
        char **v = cap_pg_parse_text_array(PQgetvalue(r, 0, cols[i]), &n, err);
        if (!v) {
            rc = -1;
            break;
        }
        for (size_t k = 0; k < n && rc == 1; k++)
            if (strlist_add(&row->l[i], v[k]) < 0) {
                cap_err_set(err, CAP_E_NOMEM, "out of memory");
                rc = -1;
            }
        cap_pg_free_strv(v);
    }
    row->timeout_ms = (int)cap_pg_get_i64(r, 0, 9);
    row->concurrency = (int)cap_pg_get_i64(r, 0, 10);
    snprintf(row->log_protocol, sizeof row->log_protocol, "%s", PQgetvalue(r, 0, 13));
    if (!PQgetisnull(r, 0, 14)) {
        row->log_key = strdup(PQgetvalue(r, 0, 14));
        if (!row->log_key && rc == 1) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            rc = -1;
        }
    }
    row->has_backfill = !PQgetisnull(r, 0, 16);
    row->backfill_from = cap_pg_get_i64(r, 0, 16);
    row->connect_rate = PQgetisnull(r, 0, 18) ? 0 : (int)cap_pg_get_i64(r, 0, 18);
    PQclear(r);
    return rc;
}

/* --- triggering ------------------------------------------------------------------------ */

/* Queues a manual run of source id, or finds the run already queued or running. Sets *run_id
 * and *created. 0 or -1 with err. */
static int trigger_run(PGconn *c, int64_t id, int64_t *run_id, bool *created, struct cap_err *err)
{
    char idb[24];
    const char *p[] = {cap_pg_i64(idb, id)};
    /* The active run may finish between the refused INSERT and the SELECT: try again. */
    for (int attempt = 0; attempt < 10; attempt++) {
        PGresult *r = cap_pg_exec(c, "queue manual run", SQL_TRIGGER, 1, p, err);
        if (!r)
            return -1;
        if (PQntuples(r) == 1) {
            *run_id = cap_pg_get_i64(r, 0, 0);
            *created = true;
            PQclear(r);
            return 0;
        }
        PQclear(r);
        r = cap_pg_exec(c, "find active run", SQL_ACTIVE_RUN, 1, p, err);
        if (!r)
            return -1;
        if (PQntuples(r) == 1) {
            *run_id = cap_pg_get_i64(r, 0, 0);
            *created = false;
            PQclear(r);
            return 0;
        }
        PQclear(r);
    }
    cap_err_set(err, CAP_E_IO, "queue manual run: the source's active run kept changing; retry");
    return -1;
}

/* Prints what trigger_run did (stderr in JSON mode, where stdout carries JSON only). */
static void say_triggered(const struct cap_ctl *ctl, const char *name, int64_t run_id, bool created,
                          PGconn *c)
{
    FILE *f = ctl->json ? stderr : stdout;
    if (created) {
        fprintf(f, "run %lld queued for source \"%s\"\n", (long long)run_id, name);
        return;
    }
    char idb[24];
    const char *p[] = {cap_pg_i64(idb, run_id)};
    struct cap_err e = {0};
    PGresult *r = cap_pg_exec(c, "run status", SQL_RUN_STATUS, 1, p, &e);
    fprintf(f, "source \"%s\" already has run %lld (%s); it was not queued again\n", name,
            (long long)run_id, r && PQntuples(r) ? PQgetvalue(r, 0, 0) : "active");
    PQclear(r);
}

/* Waits until run_id reaches a final status or timeout_ms passes, polling every 200 ms.
 * Returns the exit code: 0 for succeeded/partial, 1 otherwise. Prints the run. */
static int wait_run(struct cap_ctl *ctl, PGconn *c, int64_t run_id, int64_t timeout_ms)
{
    char idb[24];
    const char *p[] = {cap_pg_i64(idb, run_id)};
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct cap_err err = {0};
    char status[16] = "";
    char error[256] = "";
    for (;;) {
        PGresult *r = cap_pg_exec(c, "poll run", SQL_RUN_STATUS, 1, p, &err);
        if (!r)
            return cap_ctl_fail(&err);
        if (PQntuples(r) == 0) {
            PQclear(r);
            cap_err_set(&err, CAP_E_INVALID, "run %s vanished (its source was deleted)", idb);
            return cap_ctl_fail(&err);
        }
        snprintf(status, sizeof status, "%s", PQgetvalue(r, 0, 0));
        snprintf(error, sizeof error, "%s", PQgetvalue(r, 0, 1));
        PQclear(r);
        if (strcmp(status, "queued") != 0 && strcmp(status, "running") != 0)
            break;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t spent = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (spent >= timeout_ms) {
            cap_err_set(&err, CAP_E_IO, "run %s is still %s after %lld ms (--timeout)", idb, status,
                        (long long)timeout_ms);
            return cap_ctl_fail(&err);
        }
        struct timespec nap = {0, 200 * 1000000L};
        nanosleep(&nap, NULL);
    }
    if (cap_ctl_show_run(ctl, c, run_id, &err) < 0)
        return cap_ctl_fail(&err);
    if (strcmp(status, "succeeded") == 0 || strcmp(status, "partial") == 0)
        return CAP_CTL_OK;
    fprintf(stderr, "capctl: run %s ended %s%s%s\n", idb, status, error[0] ? ": " : "", error);
    return CAP_CTL_FAIL;
}

/* --- commands -------------------------------------------------------------------------- */

static int begin(PGconn *c, struct cap_err *err)
{
    return cap_pg_cmd(c, "begin", "BEGIN", 0, NULL, err);
}

static void rollback(PGconn *c)
{
    PQclear(PQexec(c, "ROLLBACK"));
}

/* After a save in the open transaction: the run the trigger-on-save made, if any (0). */
static int64_t save_run(PGconn *c, int64_t id, int64_t after, struct cap_err *err)
{
    char idb[24], ab[24];
    const char *p[] = {cap_pg_i64(idb, id), cap_pg_i64(ab, after)};
    PGresult *r = cap_pg_exec(c, "find save run", SQL_SAVE_RUN, 2, p, err);
    if (!r)
        return -1;
    int64_t run = PQntuples(r) ? cap_pg_get_i64(r, 0, 0) : 0;
    PQclear(r);
    return run;
}

static int64_t max_run(PGconn *c, int64_t id, struct cap_err *err)
{
    char idb[24];
    const char *p[] = {cap_pg_i64(idb, id)};
    PGresult *r = cap_pg_exec(c, "last run", SQL_MAX_RUN, 1, p, err);
    if (!r)
        return -1;
    int64_t v = cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    return v;
}

/* Warns (stderr) about ranges this configuration's policy refuses whole: network.deny, or
 * loopback while network.allow_loopback is false. They are saved (workers may be configured
 * otherwise), but runs under this configuration will skip them. */
static void warn_policy(const struct cap_ctl *ctl, const struct source_row *row)
{
    struct cap_policy pol;
    struct cap_err e = {0};
    if (!ctl->cfg_loaded || cap_policy_init(&pol, &ctl->cfg, &e) < 0)
        return;
    for (size_t i = 0; i < row->l[L_CIDRS].n; i++) {
        struct cap_cidr c;
        char why[CAP_POLICY_REASON_MAX + CAP_CIDR_TEXT_MAX + 64];
        if (cap_policy_parse_cidr(row->l[L_CIDRS].v[i], &c, NULL) == 0 &&
            cap_policy_cidr_refused_by(&pol, &c, why, sizeof why) == 1)
            fprintf(stderr, "capctl: warning: %s; runs under this configuration will skip it\n",
                    why);
    }
    cap_policy_cleanup(&pol);
}

/* Output after add/edit, then --trigger. */
static int after_save(struct cap_ctl *ctl, PGconn *c, const struct source_row *row, bool added,
                      int64_t save_run_id, bool trigger)
{
    struct cap_err err = {0};
    warn_policy(ctl, row);
    if (ctl->json) {
        const char *p[] = {row->name};
        if (cap_ctl_out_json_query(c, "show source", SQL_SHOW, 1, p, &err) < 0)
            return cap_ctl_fail(&err);
    } else {
        printf("source \"%s\" %s (id %lld)\n", row->name, added ? "added" : "saved",
               (long long)row->id);
    }
    if (save_run_id > 0)
        fprintf(ctl->json ? stderr : stdout,
                "run %lld queued for source \"%s\" (trigger on save)\n", (long long)save_run_id,
                row->name);
    if (trigger) {
        int64_t run = 0;
        bool created = false;
        if (trigger_run(c, row->id, &run, &created, &err) < 0)
            return cap_ctl_fail(&err);
        say_triggered(ctl, row->name, run, created, c);
    }
    return CAP_CTL_OK;
}

static int cmd_add(struct cap_ctl *ctl, int argc, char **argv)
{
    struct cap_ctl_opt_spec specs[64];
    build_specs(specs, false);
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 1, SYN_ADD, &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(SYN_ADD, "source add: give the source NAME");
    const char *tt = cap_ctl_args_get(&a, O_TYPE);
    if (!tt)
        return cap_ctl_usage(SYN_ADD,
                             "source add: --type network_scan or --type ct_log is required");
    int type = strcmp(tt, "network_scan") == 0 ? T_NET : strcmp(tt, "ct_log") == 0 ? T_CT : 0;
    if (!type) {
        char q[QUOTE_MAX];
        return cap_ctl_usage(SYN_ADD, "--type \"%s\": must be network_scan or ct_log",
                             cap_err_quote(q, sizeof q, tt, strlen(tt)));
    }
    rc = check_combination(&a, type, SYN_ADD);
    if (rc)
        return rc;
    if (type == T_CT && !cap_ctl_args_has(&a, O_LIST_BASE + 3 * L_DOMAINS))
        return cap_ctl_usage(SYN_ADD, "source add: a ct_log source needs --domain SUFFIX");
    if (type == T_NET && !cap_ctl_args_has(&a, O_LIST_BASE + 3 * L_CIDRS) &&
        !cap_ctl_args_has(&a, O_LIST_BASE + 3 * L_HOSTS))
        return cap_ctl_usage(SYN_ADD, "source add: a network_scan source needs --cidr or --host");

    struct cap_err err = {0};
    if (cap_ctl_validate_name(a.pos[0], &err) < 0)
        return cap_ctl_fail(&err);
    struct source_row row;
    memset(&row, 0, sizeof row);
    snprintf(row.name, sizeof row.name, "%s", a.pos[0]);
    row.type = type;
    row.enabled = true;
    snprintf(row.schedule, sizeof row.schedule, "%s", type == T_CT ? "every 1h" : "manual");
    row.timeout_ms = 5000;
    row.concurrency = 8;
    snprintf(row.log_protocol, sizeof row.log_protocol, "auto");
    struct changes ch;
    if (collect_changes(&a, &ch, &err) < 0 || apply_changes(&row, &ch, &a, &err) < 0 ||
        check_row(&row, &err) < 0) {
        changes_cleanup(&ch);
        row_cleanup(&row);
        return cap_ctl_fail(&err);
    }
    changes_cleanup(&ch);

    PGconn *c = cap_ctl_db(ctl, &err);
    int64_t run = 0;
    if (!c || begin(c, &err) < 0)
        goto fail;
    if (write_row(c, &row, &err) < 0 || (run = save_run(c, row.id, 0, &err)) < 0 ||
        cap_pg_cmd(c, "commit", "COMMIT", 0, NULL, &err) < 0) {
        rollback(c);
        goto fail;
    }
    rc = after_save(ctl, c, &row, true, run, cap_ctl_args_has(&a, O_TRIGGER));
    row_cleanup(&row);
    return rc;
fail:
    row_cleanup(&row);
    return cap_ctl_fail(&err);
}

static int cmd_edit(struct cap_ctl *ctl, int argc, char **argv)
{
    struct cap_ctl_opt_spec specs[64];
    build_specs(specs, true);
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 1, SYN_EDIT, &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(SYN_EDIT, "source edit: give the source NAME");
    if (a.nopts == 0)
        return cap_ctl_usage(SYN_EDIT, "source edit: nothing to change");
    struct cap_err err = {0};
    char q[QUOTE_MAX];
    cap_err_quote(q, sizeof q, a.pos[0], strlen(a.pos[0]));
    struct changes ch;
    if (collect_changes(&a, &ch, &err) < 0) {
        changes_cleanup(&ch);
        return cap_ctl_fail(&err);
    }
    struct source_row row;
    memset(&row, 0, sizeof row);
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c || begin(c, &err) < 0)
        goto fail;
    int found = load_row(c, a.pos[0], &row, &err);
    if (found <= 0) {
        rollback(c);
        if (found == 0)
            cap_err_set(&err, CAP_E_INVALID, "source \"%s\" does not exist", q);
        goto fail;
    }
    const char *tt = cap_ctl_args_get(&a, O_TYPE);
    if (tt && strcmp(tt, type_name(row.type)) != 0) {
        rollback(c);
        changes_cleanup(&ch);
        row_cleanup(&row);
        return cap_ctl_usage(SYN_EDIT,
                             "source \"%s\" is a %s source; its type cannot change "
                             "(delete it and add it again)",
                             q, type_name(row.type));
    }
    rc = check_combination(&a, row.type, SYN_EDIT);
    if (rc) {
        rollback(c);
        changes_cleanup(&ch);
        row_cleanup(&row);
        return rc;
    }
    int64_t before = 0, run = 0;
    if (apply_changes(&row, &ch, &a, &err) < 0 || check_row(&row, &err) < 0 ||
        (before = max_run(c, row.id, &err)) < 0 || write_row(c, &row, &err) < 0 ||
        (run = save_run(c, row.id, before, &err)) < 0 ||
        cap_pg_cmd(c, "commit", "COMMIT", 0, NULL, &err) < 0) {
        rollback(c);
        goto fail;
    }
    changes_cleanup(&ch);
    rc = after_save(ctl, c, &row, false, run, cap_ctl_args_has(&a, O_TRIGGER));
    row_cleanup(&row);
    return rc;
fail:
    changes_cleanup(&ch);
    row_cleanup(&row);
    return cap_ctl_fail(&err);
}

/* Looks up the id of source name; 1 found, 0 not (err set), -1 error. */
static int source_id(PGconn *c, const char *name, int64_t *id, struct cap_err *err)
{
    const char *p[] = {name};
    PGresult *r = cap_pg_exec(c, "look up source", SQL_ID, 1, p, err);
    if (!r)
        return -1;
    int found = PQntuples(r);
    if (found)
        *id = cap_pg_get_i64(r, 0, 0);
    PQclear(r);
    if (!found) {
        char q[QUOTE_MAX];
        cap_err_set(err, CAP_E_INVALID, "source \"%s\" does not exist",
                    cap_err_quote(q, sizeof q, name, strlen(name)));
    }
    return found;
}

static int cmd_trigger(struct cap_ctl *ctl, int argc, char **argv)
{
    enum { T_WAIT = 1, T_TIMEOUT };
    static const struct cap_ctl_opt_spec specs[] = {
        {"wait", CAP_CTL_FLAG, T_WAIT}, {"timeout", CAP_CTL_VALUE, T_TIMEOUT}, {NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 1, SYN_TRIGGER, &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(SYN_TRIGGER, "source trigger: give the source NAME");
    bool wait = cap_ctl_args_has(&a, T_WAIT);
    const char *tt = cap_ctl_args_get(&a, T_TIMEOUT);
    if (tt && !wait)
        return cap_ctl_usage(SYN_TRIGGER, "source trigger: --timeout only goes with --wait");
    struct cap_err err = {0};
    int64_t timeout_ms = 600000;
    if (tt && (cap_config_parse_duration_ms(tt, &timeout_ms) < 0 || timeout_ms <= 0)) {
        char q[QUOTE_MAX];
        cap_err_set(&err, CAP_E_INVALID, "--timeout \"%s\": not a duration (e.g. 30s, 10m, 1h)",
                    cap_err_quote(q, sizeof q, tt, strlen(tt)));
        return cap_ctl_fail(&err);
    }
    PGconn *c = cap_ctl_db(ctl, &err);
    int64_t id = 0, run = 0;
    bool created = false;
    if (!c || source_id(c, a.pos[0], &id, &err) <= 0 ||
        trigger_run(c, id, &run, &created, &err) < 0)
        return cap_ctl_fail(&err);
    if (!wait) {
        say_triggered(ctl, a.pos[0], run, created, c);
        if (ctl->json && cap_ctl_show_run(ctl, c, run, &err) < 0)
            return cap_ctl_fail(&err);
        return CAP_CTL_OK;
    }
    /* With --wait, stdout carries the finished run; progress goes to stderr. */
    struct cap_ctl quiet = *ctl;
    quiet.json = true;
    say_triggered(&quiet, a.pos[0], run, created, c);
    return wait_run(ctl, c, run, timeout_ms);
}

static int cmd_list(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 0, SYN_LIST, &a);
    if (rc)
        return rc;
    struct cap_err err = {0};
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c || cap_ctl_out_query(c, ctl->json, false, "list sources",
                                ctl->json ? SQL_LIST_JSON : SQL_LIST_TABLE, 0, NULL, "no sources",
                                &err) < 0)
        return cap_ctl_fail(&err);
    return CAP_CTL_OK;
}

static int cmd_show(struct cap_ctl *ctl, int argc, char **argv)
{
    static const struct cap_ctl_opt_spec specs[] = {{NULL, 0, 0}};
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 1, SYN_SHOW, &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(SYN_SHOW, "source show: give the source NAME");
    struct cap_err err = {0};
    PGconn *c = cap_ctl_db(ctl, &err);
    int64_t id = 0;
    if (!c || source_id(c, a.pos[0], &id, &err) <= 0)
        return cap_ctl_fail(&err);
    const char *p[] = {a.pos[0]};
    if (cap_ctl_out_query(c, ctl->json, true, "show source", SQL_SHOW, 1, p, NULL, &err) < 0)
        return cap_ctl_fail(&err);
    if (!ctl->json) {
        printf("\nrecent runs:\n");
        if (cap_ctl_out_query(c, false, false, "recent runs", SQL_SHOW_RUNS, 1, p, "  none", &err) <
            0)
            return cap_ctl_fail(&err);
    }
    return CAP_CTL_OK;
}

/* enable, disable and delete: one name, one statement. */
static int cmd_simple(struct cap_ctl *ctl, int argc, char **argv, const char *what)
{
    static const struct cap_ctl_opt_spec specs[] = {{NULL, 0, 0}};
    const char *syn = strcmp(what, "delete") == 0 ? SYN_DELETE : SYN_ENABLE;
    struct cap_ctl_args a;
    int rc = cap_ctl_parse(argc, argv, specs, 1, syn, &a);
    if (rc)
        return rc;
    if (a.npos != 1)
        return cap_ctl_usage(syn, "source %s: give the source NAME", what);
    struct cap_err err = {0};
    PGconn *c = cap_ctl_db(ctl, &err);
    if (!c)
        return cap_ctl_fail(&err);
    PGresult *r;
    if (strcmp(what, "delete") == 0) {
        const char *p[] = {a.pos[0]};
        r = cap_pg_exec(c, "delete source", SQL_DELETE, 1, p, &err);
    } else {
        const char *p[] = {a.pos[0], strcmp(what, "enable") == 0 ? "true" : "false"};
        r = cap_pg_exec(c, "enable source", SQL_SET_ENABLED, 2, p, &err);
    }
    if (!r)
        return cap_ctl_fail(&err);
    int found = PQntuples(r);
    PQclear(r);
    char q[QUOTE_MAX];
    cap_err_quote(q, sizeof q, a.pos[0], strlen(a.pos[0]));
    if (!found) {
        cap_err_set(&err, CAP_E_INVALID, "source \"%s\" does not exist", q);
        return cap_ctl_fail(&err);
    }
    if (ctl->json && strcmp(what, "delete") != 0) {
        const char *p[] = {a.pos[0]};
        if (cap_ctl_out_json_query(c, "show source", SQL_SHOW, 1, p, &err) < 0)
            return cap_ctl_fail(&err);
    } else if (ctl->json) {
        printf("[]\n");
    } else {
        printf("source \"%s\" %s\n", q,
               strcmp(what, "delete") == 0   ? "deleted"
               : strcmp(what, "enable") == 0 ? "enabled"
                                             : "disabled");
    }
    return CAP_CTL_OK;
}

int cap_ctl_cmd_source(struct cap_ctl *ctl, int argc, char **argv)
{
    if (argc < 1)
        return cap_ctl_usage(SYN_SOURCE, "source: missing subcommand");
    const char *sub = argv[0];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        printf("usage: %s\n       %s\n       %s\n       %s\n       %s\n       %s\n       %s\n",
               SYN_ADD, SYN_EDIT, SYN_LIST, SYN_SHOW, SYN_ENABLE, SYN_DELETE, SYN_TRIGGER);
        return CAP_CTL_OK;
    }
    argc--;
    argv++;
    if (strcmp(sub, "add") == 0)
        return cmd_add(ctl, argc, argv);
    if (strcmp(sub, "edit") == 0)
        return cmd_edit(ctl, argc, argv);
    if (strcmp(sub, "list") == 0)
        return cmd_list(ctl, argc, argv);
    if (strcmp(sub, "show") == 0)
        return cmd_show(ctl, argc, argv);
    if (strcmp(sub, "trigger") == 0)
        return cmd_trigger(ctl, argc, argv);
    if (strcmp(sub, "enable") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "delete") == 0)
        return cmd_simple(ctl, argc, argv, sub);
    char q[QUOTE_MAX];
    return cap_ctl_usage(SYN_SOURCE, "source: unknown subcommand \"%s\"",
                         cap_err_quote(q, sizeof q, sub, strlen(sub)));
}
