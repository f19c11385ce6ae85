/* Unit tests of common/x509: facts of certificates built here with OpenSSL (RSA, EC, Ed25519,
 * precert/final pairs) and of hand-assembled DER for algorithms OpenSSL 3.0 cannot produce
 * (ML-DSA, SLH-DSA, composite), garbage handling, and the name-matching rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/pqc.h"
#include "common/x509.h"

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

/* ---- certificates built with OpenSSL ---- */

static EVP_PKEY *key_rsa(int bits)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned int)bits);
    if (!k) {
        fprintf(stderr, "cannot generate RSA-%d\n", bits);
        exit(2);
    }
    return k;
}

static EVP_PKEY *key_ec(const char *curve)
{
    EVP_PKEY *k = EVP_EC_gen(curve);
    if (!k) {
        fprintf(stderr, "cannot generate EC %s\n", curve);
        exit(2);
    }
    return k;
}

static EVP_PKEY *key_ed25519(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!k) {
        fprintf(stderr, "cannot generate Ed25519\n");
        exit(2);
    }
    return k;
}

struct certspec {
    EVP_PKEY *key;    /* subject key */
    EVP_PKEY *signer; /* NULL: self-signed with key */
    const char *subject_cn;
    const char *issuer_cn; /* NULL: same as subject */
    const char *org;       /* optional O= */
    const char *san;       /* optional subjectAltName config string */
    const EVP_MD *md;      /* NULL for EdDSA */
    long serial;
    time_t not_before;
    time_t not_after;
    bool ca;
    bool poison;    /* add the CT poison extension (critical) */
    bool scts;      /* add a (fake) SCT list extension */
    bool plain_tbs; /* neither: used to take the TBS of a precert_entry */
};

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e) {
        fprintf(stderr, "bad extension %d=%s\n", nid, value);
        exit(2);
    }
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

static void add_raw_ext(X509 *x, const char *oid, bool critical, const uint8_t *val, int len)
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, val, len);
    X509_EXTENSION *e = X509_EXTENSION_create_by_OBJ(NULL, obj, critical, os);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(obj);
}

/* Builds the certificate and returns it (caller frees). */
static X509 *build_cert(const struct certspec *s)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), s->serial);
    ASN1_TIME_set(X509_getm_notBefore(x), s->not_before);
    ASN1_TIME_set(X509_getm_notAfter(x), s->not_after);
    X509_NAME *subj = X509_get_subject_name(x);
    if (s->org) {
        X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_UTF8, (const unsigned char *)s->org, -1, -1,
                                   0);
    }
    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8, (const unsigned char *)s->subject_cn, -1,
                               -1, 0);
    X509_NAME *iss = X509_get_issuer_name(x);
    if (s->issuer_cn) {
        X509_NAME_add_entry_by_txt(iss, "CN", MBSTRING_UTF8, (const unsigned char *)s->issuer_cn,
                                   -1, -1, 0);
    } else {
        X509_set_issuer_name(x, subj);
    }
    X509_set_pubkey(x, s->key);
    add_ext(x, x, NID_basic_constraints, s->ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    if (s->san) {
        add_ext(x, x, NID_subject_alt_name, s->san);
    }
    static const uint8_t null_der[] = {0x05, 0x00};
    static const uint8_t sct_der[] = {0x04, 0x06, 0x00, 0x04, 0x00, 0x02, 0xab, 0xcd};
    if (s->poison) {
        add_raw_ext(x, CAP_X509_OID_CT_POISON, true, null_der, sizeof(null_der));
    } else if (s->scts) {
        add_raw_ext(x, CAP_X509_OID_CT_SCTS, false, sct_der, sizeof(sct_der));
    }
    add_ext(x, x, NID_key_usage, "critical,digitalSignature");
    add_ext(x, x, NID_info_access, "OCSP;URI:http://ocsp.example.test/");
    add_ext(x, x, NID_crl_distribution_points, "URI:http://crl.example.test/ca.crl");
    if (!X509_sign(x, s->signer ? s->signer : s->key, s->md)) {
        fprintf(stderr, "cannot sign test certificate\n");
        ERR_print_errors_fp(stderr);
        exit(2);
    }
    return x;
}

static uint8_t *to_der(X509 *x, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_X509(x, &der);
    if (n <= 0) {
        fprintf(stderr, "i2d_X509 failed\n");
        exit(2);
    }
    *len = (size_t)n;
    return der;
}

