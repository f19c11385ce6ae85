/* Reads the configured CT log list again every ct.log_list_refresh, keeps the last good one, and
 * records each good read in ct_log_list. */
#include "worker/ct/ct_loglist_refresh.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/pg.h"
#include "worker/ct/ct_metrics.h"
#include "worker/http.h"

/* A failed read is tried again after this long (or ct.log_list_refresh when shorter). */
#define RETRY_MS 60000
/* Connect and whole-request limits of a list fetch. */
#define FETCH_CONNECT_MS 10000
#define FETCH_TOTAL_MS 30000

static const char SQL_BEGIN[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

/* One log of the list as read. left_at moves when a log stops being current, and is cleared when
 * it is current again; first_listed_at stays. */
static const char SQL_LOG_PUT[] =
    "INSERT INTO ct_log_list (log_url, description, operator, protocol, key_b64, log_id_b64, "
    "mmd_seconds, state, state_at, interval_start, interval_end, final_tree_size, refused, "
    "listed, current, updated_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, to_timestamp($9::bigint), to_timestamp($10::bigint), "
    "to_timestamp($11::bigint), $12, $13, true, $14, now()) "
    "ON CONFLICT (log_url) DO UPDATE SET description = EXCLUDED.description, "
    "operator = EXCLUDED.operator, protocol = EXCLUDED.protocol, key_b64 = EXCLUDED.key_b64, "
    "log_id_b64 = EXCLUDED.log_id_b64, mmd_seconds = EXCLUDED.mmd_seconds, "
    "state = EXCLUDED.state, state_at = EXCLUDED.state_at, "
    "interval_start = EXCLUDED.interval_start, interval_end = EXCLUDED.interval_end, "
    "final_tree_size = EXCLUDED.final_tree_size, refused = EXCLUDED.refused, listed = true, "
    "left_at = CASE WHEN EXCLUDED.current THEN NULL "
    "WHEN ct_log_list.current THEN now() ELSE ct_log_list.left_at END, "
    "current = EXCLUDED.current, updated_at = now()";

/* Logs no longer in the list. */
static const char SQL_LOG_GONE[] =
    "UPDATE ct_log_list SET listed = false, current = false, "
    "left_at = CASE WHEN current THEN now() ELSE left_at END, updated_at = now() "
    "WHERE listed AND NOT (log_url = ANY ($1::text[]))";

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_read_done = PTHREAD_COND_INITIALIZER;
static bool g_reading;            /* a caller is reading the list, without the lock */
static struct cap_ct_log *g_logs; /* the last good list */
static size_t g_n;
static bool g_have;
static bool g_db_pending;  /* g_logs not yet written to ct_log_list */
static int64_t g_next_ms;  /* monotonic time of the next read */
static char g_source[600]; /* what g_logs was read from, to read again after a change */
static char g_err[400];    /* why the last read failed */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool cap_ct_loglist_configured(const struct cap_config *cfg)
{
    return cfg->ct_log_list_url || cfg->ct_log_list_file;
}

void cap_ct_loglist_refresh_reset(void)
{
    pthread_mutex_lock(&g_mu);
    cap_ct_logs_free(g_logs, g_n);
    g_logs = NULL;
    g_n = 0;
    g_have = false;
    g_db_pending = false;
    g_next_ms = 0;
    g_source[0] = g_err[0] = '\0';
    pthread_mutex_unlock(&g_mu);
}

static int read_path(const char *path, char **out, size_t *len, struct cap_err *err)
{
    char q[96];
    cap_err_quote(q, sizeof q, path, strlen(path));
    FILE *f = fopen(path, "rb");
    if (!f) {
        cap_err_set(err, CAP_E_IO, "ct log list file \"%s\": cannot open: %s", q, strerror(errno));
        return -1;
    }
    char *buf = malloc(CAP_CT_LOGLIST_MAX + 1);
    if (!buf) {
        fclose(f);
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    size_t n = fread(buf, 1, CAP_CT_LOGLIST_MAX + 1, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad || n > CAP_CT_LOGLIST_MAX) {
        free(buf);
        cap_err_set(err, bad ? CAP_E_IO : CAP_E_LIMIT, "ct log list file \"%s\": %s", q,
                    bad ? "read failed" : "larger than 16 MiB");
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static int fetch_url(const char *url, const struct cap_policy *pol, char **out, size_t *len,
                     struct cap_err *err)
{
    char q[96];
    cap_err_quote(q, sizeof q, url, strlen(url));
    if (strlen(url) >= CAP_HTTP_URL_MAX) {
        cap_err_set(err, CAP_E_INVALID, "ct log list url \"%s\": longer than %d bytes", q,
                    CAP_HTTP_URL_MAX - 1);
        return -1;
    }
    struct cap_http_limits lim = {.connect_ms = FETCH_CONNECT_MS,
                                  .stall_s = 20,
                                  .total_ms = FETCH_TOTAL_MS,
                                  .max_inflight = 1,
                                  .max_host_connections = 1,
                                  .user_agent = "certautopilot-discovery-ct/1"};
    struct cap_http *h = cap_http_new(pol, &lim, err);
    if (!h)
        return -1;
    struct cap_http_req *r = calloc(1, sizeof *r);
    if (!r) {
        cap_http_free(h);
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    snprintf(r->url, sizeof r->url, "%s", url);
    r->body_max = CAP_CT_LOGLIST_MAX;
    r->decode = true;
    /* The published list is served from one place; a redirect to another is followed, under
     * the same policy check as every connect. */
    r->max_redirects = 3;
    int rc = -1;
    if (cap_http_start(h, r, err) < 0)
        goto out;
    while (!cap_http_wait(h, 1000) && cap_http_inflight(h) > 0)
        ;
    if (r->result != CAP_HTTP_DONE) {
        cap_err_set(err, CAP_E_IO, "ct log list url \"%s\": %s", q, r->error);
    } else if (r->status != 200) {
        cap_err_set(err, CAP_E_IO, "ct log list url \"%s\": HTTP %ld", q, r->status);
    } else {
        *out = r->body ? r->body : strdup("");
        *len = r->body ? r->len : 0;
        r->body = NULL;
        if (!*out)
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
        else
            rc = 0;
    }
out:
    cap_http_req_reset(r);
    free(r);
    cap_http_free(h);
    return rc;
}

/* Reads and parses the list; logs each refused log. */
static int read_list(const struct cap_config *cfg, const struct cap_policy *pol,
                     struct cap_ct_log **logs, size_t *n, struct cap_err *err)
{
    const char *from = cfg->ct_log_list_url ? cfg->ct_log_list_url : cfg->ct_log_list_file;
    char *buf = NULL;
    size_t len = 0;
    int rc = cfg->ct_log_list_url ? fetch_url(from, pol, &buf, &len, err)
                                  : read_path(from, &buf, &len, err);
    if (rc < 0)
        return -1;
    rc = cap_ct_loglist_parse(buf, len, from, logs, n, err);
    free(buf);
    if (rc < 0)
        return -1;
    for (size_t i = 0; i < *n; i++)
        if ((*logs)[i].refused)
            cap_log(CAP_LOG_WARN, "ct_log_refused", CAP_LS("log", (*logs)[i].url),
                    CAP_LS("err", (*logs)[i].refused));
    return 0;
}

static const char *nz(char *buf, int64_t v)
{
    return v ? cap_pg_i64(buf, v) : NULL;
}

/* Writes the list to ct_log_list in one transaction. */
static int db_write(PGconn *pg, const struct cap_ct_log *v, size_t n, int64_t now_s,
                    struct cap_err *err)
{
    const char **urls = calloc(n ? n : 1, sizeof *urls);
    if (!urls) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    if (cap_pg_cmd(pg, "begin log list", SQL_BEGIN, 0, NULL, err) < 0) {
        free(urls);
        return -1;
    }
    size_t nu = 0;
    for (size_t i = 0; i < n; i++) {
        const struct cap_ct_log *l = &v[i];
        bool dup = false;
        for (size_t k = 0; k < nu && !dup; k++)
            dup = strcmp(urls[k], l->url) == 0;
        if (dup)
            continue; /* the first entry of a URL is the one read */
        urls[nu++] = l->url;
        char mmd[24], sa[24], is[24], ie[24], fts[24];
        const char *p[14] = {l->url,
                             l->description,
                             l->operator_name,
                             l->protocol,
                             l->key_b64,
                             l->log_id_b64,
                             cap_pg_i64(mmd, l->mmd_s),
                             cap_ct_log_state_name(l->state),
                             nz(sa, l->state_at),
                             nz(is, l->interval_start),
                             nz(ie, l->interval_end),
                             l->final_tree_size >= 0 ? cap_pg_i64(fts, l->final_tree_size) : NULL,
                             l->refused,
                             cap_ct_log_current(l, now_s) ? "true" : "false"};
        if (cap_pg_cmd(pg, "put log list entry", SQL_LOG_PUT, 14, p, err) < 0)
            goto fail;
    }
    char *arr = cap_pg_text_array(urls, nu);
    if (!arr) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        goto fail;
    }
    const char *gp[1] = {arr};
    int rc = cap_pg_cmd(pg, "mark logs gone from the list", SQL_LOG_GONE, 1, gp, err);
    free(arr);
    if (rc < 0 || cap_pg_cmd(pg, "commit log list", SQL_COMMIT, 0, NULL, err) < 0)
        goto fail;
    free(urls);
    return 0;
fail:
    free(urls);
    struct cap_err e2 = {0};
    cap_pg_cmd(pg, "rollback log list", SQL_ROLLBACK, 0, NULL, &e2);
    return -1;
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

/* Copies the current logs of g_logs (first entry of a URL only). */
static int copy_current(int64_t now_s, struct cap_ct_log **out, size_t *n, struct cap_err *err)
{
    struct cap_ct_loglist lv = {0};
    for (size_t i = 0; i < g_n; i++) {
        const struct cap_ct_log *s = &g_logs[i];
        if (!cap_ct_log_current(s, now_s))
            continue;
        bool dup = false;
        for (size_t k = 0; k < lv.n && !dup; k++)
            dup = strcmp(lv.v[k].url, s->url) == 0;
        if (dup)
            continue;
        bool oom = false;
        struct cap_ct_log c = *s;
        c.url = dup_or_null(s->url, &oom);
        c.protocol = dup_or_null(s->protocol, &oom);
        c.key_b64 = dup_or_null(s->key_b64, &oom);
        c.log_id_b64 = dup_or_null(s->log_id_b64, &oom);
        c.description = dup_or_null(s->description, &oom);
        c.operator_name = dup_or_null(s->operator_name, &oom);
        c.refused = NULL;
        if (oom || cap_ct_loglist_push(&lv, &c, err) < 0) {
            cap_ct_log_clear(&c);
            cap_ct_loglist_free(&lv);
            if (oom)
                cap_err_set(err, CAP_E_NOMEM, "out of memory");
            return -1;
        }
    }
    *out = lv.v;
    *n = lv.n;
    return 0;
}

int cap_ct_loglist_current_logs(const struct cap_config *cfg, const struct cap_policy *pol,
                                PGconn *pg, struct cap_ct_log **out, size_t *n, struct cap_err *err)
{
    const char *from = cfg->ct_log_list_url ? cfg->ct_log_list_url : cfg->ct_log_list_file;
    if (!from) {
        cap_err_set(err, CAP_E_INVALID, "no ct log list configured");
        return -1;
    }
    pthread_mutex_lock(&g_mu);
    int64_t now = mono_ms();
    if (strcmp(g_source, from) != 0 && !g_reading) {
        /* Another configuration (tests run several in one process): start over. */
        cap_ct_logs_free(g_logs, g_n);
        g_logs = NULL;
        g_n = 0;
        g_have = g_db_pending = false;
        g_next_ms = 0;
        snprintf(g_source, sizeof g_source, "%s", from);
    }
    if ((!g_have || now >= g_next_ms) && !g_reading) {
        /* One caller reads, without the lock: the others go on with the last good list, or,
         * when there is none yet, wait for this read. */
        g_reading = true;
        pthread_mutex_unlock(&g_mu);
        struct cap_ct_log *logs = NULL;
        size_t ln = 0;
        struct cap_err re = {0};
        int64_t refresh = cfg->ct_log_list_refresh_ms > 0 ? cfg->ct_log_list_refresh_ms : 1000;
        int rrc = read_list(cfg, pol, &logs, &ln, &re);
        int64_t done_s = (int64_t)time(NULL);
        pthread_mutex_lock(&g_mu);
        g_reading = false;
        now = mono_ms();
        if (rrc == 0) {
            cap_ct_logs_free(g_logs, g_n);
            g_logs = logs;
            g_n = ln;
            g_have = true;
            g_db_pending = true;
            g_err[0] = '\0';
            g_next_ms = now + refresh;
            int64_t cur = 0;
            for (size_t i = 0; i < ln; i++)
                cur += cap_ct_log_current(&logs[i], done_s);
            cap_ct_metrics_list_refresh(true, cur);
            cap_log(CAP_LOG_INFO, "ct_log_list_read", CAP_LS("from", from),
                    CAP_LI("logs", (long long)ln), CAP_LI("current", cur));
        } else {
            snprintf(g_err, sizeof g_err, "%s", re.msg);
            g_next_ms = now + (refresh < RETRY_MS ? refresh : RETRY_MS);
            cap_ct_metrics_list_refresh(false, 0);
            cap_log(CAP_LOG_WARN, "ct_log_list_failed", CAP_LS("from", from),
                    CAP_LS("kept", g_have ? "last good list" : "none"), CAP_LS("err", re.msg));
        }
        pthread_cond_broadcast(&g_read_done);
    }
    while (!g_have && g_reading)
        pthread_cond_wait(&g_read_done, &g_mu);
    int64_t now_s = (int64_t)time(NULL);
    if (!g_have) {
        cap_err_set(err, CAP_E_IO, "ct log list not read yet: %s", g_err);
        pthread_mutex_unlock(&g_mu);
        return -1;
    }
    if (g_db_pending && pg) {
        struct cap_err de = {0};
        if (db_write(pg, g_logs, g_n, now_s, &de) == 0)
            g_db_pending = false;
        else
            cap_log(CAP_LOG_WARN, "ct_log_list_store_failed", CAP_LS("err", de.msg));
    }
    int rc = copy_current(now_s, out, n, err);
    pthread_mutex_unlock(&g_mu);
    return rc;
}
