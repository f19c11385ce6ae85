/* Certificate facts: everything the inventory, the PQC classes and the findings need from one
 * DER certificate (or a bare CT TBSCertificate), read with OpenSSL but robust to keys and
 * signature algorithms OpenSSL 3.0 cannot load (ML-DSA, SLH-DSA, composite). */
#ifndef CAP_X509_H
#define CAP_X509_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/sha.h>
#include <openssl/x509.h>

#include "common/err.h"

/* Largest certificate (or TBSCertificate) accepted, in bytes. */
#define CAP_X509_DER_MAX (1024 * 1024)
/* SHA-256 as lower-case hex plus the terminating NUL. */
#define CAP_X509_HEX256_LEN 65

/* The CT precertificate poison and SCT list extensions, removed before tbs_sha256. */
#define CAP_X509_OID_CT_POISON "1.3.6.1.4.1.11129.2.4.3"
#define CAP_X509_OID_CT_SCTS "1.3.6.1.4.1.11129.2.4.2"

/* Facts of one certificate. Every char * is a malloc'd NUL-terminated UTF-8 string, never NULL
 * after success ("" when absent). Every char ** is a malloc'd NULL-terminated array of malloc'd
 * strings, never NULL after success (n gives the count). Owned by the struct: release with
 * cap_cert_facts_cleanup. */
struct cap_cert_facts {
    /* SHA-256 of the whole DER, 64 lower hex; "" for facts read from a bare TBSCertificate. */
    char fingerprint_sha256[CAP_X509_HEX256_LEN];
    /* SHA-256 of the DER SubjectPublicKeyInfo, 64 lower hex. */
    char spki_sha256[CAP_X509_HEX256_LEN];
    /* SHA-256 of the DER TBSCertificate with the CT poison and SCT list extensions removed:
     * equal for a precertificate (or a CT precert_entry TBS) and its final certificate. */
    char tbs_sha256[CAP_X509_HEX256_LEN];

    char *subject; /* RFC 4514 one-line form, most specific RDN first ("CN=a,O=b,C=US") */
    char *issuer;  /* same form */
    char *cn;      /* last (most specific) commonName of the subject, "" when none */
    char *serial;  /* lower hex, whole bytes without leading zero bytes ("0a1b", "0" for zero),
                    * "-" prefix when negative */

    char **dns_sans; /* dNSName entries, as written in the certificate (case kept) */
    size_t dns_sans_n;
    char **ip_sans; /* iPAddress entries as text (192.0.2.1, 2001:db8::1) */
    size_t ip_sans_n;
    char **email_sans; /* rfc822Name entries */
    size_t email_sans_n;
    char **uri_sans; /* uniformResourceIdentifier entries */
    size_t uri_sans_n;
    char **ocsp_urls; /* AIA id-ad-ocsp URIs (for revocation checks) */
    size_t ocsp_urls_n;
    char **crl_urls; /* CRL distribution point full-name URIs */
    size_t crl_urls_n;

    int64_t not_before; /* Unix seconds (UTC) */
    int64_t not_after;
    bool has_validity; /* false when either time could not be read (then both are 0) */

    /* Public key: key_algorithm is "RSA", "DSA", "EC", "Ed25519", "Ed448", "X25519", "X448",
     * "ML-DSA-44|65|87", "SLH-DSA-SHA2-128s" (etc.), "ML-KEM-512|768|1024", a composite name
     * ("MLDSA65-ECDSA-P256-SHA512", ...), or the dotted OID when the algorithm is unknown, or
     * "unknown" when not even the OID could be read. */
    char *key_algorithm;
    char *key_oid;      /* dotted OID of the SubjectPublicKeyInfo algorithm ("" if unreadable) */
    int key_bits;       /* RSA/DSA modulus bits, EC field bits, as OpenSSL counts for EdDSA (256,
                         * 456); 0 when the key does not load (all PQC keys on OpenSSL 3.0) */
    char *key_curve;    /* EC: "P-256", "P-384", "P-521", else the OpenSSL short name
                         * ("secp256k1") or the dotted curve OID; "" for non-EC keys */
    bool key_malformed; /* the OID is known to OpenSSL but the key bytes do not load */

    /* Signature: signature_algorithm is the OpenSSL long/short name ("sha256WithRSAEncryption",
     * "ecdsa-with-SHA384", "ED25519"), a PQC name ("ML-DSA-65"), or the dotted OID. */
    char *signature_algorithm;
    char *signature_oid;  /* dotted OID from the TBSCertificate's signature field */
    char *signature_hash; /* "md5", "sha1", "sha256", ... ("" when none or unknown) */

