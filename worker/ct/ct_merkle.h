/* RFC 6962 Merkle tree hashing: leaf and node hashes, the compact-range frontier of a tree
 * prefix [0, size), its root, its storage form, and consistency-proof verification
 * (RFC 9162 section 2.1.4.2), which can also recover the frontier of the old tree. */
#ifndef CAP_CT_MERKLE_H
#define CAP_CT_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define CAP_CT_HASH_LEN 32
#define CAP_CT_MAX_LEVELS 64

/* SHA-256(0x00 || leaf). */
void cap_ct_leaf_hash(const uint8_t *leaf, size_t n, uint8_t out[CAP_CT_HASH_LEN]);

/* SHA-256(0x01 || left || right). out may alias either input. */
void cap_ct_node_hash(const uint8_t left[CAP_CT_HASH_LEN], const uint8_t right[CAP_CT_HASH_LEN],
                      uint8_t out[CAP_CT_HASH_LEN]);

/* Root of the empty tree: SHA-256 of nothing. */
void cap_ct_empty_root(uint8_t out[CAP_CT_HASH_LEN]);

/* The compact range of [0, size): for every set bit L of size, the hash of the perfect subtree
 * of 2^L leaves at that position (hash[L]). Fixed size, caller-owned, no allocation. */
struct cap_ct_frontier {
    uint64_t size;
    uint8_t hash[CAP_CT_MAX_LEVELS][CAP_CT_HASH_LEN];
};

/* Empties f (size 0). */
void cap_ct_frontier_init(struct cap_ct_frontier *f);

/* Appends one leaf hash. Cost: amortised one node hash. Fails only at size 2^63. */
int cap_ct_frontier_append(struct cap_ct_frontier *f, const uint8_t leaf_hash[CAP_CT_HASH_LEN]);

/* Appends the root of a perfect subtree of 2^level leaves (level 0: one leaf hash), which must
 * start where f ends: f->size a multiple of 2^level. Fails (-1) otherwise, or past 2^62. */
int cap_ct_frontier_append_node(struct cap_ct_frontier *f, int level,
                                const uint8_t hash[CAP_CT_HASH_LEN]);

/* True when a and b are the frontier of the same size with the same hashes. */
bool cap_ct_frontier_equal(const struct cap_ct_frontier *a, const struct cap_ct_frontier *b);

/* Root hash of [0, f->size) (the empty root for size 0). */
void cap_ct_frontier_root(const struct cap_ct_frontier *f, uint8_t out[CAP_CT_HASH_LEN]);

/* Storage form: 8-byte big-endian size then the hashes of the set bits, highest level first.
 * Returns the length written to out (room for cap bytes; 8 + 64 * 32 always suffices), or -1. */
long cap_ct_frontier_encode(const struct cap_ct_frontier *f, uint8_t *out, size_t cap);

/* Parses the storage form; fails with err when the length does not fit the size. */
int cap_ct_frontier_decode(const uint8_t *in, size_t n, struct cap_ct_frontier *f,
                           struct cap_err *err);

/* Verifies that the tree of size2 with root2 extends the tree of size1 with root1, given the
 * proof nodes (RFC 9162). When old_out is not NULL and the proof is valid and size1 > 0, it
 * receives the frontier of [0, size1) recovered from the proof. Returns 0, or -1 with err
 * naming what failed. */
int cap_ct_consistency_verify(uint64_t size1, uint64_t size2, const uint8_t root1[32],
                              const uint8_t root2[32], const uint8_t (*proof)[32], size_t proof_n,
                              struct cap_ct_frontier *old_out, struct cap_err *err);

/* Verifies that leaf_hash is the leaf at index of the tree of size with root, given its audit
 * path (RFC 9162 section 2.1.3.2). When left_out is not NULL and the proof is valid, it receives
 * the frontier of [0, index), made of the path's left siblings. Returns 0, or -1 with err. */
int cap_ct_inclusion_verify(uint64_t index, uint64_t size, const uint8_t leaf_hash[32],
                            const uint8_t root[32], const uint8_t (*path)[32], size_t path_n,
                            struct cap_ct_frontier *left_out, struct cap_err *err);

#endif
