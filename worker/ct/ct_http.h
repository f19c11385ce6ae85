/* The CT client's HTTP layer over the worker's HTTP client (worker/http.h): several requests in
 * flight, every connection checked by the network policy, redirects off, connect and stall
 * timeouts, a cap on every response body chosen by the endpoint asked, a decompression ratio
 * cap, and Retry-After read from 429/503 answers. */
#ifndef CAP_CT_HTTP_H
#define CAP_CT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/policy.h"
#include "worker/http.h"

/* Largest response body accepted from any endpoint. */
#define CAP_CT_BODY_MAX (32u << 20)
/* Tree heads (get-sth, checkpoint), consistency proofs and anything not listed below. */
#define CAP_CT_HEAD_MAX (64u << 10)
/* Each entry asked for (get-entries, data tiles, get-entry-and-proof) adds this much. */
#define CAP_CT_ENTRY_MAX (64u << 10)
/* A hash tile: 256 hashes of 32 bytes. */
#define CAP_CT_HASH_TILE_MAX (256u * 32)
/* Requests in flight at once per client. */
#define CAP_CT_INFLIGHT_MAX 16

struct cap_ct_http;

/* One request. The caller owns it; fields from done on are written when it completes. */
struct cap_ct_req {
    char url[CAP_HTTP_URL_MAX];
    uint64_t start, count; /* caller's data: the range asked for (count sizes the body cap) */
    int attempts;          /* caller's retry counter */
    /* results */
    bool done;
    long status; /* HTTP status, 0 on a transport error */
    char *body;  /* malloc'd, NUL-terminated; freed by cap_ct_req_reset */
    size_t len;
    long retry_after_s;             /* from Retry-After (seconds), -1 when absent */
    char error[CAP_HTTP_ERROR_MAX]; /* transport error ("" when none) */
    bool timed_out;                 /* stalled or over its time limit */
    /* private */
    struct cap_http_req http;
};

/* Creates a client. policy is borrowed and must outlive it. connect_ms bounds the TCP+TLS
 * connect, stall_s aborts a transfer that moves under 1 byte/s for that long, total_ms bounds a
 * whole request. NULL with err. Free with cap_ct_http_free. */
struct cap_ct_http *cap_ct_http_new(const struct cap_policy *policy, long connect_ms, long stall_s,
                                    long total_ms, struct cap_err *err);
void cap_ct_http_free(struct cap_ct_http *h);

/* The body cap of a request for url asking for count entries: CAP_CT_HASH_TILE_MAX for a hash
 * tile; count (a data tile: 256 when 0) times CAP_CT_ENTRY_MAX for a data tile; as much plus
 * CAP_CT_HEAD_MAX for get-entries (count at least 1) and get-entry-and-proof (one entry);
 * CAP_CT_HEAD_MAX otherwise. Never over CAP_CT_BODY_MAX. Pure. */
size_t cap_ct_body_cap(const char *url, uint64_t count);

/* Starts r (url, and count for entries, filled by the caller). 0, or -1 with err. */
int cap_ct_http_start(struct cap_ct_http *h, struct cap_ct_req *r, struct cap_err *err);

/* Runs transfers for up to timeout_ms; returns a completed request (done set, removed from the
 * client), or NULL when none completed in time. Blocks up to timeout_ms. */
struct cap_ct_req *cap_ct_http_wait(struct cap_ct_http *h, long timeout_ms);

/* Number of requests in flight. */
int cap_ct_http_inflight(const struct cap_ct_http *h);

/* Aborts r if it is in flight and frees its results, keeping url/start/count/attempts. */
void cap_ct_http_cancel(struct cap_ct_http *h, struct cap_ct_req *r);

/* Frees r's results (body) and clears them. */
void cap_ct_req_reset(struct cap_ct_req *r);

/* Describes a failed request ("HTTP 500", "timed out ...", "refused by network policy: ...",
 * "response larger than ...") into out. Returns out. */
const char *cap_ct_req_describe(const struct cap_ct_req *r, char *out, size_t n);

#endif
