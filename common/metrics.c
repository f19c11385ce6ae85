/* Prometheus metrics: a mutex-guarded registry of counters, gauges and histograms with labels,
 * its text exposition (format 0.0.4), and the libmicrohttpd server behind /metrics, /healthz and
 * /readyz. */
#include "common/metrics.h"

#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"

#define NAME_MAX_LEN 128
#define LABELS_MAX 8
#define BUCKETS_MAX 64
/* Longest wait of a /readyz request for the check before it (seconds). */
#define READY_WAIT_S 10

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

static const char *const type_names[] = {"counter", "gauge", "histogram"};

/* One labelled time series of a metric. */
struct series {
    struct series *next;
    char *key;         /* the label values as given: "network_scan,ok"; "" without labels */
    char **values;     /* key split at commas: nlabels entries */
    double value;      /* counter or gauge */
    uint64_t *buckets; /* histogram: observations per bucket (not cumulative) */
    uint64_t count;    /* histogram: observations */
    double sum;        /* histogram: their sum */
};

struct cap_metric {
    struct cap_metric *next;
    enum metric_type type;
    char *name;
    char *help;
    char *labels[LABELS_MAX];
    int nlabels;
    double *bounds; /* histogram upper bounds, ascending, +Inf implied */
    int nbounds;
    struct series *series;
    struct series **series_tail;
    int nseries;
    unsigned warned; /* WARN_* bits: each problem is logged once per metric */
    int inert;       /* the stand-in returned on a registration error: updates do nothing */
};

enum {
    WARN_ARITY = 1,
    WARN_KIND = 2,
    WARN_NEGATIVE = 4,
    WARN_SERIES = 8,
    WARN_NOMEM = 16,
    WARN_NAN = 32
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cap_metric *reg_head;
static struct cap_metric **reg_tail = &reg_head;

/* Returned when a metric cannot be registered (bad name, conflicting definition, no memory), so
 * callers never get NULL; it is never rendered and ignores every update. */
static struct cap_metric inert_metric = {.inert = 1, .name = "inert"};

static const double default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,     2.5,  5,     10,   30,  60};

/* ---------------------------------------------------------------- registration */

static int valid_name(const char *s, int is_label)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!is_label && c == ':');
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return 0;
    }
    if (is_label && n >= 2 && s[0] == '_' && s[1] == '_')
        return 0;
    return 1;
}

static void free_series(struct series *s, int nlabels)
{
    if (!s)
        return;
    if (s->values)
        for (int i = 0; i < nlabels; i++)
            free(s->values[i]);
    free(s->values);
    free(s->buckets);
    free(s->key);
    free(s);
}

static void free_metric(struct cap_metric *m)
{
    if (!m || m->inert)
        return;
    struct series *s = m->series;
    while (s) {
        struct series *next = s->next;
        free_series(s, m->nlabels);
        s = next;
    }
    for (int i = 0; i < m->nlabels; i++)
        free(m->labels[i]);
    free(m->bounds);
    free(m->help);
    free(m->name);
    free(m);
}

/* Splits "a, b,c" into trimmed label names. Returns 0 or -1 with why in msg. */
static int parse_labels(const char *spec, struct cap_metric *m, char *msg, size_t msgn)
{
    if (!spec || !*spec)
        return 0;
    const char *p = spec;
    for (;;) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && p[len - 1] == ' ')
            len--;
        if (m->nlabels == LABELS_MAX) {
            snprintf(msg, msgn, "more than %d labels", LABELS_MAX);
            return -1;
        }
        char *label = strndup(p, len);
        if (!label) {
            snprintf(msg, msgn, "out of memory");
            return -1;
        }
        m->labels[m->nlabels++] = label;
        if (!valid_name(label, 1) || (m->type == METRIC_HISTOGRAM && strcmp(label, "le") == 0)) {
            char q[CAP_ERR_VALUE_MAX * 4 + 8];
            snprintf(msg, msgn, "label name \"%s\" is not allowed",
                     cap_err_quote(q, sizeof q, label, strlen(label)));
            return -1;
        }
        for (int i = 0; i + 1 < m->nlabels; i++) {
            if (strcmp(m->labels[i], label) == 0) {
                snprintf(msg, msgn, "label \"%s\" given twice", label);
                return -1;
            }
        }
        if (!end)
            return 0;
        p = end + 1;
    }
}

