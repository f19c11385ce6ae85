/* Unit tests of common/pqc: certificate buckets from key facts and OIDs, TLS group names and
 * key-exchange classes from IANA code points. */
#include <stdio.h>
#include <string.h>

#include "common/pqc.h"
#include "common/x509.h"

static int failures;
static int checks;

#define CHECK_STR(want, got)                                                                       \
    do {                                                                                           \
        checks++;                                                                                  \
        const char *w_ = (want), *g_ = (got);                                                      \
        if ((w_ == NULL) != (g_ == NULL) || (w_ && strcmp(w_, g_) != 0)) {                         \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: want \"%s\", got \"%s\" (%s)\n", __FILE__, __LINE__,           \
                    w_ ? w_ : "(null)", g_ ? g_ : "(null)", #got);                                 \
        }                                                                                          \
    } while (0)

/* Bucket of a key described by algorithm name, OID, bits and curve. */
static const char *bucket(const char *alg, const char *oid, int bits, const char *curve)
{
    struct cap_cert_facts f = {0};
    f.key_algorithm = (char *)alg;
    f.key_oid = (char *)oid;
    f.key_bits = bits;
    f.key_curve = (char *)curve;
    return cap_pqc_class_cert(&f);
}

static void test_cert_buckets(void)
{
    const char *rsa = "1.2.840.113549.1.1.1", *ec = "1.2.840.10045.2.1";
    CHECK_STR("vulnerable", bucket("RSA", rsa, 1024, ""));
    CHECK_STR("vulnerable", bucket("RSA", rsa, 2047, ""));
    CHECK_STR("transition", bucket("RSA", rsa, 2048, ""));
    CHECK_STR("transition", bucket("RSA", rsa, 4096, ""));
    CHECK_STR("transition", bucket("RSA-PSS", "1.2.840.113549.1.1.10", 3072, ""));
    CHECK_STR("vulnerable", bucket("DSA", "1.2.840.10040.4.1", 1024, ""));
    CHECK_STR("transition", bucket("DSA", "1.2.840.10040.4.1", 2048, ""));
    CHECK_STR("unknown", bucket("RSA", rsa, 0, ""));
    CHECK_STR("transition", bucket("EC", ec, 256, "P-256"));
    CHECK_STR("transition", bucket("EC", ec, 384, "P-384"));
    CHECK_STR("transition", bucket("EC", ec, 521, "P-521"));
    CHECK_STR("unknown", bucket("EC", ec, 256, "secp256k1"));
    CHECK_STR("unknown", bucket("EC", ec, 224, "P-224"));
    CHECK_STR("unknown", bucket("EC", ec, 256, "brainpoolP256r1"));
    CHECK_STR("unknown", bucket("EC", ec, 0, "explicit"));
    CHECK_STR("transition", bucket("Ed25519", "1.3.101.112", 253, ""));
    CHECK_STR("transition", bucket("Ed448", "1.3.101.113", 456, ""));
    CHECK_STR("unknown", bucket("X25519", "1.3.101.110", 253, ""));
    CHECK_STR("ready", bucket("ML-DSA-44", "2.16.840.1.101.3.4.3.17", 0, ""));
    CHECK_STR("ready", bucket("ML-DSA-65", "2.16.840.1.101.3.4.3.18", 0, ""));
    CHECK_STR("ready", bucket("ML-DSA-87", "2.16.840.1.101.3.4.3.19", 0, ""));
    for (int i = 20; i <= 31; i++) {
        char oid[64];
        snprintf(oid, sizeof(oid), "2.16.840.1.101.3.4.3.%d", i);
        CHECK_STR("ready", bucket(oid, oid, 0, ""));
        CHECK_STR("ready", cap_pqc_class_oid(oid));
    }
    CHECK_STR("ready", bucket("x", "2.16.840.1.101.3.4.4.1", 0, ""));
    CHECK_STR("ready", bucket("x", "2.16.840.1.101.3.4.4.3", 0, ""));
    CHECK_STR("unknown", bucket("x", "2.16.840.1.101.3.4.4.4", 0, ""));
    CHECK_STR("unknown", bucket("x", "2.16.840.1.101.3.4.3.2", 0, ""));
    for (int i = 37; i <= 54; i++) {
        char oid[64];
        snprintf(oid, sizeof(oid), "1.3.6.1.5.5.7.6.%d", i);
        CHECK_STR("ready", cap_pqc_class_oid(oid));
    }
    CHECK_STR(NULL, cap_pqc_class_oid("1.3.6.1.5.5.7.6.36"));
    CHECK_STR(NULL, cap_pqc_class_oid("1.3.6.1.5.5.7.6.2"));
    CHECK_STR("ready", cap_pqc_class_oid("2.16.840.1.114027.80.8.1.1"));
    CHECK_STR("ready", cap_pqc_class_oid("2.16.840.1.114027.80.8.1.13"));
    CHECK_STR("ready", cap_pqc_class_oid("2.16.840.1.114027.80.9.1.0"));
    CHECK_STR(NULL, cap_pqc_class_oid("2.16.840.1.114027.80.8.1."));
    CHECK_STR(NULL, cap_pqc_class_oid("2.16.840.1.114027.80.8.1.1.5"));
    CHECK_STR(NULL, cap_pqc_class_oid("2.16.840.1.114027.80.8.2.1"));
    CHECK_STR(NULL, cap_pqc_class_oid("2.16.840.1.101.3.4.3.1"));
    CHECK_STR(NULL, cap_pqc_class_oid(""));
    CHECK_STR(NULL, cap_pqc_class_oid(NULL));
    CHECK_STR("unknown", bucket("1.2.3.4", "1.2.3.4", 0, ""));
    CHECK_STR("unknown", bucket("unknown", "", 0, ""));
    CHECK_STR("unknown", cap_pqc_class_cert(NULL));

    /* A malformed key is unknown even when its OID or size would say otherwise. */
    struct cap_cert_facts f = {0};
    f.key_algorithm = "RSA";
    f.key_oid = "1.2.840.113549.1.1.1";
    f.key_bits = 4096;
    f.key_curve = "";
    f.key_malformed = true;
    CHECK_STR("unknown", cap_pqc_class_cert(&f));
}

