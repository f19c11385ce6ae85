/* Revocation checks of the certificates a scan found: OCSP (the AIA responders) and CRL
 * distribution points, fetched with libcurl's multi interface under the network policy (every
 * URL and redirect), answers cached in scan_revocation_cache until the responder's next
 * update. A revoked leaf is a critical `revoked` finding; a responder that is down is a fact in
 * discovered_certificates.revocation, never a failed run. Runs on the job thread. */
#ifndef CAP_SCAN_REVOCATION_H
#define CAP_SCAN_REVOCATION_H

#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdint.h>

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

/* What one OCSP response or CRL says about one certificate. */
enum cap_revocation_status {
    CAP_REVOCATION_NONE = 0, /* nothing usable: why says what was wrong */
    CAP_REVOCATION_GOOD,
    CAP_REVOCATION_REVOKED,
    CAP_REVOCATION_UNKNOWN /* the responder does not know the certificate */
};

struct cap_revocation_answer {
    enum cap_revocation_status status;
    int64_t revoked_at, this_update, next_update; /* Unix seconds, 0 when absent */
    char reason[64];                              /* revocation reason, "" when none given */
    char why[128];                                /* status NONE: what was wrong */
};

/* Reads an OCSP response body (DER, as a responder sent it) about leaf, which issuer must have
 * signed (checked): the response must be successful, signed by the issuer or by a responder
 * certificate the issuer issued, cover leaf, and be within its validity window (5 minutes of
 * clock skew allowed; without a nextUpdate, a thisUpdate at most 7 days old). next_update is
 * capped at 7 days from now (the cache lifetime). Returns 0 with *out, or -1 with out->why
 * naming what was wrong. No I/O; any bytes are safe. */
int cap_revocation_read_ocsp(const uint8_t *buf, size_t len, X509 *leaf, X509 *issuer,
                             struct cap_revocation_answer *out);

/* Parses a CRL as a distribution point served it (DER, or PEM), at most
 * CAP_REVOCATION_CRL_MAX bytes. NULL when it is not one. Free with X509_CRL_free. */
X509_CRL *cap_revocation_parse_crl(const uint8_t *buf, size_t len);

/* What crl, fetched from url (NULL: unknown), says about leaf, which issuer must have signed
 * (checked). The CRL must verify against issuer's key and name issuer; be a complete CRL for
 * the issuer's end-entity certificates (no delta CRL, no issuing distribution point limited to
 * CA or attribute certificates, some reasons or an indirect CRL, nor naming a URL other than
 * url; no critical extension not understood); have a lastUpdate not in the future and not be
 * past its nextUpdate (without one, at most 7 days old). next_update is capped at 7 days from
 * now. Returns 0 with *out (GOOD or REVOKED, with the date and reason), or -1 with out->why. */
int cap_revocation_crl_answer(X509_CRL *crl, X509 *leaf, X509 *issuer, const char *url,
                              struct cap_revocation_answer *out);

/* Frees rv and everything it holds. NULL is fine. */
void cap_revocation_free(struct cap_revocation *rv);

#endif
