/* The worker's HTTP client: libcurl multi under the network policy, with body, decompression
 * and time limits on every request. */
#include "worker/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First allocation of a body; it doubles from there up to body_max + 1. */
#define BODY_CHUNK (16u * 1024)
/* Bytes of a URL quoted in a message. */
#define URL_QUOTE_MAX 160

struct cap_http {
    CURLM *multi;
    const struct cap_policy *policy;
    struct cap_http_limits lim;
    char *user_agent;
    struct cap_http_req **live; /* lim.max_inflight slots; NULL when free */
    int inflight;
};

int cap_http_global_init(struct cap_err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cap_err_set(err, CAP_E_IO, "libcurl did not initialise");
        return -1;
    }
    return 0;
}

void cap_http_global_cleanup(void)
{
    curl_global_cleanup();
}

/* Writes url into out escaped (printable ASCII kept, the rest as \xNN, a quote as \"), cut to
 * URL_QUOTE_MAX bytes with "..." when longer. */
static const char *quote_url(const char *url, char *out, size_t n)
{
    size_t o = 0, i = 0;
    for (; url[i] && i < URL_QUOTE_MAX && o + 5 < n; i++) {
        unsigned char ch = (unsigned char)url[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch >= 0x20 && ch < 0x7f) {
            out[o++] = (char)ch;
        } else {
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", ch);
        }
    }
    if (url[i] && o + 4 < n) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    struct cap_http_req *r = ud;
    size_t n = size * nmemb;
    if (n > r->body_max - r->len) {
        r->abort = CAP_HTTP_TOO_BIG;
        return 0; /* aborts the transfer: a cut body is never an answer */
    }
    if (r->decode) {
        /* The download counter counts bytes as they came over the wire, before decoding
         * (behind by at most one read, which the floor covers). */
        curl_off_t wire = 0;
        if (curl_easy_getinfo(r->easy, CURLINFO_SIZE_DOWNLOAD_T, &wire) != CURLE_OK || wire < 0)
            wire = 0;
        unsigned long long allowed =
            CAP_HTTP_RATIO_FLOOR + (unsigned long long)wire * CAP_HTTP_RATIO_MAX;
        if ((unsigned long long)(r->len + n) > allowed) {
            r->abort = CAP_HTTP_RATIO;
            return 0;
        }
    }
    if (r->len + n + 1 > r->cap) {
        size_t nc = r->cap ? r->cap : BODY_CHUNK;
        while (nc < r->len + n + 1)
            nc *= 2;
        if (nc > r->body_max + 1)
            nc = r->body_max + 1;
        char *nb = realloc(r->body, nc);
        if (!nb) {
            r->abort = CAP_HTTP_LOCAL;
            return 0;
        }
        r->body = nb;
        r->cap = nc;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

struct cap_http *cap_http_new(const struct cap_policy *policy, const struct cap_http_limits *lim,
                              struct cap_err *err)
{
    if (lim->total_ms <= 0 || lim->max_inflight <= 0 || lim->connect_ms < 0 || lim->stall_s < 0) {
        cap_err_set(err, CAP_E_INVALID,
                    "http client: total time %ld ms and requests in flight %d must be positive",
                    lim->total_ms, lim->max_inflight);
        return NULL;
    }
    struct cap_http *h = calloc(1, sizeof *h);
    if (!h)
        goto nomem;
    h->policy = policy;
    h->lim = *lim;
    h->user_agent = strdup(lim->user_agent ? lim->user_agent : "certautopilot-discovery");
    h->lim.user_agent = NULL;
    h->live = calloc((size_t)lim->max_inflight, sizeof *h->live);
    h->multi = curl_multi_init();
    if (!h->user_agent || !h->live || !h->multi)
        goto nomem;
    if (lim->max_host_connections > 0)
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, lim->max_host_connections);
    return h;
nomem:
    cap_http_free(h);
    cap_err_set(err, CAP_E_NOMEM, "http client: out of memory");
    return NULL;
}

/* Ends r's transfer (in flight or just completed) and frees what libcurl held for it. */
static void detach(struct cap_http *h, struct cap_http_req *r)
{
    if (!r->easy)
        return;
    curl_multi_remove_handle(h->multi, r->easy);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    r->easy = NULL;
    r->headers = NULL;
    for (int i = 0; i < h->lim.max_inflight; i++) {
        if (h->live[i] == r) {
            h->live[i] = NULL;
            h->inflight--;
            break;
        }
    }
}

void cap_http_free(struct cap_http *h)
{
    if (!h)
        return;
    for (int i = 0; h->live && i < h->lim.max_inflight; i++) {
        struct cap_http_req *r = h->live[i];
        if (r) {
            detach(h, r);
            cap_http_req_reset(r);
        }
    }
    if (h->multi)
        curl_multi_cleanup(h->multi);
    free(h->live);
    free(h->user_agent);
    free(h);
}

void cap_http_req_reset(struct cap_http_req *r)
{
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    r->result = CAP_HTTP_PENDING;
    r->abort = CAP_HTTP_PENDING;
    r->status = 0;
    r->retry_after_s = -1;
    r->error[0] = '\0';
}

static bool http_scheme(const char *u)
{
    return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

/* Sets the options of r on e. 0, or -1 when libcurl refused one. */
static int setup(struct cap_http *h, struct cap_http_req *r, CURL *e)
{
    const struct cap_http_limits *l = &h->lim;
    r->guard.policy = h->policy;
    /* The guard checks every address libcurl connects to, those of redirects included, and
     * limits the protocols (redirects too) to http and https. */
    if (cap_policy_curl_guard(e, &r->guard) != 0)
        return -1;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, r->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, l->total_ms) != CURLE_OK;
    if (l->connect_ms > 0)
        bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, l->connect_ms) != CURLE_OK;
    if (l->stall_s > 0) {
        bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, l->stall_s) != CURLE_OK;
    }
    /* A declared length over the cap fails before any body byte is read. */
    bad |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->body_max) != CURLE_OK;
    if (r->max_redirects > 0) {
        bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, r->max_redirects) != CURLE_OK;
    } else {
        bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    }
    if (r->decode)
        bad |= curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "") != CURLE_OK;
    if (r->post) {
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->post) != CURLE_OK;
        bad |=
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->post_len) != CURLE_OK;
    }
    if (r->content_type) {
        char hdr[128];
        int hn = snprintf(hdr, sizeof hdr, "Content-Type: %s", r->content_type);
        struct curl_slist *sl =
            hn > 0 && (size_t)hn < sizeof hdr ? curl_slist_append(NULL, hdr) : NULL;
        if (!sl)
            return -1;
        r->headers = sl;
    }
    for (const char *const *hl = r->extra_headers; hl && *hl; hl++) {
        struct curl_slist *sl = curl_slist_append(r->headers, *hl);
        if (!sl)
            return -1;
        r->headers = sl;
    }
    if (r->headers)
        bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, (struct curl_slist *)r->headers) != CURLE_OK;
    return bad ? -1 : 0;
}

