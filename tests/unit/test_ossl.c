/* Direct certificate key decoding (common/ossl.c): the facts of every certificate of a corpus
 * (generated keys of every classical type, the same with a corrupted key, and the x509 fuzz
 * seeds: post-quantum keys OpenSSL 3.0 cannot load, a precertificate) are the same before and
 * after cap_ossl_init, and on OpenSSL 3.0 the direct path is really the one taken. */
#include <dirent.h>
#include <openssl/dsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ossl.h"
#include "common/pqc.h"
#include "common/x509.h"
#include "test.h"

#define MAX_CERTS 64

struct cert {
    char name[96];
    uint8_t *der;
    size_t len;
};

static struct cert certs[MAX_CERTS];
static size_t ncerts;

static void add(const char *name, const uint8_t *der, size_t len)
{
    if (ncerts >= MAX_CERTS)
        return;
    struct cert *c = &certs[ncerts++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->der = malloc(len);
    memcpy(c->der, der, len);
    c->len = len;
}

static EVP_PKEY *keygen(const char *alg, const char *param)
{
    EVP_PKEY *k = NULL;
    if (strcmp(alg, "DSA") == 0) {
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, "DSA", NULL);
        EVP_PKEY *params = NULL;
        if (!pc || EVP_PKEY_paramgen_init(pc) <= 0 ||
            EVP_PKEY_CTX_set_dsa_paramgen_bits(pc, 1024) <= 0 ||
            EVP_PKEY_paramgen(pc, &params) <= 0) {
            EVP_PKEY_CTX_free(pc);
            return NULL;
        }
        EVP_PKEY_CTX_free(pc);
        pc = EVP_PKEY_CTX_new_from_pkey(NULL, params, NULL);
        if (pc && EVP_PKEY_keygen_init(pc) > 0)
            EVP_PKEY_keygen(pc, &k);
        EVP_PKEY_CTX_free(pc);
        EVP_PKEY_free(params);
        return k;
    }
    if (strcmp(alg, "EC") == 0)
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);
    if (strcmp(alg, "RSA") == 0 || strcmp(alg, "RSA-PSS") == 0) {
        EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
        if (pc && EVP_PKEY_keygen_init(pc) > 0 &&
            EVP_PKEY_CTX_set_rsa_keygen_bits(pc, (int)strtol(param, NULL, 10)) > 0)
            EVP_PKEY_keygen(pc, &k);
        EVP_PKEY_CTX_free(pc);
        return k;
    }
    return EVP_PKEY_Q_keygen(NULL, NULL, alg);
}

/* A self-signed certificate for a new key of alg (param: bits or curve), as DER. */
static int make_cert(const char *alg, const char *param, uint8_t **der)
{
    EVP_PKEY *k = keygen(alg, param);
    if (!k)
        return -1;
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)alg, -1, -1, 0);
    X509_set_issuer_name(x, n);
    X509_set_pubkey(x, k);
    bool eddsa = strcmp(alg, "ED25519") == 0 || strcmp(alg, "ED448") == 0;
    int len = -1;
    if (X509_sign(x, k, eddsa ? NULL : EVP_sha256()) > 0)
        len = i2d_X509(x, der);
    X509_free(x);
    EVP_PKEY_free(k);
    return len;
}

/* The offset of the last byte of the certificate's public key (inside the SPKI BIT STRING). */
static long spki_last_byte(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x)
        return -1;
    unsigned char *spki = NULL;
    int sl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
    long off = -1;
    for (size_t i = 0; sl > 0 && i + (size_t)sl <= len; i++) {
        if (memcmp(der + i, spki, (size_t)sl) == 0) {
            off = (long)(i + (size_t)sl - 1);
            break;
        }
    }
    OPENSSL_free(spki);
    X509_free(x);
    return off;
}

struct facts_line {
    char text[2048];
    int verify; /* X509_verify with the certificate's own key: 1, 0, -1 */
};

static void facts_of(const struct cert *c, struct facts_line *out)
{
    struct cap_cert_facts f;
    struct cap_err err;
    cap_err_clear(&err);
    out->verify = -2;
    if (cap_x509_facts_from_der(c->der, c->len, &f, &err) != 0) {
        snprintf(out->text, sizeof out->text, "error: %s", err.msg);
    } else {
        snprintf(out->text, sizeof out->text,
                 "%s alg=%s oid=%s bits=%d curve=%s malformed=%d sig=%s self=%d pqc=%s weak=%d",
                 f.fingerprint_sha256, f.key_algorithm, f.key_oid, f.key_bits, f.key_curve,
                 f.key_malformed, f.signature_algorithm, f.self_signed, cap_pqc_class_cert(&f),
                 cap_x509_weak_key(&f));
        cap_cert_facts_cleanup(&f);
    }
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->len);
    if (x) {
        EVP_PKEY *k = X509_get0_pubkey(x);
        out->verify = k ? X509_verify(x, k) : -1;
        X509_free(x);
    }
    ERR_clear_error();
}

