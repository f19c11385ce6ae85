/* The finding catalogue: one row per kind, the pure rules that decide certificate and endpoint
 * findings from facts and observations, and the JSON details each finding carries. Nothing here
 * touches the database. */
#include "worker/findings.h"

#include <assert.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/pqc.h"
#include "worker/inventory.h"

/* ---- the catalogue ---- */

#define SCAN CAP_FINDING_BY_SCAN
#define REVOCATION CAP_FINDING_BY_REVOCATION
#define CT CAP_FINDING_BY_CT
#define CERT CAP_FINDING_ON_CERTIFICATE
#define ENDPOINT CAP_FINDING_ON_ENDPOINT

/* Severities follow the product's (../shared/DESIGN.md, "Inventory"). The certificate rules run
 * for a scanned leaf and for a CT match alike; only a network_scan run re-examines a
 * certificate, so only it resolves them. */
static const struct cap_finding_def catalogue[CAP_FINDING_KINDS] = {
    [CAP_FINDING_EXPIRED] = {CAP_FINDING_EXPIRED, "expired", "critical", CERT, SCAN | CT, SCAN,
                             false},
    [CAP_FINDING_REVOKED] = {CAP_FINDING_REVOKED, "revoked", "critical", CERT, REVOCATION, 0,
                             false},
    [CAP_FINDING_SELF_SIGNED] = {CAP_FINDING_SELF_SIGNED, "self_signed", "high", CERT, SCAN | CT,
                                 SCAN, false},
    [CAP_FINDING_WEAK_SIGNATURE] = {CAP_FINDING_WEAK_SIGNATURE, "weak_signature", "high", CERT,
                                    SCAN | CT, SCAN, false},
    [CAP_FINDING_WEAK_KEY] = {CAP_FINDING_WEAK_KEY, "weak_key", "high", CERT, SCAN | CT, SCAN,
                              false},
    [CAP_FINDING_DEPRECATED_TLS] = {CAP_FINDING_DEPRECATED_TLS, "deprecated_tls", "high", ENDPOINT,
                                    SCAN, SCAN, false},
    [CAP_FINDING_WEAK_CIPHER] = {CAP_FINDING_WEAK_CIPHER, "weak_cipher", "high", ENDPOINT, SCAN,
                                 SCAN, false},
    [CAP_FINDING_EXPIRING] = {CAP_FINDING_EXPIRING, "expiring", "medium", CERT, SCAN | CT, SCAN,
                              .unmanaged_only = true},
    [CAP_FINDING_NAME_MISMATCH] = {CAP_FINDING_NAME_MISMATCH, "name_mismatch", "medium", ENDPOINT,
                                   SCAN, SCAN, false},
    [CAP_FINDING_UNTRUSTED] = {CAP_FINDING_UNTRUSTED, "untrusted", "medium", ENDPOINT, SCAN, SCAN,
                               false},
    [CAP_FINDING_DRIFT] = {CAP_FINDING_DRIFT, "drift", "medium", ENDPOINT, SCAN, 0, false},
    [CAP_FINDING_POLICY_BLOCK] = {CAP_FINDING_POLICY_BLOCK, "policy_block", "medium",
                                  CAP_FINDING_ON_RUN, SCAN, SCAN, false},
    [CAP_FINDING_UNREACHABLE] = {CAP_FINDING_UNREACHABLE, "unreachable", "low", ENDPOINT, SCAN,
                                 SCAN, false},
    [CAP_FINDING_UNRESOLVABLE] = {CAP_FINDING_UNRESOLVABLE, "unresolvable", "low",
                                  CAP_FINDING_ON_NAME, SCAN, SCAN, false},
    [CAP_FINDING_TLS_ERROR] = {CAP_FINDING_TLS_ERROR, "tls_error", "low", ENDPOINT, SCAN, SCAN,
                               false},
    [CAP_FINDING_SAN_CASE_DUPLICATE] = {CAP_FINDING_SAN_CASE_DUPLICATE, "san_case_duplicate", "low",
                                        CERT, SCAN | CT, SCAN, false},
    [CAP_FINDING_PQC_VULNERABLE] = {CAP_FINDING_PQC_VULNERABLE, "pqc_vulnerable", "info", CERT,
                                    SCAN | CT, SCAN, false},
    [CAP_FINDING_CT_NEW_CERTIFICATE] = {CAP_FINDING_CT_NEW_CERTIFICATE, "ct_new_certificate",
                                        "info", CERT, CT, 0, false},
    [CAP_FINDING_CT_UNEXPECTED_ISSUER] = {CAP_FINDING_CT_UNEXPECTED_ISSUER, "ct_unexpected_issuer",
                                          "high", CERT, CT, 0, false},
    [CAP_FINDING_CT_LOG_MISBEHAVING] = {CAP_FINDING_CT_LOG_MISBEHAVING, "ct_log_misbehaving",
                                        "high", CAP_FINDING_ON_SOURCE, CT, CT, false},
};

