/* Small codecs the CT client needs: strict base64, a bounds-checked big-endian read cursor
 * (TLS presentation language as RFC 6962 uses it) and hex. */
#ifndef CAP_CT_CODEC_H
#define CAP_CT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Decodes standard base64 (padding required, no whitespace) of len bytes into out (room for
 * cap bytes; (len / 4) * 3 always suffices). Returns the decoded length, or -1 with err on any
 * bad character, bad padding or when out is too small. Never reads past src + len. */
long cap_ct_b64_decode(const char *src, size_t len, uint8_t *out, size_t cap, struct cap_err *err);

/* Encodes n bytes as padded standard base64 into out (room for cap bytes incl. the NUL;
 * 4 * ((n + 2) / 3) + 1 suffices). Returns the length, or -1 when out is too small. */
long cap_ct_b64_encode(const uint8_t *src, size_t n, char *out, size_t cap);

/* Writes n bytes as lower-case hex plus NUL into out (2n + 1 bytes). Returns out. */
char *cap_ct_hex(const uint8_t *src, size_t n, char *out);

/* A read cursor over untrusted bytes. Every read checks what is left; the first failure sets
 * bad and every later read fails too, so a parser may check once at the end. */
struct cap_ct_cur {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static inline void cap_ct_cur_init(struct cap_ct_cur *c, const uint8_t *p, size_t n)
{
    c->p = p;
    c->left = n;
    c->bad = false;
}

/* Reads an unsigned big-endian integer of width bytes (1..8). 0 on failure (bad is set). */
uint64_t cap_ct_cur_uint(struct cap_ct_cur *c, int width);

/* Returns a pointer to the next n bytes and skips them, or NULL (bad set) when fewer remain. */
const uint8_t *cap_ct_cur_bytes(struct cap_ct_cur *c, size_t n);

/* Reads a length prefix of width bytes then that many bytes: opaque<0..2^(8*width)-1>.
 * Returns the pointer and writes the length to *n, or NULL (bad set). */
const uint8_t *cap_ct_cur_vec(struct cap_ct_cur *c, int width, size_t *n);

#endif
