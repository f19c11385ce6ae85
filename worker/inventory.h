/* The inventory writer shared by the network scanner and the CT monitor: batched, fenced,
 * idempotent upserts of certificates, endpoints, observations, drift events, CT sightings and
 * findings. Runs on a job thread with the run's own PGconn; every call may block on it. */
#ifndef CAP_INVENTORY_H
#define CAP_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/x509.h"
#include "worker/executor.h"
#include "worker/findings.h"

/* Items (certificates + observations + sightings + findings) queued before a batch is written
 * on its own. Each batch costs a fixed part whatever its size (planning every statement, the
 * fence, the run's counts and progress), so fewer and larger batches cost PostgreSQL less
 * (bench/RESULTS.md, "Network scan, end to end"). 2000 items are some 500 endpoints of a scan;
 * results still reach the database within CAP_INVENTORY_FLUSH_MS. */
#define CAP_INVENTORY_BATCH 2000
/* cap_inventory_flush_if_due writes a non-empty batch whose oldest item is this old. */
#define CAP_INVENTORY_FLUSH_MS 1000
/* A re-scan that confirms (nothing changed) writes as little as it can: a certificate already
 * stored, an endpoint whose row would not change and an open finding raised again unchanged are
 * not rewritten when they were last written less than this many seconds ago, so their
 * last_seen_at (and a finding's run_id) trail the last run that saw them by at most this much.
 * Observations are written once per endpoint and run whatever changed: they are the history. */
#define CAP_INVENTORY_REFRESH_S 3600
/* Endpoints listed in the details of one certificate finding (the count is always given). */
#define CAP_INVENTORY_DETAIL_ENDPOINTS 100

/* Flags of cap_inventory_new. */
enum {
    /* The run's items done, ok and failed are set after each batch from this run's
     * endpoint_observations (done = observations + empty addresses, ok = outcome ok, failed =
     * the others), and its stats unreachable (refused or timeout) and tls_error. Without it
     * only new_certificates and drift_count are set (see cap_run_progress). */
    CAP_INVENTORY_PROGRESS_OBSERVATIONS = 1 << 0,
};

/* A DER certificate, borrowed for the duration of a call. */
struct cap_der {
    const uint8_t *der;
    size_t len;
    X509 *x509; /* der parsed, when the caller has it (a TLS peer chain); NULL: parsed here */
};

/* What one endpoint presented in this run; everything is borrowed for the duration of
 * cap_inventory_add_observation (the inventory copies what it keeps). */
struct cap_observation {
    const char *host;            /* the hostname target, or the address text for an IP target */
    const char *address;         /* IP address connected to (text, v4 or v6) */
    int port;                    /* 1..65535 */
    const char *sni;             /* server name sent; NULL or "" for none */
    bool host_is_name;           /* target was a hostname: name_mismatch is checked against host */
    const char *outcome;         /* ok | refused | timeout | tls_error | policy_block */
    const char *error;           /* why it failed (tls_error reason, ...); NULL when none */
    const char *tls_version;     /* negotiated: "TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3";
                                  * NULL when none */
    const char *cipher_suite;    /* IANA name ("TLS_AES_128_GCM_SHA256"); NULL when none */
    uint16_t kex_group_id;       /* IANA code point; 0 when unknown */
    const char *kex_group;       /* group name; NULL: cap_pqc_group_name(kex_group_id), or
                                  * "0xNNNN" for an unnamed code point */
    const struct cap_der *chain; /* certificates as the server sent them, leaf first; may be
                                  * given with tls_error (a certificate sent before the failure
                                  * is still recorded) */
    size_t chain_n;
    int verify_result;        /* -1: not checked; 0: the chain verified against the trust
                               * store; > 0: an X509_V_ERR_* code (the untrusted finding) */
    const char *verify_error; /* text of verify_result for the finding details; may be NULL */
};

struct cap_inventory;

/* Counts of what this run has written (absolute for the run, read back after each batch, so a
 * retried attempt counts what earlier attempts wrote too). */
struct cap_inventory_stats {
    int64_t certs_new;           /* discovered_certificates first seen by this run */
    int64_t drifts;              /* drift_events of this run */
    int64_t observations;        /* endpoint_observations of this run */
    int64_t ok;                  /* of which outcome ok */
    int64_t unreachable;         /* of which refused or timeout */
    int64_t tls_errors;          /* of which tls_error */
    int64_t batches;             /* batches this inventory committed */
    int64_t findings_by_version; /* unchanged findings confirmed by id and row version alone */
    int64_t certs_unsent;        /* certificates stored and seen recently: rows not sent */
};