int cap_http_start(struct cap_http *h, struct cap_http_req *r, struct cap_err *err)
{
    cap_http_req_reset(r);
    char q[URL_QUOTE_MAX * 4 + 8];
    bool terminated = memchr(r->url, '\0', sizeof r->url) != NULL;
    if (!terminated || !http_scheme(r->url) || r->body_max == 0) {
        cap_err_set(err, CAP_E_INVALID, "http request \"%s\": not an http(s) URL with a body cap",
                    quote_url(terminated ? r->url : "", q, sizeof q));
        return -1;
    }
    int slot = -1;
    for (int i = 0; i < h->lim.max_inflight && slot < 0; i++)
        if (!h->live[i])
            slot = i;
    if (slot < 0) {
        cap_err_set(err, CAP_E_LIMIT, "http request \"%s\": %d requests already in flight",
                    quote_url(r->url, q, sizeof q), h->lim.max_inflight);
        return -1;
    }
    CURL *e = curl_easy_init();
    if (!e) {
        cap_err_set(err, CAP_E_NOMEM, "http request: out of memory");
        return -1;
    }
    r->easy = e;
    if (setup(h, r, e) != 0 || curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        curl_slist_free_all(r->headers);
        r->easy = NULL;
        r->headers = NULL;
        cap_err_set(err, CAP_E_NOMEM, "http request \"%s\": cannot set up the transfer",
                    quote_url(r->url, q, sizeof q));
        return -1;
    }
    h->live[slot] = r;
    h->inflight++;
    return 0;
}

