/* Post-quantum readiness: the product's certificate buckets (vulnerable, transition, ready,
 * unknown) from key OIDs and sizes, and the key-exchange class (classical, hybrid, pqc) from a
 * TLS group's IANA code point. Pure tables, no allocation. */
#ifndef CAP_PQC_H
#define CAP_PQC_H

#include <stdbool.h>
#include <stdint.h>

struct cap_cert_facts;

/* Bucket names, as stored in discovered_certificates.pqc_class. */
#define CAP_PQC_VULNERABLE "vulnerable"
#define CAP_PQC_TRANSITION "transition"
#define CAP_PQC_READY "ready"
#define CAP_PQC_UNKNOWN "unknown"

/* Key-exchange class names, as stored in endpoint_observations.kex_pqc. */
#define CAP_KEX_CLASSICAL "classical"
#define CAP_KEX_HYBRID "hybrid"
#define CAP_KEX_PQC "pqc"

/* The certificate's bucket (a static string): "vulnerable" for RSA or DSA keys under 2048 bits;
 * "transition" for RSA 2048+, EC on P-256/P-384/P-521 and Ed25519/Ed448; "ready" for ML-DSA
 * (2.16.840.1.101.3.4.3.17-19), SLH-DSA (2.16.840.1.101.3.4.3.20-31), ML-KEM
 * (2.16.840.1.101.3.4.4.1-3) and composite ML-DSA keys (1.3.6.1.5.5.7.6.x of
 * draft-ietf-lamps-pq-composite-sigs, and the older 2.16.840.1.114027.80.8.1.x arc); "unknown"
 * otherwise (another curve, an unknown OID, a malformed key, NULL f). Decided by key_oid first,
 * then key_algorithm/key_bits/key_curve. */
const char *cap_pqc_class_cert(const struct cap_cert_facts *f);

/* The bucket of a key given by its dotted OID alone when the OID decides it ("ready" for the
 * PQC and composite OIDs), else NULL (classical keys need size/curve: use
 * cap_pqc_class_cert). */
const char *cap_pqc_class_oid(const char *dotted_oid);

/* Name of a PQC or composite public-key/signature OID ("ML-DSA-65", "SLH-DSA-SHA2-128s",
 * "ML-KEM-768", "MLDSA65-ECDSA-P256-SHA512", ...), or NULL when the OID is not one of them.
 * Static string. */
const char *cap_pqc_oid_name(const char *dotted_oid);

/* The key-exchange class of a TLS named group code point (a static string): "hybrid" for
 * X25519MLKEM768 0x11EC, SecP256r1MLKEM768 0x11EB, SecP384r1MLKEM1024 0x11ED and
 * X25519Kyber768Draft00 0x6399; "pqc" for ML-KEM-512/768/1024 0x0200-0x0202; "classical" for
 * any other group. Returns NULL for 0 (no group known, e.g. a failed handshake). */
const char *cap_pqc_kex_class(uint16_t group);

/* IANA name of a TLS named group ("x25519", "secp256r1", "ffdhe2048", "X25519MLKEM768",
 * "MLKEM768", ...), or NULL when the code point is not in the table. Static string. */
const char *cap_pqc_group_name(uint16_t group);

/* The IANA code point of the group OpenSSL calls nid (NID_X25519 is 0x001D), or 0 when the
 * table has no such NID (0 included). */
uint16_t cap_pqc_group_by_nid(int nid);

/* The IANA code point of the group named name as in the IANA registry, which is how OpenSSL
 * 3.5 names the ML-KEM and hybrid groups ("X25519MLKEM768" is 0x11EC), or 0 when unknown
 * (NULL included). */
uint16_t cap_pqc_group_by_name(const char *name);

#endif
