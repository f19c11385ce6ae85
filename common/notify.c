/* Webhook definitions (checked at load), their filters, and message formatting. Messages are
 * built with json-c, so every string from the database is escaped by the library. */
#include "common/notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/config.h"

#define SECRET_FILE_MAX (1 << 16)
#define TIMEOUT_MAX_MS (5 * 60 * 1000)
#define URL_MAX 1024        /* as CAP_HTTP_URL_MAX */
#define SLACK_TEXT_MAX 2900 /* Slack cuts a section's text at 3000 characters */

/* Kinds of worker/findings.c (a unit test keeps the two lists equal), then the run events. */
static const char *const kinds[] = {"expired",
                                    "revoked",
                                    "self_signed",
                                    "weak_signature",
                                    "weak_key",
                                    "deprecated_tls",
                                    "weak_cipher",
                                    "expiring",
                                    "name_mismatch",
                                    "untrusted",
                                    "drift",
                                    "policy_block",
                                    "unreachable",
                                    "unresolvable",
                                    "tls_error",
                                    "san_case_duplicate",
                                    "pqc_vulnerable",
                                    "ct_new_certificate",
                                    "ct_unexpected_issuer",
                                    "ct_log_misbehaving",
                                    "run_failed",
                                    "run_dead",
                                    NULL};

const char *const *cap_notify_kinds(void)
{
    return kinds;
}

bool cap_notify_kind_known(const char *kind)
{
    for (size_t i = 0; kinds[i]; i++)
        if (strcmp(kinds[i], kind) == 0)
            return true;
    return false;
}

int cap_notify_severity_rank(const char *s)
{
    static const char *const sev[] = {"critical", "high", "medium", "low", "info"};
    for (int i = 0; s && i < 5; i++)
        if (strcmp(s, sev[i]) == 0)
            return i + 1;
    return 0;
}

