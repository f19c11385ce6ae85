/* CT requests over the worker's HTTP client, each with the body cap of its endpoint. */
#include "worker/ct/ct_http.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cap_ct_http {
    struct cap_http *http;
};

struct cap_ct_http *cap_ct_http_new(const struct cap_policy *policy, long connect_ms, long stall_s,
                                    long total_ms, struct cap_err *err)
{
    struct cap_ct_http *h = calloc(1, sizeof *h);
    if (!h) {
        cap_err_set(err, CAP_E_NOMEM, "cannot create the CT HTTP client");
        return NULL;
    }
    struct cap_http_limits lim = {.connect_ms = connect_ms,
                                  .stall_s = stall_s,
                                  .total_ms = total_ms,
                                  .max_inflight = CAP_CT_INFLIGHT_MAX,
                                  .max_host_connections = 8,
                                  .user_agent = "certautopilot-discovery-ct/1"};
    h->http = cap_http_new(policy, &lim, err);
    if (!h->http) {
        free(h);
        cap_err_prefix(err, "CT log client: ");
        return NULL;
    }
    return h;
}

void cap_ct_http_free(struct cap_ct_http *h)
{
    if (!h)
        return;
    cap_http_free(h->http);
    free(h);
}

/* The last occurrence of needle in s, or NULL. */
static const char *last_of(const char *s, const char *needle)
{
    const char *found = NULL;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        found = p;
    return found;
}

static size_t entries_cap(uint64_t n, size_t base)
{
    uint64_t most = (CAP_CT_BODY_MAX - base) / CAP_CT_ENTRY_MAX;
    return n >= most ? CAP_CT_BODY_MAX : base + (size_t)n * CAP_CT_ENTRY_MAX;
}

size_t cap_ct_body_cap(const char *url, uint64_t count)
{
    /* The endpoint is what follows the log's base URL, which may itself hold any path: only
     * the last piece of the path counts. */
    const char *q = strchr(url, '?');
    size_t path_len = q ? (size_t)(q - url) : strlen(url);
    const char *ge = last_of(url, "/ct/v1/get-entries");
    if (ge && (size_t)(ge - url) + strlen("/ct/v1/get-entries") == path_len)
        return entries_cap(count ? count : 1, CAP_CT_HEAD_MAX);
    const char *gp = last_of(url, "/ct/v1/get-entry-and-proof");
    if (gp && (size_t)(gp - url) + strlen("/ct/v1/get-entry-and-proof") == path_len)
        return entries_cap(1, CAP_CT_HEAD_MAX);
    const char *t = last_of(url, "/tile/");
    if (t && !q) {
        /* tile/<level>/<index>[.p/<width>] or tile/data/<index>[.p/<width>]. */
        const char *rest = t + 6;
        bool data = strncmp(rest, "data/", 5) == 0;
        size_t lvl = data ? 4 : strspn(rest, "0123456789");
        if (lvl > 0 && rest[lvl] == '/' && rest[lvl + 1] &&
            strspn(rest + lvl + 1, "0123456789x/.p") == strlen(rest + lvl + 1))
            return data ? entries_cap(count ? count : 256, 0) : CAP_CT_HASH_TILE_MAX;
    }
    return CAP_CT_HEAD_MAX;
}

void cap_ct_req_reset(struct cap_ct_req *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
    r->done = false;
    r->status = 0;
    r->retry_after_s = -1;
    r->error[0] = '\0';
    r->timed_out = false;
    cap_http_req_reset(&r->http);
}

int cap_ct_http_start(struct cap_ct_http *h, struct cap_ct_req *r, struct cap_err *err)
{
    cap_ct_req_reset(r);
    struct cap_http_req *q = &r->http;
    memcpy(q->url, r->url, sizeof q->url);
    q->body_max = cap_ct_body_cap(r->url, r->count);
    q->post = NULL;
    q->content_type = NULL;
    q->max_redirects = 0;
    q->decode = true;
    q->data = r;
    if (cap_http_start(h->http, q, err) != 0) {
        cap_err_prefix(err, "CT log: ");
        return -1;
    }
    return 0;
}

/* Copies what the HTTP client says of the completed request into r, taking the body. */
static void take(struct cap_ct_req *r)
{
    struct cap_http_req *q = &r->http;
    r->done = true;
    r->status = q->result == CAP_HTTP_DONE ? q->status : 0;
    r->body = q->body;
    r->len = q->len;
    q->body = NULL;
    q->len = 0;
    r->retry_after_s = q->retry_after_s;
    r->timed_out = q->result == CAP_HTTP_TIMEOUT;
    snprintf(r->error, sizeof r->error, "%s", q->error);
}

struct cap_ct_req *cap_ct_http_wait(struct cap_ct_http *h, long timeout_ms)
{
    struct cap_http_req *q = cap_http_wait(h->http, timeout_ms);
    if (!q)
        return NULL;
    struct cap_ct_req *r = q->data;
    take(r);
    return r;
}

int cap_ct_http_inflight(const struct cap_ct_http *h)
{
    return cap_http_inflight(h->http);
}

void cap_ct_http_cancel(struct cap_ct_http *h, struct cap_ct_req *r)
{
    cap_http_cancel(h->http, &r->http);
    cap_ct_req_reset(r);
}

const char *cap_ct_req_describe(const struct cap_ct_req *r, char *out, size_t n)
{
    if (r->error[0])
        snprintf(out, n, "%s", r->error);
    else
        snprintf(out, n, "HTTP %ld", r->status);
    return out;
}
