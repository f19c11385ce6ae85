/* RFC 6962 Merkle hashing, the compact-range frontier and consistency-proof verification. */
/* The low-level SHA-256 calls are deprecated in OpenSSL 3 but are several times faster than
 * EVP for the many small inputs of tree hashing. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "worker/ct/ct_merkle.h"

#include <openssl/sha.h>
#include <string.h>

void cap_ct_leaf_hash(const uint8_t *leaf, size_t n, uint8_t out[CAP_CT_HASH_LEN])
{
    SHA256_CTX c;
    uint8_t z = 0;
    SHA256_Init(&c);
    SHA256_Update(&c, &z, 1);
    SHA256_Update(&c, leaf, n);
    SHA256_Final(out, &c);
}

void cap_ct_node_hash(const uint8_t left[CAP_CT_HASH_LEN], const uint8_t right[CAP_CT_HASH_LEN],
                      uint8_t out[CAP_CT_HASH_LEN])
{
    uint8_t buf[1 + 2 * CAP_CT_HASH_LEN];
    buf[0] = 1;
    memcpy(buf + 1, left, CAP_CT_HASH_LEN);
    memcpy(buf + 1 + CAP_CT_HASH_LEN, right, CAP_CT_HASH_LEN);
    SHA256(buf, sizeof buf, out);
}

void cap_ct_empty_root(uint8_t out[CAP_CT_HASH_LEN])
{
    SHA256((const uint8_t *)"", 0, out);
}

void cap_ct_frontier_init(struct cap_ct_frontier *f)
{
    f->size = 0;
}

int cap_ct_frontier_append(struct cap_ct_frontier *f, const uint8_t leaf_hash[CAP_CT_HASH_LEN])
{
    if (f->size >= (UINT64_C(1) << 62))
        return -1;
    uint8_t cur[CAP_CT_HASH_LEN];
    memcpy(cur, leaf_hash, CAP_CT_HASH_LEN);
    int level = 0;
    /* Carry: every set low bit is a left sibling that merges with the new node. */
    while (f->size & (UINT64_C(1) << level)) {
        cap_ct_node_hash(f->hash[level], cur, cur);
        level++;
    }
    memcpy(f->hash[level], cur, CAP_CT_HASH_LEN);
    f->size++;
    return 0;
}

int cap_ct_frontier_append_node(struct cap_ct_frontier *f, int level,
                                const uint8_t hash[CAP_CT_HASH_LEN])
{
    if (level < 0 || level >= 62 || (f->size & ((UINT64_C(1) << level) - 1)) != 0 ||
        f->size + (UINT64_C(1) << level) > (UINT64_C(1) << 62))
        return -1;
    uint8_t cur[CAP_CT_HASH_LEN];
    memcpy(cur, hash, CAP_CT_HASH_LEN);
    int l = level;
    /* The same carry as a leaf, starting at the subtree's level. */
    while (f->size & (UINT64_C(1) << l)) {
        cap_ct_node_hash(f->hash[l], cur, cur);
        l++;
    }
    memcpy(f->hash[l], cur, CAP_CT_HASH_LEN);
    f->size += UINT64_C(1) << level;
    return 0;
}

bool cap_ct_frontier_equal(const struct cap_ct_frontier *a, const struct cap_ct_frontier *b)
{
    if (a->size != b->size)
        return false;
    for (int level = 0; level < CAP_CT_MAX_LEVELS; level++)
        if ((a->size & (UINT64_C(1) << level)) &&
            memcmp(a->hash[level], b->hash[level], CAP_CT_HASH_LEN) != 0)
            return false;
    return true;
}

void cap_ct_frontier_root(const struct cap_ct_frontier *f, uint8_t out[CAP_CT_HASH_LEN])
{
    if (f->size == 0) {
        cap_ct_empty_root(out);
        return;
    }
    bool have = false;
    uint8_t acc[CAP_CT_HASH_LEN];
    for (int level = 0; level < CAP_CT_MAX_LEVELS; level++) {
        if (!(f->size & (UINT64_C(1) << level)))
            continue;
        if (!have) {
            memcpy(acc, f->hash[level], CAP_CT_HASH_LEN);
            have = true;
        } else {
            cap_ct_node_hash(f->hash[level], acc, acc);
        }
    }
    memcpy(out, acc, CAP_CT_HASH_LEN);
}

long cap_ct_frontier_encode(const struct cap_ct_frontier *f, uint8_t *out, size_t cap)
{
    size_t need = 8 + (size_t)__builtin_popcountll(f->size) * CAP_CT_HASH_LEN;
    if (cap < need)
        return -1;
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(f->size >> (56 - 8 * i));
    size_t o = 8;
    for (int level = CAP_CT_MAX_LEVELS - 1; level >= 0; level--) {
        if (f->size & (UINT64_C(1) << level)) {
            memcpy(out + o, f->hash[level], CAP_CT_HASH_LEN);
            o += CAP_CT_HASH_LEN;
        }
    }
    return (long)o;
}

