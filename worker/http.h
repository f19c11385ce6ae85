/* The worker's one HTTP client (CT logs, OCSP responders, CRL distribution points): libcurl
 * multi on the calling thread, a bounded number of transfers in flight, every connect (redirects
 * included) checked by the network policy, a cap on every response body and on how much a
 * compressed body may grow, and connect, stall and total time limits. */
#ifndef CAP_HTTP_H
#define CAP_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/policy.h"

/* Longest URL a request takes. */
#define CAP_HTTP_URL_MAX 1024
/* A compressed body may decode to at most CAP_HTTP_RATIO_MAX times the bytes that came over the
 * wire, plus CAP_HTTP_RATIO_FLOOR (ordinary answers compress by well under 20 times; a
 * compression bomb by a thousand). */
#define CAP_HTTP_RATIO_MAX 64
#define CAP_HTTP_RATIO_FLOOR (1u << 20)
/* Size of a request's error text. */
#define CAP_HTTP_ERROR_MAX 320

/* How a request ended. */
enum cap_http_result {
    CAP_HTTP_PENDING = 0, /* not started, or still in flight */
    CAP_HTTP_DONE,        /* the server answered: status and body are set (any status) */
    CAP_HTTP_POLICY,      /* the network policy refused an address (of the URL or a redirect) */
    CAP_HTTP_TOO_BIG,     /* the body was larger than body_max */
    CAP_HTTP_RATIO,       /* the decoded body grew past the decompression ratio cap */
    CAP_HTTP_TIMEOUT,     /* connect, stall or total time limit */
    CAP_HTTP_TRANSPORT,   /* any other transfer failure: refused, reset, TLS, name, redirects */
    CAP_HTTP_LOCAL        /* out of memory or a libcurl setup failure on this side */
};

/* Limits of a client, the same for all its requests. */
struct cap_http_limits {
    long connect_ms;           /* TCP and TLS connect; 0: total_ms alone bounds it */
    long stall_s;              /* abort a transfer moving under 1 byte/s for this long; 0: off */
    long total_ms;             /* a whole request, redirects included; must be > 0 */
    int max_inflight;          /* requests in flight at once; must be > 0 */
    long max_host_connections; /* connections to one host at once; 0: no limit */
    const char *user_agent;    /* copied */
};

/* One request. The caller owns it (it may live in an array of slots) and fills the fields up to
 * data; cap_http_start clears the results, which are written when the request completes. The
 * rest is private to the client. */
struct cap_http_req {
    char url[CAP_HTTP_URL_MAX]; /* http:// or https:// only */
    size_t body_max;            /* largest body accepted, after decoding; must be > 0 */
    const void *post;           /* POST body, borrowed until the request completes; NULL: GET */
    size_t post_len;
    const char *content_type; /* of the POST body; NULL: none sent */
    /* more header lines ("Name: value"), NULL-terminated, borrowed until the request
     * completes; NULL: none */
    const char *const *extra_headers;
    long max_redirects;       /* 0: a 3xx is the answer; n: follow at most n */
    bool decode;              /* ask for gzip/deflate, decoded under the ratio cap */
    void *data;               /* the caller's */
    /* results */
    enum cap_http_result result;
    long status; /* HTTP status of the last answer (DONE), 0 otherwise */
    char *body;  /* DONE: malloc'd, body[len] == '\0'; NULL when empty. The caller may
                    take it (set body to NULL) or leave it to cap_http_req_reset */
    size_t len;
    long retry_after_s;             /* Retry-After in seconds, -1 when absent (or 0) */
    char error[CAP_HTTP_ERROR_MAX]; /* what went wrong, naming the URL; "" for DONE */
    /* private */
    void *easy;
    void *headers;
    struct cap_policy_guard guard;
    size_t cap;
    enum cap_http_result abort;
};

struct cap_http;

/* Once per process, before any thread uses libcurl (curl_global_init). 0, or -1 with err. */
int cap_http_global_init(struct cap_err *err);
/* Undoes one cap_http_global_init. */
void cap_http_global_cleanup(void);

/* Creates a client. policy is borrowed and must outlive it; lim is copied. NULL with err.
 * Free with cap_http_free. Does not block. */
struct cap_http *cap_http_new(const struct cap_policy *policy, const struct cap_http_limits *lim,
                              struct cap_err *err);

/* Aborts what is in flight (those requests are left PENDING with their results freed) and frees
 * h. NULL is fine. */
void cap_http_free(struct cap_http *h);

/* Starts r, which must stay where it is until it completes or is cancelled. Clears r's results
 * first. 0; or -1 with err, r not started: CAP_E_LIMIT when max_inflight requests are in flight,
 * CAP_E_INVALID for a URL that is not http(s) or a body_max of 0, CAP_E_NOMEM. Does not block. */
int cap_http_start(struct cap_http *h, struct cap_http_req *r, struct cap_err *err);

/* Runs transfers for up to timeout_ms and returns one completed request (result set, no longer
 * in flight), or NULL when none completed in time or nothing is in flight. Blocks up to
 * timeout_ms. */
struct cap_http_req *cap_http_wait(struct cap_http *h, long timeout_ms);

/* Requests in flight. */
int cap_http_inflight(const struct cap_http *h);

/* Aborts r if it is in flight, then cap_http_req_reset. */
void cap_http_cancel(struct cap_http *h, struct cap_http_req *r);

/* Frees r's body and clears its results, keeping what the caller filled in. */
void cap_http_req_reset(struct cap_http_req *r);

#endif