static int facts_of(X509 *x, struct cap_cert_facts *f)
{
    size_t len;
    uint8_t *der = to_der(x, &len);
    struct cap_err err = {0};
    int rc = cap_x509_facts_from_der(der, len, f, &err);
    if (rc != 0) {
        fprintf(stderr, "facts: %s\n", err.msg);
    } else {
        /* The same facts from the parse a TLS client already holds, with and without the
         * SHA-256 given. */
        uint8_t md[SHA256_DIGEST_LENGTH];
        SHA256(der, len, md);
        for (int given = 0; given < 2; given++) {
            struct cap_cert_facts g;
            struct cap_err gerr = {0};
            CHECK(cap_x509_facts_from_x509(x, der, len, given ? md : NULL, &g, &gerr) == 0);
            CHECK(strcmp(g.fingerprint_sha256, f->fingerprint_sha256) == 0);
            CHECK(strcmp(g.spki_sha256, f->spki_sha256) == 0);
            CHECK(strcmp(g.tbs_sha256, f->tbs_sha256) == 0);
            CHECK(strcmp(g.subject, f->subject) == 0 && strcmp(g.issuer, f->issuer) == 0);
            CHECK(strcmp(g.serial, f->serial) == 0);
            CHECK(g.dns_sans_n == f->dns_sans_n && g.ip_sans_n == f->ip_sans_n);
            for (size_t i = 0; i < g.dns_sans_n && i < f->dns_sans_n; i++)
                CHECK(strcmp(g.dns_sans[i], f->dns_sans[i]) == 0);
            CHECK(g.not_before == f->not_before && g.not_after == f->not_after);
            CHECK(strcmp(g.key_algorithm, f->key_algorithm) == 0 && g.key_bits == f->key_bits);
            CHECK(strcmp(g.signature_algorithm, f->signature_algorithm) == 0);
            CHECK(g.is_ca == f->is_ca && g.self_signed == f->self_signed);
            cap_cert_facts_cleanup(&g);
        }
    }
    OPENSSL_free(der);
    return rc;
}

static const time_t NB = 1735689600; /* 2025-01-01T00:00:00Z */
static const time_t NA = 1893456000; /* 2030-01-01T00:00:00Z */

