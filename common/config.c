/* Configuration loading: defaults, then one YAML file (libyaml), then CERTAUTOPILOT_* environment
 * variables, with validation messages that name the key, the value and what is allowed. */
#include "common/config.h"

#include "common/dnsaddr.h"
#include "common/notify.h"

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <yaml.h>

extern char **environ;

#define ENV_PREFIX "CERTAUTOPILOT_"
#define ENV_CONFIG "CERTAUTOPILOT_CONFIG"
#define CONFIG_FILE_MAX (1 << 20) /* a config file larger than this is refused */
#define SECRET_FILE_MAX (1 << 16) /* a *_FILE secret larger than this is refused */
#define YAML_DEPTH_MAX 16         /* YAML nesting a config file may use (it needs 4) */
#define DUR_MAX_MS (365LL * 86400 * 1000)
/* Longest retention.*: a hundred years (0 keeps rows for ever). */
#define RETENTION_MAX_MS (36500LL * 86400 * 1000)
#define NAME_MAX_LEN 256 /* redis stream and group names */
#define WHERE_MAX 192    /* "config file x.yaml:3:5: key \"worker.max_jobs\"" */

enum ktype {
    KT_PG_URL,
    KT_REDIS_URL,
    KT_NAME,
    KT_LISTEN,
    KT_HTTP_URL,
    KT_PATH,
    KT_INT,
    KT_I64,
    KT_DUR,
    KT_BOOL,
    KT_LEVEL,
    KT_FORMAT,
    KT_CIDRS,
    KT_DNS,
    KT_CTLOGS,
    KT_WEBHOOKS,
};

struct key_def {
    const char *key;
    enum ktype type;
    size_t off;
    int64_t min, max;
    bool secret; /* never quoted in messages; also read from <ENV>_FILE */
};

#define OFF(f) offsetof(struct cap_config, f)

/* Every key of struct cap_config; the order is the order of deploy/config.example.yaml. */
static const struct key_def keys[] = {
    {"database.url", KT_PG_URL, OFF(database_url), 0, 0, true},
    {"database.prepared_statements", KT_BOOL, OFF(database_prepared_statements), 0, 0, false},
    {"redis.url", KT_REDIS_URL, OFF(redis_url), 0, 0, true},
    {"redis.stream", KT_NAME, OFF(redis_stream), 0, 0, false},
    {"redis.group", KT_NAME, OFF(redis_group), 0, 0, false},
    {"redis.dead_letter_stream", KT_NAME, OFF(redis_dead_letter_stream), 0, 0, false},
    {"logging.level", KT_LEVEL, OFF(logging_level), 0, 0, false},
    {"logging.format", KT_FORMAT, OFF(logging_format), 0, 0, false},
    {"telemetry.metrics_listen", KT_LISTEN, OFF(telemetry_metrics_listen), 0, 0, false},
    {"scheduler.tick", KT_DUR, OFF(scheduler_tick_ms), 1, DUR_MAX_MS, false},
    {"scheduler.requeue_after", KT_DUR, OFF(scheduler_requeue_after_ms), 1, DUR_MAX_MS, false},
    {"scheduler.batch", KT_INT, OFF(scheduler_batch), 1, 100000, false},
    {"retention.observations", KT_DUR, OFF(retention_observations_ms), 0, RETENTION_MAX_MS, false},
    {"retention.runs", KT_DUR, OFF(retention_runs_ms), 0, RETENTION_MAX_MS, false},
    {"retention.notifications", KT_DUR, OFF(retention_notifications_ms), 0, RETENTION_MAX_MS,
     false},
    {"worker.max_concurrent_discovery", KT_INT, OFF(worker_max_concurrent_discovery), 1, 100000,
     false},
    {"worker.max_jobs", KT_INT, OFF(worker_max_jobs), 1, 100000, false},
    {"worker.reclaim_idle", KT_DUR, OFF(worker_reclaim_idle_ms), 1, DUR_MAX_MS, false},
    {"worker.max_attempts", KT_INT, OFF(worker_max_attempts), 1, 100, false},
    {"worker.drain_grace", KT_DUR, OFF(worker_drain_grace_ms), 1, DUR_MAX_MS, false},
    {"worker.heartbeat", KT_DUR, OFF(worker_heartbeat_ms), 1, DUR_MAX_MS, false},
    {"worker.noop_executor", KT_BOOL, OFF(worker_noop_executor), 0, 0, false},
    {"worker.noop_sleep", KT_DUR, OFF(worker_noop_sleep_ms), 0, 3600000, false},
    {"network.deny", KT_CIDRS, OFF(network_deny), 0, 0, false},
    {"network.allow_loopback", KT_BOOL, OFF(network_allow_loopback), 0, 0, false},
    {"network.dns_servers", KT_DNS, OFF(network_dns_servers), 0, 0, false},
    {"scan.max_targets", KT_I64, OFF(scan_max_targets), 1, 1LL << 32, false},
    {"scan.expiring_days", KT_INT, OFF(scan_expiring_days), 0, 3650, false},
    {"scan.max_pending_connects", KT_INT, OFF(scan_max_pending_connects), 1, 1000000, false},
    {"scan.connect_rate", KT_INT, OFF(scan_connect_rate), 1, 1000000, false},
    {"scan.shard_targets", KT_I64, OFF(scan_shard_targets), 1, 1LL << 32, false},
    {"scan.shard_size", KT_I64, OFF(scan_shard_size), 1, 1LL << 32, false},
    {"ct.logs", KT_CTLOGS, OFF(ct_logs), 0, 0, false},
    {"ct.log_list_url", KT_HTTP_URL, OFF(ct_log_list_url), 0, 0, false},
    {"ct.log_list_file", KT_PATH, OFF(ct_log_list_file), 0, 0, false},
    {"ct.log_list_refresh", KT_DUR, OFF(ct_log_list_refresh_ms), 1000, DUR_MAX_MS, false},
    {"ct.run_budget", KT_I64, OFF(ct_run_budget), 1, 1000000000000LL, false},
    /* Secret: webhook URLs (a Slack URL is one), so also CERTAUTOPILOT_NOTIFY_WEBHOOKS_FILE. */
    {"notify.webhooks", KT_WEBHOOKS, OFF(notify_webhooks), 0, 0, true},
    {"ct.max_requests_per_second", KT_INT, OFF(ct_max_requests_per_second), 1, 100000, false},
};

#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = {"database",  "redis",     "logging", "telemetry",
                                       "scheduler", "retention", "worker",  "network",
                                       "scan",      "ct",        "notify"};
#define NSECTIONS (sizeof sections / sizeof sections[0])

/* State of one load: the config being built and which keys a source has set. */
struct loader {
    struct cap_config cfg;
    bool set[NKEYS];      /* set by the file or the environment */
    bool file_set[NKEYS]; /* set by the file: a second occurrence is a duplicate */
};

/* ---------------------------------------------------------------- small helpers */

static char *xstrndup(const char *s, size_t n, struct cap_err *err)
{
    char *p = malloc(n + 1);
    if (!p) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static char *xstrdup(const char *s, struct cap_err *err)
{
    return xstrndup(s, strlen(s), err);
}

static char **field_str(struct cap_config *c, const struct key_def *k)
{
    return (char **)((char *)c + k->off);
}

static int key_index(const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].key, key) == 0)
            return (int)i;
    return -1;
}

/* Writes the environment variable name of a dotted key: CERTAUTOPILOT_WORKER_MAX_JOBS. */
static void env_name(const char *key, char *out, size_t n)
{
    size_t o = 0;
    for (const char *p = ENV_PREFIX; *p && o + 1 < n; p++)
        out[o++] = *p;
    for (const char *p = key; *p && o + 1 < n; p++) {
        char c = *p;
        if (c == '.')
            c = '_';
        else if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        out[o++] = c;
    }
    out[o] = '\0';
}

