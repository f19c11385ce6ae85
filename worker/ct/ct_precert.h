/* Binds a CT precertificate to its Merkle leaf: the precertificate (from extra_data or a data
 * tile, which no signature covers) must be the one whose TBSCertificate the leaf holds, so that
 * its fingerprint, the identity the inventory stores, comes from data the log signed. */
#ifndef CAP_CT_PRECERT_H
#define CAP_CT_PRECERT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Most extensions read from one TBSCertificate. */
#define CAP_CT_EXTENSIONS_MAX 64

/* Checks that precert (a DER Certificate) is the precertificate of the leaf whose
 * tbs_certificate is tbs (RFC 6962 section 3.2): the precertificate's TBSCertificate without its
 * poison and SCT list extensions must equal tbs, field by field and byte for byte. When the
 * first certificate of the precertificate's chain (first, may be NULL) is a Precertificate
 * Signing Certificate (extended key usage 1.3.6.1.4.1.11129.2.4.4), the leaf's issuer is that
 * certificate's issuer and its authority key identifier extension that certificate's, as RFC
 * 6962 has the log rewrite them. Returns 0 when they match; 1 when they differ only in the
 * issuer and authority key identifier and first is NULL (the caller may fetch the chain's first
 * certificate and ask again); -1 with err (CAP_E_INVALID naming the first field that differs,
 * or what does not parse) otherwise. Pure; allocates nothing. */
int cap_ct_precert_check(const uint8_t *precert, size_t precert_len, const uint8_t *first,
                         size_t first_len, const uint8_t *tbs, size_t tbs_len, struct cap_err *err);

#endif