static void test_rsa1024_self_signed_sha1(void)
{
    EVP_PKEY *k = key_rsa(1024);
    struct certspec s = {.key = k,
                         .subject_cn = "old.example.test",
                         .md = EVP_sha1(),
                         .serial = 0x0a1b,
                         .not_before = NB,
                         .not_after = NA,
                         .san = "DNS:old.example.test"};
    X509 *x = build_cert(&s);
    struct cap_cert_facts f;
    CHECK(facts_of(x, &f) == 0);
    CHECK_STR("RSA", f.key_algorithm);
    CHECK_STR("1.2.840.113549.1.1.1", f.key_oid);
    CHECK_INT(1024, f.key_bits);
    CHECK_STR("", f.key_curve);
    CHECK_STR("sha1WithRSAEncryption", f.signature_algorithm);
    CHECK_STR("1.2.840.113549.1.1.5", f.signature_oid);
    CHECK_STR("sha1", f.signature_hash);
    CHECK(f.self_signed);
    CHECK(!f.is_ca);
    CHECK(!f.is_precert);
    CHECK(cap_x509_weak_signature(&f));
    CHECK(cap_x509_weak_key(&f));
    CHECK_STR("vulnerable", cap_pqc_class_cert(&f));
    CHECK_STR("0a1b", f.serial);
    CHECK_INT(NB, f.not_before);
    CHECK_INT(NA, f.not_after);
    CHECK(f.has_validity);
    CHECK_STR("CN=old.example.test", f.subject);
    CHECK_STR(f.subject, f.issuer);
    CHECK_INT(64, strlen(f.fingerprint_sha256));
    CHECK_INT(64, strlen(f.spki_sha256));
    CHECK_INT(64, strlen(f.tbs_sha256));
    CHECK_INT(1, f.ocsp_urls_n);
    CHECK_STR("http://ocsp.example.test/", f.ocsp_urls[0]);
    CHECK_INT(1, f.crl_urls_n);
    CHECK_STR("http://crl.example.test/ca.crl", f.crl_urls[0]);
    cap_cert_facts_cleanup(&f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void test_rsa2048_issued(void)
{
    EVP_PKEY *k = key_rsa(2048);
    EVP_PKEY *ca = key_ec("P-256");
    struct certspec s = {.key = k,
                         .signer = ca,
                         .subject_cn = "www.example.test",
                         .issuer_cn = "Test CA",
                         .org = "\xc3\x9cnic\xc3\xb8"
                                "de, Inc.",
                         .md = EVP_sha256(),
                         .serial = 7,
                         .not_before = NB,
                         .not_after = NA,
                         .san = "DNS:www.example.test,DNS:*.api.example.test,IP:192.0.2.7,"
                                "IP:2001:db8::1,email:ops@example.test,URI:https://example.test/"};
    X509 *x = build_cert(&s);
    struct cap_cert_facts f;
    CHECK(facts_of(x, &f) == 0);
    CHECK_STR("RSA", f.key_algorithm);
    CHECK_INT(2048, f.key_bits);
    CHECK_STR("ecdsa-with-SHA256", f.signature_algorithm);
    CHECK_STR("1.2.840.10045.4.3.2", f.signature_oid);
    CHECK_STR("sha256", f.signature_hash);
    CHECK(!f.self_signed);
    CHECK(!cap_x509_weak_signature(&f));
    CHECK(!cap_x509_weak_key(&f));
    CHECK_STR("transition", cap_pqc_class_cert(&f));
    /* RFC 4514 order (most specific first), UTF-8 kept, the comma escaped. */
    CHECK_STR("CN=www.example.test,O=\xc3\x9cnic\xc3\xb8"
              "de\\, Inc.",
              f.subject);
    CHECK_STR("CN=Test CA", f.issuer);
    CHECK_STR("www.example.test", f.cn);
    CHECK_STR("07", f.serial);
    CHECK_INT(2, f.dns_sans_n);
    CHECK_STR("www.example.test", f.dns_sans[0]);
    CHECK_STR("*.api.example.test", f.dns_sans[1]);
    CHECK(f.dns_sans[2] == NULL);
    CHECK_INT(2, f.ip_sans_n);
    CHECK_STR("192.0.2.7", f.ip_sans[0]);
    CHECK_STR("2001:db8::1", f.ip_sans[1]);
    CHECK_INT(1, f.email_sans_n);
    CHECK_STR("ops@example.test", f.email_sans[0]);
    CHECK_INT(1, f.uri_sans_n);
    CHECK_STR("https://example.test/", f.uri_sans[0]);
    CHECK(cap_x509_host_matches(&f, "www.example.test"));
    CHECK(cap_x509_host_matches(&f, "v1.api.example.test"));
    CHECK(!cap_x509_host_matches(&f, "api.example.test"));
    CHECK(cap_x509_host_matches(&f, "192.0.2.7"));
    CHECK(cap_x509_host_matches(&f, "2001:db8:0::1"));
    CHECK(!cap_x509_host_matches(&f, "192.0.2.8"));
    /* A CN is not consulted when there are DNS SANs. */
    CHECK(!cap_x509_host_matches(&f, "Test CA"));
    cap_cert_facts_cleanup(&f);
    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(ca);
}

static void test_ec_curves(void)
{
    static const struct {
        const char *curve;
        const char *want_curve;
        int bits;
        const char *bucket;
    } cases[] = {
        {"P-256", "P-256", 256, "transition"},
        {"P-384", "P-384", 384, "transition"},
        {"secp256k1", "secp256k1", 256, "unknown"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        EVP_PKEY *k = key_ec(cases[i].curve);
        struct certspec s = {.key = k,
                             .subject_cn = "ec.example.test",
                             .md = EVP_sha384(),
                             .serial = 1,
                             .not_before = NB,
                             .not_after = NA,
                             .ca = true};
        X509 *x = build_cert(&s);
        struct cap_cert_facts f;
        CHECK(facts_of(x, &f) == 0);
        CHECK_STR("EC", f.key_algorithm);
        CHECK_STR("1.2.840.10045.2.1", f.key_oid);
        CHECK_STR(cases[i].want_curve, f.key_curve);
        CHECK_INT(cases[i].bits, f.key_bits);
        CHECK_STR(cases[i].bucket, cap_pqc_class_cert(&f));
        CHECK_STR("ecdsa-with-SHA384", f.signature_algorithm);
        CHECK(f.is_ca);
        CHECK(f.self_signed);
        /* No SANs: the CN decides. */
        CHECK(cap_x509_host_matches(&f, "EC.example.test"));
        cap_cert_facts_cleanup(&f);
        X509_free(x);
        EVP_PKEY_free(k);
    }
}

static void test_ed25519(void)
{
    EVP_PKEY *k = key_ed25519();
    struct certspec s = {.key = k,
                         .subject_cn = "ed.example.test",
                         .md = NULL,
                         .serial = 2,
                         .not_before = NB,
                         .not_after = NA};
    X509 *x = build_cert(&s);
    struct cap_cert_facts f;
    CHECK(facts_of(x, &f) == 0);
    CHECK_STR("Ed25519", f.key_algorithm);
    CHECK_STR("1.3.101.112", f.key_oid);
    CHECK_STR("ED25519", f.signature_algorithm);
    CHECK_STR("", f.signature_hash);
    CHECK(f.self_signed);
    CHECK_STR("transition", cap_pqc_class_cert(&f));
    CHECK(!cap_x509_weak_key(&f));
    cap_cert_facts_cleanup(&f);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* issuer == subject but signed by another key: not self-signed. */
static void test_self_issued_not_self_signed(void)
{
    EVP_PKEY *k = key_ec("P-256");
    EVP_PKEY *other = key_ec("P-256");
    struct certspec s = {.key = k,
                         .signer = other,
                         .subject_cn = "same.example.test",
                         .md = EVP_sha256(),
                         .serial = 3,
                         .not_before = NB,
                         .not_after = NA};
    X509 *x = build_cert(&s);
    struct cap_cert_facts f;
    CHECK(facts_of(x, &f) == 0);
    CHECK_STR(f.subject, f.issuer);
    CHECK(!f.self_signed);
    cap_cert_facts_cleanup(&f);
    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

/* A precertificate (poison) and its final certificate (SCT list) give the same tbs_sha256, and
 * so does the precert_entry TBS (no poison) read with cap_x509_facts_from_tbs. */
static void test_precert_join(void)
{
    EVP_PKEY *k = key_ec("P-256");
    EVP_PKEY *ca = key_rsa(2048);
    struct certspec s = {.key = k,
                         .signer = ca,
                         .subject_cn = "ct.example.test",
                         .issuer_cn = "CT Test CA",
                         .san = "DNS:ct.example.test",
                         .md = EVP_sha256(),
                         .serial = 0x1234567,
                         .not_before = NB,
                         .not_after = NA};
    s.poison = true;
    X509 *pre = build_cert(&s);
    s.poison = false;
    s.scts = true;
    X509 *fin = build_cert(&s);
    s.scts = false;
    X509 *plain = build_cert(&s);

    struct cap_cert_facts fp, ff, fplain, ft;
    CHECK(facts_of(pre, &fp) == 0);
    CHECK(facts_of(fin, &ff) == 0);
    CHECK(facts_of(plain, &fplain) == 0);
    CHECK(fp.is_precert);
    CHECK(!ff.is_precert);
    CHECK(strcmp(fp.fingerprint_sha256, ff.fingerprint_sha256) != 0);
    CHECK_STR(fp.tbs_sha256, ff.tbs_sha256);
    CHECK_STR(fp.tbs_sha256, fplain.tbs_sha256);

    /* The precert_entry form: the TBS without poison, as a log serves it. */
    unsigned char *tbs = NULL;
    int tbs_len = i2d_re_X509_tbs(plain, &tbs);
    CHECK(tbs_len > 0);
    struct cap_err err = {0};
    CHECK(cap_x509_facts_from_tbs(tbs, (size_t)tbs_len, &ft, &err) == 0);
    CHECK(ft.from_tbs);
    CHECK_STR("", ft.fingerprint_sha256);
    CHECK_STR(ff.tbs_sha256, ft.tbs_sha256);
    CHECK_STR(ff.subject, ft.subject);
    CHECK_STR(ff.issuer, ft.issuer);
    CHECK_STR("ct.example.test", ft.dns_sans[0]);
    CHECK_STR("01234567", ft.serial);
    CHECK_STR("EC", ft.key_algorithm);
    CHECK_STR("sha256WithRSAEncryption", ft.signature_algorithm);
    CHECK(!ft.self_signed);
    CHECK_STR(ff.spki_sha256, ft.spki_sha256);

    /* A TBS with trailing bytes, or not a TBS, is refused. */
    unsigned char *longer = malloc((size_t)tbs_len + 1);
    memcpy(longer, tbs, (size_t)tbs_len);
    longer[tbs_len] = 0;
    struct cap_cert_facts bad;
    cap_err_clear(&err);
    CHECK(cap_x509_facts_from_tbs(longer, (size_t)tbs_len + 1, &bad, &err) == -1);
    CHECK(strstr(err.msg, "trailing") != NULL);
    cap_err_clear(&err);
    CHECK(cap_x509_facts_from_tbs(tbs, (size_t)tbs_len - 1, &bad, &err) == -1);
    free(longer);
    /* The full certificate is not a TBS. */
    size_t dlen;
    uint8_t *der = to_der(plain, &dlen);
    cap_err_clear(&err);
    CHECK(cap_x509_facts_from_tbs(der, dlen, &bad, &err) == -1);
    OPENSSL_free(der);

    OPENSSL_free(tbs);
    cap_cert_facts_cleanup(&fp);
    cap_cert_facts_cleanup(&ff);
    cap_cert_facts_cleanup(&fplain);
    cap_cert_facts_cleanup(&ft);
    X509_free(pre);
    X509_free(fin);
    X509_free(plain);
    EVP_PKEY_free(k);
    EVP_PKEY_free(ca);
}

static void test_garbage(void)
{
    EVP_PKEY *k = key_ec("P-256");
    struct certspec s = {.key = k,
                         .subject_cn = "g.example.test",
                         .md = EVP_sha256(),
                         .serial = 9,
                         .not_before = NB,
                         .not_after = NA};
    X509 *x = build_cert(&s);
    size_t len;
    uint8_t *der = to_der(x, &len);
    struct cap_cert_facts f;
    struct cap_err err = {0};

    uint8_t *trail = malloc(len + 2);
    memcpy(trail, der, len);
    trail[len] = 0x05;
    trail[len + 1] = 0x00;
    CHECK(cap_x509_facts_from_der(trail, len + 2, &f, &err) == -1);
    CHECK(strstr(err.msg, "2 trailing bytes") != NULL);
    CHECK(f.subject == NULL);

    cap_err_clear(&err);
    CHECK(cap_x509_facts_from_der(der, len - 1, &f, &err) == -1);
    CHECK_INT(CAP_E_INVALID, err.code);
    cap_err_clear(&err);
    CHECK(cap_x509_facts_from_der(der, 0, &f, &err) == -1);
    cap_err_clear(&err);
    static const uint8_t junk[] = "this is not a certificate";
    CHECK(cap_x509_facts_from_der(junk, sizeof(junk), &f, &err) == -1);
    CHECK(strstr(err.msg, "does not parse") != NULL);

    /* Every truncation and every single-byte flip either parses or fails cleanly. */
    for (size_t i = 1; i < len; i++) {
        if (cap_x509_facts_from_der(der, i, &f, NULL) == 0) {
            cap_cert_facts_cleanup(&f);
        }
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t saved = der[i];
        der[i] ^= 0xff;
        if (cap_x509_facts_from_der(der, len, &f, NULL) == 0) {
            cap_cert_facts_cleanup(&f);
        }
        if (cap_x509_facts_from_tbs(der + 4, len - 4, &f, NULL) == 0) {
            cap_cert_facts_cleanup(&f);
        }
        der[i] = saved;
    }
    CHECK(cap_x509_facts_from_der(der, len, &f, &err) == 0);
    cap_cert_facts_cleanup(&f);
    cap_cert_facts_cleanup(&f); /* twice is fine: it zeroes */
    free(trail);
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(k);
}

/* True when s is valid UTF-8 without control characters. */
static bool clean_utf8_text(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x20 || *p == 0x7f) {
            return false;
        }
        int n = *p < 0x80                    ? 1
                : (*p >= 0xc2 && *p <= 0xdf) ? 2
                : (*p >= 0xe0 && *p <= 0xef) ? 3
                : (*p >= 0xf0 && *p <= 0xf4) ? 4
                                             : 0;
        if (n == 0) {
            return false;
        }
        for (int i = 1; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return false;
            }
        }
        p += n;
    }
    return true;
}

/* Builds a self-signed certificate with the given raw UTF8String O= value and dNSName bytes. */
static X509 *cert_with_raw_strings(EVP_PKEY *k, const unsigned char *org, size_t org_len,
                                   const unsigned char *dns, size_t dns_len)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 5);
    ASN1_TIME_set(X509_getm_notBefore(x), NB);
    ASN1_TIME_set(X509_getm_notAfter(x), NA);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "O", V_ASN1_UTF8STRING, org, (int)org_len, -1, 0);
    static const unsigned char cn[] = {'c', 'n', 0x07, '.', 't', 'e', 's', 't'};
    X509_NAME_add_entry_by_txt(n, "CN", V_ASN1_UTF8STRING, cn, sizeof(cn), -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, k);
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();
    ASN1_STRING_set(ia5, dns, (int)dns_len);
    GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
    sk_GENERAL_NAME_push(gens, g);
    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(gens);
    X509_sign(x, k, EVP_sha256());
    return x;
}