int cap_ct_frontier_decode(const uint8_t *in, size_t n, struct cap_ct_frontier *f,
                           struct cap_err *err)
{
    if (n < 8) {
        cap_err_set(err, CAP_E_INVALID, "stored frontier: %zu bytes, need at least 8", n);
        return -1;
    }
    uint64_t size = 0;
    for (int i = 0; i < 8; i++)
        size = (size << 8) | in[i];
    if (size >= (UINT64_C(1) << 62)) {
        cap_err_set(err, CAP_E_INVALID, "stored frontier: size %llu out of range",
                    (unsigned long long)size);
        return -1;
    }
    size_t need = 8 + (size_t)__builtin_popcountll(size) * CAP_CT_HASH_LEN;
    if (n != need) {
        cap_err_set(err, CAP_E_INVALID, "stored frontier: %zu bytes for size %llu, expected %zu",
                    n, (unsigned long long)size, need);
        return -1;
    }
    size_t o = 8;
    for (int level = CAP_CT_MAX_LEVELS - 1; level >= 0; level--) {
        if (size & (UINT64_C(1) << level)) {
            memcpy(f->hash[level], in + o, CAP_CT_HASH_LEN);
            o += CAP_CT_HASH_LEN;
        }
    }
    f->size = size;
    return 0;
}

int cap_ct_consistency_verify(uint64_t size1, uint64_t size2, const uint8_t root1[32],
                              const uint8_t root2[32], const uint8_t (*proof)[32], size_t proof_n,
                              struct cap_ct_frontier *old_out, struct cap_err *err)
{
    if (size1 > size2) {
        cap_err_set(err, CAP_E_INVALID, "tree shrank from %llu to %llu entries",
                    (unsigned long long)size1, (unsigned long long)size2);
        return -1;
    }
    if (size1 == size2) {
        if (proof_n != 0 || memcmp(root1, root2, 32) != 0) {
            cap_err_set(err, CAP_E_INVALID,
                        "two tree heads of size %llu have different roots (forked log)",
                        (unsigned long long)size1);
            return -1;
        }
        return 0;
    }
    if (size1 == 0)
        return proof_n == 0 ? 0
                            : (cap_err_set(err, CAP_E_INVALID,
                                           "consistency proof from size 0 must be empty"),
                               -1);
    if (proof_n == 0 || proof_n > 2 * CAP_CT_MAX_LEVELS) {
        cap_err_set(err, CAP_E_INVALID, "consistency proof %llu -> %llu has %zu nodes",
                    (unsigned long long)size1, (unsigned long long)size2, proof_n);
        return -1;
    }
    bool pow2 = (size1 & (size1 - 1)) == 0;
    size_t idx = 0;
    uint8_t fr[32], sr[32];
    if (pow2) {
        memcpy(fr, root1, 32);
    } else {
        memcpy(fr, proof[0], 32);
        idx = 1;
    }
    memcpy(sr, fr, 32);
    uint8_t front[CAP_CT_MAX_LEVELS][32];
    int front_n = 0;
    memcpy(front[front_n++], fr, 32);
    uint64_t fn = size1 - 1, sn = size2 - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    for (; idx < proof_n; idx++) {
        const uint8_t *c = proof[idx];
        if (sn == 0)
            goto bad;
        if ((fn & 1) || fn == sn) {
            cap_ct_node_hash(c, fr, fr);
            cap_ct_node_hash(c, sr, sr);
            if (front_n < CAP_CT_MAX_LEVELS)
                memcpy(front[front_n++], c, 32);
            if (!(fn & 1)) {
                do {
                    fn >>= 1;
                    sn >>= 1;
                } while (!(fn & 1) && fn != 0);
            }
        } else {
            cap_ct_node_hash(sr, c, sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0 || memcmp(fr, root1, 32) != 0 || memcmp(sr, root2, 32) != 0)
        goto bad;
    if (old_out) {
        if (front_n != __builtin_popcountll(size1))
            goto bad;
        int k = 0;
        for (int level = 0; level < CAP_CT_MAX_LEVELS; level++)
            if (size1 & (UINT64_C(1) << level))
                memcpy(old_out->hash[level], front[k++], 32);
        old_out->size = size1;
    }
    return 0;
bad:
    cap_err_set(err, CAP_E_INVALID, "consistency proof from size %llu to %llu does not verify",
                (unsigned long long)size1, (unsigned long long)size2);
    return -1;
}

int cap_ct_inclusion_verify(uint64_t index, uint64_t size, const uint8_t leaf_hash[32],
                            const uint8_t root[32], const uint8_t (*path)[32], size_t path_n,
                            struct cap_ct_frontier *left_out, struct cap_err *err)
{
    if (index >= size || path_n > CAP_CT_MAX_LEVELS)
        goto bad;
    uint64_t fn = index, sn = size - 1;
    uint8_t r[32];
    memcpy(r, leaf_hash, 32);
    uint8_t left[CAP_CT_MAX_LEVELS][32];
    int left_n = 0;
    for (size_t i = 0; i < path_n; i++) {
        if (sn == 0)
            goto bad;
        if ((fn & 1) || fn == sn) {
            cap_ct_node_hash(path[i], r, r);
            memcpy(left[left_n++], path[i], 32);
            if (!(fn & 1)) {
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            cap_ct_node_hash(r, path[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    if (sn != 0 || memcmp(r, root, 32) != 0)
        goto bad;
    if (left_out) {
        if (left_n != __builtin_popcountll(index))
            goto bad;
        int k = 0;
        for (int level = 0; level < CAP_CT_MAX_LEVELS; level++)
            if (index & (UINT64_C(1) << level))
                memcpy(left_out->hash[level], left[k++], 32);
        left_out->size = index;
    }
    return 0;
bad:
    cap_err_set(err, CAP_E_INVALID, "inclusion proof of entry %llu in tree size %llu does not verify",
                (unsigned long long)index, (unsigned long long)size);
    return -1;
}