    bool is_ca;       /* basicConstraints cA = TRUE */
    bool self_signed; /* issuer == subject and its own key verifies the signature (false for
                       * keys OpenSSL cannot load, and for facts from a bare TBSCertificate) */
    bool is_precert;  /* CT poison extension present */
    bool from_tbs;    /* read with cap_x509_facts_from_tbs */
};

/* Reads the facts of one DER certificate. Never crashes on garbage: len 0, more than
 * CAP_X509_DER_MAX, a DER that does not parse, or trailing bytes after the certificate give -1
 * with err (CAP_E_INVALID). An unknown or malformed public key or signature algorithm is not an
 * error: the key is named by its OID (or "unknown"). On success out is filled (any previous
 * content is overwritten, not freed) and must be released with cap_cert_facts_cleanup; on
 * failure out is left zeroed and needs nothing. Pure CPU, does not block. */
int cap_x509_facts_from_der(const uint8_t *der, size_t len, struct cap_cert_facts *out,
                            struct cap_err *err);

/* As cap_x509_facts_from_der when the caller holds the certificate parsed already (x, which
 * der encodes: a TLS client's peer chain) and, when not NULL, der's SHA-256: neither is
 * computed again. x is only read. */
int cap_x509_facts_from_x509(X509 *x, const uint8_t *der, size_t len,
                             const uint8_t sha256[SHA256_DIGEST_LENGTH],
                             struct cap_cert_facts *out, struct cap_err *err);

/* As cap_x509_facts_from_der for a bare DER TBSCertificate (the CT precert_entry form). The
 * TBS is wrapped in a Certificate with a dummy signature to be parsed. fingerprint_sha256 is ""
 * (use the precertificate from extra_data for the fingerprint); tbs_sha256 is computed the same
 * way as for a full certificate, so it joins the entry with its final certificate; self_signed
 * is false; from_tbs is true. */
int cap_x509_facts_from_tbs(const uint8_t *tbs, size_t len, struct cap_cert_facts *out,
                            struct cap_err *err);

/* Frees everything f owns and zeroes it. Safe on a zeroed struct and on NULL. */
void cap_cert_facts_cleanup(struct cap_cert_facts *f);

/* True when a DNS name from a certificate (pattern: SAN dNSName or CN) matches hostname under
 * RFC 6125: case-insensitive, one trailing dot ignored on either side, a wildcard only as the
 * whole leftmost label ("*.example.com", never "f*.example.com", "*" or "*.com"-style patterns
 * with fewer than two labels after the wildcard), matching exactly one non-empty label (never
 * across dots), and never matching an IP address literal. Empty or NULL arguments never match. */
bool cap_x509_name_matches(const char *pattern_from_cert, const char *hostname);

/* True when hostname (a DNS name or an IP literal) is covered by the certificate: an IP literal
 * against the IP SANs; a name against the DNS SANs, or the CN only when there are no DNS SANs. */
bool cap_x509_host_matches(const struct cap_cert_facts *f, const char *hostname);

/* Finds DNS SANs that differ only in case ("www.Example.com" and "www.example.com"). Fills
 * out[0..max) with pointers into f->dns_sans (borrowed: valid while f lives) to every SAN that
 * has such a twin, each distinct spelling once, in certificate order. Returns the total number
 * of such SANs (may exceed max; 0 when none). */
size_t cap_x509_san_case_duplicates(const struct cap_cert_facts *f, const char **out, size_t max);

/* True when the signature uses MD5 or SHA-1 (or MD2/MD4): the weak_signature finding. */
bool cap_x509_weak_signature(const struct cap_cert_facts *f);

/* True when the key is RSA or DSA under 2048 bits, or EC under 224 bits: the weak_key
 * finding. */
bool cap_x509_weak_key(const struct cap_cert_facts *f);

/* Copies len bytes of outside text into a new NUL-terminated string that is valid UTF-8
 * without control characters (those and invalid bytes become \xNN, a backslash becomes \\),
 * so it can go into a PostgreSQL text column or a log line. NULL on allocation failure only;
 * caller frees. */
char *cap_x509_clean_text(const void *data, size_t len);

/* Writes the lower-case hex of len bytes into out (at least 2 * len + 1 bytes). */
void cap_x509_hex(const uint8_t *bytes, size_t len, char *out);

#endif