static int parse_bounds(const double *buckets, int n, struct cap_metric *m, char *msg, size_t msgn)
{
    if (!buckets) {
        buckets = default_bounds;
        n = (int)(sizeof default_bounds / sizeof default_bounds[0]);
    }
    /* A trailing +Inf is implied; accept it when given. */
    while (n > 0 && isinf(buckets[n - 1]) && buckets[n - 1] > 0)
        n--;
    if (n <= 0 || n > BUCKETS_MAX) {
        snprintf(msg, msgn, "histogram needs 1 to %d finite buckets, got %d", BUCKETS_MAX, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!isfinite(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1]))) {
            snprintf(msg, msgn, "histogram buckets must be finite and strictly ascending (at %d)",
                     i);
            return -1;
        }
    }
    m->bounds = malloc(sizeof(double) * (size_t)n);
    if (!m->bounds) {
        snprintf(msg, msgn, "out of memory");
        return -1;
    }
    memcpy(m->bounds, buckets, sizeof(double) * (size_t)n);
    m->nbounds = n;
    return 0;
}

static int same_definition(const struct cap_metric *a, const struct cap_metric *b)
{
    if (a->type != b->type || a->nlabels != b->nlabels || a->nbounds != b->nbounds)
        return 0;
    for (int i = 0; i < a->nlabels; i++)
        if (strcmp(a->labels[i], b->labels[i]) != 0)
            return 0;
    for (int i = 0; i < a->nbounds; i++)
        if (a->bounds[i] != b->bounds[i])
            return 0;
    return 1;
}

static struct series *new_series(struct cap_metric *m, const char *key);

static struct cap_metric *register_metric(enum metric_type type, const char *name, const char *help,
                                          const char *labels, const double *buckets, int n)
{
    char msg[200] = "";
    struct cap_metric *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(msg, sizeof msg, "out of memory");
        goto fail;
    }
    m->type = type;
    m->series_tail = &m->series;
    if (!name || !valid_name(name, 0)) {
        snprintf(msg, sizeof msg, "invalid metric name");
        goto fail;
    }
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    if (!m->name || !m->help) {
        snprintf(msg, sizeof msg, "out of memory");
        goto fail;
    }
    if (parse_labels(labels, m, msg, sizeof msg) < 0)
        goto fail;
    if (type == METRIC_HISTOGRAM && parse_bounds(buckets, n, m, msg, sizeof msg) < 0)
        goto fail;

    pthread_mutex_lock(&reg_mu);
    for (struct cap_metric *e = reg_head; e; e = e->next) {
        if (strcmp(e->name, name) != 0)
            continue;
        int same = same_definition(e, m);
        pthread_mutex_unlock(&reg_mu);
        free_metric(m);
        if (same)
            return e;
        m = NULL;
        snprintf(msg, sizeof msg, "already registered with another type, labels or buckets");
        goto fail;
    }
    /* A metric without labels has its one series from the start, so it renders as 0. */
    if (m->nlabels == 0 && !new_series(m, "")) {
        pthread_mutex_unlock(&reg_mu);
        snprintf(msg, sizeof msg, "out of memory");
        goto fail;
    }
    *reg_tail = m;
    reg_tail = &m->next;
    pthread_mutex_unlock(&reg_mu);
    return m;

fail:
    free_metric(m);
    {
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        cap_log(CAP_LOG_ERROR, "metric_register_failed",
                CAP_LS("metric", name ? cap_err_quote(q, sizeof q, name, strlen(name)) : "(null)"),
                CAP_LS("err", msg));
    }
    return &inert_metric;
}

struct cap_metric *cap_metrics_counter(const char *name, const char *help, const char *labels)
{
    return register_metric(METRIC_COUNTER, name, help, labels, NULL, 0);
}

struct cap_metric *cap_metrics_gauge(const char *name, const char *help, const char *labels)
{
    return register_metric(METRIC_GAUGE, name, help, labels, NULL, 0);
}