static void load_seeds(void)
{
    const char *data = getenv("CAP_TEST_DATA"); /* <source>/tests/data */
    CHECK(data != NULL);
    if (!data)
        return;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/../fuzz/corpus/fuzz_x509", data);
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        uint8_t buf[65536];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (n > 0)
            add(de->d_name, buf, n);
    }
    closedir(d);
}

/* Whether libcrypto decoded the key of der through a provider (false: the direct path). */
static int key_is_provided(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)len);
    if (!x)
        return -1;
    EVP_PKEY *k = X509_get0_pubkey(x);
    int r = k ? EVP_PKEY_get0_provider(k) != NULL : -1;
    X509_free(x);
    return r;
}

int main(void)
{
    static const char *const kinds[][2] = {
        {"RSA", "2048"}, {"RSA", "1024"},     {"RSA-PSS", "2048"}, {"EC", "P-256"}, {"EC", "P-384"},
        {"EC", "P-521"}, {"EC", "secp256k1"}, {"ED25519", ""},     {"ED448", ""},   {"DSA", "1024"},
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        uint8_t *der = NULL;
        int len = make_cert(kinds[i][0], kinds[i][1], &der);
        if (len <= 0)
            fprintf(stderr, "cannot make a %s %s certificate\n", kinds[i][0], kinds[i][1]);
        CHECK(len > 0);
        char name[96];
        snprintf(name, sizeof name, "%s-%s", kinds[i][0], kinds[i][1]);
        add(name, der, (size_t)len);
        /* the same with the last byte of its key changed: a point off the curve, another RSA
         * modulus, a different EdDSA key; the self-signature no longer verifies */
        long off = spki_last_byte(der, (size_t)len);
        CHECK(off > 0);
        if (off > 0) {
            der[off] ^= 0x5a;
            snprintf(name, sizeof name, "%s-%s-corrupt", kinds[i][0], kinds[i][1]);
            add(name, der, (size_t)len);
        }
        OPENSSL_free(der);
    }
    size_t generated = ncerts;
    load_seeds();
    CHECK(ncerts >= generated + 5); /* the x509 fuzz seeds, post-quantum keys among them */

    static struct facts_line before[MAX_CERTS], after[MAX_CERTS];
    for (size_t i = 0; i < ncerts; i++)
        facts_of(&certs[i], &before[i]);
    /* the fixture is what it claims: the corrupted EC key does not load, its verify fails */
    for (size_t i = 0; i < ncerts; i++) {
        if (strcmp(certs[i].name, "EC-P-256-corrupt") == 0)
            CHECK(strstr(before[i].text, "malformed=1") != NULL);
        if (strcmp(certs[i].name, "EC-P-256") == 0)
            CHECK(before[i].verify == 1);
        if (strcmp(certs[i].name, "RSA-2048-corrupt") == 0)
            CHECK(before[i].verify == 0);
    }

    const char *why = NULL;
    CHECK(!cap_ossl_direct_keys(&why));
    CHECK_STR("not initialised", why);
    bool on = cap_ossl_init();
    CHECK(cap_ossl_init() == on); /* idempotent */
    unsigned long v = OpenSSL_version_num();
    if (v >= 0x30000000UL && v < 0x30100000UL && !EVP_default_properties_is_fips_enabled(NULL)) {
        CHECK(on);
        CHECK(cap_ossl_direct_keys(&why) && strcmp(why, "") == 0);
    } else {
        CHECK(!on);
        printf("direct key decoding off: %s\n", why);
    }
    for (size_t i = 0; i < ncerts; i++) {
        facts_of(&certs[i], &after[i]);
        if (strcmp(after[i].text, before[i].text) != 0 || after[i].verify != before[i].verify)
            fprintf(stderr, "%s differs: verify %d -> %d\n", certs[i].name, before[i].verify,
                    after[i].verify);
        CHECK_STR(before[i].text, after[i].text);
        CHECK_EQ(before[i].verify, after[i].verify);
    }
    /* on 3.0 the classical keys now load without a provider decoder */
    for (size_t i = 0; on && i < ncerts; i++) {
        if (strncmp(certs[i].name, "EC-P-256", 9) == 0 && !strstr(certs[i].name, "corrupt"))
            CHECK_EQ(key_is_provided(certs[i].der, certs[i].len), 0);
        if (strcmp(certs[i].name, "RSA-2048") == 0 || strcmp(certs[i].name, "DSA-1024") == 0)
            CHECK_EQ(key_is_provided(certs[i].der, certs[i].len), 0);
        if (strcmp(certs[i].name, "ED25519-") == 0) /* left to the providers */
            CHECK_EQ(key_is_provided(certs[i].der, certs[i].len), 1);
    }
    for (size_t i = 0; i < ncerts; i++)
        free(certs[i].der);
    TEST_DONE();
}