#undef SCAN
#undef REVOCATION
#undef CT
#undef CERT
#undef ENDPOINT

const struct cap_finding_def *cap_findings_def(enum cap_finding_kind kind)
{
    assert(kind >= 0 && kind < CAP_FINDING_KINDS && catalogue[kind].kind);
    return &catalogue[kind];
}

const struct cap_finding_def *cap_findings_lookup(const char *kind)
{
    for (size_t i = 0; kind && i < CAP_FINDING_KINDS; i++) {
        if (catalogue[i].kind && strcmp(catalogue[i].kind, kind) == 0) {
            return &catalogue[i];
        }
    }
    return NULL;
}

static const struct {
    const char *prefix;
    const char *name;
} subjects[] = {
    [CAP_FINDING_ON_CERTIFICATE] = {"cert:", "certificate"},
    [CAP_FINDING_ON_ENDPOINT] = {"endpoint:", "endpoint"},
    [CAP_FINDING_ON_RUN] = {"run:", "run"},
    [CAP_FINDING_ON_SOURCE] = {"source:", "source"},
    [CAP_FINDING_ON_NAME] = {"name:", "name"},
};

const char *cap_findings_subject_prefix(enum cap_finding_subject subject)
{
    return subjects[subject].prefix;
}

const char *cap_findings_subject_name(enum cap_finding_subject subject)
{
    return subjects[subject].name;
}

const char *cap_findings_by_name(unsigned by)
{
    switch (by) {
    case CAP_FINDING_BY_SCAN:
        return "network_scan";
    case CAP_FINDING_BY_REVOCATION:
        return "revocation";
    case CAP_FINDING_BY_CT:
        return "ct_log";
    default:
        return NULL;
    }
}

size_t cap_findings_resolve_kinds(unsigned by, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < CAP_FINDING_KINDS; i++) {
        if (catalogue[i].resolved_by & by) {
            if (out && n < max) {
                out[n] = catalogue[i].kind;
            }
            n++;
        }
    }
    return n;
}

/* ---- the pure rules ---- */

static size_t add_spec(struct cap_finding_spec *out, size_t max, size_t n,
                       enum cap_finding_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static size_t add_spec(struct cap_finding_spec *out, size_t max, size_t n,
                       enum cap_finding_kind kind, const char *fmt, ...)
{
    if (out && n < max) {
        const struct cap_finding_def *d = cap_findings_def(kind);
        out[n].id = kind;
        out[n].kind = d->kind;
        out[n].severity = d->severity;
        out[n].unmanaged_only = d->unmanaged_only;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(out[n].reason, sizeof(out[n].reason), fmt, ap);
        va_end(ap);
    }
    return n + 1;
}

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(out, 32, "%lld", (long long)t);
    }
}

size_t cap_findings_cert_specs(const struct cap_cert_facts *f, bool leaf, int64_t now,
                               int expiring_days, struct cap_finding_spec *out, size_t max)
{
    size_t n = 0;
    char when[32];
    if (f->has_validity && f->not_after < now) {
        iso_time(f->not_after, when);
        n = add_spec(out, max, n, CAP_FINDING_EXPIRED, "expired at %s", when);
    }
    if (!leaf) {
        return n;
    }
    if (f->self_signed) {
        n = add_spec(out, max, n, CAP_FINDING_SELF_SIGNED,
                     "issuer equals subject and the certificate's own key verifies it");
    }
    if (cap_x509_weak_signature(f)) {
        n = add_spec(out, max, n, CAP_FINDING_WEAK_SIGNATURE, "signed with %s",
                     f->signature_algorithm);
    }
    if (cap_x509_weak_key(f)) {
        n = add_spec(out, max, n, CAP_FINDING_WEAK_KEY, "%s key of %d bits", f->key_algorithm,
                     f->key_bits);
    }
    if (f->has_validity && f->not_after >= now &&
        f->not_after < now + (int64_t)expiring_days * 86400) {
        iso_time(f->not_after, when);
        n = add_spec(out, max, n, CAP_FINDING_EXPIRING, "expires at %s, within %d days", when,
                     expiring_days);
    }
    if (cap_x509_san_case_duplicates(f, NULL, 0) > 0) {
        n = add_spec(out, max, n, CAP_FINDING_SAN_CASE_DUPLICATE,
                     "DNS names that differ only in case");
    }
    const char *bucket = cap_pqc_class_cert(f);
    if (strcmp(bucket, CAP_PQC_VULNERABLE) == 0 || strcmp(bucket, CAP_PQC_TRANSITION) == 0) {
        char key[96];
        if (f->key_curve && *f->key_curve) {
            snprintf(key, sizeof(key), "%s %s", f->key_algorithm, f->key_curve);
        } else if (f->key_bits > 0) {
            snprintf(key, sizeof(key), "%s %d", f->key_algorithm, f->key_bits);
        } else {
            snprintf(key, sizeof(key), "%s", f->key_algorithm);
        }
        n = add_spec(out, max, n, CAP_FINDING_PQC_VULNERABLE, "classical %s key: PQC class %s", key,
                     bucket);
    }
    return n;
}