/* Creates a writer for the run of ctx (borrowed: ctx, ctx->pg and ctx->cfg must outlive it).
 * flags: CAP_INVENTORY_*. Returns NULL with err on allocation failure. Free with
 * cap_inventory_free. Does not block. */
struct cap_inventory *cap_inventory_new(struct cap_run_ctx *ctx, unsigned flags,
                                        struct cap_err *err);

/* Frees inv and discards what was not flushed (call cap_inventory_flush first to keep it).
 * NULL does nothing. */
void cap_inventory_free(struct cap_inventory *inv);

/* Parses der and queues an upsert of discovered_certificates (first_seen_at kept, last_seen_at
 * moved when older than CAP_INVENTORY_REFRESH_S, pqc_class computed, first_seen_run_id set when
 * new; a certificate this inventory queued before is not queued again). When facts_out is
 * non-NULL it
 * receives the parsed facts (caller frees with cap_cert_facts_cleanup). Does not raise
 * certificate findings (see cap_inventory_cert_findings). Returns -1 with err
 * (CAP_E_INVALID) when der is not a certificate, and then queues nothing; or -1 when an
 * automatic flush fails (the item stays queued; facts_out is not filled). May block (automatic
 * flush when the batch is full). */
int cap_inventory_add_cert(struct cap_inventory *inv, const uint8_t *der, size_t len,
                           struct cap_cert_facts *facts_out, struct cap_err *err);

/* As cap_inventory_add_cert for a CT precert_entry: facts read from the TBSCertificate (tbs)
 * but the row keyed, stored and fingerprinted by the precertificate DER (precert, from
 * extra_data). Both are required. is_precert is set. */
int cap_inventory_add_precert(struct cap_inventory *inv, const uint8_t *precert, size_t precert_len,
                              const uint8_t *tbs, size_t tbs_len, struct cap_cert_facts *facts_out,
                              struct cap_err *err);

/* Queues one observation: the chain's certificates (as cap_inventory_add_cert; a certificate
 * that does not parse is left out of the chain and named in the observation's error; one seen
 * before by this inventory is neither queued nor, as a chain certificate without findings,
 * parsed again), the endpoint upsert (host, address, port, sni; status online for ok, offline
 * for refused or timeout, unchanged otherwise; fingerprint moved only by an ok outcome; not
 * written when nothing changed within CAP_INVENTORY_REFRESH_S), one
 * endpoint_observations row per (endpoint, run) (a repeat in the same run replaces it), drift
 * against the last ok observation of an earlier run (drift_events + a drift finding, never for
 * an outcome other than ok, at most one per endpoint and run), the certificate findings of the
 * chain (leaf: all kinds; others: expired) and the endpoint findings of
 * cap_findings_endpoint_specs. Returns -1 with err on a bad argument (unknown outcome,
 * bad port, missing address: nothing queued) or a failed automatic flush. May block. */
int cap_inventory_add_observation(struct cap_inventory *inv, const struct cap_observation *o,
                                  struct cap_err *err);

/* Queues a CT sighting (ct_sightings upsert on (source, log_url, log_index)); the certificate
 * fingerprint must have been added to this inventory (or be stored already). entry_ts_ms is
 * the log's entry timestamp in ms since 1970 (0: unknown). May block (automatic flush). */
int cap_inventory_add_sighting(struct cap_inventory *inv, const char *fingerprint_sha256,
                               const char *log_url, int64_t log_index, int64_t entry_ts_ms,
                               struct cap_err *err);

/* As cap_inventory_add_sighting for source_id (0: the run's source): the CT monitor's shared
 * reader stores one entry for every source it matches. */
int cap_inventory_add_sighting_for(struct cap_inventory *inv, int64_t source_id,
                                   const char *fingerprint_sha256, const char *log_url,
                                   int64_t log_index, int64_t entry_ts_ms, struct cap_err *err);

/* As cap_inventory_cert_findings, the findings carrying source_id (0: the run's source). */
int cap_inventory_cert_findings_for(struct cap_inventory *inv, int64_t source_id,
                                    const struct cap_cert_facts *f, bool leaf, struct cap_err *err);

/* Queues the certificate findings of f (from cap_findings_cert_specs with the
 * current time and cfg->scan_expiring_days): subject "cert:FINGERPRINT", details holding the
 * reason and the endpoints that serve the certificate. f must have a fingerprint. May block
 * (automatic flush). */
int cap_inventory_cert_findings(struct cap_inventory *inv, const struct cap_cert_facts *f,
                                bool leaf, struct cap_err *err);

