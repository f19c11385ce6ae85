/* Fuzz target: raw MerkleTreeLeaf bytes, PrecertChainEntry extra_data, and the DER walk that
 * pulls names out of the certificate or TBSCertificate. */
#include <stdint.h>
#include <stdlib.h>

#include "worker/ct/ct_match.h"
#include "worker/ct/ct_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int name_cb(void *ud, const char *name, size_t len)
{
    (void)name;
    *(size_t *)ud += len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cap_err err = {0};
    struct cap_ct_leaf leaf;
    size_t total = 0;
    if (cap_ct_leaf_parse(data, size, &leaf, &err) == 0)
        cap_ct_names_each(leaf.cert, leaf.cert_len, leaf.entry_type == 1, name_cb, &total, &err);
    cap_err_clear(&err);
    cap_ct_names_each(data, size, false, name_cb, &total, &err);
    cap_err_clear(&err);
    cap_ct_names_each(data, size, true, name_cb, &total, &err);
    const uint8_t *pre;
    size_t pl;
    cap_err_clear(&err);
    cap_ct_extra_precert(data, size, &pre, &pl, NULL, NULL, &err);
    return 0;
}