/* The reason a cipher suite name (IANA or OpenSSL spelling) is weak, or NULL. */
static const char *weak_cipher_reason(const char *c)
{
    static const struct {
        const char *needle;
        const char *why;
    } rules[] = {
        {"NULL", "NULL encryption"},
        {"RC4", "RC4"},
        {"3DES", "3DES"},
        {"DES-CBC3", "3DES"},
        {"DES_CBC", "DES"},
        {"DES-CBC", "DES"},
        {"DES40", "DES"},
        {"EXPORT", "EXPORT"},
        {"EXP-", "EXPORT"},
        {"EXP1024", "EXPORT"},
        {"_anon_", "anonymous"},
        {"ADH-", "anonymous"},
        {"AECDH-", "anonymous"},
        {"RC2", "RC2"},
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (strcasestr(c, rules[i].needle)) {
            return rules[i].why;
        }
    }
    return NULL;
}

size_t cap_findings_endpoint_specs(const struct cap_observation *o,
                                   const struct cap_cert_facts *leaf, struct cap_finding_spec *out,
                                   size_t max)
{
    size_t n = 0;
    const char *outcome = o->outcome ? o->outcome : "";
    if (strcmp(outcome, "refused") == 0 || strcmp(outcome, "timeout") == 0) {
        return add_spec(out, max, n, CAP_FINDING_UNREACHABLE, "%s",
                        strcmp(outcome, "refused") == 0 ? "connection refused" : "timed out");
    }
    if (strcmp(outcome, "tls_error") == 0) {
        return add_spec(out, max, n, CAP_FINDING_TLS_ERROR, "TLS handshake failed");
    }
    if (strcmp(outcome, "ok") != 0) {
        return 0;
    }
    if (o->tls_version) {
        static const char *const old[] = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.0", "TLSv1.1"};
        for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
            if (strcmp(o->tls_version, old[i]) == 0) {
                n = add_spec(out, max, n, CAP_FINDING_DEPRECATED_TLS, "negotiated %s", old[i]);
                break;
            }
        }
    }
    const char *why = o->cipher_suite ? weak_cipher_reason(o->cipher_suite) : NULL;
    if (why) {
        n = add_spec(out, max, n, CAP_FINDING_WEAK_CIPHER, "negotiated %.200s (%s)",
                     o->cipher_suite, why);
    }
    if (o->host_is_name && leaf && o->host && !cap_x509_host_matches(leaf, o->host)) {
        n = add_spec(out, max, n, CAP_FINDING_NAME_MISMATCH,
                     "host %.260s is not among the certificate's names", o->host);
    }
    if (o->verify_result > 0) {
        n = add_spec(out, max, n, CAP_FINDING_UNTRUSTED,
                     "chain does not verify against the trust store: %.200s",
                     o->verify_error ? o->verify_error : "verification failed");
    }
    return n;
}

/* ---- details ---- */

/* JSON text of obj (consumed); NULL on allocation failure. */
static char *json_take(struct json_object *obj)
{
    if (!obj) {
        return NULL;
    }
    const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
    char *out = s ? strdup(s) : NULL;
    json_object_put(obj);
    return out;
}

/* A JSON string of outside text: valid UTF-8 without NUL or controls, which jsonb would refuse
 * (and a refused batch would be retried for ever). */
static struct json_object *json_clean_string(const char *val, size_t len)
{
    char *c = cap_x509_clean_text(val, len);
    struct json_object *s = c ? json_object_new_string(c) : NULL;
    free(c);
    return s;
}

static void json_add_str(struct json_object *o, const char *key, const char *val)
{
    if (val) {
        json_object_object_add(o, key, json_clean_string(val, strlen(val)));
    }
}

