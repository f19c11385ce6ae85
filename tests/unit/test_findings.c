/* Tests of worker/findings: the catalogue (every kind has one row, names and severities valid,
 * the resolve lists the executors use), the pure certificate and endpoint rules, the details
 * they carry, and docs/findings.md checked against the catalogue row by row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "common/x509.h"
#include "worker/findings.h"
#include "worker/inventory.h"

static int failures;
static int checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(want, got)                                                                       \
    do {                                                                                           \
        checks++;                                                                                  \
        long long w_ = (long long)(want), g_ = (long long)(got);                                   \
        if (w_ != g_) {                                                                            \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: want %lld, got %lld (%s)\n", __FILE__, __LINE__, w_, g_,       \
                    #got);                                                                         \
        }                                                                                          \
    } while (0)

#define CHECK_STR(want, got)                                                                       \
    do {                                                                                           \
        checks++;                                                                                  \
        const char *w_ = (want), *g_ = (got);                                                      \
        if (!g_ || strcmp(w_, g_) != 0) {                                                          \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: want \"%s\", got \"%s\"\n", __FILE__, __LINE__, w_,            \
                    g_ ? g_ : "(null)");                                                           \
        }                                                                                          \
    } while (0)

/* ---- the catalogue ---- */

static bool severity_ok(const char *s)
{
    static const char *const severities[] = {"critical", "high", "medium", "low", "info"};
    for (size_t i = 0; i < sizeof(severities) / sizeof(severities[0]); i++) {
        if (s && strcmp(s, severities[i]) == 0) {
            return true;
        }
    }
    return false;
}

static void test_catalogue(void)
{
    for (int k = 0; k < CAP_FINDING_KINDS; k++) {
        const struct cap_finding_def *d = cap_findings_def((enum cap_finding_kind)k);
        CHECK_INT(k, d->id);
        CHECK(d->kind && *d->kind && strlen(d->kind) <= 64);
        CHECK(strspn(d->kind, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(d->kind));
        CHECK(severity_ok(d->severity));
        CHECK(d->raised_by != 0);
        CHECK(cap_findings_lookup(d->kind) == d);
        CHECK(cap_findings_subject_prefix(d->subject) != NULL);
        for (int j = 0; j < k; j++) {
            CHECK(strcmp(cap_findings_def((enum cap_finding_kind)j)->kind, d->kind) != 0);
        }
    }
    CHECK(cap_findings_lookup("expird") == NULL);
    CHECK(cap_findings_lookup(NULL) == NULL);
    CHECK_STR("cert:", cap_findings_subject_prefix(CAP_FINDING_ON_CERTIFICATE));
    CHECK_STR("name:",
              cap_findings_subject_prefix(cap_findings_def(CAP_FINDING_UNRESOLVABLE)->subject));
    CHECK_STR("run:",
              cap_findings_subject_prefix(cap_findings_def(CAP_FINDING_POLICY_BLOCK)->subject));
    CHECK_STR("source:", cap_findings_subject_prefix(
                             cap_findings_def(CAP_FINDING_CT_LOG_MISBEHAVING)->subject));
    /* The product's severities (../shared/DESIGN.md) for a few that matter most. */
    CHECK_STR("critical", cap_findings_def(CAP_FINDING_EXPIRED)->severity);
    CHECK_STR("critical", cap_findings_def(CAP_FINDING_REVOKED)->severity);
    CHECK_STR("low", cap_findings_def(CAP_FINDING_UNRESOLVABLE)->severity);
    CHECK_STR("medium", cap_findings_def(CAP_FINDING_DRIFT)->severity);
    CHECK(cap_findings_def(CAP_FINDING_EXPIRING)->unmanaged_only);

    /* What a network_scan run resolves: every kind it raises but drift (people) and revoked
     * (the revocation checker's); what a ct_log run resolves: ct_log_misbehaving only. */
    static const char *const scan[] = {
        "expired",     "self_signed",  "weak_signature", "weak_key",           "deprecated_tls",
        "weak_cipher", "expiring",     "name_mismatch",  "untrusted",          "policy_block",
        "unreachable", "unresolvable", "tls_error",      "san_case_duplicate", "pqc_vulnerable",
    };
    const char *got[CAP_FINDING_KINDS];
    size_t n = cap_findings_resolve_kinds(CAP_FINDING_BY_SCAN, got, CAP_FINDING_KINDS);
    CHECK_INT(sizeof(scan) / sizeof(scan[0]), n);
    for (size_t i = 0; i < n && i < sizeof(scan) / sizeof(scan[0]); i++) {
        CHECK_STR(scan[i], got[i]);
    }
    n = cap_findings_resolve_kinds(CAP_FINDING_BY_CT, got, CAP_FINDING_KINDS);
    CHECK_INT(1, n);
    CHECK_STR("ct_log_misbehaving", got[0]);
    CHECK_INT(0, cap_findings_resolve_kinds(CAP_FINDING_BY_REVOCATION, got, CAP_FINDING_KINDS));
    CHECK_INT(16, cap_findings_resolve_kinds(CAP_FINDING_BY_SCAN | CAP_FINDING_BY_CT, NULL, 0));
    /* Every kind a rule decides is one the scan resolves (it re-examines each on every run). */
    for (int k = 0; k < CAP_FINDING_KINDS; k++) {
        const struct cap_finding_def *d = cap_findings_def((enum cap_finding_kind)k);
        if (d->raised_by & CAP_FINDING_BY_SCAN && k != CAP_FINDING_DRIFT) {
            CHECK(d->resolved_by & CAP_FINDING_BY_SCAN);
        }
    }
}

/* ---- the rules ---- */

/* Whether kind is among the n specs (and with which severity). */
static const char *has_kind(const struct cap_finding_spec *s, size_t n, const char *kind)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s[i].kind, kind) == 0) {
            return s[i].severity;
        }
    }
    return NULL;
}