/* Formats a duration in the largest unit that divides it: 60000 -> "1m". */
static void fmt_duration(int64_t ms, char *out, size_t n)
{
    static const struct {
        int64_t mult;
        const char *unit;
    } units[] = {{86400000, "d"}, {3600000, "h"}, {60000, "m"}, {1000, "s"}, {1, "ms"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms != 0 && ms % units[i].mult == 0) {
            snprintf(out, n, "%lld%s", (long long)(ms / units[i].mult), units[i].unit);
            return;
        }
    }
    snprintf(out, n, "%lldms", (long long)ms);
}

/* Quotes a value for a message; secrets are shown redacted, or not at all. */
static void quote_value(const struct key_def *k, const char *v, size_t vlen, char *out, size_t n)
{
    if (k && k->secret) {
        if (memchr(v, '\0', vlen) || !strstr(v, "://")) {
            snprintf(out, n, "<hidden, %zu bytes>", vlen);
            return;
        }
        char red[512];
        cap_config_redact_url(v, red, sizeof red);
        cap_err_quote(out, n, red, strlen(red));
        return;
    }
    cap_err_quote(out, n, v, vlen);
}

/* Records "<where>: value "<v>" <why> (allowed <allowed>)" and returns -1. */
static int fail_value(struct cap_err *err, const char *where, const struct key_def *k,
                      const char *v, size_t vlen, const char *why, const char *allowed)
{
    char q[96];
    quote_value(k, v, vlen, q, sizeof q);
    cap_err_set(err, CAP_E_INVALID, "%s: value \"%s\" %s (allowed %s)", where, q, why, allowed);
    return -1;
}

/* ---------------------------------------------------------------- scalar parsers */

int cap_config_parse_duration_ms(const char *s, int64_t *out_ms)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    int64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        int d = *p - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        p++;
    }
    int64_t mult;
    if (*p == '\0' || strcmp(p, "s") == 0)
        mult = 1000;
    else if (strcmp(p, "ms") == 0)
        mult = 1;
    else if (strcmp(p, "m") == 0)
        mult = 60000;
    else if (strcmp(p, "h") == 0)
        mult = 3600000;
    else if (strcmp(p, "d") == 0)
        mult = 86400000;
    else
        return -1;
    if (v > INT64_MAX / mult)
        return -1;
    *out_ms = v * mult;
    return 0;
}

/* Parses a decimal integer: 0, -1 when it is not one, -2 when it does not fit in 64 bits. */
static int parse_i64(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (*p < '0' || *p > '9')
        return -1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return -1;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return -2;
    if (errno || !end || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "1", "on"};
    static const char *const no[] = {"false", "no", "0", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/* Checks an IPv4 or IPv6 CIDR and writes its canonical form ("10.0.0.0/8"); a bare address gets
 * /32 or /128. Returns 0, or -1 with *why set. */
static int check_cidr(const char *s, char *out, size_t n, const char **why)
{
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    char addr[INET6_ADDRSTRLEN + 1];
    *why = "is not an IPv4 or IPv6 CIDR";
    if (alen == 0 || alen >= sizeof addr)
        return -1;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    unsigned char bin[16];
    int family, bits;
    if (inet_pton(AF_INET, addr, bin) == 1) {
        family = AF_INET;
        bits = 32;
    } else if (inet_pton(AF_INET6, addr, bin) == 1) {
        family = AF_INET6;
        bits = 128;
    } else {
        return -1;
    }
    int prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        size_t plen = strlen(p);
        if (plen == 0 || plen > 3)
            return -1;
        prefix = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9')
                return -1;
            prefix = prefix * 10 + (*p - '0');
        }
        if (prefix > bits) {
            *why = "has a prefix length beyond the address size";
            return -1;
        }
    }
    for (int b = prefix; b < bits; b++) {
        if (bin[b / 8] & (0x80 >> (b % 8))) {
            *why = "has address bits set right of the prefix length";
            return -1;
        }
    }
    char canon[INET6_ADDRSTRLEN];
    if (!inet_ntop(family, bin, canon, sizeof canon))
        return -1;
    int w = snprintf(out, n, "%s/%d", canon, prefix);
    if (w < 0 || (size_t)w >= n)
        return -1;
    return 0;
}

/* ---------------------------------------------------------------- redaction */

#define REDACT_MAX 16

struct range {
    size_t start, end;
};

static int add_range(struct range *r, int n, size_t start, size_t end)
{
    if (n < REDACT_MAX && end > start) {
        r[n].start = start;
        r[n].end = end;
        n++;
    }
    return n;
}

const char *cap_config_redact_url(const char *url, char *out, size_t n)
{
    if (!out || n == 0)
        return out;
    if (!url) {
        snprintf(out, n, "(null)");
        return out;
    }
    size_t len = strlen(url);
    struct range r[REDACT_MAX];
    int nr = 0;
    /* scheme://user:password@host: the password runs from the first ':' after "://" to the last
     * '@'. Taking the last '@' over-redacts rather than leaks when a password holds '@' or '/'. */
    const char *scheme_end = strstr(url, "://");
    if (scheme_end) {
        const char *auth = scheme_end + 3;
        const char *at = strrchr(auth, '@');
        if (at) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            /* redis://TOKEN@host: a Redis client takes a bare userinfo as the password (cloud
             * Redis tokens are given so): the whole userinfo. Elsewhere it is a user name. */
            bool redis =
                strncasecmp(url, "redis://", 8) == 0 || strncasecmp(url, "rediss://", 9) == 0;
            if (colon || redis)
                nr = add_range(r, nr, (size_t)((colon ? colon + 1 : auth) - url),
                               (size_t)(at - url));
        }
    }
    /* password=... in a query string or a libpq keyword string (value maybe quoted). */
    for (size_t i = 0; i + 8 <= len; i++) {
        if (strncasecmp(url + i, "password", 8) != 0)
            continue;
        if (i > 0 && url[i - 1] != '?' && url[i - 1] != '&' && url[i - 1] != ' ' &&
            url[i - 1] != '\t' && url[i - 1] != ';')
            continue;
        size_t j = i + 8;
        while (j < len && (url[j] == ' ' || url[j] == '\t'))
            j++;
        if (j >= len || url[j] != '=')
            continue;
        j++;
        while (j < len && (url[j] == ' ' || url[j] == '\t') && !scheme_end)
            j++;
        size_t start = j;
        if (j < len && url[j] == '\'' && !scheme_end) {
            j++;
            while (j < len && url[j] != '\'') {
                if (url[j] == '\\' && j + 1 < len)
                    j++;
                j++;
            }
            if (j < len)
                j++;
        } else if (scheme_end) {
            while (j < len && url[j] != '&' && url[j] != '#')
                j++;
        } else {
            while (j < len && url[j] != ' ' && url[j] != '\t')
                j++;
        }
        nr = add_range(r, nr, start, j);
        i = j;
    }
    /* Emit with each range replaced by "****"; ranges may overlap, so walk byte by byte. */
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < n;) {
        int hit = -1;
        for (int k = 0; k < nr; k++)
            if (i >= r[k].start && i < r[k].end)
                hit = k;
        if (hit < 0) {
            out[o++] = url[i++];
            continue;
        }
        size_t end = r[hit].end;
        for (int k = 0; k < nr; k++)
            if (r[k].start < end && r[k].end > end)
                end = r[k].end;
        for (const char *s = "****"; *s && o + 1 < n; s++)
            out[o++] = *s;
        i = end;
    }
    out[o] = '\0';
    return out;
}

/* ---------------------------------------------------------------- where a value came from */

enum { ORIG_FILE, ORIG_ENV };

struct origin {
    int kind;
    const char *name; /* quoted file name, or environment variable name */
    size_t line, col; /* 1-based position in a YAML file */
};

