/* Parsers for what CT logs send: RFC 6962 JSON (get-sth, get-entries, get-sth-consistency),
 * MerkleTreeLeaf and extra_data, static-ct data tiles, hash tiles and signed-note checkpoints,
 * and the verification of tree head signatures (ECDSA or RSA over the RFC 6962
 * TreeHeadSignature; Ed25519 or RFC 6962 note signatures for checkpoints). All of it is input
 * from the network: every length is checked, nothing is trusted. */
#ifndef CAP_CT_PARSE_H
#define CAP_CT_PARSE_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "worker/ct/ct_codec.h"

enum { CAP_CT_ENTRY_X509 = 0, CAP_CT_ENTRY_PRECERT = 1 };

/* Longest certificate or TBSCertificate accepted in a leaf (RFC 6962 allows 2^24 - 1). */
#define CAP_CT_CERT_MAX (1u << 20)
/* Longest signature accepted in a tree head. */
#define CAP_CT_SIG_MAX 1024

/* A signed tree head (RFC 6962) or a checkpoint (static-ct), as parsed. */
struct cap_ct_sth {
    uint64_t tree_size;
    uint64_t timestamp; /* ms since 1970 */
    uint8_t root[32];
    uint8_t sig[CAP_CT_SIG_MAX]; /* DigitallySigned (RFC 6962), empty for a checkpoint */
    size_t sig_len;
};

/* A parsed timestamped entry: pointers into the caller's buffer. */
struct cap_ct_leaf {
    uint64_t timestamp;
    int entry_type;        /* CAP_CT_ENTRY_X509 or CAP_CT_ENTRY_PRECERT */
    const uint8_t *cert;   /* x509: certificate DER; precert: TBSCertificate DER */
    size_t cert_len;
    const uint8_t *issuer_key_hash; /* precert only (32 bytes) */
};

/* Parses a MerkleTreeLeaf (version 0, timestamped_entry). Fails with err on wrong version,
 * leaf or entry type, bad lengths or trailing bytes. */
int cap_ct_leaf_parse(const uint8_t *p, size_t n, struct cap_ct_leaf *out, struct cap_err *err);

/* Parses the extra_data of a precert_entry (PrecertChainEntry) and returns the precertificate
 * DER (pointer into p) and, when first is not NULL, the first certificate of its chain (NULL
 * and 0 when the chain is empty). Fails on bad lengths or trailing bytes. */
int cap_ct_extra_precert(const uint8_t *p, size_t n, const uint8_t **pre, size_t *pre_len,
                         const uint8_t **first, size_t *first_len, struct cap_err *err);

/* Checks the extra_data of an x509_entry (a certificate chain). 0 or -1. */
int cap_ct_extra_x509(const uint8_t *p, size_t n, struct cap_err *err);

/* One entry of a get-entries response, base64-decoded into the response's arena. */
struct cap_ct_raw_entry {
    const uint8_t *leaf;
    size_t leaf_len;
    const uint8_t *extra;
    size_t extra_len;
};

/* A decoded get-entries response: entries point into arena. Free with cap_ct_entries_free. */
struct cap_ct_entries {
    struct cap_ct_raw_entry *v;
    size_t n;
    uint8_t *arena;
};

/* Most members of one JSON object of a get-entries answer (the answer and each entry). */
#define CAP_CT_JSON_MEMBERS_MAX 16

/* Checks the structure of a get-entries body without building anything (no allocation, one
 * pass): an object whose "entries" member is an array of 1 to max objects, each with exactly
 * one "leaf_input" and one "extra_data" string; other members only with scalar values, at most
 * CAP_CT_JSON_MEMBERS_MAX per object, no name twice. A body outside that shape (more entries
 * than asked for, nested arrays or objects, entries that are not objects or lack their two
 * strings) fails with CAP_E_LIMIT: an answer no log following RFC 6962 sends, and one that could
 * make a JSON tree hundreds of times larger than the body. A syntax error fails with
 * CAP_E_INVALID ("malformed JSON"). 0 or -1 with err. */
int cap_ct_entries_precheck(const char *body, size_t len, size_t max, struct cap_err *err);