struct cap_metric *cap_metrics_histogram(const char *name, const char *help, const char *labels,
                                         const double *buckets, int n)
{
    return register_metric(METRIC_HISTOGRAM, name, help, labels, buckets, n);
}

/* ---------------------------------------------------------------- updates */

/* Creates the series for key and appends it. Caller holds reg_mu (or owns m exclusively). */
static struct series *new_series(struct cap_metric *m, const char *key)
{
    struct series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->key = strdup(key);
    s->values = calloc(m->nlabels ? (size_t)m->nlabels : 1, sizeof(char *));
    if (!s->key || !s->values)
        goto fail;
    if (m->type == METRIC_HISTOGRAM) {
        s->buckets = calloc((size_t)m->nbounds, sizeof(uint64_t));
        if (!s->buckets)
            goto fail;
    }
    const char *p = key;
    for (int i = 0; i < m->nlabels; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        s->values[i] = strndup(p, len);
        if (!s->values[i])
            goto fail;
        p = end ? end + 1 : p + len;
    }
    *m->series_tail = s;
    m->series_tail = &s->next;
    m->nseries++;
    return s;
fail:
    free_series(s, m->nlabels);
    return NULL;
}

static int count_values(const char *key)
{
    int n = 1;
    for (const char *p = key; *p; p++)
        n += *p == ',';
    return n;
}

/* Finds or creates the series of values. Caller holds reg_mu. On failure sets *warn to the
 * WARN_* bit that explains it. */
static struct series *find_series(struct cap_metric *m, const char *values, unsigned *warn)
{
    const char *key = values ? values : "";
    for (struct series *s = m->series; s; s = s->next)
        if (strcmp(s->key, key) == 0)
            return s;
    int given = (m->nlabels == 0 && !*key) ? 0 : count_values(key);
    if (given != m->nlabels || (m->nlabels > 0 && !values)) {
        *warn = WARN_ARITY;
        return NULL;
    }
    if (m->nseries >= CAP_METRICS_MAX_SERIES) {
        *warn = WARN_SERIES;
        return NULL;
    }
    struct series *s = new_series(m, key);
    if (!s)
        *warn = WARN_NOMEM;
    return s;
}

/* Logs a dropped update, once per metric and problem. Called without reg_mu. */
static void warn_dropped(const char *name, unsigned warn, const char *values, int nlabels)
{
    static const struct {
        unsigned bit;
        const char *why;
    } whys[] = {
        {WARN_ARITY, "wrong number of label values"},
        {WARN_KIND, "operation does not apply to this metric type"},
        {WARN_NEGATIVE, "counters only go up: negative or NaN amount"},
        {WARN_SERIES, "too many series (label values from outside input?)"},
        {WARN_NOMEM, "out of memory"},
        {WARN_NAN, "NaN observation"},
    };
    const char *why = "dropped";
    for (size_t i = 0; i < sizeof whys / sizeof whys[0]; i++)
        if (whys[i].bit == warn)
            why = whys[i].why;
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    cap_log(CAP_LOG_WARN, "metric_update_dropped", CAP_LS("metric", name),
            CAP_LS("values", values ? cap_err_quote(q, sizeof q, values, strlen(values)) : ""),
            CAP_LI("labels", nlabels), CAP_LS("err", why));
}

enum op { OP_ADD, OP_SET, OP_OBSERVE };

static void update(struct cap_metric *m, const char *values, double v, enum op op)
{
    if (!m || m->inert)
        return;
    unsigned warn = 0;
    pthread_mutex_lock(&reg_mu);
    if ((op == OP_SET && m->type != METRIC_GAUGE) ||
        (op == OP_OBSERVE && m->type != METRIC_HISTOGRAM) ||
        (op == OP_ADD && m->type == METRIC_HISTOGRAM)) {
        warn = WARN_KIND;
    } else if (op == OP_ADD && m->type == METRIC_COUNTER && !(v >= 0)) {
        warn = WARN_NEGATIVE;
    } else if (op == OP_OBSERVE && isnan(v)) {
        warn = WARN_NAN;
    } else {
        struct series *s = find_series(m, values, &warn);
        if (s) {
            if (op == OP_ADD) {
                s->value += v;
            } else if (op == OP_SET) {
                s->value = v;
            } else {
                int i = 0;
                while (i < m->nbounds && v > m->bounds[i])
                    i++;
                if (i < m->nbounds)
                    s->buckets[i]++;
                s->count++;
                s->sum += v;
            }
        }
    }
    int log_it = 0;
    if (warn && !(m->warned & warn)) {
        m->warned |= warn;
        log_it = 1;
    }
    pthread_mutex_unlock(&reg_mu);
    if (log_it)
        warn_dropped(m->name, warn, values, m->nlabels);
}