/* A copy of a caller's JSON value with every string and key made clean (values nested more
 * than 32 deep become null), or NULL on allocation failure. */
static struct json_object *json_cleaned(struct json_object *v, int depth)
{
    if (depth > 32) {
        return NULL;
    }
    switch (json_object_get_type(v)) {
    case json_type_string:
        return json_clean_string(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    case json_type_array: {
        struct json_object *a = json_object_new_array();
        size_t n = json_object_array_length(v);
        for (size_t i = 0; a && i < n; i++) {
            json_object_array_add(a, json_cleaned(json_object_array_get_idx(v, i), depth + 1));
        }
        return a;
    }
    case json_type_object: {
        struct json_object *o = json_object_new_object();
        json_object_object_foreach(v, key, val)
        {
            char *k = cap_x509_clean_text(key, strlen(key));
            if (o && k) {
                json_object_object_add(o, k, json_cleaned(val, depth + 1));
            }
            free(k);
        }
        return o;
    }
    default:
        return json_object_get(v);
    }
}

char *cap_findings_cert_details(const struct cap_finding_spec *s, const struct cap_cert_facts *f)
{
    struct json_object *o = json_object_new_object();
    if (!o) {
        return NULL;
    }
    json_add_str(o, "reason", s->reason);
    json_add_str(o, "subject", f->subject);
    json_add_str(o, "issuer", f->issuer);
    json_add_str(o, "serial", f->serial);
    if (f->has_validity) {
        char nb[32], na[32];
        iso_time(f->not_before, nb);
        iso_time(f->not_after, na);
        json_add_str(o, "not_before", nb);
        json_add_str(o, "not_after", na);
    }
    json_add_str(o, "key_algorithm", f->key_algorithm);
    if (f->key_bits > 0) {
        json_object_object_add(o, "key_bits", json_object_new_int(f->key_bits));
    }
    if (f->key_curve && *f->key_curve) {
        json_add_str(o, "key_curve", f->key_curve);
    }
    json_add_str(o, "signature_algorithm", f->signature_algorithm);
    json_add_str(o, "pqc_class", cap_pqc_class_cert(f));
    if (s->id == CAP_FINDING_SAN_CASE_DUPLICATE) {
        const char *dups[64];
        size_t n = cap_x509_san_case_duplicates(f, dups, 64);
        struct json_object *arr = json_object_new_array();
        for (size_t i = 0; arr && i < n && i < 64; i++) {
            json_object_array_add(arr, json_object_new_string(dups[i]));
        }
        json_object_object_add(o, "sans", arr);
    }
    return json_take(o);
}

char *cap_findings_endpoint_details(const struct cap_finding_spec *s,
                                    const struct cap_observation *o, const char *error,
                                    const char *leaf_fp)
{
    struct json_object *d = json_object_new_object();
    if (!d) {
        return NULL;
    }
    json_add_str(d, "reason", s->reason);
    json_add_str(d, "host", o->host);
    json_add_str(d, "address", o->address);
    json_object_object_add(d, "port", json_object_new_int(o->port));
    json_add_str(d, "sni", o->sni ? o->sni : "");
    json_add_str(d, "outcome", o->outcome);
    json_add_str(d, "error", error);
    json_add_str(d, "tls_version", o->tls_version);
    json_add_str(d, "cipher_suite", o->cipher_suite);
    json_add_str(d, "fingerprint", leaf_fp);
    if (s->id == CAP_FINDING_UNTRUSTED) {
        json_object_object_add(d, "verify_result", json_object_new_int(o->verify_result));
    }
    return json_take(d);
}

char *cap_findings_details_clean(const char *details_json, const char *kind, struct cap_err *err)
{
    if (!details_json) {
        char *empty = strdup("{}");
        if (!empty) {
            cap_err_set(err, CAP_E_NOMEM, "finding %s: out of memory", kind);
        }
        return empty;
    }
    struct json_object *o = json_tokener_parse(details_json);
    if (!o || !json_object_is_type(o, json_type_object)) {
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        cap_err_set(err, CAP_E_INVALID, "finding %s: details are not a JSON object: \"%s\"", kind,
                    cap_err_quote(q, sizeof(q), details_json, strlen(details_json)));
        json_object_put(o);
        return NULL;
    }
    struct json_object *clean = json_cleaned(o, 0);
    json_object_put(o);
    char *out = json_take(clean);
    if (!out) {
        cap_err_set(err, CAP_E_NOMEM, "finding %s: out of memory", kind);
    }
    return out;
}
