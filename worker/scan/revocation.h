/* Revocation checks of the certificates a scan found: OCSP (the AIA responders) and CRL
 * distribution points, fetched with libcurl's multi interface under the network policy (every
 * URL and redirect), answers cached in scan_revocation_cache until the responder's next
 * update. A revoked leaf is a critical `revoked` finding; a responder that is down is a fact in
 * discovered_certificates.revocation, never a failed run. Runs on the job thread. */
#ifndef CAP_SCAN_REVOCATION_H
#define CAP_SCAN_REVOCATION_H

#include <openssl/x509.h>
#include <stdatomic.h>

#include "common/err.h"
#include "common/policy.h"
#include "worker/executor.h"
#include "worker/inventory.h"

/* Certificates checked per run at most (the rest are counted as not checked in the log): each
 * holds its leaf and issuer (a few KB) until the run ends. */
#define CAP_REVOCATION_MAX_CERTS 4096
/* Transfers in flight at once. */
#define CAP_REVOCATION_PARALLEL 16
/* Largest OCSP response and CRL accepted. */
#define CAP_REVOCATION_OCSP_MAX (64 * 1024)
#define CAP_REVOCATION_CRL_MAX (8 * 1024 * 1024)

struct cap_revocation;

/* Once per process, before any thread uses libcurl (curl_global_init). 0 or -1. */
int cap_revocation_global_init(struct cap_err *err);
void cap_revocation_global_cleanup(void);

/* A checker for the run of ctx, writing through inv; every transfer is held to policy and to
 * timeout_ms. Borrowed pointers must outlive it. NULL with err on allocation failure. */
struct cap_revocation *cap_revocation_new(struct cap_run_ctx *ctx, struct cap_inventory *inv,
                                          const struct cap_policy *policy, int timeout_ms,
                                          struct cap_err *err);

/* Queues the leaf of chain (leaf first; the next certificate, when present, is taken as its
 * issuer) unless already queued. Keeps references, copies nothing else. Never blocks. */
void cap_revocation_add_chain(struct cap_revocation *rv, STACK_OF(X509) * chain);

/* Checks everything queued: reads the cache, asks the responders that are not cached (at most
 * CAP_REVOCATION_PARALLEL at once, within budget_ms, stopping early when *stopping is set),
 * then writes the cache, each certificate's revocation facts and the revoked findings (through
 * the inventory; the caller flushes). Call after the certificates were flushed. Returns 0, or
 * -1 with err only for database failures (CAP_E_FENCED included): responder failures are facts.
 * Blocks. */
int cap_revocation_finish(struct cap_revocation *rv, const atomic_int *stopping, int budget_ms,
                          struct cap_err *err);

/* Frees rv and everything it holds. NULL is fine. */
void cap_revocation_free(struct cap_revocation *rv);

#endif