/* SANs with NUL bytes, invalid UTF-8 and backslashes, and names with control characters,
 * come out escaped and valid UTF-8. */
static void test_hostile_strings(void)
{
    EVP_PKEY *k = key_ec("P-256");
    static const unsigned char org[] = {'O', 'r', 'g', 0x1b, '[', 'm', ',', '+'};
    static const unsigned char dns[] = {'a', 0x00, 'b', 0xff, '.', 't', 'e', 's', 't', '\\'};
    X509 *x = cert_with_raw_strings(k, org, sizeof(org), dns, sizeof(dns));
    struct cap_cert_facts f;
    CHECK(facts_of(x, &f) == 0);
    CHECK(clean_utf8_text(f.subject));
    CHECK(clean_utf8_text(f.issuer));
    CHECK(clean_utf8_text(f.cn));
    CHECK_STR("CN=cn\\07.test,O=Org\\1B[m\\,\\+", f.subject);
    CHECK_STR("cn\\x07.test", f.cn);
    CHECK_INT(1, f.dns_sans_n);
    CHECK_STR("a\\x00b\\xff.test\\\\", f.dns_sans[0]);
    CHECK(clean_utf8_text(f.dns_sans[0]));
    CHECK(!cap_x509_host_matches(&f, "a"));
    CHECK(!cap_x509_host_matches(&f, "ab.test"));
    cap_cert_facts_cleanup(&f);
    X509_free(x);

    /* OpenSSL 3.0 itself refuses a name holding invalid UTF-8: a clean error, no facts. */
    static const unsigned char bad[] = {'a', 0xff, 0xfe, 'b'};
    x = cert_with_raw_strings(k, bad, sizeof(bad), (const unsigned char *)"a.test", 6);
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    CHECK(len > 0);
    struct cap_err err = {0};
    CHECK_INT(-1, cap_x509_facts_from_der(der, (size_t)len, &f, &err));
    CHECK(strstr(err.msg, "does not parse") != NULL);
    OPENSSL_free(der);
    X509_free(x);
    EVP_PKEY_free(k);

    const char *raw = "ok \xc3\xa9 \xe2\x82\xac \xed\xa0\x80 \xc0\xaf \x1b[0m";
    char *t = cap_x509_clean_text(raw, strlen(raw));
    CHECK_STR("ok \xc3\xa9 \xe2\x82\xac \\xed\\xa0\\x80 \\xc0\\xaf \\x1b[0m", t);
    free(t);
}