static struct cap_cert_facts fake_facts(const char *alg, int bits, const char *curve,
                                        const char *oid, const char *hash, char **sans,
                                        size_t nsans)
{
    static char *none[] = {NULL};
    struct cap_cert_facts f = {0};
    snprintf(f.fingerprint_sha256, sizeof(f.fingerprint_sha256), "%064d", 7);
    f.subject = "CN=x";
    f.issuer = "CN=ca";
    f.cn = "";
    f.serial = "01";
    f.key_algorithm = (char *)alg;
    f.key_bits = bits;
    f.key_curve = (char *)curve;
    f.key_oid = (char *)oid;
    f.signature_algorithm = "sig";
    f.signature_oid = "1.2";
    f.signature_hash = (char *)hash;
    f.dns_sans = sans ? sans : none;
    f.dns_sans_n = nsans;
    f.ip_sans = none;
    f.email_sans = none;
    f.uri_sans = none;
    f.has_validity = true;
    return f;
}

static void test_cert_specs(void)
{
    const int64_t now = 1800000000;
    struct cap_finding_spec s[16];
    char *sans[] = {"www.example.test", "WWW.example.test", NULL};

    struct cap_cert_facts f = fake_facts("RSA", 1024, "", "1.2.840.113549.1.1.1", "sha1", sans, 2);
    f.self_signed = true;
    f.not_before = now - 1000;
    f.not_after = now - 1;
    size_t n = cap_findings_cert_specs(&f, true, now, 14, s, 16);
    CHECK_INT(6, n);
    CHECK_STR("critical", has_kind(s, n, "expired"));
    CHECK_STR("high", has_kind(s, n, "self_signed"));
    CHECK_STR("high", has_kind(s, n, "weak_signature"));
    CHECK_STR("high", has_kind(s, n, "weak_key"));
    CHECK_STR("low", has_kind(s, n, "san_case_duplicate"));
    CHECK_STR("info", has_kind(s, n, "pqc_vulnerable"));
    CHECK(has_kind(s, n, "expiring") == NULL);
    CHECK(strstr(s[0].reason, "expired at 2027-01-15T07:59:59Z") != NULL);

    /* A chain certificate only ever gets expired. */
    n = cap_findings_cert_specs(&f, false, now, 14, s, 16);
    CHECK_INT(1, n);
    CHECK_STR("expired", s[0].kind);

    /* Expiring in 3 days: medium, only when not managed; a good EC key is transition. */
    struct cap_cert_facts g =
        fake_facts("EC", 256, "P-256", "1.2.840.10045.2.1", "sha256", NULL, 0);
    g.not_before = now - 1000;
    g.not_after = now + 3 * 86400;
    n = cap_findings_cert_specs(&g, true, now, 14, s, 16);
    CHECK_INT(2, n);
    CHECK_STR("medium", has_kind(s, n, "expiring"));
    CHECK(s[0].unmanaged_only);
    CHECK_STR("info", has_kind(s, n, "pqc_vulnerable"));
    CHECK(strstr(s[1].reason, "EC P-256") != NULL);
    /* ... but not with a 2-day window, nor exactly at the window's end. */
    CHECK_INT(1, cap_findings_cert_specs(&g, true, now, 2, s, 16));
    g.not_after = now + 14 * 86400;
    CHECK_INT(1, cap_findings_cert_specs(&g, true, now, 14, s, 16));

    /* ML-DSA: nothing at all; EC on 192 bits: weak key, unknown bucket (no pqc finding). */
    struct cap_cert_facts m =
        fake_facts("ML-DSA-65", 0, "", "2.16.840.1.101.3.4.3.18", "", NULL, 0);
    m.not_after = now + 400 * 86400;
    CHECK_INT(0, cap_findings_cert_specs(&m, true, now, 14, s, 16));
    struct cap_cert_facts w =
        fake_facts("EC", 192, "P-192", "1.2.840.10045.2.1", "sha256", NULL, 0);
    w.not_after = now + 400 * 86400;
    n = cap_findings_cert_specs(&w, true, now, 14, s, 16);
    CHECK_INT(1, n);
    CHECK_STR("weak_key", s[0].kind);

    /* The count is returned even when out is too small. */
    CHECK_INT(6, cap_findings_cert_specs(&f, true, now, 14, s, 2));
    CHECK_INT(6, cap_findings_cert_specs(&f, true, now, 14, NULL, 0));
}

