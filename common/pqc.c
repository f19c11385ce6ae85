/* Post-quantum readiness tables: certificate buckets from key OIDs/sizes/curves, TLS group
 * names and key-exchange classes from IANA code points. */
#include "common/pqc.h"

#include <string.h>

#include <openssl/obj_mac.h>

#include "common/x509.h"

struct oid_name {
    const char *oid;
    const char *name;
};

/* NIST CSOR algorithm arcs (FIPS 204, 205, 203) and the composite ML-DSA OIDs of
 * draft-ietf-lamps-pq-composite-sigs (1.3.6.1.5.5.7.6.37-54, in the draft's order). */
static const struct oid_name pq_oids[] = {
    {"2.16.840.1.101.3.4.3.17", "ML-DSA-44"},
    {"2.16.840.1.101.3.4.3.18", "ML-DSA-65"},
    {"2.16.840.1.101.3.4.3.19", "ML-DSA-87"},
    {"2.16.840.1.101.3.4.3.20", "SLH-DSA-SHA2-128s"},
    {"2.16.840.1.101.3.4.3.21", "SLH-DSA-SHA2-128f"},
    {"2.16.840.1.101.3.4.3.22", "SLH-DSA-SHA2-192s"},
    {"2.16.840.1.101.3.4.3.23", "SLH-DSA-SHA2-192f"},
    {"2.16.840.1.101.3.4.3.24", "SLH-DSA-SHA2-256s"},
    {"2.16.840.1.101.3.4.3.25", "SLH-DSA-SHA2-256f"},
    {"2.16.840.1.101.3.4.3.26", "SLH-DSA-SHAKE-128s"},
    {"2.16.840.1.101.3.4.3.27", "SLH-DSA-SHAKE-128f"},
    {"2.16.840.1.101.3.4.3.28", "SLH-DSA-SHAKE-192s"},
    {"2.16.840.1.101.3.4.3.29", "SLH-DSA-SHAKE-192f"},
    {"2.16.840.1.101.3.4.3.30", "SLH-DSA-SHAKE-256s"},
    {"2.16.840.1.101.3.4.3.31", "SLH-DSA-SHAKE-256f"},
    {"2.16.840.1.101.3.4.3.32", "HashML-DSA-44-SHA512"},
    {"2.16.840.1.101.3.4.3.33", "HashML-DSA-65-SHA512"},
    {"2.16.840.1.101.3.4.3.34", "HashML-DSA-87-SHA512"},
    {"2.16.840.1.101.3.4.4.1", "ML-KEM-512"},
    {"2.16.840.1.101.3.4.4.2", "ML-KEM-768"},
    {"2.16.840.1.101.3.4.4.3", "ML-KEM-1024"},
    {"1.3.6.1.5.5.7.6.37", "MLDSA44-RSA2048-PSS-SHA256"},
    {"1.3.6.1.5.5.7.6.38", "MLDSA44-RSA2048-PKCS15-SHA256"},
    {"1.3.6.1.5.5.7.6.39", "MLDSA44-Ed25519-SHA512"},
    {"1.3.6.1.5.5.7.6.40", "MLDSA44-ECDSA-P256-SHA256"},
    {"1.3.6.1.5.5.7.6.41", "MLDSA65-RSA3072-PSS-SHA512"},
    {"1.3.6.1.5.5.7.6.42", "MLDSA65-RSA3072-PKCS15-SHA512"},
    {"1.3.6.1.5.5.7.6.43", "MLDSA65-RSA4096-PSS-SHA512"},
    {"1.3.6.1.5.5.7.6.44", "MLDSA65-RSA4096-PKCS15-SHA512"},
    {"1.3.6.1.5.5.7.6.45", "MLDSA65-ECDSA-P256-SHA512"},
    {"1.3.6.1.5.5.7.6.46", "MLDSA65-ECDSA-P384-SHA512"},
    {"1.3.6.1.5.5.7.6.47", "MLDSA65-ECDSA-brainpoolP256r1-SHA512"},
    {"1.3.6.1.5.5.7.6.48", "MLDSA65-Ed25519-SHA512"},
    {"1.3.6.1.5.5.7.6.49", "MLDSA87-ECDSA-P384-SHA512"},
    {"1.3.6.1.5.5.7.6.50", "MLDSA87-ECDSA-brainpoolP384r1-SHA512"},
    {"1.3.6.1.5.5.7.6.51", "MLDSA87-Ed448-SHAKE256"},
    {"1.3.6.1.5.5.7.6.52", "MLDSA87-RSA3072-PSS-SHA512"},
    {"1.3.6.1.5.5.7.6.53", "MLDSA87-RSA4096-PSS-SHA512"},
    {"1.3.6.1.5.5.7.6.54", "MLDSA87-ECDSA-P521-SHA512"},
};

/* Arcs of earlier composite drafts (Entrust prototype OIDs): every OID directly below one of
 * them is a composite ML-DSA algorithm. */
static const char *const composite_arcs[] = {
    "2.16.840.1.114027.80.8.1.",
    "2.16.840.1.114027.80.9.1.",
};

/* True when oid is arc followed by one non-empty run of digits (one more arc component). */
static bool oid_directly_below(const char *oid, const char *arc)
{
    size_t n = strlen(arc);
    if (strncmp(oid, arc, n) != 0) {
        return false;
    }
    const char *p = oid + n;
    if (*p == '\0') {
        return false;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
    }
    return true;
}

