/* The revocation readers on the fixture's seeds (tests/fuzz/corpus/fuzz_revocation, answering
 * for the leaf of tests/fuzz/revocation_fixture.h): good, revoked with its reason, unknown, a
 * delegated responder; each refusal with the reason it names (forged, stale, partial or
 * delta answers, a look-alike issuer) and whether that reason is about data the issuer signed;
 * the cache lifetime cap. Which URLs may be fetched (ports 80 and 443, printable URLs), and
 * the write path: facts with outside bytes to clean JSON and cache parameters. */
#include <json-c/json.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../fuzz/revocation_fixture.h"
#include "test.h"
#include "worker/scan/revocation.h"

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

static X509 *issuer, *leaf;

/* Reads seed name (first byte: 0 OCSP, 1 CRL) and answers for the fixture leaf. */
static int answer(const char *name, struct cap_revocation_answer *a)
{
    const char *data = getenv("CAP_TEST_DATA"); /* <source>/tests/data */
    char path[1024];
    snprintf(path, sizeof path, "%s/../fuzz/corpus/fuzz_revocation/%s", data ? data : ".", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return -2;
    }
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n < 1)
        return -2;
    if (buf[0] == 0)
        return cap_revocation_read_ocsp(buf + 1, n - 1, leaf, issuer, a);
    X509_CRL *crl = cap_revocation_parse_crl(buf + 1, n - 1);
    if (!crl) {
        snprintf(a->why, sizeof a->why, "not a CRL");
        return -1;
    }
    int rc = cap_revocation_crl_answer(crl, leaf, issuer, REV_FIXTURE_CRL_URL, a);
    X509_CRL_free(crl);
    return rc;
}

/* Whether the refusal of seed name is about data the issuer signed. */
static bool signed_refusal(const char *name)
{
    struct cap_revocation_answer a;
    memset(&a, 0, sizeof a);
    CHECK_EQ(-1, answer(name, &a));
    return a.signed_by_issuer;
}

static void expect(const char *name, int rc, enum cap_revocation_status st, const char *text)
{
    struct cap_revocation_answer a;
    memset(&a, 0, sizeof a);
    int got = answer(name, &a);
    if (got != rc || a.status != st || (text && !strstr(rc == 0 ? a.reason : a.why, text)))
        fprintf(stderr, "%s: rc %d status %d reason \"%s\" why \"%s\"\n", name, got, a.status,
                a.reason, a.why);
    CHECK_EQ(rc, got);
    CHECK_EQ(st, a.status);
    if (text)
        CHECK(strstr(rc == 0 ? a.reason : a.why, text) != NULL);
    if (rc == 0) {
        CHECK(a.this_update > 0 && a.next_update > a.this_update);
        CHECK((st == CAP_REVOCATION_REVOKED) == (a.revoked_at > 0));
    }
}

static void expect_url(const char *url, size_t len, int rc, const char *why_part)
{
    const char *why = NULL;
    int got = cap_revocation_check_url(url, len, &why);
    if (got != rc || (rc != 0 && (!why || !strstr(why, why_part))))
        fprintf(stderr, "url \"%.*s\": rc %d why \"%s\"\n", (int)len, url, got,
                why ? why : "(null)");
    CHECK_EQ(rc, got);
    if (rc != 0)
        CHECK(why && strstr(why, why_part) != NULL);
}

#define URL_OK(u) expect_url((u), strlen(u), 0, NULL)
#define URL_BAD(u, why) expect_url((u), strlen(u), -1, (why))

