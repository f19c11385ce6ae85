/* Fuzz target: the precertificate to leaf binding (ct_precert.h). Input: a 24-bit length and
 * the precertificate DER, a 24-bit length and the first chain certificate (0: none), then the
 * leaf's TBSCertificate. The seeds come from the test log (tests/ctlog/ctlog.py --psc-rate):
 * precertificates issued by a CA and by a Precertificate Signing Certificate, and rogue ones. */
#include <stdint.h>
#include <stdlib.h>

#include "worker/ct/ct_codec.h"
#include "worker/ct/ct_precert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cap_ct_cur c;
    cap_ct_cur_init(&c, data, size);
    size_t pl = 0, fl = 0;
    const uint8_t *pre = cap_ct_cur_vec(&c, 3, &pl);
    const uint8_t *first = cap_ct_cur_vec(&c, 3, &fl);
    if (c.bad)
        return 0;
    struct cap_err err = {0};
    int rc = cap_ct_precert_check(pre, pl, fl ? first : NULL, fl, c.p, c.left, &err);
    /* 1 (ask for the chain) only ever comes without one. */
    if (rc == 1 && fl)
        abort();
    if (rc == -1 && !cap_err_isset(&err))
        abort();
    return 0;
}
