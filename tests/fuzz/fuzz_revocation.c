/* Fuzz target for the revocation readers: the first byte picks an OCSP response (even) or a
 * CRL (odd), the rest is the body a responder or distribution point sent. Read against a fixed
 * CA and leaf (revocation_fixture.h), so the seeds reach the signature, coverage and validity
 * checks; any bytes must give an answer or a reason, never a crash. */
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "revocation_fixture.h"
#include "worker/scan/revocation.h"

static X509 *pem_cert(const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static X509 *issuer, *leaf, *lookalike;
    if (!issuer) {
        issuer = pem_cert(REV_FIXTURE_ISSUER_PEM);
        leaf = pem_cert(REV_FIXTURE_LEAF_PEM);
        lookalike = pem_cert(REV_FIXTURE_LOOKALIKE_PEM);
    }
    if (size < 1 || !issuer || !leaf || !lookalike)
        return 0;
    struct cap_revocation_answer a;
    if ((data[0] & 1) == 0) {
        if (cap_revocation_read_ocsp(data + 1, size - 1, leaf, issuer, &a) != 0 && !a.why[0])
            __builtin_trap(); /* a refusal always says why */
        (void)cap_revocation_read_ocsp(data + 1, size - 1, leaf, NULL, &a);
        (void)cap_revocation_read_ocsp(data + 1, size - 1, leaf, lookalike, &a);
    } else {
        X509_CRL *crl = cap_revocation_parse_crl(data + 1, size - 1);
        if (crl) {
            if (cap_revocation_crl_answer(crl, leaf, issuer, REV_FIXTURE_CRL_URL, &a) != 0 &&
                !a.why[0])
                __builtin_trap();
            (void)cap_revocation_crl_answer(crl, leaf, NULL, NULL, &a);
            (void)cap_revocation_crl_answer(crl, leaf, lookalike, NULL, &a);
            X509_CRL_free(crl);
        }
    }
    return 0;
}