/* Only printable http(s) URLs on ports 80 and 443, as libcurl would read them. */
static void test_urls(void)
{
    URL_OK("http://ocsp.example.com");
    URL_OK("http://ocsp.example.com/");
    URL_OK("https://crl.example.com/ca.crl");
    URL_OK("http://a.example:80/x");
    URL_OK("http://a.example:443/x");
    URL_OK("https://a.example:80/x");
    URL_OK("http://[2001:db8::1]/ocsp");
    URL_OK("http://a.example/x?y=%20&z=1#f");
    URL_BAD("http://a.example:8080/", "ports 80 and 443");
    URL_BAD("https://a.example:8443/", "ports 80 and 443");
    URL_BAD("http://a.example:22/", "ports 80 and 443");
    URL_BAD("http://user@a.example:8080/", "ports 80 and 443");
    URL_BAD("http://a.example:443@b.example:8080/", "ports 80 and 443");
    URL_BAD("http://[2001:db8::1]:8080/", "ports 80 and 443");
    URL_BAD("http://a.example:99999/", "not an http(s) URL");
    URL_BAD("http://crl.example\xff/", "not an http(s) URL");
    URL_BAD("http://a b/", "not an http(s) URL");
    URL_BAD("http://a.example/\x01", "not an http(s) URL");
    URL_BAD("http://a.example\\@b.example/", "not an http(s) URL");
    URL_BAD("ftp://a.example/", "not an http(s) URL");
    URL_BAD("ldap://a.example/cn=x", "not an http(s) URL");
    URL_BAD("HTTP://a.example/", "not an http(s) URL");
    URL_BAD("http://", "not an http(s) URL");
    URL_BAD("", "not an http(s) URL");
    expect_url("http://a.example/\0:8080", 24, -1, "not an http(s) URL");
    char long_url[600];
    memset(long_url, 'a', sizeof long_url);
    memcpy(long_url, "http://", 7);
    expect_url(long_url, CAP_REVOCATION_URL_MAX, -1, "512 bytes");
    expect_url(long_url, CAP_REVOCATION_URL_MAX - 1, 0, NULL);
}

