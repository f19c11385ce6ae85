/* Webhook deliveries (notify_deliver jobs): a small pool of threads, each with its own
 * PostgreSQL and Redis connection and HTTP client, that claims a delivery (fenced by its
 * attempts), posts it through the network policy and records the outcome: delivered, retried
 * with backoff, or dead (and dead-lettered). */
#ifndef CAP_DELIVER_H
#define CAP_DELIVER_H

#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "common/job.h"
#include "common/notify.h"
#include "common/policy.h"

/* Threads posting deliveries at once in one worker. */
#define CAP_DELIVER_THREADS 2
/* Jobs waiting for a thread; more are left pending in the stream for a later reclaim. */
#define CAP_DELIVER_QUEUE_MAX 256
/* Largest answer body read from a webhook (it is only logged, cut short). */
#define CAP_DELIVER_BODY_MAX 65536

enum cap_deliver_outcome {
    CAP_DELIVER_DELIVERED, /* 2xx */
    CAP_DELIVER_RETRY,     /* 429, 5xx, timeout, connection failure: try again later */
    CAP_DELIVER_DEAD,      /* any other answer, or the network policy refused the address */
};

struct cap_deliver_result {
    enum cap_deliver_outcome outcome;
    long http_status;   /* 0 when no answer came */
    long retry_after_s; /* -1 when absent */
    char error[400];    /* "" when delivered; never the URL's path or credentials */
};

/* Posts body to w (Content-Type ctype, Idempotency-Key key, Authorization when w has a token)
 * through policy, within w->timeout_ms, and classifies the outcome. 0 with res filled, or -1
 * with err for a local failure (out of memory, libcurl set-up). cap_http_global_init must have
 * been called. Blocks up to w->timeout_ms. */
int cap_deliver_post(const struct cap_webhook *w, const struct cap_policy *policy, const char *body,
                     const char *ctype, const char *key, struct cap_deliver_result *res,
                     struct cap_err *err);

/* Retry delay after failed attempt number attempt (1, 2, ...): 2^(attempt-1) seconds capped at
 * 10 minutes, or Retry-After when that is longer (capped at an hour). */
int64_t cap_deliver_backoff_s(int64_t attempt, long retry_after_s);

struct cap_deliverer;

/* Starts the delivery threads of a worker (consumer name, copied). NULL with err. */
struct cap_deliverer *cap_deliverer_new(const struct cap_config *cfg, const char *consumer,
                                        struct cap_err *err);

/* Hands a decoded notify_deliver job (stream entry id copied) to a thread. 0, or -1 when the
 * queue is full: the message stays pending and comes back through XAUTOCLAIM. Never blocks on
 * the network. */
int cap_deliverer_submit(struct cap_deliverer *d, const char *entry_id, const struct cap_job *job);

/* Stops taking jobs, lets each thread finish the post it is in (bounded by the webhook's
 * timeout), joins them and frees d. Jobs still queued stay pending in the stream. NULL is
 * fine. */
void cap_deliverer_free(struct cap_deliverer *d);

#endif