const char *cap_notify_url_redacted(const char *url, char *out, size_t n)
{
    const char *p = strstr(url, "://");
    if (!p) {
        snprintf(out, n, "<%zu bytes, not a URL>", strlen(url));
        return out;
    }
    const char *host = p + 3;
    const char *at = NULL;
    size_t hl = strcspn(host, "/?#");
    for (size_t i = 0; i < hl; i++)
        if (host[i] == '@')
            at = host + i;
    if (at) {
        hl -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    char q[128];
    char h[160];
    snprintf(h, sizeof h, "%.*s://%.*s", (int)(p - url > 16 ? 16 : p - url), url,
             (int)(hl > 100 ? 100 : hl), host);
    cap_err_quote(q, sizeof q, h, strlen(h));
    snprintf(out, n, "%s%s", q, host[hl] ? "/..." : "");
    return out;
}

static int fail(struct cap_err *err, const char *where, const char *quoted, const char *why,
                const char *allowed)
{
    cap_err_set(err, CAP_E_INVALID, "%s: value \"%s\" %s (allowed %s)", where, quoted, why,
                allowed);
    return -1;
}

static int fail_raw(struct cap_err *err, const char *where, const char *v, size_t vlen,
                    const char *why, const char *allowed)
{
    char q[96];
    cap_err_quote(q, sizeof q, v, vlen);
    return fail(err, where, q, why, allowed);
}

/* Reads a secret file (at most SECRET_FILE_MAX bytes, trailing line ends dropped). */
static char *read_secret(const char *path, const char *where, struct cap_err *err)
{
    char qp[96];
    cap_err_quote(qp, sizeof qp, path, strlen(path));
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        cap_err_set(err, CAP_E_IO, "%s: file \"%s\": cannot open: %s", where, qp, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > SECRET_FILE_MAX) {
        close(fd);
        cap_err_set(err, CAP_E_IO, "%s: file \"%s\": not a regular file of at most %d bytes", where,
                    qp, SECRET_FILE_MAX);
        return NULL;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return NULL;
    }
    size_t len = 0;
    while (len < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        buf[--len] = '\0';
    if (len == 0 || strlen(buf) != len) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        cap_err_set(err, CAP_E_INVALID, "%s: file \"%s\": %s", where, qp,
                    len == 0 ? "is empty" : "contains a NUL byte");
        return NULL;
    }
    return buf;
}

static void free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* Checks an http(s) URL with libcurl's parser and stores it in w->url (taken over). */
static int set_url(struct cap_webhook *w, char *url, const char *where, struct cap_err *err)
{
    char red[200];
    cap_notify_url_redacted(url, red, sizeof red);
    const char *why = NULL;
    size_t len = strlen(url);
    if (len >= URL_MAX)
        why = "is too long";
    for (size_t i = 0; !why && i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            why = "contains a space or a character outside printable ASCII";
    if (!why && strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        why = "is not an http:// or https:// URL";
    if (!why) {
        CURLU *u = curl_url();
        char *host = NULL;
        if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host)
            why = "does not parse as a URL with a host";
        curl_free(host);
        curl_url_cleanup(u);
    }
    if (why) {
        free_secret(url);
        return fail(err, where, red, why, "an http:// or https:// URL shorter than 1024 bytes");
    }
    free_secret(w->url);
    w->url = url;
    return 0;
}

static int list_add(char ***v, size_t *n, const char *s, size_t len, struct cap_err *err)
{
    char **nv = realloc(*v, (*n + 2) * sizeof *nv);
    if (!nv) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    *v = nv;
    if (!(nv[*n] = strndup(s, len))) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    (*n)++;
    nv[*n] = NULL;
    return 0;
}

static bool name_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

/* kinds and sources: each comma-separated item is checked and added. */
static int add_items(struct cap_webhook *w, bool is_kinds, const char *v, size_t vlen,
                     const char *where, struct cap_err *err)
{
    size_t i = 0;
    while (i <= vlen) {
        size_t j = i;
        while (j < vlen && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b > a) {
            char item[128];
            size_t il = b - a;
            if (is_kinds) {
                snprintf(item, sizeof item, "%.*s", (int)(il < 127 ? il : 127), v + a);
                if (il > 127 || !cap_notify_kind_known(item))
                    return fail_raw(err, where, v + a, il, "is not a finding kind",
                                    "a kind of docs/findings.md, run_failed or run_dead");
                if (list_add(&w->kinds, &w->kinds_n, v + a, il, err) != 0)
                    return -1;
            } else {
                if (!name_ok(v + a, il, 128))
                    return fail_raw(err, where, v + a, il, "is not a source name",
                                    "1-128 letters, digits, \"-\", \"_\" or \".\"");
                if (list_add(&w->sources, &w->sources_n, v + a, il, err) != 0)
                    return -1;
            }
        }
        i = j + 1;
    }
    return 0;
}

int cap_webhook_set(struct cap_webhook *w, const char *field, const char *v, size_t vlen,
                    const char *where, struct cap_err *err)
{
    if (memchr(v, '\0', vlen))
        return fail_raw(err, where, v, vlen, "contains a NUL byte", "text without NUL bytes");
    if (strcmp(field, "name") == 0) {
        if (!name_ok(v, vlen, CAP_NOTIFY_NAME_MAX))
            return fail_raw(err, where, v, vlen, "is not a webhook name",
                            "1-64 letters, digits, \"-\", \"_\" or \".\"");
        char *d = strndup(v, vlen);
        if (!d) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            return -1;
        }
        free(w->name);
        w->name = d;
        return 0;
    }
    if (strcmp(field, "url") == 0 || strcmp(field, "url_file") == 0) {
        char *url;
        if (field[3] == '_') {
            char path[4096];
            snprintf(path, sizeof path, "%.*s", (int)(vlen < 4095 ? vlen : 4095), v);
            url = read_secret(path, where, err);
        } else {
            url = strndup(v, vlen);
            if (!url)
                cap_err_set(err, CAP_E_NOMEM, "out of memory");
        }
        if (!url)
            return -1;
        return set_url(w, url, where, err);
    }
    if (strcmp(field, "token") == 0 || strcmp(field, "token_file") == 0) {
        char *tok;
        if (field[5] == '_') {
            char path[4096];
            snprintf(path, sizeof path, "%.*s", (int)(vlen < 4095 ? vlen : 4095), v);
            tok = read_secret(path, where, err);
        } else {
            tok = strndup(v, vlen);
            if (!tok)
                cap_err_set(err, CAP_E_NOMEM, "out of memory");
        }
        if (!tok)
            return -1;
        /* The token goes into a header line: no line breaks or controls may smuggle another. */
        size_t tl = strlen(tok);
        for (const char *c = tok; *c || tl == 0; c++) {
            if (tl == 0 || tl > 4096 || (unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) {
                free_secret(tok);
                cap_err_set(err, CAP_E_INVALID,
                            "%s: value <hidden> is not a token (allowed 1-4096 printable ASCII "
                            "characters)",
                            where);
                return -1;
            }
        }
        free_secret(w->token);
        w->token = tok;
        return 0;
    }
    if (strcmp(field, "min_severity") == 0) {
        char s[16];
        snprintf(s, sizeof s, "%.*s", (int)(vlen < 15 ? vlen : 15), v);
        int r = vlen < 15 ? cap_notify_severity_rank(s) : 0;
        if (r == 0)
            return fail_raw(err, where, v, vlen, "is not a severity",
                            "critical, high, medium, low, info");
        w->min_rank = r;
        return 0;
    }
    if (strcmp(field, "kinds") == 0 || strcmp(field, "sources") == 0)
        return add_items(w, field[0] == 'k', v, vlen, where, err);
    if (strcmp(field, "format") == 0) {
        if (vlen == 4 && memcmp(v, "json", 4) == 0)
            w->format = CAP_NOTIFY_JSON;
        else if (vlen == 5 && memcmp(v, "slack", 5) == 0)
            w->format = CAP_NOTIFY_SLACK;
        else
            return fail_raw(err, where, v, vlen, "is not a message format", "json, slack");
        return 0;
    }
    if (strcmp(field, "timeout") == 0) {
        char s[32];
        int64_t ms = 0;
        snprintf(s, sizeof s, "%.*s", (int)(vlen < 31 ? vlen : 31), v);
        if (vlen > 31 || cap_config_parse_duration_ms(s, &ms) != 0 || ms < 100 ||
            ms > TIMEOUT_MAX_MS)
            return fail_raw(err, where, v, vlen, "is not a timeout", "100ms-5m, as 10s");
        w->timeout_ms = ms;
        return 0;
    }
    char q[96];
    cap_err_set(err, CAP_E_INVALID,
                "%s: unknown key \"%s\" (allowed name, url, url_file, token, token_file, "
                "min_severity, kinds, sources, format, timeout)",
                where, cap_err_quote(q, sizeof q, field, strlen(field)));
    return -1;
}

int cap_webhook_finish(struct cap_webhook *w, const char *where, struct cap_err *err)
{
    if (!w->url) {
        cap_err_set(err, CAP_E_INVALID, "%s: a webhook needs url or url_file", where);
        return -1;
    }
    if (!w->name) {
        cap_err_set(err, CAP_E_INVALID, "%s: a webhook needs a name", where);
        return -1;
    }
    if (w->min_rank == 0)
        w->min_rank = 5;
    if (w->timeout_ms == 0)
        w->timeout_ms = 10000;
    return 0;
}

int cap_webhooks_check(const struct cap_webhook *v, size_t n, const char *where,
                       struct cap_err *err)
{
    if (n > CAP_NOTIFY_WEBHOOKS_MAX) {
        cap_err_set(err, CAP_E_INVALID, "%s: %zu webhooks (allowed at most %d)", where, n,
                    CAP_NOTIFY_WEBHOOKS_MAX);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[i].name, v[j].name) == 0) {
                cap_err_set(err, CAP_E_INVALID,
                            "%s: value \"%s\" is the name of two webhooks (allowed unique names)",
                            where, v[i].name);
                return -1;
            }
    return 0;
}

static void strlist_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

void cap_webhook_cleanup(struct cap_webhook *w)
{
    if (!w)
        return;
    free(w->name);
    free_secret(w->url);
    free_secret(w->token);
    strlist_free(w->kinds, w->kinds_n);
    strlist_free(w->sources, w->sources_n);
    memset(w, 0, sizeof *w);
}

void cap_webhooks_free(struct cap_webhook *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        cap_webhook_cleanup(&v[i]);
    free(v);
}

const struct cap_webhook *cap_notify_find(const struct cap_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->notify_webhooks_n; i++)
        if (strcmp(cfg->notify_webhooks[i].name, name) == 0)
            return &cfg->notify_webhooks[i];
    return NULL;
}