void cap_metric_add(struct cap_metric *m, const char *values, double v)
{
    update(m, values, v, OP_ADD);
}

void cap_metric_set(struct cap_metric *m, const char *values, double v)
{
    update(m, values, v, OP_SET);
}

void cap_metric_observe(struct cap_metric *m, const char *values, double v)
{
    update(m, values, v, OP_OBSERVE);
}

double cap_metric_get(struct cap_metric *m, const char *values)
{
    if (!m || m->inert)
        return 0;
    const char *key = values ? values : "";
    double out = 0;
    pthread_mutex_lock(&reg_mu);
    for (struct series *s = m->series; s; s = s->next) {
        if (strcmp(s->key, key) == 0) {
            out = m->type == METRIC_HISTOGRAM ? (double)s->count : s->value;
            break;
        }
    }
    pthread_mutex_unlock(&reg_mu);
    return out;
}

/* ---------------------------------------------------------------- rendering */

struct buf {
    char *p;
    size_t len, cap;
    int failed;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* Escapes for the exposition format: backslash and newline always, the double quote inside
 * label values only. */
static void buf_put_escaped(struct buf *b, const char *s, int quote)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        if (*s == '\\')
            rep = "\\\\";
        else if (*s == '\n')
            rep = "\\n";
        else if (quote && *s == '"')
            rep = "\\\"";
        if (rep) {
            buf_put(b, run, (size_t)(s - run));
            buf_puts(b, rep);
            run = s + 1;
        }
    }
    buf_put(b, run, (size_t)(s - run));
}

/* Shortest decimal that reads back as v; "+Inf", "-Inf", "NaN" as Prometheus spells them. */
static const char *fmt_double(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "NaN");
    } else if (isinf(v)) {
        snprintf(out, n, v > 0 ? "+Inf" : "-Inf");
    } else {
        snprintf(out, n, "%.15g", v);
        if (strtod(out, NULL) != v)
            snprintf(out, n, "%.17g", v);
    }
    return out;
}

/* Writes name{labels[,le="x"]} value\n. */
static void put_sample(struct buf *b, const struct cap_metric *m, const char *suffix,
                       const struct series *s, const char *le, double value, int integer,
                       uint64_t ivalue)
{
    buf_puts(b, m->name);
    buf_puts(b, suffix);
    if (m->nlabels > 0 || le) {
        buf_puts(b, "{");
        for (int i = 0; i < m->nlabels; i++) {
            if (i > 0)
                buf_puts(b, ",");
            buf_puts(b, m->labels[i]);
            buf_puts(b, "=\"");
            buf_put_escaped(b, s->values[i], 1);
            buf_puts(b, "\"");
        }
        if (le) {
            buf_puts(b, m->nlabels > 0 ? ",le=\"" : "le=\"");
            buf_puts(b, le);
            buf_puts(b, "\"");
        }
        buf_puts(b, "}");
    }
    char num[64];
    buf_puts(b, " ");
    if (integer)
        snprintf(num, sizeof num, "%llu", (unsigned long long)ivalue);
    else
        fmt_double(num, sizeof num, value);
    buf_puts(b, num);
    buf_puts(b, "\n");
}