/* Records how r's transfer ended (cc from libcurl). */
static void finish(struct cap_http *h, struct cap_http_req *r, CURLcode cc)
{
    CURL *e = r->easy;
    char q[URL_QUOTE_MAX * 4 + 8];
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    /* libcurl says 0 when there was no Retry-After; "Retry-After: 0" reads the same. */
    curl_off_t ra = -1;
    if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra <= 0)
        ra = -1;
    r->retry_after_s = (long)ra;
    enum cap_http_result res;
    if (r->guard.refused) {
        res = CAP_HTTP_POLICY;
        snprintf(r->error, sizeof r->error, "refused by network policy: %s", r->guard.reason);
    } else if (r->abort == CAP_HTTP_TOO_BIG || cc == CURLE_FILESIZE_EXCEEDED) {
        res = CAP_HTTP_TOO_BIG;
        snprintf(r->error, sizeof r->error, "response larger than %zu bytes, the cap for \"%s\"",
                 r->body_max, quote_url(r->url, q, sizeof q));
    } else if (r->abort == CAP_HTTP_RATIO) {
        curl_off_t wire = 0;
        curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &wire);
        res = CAP_HTTP_RATIO;
        snprintf(r->error, sizeof r->error,
                 "response larger than %d times its %lld compressed bytes (decompression cap) "
                 "from \"%s\"",
                 CAP_HTTP_RATIO_MAX, (long long)wire, quote_url(r->url, q, sizeof q));
    } else if (r->abort == CAP_HTTP_LOCAL) {
        res = CAP_HTTP_LOCAL;
        snprintf(r->error, sizeof r->error, "local: out of memory reading the response");
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        res = CAP_HTTP_TIMEOUT;
        if (h->lim.stall_s > 0)
            snprintf(r->error, sizeof r->error,
                     "timed out (stalled connection: under 1 byte/s for %ld s, or over %ld ms)",
                     h->lim.stall_s, h->lim.total_ms);
        else
            snprintf(r->error, sizeof r->error, "timed out (over %ld ms)", h->lim.total_ms);
    } else if (cc != CURLE_OK) {
        res = CAP_HTTP_TRANSPORT;
        snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(cc));
    } else {
        res = CAP_HTTP_DONE;
        r->status = status;
    }
    if (res != CAP_HTTP_DONE) {
        /* Only a whole answer is an answer. */
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
    }
    r->result = res;
    detach(h, r);
}

struct cap_http_req *cap_http_wait(struct cap_http *h, long timeout_ms)
{
    for (;;) {
        int running = 0;
        curl_multi_perform(h->multi, &running);
        int left = 0;
        CURLMsg *m;
        while ((m = curl_multi_info_read(h->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct cap_http_req *r = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            finish(h, r, m->data.result);
            return r;
        }
        if (timeout_ms <= 0 || h->inflight == 0)
            return NULL;
        long step = timeout_ms < 100 ? timeout_ms : 100;
        curl_multi_poll(h->multi, NULL, 0, (int)step, NULL);
        timeout_ms -= step;
    }
}

int cap_http_inflight(const struct cap_http *h)
{
    return h->inflight;
}

void cap_http_cancel(struct cap_http *h, struct cap_http_req *r)
{
    detach(h, r);
    cap_http_req_reset(r);
}