/* ---- hand-assembled DER for algorithms OpenSSL 3.0 does not know ---- */

struct buf {
    uint8_t *p;
    size_t n;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
    b->p = realloc(b->p, b->n + n);
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

/* Wraps content in a TLV (content is consumed). */
static struct buf tlv(uint8_t tag, struct buf content)
{
    struct buf out = {0};
    uint8_t hdr[6];
    size_t h = 0;
    hdr[h++] = tag;
    if (content.n < 0x80) {
        hdr[h++] = (uint8_t)content.n;
    } else if (content.n < 0x100) {
        hdr[h++] = 0x81;
        hdr[h++] = (uint8_t)content.n;
    } else {
        hdr[h++] = 0x82;
        hdr[h++] = (uint8_t)(content.n >> 8);
        hdr[h++] = (uint8_t)content.n;
    }
    buf_add(&out, hdr, h);
    buf_add(&out, content.p, content.n);
    free(content.p);
    return out;
}

static struct buf raw(const void *data, size_t n)
{
    struct buf b = {0};
    buf_add(&b, data, n);
    return b;
}

static struct buf cat(struct buf a, struct buf b)
{
    buf_add(&a, b.p, b.n);
    free(b.p);
    return a;
}

static struct buf oid(const char *dotted)
{
    ASN1_OBJECT *o = OBJ_txt2obj(dotted, 1);
    unsigned char *der = NULL;
    int n = i2d_ASN1_OBJECT(o, &der);
    struct buf b = raw(der, (size_t)n);
    OPENSSL_free(der);
    ASN1_OBJECT_free(o);
    return b;
}

static struct buf name_cn(const char *cn)
{
    struct buf atv = cat(oid("2.5.4.3"), tlv(0x0c, raw(cn, strlen(cn))));
    return tlv(0x30, tlv(0x31, tlv(0x30, atv)));
}

static struct buf bitstring(size_t n, uint8_t fill)
{
    struct buf b = {0};
    uint8_t zero = 0;
    buf_add(&b, &zero, 1);
    for (size_t i = 0; i < n; i++) {
        buf_add(&b, &fill, 1);
    }
    return tlv(0x03, b);
}

/* A v3 certificate whose key and signature algorithms are the given OIDs (no parameters),
 * with junk key and signature bytes of the sizes given. */
static struct buf pq_cert(const char *key_oid, size_t key_len, const char *sig_oid, size_t sig_len,
                          const char *cn)
{
    static const uint8_t version[] = {0xa0, 0x03, 0x02, 0x01, 0x02};
    static const uint8_t serial[] = {0x02, 0x02, 0x10, 0x01};
    const char *nb = "250101000000Z", *na = "20500101000000Z";
    struct buf validity =
        tlv(0x30, cat(tlv(0x17, raw(nb, strlen(nb))), tlv(0x18, raw(na, strlen(na)))));
    struct buf spki = tlv(0x30, cat(tlv(0x30, oid(key_oid)), bitstring(key_len, 0x5a)));
    struct buf tbs = raw(version, sizeof(version));
    tbs = cat(tbs, raw(serial, sizeof(serial)));
    tbs = cat(tbs, tlv(0x30, oid(sig_oid)));
    tbs = cat(tbs, name_cn(cn));
    tbs = cat(tbs, validity);
    tbs = cat(tbs, name_cn(cn));
    tbs = cat(tbs, spki);
    struct buf cert = tlv(0x30, tbs);
    cert = cat(cert, tlv(0x30, oid(sig_oid)));
    cert = cat(cert, bitstring(sig_len, 0xa5));
    return tlv(0x30, cert);
}

static void test_pq_handmade(void)
{
    static const struct {
        const char *key_oid;
        size_t key_len;
        const char *want_alg;
        const char *bucket;
    } cases[] = {
        {"2.16.840.1.101.3.4.3.17", 1312, "ML-DSA-44", "ready"},
        {"2.16.840.1.101.3.4.3.18", 1952, "ML-DSA-65", "ready"},
        {"2.16.840.1.101.3.4.3.19", 2592, "ML-DSA-87", "ready"},
        {"2.16.840.1.101.3.4.3.20", 32, "SLH-DSA-SHA2-128s", "ready"},
        {"2.16.840.1.101.3.4.3.31", 64, "SLH-DSA-SHAKE-256f", "ready"},
        {"2.16.840.1.101.3.4.4.2", 1184, "ML-KEM-768", "ready"},
        {"1.3.6.1.5.5.7.6.45", 2048, "MLDSA65-ECDSA-P256-SHA512", "ready"},
        {"2.16.840.1.114027.80.8.1.8", 2048, "composite-ML-DSA", "ready"},
        {"1.2.3.4.5.6.7", 64, "1.2.3.4.5.6.7", "unknown"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct buf c = pq_cert(cases[i].key_oid, cases[i].key_len, "2.16.840.1.101.3.4.3.18", 3309,
                               "pq.example.test");
        struct cap_cert_facts f;
        struct cap_err err = {0};
        int rc = cap_x509_facts_from_der(c.p, c.n, &f, &err);
        CHECK_INT(0, rc);
        if (rc != 0) {
            fprintf(stderr, "  case %s: %s\n", cases[i].key_oid, err.msg);
            free(c.p);
            continue;
        }
        CHECK_STR(cases[i].key_oid, f.key_oid);
        CHECK_STR(cases[i].want_alg, f.key_algorithm);
        CHECK_STR(cases[i].bucket, cap_pqc_class_cert(&f));
        CHECK_STR("2.16.840.1.101.3.4.3.18", f.signature_oid);
        CHECK_STR("ML-DSA-65", f.signature_algorithm);
        CHECK(!f.self_signed); /* subject == issuer, but OpenSSL 3.0 cannot verify it */
        CHECK(!f.key_malformed);
        CHECK_INT(0, f.key_bits);
        CHECK_STR("CN=pq.example.test", f.subject);
        CHECK_STR("1001", f.serial);
        CHECK_INT(1735689600, f.not_before);
        CHECK_INT(2524608000LL, f.not_after);
        CHECK(!cap_x509_weak_key(&f));
        CHECK(!cap_x509_weak_signature(&f));
        cap_cert_facts_cleanup(&f);
        free(c.p);
    }

    /* A known algorithm (rsaEncryption) with junk key bytes: malformed, unknown, no error. */
    struct buf c =
        pq_cert("1.2.840.113549.1.1.1", 40, "1.2.840.113549.1.1.11", 256, "bad.example.test");
    struct cap_cert_facts f;
    struct cap_err err = {0};
    CHECK_INT(0, cap_x509_facts_from_der(c.p, c.n, &f, &err));
    CHECK_STR("RSA", f.key_algorithm);
    CHECK(f.key_malformed);
    CHECK_STR("unknown", cap_pqc_class_cert(&f));
    CHECK_STR("sha256WithRSAEncryption", f.signature_algorithm);
    CHECK(!f.self_signed);
    cap_cert_facts_cleanup(&f);
    free(c.p);
}

/* ---- names ---- */

static void test_name_matches(void)
{
    CHECK(cap_x509_name_matches("www.example.com", "www.example.com"));
    CHECK(cap_x509_name_matches("WWW.Example.COM", "www.example.com"));
    CHECK(cap_x509_name_matches("www.example.com.", "www.example.com"));
    CHECK(cap_x509_name_matches("www.example.com", "www.example.com."));
    CHECK(!cap_x509_name_matches("www.example.com", "example.com"));
    CHECK(cap_x509_name_matches("*.example.com", "www.example.com"));
    CHECK(cap_x509_name_matches("*.Example.com", "WWW.EXAMPLE.com"));
    CHECK(!cap_x509_name_matches("*.example.com", "example.com"));
    CHECK(!cap_x509_name_matches("*.example.com", "a.b.example.com"));
    CHECK(!cap_x509_name_matches("*.example.com", ".example.com"));
    CHECK(!cap_x509_name_matches("*.example.com", "wwwexample.com"));
    CHECK(!cap_x509_name_matches("*.com", "example.com"));
    CHECK(!cap_x509_name_matches("*", "example"));
    CHECK(!cap_x509_name_matches("f*.example.com", "foo.example.com"));
    CHECK(!cap_x509_name_matches("*oo.example.com", "foo.example.com"));
    CHECK(!cap_x509_name_matches("*.*.example.com", "a.b.example.com"));
    CHECK(!cap_x509_name_matches("www.*.example.com", "www.a.example.com"));
    CHECK(!cap_x509_name_matches("*.example.com", "*.example.com"));
    CHECK(!cap_x509_name_matches("192.0.2.1", "192.0.2.1"));
    CHECK(!cap_x509_name_matches("*.0.2.1", "192.0.2.1"));
    CHECK(!cap_x509_name_matches("", "a"));
    CHECK(!cap_x509_name_matches("a", ""));
    CHECK(!cap_x509_name_matches(NULL, "a"));
    CHECK(!cap_x509_name_matches("a", NULL));
    CHECK(cap_x509_name_matches("xn--bcher-kva.example", "XN--BCHER-KVA.example"));
    char longname[400];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    CHECK(!cap_x509_name_matches(longname, longname));
}

static void test_san_case_duplicates(void)
{
    char *sans[] = {"www.Example.com", "a.example.com", "www.example.com", "WWW.example.com",
                    "www.example.com", "b.example.com", "B.example.com",   NULL};
    struct cap_cert_facts f = {0};
    f.dns_sans = sans;
    f.dns_sans_n = 7;
    const char *out[8];
    size_t n = cap_x509_san_case_duplicates(&f, out, 8);
    CHECK_INT(5, n);
    CHECK_STR("www.Example.com", out[0]);
    CHECK_STR("www.example.com", out[1]);
    CHECK_STR("WWW.example.com", out[2]);
    CHECK_STR("b.example.com", out[3]);
    CHECK_STR("B.example.com", out[4]);
    CHECK(out[1] == sans[2]); /* the first of the two identical spellings */
    CHECK_INT(5, cap_x509_san_case_duplicates(&f, out, 2));

    char *same[] = {"a.example.com", "a.example.com", "b.example.com", NULL};
    f.dns_sans = same;
    f.dns_sans_n = 3;
    CHECK_INT(0, cap_x509_san_case_duplicates(&f, out, 8));
}

static void test_hex(void)
{
    static const uint8_t b[] = {0x00, 0x0f, 0xa0, 0xff};
    char out[9];
    cap_x509_hex(b, sizeof(b), out);
    CHECK_STR("000fa0ff", out);
}

int main(void)
{
    test_rsa1024_self_signed_sha1();
    test_rsa2048_issued();
    test_ec_curves();
    test_ed25519();
    test_self_issued_not_self_signed();
    test_precert_join();
    test_garbage();
    test_hostile_strings();
    test_pq_handmade();
    test_name_matches();
    test_san_case_duplicates();
    test_hex();
    printf("test_x509: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