char *cap_metrics_render(void)
{
    struct buf b = {0};
    buf_puts(&b, "");
    pthread_mutex_lock(&reg_mu);
    for (const struct cap_metric *m = reg_head; m; m = m->next) {
        buf_puts(&b, "# HELP ");
        buf_puts(&b, m->name);
        buf_puts(&b, " ");
        buf_put_escaped(&b, m->help, 0);
        buf_puts(&b, "\n# TYPE ");
        buf_puts(&b, m->name);
        buf_puts(&b, " ");
        buf_puts(&b, type_names[m->type]);
        buf_puts(&b, "\n");
        for (const struct series *s = m->series; s; s = s->next) {
            if (m->type != METRIC_HISTOGRAM) {
                put_sample(&b, m, "", s, NULL, s->value, 0, 0);
                continue;
            }
            uint64_t cum = 0;
            char le[64];
            for (int i = 0; i < m->nbounds; i++) {
                cum += s->buckets[i];
                put_sample(&b, m, "_bucket", s, fmt_double(le, sizeof le, m->bounds[i]), 0, 1, cum);
            }
            put_sample(&b, m, "_bucket", s, "+Inf", 0, 1, s->count);
            put_sample(&b, m, "_sum", s, NULL, s->sum, 0, 0);
            put_sample(&b, m, "_count", s, NULL, 0, 1, s->count);
        }
    }
    pthread_mutex_unlock(&reg_mu);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---------------------------------------------------------------- HTTP server */

static pthread_mutex_t srv_mu = PTHREAD_MUTEX_INITIALIZER;   /* start/stop */
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER; /* one ready call at a time */
static pthread_mutex_t collect_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t mhd_err_mu = PTHREAD_MUTEX_INITIALIZER;
static struct MHD_Daemon *srv_daemon;
static cap_ready_cb srv_ready;
static cap_collect_cb srv_collect;
static void *srv_ud;
static int srv_port;
static char mhd_last_error[160];

static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void mhd_log_cb(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[160];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    pthread_mutex_lock(&mhd_err_mu);
    memcpy(mhd_last_error, line, n + 1);
    pthread_mutex_unlock(&mhd_err_mu);
    cap_log(CAP_LOG_WARN, "metrics_http_error", CAP_LS("err", line));
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *ctype,
                               char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    return respond(c, status, "text/plain; charset=utf-8", (char *)text, strlen(text),
                   MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result serve_readyz(struct MHD_Connection *c)
{
    if (!srv_ready)
        return respond_text(c, MHD_HTTP_OK, "ok\n");
    struct cap_err err;
    cap_err_clear(&err);
    /* Checks run one at a time; a check stuck on a dead server must not pile up every later
     * probe behind it (they would use up the connection limit and starve /healthz). */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += READY_WAIT_S;
    if (pthread_mutex_timedlock(&ready_mu, &until) != 0)
        return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "not ready: the previous readiness check is still running\n");
    int rc = srv_ready(srv_ud, &err);
    pthread_mutex_unlock(&ready_mu);
    if (rc == 0)
        return respond_text(c, MHD_HTTP_OK, "ok\n");
    char text[CAP_ERR_MSG_MAX + 32];
    int n =
        snprintf(text, sizeof text, "not ready: %s\n", err.msg[0] ? err.msg : "no reason given");
    if (n < 0)
        return MHD_NO;
    if ((size_t)n >= sizeof text)
        n = (int)sizeof text - 1;
    return respond(c, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", text, (size_t)n,
                   MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result serve_metrics(struct MHD_Connection *c)
{
    if (srv_collect) {
        pthread_mutex_lock(&collect_mu);
        srv_collect(srv_ud);
        pthread_mutex_unlock(&collect_mu);
    }
    char *text = cap_metrics_render();
    if (!text)
        return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text),
                   MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result handle_cb(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(c);
    if (strcmp(url, "/healthz") == 0)
        return respond_text(c, MHD_HTTP_OK, "ok\n");
    if (strcmp(url, "/readyz") == 0)
        return serve_readyz(c);
    return respond_text(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics, /healthz, /readyz\n");
}

/* Splits "host:port", "[v6]:port" or ":port" into host (empty for every address) and port. */
static int parse_listen(const char *listen, char *host, size_t hostn, int *port,
                        struct cap_err *err)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    cap_err_quote(q, sizeof q, listen, strlen(listen));
    const char *colon;
    size_t hlen;
    const char *hstart = listen;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':') {
            cap_err_set(err, CAP_E_INVALID,
                        "telemetry.metrics_listen \"%s\": expected [ADDRESS]:PORT", q);
            return -1;
        }
        hstart = listen + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) {
            cap_err_set(err, CAP_E_INVALID,
                        "telemetry.metrics_listen \"%s\": expected HOST:PORT, [ADDRESS]:PORT, "
                        ":PORT or off",
                        q);
            return -1;
        }
        hlen = (size_t)(colon - listen);
    }
    if (hlen >= hostn) {
        cap_err_set(err, CAP_E_INVALID, "telemetry.metrics_listen \"%s\": host too long", q);
        return -1;
    }
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535) {
        cap_err_set(err, CAP_E_INVALID,
                    "telemetry.metrics_listen \"%s\": port must be a number from 0 to 65535", q);
        return -1;
    }
    *port = (int)p;
    return 0;
}