/* Parses a get-entries body (at most max entries): cap_ct_entries_precheck, then the JSON tree.
 * Fails with err on malformed JSON, missing fields, bad base64, none at all, and with
 * CAP_E_LIMIT on what cap_ct_entries_precheck rejects as such. */
int cap_ct_entries_parse(const char *body, size_t len, size_t max, struct cap_ct_entries *out,
                         struct cap_err *err);
void cap_ct_entries_free(struct cap_ct_entries *e);

/* Parses a get-sth body. 0 or -1 with err. */
int cap_ct_sth_parse(const char *body, size_t len, struct cap_ct_sth *out, struct cap_err *err);

/* Parses a get-sth-consistency body into a malloc'd array of proof nodes (caller frees). */
int cap_ct_consistency_parse(const char *body, size_t len, uint8_t (**proof)[32], size_t *n,
                             struct cap_err *err);

/* Parses a get-entry-and-proof body: the leaf (malloc'd into *leaf) and the audit path
 * (malloc'd array). Caller frees both. 0 or -1 with err. */
int cap_ct_entry_proof_parse(const char *body, size_t len, uint8_t **leaf, size_t *leaf_len,
                             uint8_t (**path)[32], size_t *n, struct cap_err *err);

/* Loads a log public key: base64 DER SubjectPublicKeyInfo, or PEM. NULL with err. Caller frees
 * with EVP_PKEY_free. */
EVP_PKEY *cap_ct_key_load(const char *text, struct cap_err *err);

/* SHA-256 of the key's DER SubjectPublicKeyInfo: the RFC 6962 log ID. 0 or -1. */
int cap_ct_key_id(EVP_PKEY *key, uint8_t out[32]);

/* Verifies sth->sig (DigitallySigned: SHA-256 with ECDSA or RSA) over the TreeHeadSignature
 * (version 0, tree_hash, timestamp, tree_size, root) with key. 0 or -1 with err. */
int cap_ct_sth_verify(EVP_PKEY *key, const struct cap_ct_sth *sth, struct cap_err *err);

/* Parses a static-ct checkpoint (a C2SP signed note: origin, size, base64 root, optional
 * extension lines, blank line, signature lines). When key is not NULL, a signature line by
 * origin (expected_origin when given, else the note's first line) with the key's ID must verify
 * (RFC 6962 note signature for ECDSA/RSA keys, which also carries the timestamp, or Ed25519);
 * *verified tells whether one did. 0 or -1 with err. */
int cap_ct_checkpoint_parse(const char *note, size_t len, EVP_PKEY *key,
                            const char *expected_origin, struct cap_ct_sth *out, bool *verified,
                            struct cap_err *err);

/* A static-ct data tile entry (TileLeaf): its timestamped entry (te points at the TimestampedEntry
 * bytes that the Merkle leaf hashes, after the 0x00 0x00 prefix), for a precert the
 * precertificate DER, and the SHA-256 fingerprints of its chain (chain_n of 32 bytes, the
 * certificates served at issuer/<hex>). Pointers into the tile. */
struct cap_ct_tile_leaf {
    struct cap_ct_leaf leaf;
    const uint8_t *te;
    size_t te_len;
    const uint8_t *precert;
    size_t precert_len;
    const uint8_t *chain_fps;
    size_t chain_n;
};

/* Reads the next TileLeaf from c. 0 or -1 with err (c is then unusable). */
int cap_ct_tile_leaf_next(struct cap_ct_cur *c, struct cap_ct_tile_leaf *out, struct cap_err *err);

/* Leaf hash of a tile leaf: SHA-256(0x00 || 0x00 0x00 || te). */
void cap_ct_tile_leaf_hash(const struct cap_ct_tile_leaf *t, uint8_t out[32]);

/* Writes the static-ct tile path ("tile/0/x001/234", "tile/data/005.p/17") for level (-1 for
 * data), index and width (256 for a full tile) into out. Returns 0 or -1 when out is short. */
int cap_ct_tile_path(int level, uint64_t index, unsigned width, char *out, size_t cap);

#endif
