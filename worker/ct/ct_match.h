/* Domain-suffix matching for the CT monitor: a hash set of normalised suffixes (lower case, no
 * trailing dot, IDNs as A-labels) probed once per label boundary of a name, so the cost of a
 * name does not depend on how many suffixes a source watches; and a fast DER walk that pulls
 * the DNS names (SAN dNSNames, or the subject CNs when there are no SANs) out of a certificate
 * or a bare TBSCertificate without building an X509 object. */
#ifndef CAP_CT_MATCH_H
#define CAP_CT_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define CAP_CT_NAME_MAX 253

struct cap_ct_suffixes;

/* Normalises a user-given domain suffix into out (CAP_CT_NAME_MAX + 1 bytes): trims spaces,
 * drops a leading "*." and trailing dots, lower-cases ASCII, converts non-ASCII (UTF-8)
 * labels to A-labels ("xn--", libidn2: IDNA2008 with UTS #46 mapping). Returns 0, or -1 with
 * err naming the value. */
int cap_ct_suffix_normalize(const char *in, char *out, struct cap_err *err);

/* Builds a suffix set from n user-given suffixes (normalised as above). Returns NULL with err
 * on a bad suffix. Caller frees with cap_ct_suffixes_free. */
struct cap_ct_suffixes *cap_ct_suffixes_new(const char *const *v, size_t n, struct cap_err *err);
void cap_ct_suffixes_free(struct cap_ct_suffixes *s);

/* True when name (len bytes, as found in a certificate: any case, maybe a trailing dot, maybe a
 * wildcard "*." label) equals a suffix or ends with "." + suffix. */
bool cap_ct_suffixes_match(const struct cap_ct_suffixes *s, const char *name, size_t len);

/* Calls cb for every DNS name of the certificate: SAN dNSNames, or, only when the certificate
 * has no SAN extension, the subject common names. der is a Certificate, or a TBSCertificate when
 * is_tbs. cb returns non-zero to stop early. Returns 1 when cb stopped it, 0 when all names were
 * seen, -1 with err on malformed DER. */
typedef int (*cap_ct_name_cb)(void *ud, const char *name, size_t len);
int cap_ct_names_each(const uint8_t *der, size_t len, bool is_tbs, cap_ct_name_cb cb, void *ud,
                      struct cap_err *err);

/* 1 when some name of the certificate matches s, 0 when none does, -1 with err on malformed
 * DER. */
int cap_ct_match_cert(const struct cap_ct_suffixes *s, const uint8_t *der, size_t len,
                      bool is_tbs, struct cap_err *err);

#endif