int cap_metrics_serve(const char *listen, cap_ready_cb ready, cap_collect_cb collect, void *ud,
                      struct cap_err *err)
{
    if (!listen || !*listen) {
        cap_err_set(err, CAP_E_INVALID, "telemetry.metrics_listen is empty");
        return -1;
    }
    if (strcmp(listen, "off") == 0)
        return 0;
    char host[256];
    int port;
    if (parse_listen(listen, host, sizeof host, &port, err) < 0)
        return -1;

    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    cap_err_quote(q, sizeof q, listen, strlen(listen));
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host[0] ? host : "0.0.0.0", portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        cap_err_set(err, CAP_E_INVALID, "telemetry.metrics_listen \"%s\": cannot resolve: %s", q,
                    gai_strerror(gai));
        if (ai)
            freeaddrinfo(ai);
        return -1;
    }

    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) {
        /* "[::]" means every address, IPv4 included. */
        flags |= strcmp(host, "::") == 0 ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    }

    pthread_mutex_lock(&srv_mu);
    if (srv_daemon) {
        pthread_mutex_unlock(&srv_mu);
        freeaddrinfo(ai);
        cap_err_set(err, CAP_E_INVALID, "metrics server already running on port %d", srv_port);
        return -1;
    }
    srv_ready = ready;
    srv_collect = collect;
    srv_ud = ud;
    pthread_mutex_lock(&mhd_err_mu);
    mhd_last_error[0] = '\0';
    pthread_mutex_unlock(&mhd_err_mu);
    /* Thread per connection: a slow readiness check (Postgres ping) must not hold up /healthz
     * or a scrape. The connection limit and timeout bound what a misbehaving client costs. */
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, handle_cb, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log_cb,
        NULL, MHD_OPTION_SOCK_ADDR, ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    int saved_errno = errno;
    freeaddrinfo(ai);
    if (!d) {
        srv_ready = NULL;
        srv_collect = NULL;
        srv_ud = NULL;
        pthread_mutex_unlock(&srv_mu);
        char why[160];
        pthread_mutex_lock(&mhd_err_mu);
        snprintf(why, sizeof why, "%s", mhd_last_error[0] ? mhd_last_error : strerror(saved_errno));
        pthread_mutex_unlock(&mhd_err_mu);
        cap_err_set(err, CAP_E_IO, "telemetry.metrics_listen \"%s\": cannot listen: %s", q, why);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    srv_port = info ? (int)info->port : port;
    srv_daemon = d;
    pthread_mutex_unlock(&srv_mu);

    struct cap_metric *start_time =
        cap_metrics_gauge("process_start_time_seconds",
                          "Start time of the process since the Unix epoch, seconds.", NULL);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (cap_metric_get(start_time, NULL) == 0)
        cap_metric_set(start_time, NULL, (double)now.tv_sec + (double)now.tv_nsec / 1e9);
    cap_log(CAP_LOG_INFO, "metrics_listening", CAP_LS("listen", listen), CAP_LI("port", srv_port));
    return 0;
}

void cap_metrics_stop(void)
{
    pthread_mutex_lock(&srv_mu);
    struct MHD_Daemon *d = srv_daemon;
    srv_daemon = NULL;
    if (d)
        MHD_stop_daemon(d);
    srv_ready = NULL;
    srv_collect = NULL;
    srv_ud = NULL;
    srv_port = 0;
    pthread_mutex_unlock(&srv_mu);
}

int cap_metrics_port(void)
{
    pthread_mutex_lock(&srv_mu);
    int port = srv_daemon ? srv_port : 0;
    pthread_mutex_unlock(&srv_mu);
    return port;
}