static void test_endpoint_specs(void)
{
    struct cap_finding_spec s[8];
    struct cap_observation o = {.host = "127.0.0.1",
                                .address = "127.0.0.1",
                                .port = 443,
                                .outcome = "refused",
                                .verify_result = -1};
    size_t n = cap_findings_endpoint_specs(&o, NULL, s, 8);
    CHECK_INT(1, n);
    CHECK_STR("unreachable", s[0].kind);
    CHECK_STR("low", s[0].severity);
    o.outcome = "timeout";
    CHECK_INT(1, cap_findings_endpoint_specs(&o, NULL, s, 8));
    CHECK_STR("unreachable", s[0].kind);
    CHECK(strstr(s[0].reason, "timed out") != NULL);
    o.outcome = "tls_error";
    CHECK_INT(1, cap_findings_endpoint_specs(&o, NULL, s, 8));
    CHECK_STR("tls_error", s[0].kind);
    o.outcome = "policy_block";
    CHECK_INT(0, cap_findings_endpoint_specs(&o, NULL, s, 8));

    static const struct {
        const char *version;
        const char *cipher;
        bool deprecated;
        bool weak;
    } cases[] = {
        {"TLSv1.3", "TLS_AES_128_GCM_SHA256", false, false},
        {"TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", false, false},
        {"TLSv1.2", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", false, false},
        {"TLSv1.2", "TLS_RSA_WITH_3DES_EDE_CBC_SHA", false, true},
        {"TLSv1.2", "DES-CBC3-SHA", false, true},
        {"TLSv1.2", "TLS_RSA_WITH_NULL_SHA256", false, true},
        {"TLSv1.2", "TLS_DH_anon_WITH_AES_128_CBC_SHA", false, true},
        {"TLSv1.2", "AECDH-AES128-SHA", false, true},
        {"TLSv1.1", "TLS_RSA_WITH_RC4_128_SHA", true, true},
        {"TLSv1", "TLS_RSA_EXPORT_WITH_RC4_40_MD5", true, true},
        {"SSLv3", "TLS_RSA_WITH_AES_128_CBC_SHA", true, false},
        {"TLSv1.1", "TLS_RSA_WITH_DES_CBC_SHA", true, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cap_observation ok = {.host = "127.0.0.1",
                                     .address = "127.0.0.1",
                                     .port = 443,
                                     .outcome = "ok",
                                     .tls_version = cases[i].version,
                                     .cipher_suite = cases[i].cipher,
                                     .verify_result = 0};
        n = cap_findings_endpoint_specs(&ok, NULL, s, 8);
        CHECK_INT(cases[i].deprecated ? 1 : 0, has_kind(s, n, "deprecated_tls") != NULL);
        CHECK_INT(cases[i].weak ? 1 : 0, has_kind(s, n, "weak_cipher") != NULL);
        CHECK_INT((int)cases[i].deprecated + (int)cases[i].weak, n);
    }

    char *sans[] = {"*.example.test", "example.test", NULL};
    struct cap_cert_facts leaf =
        fake_facts("EC", 256, "P-256", "1.2.840.10045.2.1", "sha256", sans, 2);
    struct cap_observation named = {.host = "www.example.test",
                                    .address = "127.0.0.1",
                                    .port = 443,
                                    .sni = "www.example.test",
                                    .host_is_name = true,
                                    .outcome = "ok",
                                    .tls_version = "TLSv1.3",
                                    .cipher_suite = "TLS_AES_256_GCM_SHA384",
                                    .verify_result = 0};
    CHECK_INT(0, cap_findings_endpoint_specs(&named, &leaf, s, 8));
    named.host = "a.b.example.test";
    n = cap_findings_endpoint_specs(&named, &leaf, s, 8);
    CHECK_INT(1, n);
    CHECK_STR("medium", has_kind(s, n, "name_mismatch"));
    /* An IP target is never a name mismatch. */
    named.host_is_name = false;
    CHECK_INT(0, cap_findings_endpoint_specs(&named, &leaf, s, 8));
    named.verify_result = 18;
    named.verify_error = "self-signed certificate";
    n = cap_findings_endpoint_specs(&named, &leaf, s, 8);
    CHECK_INT(1, n);
    CHECK_STR("medium", has_kind(s, n, "untrusted"));
    CHECK(strstr(s[0].reason, "self-signed certificate") != NULL);
    /* Failed handshakes get no handshake findings even with a certificate. */
    named.outcome = "tls_error";
    n = cap_findings_endpoint_specs(&named, &leaf, s, 8);
    CHECK_INT(1, n);
    CHECK_STR("tls_error", s[0].kind);
}

/* ---- details ---- */

static struct json_object *parse(char *text)
{
    struct json_object *o = text ? json_tokener_parse(text) : NULL;
    free(text);
    return o;
}

static const char *field(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static void test_details(void)
{
    const int64_t now = 1800000000;
    char *sans[] = {"www.example.test", "WWW.example.test", NULL};
    struct cap_cert_facts f = fake_facts("RSA", 1024, "", "1.2.840.113549.1.1.1", "sha1", sans, 2);
    f.not_before = now - 1000;
    f.not_after = now - 1;
    struct cap_finding_spec s[16];
    size_t n = cap_findings_cert_specs(&f, true, now, 14, s, 16);
    CHECK(n >= 2);
    for (size_t i = 0; i < n && i < 16; i++) {
        struct json_object *o = parse(cap_findings_cert_details(&s[i], &f));
        CHECK(o != NULL);
        CHECK_STR(s[i].reason, field(o, "reason"));
        CHECK_STR("CN=ca", field(o, "issuer"));
        CHECK_STR("2027-01-15T07:59:59Z", field(o, "not_after"));
        struct json_object *arr = NULL;
        bool has_sans = json_object_object_get_ex(o, "sans", &arr);
        CHECK_INT(s[i].id == CAP_FINDING_SAN_CASE_DUPLICATE, has_sans);
        if (has_sans) {
            CHECK_INT(2, json_object_array_length(arr));
        }
        json_object_put(o);
    }

    struct cap_observation ob = {.host = "h\x01.test",
                                 .address = "127.0.0.1",
                                 .port = 8443,
                                 .outcome = "ok",
                                 .tls_version = "TLSv1.3",
                                 .verify_result = 20,
                                 .verify_error = "unable to get local issuer certificate"};
    n = cap_findings_endpoint_specs(&ob, NULL, s, 16);
    CHECK_INT(1, n);
    struct json_object *o = parse(cap_findings_endpoint_details(&s[0], &ob, "why", "ab"));
    CHECK_STR("untrusted", s[0].kind);
    CHECK_STR("8443", field(o, "port"));
    CHECK_STR("why", field(o, "error"));
    CHECK_STR("ab", field(o, "fingerprint"));
    CHECK_STR("20", field(o, "verify_result"));
    CHECK(field(o, "host") && !strchr(field(o, "host"), '\x01'));
    json_object_put(o);

    /* A caller's details: a JSON object, cleaned; anything else an error naming the kind. */
    struct cap_err err = {0};
    char *c = cap_findings_details_clean(NULL, "drift", &err);
    CHECK_STR("{}", c);
    free(c);
    c = cap_findings_details_clean("{\"a\":\"x\\u0000y\",\"n\":[1,null]}", "drift", &err);
    CHECK(c && !strstr(c, "\\u0000"));
    o = parse(c);
    CHECK_STR("x\\x00y", field(o, "a"));
    json_object_put(o);
    CHECK(cap_findings_details_clean("[1]", "drift", &err) == NULL);
    CHECK_INT(CAP_E_INVALID, err.code);
    CHECK(strstr(err.msg, "finding drift: details are not a JSON object") != NULL);
}

/* ---- docs/findings.md ---- */

/* The source tree: CAP_TEST_DATA is <source>/tests/data; cut two components as text. */
static int source_dir(char *out, size_t n)
{
    const char *data = getenv("CAP_TEST_DATA");
    if (!data || snprintf(out, n, "%s", data) >= (int)n) {
        return -1;
    }
    for (int up = 0; up < 2; up++) {
        size_t l = strlen(out);
        while (l > 1 && out[l - 1] == '/') {
            out[--l] = '\0';
        }
        char *slash = strrchr(out, '/');
        if (!slash) {
            return -1;
        }
        *slash = '\0';
    }
    return 0;
}

/* Cell i (0-based) of a Markdown table row, trimmed, into out. */
static bool cell(const char *row, int i, char *out, size_t n)
{
    const char *p = row;
    for (int k = 0; k <= i; k++) {
        p = strchr(p, '|');
        if (!p) {
            return false;
        }
        p++;
    }
    const char *end = strchr(p, '|');
    if (!end) {
        return false;
    }
    while (p < end && *p == ' ') {
        p++;
    }
    while (end > p && end[-1] == ' ') {
        end--;
    }
    if ((size_t)(end - p) >= n) {
        return false;
    }
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return true;
}

/* The names of the CAP_FINDING_BY_* bits of by, joined with ", "; "people" for none. */
static void by_names(unsigned by, char *out, size_t n)
{
    out[0] = '\0';
    for (unsigned bit = 1; bit <= CAP_FINDING_BY_CT; bit <<= 1) {
        if (by & bit) {
            size_t l = strlen(out);
            snprintf(out + l, n - l, "%s%s", l ? ", " : "", cap_findings_by_name(bit));
        }
    }
    if (!out[0]) {
        snprintf(out, n, "people");
    }
}

/* Every row of the kinds table is the catalogue's: kind, severity, subject, raised by, resolved
 * by; every kind of the catalogue has exactly one row. */
static void test_docs(void)
{
    char src[1024], path[1200];
    if (source_dir(src, sizeof src) != 0) {
        fprintf(stderr, "CAP_TEST_DATA is not set or too long: run through ctest\n");
        failures++;
        return;
    }
    snprintf(path, sizeof path, "%s/docs/findings.md", src);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "%s: cannot open\n", path);
        failures++;
        return;
    }
    int seen[CAP_FINDING_KINDS] = {0};
    char line[4096];
    int rows = 0;
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "| `", 3) != 0) {
            continue;
        }
        rows++;
        char kind[128], sev[64], subject[64], raised[128], resolved[128], when[2048], gone[2048];
        bool ok = cell(line, 0, kind, sizeof kind) && cell(line, 1, sev, sizeof sev) &&
                  cell(line, 2, subject, sizeof subject) && cell(line, 3, raised, sizeof raised) &&
                  cell(line, 4, resolved, sizeof resolved) && cell(line, 5, when, sizeof when) &&
                  cell(line, 6, gone, sizeof gone);
        CHECK(ok);
        size_t kl = strlen(kind);
        if (!ok || kl < 3 || kind[kl - 1] != '`') {
            fprintf(stderr, "docs/findings.md: bad row: %s", line);
            failures++;
            continue;
        }
        kind[kl - 1] = '\0';
        const struct cap_finding_def *d = cap_findings_lookup(kind + 1);
        if (!d) {
            fprintf(stderr, "docs/findings.md: kind %s is not in the catalogue\n", kind + 1);
            failures++;
            continue;
        }
        seen[d->id]++;
        char want[128];
        CHECK_STR(d->severity, sev);
        CHECK_STR(cap_findings_subject_name(d->subject), subject);
        by_names(d->raised_by, want, sizeof want);
        CHECK_STR(want, raised);
        by_names(d->resolved_by, want, sizeof want);
        CHECK_STR(want, resolved);
        CHECK(when[0] != '\0' && gone[0] != '\0');
    }
    fclose(fp);
    CHECK_INT(CAP_FINDING_KINDS, rows);
    for (int k = 0; k < CAP_FINDING_KINDS; k++) {
        if (seen[k] != 1) {
            fprintf(stderr, "docs/findings.md: kind %s has %d rows, not 1\n",
                    cap_findings_def((enum cap_finding_kind)k)->kind, seen[k]);
            failures++;
        }
    }
}

int main(void)
{
    test_catalogue();
    test_cert_specs();
    test_endpoint_specs();
    test_details();
    test_docs();
    printf("test_findings: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