/* Every string in the row is valid UTF-8 without controls; returns the facts parsed. */
static json_object *row_facts(const struct cap_revocation_row *row)
{
    CHECK(row->facts != NULL);
    for (const unsigned char *p = (const unsigned char *)row->facts; *p; p++)
        CHECK(*p >= 0x20 && *p != 0x7f);
    json_object *o = json_tokener_parse(row->facts);
    CHECK(o != NULL && json_object_is_type(o, json_type_object));
    return o;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* Facts with outside bytes become clean JSON and cache parameters; what the tables would
 * refuse is refused here, or left out. */
static void test_rows(void)
{
    const char fp[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    int64_t now = 1767225600;
    struct cap_revocation_row row;
    struct cap_err err = {0};

    /* a \xff URL and a control in the errors: escaped, and nothing else changes */
    const char bad[] = "http://crl.example\xff/x\x01.crl";
    struct cap_revocation_error errs[10] = {
        {bad, sizeof bad - 1, "not asked: bad"},
        {"http://a.example/\0x", 19, "no usable answer"},
        {NULL, 0, "local: \xc3\x28"},
    };
    struct cap_revocation_facts f = {
        .fingerprint = fp, .status = "error", .errors = errs, .errors_n = 3};
    CHECK_EQ(0, cap_revocation_row_build(&f, now, &row, &err));
    CHECK(row.cache[0] == NULL);
    json_object *o = row_facts(&row);
    CHECK_STR("error", jstr(o, "status"));
    CHECK_STR("2026-01-01T00:00:00Z", jstr(o, "checked_at"));
    json_object *arr = NULL;
    CHECK(json_object_object_get_ex(o, "errors", &arr));
    CHECK_EQ(3, json_object_array_length(arr));
    CHECK_STR("http://crl.example\\xff/x\\x01.crl", jstr(json_object_array_get_idx(arr, 0), "url"));
    CHECK_STR("http://a.example/\\x00x", jstr(json_object_array_get_idx(arr, 1), "url"));
    CHECK(jstr(json_object_array_get_idx(arr, 2), "url") == NULL);
    CHECK_STR("local: \\xc3(", jstr(json_object_array_get_idx(arr, 2), "error"));
    json_object_put(o);
    cap_revocation_row_cleanup(&row);

    /* more errors than are listed: counted */
    for (int i = 0; i < 10; i++)
        errs[i] = (struct cap_revocation_error){"http://e.example/", 17, "no usable answer"};
    f.errors_n = 10;
    f.errors_more = 5;
    CHECK_EQ(0, cap_revocation_row_build(&f, now, &row, &err));
    o = row_facts(&row);
    CHECK(json_object_object_get_ex(o, "errors", &arr));
    CHECK_EQ(CAP_REVOCATION_ERRORS_MAX, json_object_array_length(arr));
    CHECK_STR("7", jstr(o, "errors_more"));
    json_object_put(o);
    cap_revocation_row_cleanup(&row);

    /* a fresh revoked answer: facts and a cache row, next update capped at 7 days */
    struct cap_revocation_facts r = {.fingerprint = fp,
                                     .status = "revoked",
                                     .method = "crl",
                                     .url = "http://crl.example.com/ca.crl",
                                     .revoked_at = now - 86400,
                                     .this_update = now - 300,
                                     .next_update = now + 30 * 86400,
                                     .reason = "key\xff"
                                               "Compromise"};
    CHECK_EQ(0, cap_revocation_row_build(&r, now, &row, &err));
    o = row_facts(&row);
    CHECK_STR("revoked", jstr(o, "status"));
    CHECK_STR("crl", jstr(o, "method"));
    CHECK_STR("2025-12-31T00:00:00Z", jstr(o, "revoked_at"));
    CHECK_STR("key\\xffCompromise", jstr(o, "reason"));
    json_object_put(o);
    CHECK_STR(fp, row.cache[0]);
    CHECK_STR("http://crl.example.com/ca.crl", row.cache[1]);
    CHECK_STR("crl", row.cache[2]);
    CHECK_STR("revoked", row.cache[3]);
    CHECK_STR("1767139200", row.cache[4]);
    CHECK_STR("key\\xffCompromise", row.cache[5]);
    CHECK_STR("1767225300", row.cache[6]);
    CHECK_STR("1767830400", row.cache[7]);
    cap_revocation_row_cleanup(&row);

    /* times PostgreSQL would refuse are left out; a cached answer or one past its next
     * update writes no cache row */
    r.revoked_at = INT64_MAX;
    r.this_update = INT64_MIN;
    CHECK_EQ(0, cap_revocation_row_build(&r, now, &row, &err));
    o = row_facts(&row);
    CHECK(jstr(o, "revoked_at") == NULL);
    json_object_put(o);
    CHECK_STR("0", row.cache[4]);
    CHECK_STR("0", row.cache[6]);
    cap_revocation_row_cleanup(&row);
    r.cached = true;
    CHECK_EQ(0, cap_revocation_row_build(&r, now, &row, &err));
    CHECK(row.cache[0] == NULL);
    cap_revocation_row_cleanup(&row);
    r.cached = false;
    r.next_update = now;
    CHECK_EQ(0, cap_revocation_row_build(&r, now, &row, &err));
    CHECK(row.cache[0] == NULL);
    cap_revocation_row_cleanup(&row);

    /* what the tables would refuse is refused */
    r.status = "maybe";
    CHECK_EQ(-1, cap_revocation_row_build(&r, now, &row, &err));
    CHECK_EQ(CAP_E_INVALID, err.code);
    cap_err_clear(&err);
    r.status = "good";
    r.method = "ldap";
    CHECK_EQ(-1, cap_revocation_row_build(&r, now, &row, &err));
    cap_err_clear(&err);
    r.method = "ocsp";
    r.fingerprint = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
    CHECK_EQ(-1, cap_revocation_row_build(&r, now, &row, &err));
    cap_err_clear(&err);
    r.fingerprint = "0011";
    CHECK_EQ(-1, cap_revocation_row_build(&r, now, &row, &err));
    cap_err_clear(&err);
    cap_revocation_row_cleanup(NULL);
}

int main(void)
{
    test_urls();
    test_rows();

    issuer = pem_cert(REV_FIXTURE_ISSUER_PEM);
    leaf = pem_cert(REV_FIXTURE_LEAF_PEM);
    CHECK(issuer && leaf);

    expect("ocsp_good", 0, CAP_REVOCATION_GOOD, NULL);
    expect("ocsp_revoked", 0, CAP_REVOCATION_REVOKED, "keyCompromise");
    expect("ocsp_unknown", 0, CAP_REVOCATION_UNKNOWN, NULL);
    expect("ocsp_delegated", 0, CAP_REVOCATION_GOOD, NULL);
    expect("ocsp_other_cert", -1, CAP_REVOCATION_NONE, "does not cover this certificate");
    expect("ocsp_expired", -1, CAP_REVOCATION_NONE, "outside its validity window");
    expect("ocsp_bad_signer", -1, CAP_REVOCATION_NONE, "does not verify against the issuer");
    expect("ocsp_try_later", -1, CAP_REVOCATION_NONE, "responder said trylater");
    expect("ocsp_delegated_no_eku", -1, CAP_REVOCATION_NONE, "does not verify against the issuer");
    expect("ocsp_no_next_old", -1, CAP_REVOCATION_NONE, "outside its validity window");

    expect("crl_revoked", 0, CAP_REVOCATION_REVOKED, "superseded");
    expect("crl_revoked_pem", 0, CAP_REVOCATION_REVOKED, "superseded");
    expect("crl_good", 0, CAP_REVOCATION_GOOD, NULL);
    expect("crl_stale", -1, CAP_REVOCATION_NONE, "past its next update");
    expect("crl_bad_signer", -1, CAP_REVOCATION_NONE, "does not verify against the issuer");
    expect("crl_wrong_name", -1, CAP_REVOCATION_NONE, "does not verify against the issuer");
    expect("crl_delta", -1, CAP_REVOCATION_NONE, "delta CRL");
    expect("crl_only_ca", -1, CAP_REVOCATION_NONE, "covers only part");
    expect("crl_some_reasons", -1, CAP_REVOCATION_NONE, "covers only part");
    expect("crl_other_url", -1, CAP_REVOCATION_NONE, "not the URL it was fetched from");
    expect("crl_idp_url", 0, CAP_REVOCATION_REVOKED, "superseded");

    /* only reasons about what the issuer signed may be stored; the others could be about
     * anything a server sent */
    CHECK(signed_refusal("crl_stale"));
    CHECK(signed_refusal("crl_delta"));
    CHECK(signed_refusal("crl_other_url"));
    CHECK(signed_refusal("ocsp_other_cert"));
    CHECK(signed_refusal("ocsp_expired"));
    CHECK(!signed_refusal("crl_bad_signer"));
    CHECK(!signed_refusal("crl_wrong_name"));
    CHECK(!signed_refusal("ocsp_bad_signer"));
    CHECK(!signed_refusal("ocsp_try_later"));

    /* a look-alike issuer (same name, another key) is not taken as the leaf's issuer, even
     * with an answer it signed itself for the leaf */
    X509 *real = issuer;
    issuer = pem_cert(REV_FIXTURE_LOOKALIKE_PEM);
    CHECK(issuer != NULL && X509_check_issued(issuer, leaf) == X509_V_OK);
    expect("ocsp_lookalike_issuer", -1, CAP_REVOCATION_NONE, "did not sign the certificate");
    expect("crl_bad_signer", -1, CAP_REVOCATION_NONE, "did not sign the certificate");
    X509_free(issuer);
    issuer = real;
    /* with the real issuer the look-alike's answer does not cover the leaf */
    expect("ocsp_lookalike_issuer", -1, CAP_REVOCATION_NONE, "does not verify against the issuer");

    /* the cache lifetime is capped at 7 days whatever nextUpdate says (2099 here) */
    struct cap_revocation_answer g;
    CHECK_EQ(0, answer("ocsp_good", &g));
    CHECK(g.next_update <= (int64_t)time(NULL) + 7 * 86400 + 5);
    CHECK_EQ(0, answer("crl_good", &g));
    CHECK(g.next_update <= (int64_t)time(NULL) + 7 * 86400 + 5);
    /* a CRL with a distribution point is only good for the URL it names */
    {
        const char *data = getenv("CAP_TEST_DATA");
        char path[1024];
        snprintf(path, sizeof path, "%s/../fuzz/corpus/fuzz_revocation/crl_idp_url",
                 data ? data : ".");
        FILE *f = fopen(path, "rb");
        CHECK(f != NULL);
        static uint8_t buf[1 << 16];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f)
            fclose(f);
        X509_CRL *crl = cap_revocation_parse_crl(buf + 1, n - 1);
        CHECK(crl != NULL);
        CHECK_EQ(-1,
                 cap_revocation_crl_answer(crl, leaf, issuer, "http://elsewhere.test/x.crl", &g));
        CHECK_EQ(-1, cap_revocation_crl_answer(crl, leaf, issuer, NULL, &g));
        CHECK_EQ(0, cap_revocation_crl_answer(crl, leaf, issuer, REV_FIXTURE_CRL_URL, &g));
        X509_CRL_free(crl);
    }

    /* without the issuer nothing can be checked; garbage is named as such */
    struct cap_revocation_answer a;
    CHECK_EQ(-1, cap_revocation_read_ocsp((const uint8_t *)"xyz", 3, leaf, NULL, &a));
    CHECK(strstr(a.why, "no issuer") != NULL);
    CHECK_EQ(-1, cap_revocation_read_ocsp((const uint8_t *)"xyz", 3, leaf, issuer, &a));
    CHECK_STR("response is not an OCSP response", a.why);
    CHECK(cap_revocation_parse_crl((const uint8_t *)"xyz", 3) == NULL);

    X509_free(issuer);
    X509_free(leaf);
    TEST_DONE();
}
