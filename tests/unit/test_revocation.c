/* The revocation readers on the fixture's seeds (tests/fuzz/corpus/fuzz_revocation, answering
 * for the leaf of tests/fuzz/revocation_fixture.h): good, revoked with its reason, unknown, a
 * delegated responder; each refusal with the reason it names (forged, stale, partial or
 * delta answers, a look-alike issuer); the cache lifetime cap. */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
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

int main(void)
{
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