static void test_oid_names(void)
{
    CHECK_STR("ML-DSA-65", cap_pqc_oid_name("2.16.840.1.101.3.4.3.18"));
    CHECK_STR("SLH-DSA-SHA2-128s", cap_pqc_oid_name("2.16.840.1.101.3.4.3.20"));
    CHECK_STR("SLH-DSA-SHAKE-256f", cap_pqc_oid_name("2.16.840.1.101.3.4.3.31"));
    CHECK_STR("ML-KEM-1024", cap_pqc_oid_name("2.16.840.1.101.3.4.4.3"));
    CHECK_STR("MLDSA44-RSA2048-PSS-SHA256", cap_pqc_oid_name("1.3.6.1.5.5.7.6.37"));
    CHECK_STR("MLDSA87-ECDSA-P521-SHA512", cap_pqc_oid_name("1.3.6.1.5.5.7.6.54"));
    CHECK_STR("composite-ML-DSA", cap_pqc_oid_name("2.16.840.1.114027.80.8.1.4"));
    CHECK_STR(NULL, cap_pqc_oid_name("1.2.840.113549.1.1.1"));
}

static void test_kex(void)
{
    CHECK_STR("hybrid", cap_pqc_kex_class(0x11EC));
    CHECK_STR("hybrid", cap_pqc_kex_class(0x11EB));
    CHECK_STR("hybrid", cap_pqc_kex_class(0x11ED));
    CHECK_STR("hybrid", cap_pqc_kex_class(0x6399));
    CHECK_STR("pqc", cap_pqc_kex_class(0x0200));
    CHECK_STR("pqc", cap_pqc_kex_class(0x0201));
    CHECK_STR("pqc", cap_pqc_kex_class(0x0202));
    CHECK_STR("classical", cap_pqc_kex_class(0x0203));
    CHECK_STR("classical", cap_pqc_kex_class(0x001d));
    CHECK_STR("classical", cap_pqc_kex_class(0x0017));
    CHECK_STR("classical", cap_pqc_kex_class(0x0100));
    CHECK_STR("classical", cap_pqc_kex_class(0x11EE));
    CHECK_STR("classical", cap_pqc_kex_class(0xffff));
    CHECK_STR(NULL, cap_pqc_kex_class(0));

    CHECK_STR("x25519", cap_pqc_group_name(0x001d));
    CHECK_STR("x448", cap_pqc_group_name(0x001e));
    CHECK_STR("secp256r1", cap_pqc_group_name(0x0017));
    CHECK_STR("secp384r1", cap_pqc_group_name(0x0018));
    CHECK_STR("secp521r1", cap_pqc_group_name(0x0019));
    CHECK_STR("ffdhe2048", cap_pqc_group_name(0x0100));
    CHECK_STR("ffdhe3072", cap_pqc_group_name(0x0101));
    CHECK_STR("ffdhe4096", cap_pqc_group_name(0x0102));
    CHECK_STR("ffdhe6144", cap_pqc_group_name(0x0103));
    CHECK_STR("ffdhe8192", cap_pqc_group_name(0x0104));
    CHECK_STR("X25519MLKEM768", cap_pqc_group_name(0x11EC));
    CHECK_STR("SecP256r1MLKEM768", cap_pqc_group_name(0x11EB));
    CHECK_STR("SecP384r1MLKEM1024", cap_pqc_group_name(0x11ED));
    CHECK_STR("X25519Kyber768Draft00", cap_pqc_group_name(0x6399));
    CHECK_STR("MLKEM512", cap_pqc_group_name(0x0200));
    CHECK_STR("MLKEM768", cap_pqc_group_name(0x0201));
    CHECK_STR("MLKEM1024", cap_pqc_group_name(0x0202));
    CHECK_STR(NULL, cap_pqc_group_name(0x0000));
    CHECK_STR(NULL, cap_pqc_group_name(0x1234));
}

int main(void)
{
    test_cert_buckets();
    test_oid_names();
    test_kex();
    printf("test_pqc: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
