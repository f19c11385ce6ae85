/* libcurl multi client for CT logs, guarded by the network policy. */
#include "worker/ct/ct_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cap_ct_http {
    CURLM *multi;
    const struct cap_policy *policy;
    long connect_ms, stall_s, total_ms;
    int inflight;
};

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    struct cap_ct_req *r = ud;
    size_t n = size * nmemb;
    if (r->len + n > CAP_CT_BODY_MAX) {
        r->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (r->len + n + 1 > r->cap) {
        size_t nc = r->cap ? r->cap : 65536;
        while (nc < r->len + n + 1)
            nc *= 2;
        char *nb = realloc(r->body, nc);
        if (!nb)
            return 0;
        r->body = nb;
        r->cap = nc;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

struct cap_ct_http *cap_ct_http_new(const struct cap_policy *policy, long connect_ms,
                                    long stall_s, long total_ms, struct cap_err *err)
{
    struct cap_ct_http *h = calloc(1, sizeof *h);
    if (!h || !(h->multi = curl_multi_init())) {
        free(h);
        cap_err_set(err, CAP_E_NOMEM, "cannot create the CT HTTP client");
        return NULL;
    }
    h->policy = policy;
    h->connect_ms = connect_ms;
    h->stall_s = stall_s;
    h->total_ms = total_ms;
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
    return h;
}

void cap_ct_http_free(struct cap_ct_http *h)
{
    if (!h)
        return;
    curl_multi_cleanup(h->multi);
    free(h);
}

void cap_ct_req_reset(struct cap_ct_req *r)
{
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
    r->done = false;
    r->status = 0;
    r->retry_after_s = -1;
    r->error[0] = '\0';
    r->too_big = false;
    r->timed_out = false;
}

int cap_ct_http_start(struct cap_ct_http *h, struct cap_ct_req *r, struct cap_err *err)
{
    cap_ct_req_reset(r);
    CURL *e = curl_easy_init();
    if (!e) {
        cap_err_set(err, CAP_E_NOMEM, "cannot create an HTTP request");
        return -1;
    }
    r->guard.policy = h->policy;
    if (cap_policy_curl_guard(e, &r->guard) < 0 ||
        curl_easy_setopt(e, CURLOPT_URL, r->url) != CURLE_OK) {
        curl_easy_cleanup(e);
        cap_err_set(err, CAP_E_INVALID, "cannot set up a request to the log");
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->total_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, h->stall_s);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CAP_CT_BODY_MAX);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "certautopilot-discovery-ct/1");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        cap_err_set(err, CAP_E_IO, "cannot start a request to the log");
        return -1;
    }
    r->easy = e;
    h->inflight++;
    return 0;
}

static void finish(struct cap_ct_http *h, CURL *e, CURLcode cc)
{
    struct cap_ct_req *r = NULL;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t ra = -1;
    if (curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &ra) != CURLE_OK || ra < 0)
        ra = -1;
    r->retry_after_s = (long)ra;
    if (r->guard.refused) {
        snprintf(r->error, sizeof r->error, "refused by network policy: %s", r->guard.reason);
        r->status = 0;
    } else if (r->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(r->error, sizeof r->error, "response larger than %u bytes", CAP_CT_BODY_MAX);
        r->status = 0;
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(r->error, sizeof r->error,
                 "timed out (stalled connection: under 1 byte/s for %ld s, or over %ld ms)",
                 h->stall_s, h->total_ms);
        r->timed_out = true;
        r->status = 0;
    } else if (cc != CURLE_OK) {
        snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(cc));
        r->status = 0;
    } else {
        r->status = status;
    }
    r->done = true;
    curl_multi_remove_handle(h->multi, e);
    curl_easy_cleanup(e);
    r->easy = NULL;
    h->inflight--;
}

struct cap_ct_req *cap_ct_http_wait(struct cap_ct_http *h, long timeout_ms)
{
    for (;;) {
        int running = 0;
        curl_multi_perform(h->multi, &running);
        int q = 0;
        CURLMsg *m;
        while ((m = curl_multi_info_read(h->multi, &q))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL *e = m->easy_handle;
            struct cap_ct_req *r = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
            finish(h, e, m->data.result);
            return r;
        }
        if (timeout_ms <= 0 || h->inflight == 0)
            return NULL;
        long step = timeout_ms < 100 ? timeout_ms : 100;
        int fds = 0;
        curl_multi_poll(h->multi, NULL, 0, (int)step, &fds);
        timeout_ms -= step;
    }
}

int cap_ct_http_inflight(const struct cap_ct_http *h)
{
    return h->inflight;
}

void cap_ct_http_cancel(struct cap_ct_http *h, struct cap_ct_req *r)
{
    if (r->easy) {
        curl_multi_remove_handle(h->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        h->inflight--;
    }
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
