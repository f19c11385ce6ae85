/* The scan engine: one epoll event loop (its own thread) driving non-blocking connects, then
 * STARTTLS dialogues and OpenSSL handshakes. Pending connects are many and cheap (a budget paced
 * by a connect rate); a connected socket takes one of a fixed pool of TLS slots. Jobs (threads)
 * submit probes through a locked queue + eventfd and collect results; both budgets are shared
 * across jobs by what each holds, each job held to its own concurrency. See README.md. */
#ifndef CAP_SCAN_ENGINE_H
#define CAP_SCAN_ENGINE_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/targets.h"
#include "worker/scan/starttls.h"

/* Error text kept per probe result. */
#define CAP_SCAN_ERROR_MAX 200

/* One probe to run: connect to (family, addr, port), STARTTLS if asked, TLS handshake with
 * sni (NULL or "" for none), all within timeout_ms from the first SYN (time spent connected
 * and waiting for a TLS slot does not count). cap_scan_job_submit copies the strings; in a
 * result they point into the result itself and are never NULL. */
struct cap_scan_req {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int port;
    int timeout_ms;
    enum cap_starttls_proto starttls;
    const char *sni;  /* server name sent; at most CAP_HOSTNAME_MAX bytes */
    const char *host; /* target text (host name or address), for the caller; may be "" */
    uint64_t tag;     /* caller's own value */
};

/* What a probe found. outcome is one of "ok", "refused", "timeout", "tls_error". empty is set
 * when the TCP connect never completed: "silent" (no answer), "closed" (reset) or "no_route"
 * (unreachable network or host, no such address family); NULL once it connected. chain holds
 * the certificates the server sent (leaf first; also after a failed handshake when they had
 * arrived), or NULL; owned by the result. */
struct cap_scan_result {
    struct cap_scan_req req;
    const char *outcome;
    const char *empty;
    char error[CAP_SCAN_ERROR_MAX];
    char version[16];     /* "TLSv1.3", ...; "" when no handshake */
    char cipher[96];      /* IANA name, "" when none */
    char group[40];       /* group name, "" when unknown */
    uint16_t group_id;    /* IANA code point, 0 when unknown */
    bool hybrid_offered;  /* the final attempt offered a hybrid ML-KEM group */
    bool classical_retry; /* a hybrid attempt failed and was retried with classical groups */
    STACK_OF(X509) * chain;
    int64_t elapsed_ms;
    struct cap_scan_result *next; /* list link (results come back as a list) */
};

struct cap_scan_engine;
struct cap_scan_job;

/* Engine counters, for tests and metrics. */
struct cap_scan_engine_stats {
    int slots;         /* TLS slots (worker.max_concurrent_discovery) */
    int inflight;      /* probes holding a TLS slot now */
    int inflight_peak; /* most probes holding TLS slots at once */
    uint64_t started, finished;
    int connecting, starttls, handshaking; /* probes per phase now (connecting: pending and
                                            * hybrid-retry connects alike) */
    int pending_max;         /* the pending-connect budget (scan.max_pending_connects, as fitted) */
    int pending;             /* pending connects and connected sockets waiting for a TLS slot */
    int pending_peak;        /* most of them at once */
    int waiting;             /* connected, waiting for a TLS slot */
    int connect_rate;        /* connects per second (scan.connect_rate) */
    uint64_t requeued;       /* probes queued again: a connected socket that waited 1 s for a
                              * slot, or a local failure */
    uint64_t local_failures; /* sockets, epoll entries or TLS states this worker could not
                              * create (never counted against the endpoint) */
    bool hybrid;             /* ML-KEM hybrid groups offered (OpenSSL >= 3.5 at run time) */
};

/* Engine settings. */
struct cap_scan_engine_opts {
    int slots;                /* TLS slots: STARTTLS dialogues and handshakes at once */
    int max_pending_connects; /* connects in progress (and connected sockets waiting) at once */
    int connect_rate;         /* new connects per second, the whole engine */
    const char *first_groups; /* NULL: hybrid ML-KEM first when OpenSSL >= 3.5 (see below) */
    int reserve_fds;          /* descriptors kept for the rest of the process (0: 256) */
};

/* Creates the engine and starts its loop thread. Raises the open-file soft limit to fit the
 * slots and pending connects; when the hard limit is lower, the pending-connect budget (then
 * the slots) is cut to fit, with a warning that names the limit. Returns NULL with err. Free
 * with cap_scan_engine_free. */
struct cap_scan_engine *cap_scan_engine_new_opts(const struct cap_scan_engine_opts *o,
                                                 struct cap_err *err);

/* As cap_scan_engine_new_opts with `slots` TLS slots and the worker defaults (8192 pending
 * connects, 2000 connects per second). */
struct cap_scan_engine *cap_scan_engine_new(int slots, struct cap_err *err);

/* As cap_scan_engine_new with the group list offered first given by the caller instead of
 * the hybrid ML-KEM list (used when OpenSSL >= 3.5): first attempts offer first_groups, and a
 * handshake that fails with them is retried once with the classical list. NULL first_groups
 * means the automatic choice. For tests of the retry on any OpenSSL. */
struct cap_scan_engine *cap_scan_engine_new_groups(int slots, const char *first_groups,
                                                   struct cap_err *err);

/* Stops the loop thread and frees the engine. Every job must have been freed. NULL is fine. */
void cap_scan_engine_free(struct cap_scan_engine *e);

/* Copies the engine's counters into out. Thread-safe; does not block on I/O. */
void cap_scan_engine_stats(struct cap_scan_engine *e, struct cap_scan_engine_stats *out);

/* Registers a job that holds at most `concurrency` TLS slots at once (STARTTLS dialogues and
 * handshakes). Returns NULL with err. Free with cap_scan_job_free (on the thread that uses
 * it). */
struct cap_scan_job *cap_scan_job_new(struct cap_scan_engine *e, int concurrency,
                                      struct cap_err *err);

/* Caps the job's own connects per second below the engine's (0: the engine's rate only).
 * Call before submitting. */
void cap_scan_job_set_connect_rate(struct cap_scan_job *j, int per_second);

/* Queues one probe (copied). Never blocks on the network; the caller bounds how many it keeps
 * outstanding (cap_scan_job_outstanding). 0, or -1 with err (out of memory). */
int cap_scan_job_submit(struct cap_scan_job *j, const struct cap_scan_req *req,
                        struct cap_err *err);

/* Waits up to timeout_ms for results and returns every result ready so far as a list (oldest
 * first; caller frees with cap_scan_result_free), or NULL when none came in time. */
struct cap_scan_result *cap_scan_job_wait(struct cap_scan_job *j, int timeout_ms);

/* Probes submitted and not yet returned by cap_scan_job_wait. */
size_t cap_scan_job_outstanding(struct cap_scan_job *j);

/* Most probes of this job in slots at once. */
int cap_scan_job_peak(struct cap_scan_job *j);

/* Drops the job's queued probes and aborts its probes in flight (no results for them), waits
 * until the loop lets go of them, frees unread results and the job. NULL is fine. Blocks
 * briefly (one loop iteration). */
void cap_scan_job_free(struct cap_scan_job *j);

/* Frees a list of results. NULL is fine. */
void cap_scan_result_free(struct cap_scan_result *r);

/* The IANA code point of an OpenSSL group NID as SSL_get_negotiated_group returns it (a group
 * OpenSSL knows only by provider carries it in the low bits), or 0; the table is common/pqc.c. */
uint16_t cap_scan_group_codepoint(int nid);

#endif
