/* Revocation checks of the certificates a scan found: OCSP (the AIA responders) and CRL
 * distribution points, fetched with libcurl's multi interface under the network policy, answers
 * cached in scan_revocation_cache until the responder's next update. A revoked leaf is a
 * critical `revoked` finding; a responder that is down is a fact in
 * discovered_certificates.revocation, never a failed run. Runs on the job thread.
 *
 * The URLs come from the scanned certificates, so whoever runs a scanned host chooses them.
 * They are fetched only for a leaf whose issuer is proven (the issuer sent in the chain signed
 * it), only on ports 80 and 443, without following redirects, within
 * CAP_REVOCATION_RUN_BYTES_MAX bytes of answers per run; what is stored of a fetch is what an
 * answer signed by the issuer says (status, reason, dates), or one of a few fixed texts (never
 * an HTTP status, a transport error or a body). Every text from outside is cleaned before it is
 * written, and each certificate's facts are written on their own: one refused write costs that
 * certificate only, recorded as a fact on it. */
#ifndef CAP_SCAN_REVOCATION_H
#define CAP_SCAN_REVOCATION_H

#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
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
/* Bytes of answers one run may receive in all. Each fetch holds its cap (OCSP or CRL) of it
 * while in flight and gives back what it did not receive once it answered; a fetch that failed
 * (refused by the policy included) keeps its whole cap counted: how much it received is not
 * known. A fetch that does not fit waits for others to answer, or is not made once none are in
 * flight. */
#define CAP_REVOCATION_RUN_BYTES_MAX (64u * 1024 * 1024)
/* URLs of this many bytes or more are not fetched (the certificate holds them: outside text). */
#define CAP_REVOCATION_URL_MAX 512
/* Errors listed in one certificate's facts; more are counted (errors_more). */
#define CAP_REVOCATION_ERRORS_MAX 8

struct cap_revocation;

/* Once per process, before any thread uses libcurl (curl_global_init). 0 or -1. */
int cap_revocation_global_init(struct cap_err *err);
void cap_revocation_global_cleanup(void);

/* A checker for the run of ctx, writing through inv; every transfer is held to policy and to
 * timeout_ms. Borrowed pointers must outlive it. NULL with err on allocation failure. */
struct cap_revocation *cap_revocation_new(struct cap_run_ctx *ctx, struct cap_inventory *inv,
                                          const struct cap_policy *policy, int timeout_ms,
                                          struct cap_err *err);

/* Queues the leaf of chain (leaf first) unless already queued. The next certificate is its
 * issuer only if its key verifies the leaf's signature; without a proven issuer nothing is
 * fetched for the leaf (its URLs are recorded as not asked). URLs that
 * cap_revocation_check_url refuses are recorded, never fetched. Keeps references to the leaf
 * and issuer, copies the URLs. Never blocks. */
void cap_revocation_add_chain(struct cap_revocation *rv, STACK_OF(X509) * chain);

/* Checks everything queued: reads the cache, asks the responders that are not cached (at most
 * CAP_REVOCATION_PARALLEL at once, within budget_ms and CAP_REVOCATION_RUN_BYTES_MAX, stopping
 * early when *stopping is set; each answer is read and its bytes freed as it arrives), then
 * writes the cache and each certificate's revocation facts (one transaction, a savepoint per
 * certificate: a certificate whose writes are refused gets a fact saying so instead) and the
 * revoked findings (through the inventory; the caller flushes). Call after the certificates
 * were flushed. Returns 0, or -1 with err only when the database fails as a whole (fencing
 * with CAP_E_FENCED, a lost connection, the commit): responder failures and one certificate's
 * refused writes are facts. Blocks. */
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
    bool signed_by_issuer; /* status NONE: the answer's signature verified against the issuer,
                            * so why is about data the issuer signed (a stale CRL, an OCSP
                            * answer about another certificate) and may be stored; false: why
                            * is about bytes anyone could have sent, and goes to the log only */
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

/* Whether a URL of a certificate (len bytes as the certificate holds it) may be fetched:
 * "http://" or "https://", only the characters RFC 3986 allows (printable ASCII, no space,
 * quote, backslash or control, no NUL), shorter than CAP_REVOCATION_URL_MAX, with a host, and
 * port 80 or 443 (given, or the scheme's default), read by libcurl's own URL parser. 0; or -1
 * with *why, a fixed text that quotes nothing of the URL. Pure. */
int cap_revocation_check_url(const char *url, size_t len, const char **why);

/* ---- the write path: facts to JSON to SQL parameters ---- */

/* One URL that gave no answer. */
struct cap_revocation_error {
    const char *url; /* as the certificate holds it (any bytes, url_len of them); NULL: none */
    size_t url_len;
    const char *error; /* why (any bytes, NUL-terminated) */
};

/* What the check of one certificate came to. Strings are borrowed; any bytes are accepted, as
 * cap_revocation_row_build cleans them. */
struct cap_revocation_facts {
    const char *fingerprint; /* SHA-256 of the certificate, 64 lower-case hex */
    const char *status;      /* "good" | "revoked" | "unknown" (an answer) | "error" */
    const char *method;      /* an answer: "ocsp" | "crl" */
    const char *url;         /* an answer: the URL that gave it */
    bool cached;             /* an answer: read from scan_revocation_cache, not fetched */
    int64_t revoked_at, this_update, next_update; /* Unix seconds, 0 when absent */
    const char *reason; /* revoked: the revocation reason; NULL or "" when none */
    const struct cap_revocation_error *errors; /* the first CAP_REVOCATION_ERRORS_MAX are listed */
    size_t errors_n;
    size_t errors_more; /* errors not in the array, only counted */
};

/* SQL_CACHE_PUT's parameters: fingerprint, url, method, status, revoked_at, reason,
 * this_update, next_update (times as Unix seconds, "0" when absent). */
#define CAP_REVOCATION_CACHE_PARAMS 8

/* The text parameters of one certificate's writes: valid UTF-8 without NUL or control
 * characters, times within years 1 to 9999, and values the tables' checks accept. */
struct cap_revocation_row {
    char *facts; /* discovered_certificates.revocation: a JSON object (checked_at, status;
                  * an answer: method, url, cached, next_update; revoked: revoked_at, reason;
                  * errors: [{url, error}], at most CAP_REVOCATION_ERRORS_MAX, errors_more) */
    char *cache[CAP_REVOCATION_CACHE_PARAMS]; /* a scan_revocation_cache row for an answer
                                               * just fetched; all NULL when none */
};

/* Builds the row of f at time now (Unix seconds): outside text cut to CAP_REVOCATION_URL_MAX
 * bytes and cleaned (invalid UTF-8 and controls as \xNN), times out of range left out, a
 * cache row only for a fetched answer whose next update is after now (at most 7 days on).
 * Returns 0 with *out (free with cap_revocation_row_cleanup), or -1 with err: CAP_E_INVALID
 * for a fingerprint or status not as described, CAP_E_NOMEM. Pure. */
int cap_revocation_row_build(const struct cap_revocation_facts *f, int64_t now,
                             struct cap_revocation_row *out, struct cap_err *err);

/* Frees what row holds and zeroes it. NULL is fine. */
void cap_revocation_row_cleanup(struct cap_revocation_row *row);

/* Frees rv and everything it holds. NULL is fine. */
void cap_revocation_free(struct cap_revocation *rv);

#endif
