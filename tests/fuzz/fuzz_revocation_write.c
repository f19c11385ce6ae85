/* Fuzz target for the revocation write path: facts of one certificate (status, method, times,
 * the answering URL, the revocation reason, errors with their URLs, any bytes) to the JSON of
 * discovered_certificates.revocation and the parameters of the scan_revocation_cache row. Every
 * text that reaches PostgreSQL must be valid UTF-8 without NUL or controls, the JSON an object
 * jsonb takes, and the cache parameters what the table's checks and to_timestamp() accept.
 *
 * Input: byte 0 picks the status, byte 1 flags (bit 0 cached, bits 1-2 method, bit 3 a
 * fingerprint from the input, bit 4 times relative to now), 24 bytes of times (3 x int64 LE),
 * then chunks of one length byte and that many bytes: the URL, the reason, the fingerprint
 * (bit 3), then pairs of error URL and error text. */
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/scan/revocation.h"

#define NOW 1767225600LL /* 2026-01-01 */
#define TIME_MIN (-62135596800LL)
#define TIME_MAX 253402300799LL
#define ERRORS_IN 24

#define REQUIRE(c)                                                                                 \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

struct cursor {
    const uint8_t *p;
    size_t n;
};

/* The next chunk (a length byte, then that many bytes, fewer at the end of the input). */
static const uint8_t *chunk(struct cursor *c, size_t *len)
{
    if (c->n == 0)
        return NULL;
    size_t l = c->p[0];
    c->p++;
    c->n--;
    if (l > c->n)
        l = c->n;
    const uint8_t *s = c->p;
    c->p += l;
    c->n -= l;
    *len = l;
    return s;
}

/* A NUL-terminated copy of a chunk (cut at an embedded NUL, as C strings are). */
static char *chunk_str(struct cursor *c, size_t *len_out)
{
    size_t len = 0;
    const uint8_t *s = chunk(c, &len);
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    if (s)
        memcpy(out, s, len);
    out[len] = '\0';
    if (len_out)
        *len_out = len;
    return out;
}

/* PostgreSQL's UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF), with no C0
 * control and no DEL. */
static bool clean_text(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        unsigned c = p[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t need = c >= 0xc2 && c <= 0xdf   ? 2
                      : c >= 0xe0 && c <= 0xef ? 3
                      : c >= 0xf0 && c <= 0xf4 ? 4
                                               : 0;
        if (need == 0 || len - i < need)
            return false;
        unsigned cp = c & (need == 2 ? 0x1f : need == 3 ? 0x0f : 0x07);
        for (size_t k = 1; k < need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need;
    }
    return true;
}

static bool clean_str(const char *s)
{
    return s && clean_text(s, strlen(s));
}

/* Every key and string in o is clean text without NUL. */
static void check_json(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_object: {
        json_object_object_foreach(o, k, v)
        {
            REQUIRE(clean_str(k));
            check_json(v);
        }
        break;
    }
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(o); i++)
            check_json(json_object_array_get_idx(o, i));
        break;
    case json_type_string: {
        const char *s = json_object_get_string(o);
        REQUIRE((size_t)json_object_get_string_len(o) == strlen(s));
        REQUIRE(clean_text(s, strlen(s)));
        break;
    }
    default:
        break;
    }
}

static int64_t num(const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    REQUIRE(end != s && *end == '\0');
    return (int64_t)v;
}

static bool one_of(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, set[i]) == 0)
            return true;
    }
    return false;
}

