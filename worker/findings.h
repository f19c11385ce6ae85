/* The catalogue of finding kinds (severity, subject, which executor raises each and which run
 * resolves it), the pure rules that decide certificate and endpoint findings, and the details
 * those findings carry. The inventory writer (worker/inventory.h) stores what they decide;
 * docs/findings.md is checked against the catalogue by tests/unit/test_findings.c. */
#ifndef CAP_FINDINGS_H
#define CAP_FINDINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/x509.h"

/* Every kind a worker raises. A new kind is a value here and a row in the catalogue
 * (worker/findings.c) and in docs/findings.md. */
enum cap_finding_kind {
    CAP_FINDING_EXPIRED,
    CAP_FINDING_REVOKED,
    CAP_FINDING_SELF_SIGNED,
    CAP_FINDING_WEAK_SIGNATURE,
    CAP_FINDING_WEAK_KEY,
    CAP_FINDING_DEPRECATED_TLS,
    CAP_FINDING_WEAK_CIPHER,
    CAP_FINDING_EXPIRING,
    CAP_FINDING_NAME_MISMATCH,
    CAP_FINDING_UNTRUSTED,
    CAP_FINDING_DRIFT,
    CAP_FINDING_POLICY_BLOCK,
    CAP_FINDING_UNREACHABLE,
    CAP_FINDING_UNRESOLVABLE,
    CAP_FINDING_TLS_ERROR,
    CAP_FINDING_SAN_CASE_DUPLICATE,
    CAP_FINDING_PQC_VULNERABLE,
    CAP_FINDING_CT_NEW_CERTIFICATE,
    CAP_FINDING_CT_UNEXPECTED_ISSUER,
    CAP_FINDING_CT_LOG_MISBEHAVING,
    CAP_FINDING_KINDS /* the number of kinds */
};

/* What a finding is about; its findings.subject_key starts with the prefix given. */
enum cap_finding_subject {
    CAP_FINDING_ON_CERTIFICATE, /* "cert:FINGERPRINT" */
    CAP_FINDING_ON_ENDPOINT,    /* "endpoint:ID" */
    CAP_FINDING_ON_RUN,         /* "run:ID" */
    CAP_FINDING_ON_SOURCE,      /* "source:ID" */
    CAP_FINDING_ON_NAME,        /* "name:HOST" */
};

/* Who raises a kind, and whose runs resolve it (bit flags). */
enum {
    CAP_FINDING_BY_SCAN = 1 << 0,       /* a network_scan run */
    CAP_FINDING_BY_REVOCATION = 1 << 1, /* the revocation checker, inside a network_scan run */
    CAP_FINDING_BY_CT = 1 << 2,         /* a ct_log run */
};

/* One row of the catalogue. */
struct cap_finding_def {
    enum cap_finding_kind id;
    const char *kind;     /* as stored in findings.kind: "expired", ... */
    const char *severity; /* "critical" | "high" | "medium" | "low" | "info" */
    enum cap_finding_subject subject;
    unsigned raised_by; /* CAP_FINDING_BY_* */
    /* Runs of these executors resolve an open finding of their source whose cause they
     * re-examined and no longer found (see cap_inventory_resolve_missing). 0: no run does;
     * people resolve it (drift, revoked, the CT sightings). */
    unsigned resolved_by;
    bool unmanaged_only; /* raised only for a certificate not in managed_certificates */
};

/* The catalogue row of kind; kind must be a valid enum value (asserted). Does not block. */
const struct cap_finding_def *cap_findings_def(enum cap_finding_kind kind);

/* The catalogue row named kind, or NULL when no such kind exists. */
const struct cap_finding_def *cap_findings_lookup(const char *kind);

/* The subject_key prefix of a subject ("cert:", "endpoint:", "run:", "source:", "name:") and
 * its name in docs/findings.md ("certificate", "endpoint", "run", "source", "name"). */
const char *cap_findings_subject_prefix(enum cap_finding_subject subject);
const char *cap_findings_subject_name(enum cap_finding_subject subject);

/* The name of one CAP_FINDING_BY_* bit in docs/findings.md ("network_scan", "revocation",
 * "ct_log"), or NULL for anything else. */
const char *cap_findings_by_name(unsigned by);

/* The kinds whose resolved_by includes a bit of by, in catalogue order: fills out[0..max) with
 * the static names and returns how many there are (may exceed max). */
size_t cap_findings_resolve_kinds(unsigned by, const char **out, size_t max);

/* ---- the pure rules ---- */

/* One finding a rule decided on. */
#define CAP_FINDING_REASON_MAX 512
struct cap_finding_spec {
    enum cap_finding_kind id;
    const char *kind;                    /* the catalogue's name (static) */
    const char *severity;                /* the catalogue's severity (static) */
    bool unmanaged_only;                 /* the catalogue's unmanaged_only */
    char reason[CAP_FINDING_REASON_MAX]; /* human text, stored as details.reason */
};

/* The certificate findings of f at time now (Unix seconds): expired (leaf or chain), and for a
 * leaf: self_signed, weak_signature, weak_key, expiring within expiring_days, san_case_duplicate,
 * pqc_vulnerable for the vulnerable and transition buckets. Fills out[0..max) (out may be NULL
 * when max is 0) and returns the number of findings (may exceed max). Pure. */
size_t cap_findings_cert_specs(const struct cap_cert_facts *f, bool leaf, int64_t now,
                               int expiring_days, struct cap_finding_spec *out, size_t max);

struct cap_observation; /* worker/inventory.h */

/* The endpoint findings of an observation (leaf: facts of the leaf or NULL): unreachable for
 * refused/timeout; tls_error; for a handshake that completed: deprecated_tls for SSL, TLS 1.0
 * and 1.1; weak_cipher for RC4, 3DES, DES, EXPORT, NULL and anonymous suites; name_mismatch for
 * a hostname target the leaf does not cover; untrusted when verify_result > 0. Returns the count
 * (may exceed max). Pure. */
size_t cap_findings_endpoint_specs(const struct cap_observation *o,
                                   const struct cap_cert_facts *leaf, struct cap_finding_spec *out,
                                   size_t max);

/* ---- details ---- */

/* The details of a certificate finding as JSON object text: the reason and the certificate's
 * identifying facts (with the offending names for san_case_duplicate). Caller frees; NULL when
 * out of memory. */
char *cap_findings_cert_details(const struct cap_finding_spec *s, const struct cap_cert_facts *f);

/* The details of an endpoint finding of observation o as JSON object text: the reason, the
 * endpoint, the outcome and error (error: the text stored with the observation), the TLS
 * parameters and leaf_fp (may be NULL). Caller frees; NULL when out of memory. */
char *cap_findings_endpoint_details(const struct cap_finding_spec *s,
                                    const struct cap_observation *o, const char *error,
                                    const char *leaf_fp);

/* A caller's details text checked to be a JSON object (NULL: "{}"), with every string and key
 * made valid UTF-8 without NUL or controls (jsonb refuses those, and a refused batch would be
 * retried for ever). Returns it re-serialised (caller frees), or NULL with err (CAP_E_INVALID
 * naming kind, or CAP_E_NOMEM). */
char *cap_findings_details_clean(const char *details_json, const char *kind, struct cap_err *err);

#endif