const char *cap_pqc_oid_name(const char *dotted_oid)
{
    if (!dotted_oid || !*dotted_oid) {
        return NULL;
    }
    for (size_t i = 0; i < sizeof(pq_oids) / sizeof(pq_oids[0]); i++) {
        if (strcmp(pq_oids[i].oid, dotted_oid) == 0) {
            return pq_oids[i].name;
        }
    }
    for (size_t i = 0; i < sizeof(composite_arcs) / sizeof(composite_arcs[0]); i++) {
        if (oid_directly_below(dotted_oid, composite_arcs[i])) {
            return "composite-ML-DSA";
        }
    }
    return NULL;
}

const char *cap_pqc_class_oid(const char *dotted_oid)
{
    return cap_pqc_oid_name(dotted_oid) ? CAP_PQC_READY : NULL;
}

const char *cap_pqc_class_cert(const struct cap_cert_facts *f)
{
    if (!f || f->key_malformed) {
        return CAP_PQC_UNKNOWN;
    }
    const char *by_oid = cap_pqc_class_oid(f->key_oid);
    if (by_oid) {
        return by_oid;
    }
    const char *alg = f->key_algorithm ? f->key_algorithm : "";
    if (strcmp(alg, "RSA") == 0 || strcmp(alg, "RSA-PSS") == 0 || strcmp(alg, "DSA") == 0) {
        if (f->key_bits <= 0) {
            return CAP_PQC_UNKNOWN;
        }
        if (f->key_bits < 2048) {
            return CAP_PQC_VULNERABLE;
        }
        /* Large RSA and DSA keys are still classical: Shor's algorithm breaks both. */
        return CAP_PQC_TRANSITION;
    }
    if (strcmp(alg, "EC") == 0) {
        const char *c = f->key_curve ? f->key_curve : "";
        if (strcmp(c, "P-256") == 0 || strcmp(c, "P-384") == 0 || strcmp(c, "P-521") == 0) {
            return CAP_PQC_TRANSITION;
        }
        return CAP_PQC_UNKNOWN;
    }
    if (strcmp(alg, "Ed25519") == 0 || strcmp(alg, "Ed448") == 0) {
        return CAP_PQC_TRANSITION;
    }
    return CAP_PQC_UNKNOWN;
}

struct group_name {
    uint16_t id;
    const char *name;
    int nid; /* OpenSSL's NID for the group, 0 when it has none (3.0 lacks the ML-KEM ones) */
};

/* IANA TLS Supported Groups registry names of the groups scanners meet, with OpenSSL's NID
 * where it has one. The one table of groups: the scan engine maps what OpenSSL negotiated
 * through it, the inventory names and classes code points with it. */
static const struct group_name groups[] = {
    {0x0001, "sect163k1", 0},
    {0x0013, "secp192r1", NID_X9_62_prime192v1},
    {0x0015, "secp224r1", NID_secp224r1},
    {0x0017, "secp256r1", NID_X9_62_prime256v1},
    {0x0018, "secp384r1", NID_secp384r1},
    {0x0019, "secp521r1", NID_secp521r1},
    {0x0016, "secp256k1", NID_secp256k1},
    {0x001a, "brainpoolP256r1", NID_brainpoolP256r1},
    {0x001b, "brainpoolP384r1", NID_brainpoolP384r1},
    {0x001c, "brainpoolP512r1", NID_brainpoolP512r1},
    {0x001d, "x25519", NID_X25519},
    {0x001e, "x448", NID_X448},
    {0x001f, "brainpoolP256r1tls13", 0},
    {0x0020, "brainpoolP384r1tls13", 0},
    {0x0021, "brainpoolP512r1tls13", 0},
    {0x0029, "curveSM2", 0},
    {0x0100, "ffdhe2048", NID_ffdhe2048},
    {0x0101, "ffdhe3072", NID_ffdhe3072},
    {0x0102, "ffdhe4096", NID_ffdhe4096},
    {0x0103, "ffdhe6144", NID_ffdhe6144},
    {0x0104, "ffdhe8192", NID_ffdhe8192},
    {0x0200, "MLKEM512", 0},
    {0x0201, "MLKEM768", 0},
    {0x0202, "MLKEM1024", 0},
    {0x11eb, "SecP256r1MLKEM768", 0},
    {0x11ec, "X25519MLKEM768", 0},
    {0x11ed, "SecP384r1MLKEM1024", 0},
    {0x6399, "X25519Kyber768Draft00", 0},
    {0x639a, "SecP256r1Kyber768Draft00", 0},
};

const char *cap_pqc_group_name(uint16_t group)
{
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (groups[i].id == group) {
            return groups[i].name;
        }
    }
    return NULL;
}

uint16_t cap_pqc_group_by_nid(int nid)
{
    for (size_t i = 0; nid != 0 && i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (groups[i].nid == nid) {
            return groups[i].id;
        }
    }
    return 0;
}

uint16_t cap_pqc_group_by_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (strcmp(groups[i].name, name) == 0) {
            return groups[i].id;
        }
    }
    return 0;
}

const char *cap_pqc_kex_class(uint16_t group)
{
    switch (group) {
    case 0:
        return NULL;
    case 0x11ec: /* X25519MLKEM768 */
    case 0x11eb: /* SecP256r1MLKEM768 */
    case 0x11ed: /* SecP384r1MLKEM1024 */
    case 0x6399: /* X25519Kyber768Draft00 */
    case 0x639a: /* SecP256r1Kyber768Draft00 */
        return CAP_KEX_HYBRID;
    case 0x0200: /* ML-KEM-512 */
    case 0x0201: /* ML-KEM-768 */
    case 0x0202: /* ML-KEM-1024 */
        return CAP_KEX_PQC;
    default:
        return CAP_KEX_CLASSICAL;
    }
}