/* Writes the message prefix for path (a dotted key, "ct.logs[0].url", or a JSON path). */
static void where_fmt(const struct origin *o, const char *path, char *out, size_t n)
{
    if (o->kind == ORIG_FILE)
        snprintf(out, n, "config file %s:%zu:%zu: key \"%s\"", o->name, o->line, o->col, path);
    else if (path && strchr(path, '['))
        snprintf(out, n, "environment %s item %s", o->name, strchr(path, '['));
    else
        snprintf(out, n, "environment %s", o->name);
}

/* The same, as the callback cap_ct_log_check takes (ctx is a struct origin). */
static void origin_where_cb(const void *ctx, const char *path, char *out, size_t n)
{
    where_fmt(ctx, path, out, n);
}

/* ---------------------------------------------------------------- lists */

struct strvec {
    char **v; /* NULL-terminated */
    size_t n, cap;
};

static int strvec_push(struct strvec *sv, const char *s, struct cap_err *err)
{
    if (sv->n + 2 > sv->cap) {
        size_t ncap = sv->cap ? sv->cap * 2 : 8;
        char **nv = realloc(sv->v, ncap * sizeof *nv);
        if (!nv) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            return -1;
        }
        sv->v = nv;
        sv->cap = ncap;
    }
    char *d = xstrdup(s, err);
    if (!d)
        return -1;
    sv->v[sv->n++] = d;
    sv->v[sv->n] = NULL;
    return 0;
}

static void strvec_free(struct strvec *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        free(sv->v[i]);
    free(sv->v);
    memset(sv, 0, sizeof *sv);
}

/* Where the count of a string-list key (network.deny, network.dns_servers) goes. */
static size_t *field_count(struct cap_config *c, const struct key_def *k)
{
    return k->type == KT_DNS ? &c->network_dns_servers_n : &c->network_deny_n;
}

/* Frees the string list of key k (network.deny, network.dns_servers) and leaves it NULL. */
static void strlist_field_free(struct cap_config *c, const struct key_def *k)
{
    char ***v = (char ***)((char *)c + k->off);
    size_t *n = field_count(c, k);
    for (size_t i = 0; *v && i < *n; i++)
        free((*v)[i]);
    free(*v);
    *v = NULL;
    *n = 0;
}

/* Replaces the string list of key k with sv (taken over; sv is left empty). */
static int strlist_replace(struct cap_config *c, const struct key_def *k, struct strvec *sv,
                           struct cap_err *err)
{
    if (!sv->v) {
        sv->v = calloc(1, sizeof *sv->v);
        if (!sv->v) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            return -1;
        }
    }
    strlist_field_free(c, k);
    *(char ***)((char *)c + k->off) = sv->v;
    *field_count(c, k) = sv->n;
    memset(sv, 0, sizeof *sv);
    return 0;
}

static int deny_push(struct strvec *sv, const char *v, size_t vlen, const char *where,
                     struct cap_err *err)
{
    const char *why = NULL;
    char canon[INET6_ADDRSTRLEN + 8];
    if (memchr(v, '\0', vlen) || check_cidr(v, canon, sizeof canon, &why) != 0)
        return fail_value(err, where, NULL, v, vlen, why ? why : "contains a NUL byte",
                          "an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8");
    return strvec_push(sv, canon, err);
}

#define DNS_ALLOWED "IP, IP:PORT or [IPv6]:PORT, such as 10.0.0.53 or [fd00::53]:5353"

/* Checks a DNS server entry (cap_dns_server_parse) and appends its canonical form. The message
 * is the parser's, which names the value, after where and before the forms allowed. */
static int dns_push(struct strvec *sv, const char *v, size_t vlen, const char *where,
                    struct cap_err *err)
{
    if (memchr(v, '\0', vlen)) {
        char q[96];
        cap_err_set(err, CAP_E_INVALID,
                    "%s: dns server \"%s\": contains a NUL byte (allowed " DNS_ALLOWED ")", where,
                    cap_err_quote(q, sizeof q, v, vlen));
        return -1;
    }
    if (sv->n >= CAP_DNS_SERVERS_MAX) {
        cap_err_set(err, CAP_E_INVALID, "%s: more than %d dns servers", where, CAP_DNS_SERVERS_MAX);
        return -1;
    }
    struct cap_dns_server d;
    struct cap_err perr = {0};
    if (cap_dns_server_parse(v, &d, &perr) != 0) {
        cap_err_set(err, perr.code, "%s: %s (allowed " DNS_ALLOWED ")", where, perr.msg);
        return -1;
    }
    char canon[CAP_DNS_SERVER_LEN_MAX + 1];
    if (cap_dns_server_format(&d, canon, sizeof canon) != 0) {
        cap_err_set(err, CAP_E_INVALID, "%s: dns server: cannot write its canonical form", where);
        return -1;
    }
    return strvec_push(sv, canon, err);
}

/* Checks one entry of a string-list key and appends its canonical form to sv. */
static int list_push(const struct key_def *k, struct strvec *sv, const char *v, size_t vlen,
                     const char *where, struct cap_err *err)
{
    if (k->type == KT_DNS)
        return dns_push(sv, v, vlen, where, err);
    return deny_push(sv, v, vlen, where, err);
}

/* ---------------------------------------------------------------- one value from outside */

static void free_field(struct cap_config *c, const struct key_def *k)
{
    if (k->type == KT_CIDRS || k->type == KT_DNS) {
        strlist_field_free(c, k);
    } else if (k->type == KT_CTLOGS) {
        cap_ct_logs_free(c->ct_logs, c->ct_logs_n);
        c->ct_logs = NULL;
        c->ct_logs_n = 0;
    } else if (k->type == KT_WEBHOOKS) {
        cap_webhooks_free(c->notify_webhooks, c->notify_webhooks_n);
        c->notify_webhooks = NULL;
        c->notify_webhooks_n = 0;
    } else if (k->type <= KT_PATH) {
        char **f = field_str(c, k);
        free(*f);
        *f = NULL;
    }
}

static bool is_printable_word(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* HOST:PORT, [V6]:PORT or :PORT. */
static bool is_listen_addr(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || !is_printable_word(s))
        return false;
    const char *port = colon + 1;
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5)
        return false;
    long pv = 0;
    for (const char *p = port; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        pv = pv * 10 + (*p - '0');
    }
    if (pv > 65535)
        return false;
    size_t hlen = (size_t)(colon - s);
    if (hlen > 0 && s[0] == '[')
        return s[hlen - 1] == ']' && hlen > 2;
    return memchr(s, ':', hlen) == NULL;
}

/* Parses a comma-separated list into sv: items are trimmed, empty items skipped. */
static int split_csv(const char *v, struct strvec *sv, struct cap_err *err)
{
    const char *p = v;
    while (*p) {
        const char *e = strchr(p, ',');
        if (!e)
            e = p + strlen(p);
        const char *a = p, *b = e;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            b--;
        if (b > a) {
            char *item = xstrndup(a, (size_t)(b - a), err);
            if (!item || strvec_push(sv, item, err) != 0) {
                free(item);
                return -1;
            }
            free(item);
        }
        p = *e ? e + 1 : e;
    }
    return 0;
}