static void check_row(const struct cap_revocation_facts *f, const struct cap_revocation_row *row)
{
    static const char *const statuses[] = {"good", "revoked", "unknown", "error"};
    static const char *const answers[] = {"good", "revoked", "unknown"};
    static const char *const methods[] = {"ocsp", "crl"};
    REQUIRE(row->facts && clean_str(row->facts));
    json_object *o = json_tokener_parse(row->facts);
    REQUIRE(o && json_object_is_type(o, json_type_object));
    check_json(o);
    json_object *st = NULL;
    REQUIRE(json_object_object_get_ex(o, "status", &st));
    REQUIRE(one_of(json_object_get_string(st), statuses, 4));
    REQUIRE(strcmp(json_object_get_string(st), f->status) == 0);
    json_object *errs = NULL;
    if (json_object_object_get_ex(o, "errors", &errs))
        REQUIRE(json_object_array_length(errs) <= CAP_REVOCATION_ERRORS_MAX);
    json_object_put(o);
    if (!row->cache[0]) {
        for (int i = 0; i < CAP_REVOCATION_CACHE_PARAMS; i++)
            REQUIRE(row->cache[i] == NULL);
        return;
    }
    REQUIRE(!f->cached && strcmp(f->status, "error") != 0);
    for (int i = 0; i < CAP_REVOCATION_CACHE_PARAMS; i++)
        REQUIRE(row->cache[i] && clean_str(row->cache[i]));
    REQUIRE(strlen(row->cache[0]) == 64 && strspn(row->cache[0], "0123456789abcdef") == 64);
    REQUIRE(row->cache[1][0] != '\0');
    REQUIRE(one_of(row->cache[2], methods, 2));
    REQUIRE(one_of(row->cache[3], answers, 3));
    for (int i = 4; i <= 6; i += 2) {
        int64_t t = num(row->cache[i]);
        REQUIRE(t == 0 || (t >= TIME_MIN && t <= TIME_MAX));
    }
    int64_t nu = num(row->cache[7]);
    REQUIRE(nu > NOW && nu <= NOW + 7 * 86400);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const statuses[] = {"good", "revoked", "unknown", "error", "bogus", NULL};
    static const char *const methods[] = {"ocsp", "crl", NULL, "x"};
    static const char fixed_fp[] =
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    if (size < 2 + 24)
        return 0;
    struct cap_revocation_facts f;
    memset(&f, 0, sizeof f);
    f.status = statuses[data[0] % 6];
    uint8_t flags = data[1];
    f.cached = flags & 1;
    f.method = methods[(flags >> 1) & 3];
    int64_t t[3];
    for (int i = 0; i < 3; i++) {
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--)
            v = (v << 8) | data[2 + 8 * i + k];
        t[i] = (flags & 16) ? NOW + (int32_t)(uint32_t)v : (int64_t)v;
    }
    f.revoked_at = t[0];
    f.this_update = t[1];
    f.next_update = t[2];
    struct cursor c = {data + 26, size - 26};
    char *url = chunk_str(&c, NULL);
    char *reason = chunk_str(&c, NULL);
    char *fp = (flags & 8) ? chunk_str(&c, NULL) : NULL;
    f.url = url;
    f.reason = reason;
    f.fingerprint = (flags & 8) ? fp : fixed_fp;
    struct cap_revocation_error errs[ERRORS_IN];
    char *owned[2 * ERRORS_IN];
    size_t ne = 0;
    while (c.n > 0 && ne < ERRORS_IN) {
        size_t ul = 0;
        owned[2 * ne] = chunk_str(&c, &ul);
        owned[2 * ne + 1] = chunk_str(&c, NULL);
        /* the URL keeps its length, embedded NULs included; an empty one stands for none */
        errs[ne].url = ul > 0 ? owned[2 * ne] : NULL;
        errs[ne].url_len = ul;
        errs[ne].error = owned[2 * ne + 1];
        ne++;
    }
    f.errors = errs;
    f.errors_n = ne;
    f.errors_more = c.n;
    bool valid = f.fingerprint && strlen(f.fingerprint) == 64 &&
                 strspn(f.fingerprint, "0123456789abcdef") == 64 && f.status &&
                 strcmp(f.status, "bogus") != 0 &&
                 (strcmp(f.status, "error") == 0 ||
                  (f.method && (strcmp(f.method, "ocsp") == 0 || strcmp(f.method, "crl") == 0)));
    struct cap_revocation_row row;
    struct cap_err err = {0};
    int rc = cap_revocation_row_build(&f, NOW, &row, &err);
    if (rc == 0) {
        REQUIRE(valid);
        check_row(&f, &row);
        cap_revocation_row_cleanup(&row);
    } else {
        REQUIRE(err.msg[0] && (err.code == CAP_E_NOMEM || !valid));
    }
    for (size_t i = 0; i < 2 * ne; i++)
        free(owned[i]);
    free(url);
    free(reason);
    free(fp);
    return 0;
}