bool cap_notify_wants(const struct cap_webhook *w, const char *kind, const char *severity,
                      const char *source_name)
{
    int r = cap_notify_severity_rank(severity);
    if (r == 0 || r > w->min_rank)
        return false;
    if (w->kinds_n) {
        bool hit = false;
        for (size_t i = 0; i < w->kinds_n && !hit; i++)
            hit = strcmp(w->kinds[i], kind) == 0;
        if (!hit)
            return false;
    }
    if (w->sources_n) {
        bool hit = false;
        for (size_t i = 0; source_name && i < w->sources_n && !hit; i++)
            hit = strcmp(w->sources[i], source_name) == 0;
        if (!hit)
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------- messages */

int cap_notify_key(const struct cap_notify_msg *m, char *out, size_t n)
{
    if (m->n == 0)
        return -1;
    int w;
    if (m->test) {
        w = snprintf(out, n, "cap:test:e%lld", (long long)m->ev[0].id);
    } else if (m->n == 1) {
        const struct cap_notify_event *e = &m->ev[0];
        if (e->finding_id)
            w = snprintf(out, n, "cap:f%lld:%s:e%lld", (long long)e->finding_id, e->event,
                         (long long)e->id);
        else
            w = snprintf(out, n, "cap:r%lld:%s:e%lld", (long long)e->run_id, e->event,
                         (long long)e->id);
    } else {
        int64_t lo = m->ev[0].id, hi = m->ev[0].id;
        for (size_t i = 1; i < m->n; i++) {
            lo = m->ev[i].id < lo ? m->ev[i].id : lo;
            hi = m->ev[i].id > hi ? m->ev[i].id : hi;
        }
        w = snprintf(out, n, "cap:digest:s%lld:r%lld:e%lld-%lld:n%zu", (long long)m->source_id,
                     (long long)m->run_id, (long long)lo, (long long)hi, m->n);
    }
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* A string cut to CAP_NOTIFY_TEXT_MAX bytes (on a UTF-8 boundary), or JSON null. */
static json_object *jstr(const char *s)
{
    if (!s)
        return NULL;
    size_t l = strlen(s);
    if (l > CAP_NOTIFY_TEXT_MAX) {
        l = CAP_NOTIFY_TEXT_MAX;
        while (l > 0 && ((unsigned char)s[l] & 0xc0) == 0x80)
            l--;
    }
    return json_object_new_string_len(s, (int)l);
}

static json_object *jid(int64_t v)
{
    return v ? json_object_new_int64(v) : NULL;
}

/* Order of the listed events: most severe first, then oldest. */
static int by_severity(const void *a, const void *b)
{
    const struct cap_notify_event *x = *(const struct cap_notify_event *const *)a;
    const struct cap_notify_event *y = *(const struct cap_notify_event *const *)b;
    int rx = cap_notify_severity_rank(x->severity), ry = cap_notify_severity_rank(y->severity);
    if (rx != ry)
        return rx - ry;
    return x->id < y->id ? -1 : x->id > y->id;
}

static const char *const event_names[] = {"opened", "escalated", "reopened", "resolved",
                                          "failed", "dead",      "test"};
#define NEVENTS (sizeof event_names / sizeof event_names[0])

/* "critical expired opened: a.example:443" */
static void event_line(const struct cap_notify_event *e, char *out, size_t n)
{
    char subj[CAP_NOTIFY_TEXT_MAX + 1];
    snprintf(subj, sizeof subj, "%s",
             e->subject       ? e->subject
             : e->subject_key ? e->subject_key
                              : "");
    snprintf(out, n, "%s %s %s: %s", e->severity, e->kind, e->event, subj);
}

/* The one-line summary both formats start with. */
static void summary(const char *webhook, const struct cap_notify_msg *m, const size_t *counts,
                    char *out, size_t n)
{
    char src[CAP_NOTIFY_TEXT_MAX + 32] = "";
    if (m->source_name)
        snprintf(src, sizeof src, " from source %.*s", CAP_NOTIFY_TEXT_MAX, m->source_name);
    if (m->test) {
        snprintf(out, n, "CertAutoPilot test message for webhook %s", webhook);
        return;
    }
    if (m->n == 1) {
        char line[CAP_NOTIFY_TEXT_MAX + 128];
        event_line(&m->ev[0], line, sizeof line);
        snprintf(out, n, "CertAutoPilot: %s%s", line, src);
        return;
    }
    char parts[256] = "";
    size_t o = 0;
    for (size_t i = 0; i < NEVENTS; i++) {
        if (!counts[i])
            continue;
        int w = snprintf(parts + o, sizeof parts - o, "%s%zu %s", o ? ", " : "", counts[i],
                         event_names[i]);
        if (w < 0 || (size_t)w >= sizeof parts - o)
            break;
        o += (size_t)w;
    }
    char run[48] = "";
    if (m->run_id)
        snprintf(run, sizeof run, ", run %lld", (long long)m->run_id);
    snprintf(out, n, "CertAutoPilot: %zu changes%s%s: %s", m->n, src, run, parts);
}

static json_object *event_json(const struct cap_notify_event *e, const struct cap_notify_msg *m)
{
    struct cap_notify_msg one = {
        .source_id = m->source_id, .run_id = e->run_id, .ev = e, .n = 1, .test = m->test};
    char key[CAP_NOTIFY_KEY_MAX];
    json_object *o = json_object_new_object();
    if (!o)
        return NULL;
    json_object_object_add(o, "idempotency_key",
                           cap_notify_key(&one, key, sizeof key) == 0 ? jstr(key) : NULL);
    json_object_object_add(o, "event_id", json_object_new_int64(e->id));
    json_object_object_add(o, "event", jstr(e->event));
    json_object_object_add(o, "kind", jstr(e->kind));
    json_object_object_add(o, "severity", jstr(e->severity));
    json_object_object_add(o, "finding_id", jid(e->finding_id));
    json_object_object_add(o, "run_id", jid(e->run_id));
    json_object_object_add(o, "subject", jstr(e->subject));
    json_object_object_add(o, "subject_key", jstr(e->subject_key));
    json_object_object_add(o, "reason", jstr(e->reason));
    json_object_object_add(o, "at", jstr(e->at));
    return o;
}

char *cap_notify_format(enum cap_notify_format format, const char *webhook,
                        const struct cap_notify_msg *m, const char *key, struct cap_err *err)
{
    if (m->n == 0) {
        cap_err_set(err, CAP_E_INVALID, "notification: no events");
        return NULL;
    }
    const struct cap_notify_event **sorted = calloc(m->n, sizeof *sorted);
    if (!sorted) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return NULL;
    }
    size_t counts[NEVENTS] = {0};
    for (size_t i = 0; i < m->n; i++) {
        sorted[i] = &m->ev[i];
        for (size_t k = 0; k < NEVENTS; k++)
            if (m->ev[i].event && strcmp(m->ev[i].event, event_names[k]) == 0)
                counts[k]++;
    }
    qsort(sorted, m->n, sizeof *sorted, by_severity);
    char sum[CAP_NOTIFY_TEXT_MAX * 2 + 512];
    summary(webhook, m, counts, sum, sizeof sum);
    size_t listed = m->n < CAP_NOTIFY_LIST_MAX ? m->n : CAP_NOTIFY_LIST_MAX;
    json_object *root = json_object_new_object();
    char *out = NULL;
    if (!root)
        goto oom;
    if (format == CAP_NOTIFY_SLACK) {
        /* Slack shows text and blocks; the key is in a context block, where a person can
         * quote it, and Slack ignores it. */
        char body[SLACK_TEXT_MAX + 256];
        size_t o = 0;
        size_t shown = 0;
        for (; shown < listed; shown++) {
            char line[CAP_NOTIFY_TEXT_MAX + 160];
            event_line(sorted[shown], line, sizeof line);
            size_t need = strlen(line) + 3;
            if (o + need > SLACK_TEXT_MAX)
                break;
            o += (size_t)snprintf(body + o, sizeof body - o, "%s- %s", o ? "\n" : "", line);
        }
        if (shown < m->n)
            snprintf(body + o, sizeof body - o, "%sand %zu more", o ? "\n" : "", m->n - shown);
        char ctx[CAP_NOTIFY_KEY_MAX + 32];
        snprintf(ctx, sizeof ctx, "idempotency key %s", key);
        json_object *blocks = json_object_new_array();
        json_object *sec = json_object_new_object(), *st = json_object_new_object();
        json_object *cx = json_object_new_object(), *els = json_object_new_array();
        json_object *el = json_object_new_object();
        if (!blocks || !sec || !st || !cx || !els || !el) {
            json_object_put(blocks);
            json_object_put(sec);
            json_object_put(st);
            json_object_put(cx);
            json_object_put(els);
            json_object_put(el);
            goto oom;
        }
        json_object_object_add(st, "type", json_object_new_string("mrkdwn"));
        json_object_object_add(st, "text", json_object_new_string(body));
        json_object_object_add(sec, "type", json_object_new_string("section"));
        json_object_object_add(sec, "text", st);
        json_object_object_add(el, "type", json_object_new_string("mrkdwn"));
        json_object_object_add(el, "text", json_object_new_string(ctx));
        json_object_array_add(els, el);
        json_object_object_add(cx, "type", json_object_new_string("context"));
        json_object_object_add(cx, "elements", els);
        json_object_array_add(blocks, sec);
        json_object_array_add(blocks, cx);
        json_object_object_add(root, "text", json_object_new_string(sum));
        json_object_object_add(root, "blocks", blocks);
    } else {
        json_object *evs = json_object_new_array(), *cj = json_object_new_object();
        if (!evs || !cj) {
            json_object_put(evs);
            json_object_put(cj);
            goto oom;
        }
        for (size_t i = 0; i < listed; i++)
            json_object_array_add(evs, event_json(sorted[i], m));
        for (size_t k = 0; k < NEVENTS; k++)
            if (counts[k])
                json_object_object_add(cj, event_names[k],
                                       json_object_new_int64((int64_t)counts[k]));
        json_object_object_add(root, "idempotency_key", jstr(key));
        json_object_object_add(root, "webhook", jstr(webhook));
        json_object_object_add(root, "test", json_object_new_boolean(m->test));
        json_object_object_add(root, "digest", json_object_new_boolean(m->n > 1));
        json_object_object_add(root, "source_id", jid(m->source_id));
        json_object_object_add(root, "source", jstr(m->source_name));
        json_object_object_add(root, "run_id", jid(m->run_id));
        json_object_object_add(root, "text", json_object_new_string(sum));
        json_object_object_add(root, "count", json_object_new_int64((int64_t)m->n));
        json_object_object_add(root, "counts", cj);
        json_object_object_add(root, "events", evs);
        json_object_object_add(root, "omitted", json_object_new_int64((int64_t)(m->n - listed)));
    }
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                             JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!s || !(out = strdup(s)))
        goto oom;
    json_object_put(root);
    free(sorted);
    return out;
oom:
    json_object_put(root);
    free(sorted);
    cap_err_set(err, CAP_E_NOMEM, "formatting a notification: out of memory");
    return NULL;
}