/* Sets key k from the text v (vlen bytes; v[vlen] is '\0'). Lists take comma-separated text. */
static int set_value(struct loader *L, int ki, const char *v, size_t vlen, const struct origin *o,
                     struct cap_err *err)
{
    const struct key_def *k = &keys[ki];
    struct cap_config *c = &L->cfg;
    char where[WHERE_MAX];
    where_fmt(o, k->key, where, sizeof where);
    if (memchr(v, '\0', vlen))
        return fail_value(err, where, k, v, vlen, "contains a NUL byte", "text without NUL bytes");
    char allowed[128];
    int64_t n = 0;
    bool b = false;
    int rc;
    switch (k->type) {
    case KT_PG_URL:
        if (!(strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0 ||
              strchr(v, '=')))
            return fail_value(err, where, k, v, vlen, "is not a PostgreSQL connection string",
                              "a postgresql:// URL or a libpq keyword string");
        {
            /* libpq's own parse error quotes the offending part, which may be the password:
             * check here and report it without libpq's words. */
            char *perr = NULL;
            PQconninfoOption *opts = PQconninfoParse(v, &perr);
            if (perr)
                PQfreemem(perr);
            if (!opts)
                return fail_value(err, where, k, v, vlen,
                                  "does not parse as a connection string (check the "
                                  "percent-encoding of user and password)",
                                  "a postgresql:// URL or a libpq keyword string");
            PQconninfoFree(opts);
        }
        break;
    case KT_REDIS_URL:
        /* rediss:// is refused here, as by common/redis.c: hiredis 0.14 has no TLS. */
        if (!((strncmp(v, "redis://", 8) == 0 && v[8]) || (strncmp(v, "unix://", 7) == 0 && v[7])))
            return fail_value(err, where, k, v, vlen,
                              strncmp(v, "rediss://", 9) == 0
                                  ? "uses TLS, which is not supported (use a TLS-terminating proxy)"
                                  : "is not a Redis URL",
                              "redis://[:password@]host[:port][/db] or unix://path");
        break;
    case KT_NAME:
        if (vlen == 0 || vlen > NAME_MAX_LEN || !is_printable_word(v))
            return fail_value(err, where, k, v, vlen, "is not a valid name",
                              "1-256 printable characters without spaces");
        break;
    case KT_LISTEN:
        if (!(vlen == 0 || strcmp(v, "off") == 0 || is_listen_addr(v)))
            return fail_value(err, where, k, v, vlen, "is not a listen address",
                              "HOST:PORT such as 127.0.0.1:9102, \"off\", or \"\" for the "
                              "program's default");
        break;
    case KT_HTTP_URL:
        if (!((strncmp(v, "https://", 8) == 0 && v[8] && v[8] != '/') ||
              (strncmp(v, "http://", 7) == 0 && v[7] && v[7] != '/')) ||
            !is_printable_word(v))
            return fail_value(err, where, k, v, vlen, "is not an http:// or https:// URL",
                              "a URL such as https://www.gstatic.com/ct/log_list/v3/log_list.json");
        break;
    case KT_PATH:
        if (vlen == 0)
            return fail_value(err, where, k, v, vlen, "is empty", "a file path");
        break;
    case KT_INT:
    case KT_I64:
        snprintf(allowed, sizeof allowed, "%lld-%lld", (long long)k->min, (long long)k->max);
        rc = parse_i64(v, &n);
        if (rc == -1)
            return fail_value(err, where, k, v, vlen, "is not an integer", allowed);
        if (rc != 0 || n < k->min || n > k->max)
            return fail_value(err, where, k, v, vlen, "is out of range", allowed);
        if (k->type == KT_INT)
            *(int *)((char *)c + k->off) = (int)n;
        else
            *(int64_t *)((char *)c + k->off) = n;
        return 0;
    case KT_DUR: {
        char lo[32], hi[32];
        fmt_duration(k->min, lo, sizeof lo);
        fmt_duration(k->max, hi, sizeof hi);
        snprintf(allowed, sizeof allowed, "%s-%s, as 500ms, 5s, 1m, 2h, 1d or bare seconds", lo,
                 hi);
        if (cap_config_parse_duration_ms(v, &n) != 0)
            return fail_value(err, where, k, v, vlen, "is not a duration", allowed);
        if (n < k->min || n > k->max)
            return fail_value(err, where, k, v, vlen, "is out of range", allowed);
        *(int64_t *)((char *)c + k->off) = n;
        return 0;
    }
    case KT_BOOL:
        if (parse_bool(v, &b) != 0)
            return fail_value(err, where, k, v, vlen, "is not a boolean",
                              "true, false, yes, no, on, off, 1, 0");
        *(bool *)((char *)c + k->off) = b;
        return 0;
    case KT_LEVEL: {
        enum cap_log_level lv;
        if (cap_log_parse_level(v, &lv) != 0)
            return fail_value(err, where, k, v, vlen, "is not a log level",
                              "debug, info, warn, error");
        c->logging_level = lv;
        return 0;
    }
    case KT_FORMAT: {
        enum cap_log_format fm;
        if (cap_log_parse_format(v, &fm) != 0)
            return fail_value(err, where, k, v, vlen, "is not a log format", "json, text, auto");
        c->logging_format = fm;
        return 0;
    }
    case KT_CIDRS:
    case KT_DNS: {
        struct strvec raw = {0}, sv = {0};
        if (split_csv(v, &raw, err) != 0)
            goto cidr_fail;
        for (size_t i = 0; i < raw.n; i++) {
            char path[64];
            snprintf(path, sizeof path, "%s[%zu]", k->key, i);
            where_fmt(o, path, where, sizeof where);
            if (list_push(k, &sv, raw.v[i], strlen(raw.v[i]), where, err) != 0)
                goto cidr_fail;
        }
        strvec_free(&raw);
        return strlist_replace(c, k, &sv, err);
    cidr_fail:
        strvec_free(&raw);
        strvec_free(&sv);
        return -1;
    }
    case KT_WEBHOOKS: {
        /* The environment's form: URLs, each a webhook named webhook-N that gets everything
         * as JSON (the file form has the filters). */
        struct strvec raw = {0};
        struct cap_webhook *wv = NULL;
        size_t wn = 0;
        if (split_csv(v, &raw, err) != 0)
            goto hooks_fail;
        if (raw.n && !(wv = calloc(raw.n, sizeof *wv))) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            goto hooks_fail;
        }
        for (size_t i = 0; i < raw.n; i++, wn++) {
            char path[64], name[32];
            snprintf(path, sizeof path, "%s[%zu]", k->key, i);
            where_fmt(o, path, where, sizeof where);
            snprintf(name, sizeof name, "webhook-%zu", i + 1);
            if (cap_webhook_set(&wv[i], "name", name, strlen(name), where, err) != 0 ||
                cap_webhook_set(&wv[i], "url", raw.v[i], strlen(raw.v[i]), where, err) != 0 ||
                cap_webhook_finish(&wv[i], where, err) != 0) {
                wn++;
                goto hooks_fail;
            }
        }
        where_fmt(o, k->key, where, sizeof where);
        if (cap_webhooks_check(wv, wn, where, err) != 0)
            goto hooks_fail;
        strvec_free(&raw);
        free_field(c, k);
        c->notify_webhooks = wv;
        c->notify_webhooks_n = wn;
        return 0;
    hooks_fail:
        strvec_free(&raw);
        cap_webhooks_free(wv, wn);
        return -1;
    }
    case KT_CTLOGS: {
        struct strvec raw = {0};
        struct cap_ct_loglist lv = {0};
        struct cap_ct_log l = {0};
        if (split_csv(v, &raw, err) != 0)
            goto logs_fail;
        for (size_t i = 0; i < raw.n; i++) {
            char path[64];
            snprintf(path, sizeof path, "%s[%zu]", k->key, i);
            if (!(l.url = xstrdup(raw.v[i], err)) || !(l.protocol = xstrdup("auto", err)))
                goto logs_fail;
            if (cap_ct_log_check(&l, path, origin_where_cb, o, err) != 0 ||
                cap_ct_loglist_push(&lv, &l, err) != 0)
                goto logs_fail;
        }
        strvec_free(&raw);
        free_field(c, k);
        c->ct_logs = lv.v;
        c->ct_logs_n = lv.n;
        return 0;
    logs_fail:
        cap_ct_log_clear(&l);
        strvec_free(&raw);
        cap_ct_loglist_free(&lv);
        return -1;
    }
    }
    /* The string kinds: validated above, stored here. */
    char *d = xstrndup(v, vlen, err);
    if (!d)
        return -1;
    char **f = field_str(c, k);
    free(*f);
    *f = d;
    return 0;
}

/* ---------------------------------------------------------------- defaults and cleanup */

