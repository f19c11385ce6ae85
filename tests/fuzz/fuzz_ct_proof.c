/* Fuzz target for the CT client's remaining inputs from logs and operators: strict base64
 * (every CT JSON field goes through it), get-entry-and-proof bodies, and user-given domain
 * suffixes (with IDN to punycode conversion). Byte 0 picks the parser. Properties: base64
 * decodes never exceed (len / 4) * 3 and re-encode to a string that decodes back to the same
 * bytes; proof bodies fail with a message and untouched outputs, or give at most 128 nodes and
 * a leaf no longer than the body; a normalised suffix is a lower-case DNS name of labels 1-63
 * bytes, is left unchanged when normalised again, and matches itself and its subdomains. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/ct/ct_codec.h"
#include "worker/ct/ct_match.h"
#include "worker/ct/ct_parse.h"

static void fuzz_b64(const uint8_t *data, size_t size)
{
    /* Decode from an exact-size copy so ASan catches any read past len. */
    char *src = malloc(size ? size : 1);
    uint8_t *dec = malloc(size ? size : 1);
    if (!src || !dec)
        abort();
    memcpy(src, data, size);
    struct cap_err err = {0};
    long n = cap_ct_b64_decode(src, size, dec, size, &err);
    if (n < 0) {
        if (err.code == 0 || err.msg[0] == '\0')
            abort();
    } else if ((size_t)n > (size / 4) * 3 || err.code != 0) {
        abort();
    } else {
        size_t ecap = 4 * (((size_t)n + 2) / 3) + 1;
        char *enc = malloc(ecap);
        uint8_t *back = malloc((size_t)n + 1);
        if (!enc || !back)
            abort();
        long el = cap_ct_b64_encode(dec, (size_t)n, enc, ecap);
        if (el < 0 || (size_t)el != ecap - 1 || enc[el] != '\0')
            abort();
        long bn = cap_ct_b64_decode(enc, (size_t)el, back, (size_t)n, &err);
        if (bn != n || memcmp(back, dec, (size_t)n) != 0)
            abort();
        free(enc);
        free(back);
    }
    /* Arbitrary bytes encode and decode back. */
    size_t ecap = 4 * ((size + 2) / 3) + 1;
    char *enc = malloc(ecap);
    uint8_t *back = malloc(size ? size : 1);
    if (!enc || !back)
        abort();
    long el = cap_ct_b64_encode(data, size, enc, ecap);
    if (el < 0 || cap_ct_b64_encode(data, size, enc, ecap - 1) != -1)
        abort();
    struct cap_err e2 = {0};
    if (cap_ct_b64_decode(enc, (size_t)el, back, size, &e2) != (long)size ||
        (size && memcmp(back, data, size) != 0))
        abort();
    free(enc);
    free(back);
    free(src);
    free(dec);
}

static void fuzz_proof(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    if (!body)
        abort();
    memcpy(body, data, size);
    uint8_t *leaf = (uint8_t *)1;
    uint8_t(*path)[32] = (uint8_t(*)[32])1;
    size_t leaf_len = 777, n = 777;
    struct cap_err err = {0};
    int rc = cap_ct_entry_proof_parse(body, size, &leaf, &leaf_len, &path, &n, &err);
    if (rc != 0) {
        if (rc != -1 || err.code == 0 || strstr(err.msg, "get-entry-and-proof") == NULL ||
            leaf != (uint8_t *)1 || path != (uint8_t(*)[32])1 || leaf_len != 777 || n != 777)
            abort();
    } else {
        if (err.code != 0 || !leaf || !path || leaf_len > size || n > 128)
            abort();
        /* Touch every byte so ASan checks the sizes given back. */
        volatile uint8_t x = 0;
        for (size_t i = 0; i < leaf_len; i++)
            x ^= leaf[i];
        for (size_t i = 0; i < n; i++)
            x ^= path[i][31];
        (void)x;
        free(leaf);
        free(path);
    }
    free(body);
}

static void fuzz_suffix(const uint8_t *data, size_t size)
{
    char *in = malloc(size + 1);
    if (!in)
        abort();
    memcpy(in, data, size);
    in[size] = '\0';
    char out[CAP_CT_NAME_MAX + 1], again[CAP_CT_NAME_MAX + 1];
    memset(out, 0x5A, sizeof out);
    struct cap_err err = {0};
    if (cap_ct_suffix_normalize(in, out, &err) != 0) {
        if (err.code == 0 || strstr(err.msg, "domain suffix") == NULL)
            abort();
        free(in);
        return;
    }
    size_t len = strnlen(out, sizeof out);
    if (len == 0 || len > CAP_CT_NAME_MAX || err.code != 0)
        abort();
    /* Labels of 1-63 lower-case letters, digits, '-' or '_'. */
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = out[i];
        if (i == len || c == '.') {
            if (label == 0 || label > 63)
                abort();
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            abort();
        label++;
    }
    if (cap_ct_suffix_normalize(out, again, &err) != 0 || strcmp(out, again) != 0)
        abort();
    const char *v[1] = {out};
    struct cap_ct_suffixes *s = cap_ct_suffixes_new(v, 1, &err);
    if (!s)
        abort();
    char sub[CAP_CT_NAME_MAX + 8];
    size_t sl = (size_t)snprintf(sub, sizeof sub, "*.%s.", out);
    if (!cap_ct_suffixes_match(s, out, len) ||
        (len + 2 <= CAP_CT_NAME_MAX && !cap_ct_suffixes_match(s, sub, sl)))
        abort();
    cap_ct_suffixes_free(s);
    free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    int which = data[0] % 3;
    if (which == 0)
        fuzz_b64(data + 1, size - 1);
    else if (which == 1)
        fuzz_proof(data + 1, size - 1);
    else
        fuzz_suffix(data + 1, size - 1);
    return 0;
}
