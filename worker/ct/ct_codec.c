/* Strict base64, hex and a bounds-checked big-endian cursor for CT structures. */
#include "worker/ct/ct_codec.h"

#include <string.h>

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63 for alphabet characters, 64 for '=', 255 for anything else. */
static const uint8_t B64_DEC[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 62, 255, 255, 255, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 255, 255, 255, 64, 255, 255,
    255, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 255, 255, 255, 255, 255,
    255, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};

long cap_ct_b64_decode(const char *src, size_t len, uint8_t *out, size_t cap, struct cap_err *err)
{
    const uint8_t *t = B64_DEC;
    if (len % 4 != 0) {
        cap_err_set(err, CAP_E_INVALID, "base64: length %zu is not a multiple of 4", len);
        return -1;
    }
    size_t o = 0, i = 0;
    /* Every quad but the last at full speed: padding (64) and a character that is not base64
     * (255) both have a bit above the six of a digit, and such a quad, the last one and a full
     * output go through the checks below, which name the offset. Half the decoding time of a
     * get-entries answer. */
    size_t fast_end = len >= 4 ? len - 4 : 0;
    while (i < fast_end && o + 3 <= cap) {
        uint32_t a = t[(unsigned char)src[i]], b = t[(unsigned char)src[i + 1]],
                 c = t[(unsigned char)src[i + 2]], d = t[(unsigned char)src[i + 3]];
        if ((a | b | c | d) & 0xC0)
            break;
        uint32_t w = (a << 18) | (b << 12) | (c << 6) | d;
        out[o] = (uint8_t)(w >> 16);
        out[o + 1] = (uint8_t)(w >> 8);
        out[o + 2] = (uint8_t)w;
        o += 3;
        i += 4;
    }
    for (; i < len; i += 4) {
        uint8_t v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = t[(unsigned char)src[i + k]];
            if (v[k] == 255) {
                cap_err_set(err, CAP_E_INVALID, "base64: bad character 0x%02x at offset %zu",
                            (unsigned char)src[i + k], i + k);
                return -1;
            }
        }
        int pad = 0;
        if (v[3] == 64) {
            pad = (v[2] == 64) ? 2 : 1;
            if (i + 4 != len || v[0] == 64 || v[1] == 64) {
                cap_err_set(err, CAP_E_INVALID, "base64: misplaced padding at offset %zu", i);
                return -1;
            }
        } else if (v[0] == 64 || v[1] == 64 || v[2] == 64) {
            cap_err_set(err, CAP_E_INVALID, "base64: misplaced padding at offset %zu", i);
            return -1;
        }
        size_t n = 3 - (size_t)pad;
        if (o + n > cap) {
            cap_err_set(err, CAP_E_LIMIT, "base64: decoded data exceeds %zu bytes", cap);
            return -1;
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) |
                     ((uint32_t)(v[2] & 63) << 6) | (uint32_t)(v[3] & 63);
        out[o++] = (uint8_t)(w >> 16);
        if (n > 1)
            out[o++] = (uint8_t)(w >> 8);
        if (n > 2)
            out[o++] = (uint8_t)w;
    }
    return (long)o;
}

long cap_ct_b64_encode(const uint8_t *src, size_t n, char *out, size_t cap)
{
    size_t need = 4 * ((n + 2) / 3) + 1;
    if (cap < need)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)src[i] << 16;
        if (i + 1 < n)
            w |= (uint32_t)src[i + 1] << 8;
        if (i + 2 < n)
            w |= src[i + 2];
        out[o++] = B64[(w >> 18) & 63];
        out[o++] = B64[(w >> 12) & 63];
        out[o++] = i + 1 < n ? B64[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? B64[w & 63] : '=';
    }
    out[o] = '\0';
    return (long)o;
}

char *cap_ct_hex(const uint8_t *src, size_t n, char *out)
{
    static const char H[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = H[src[i] >> 4];
        out[2 * i + 1] = H[src[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

uint64_t cap_ct_cur_uint(struct cap_ct_cur *c, int width)
{
    if (c->bad || width < 1 || width > 8 || c->left < (size_t)width) {
        c->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < width; i++)
        v = (v << 8) | c->p[i];
    c->p += width;
    c->left -= (size_t)width;
    return v;
}

const uint8_t *cap_ct_cur_bytes(struct cap_ct_cur *c, size_t n)
{
    if (c->bad || c->left < n) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *r = c->p;
    c->p += n;
    c->left -= n;
    return r;
}

const uint8_t *cap_ct_cur_vec(struct cap_ct_cur *c, int width, size_t *n)
{
    uint64_t len = cap_ct_cur_uint(c, width);
    if (c->bad)
        return NULL;
    const uint8_t *r = cap_ct_cur_bytes(c, (size_t)len);
    if (r)
        *n = (size_t)len;
    return r;
}