void cap_config_cleanup(struct cap_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < NKEYS; i++)
        free_field(cfg, &keys[i]);
    memset(cfg, 0, sizeof *cfg);
}

static int set_defaults(struct cap_config *c, struct cap_err *err)
{
    memset(c, 0, sizeof *c);
    if (!(c->database_url = xstrdup("postgresql://localhost/certautopilot", err)) ||
        !(c->redis_url = xstrdup("redis://127.0.0.1:6379/0", err)) ||
        !(c->redis_stream = xstrdup("cap:discovery", err)) ||
        !(c->redis_group = xstrdup("cap-workers", err)) ||
        !(c->redis_dead_letter_stream = xstrdup("cap:discovery:dead", err)) ||
        !(c->telemetry_metrics_listen = xstrdup("", err)) ||
        !(c->network_deny = calloc(1, sizeof *c->network_deny)) ||
        !(c->network_dns_servers = calloc(1, sizeof *c->network_dns_servers))) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    c->logging_level = CAP_LOG_INFO;
    c->logging_format = CAP_LOG_AUTO;
    c->scheduler_tick_ms = 5000;
    c->scheduler_requeue_after_ms = 5 * 60 * 1000;
    c->scheduler_batch = 500;
    c->retention_observations_ms = 90LL * 86400 * 1000;
    c->retention_runs_ms = 90LL * 86400 * 1000;
    c->worker_max_concurrent_discovery = 256;
    c->worker_max_jobs = 16;
    c->worker_reclaim_idle_ms = 60000;
    c->worker_max_attempts = 5;
    c->worker_drain_grace_ms = 25000;
    c->worker_heartbeat_ms = 0; /* reclaim_idle / 4 unless given; set when the load finishes */
    c->worker_noop_executor = false;
    c->database_prepared_statements = true;
    c->network_allow_loopback = false;
    c->scan_max_targets = 1048576;
    c->scan_expiring_days = 14;
    c->scan_max_pending_connects = 8192;
    c->scan_connect_rate = 2000;
    c->scan_shard_targets = 65536;
    c->scan_shard_size = 16384;
    c->ct_run_budget = 1000000;
    c->ct_log_list_refresh_ms = 86400LL * 1000;
    c->retention_notifications_ms = 7LL * 86400 * 1000;
    c->ct_max_requests_per_second = 10;
    return 0;
}

/* ---------------------------------------------------------------- files */

/* Reads a whole file of at most max bytes into a NUL-terminated buffer the caller frees. what
 * names the file in messages ("config file x.yaml"). */