/* Writes everything queued: one transaction per batch of up to CAP_INVENTORY_BATCH items,
 * each starting with cap_run_fence, using multi-row statements, and ending with the run's
 * progress (cap_run_progress, see CAP_INVENTORY_PROGRESS_OBSERVATIONS). Returns 0 (also when
 * nothing was queued), or -1 with err: CAP_E_FENCED when another attempt owns the run (drop the
 * job), else the failed statement and its SQLSTATE; the batch is rolled back and stays queued.
 * Blocks. */
int cap_inventory_flush(struct cap_inventory *inv, struct cap_err *err);

/* Flushes when the oldest queued item is older than CAP_INVENTORY_FLUSH_MS, so results are
 * written as they come even when they come slowly. Call it from time to time. 0 or -1. */
int cap_inventory_flush_if_due(struct cap_inventory *inv, struct cap_err *err);

/* Counts one address of a sweep that never completed a TCP connect and was not an endpoint
 * before: reason "silent", "closed" or "no_route". Nothing is stored for it but the count: the
 * run's items_done includes these counts and its stats carry them (keys silent, closed,
 * no_route), written with the next batch or by cap_inventory_flush_if_due within a second.
 * Returns -1 for an unknown reason (nothing counted). Does not block. */
int cap_inventory_count_empty(struct cap_inventory *inv, const char *reason);

/* Called inside every batch transaction after the batch's writes and before COMMIT, with the
 * run's PGconn; returning -1 (with err) rolls the batch back. Lets the CT monitor move its
 * checkpoint atomically with the entries it stored. NULL removes it. */
typedef int (*cap_inventory_commit_cb)(struct cap_run_ctx *ctx, void *arg, struct cap_err *err);
void cap_inventory_on_commit(struct cap_inventory *inv, cap_inventory_commit_cb cb, void *arg);

/* Counts after the last committed batch. */
void cap_inventory_stats(const struct cap_inventory *inv, struct cap_inventory_stats *out);

/* Queues a finding upsert on the open (kind, subject_key): a new open row, or the open one
 * refreshed (last_seen_at, run_id, severity, details, source, endpoint, fingerprint) when
 * something changed or it was last written CAP_INVENTORY_REFRESH_S ago or more; otherwise the
 * run records that it confirmed it (run_confirmed_findings) and the row stays as it is. The
 * severity is the catalogue's; subject_key must start with the prefix of the kind's subject
 * ("cert:FINGERPRINT", "endpoint:ID", "run:ID", "source:ID", "name:HOST"). source_id 0 means
 * the run's source; endpoint_id 0 and fingerprint NULL mean none; details_json is a JSON object
 * text (NULL: {}), checked and cleaned when queued. May block (automatic flush). */
int cap_inventory_raise(struct cap_inventory *inv, enum cap_finding_kind kind,
                        const char *subject_key, int64_t source_id, int64_t endpoint_id,
                        const char *fingerprint, const char *details_json, struct cap_err *err);

/* As cap_inventory_raise for an endpoint kind and an endpoint known by (address, port, sni)
 * rather than id (the scanner does not know endpoint ids): subject "endpoint:ID" is resolved
 * when written; the endpoint must have been observed (in this batch or before), else the
 * finding is dropped. */
int cap_inventory_raise_endpoint(struct cap_inventory *inv, enum cap_finding_kind kind,
                                 const char *address, int port, const char *sni,
                                 const char *details_json, struct cap_err *err);

/* After a run: flushes, then resolves the open findings of the run's source whose kinds the
 * catalogue says runs of `by` (CAP_FINDING_BY_SCAN, CAP_FINDING_BY_CT) resolve, that this run
 * (any of its attempts) neither wrote nor confirmed unchanged, and whose cause this run
 * re-examined: endpoint findings of endpoints this run observed; certificate findings of
 * certificates in a chain this run observed (the cause is a
 * property of the certificate), or seen only at endpoints from which this run received a
 * different chain (none of them serves it any more); run:, source: and name: findings (a
 * listed host name that resolved again). An endpoint this run did not reach, or reached
 * without receiving a certificate (refused, timeout), keeps its certificates' findings.
 * Fenced, one transaction, which also drops the run's run_confirmed_findings rows. Returns the
 * number resolved through *resolved (may be NULL): 0, or -1 with err. Blocks. */
int cap_inventory_resolve_missing(struct cap_inventory *inv, unsigned by, int64_t *resolved,
                                  struct cap_err *err);

/* The same inside the caller's open transaction, which commits it (the last shard of a run
 * resolves for the whole run in the transaction that ends it). Nothing may be queued (flush
 * first). 0, or -1 with err. */
int cap_inventory_resolve_missing_open(struct cap_inventory *inv, unsigned by, int64_t *resolved,
                                       struct cap_err *err);

#endif
