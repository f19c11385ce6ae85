/* Fuzz target: tree heads (get-sth JSON), consistency proofs, get-entry-and-proof answers,
 * static-ct checkpoints (signed notes, checked against a fixed key), stored frontiers, and
 * user-given domain suffixes (punycode). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/ct/ct_match.h"
#include "worker/ct/ct_merkle.h"
#include "worker/ct/ct_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char KEY[] =
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEKHRm0H/zUaFA6Idz5cGvGO3tCPQyfGMgJmVBOPyKAP6mGM1IiNXi4CLo"
    "mOUyYj0YN74p+eGVApFMsM4h/jzCsA==";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static EVP_PKEY *key;
    struct cap_err err = {0};
    if (!key)
        key = cap_ct_key_load(KEY, &err);
    struct cap_ct_sth sth;
    if (cap_ct_sth_parse((const char *)data, size, &sth, &err) == 0 && key)
        cap_ct_sth_verify(key, &sth, &err);
    uint8_t(*proof)[32] = NULL;
    size_t pn = 0;
    cap_err_clear(&err);
    if (cap_ct_consistency_parse((const char *)data, size, &proof, &pn, &err) == 0) {
        uint8_t r1[32] = {0}, r2[32] = {1};
        struct cap_ct_frontier f;
        cap_ct_consistency_verify(pn + 1, 3 * pn + 7, r1, r2, (const uint8_t(*)[32])proof, pn,
                                  &f, &err);
        free(proof);
    }
    bool ver;
    cap_err_clear(&err);
    cap_ct_checkpoint_parse((const char *)data, size, key, NULL, &sth, &ver, &err);
    cap_err_clear(&err);
    cap_ct_checkpoint_parse((const char *)data, size, NULL, NULL, &sth, &ver, &err);
    uint8_t *leaf = NULL;
    size_t leaf_len = 0, path_n = 0;
    uint8_t(*path)[32] = NULL;
    cap_err_clear(&err);
    if (cap_ct_entry_proof_parse((const char *)data, size, &leaf, &leaf_len, &path, &path_n,
                                 &err) == 0) {
        uint8_t lh[32], root[32] = {0};
        struct cap_ct_frontier lf;
        cap_ct_leaf_hash(leaf, leaf_len, lh);
        cap_ct_inclusion_verify(path_n, 2 * path_n + 3, lh, root, (const uint8_t(*)[32])path,
                                path_n, &lf, &err);
        free(leaf);
        free(path);
    }
    /* A domain suffix as a user gives it (NUL-terminated copy, at most 1 KiB). */
    if (size <= 1024) {
        char sfx[1025];
        char norm[CAP_CT_NAME_MAX + 1];
        memcpy(sfx, data, size);
        sfx[size] = '\0';
        cap_err_clear(&err);
        cap_ct_suffix_normalize(sfx, norm, &err);
    }
    struct cap_ct_frontier f;
    cap_err_clear(&err);
    if (cap_ct_frontier_decode(data, size, &f, &err) == 0) {
        uint8_t root[32];
        cap_ct_frontier_root(&f, root);
    }
    return 0;
}