static int read_file(const char *path, size_t max, const char *what, char **out, size_t *out_len,
                     struct cap_err *err)
{
    /* O_NONBLOCK: opening a FIFO named by mistake must not hang start-up. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        cap_err_set(err, CAP_E_IO, "%s: cannot open: %s", what, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        cap_err_set(err, CAP_E_IO, "%s: not a regular file", what);
        return -1;
    }
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(f);
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap > max) {
                free(buf);
                fclose(f);
                cap_err_set(err, CAP_E_LIMIT, "%s: larger than %zu bytes", what, max);
                return -1;
            }
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) {
                free(buf);
                fclose(f);
                cap_err_set(err, CAP_E_NOMEM, "out of memory");
                return -1;
            }
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        if (r == 0) {
            if (ferror(f)) {
                int e = errno;
                free(buf);
                fclose(f);
                cap_err_set(err, CAP_E_IO, "%s: cannot read: %s", what, strerror(e));
                return -1;
            }
            break;
        }
        len += r;
    }
    fclose(f);
    if (len > max) {
        free(buf);
        cap_err_set(err, CAP_E_LIMIT, "%s: larger than %zu bytes", what, max);
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

/* ---------------------------------------------------------------- environment */

static const char *env_get(char *const *envp, const char *name)
{
    size_t nl = strlen(name);
    for (; envp && *envp; envp++)
        if (strncmp(*envp, name, nl) == 0 && (*envp)[nl] == '=')
            return *envp + nl + 1;
    return NULL;
}

static bool env_known(const char *name, size_t nlen)
{
    char en[96];
    if (nlen == strlen(ENV_CONFIG) && strncmp(name, ENV_CONFIG, nlen) == 0)
        return true;
    for (size_t i = 0; i < NKEYS; i++) {
        env_name(keys[i].key, en, sizeof en);
        size_t el = strlen(en);
        if (nlen == el && strncmp(name, en, nlen) == 0)
            return true;
        if (keys[i].secret && nlen == el + 5 && strncmp(name, en, el) == 0 &&
            strncmp(name + el, "_FILE", 5) == 0)
            return true;
    }
    return false;
}

static int load_env(struct loader *L, char *const *envp, struct cap_err *err)
{
    char en[96], fen[112];
    for (size_t i = 0; i < NKEYS; i++) {
        env_name(keys[i].key, en, sizeof en);
        const char *v = env_get(envp, en);
        struct origin o = {ORIG_ENV, en, 0, 0};
        if (!v && keys[i].secret) {
            /* The variable itself wins over its _FILE variant. */
            snprintf(fen, sizeof fen, "%s_FILE", en);
            const char *path = env_get(envp, fen);
            if (path) {
                char what[WHERE_MAX + 128], qp[96];
                cap_err_quote(qp, sizeof qp, path, strlen(path));
                snprintf(what, sizeof what, "environment %s: file \"%s\"", fen, qp);
                char *buf = NULL;
                size_t len = 0;
                if (read_file(path, SECRET_FILE_MAX, what, &buf, &len, err) != 0)
                    return -1;
                while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                    buf[--len] = '\0';
                o.name = fen;
                int rc = set_value(L, (int)i, buf, len, &o, err);
                OPENSSL_cleanse(buf, len);
                free(buf);
                if (rc != 0)
                    return -1;
                L->set[i] = true;
            }
            continue;
        }
        if (!v)
            continue;
        if (set_value(L, (int)i, v, strlen(v), &o, err) != 0)
            return -1;
        L->set[i] = true;
    }
    size_t plen = strlen(ENV_PREFIX);
    for (char *const *e = envp; e && *e; e++) {
        if (strncmp(*e, ENV_PREFIX, plen) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t nlen = eq ? (size_t)(eq - *e) : strlen(*e);
        if (env_known(*e, nlen))
            continue;
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(nlen < 127 ? nlen : 127), *e);
        cap_log(CAP_LOG_WARN, "config_unknown_env", CAP_LS("name", name));
    }
    return 0;
}

/* ---------------------------------------------------------------- YAML file */

struct yctx {
    struct loader *L;
    yaml_document_t *doc;
    const char *name; /* quoted file name */
    struct cap_err *err;
};

static const char *node_kind(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a map";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    return "a scalar";
}

/* A plain empty, "~" or "null" scalar: the key keeps its default. */
static bool node_is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static void node_origin(const struct yctx *y, const yaml_node_t *n, struct origin *o)
{
    o->kind = ORIG_FILE;
    o->name = y->name;
    o->line = n->start_mark.line + 1;
    o->col = n->start_mark.column + 1;
}

static int yerr(const struct yctx *y, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records "config file NAME:LINE:COL: <message>" for node n and returns -1. */
static int yerr(const struct yctx *y, const yaml_node_t *n, const char *fmt, ...)
{
    char msg[CAP_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cap_err_set(y->err, CAP_E_INVALID, "config file %s:%zu:%zu: %s", y->name,
                (size_t)n->start_mark.line + 1, (size_t)n->start_mark.column + 1, msg);
    return -1;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Reports an unknown key, naming the closest known key when one is near. */
static int unknown_key(const struct yctx *y, const yaml_node_t *n, const char *key, size_t keylen)
{
    char q[96];
    cap_err_quote(q, sizeof q, key, keylen);
    const char *best = NULL;
    size_t bestd = 3;
    if (strlen(key) == keylen) {
        for (size_t i = 0; i < NKEYS; i++) {
            size_t d = edit_distance(key, keys[i].key);
            if (d < bestd) {
                bestd = d;
                best = keys[i].key;
            }
        }
        for (size_t i = 0; i < NSECTIONS; i++) {
            size_t d = edit_distance(key, sections[i]);
            if (d < bestd && d < strlen(sections[i]) / 2) {
                bestd = d;
                best = sections[i];
            }
        }
    }
    if (best)
        return yerr(y, n, "unknown key \"%s\" (did you mean \"%s\"?)", q, best);
    return yerr(y, n, "unknown key \"%s\"", q);
}

static yaml_node_t *ynode(const struct yctx *y, int id)
{
    return yaml_document_get_node(y->doc, id);
}

/* A scalar value of a ct.logs entry into *dst (NULL scalar leaves it unset). */
static int ct_field_str(const struct yctx *y, const yaml_node_t *v, const char *path, char **dst)
{
    if (v->type != YAML_SCALAR_NODE)
        return yerr(y, v, "key \"%s\": expected a scalar, got %s", path, node_kind(v));
    if (node_is_null(v))
        return 0;
    const char *s = (const char *)v->data.scalar.value;
    size_t len = v->data.scalar.length;
    if (memchr(s, '\0', len)) {
        char where[WHERE_MAX];
        struct origin o;
        node_origin(y, v, &o);
        where_fmt(&o, path, where, sizeof where);
        return fail_value(y->err, where, NULL, s, len, "contains a NUL byte",
                          "text without NUL bytes");
    }
    char *d = xstrndup(s, len, y->err);
    if (!d)
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

static int yaml_ct_log(const struct yctx *y, const yaml_node_t *item, size_t idx,
                       struct cap_ct_loglist *lv)
{
    char path[64];
    snprintf(path, sizeof path, "ct.logs[%zu]", idx);
    struct origin o;
    node_origin(y, item, &o);
    struct cap_ct_log l = {0};
    if (item->type == YAML_SCALAR_NODE && !node_is_null(item)) {
        /* A bare URL, as in the environment: protocol found by probing. */
        if (ct_field_str(y, item, path, &l.url) != 0 || !(l.protocol = xstrdup("auto", y->err)))
            goto fail;
    } else if (item->type == YAML_MAPPING_NODE) {
        bool seen[6] = {false};
        static const char *const fields[] = {"url",    "protocol",    "key",
                                             "log_id", "description", "mmd"};
        for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top;
             p++) {
            yaml_node_t *kn = ynode(y, p->key), *vn = ynode(y, p->value);
            if (!kn || !vn)
                continue;
            if (kn->type != YAML_SCALAR_NODE) {
                yerr(y, kn, "key \"%s\": a key must be a scalar, got %s", path, node_kind(kn));
                goto fail;
            }
            const char *kname = (const char *)kn->data.scalar.value;
            int f = -1;
            for (int i = 0; i < 6; i++)
                if (strlen(kname) == kn->data.scalar.length && strcmp(kname, fields[i]) == 0)
                    f = i;
            char sub[192], q[96];
            cap_err_quote(q, sizeof q, kname, kn->data.scalar.length);
            snprintf(sub, sizeof sub, "%s.%s", path, q);
            if (f < 0) {
                yerr(y, kn,
                     "unknown key \"%s\" (allowed url, protocol, key, log_id, description, "
                     "mmd)",
                     sub);
                goto fail;
            }
            if (seen[f]) {
                yerr(y, kn, "duplicate key \"%s\"", sub);
                goto fail;
            }
            seen[f] = true;
            char **dst[5] = {&l.url, &l.protocol, &l.key_b64, &l.log_id_b64, &l.description};
            if (f < 5) {
                if (ct_field_str(y, vn, sub, dst[f]) != 0)
                    goto fail;
                continue;
            }
            char *mmd = NULL;
            if (ct_field_str(y, vn, sub, &mmd) != 0)
                goto fail;
            if (mmd) {
                int64_t ms = 0;
                char where[WHERE_MAX];
                struct origin vo;
                node_origin(y, vn, &vo);
                where_fmt(&vo, sub, where, sizeof where);
                if (cap_config_parse_duration_ms(mmd, &ms) != 0 || ms < 1000 || ms > DUR_MAX_MS ||
                    ms % 1000 != 0) {
                    fail_value(y->err, where, NULL, mmd, strlen(mmd),
                               "is not a maximum merge delay",
                               "whole seconds 1s-365d, as 24h or 86400");
                    free(mmd);
                    goto fail;
                }
                l.mmd_s = ms / 1000;
                free(mmd);
            }
        }
    } else {
        yerr(y, item,
             "key \"%s\": expected a map with url, protocol, key, log_id, description, "
             "mmd, got %s",
             path, node_kind(item));
        goto fail;
    }
    if (cap_ct_log_check(&l, path, origin_where_cb, &o, y->err) != 0 ||
        cap_ct_loglist_push(lv, &l, y->err) != 0)
        goto fail;
    return 0;
fail:
    cap_ct_log_clear(&l);
    return -1;
}

/* One entry of notify.webhooks: a map of scalars (kinds and sources may be lists). */
static int yaml_webhook(const struct yctx *y, const yaml_node_t *item, size_t idx,
                        struct cap_webhook *w)
{
    char path[64], where[WHERE_MAX + 64];
    snprintf(path, sizeof path, "notify.webhooks[%zu]", idx);
    struct origin o;
    node_origin(y, item, &o);
    if (item->type != YAML_MAPPING_NODE)
        return yerr(y, item,
                    "key \"%s\": expected a map with name, url, min_severity, kinds, sources, "
                    "format, got %s",
                    path, node_is_null(item) ? "null" : node_kind(item));
    char seen[16][32];
    size_t nseen = 0;
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = ynode(y, p->key), *vn = ynode(y, p->value);
        if (!kn || !vn)
            continue;
        if (kn->type != YAML_SCALAR_NODE)
            return yerr(y, kn, "key \"%s\": a key must be a scalar, got %s", path, node_kind(kn));
        char field[32], q[96], sub[192];
        size_t fl = kn->data.scalar.length;
        snprintf(field, sizeof field, "%.*s", (int)(fl < 31 ? fl : 31),
                 (const char *)kn->data.scalar.value);
        snprintf(sub, sizeof sub, "%s.%s", path,
                 cap_err_quote(q, sizeof q, (const char *)kn->data.scalar.value, fl));
        for (size_t s = 0; s < nseen; s++)
            if (strcmp(seen[s], field) == 0)
                return yerr(y, kn, "duplicate key \"%s\"", sub);
        if (nseen < sizeof seen / sizeof seen[0])
            snprintf(seen[nseen++], sizeof seen[0], "%s", field);
        bool list_ok = strcmp(field, "kinds") == 0 || strcmp(field, "sources") == 0;
        const yaml_node_t *one = vn;
        yaml_node_item_t *it = NULL, *end = NULL;
        if (vn->type == YAML_SEQUENCE_NODE && list_ok) {
            it = vn->data.sequence.items.start;
            end = vn->data.sequence.items.top;
            one = it < end ? ynode(y, *it) : NULL;
        }
        for (; one; one = (it && ++it < end) ? ynode(y, *it) : NULL) {
            if (one->type != YAML_SCALAR_NODE)
                return yerr(y, one, "key \"%s\": expected a scalar%s, got %s", sub,
                            list_ok ? " or a list of scalars" : "", node_kind(one));
            node_origin(y, one, &o);
            where_fmt(&o, sub, where, sizeof where);
            if (!node_is_null(one) &&
                cap_webhook_set(w, field, (const char *)one->data.scalar.value,
                                one->data.scalar.length, where, y->err) != 0)
                return -1;
            if (!it)
                break;
        }
    }
    node_origin(y, item, &o);
    where_fmt(&o, path, where, sizeof where);
    return cap_webhook_finish(w, where, y->err);
}

static int yaml_value(const struct yctx *y, int ki, const yaml_node_t *v)
{
    const struct key_def *k = &keys[ki];
    struct loader *L = y->L;
    if (k->type == KT_WEBHOOKS) {
        if (!node_is_null(v) && v->type != YAML_SEQUENCE_NODE)
            return yerr(y, v, "key \"%s\": expected a list, got %s", k->key, node_kind(v));
        size_t cap = 0, n = 0;
        struct cap_webhook *wv = NULL;
        if (v->type == YAML_SEQUENCE_NODE) {
            cap = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            if (cap > CAP_NOTIFY_WEBHOOKS_MAX)
                return yerr(y, v, "key \"%s\": %zu webhooks (allowed at most %d)", k->key, cap,
                            CAP_NOTIFY_WEBHOOKS_MAX);
            if (cap && !(wv = calloc(cap, sizeof *wv))) {
                cap_err_set(y->err, CAP_E_NOMEM, "out of memory");
                return -1;
            }
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                yaml_node_t *in = ynode(y, *it);
                if (!in)
                    continue;
                if (yaml_webhook(y, in, n, &wv[n]) != 0) {
                    cap_webhooks_free(wv, n + 1);
                    return -1;
                }
                n++;
            }
        }
        char where[WHERE_MAX];
        struct origin o;
        node_origin(y, v, &o);
        where_fmt(&o, k->key, where, sizeof where);
        if (cap_webhooks_check(wv, n, where, y->err) != 0) {
            cap_webhooks_free(wv, n);
            return -1;
        }
        free_field(&L->cfg, k);
        L->cfg.notify_webhooks = wv;
        L->cfg.notify_webhooks_n = n;
        return 0;
    }
    if (k->type == KT_CIDRS || k->type == KT_DNS || k->type == KT_CTLOGS) {
        if (!node_is_null(v) && v->type != YAML_SEQUENCE_NODE)
            return yerr(y, v, "key \"%s\": expected a list, got %s", k->key, node_kind(v));
        struct strvec sv = {0};
        struct cap_ct_loglist lv = {0};
        size_t idx = 0;
        if (v->type == YAML_SEQUENCE_NODE) {
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++, idx++) {
                yaml_node_t *in = ynode(y, *it);
                if (!in)
                    continue;
                if (k->type == KT_CTLOGS) {
                    if (yaml_ct_log(y, in, idx, &lv) != 0)
                        goto list_fail;
                    continue;
                }
                char path[64];
                snprintf(path, sizeof path, "%s[%zu]", k->key, idx);
                if (in->type != YAML_SCALAR_NODE || node_is_null(in)) {
                    yerr(y, in, "key \"%s\": expected %s, got %s", path,
                         k->type == KT_DNS ? "a DNS server address" : "a CIDR",
                         node_is_null(in) ? "null" : node_kind(in));
                    goto list_fail;
                }
                char where[WHERE_MAX];
                struct origin o;
                node_origin(y, in, &o);
                where_fmt(&o, path, where, sizeof where);
                if (list_push(k, &sv, (const char *)in->data.scalar.value, in->data.scalar.length,
                              where, y->err) != 0)
                    goto list_fail;
            }
        }
        if (k->type != KT_CTLOGS)
            return strlist_replace(&L->cfg, k, &sv, y->err);
        free_field(&L->cfg, k);
        L->cfg.ct_logs = lv.v;
        L->cfg.ct_logs_n = lv.n;
        return 0;
    list_fail:
        strvec_free(&sv);
        cap_ct_loglist_free(&lv);
        return -1;
    }
    if (v->type != YAML_SCALAR_NODE)
        return yerr(y, v, "key \"%s\": expected a scalar, got %s", k->key, node_kind(v));
    if (node_is_null(v))
        return 0;
    struct origin o;
    node_origin(y, v, &o);
    return set_value(L, ki, (const char *)v->data.scalar.value, v->data.scalar.length, &o, y->err);
}

static int yaml_section(const struct yctx *y, int si, const yaml_node_t *sec)
{
    const char *sname = sections[si];
    if (node_is_null(sec))
        return 0;
    if (sec->type != YAML_MAPPING_NODE)
        return yerr(y, sec, "key \"%s\": expected a map, got %s", sname, node_kind(sec));
    for (yaml_node_pair_t *p = sec->data.mapping.pairs.start; p < sec->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = ynode(y, p->key), *vn = ynode(y, p->value);
        if (!kn || !vn)
            continue;
        if (kn->type != YAML_SCALAR_NODE)
            return yerr(y, kn, "key in \"%s\": a key must be a scalar, got %s", sname,
                        node_kind(kn));
        char dotted[160];
        int w = snprintf(dotted, sizeof dotted, "%s.%.*s", sname, (int)kn->data.scalar.length,
                         (const char *)kn->data.scalar.value);
        size_t dlen = strlen(sname) + 1 + kn->data.scalar.length;
        int ki = -1;
        if (w > 0 && (size_t)w == dlen && dlen < sizeof dotted)
            ki = key_index(dotted);
        if (ki < 0) {
            char full[160];
            size_t flen = strlen(sname) + 1;
            snprintf(full, sizeof full, "%s.", sname);
            size_t take = kn->data.scalar.length;
            if (take > sizeof full - flen - 1)
                take = sizeof full - flen - 1;
            memcpy(full + flen, kn->data.scalar.value, take);
            full[flen + take] = '\0';
            return unknown_key(y, kn, full, flen + take);
        }
        if (y->L->file_set[ki])
            return yerr(y, kn, "duplicate key \"%s\"", keys[ki].key);
        y->L->file_set[ki] = true;
        if (yaml_value(y, ki, vn) != 0)
            return -1;
        if (!node_is_null(vn))
            y->L->set[ki] = true;
    }
    return 0;
}

static int yaml_root(const struct yctx *y, const yaml_node_t *root)
{
    if (node_is_null(root))
        return 0;
    if (root->type != YAML_MAPPING_NODE)
        return yerr(y, root,
                    "expected a map of sections (database, redis, logging, ...), got "
                    "%s",
                    node_kind(root));
    bool seen[NSECTIONS] = {false};
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = ynode(y, p->key), *vn = ynode(y, p->value);
        if (!kn || !vn)
            continue;
        if (kn->type != YAML_SCALAR_NODE)
            return yerr(y, kn, "a key must be a scalar, got %s", node_kind(kn));
        const char *name = (const char *)kn->data.scalar.value;
        size_t nlen = kn->data.scalar.length;
        int si = -1;
        for (size_t i = 0; i < NSECTIONS; i++)
            if (strlen(name) == nlen && strcmp(name, sections[i]) == 0)
                si = (int)i;
        if (si < 0) {
            if (strlen(name) == nlen && key_index(name) >= 0) {
                const char *dot = strchr(name, '.');
                char sec[32];
                snprintf(sec, sizeof sec, "%.*s", (int)(dot - name), name);
                return yerr(y, kn, "key \"%s\" must be nested under its section \"%s:\"", name,
                            sec);
            }
            return unknown_key(y, kn, name, nlen);
        }
        if (seen[si])
            return yerr(y, kn, "duplicate key \"%s\"", sections[si]);
        seen[si] = true;
        if (yaml_section(y, si, vn) != 0)
            return -1;
    }
    return 0;
}

static int yaml_syntax_error(const yaml_parser_t *p, const char *name, struct cap_err *err)
{
    if (p->error == YAML_MEMORY_ERROR) {
        cap_err_set(err, CAP_E_NOMEM, "config file %s: out of memory while parsing YAML", name);
        return -1;
    }
    if (p->error == YAML_READER_ERROR) {
        cap_err_set(err, CAP_E_INVALID, "config file %s: invalid YAML at byte %zu: %s", name,
                    p->problem_offset, p->problem ? p->problem : "unreadable input");
        return -1;
    }
    if (p->context)
        cap_err_set(err, CAP_E_INVALID,
                    "config file %s:%zu:%zu: invalid YAML: %s (%s at line %zu "
                    "column %zu)",
                    name, (size_t)p->problem_mark.line + 1, (size_t)p->problem_mark.column + 1,
                    p->problem ? p->problem : "syntax error", p->context,
                    (size_t)p->context_mark.line + 1, (size_t)p->context_mark.column + 1);
    else
        cap_err_set(err, CAP_E_INVALID, "config file %s:%zu:%zu: invalid YAML: %s", name,
                    (size_t)p->problem_mark.line + 1, (size_t)p->problem_mark.column + 1,
                    p->problem ? p->problem : "syntax error");
    return -1;
}

/* First pass over the events: refuses nesting deeper than YAML_DEPTH_MAX before the document
 * is built. libyaml's scanner spends time in proportion to the nesting depth on every token, so
 * a megabyte of "[[[[" would otherwise take minutes. */
static int yaml_check_depth(const char *buf, size_t len, const char *name, struct cap_err *err)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    int depth = 0, rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = yaml_syntax_error(&p, name, err);
            break;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (++depth > YAML_DEPTH_MAX) {
                cap_err_set(err, CAP_E_INVALID,
                            "config file %s:%zu:%zu: nested deeper than %d levels (allowed %d)",
                            name, (size_t)ev.start_mark.line + 1, (size_t)ev.start_mark.column + 1,
                            YAML_DEPTH_MAX, YAML_DEPTH_MAX);
                rc = -1;
            }
        } else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        yaml_event_delete(&ev);
        if (rc != 0 || t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    return rc;
}

static int load_yaml(struct loader *L, const char *buf, size_t len, const char *name,
                     struct cap_err *err)
{
    char qname[96];
    cap_err_quote(qname, sizeof qname, name, strlen(name));
    if (len > CONFIG_FILE_MAX) {
        cap_err_set(err, CAP_E_LIMIT, "config file %s: larger than %d bytes", qname,
                    CONFIG_FILE_MAX);
        return -1;
    }
    if (yaml_check_depth(buf, len, qname, err) != 0)
        return -1;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    yaml_document_t doc;
    if (!yaml_parser_load(&p, &doc)) {
        yaml_syntax_error(&p, qname, err);
        yaml_parser_delete(&p);
        return -1;
    }
    struct yctx y = {L, &doc, qname, err};
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root)
        rc = yaml_root(&y, root);
    if (rc == 0 && root) {
        /* One document only: a second one would be silently ignored otherwise. */
        yaml_document_t doc2;
        if (!yaml_parser_load(&p, &doc2)) {
            rc = yaml_syntax_error(&p, qname, err);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
            if (r2) {
                cap_err_set(err, CAP_E_INVALID,
                            "config file %s:%zu:%zu: more than one YAML "
                            "document (allowed one)",
                            qname, (size_t)r2->start_mark.line + 1,
                            (size_t)r2->start_mark.column + 1);
                rc = -1;
            }
            yaml_document_delete(&doc2);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return rc;
}

/* ---------------------------------------------------------------- putting it together */

/* Checks ct.log_list_file, fills the heartbeat default and checks rules across keys. */
static int finish(struct loader *L, struct cap_err *err)
{
    struct cap_config *c = &L->cfg;
    if (c->ct_log_list_file && c->ct_log_list_url) {
        cap_err_set(err, CAP_E_INVALID,
                    "config keys \"ct.log_list_url\" and \"ct.log_list_file\": both are set "
                    "(allowed one of them)");
        return -1;
    }
    if (c->ct_log_list_file) {
        /* Read once here so a wrong path or a broken list stops start-up with its reason; the
         * worker reads it again every ct.log_list_refresh (worker/ct/ct_loglist_refresh.c). */
        char what[WHERE_MAX], qp[96];
        cap_err_quote(qp, sizeof qp, c->ct_log_list_file, strlen(c->ct_log_list_file));
        snprintf(what, sizeof what, "config key \"ct.log_list_file\": file \"%s\"", qp);
        char *buf = NULL;
        size_t len = 0;
        if (read_file(c->ct_log_list_file, CAP_CT_LOGLIST_MAX, what, &buf, &len, err) != 0)
            return -1;
        struct cap_ct_log *logs = NULL;
        size_t n = 0;
        int rc = cap_ct_loglist_parse(buf, len, c->ct_log_list_file, &logs, &n, err);
        free(buf);
        if (rc != 0)
            return -1;
        cap_ct_logs_free(logs, n);
    }
    int hb = key_index("worker.heartbeat");
    if (!L->set[hb]) {
        c->worker_heartbeat_ms = c->worker_reclaim_idle_ms / 4;
        if (c->worker_heartbeat_ms < 1)
            c->worker_heartbeat_ms = 1;
    }
    /* A heartbeat that lands close to reclaim_idle lets another worker take a live run: keep
     * at least two heartbeats inside the idle window. */
    if (c->worker_heartbeat_ms * 2 > c->worker_reclaim_idle_ms) {
        char a[32], b[32];
        fmt_duration(c->worker_heartbeat_ms, a, sizeof a);
        fmt_duration(c->worker_reclaim_idle_ms, b, sizeof b);
        cap_err_set(err, CAP_E_INVALID,
                    "config key \"worker.heartbeat\": value \"%s\" is more than half of "
                    "worker.reclaim_idle \"%s\" (allowed at most half of worker.reclaim_idle)",
                    a, b);
        return -1;
    }
    if (c->scan_shard_size > c->scan_shard_targets) {
        cap_err_set(err, CAP_E_INVALID,
                    "config key \"scan.shard_size\": value %lld is more than scan.shard_targets "
                    "%lld (allowed at most scan.shard_targets)",
                    (long long)c->scan_shard_size, (long long)c->scan_shard_targets);
        return -1;
    }
    if (strcmp(c->redis_stream, c->redis_dead_letter_stream) == 0) {
        char q[96];
        cap_err_quote(q, sizeof q, c->redis_stream, strlen(c->redis_stream));
        cap_err_set(err, CAP_E_INVALID,
                    "config key \"redis.dead_letter_stream\": value \"%s\" is the same as "
                    "redis.stream (allowed another stream name)",
                    q);
        return -1;
    }
    return 0;
}

static int load_all(struct cap_config *cfg, const char *buf, size_t len, const char *name,
                    char *const *envp, struct cap_err *err)
{
    struct loader *L = calloc(1, sizeof *L);
    if (!L) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    int rc = set_defaults(&L->cfg, err);
    if (rc == 0 && buf)
        rc = load_yaml(L, buf, len, name, err);
    if (rc == 0)
        rc = load_env(L, envp, err);
    if (rc == 0)
        rc = finish(L, err);
    if (rc == 0)
        *cfg = L->cfg;
    else
        cap_config_cleanup(&L->cfg);
    free(L);
    return rc;
}

int cap_config_load(struct cap_config *cfg, const char *path, char *const *envp,
                    struct cap_err *err)
{
    if (!envp)
        envp = environ;
    if (!path) {
        path = env_get(envp, ENV_CONFIG);
        if (path && !*path)
            path = NULL;
    }
    if (!path)
        return load_all(cfg, NULL, 0, NULL, envp, err);
    char qname[96], what[128];
    cap_err_quote(qname, sizeof qname, path, strlen(path));
    snprintf(what, sizeof what, "config file %s", qname);
    char *buf = NULL;
    size_t len = 0;
    if (read_file(path, CONFIG_FILE_MAX, what, &buf, &len, err) != 0)
        return -1;
    int rc = load_all(cfg, buf, len, path, envp, err);
    free(buf);
    return rc;
}

int cap_config_load_buffer(struct cap_config *cfg, const char *buf, size_t len, const char *name,
                           char *const *envp, struct cap_err *err)
{
    if (!envp)
        envp = environ;
    return load_all(cfg, buf ? buf : "", buf ? len : 0, name ? name : "(buffer)", envp, err);
}
