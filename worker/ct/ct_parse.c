/* Parsers and signature checks for CT log responses (RFC 6962 and C2SP static-ct-api). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "worker/ct/ct_parse.h"

#include <errno.h>
#include <json-c/json.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cap_ct_leaf_parse(const uint8_t *p, size_t n, struct cap_ct_leaf *out, struct cap_err *err)
{
    struct cap_ct_cur c;
    cap_ct_cur_init(&c, p, n);
    uint64_t version = cap_ct_cur_uint(&c, 1);
    uint64_t leaf_type = cap_ct_cur_uint(&c, 1);
    if (c.bad) {
        cap_err_set(err, CAP_E_INVALID, "leaf: truncated header (%zu bytes)", n);
        return -1;
    }
    if (version != 0 || leaf_type != 0) {
        cap_err_set(err, CAP_E_INVALID, "leaf: unsupported version %llu or leaf type %llu",
                    (unsigned long long)version, (unsigned long long)leaf_type);
        return -1;
    }
    struct cap_ct_leaf l = {0};
    l.timestamp = cap_ct_cur_uint(&c, 8);
    uint64_t et = cap_ct_cur_uint(&c, 2);
    if (c.bad) {
        cap_err_set(err, CAP_E_INVALID, "leaf: truncated timestamped entry (%zu bytes)", n);
        return -1;
    }
    if (et == CAP_CT_ENTRY_PRECERT) {
        l.issuer_key_hash = cap_ct_cur_bytes(&c, 32);
    } else if (et != CAP_CT_ENTRY_X509) {
        cap_err_set(err, CAP_E_INVALID, "leaf: unknown entry type %llu", (unsigned long long)et);
        return -1;
    }
    l.entry_type = (int)et;
    l.cert = cap_ct_cur_vec(&c, 3, &l.cert_len);
    size_t ext_len = 0;
    cap_ct_cur_vec(&c, 2, &ext_len);
    if (c.bad || l.cert_len == 0) {
        cap_err_set(err, CAP_E_INVALID, "leaf: bad %s length (leaf of %zu bytes)",
                    et == CAP_CT_ENTRY_PRECERT ? "tbs_certificate" : "certificate", n);
        return -1;
    }
    if (c.left != 0) {
        cap_err_set(err, CAP_E_INVALID, "leaf: %zu trailing bytes", c.left);
        return -1;
    }
    if (l.cert_len > CAP_CT_CERT_MAX) {
        cap_err_set(err, CAP_E_LIMIT, "leaf: certificate of %zu bytes exceeds %u", l.cert_len,
                    CAP_CT_CERT_MAX);
        return -1;
    }
    *out = l;
    return 0;
}

/* Checks a chain of certificates; *first and *first_len (when first is not NULL) receive its
 * first certificate, NULL and 0 for an empty chain. */
static int check_chain(struct cap_ct_cur *c, const char *what, const uint8_t **first,
                       size_t *first_len, struct cap_err *err)
{
    size_t chain_len = 0;
    const uint8_t *chain = cap_ct_cur_vec(c, 3, &chain_len);
    if (!chain) {
        cap_err_set(err, CAP_E_INVALID, "extra_data: bad %s length", what);
        return -1;
    }
    struct cap_ct_cur cc;
    cap_ct_cur_init(&cc, chain, chain_len);
    const uint8_t *f = NULL;
    size_t fl = 0;
    while (cc.left) {
        size_t l = 0;
        const uint8_t *cert = cap_ct_cur_vec(&cc, 3, &l);
        if (!cert) {
            cap_err_set(err, CAP_E_INVALID, "extra_data: bad certificate length in %s", what);
            return -1;
        }
        if (!f) {
            f = cert;
            fl = l;
        }
    }
    if (first) {
        *first = f;
        *first_len = fl;
    }
    return 0;
}

int cap_ct_extra_precert(const uint8_t *p, size_t n, const uint8_t **pre, size_t *pre_len,
                         const uint8_t **first, size_t *first_len, struct cap_err *err)
{
    struct cap_ct_cur c;
    cap_ct_cur_init(&c, p, n);
    size_t l = 0;
    const uint8_t *cert = cap_ct_cur_vec(&c, 3, &l);
    if (!cert || l == 0) {
        cap_err_set(err, CAP_E_INVALID, "extra_data: bad pre_certificate length (%zu bytes)", n);
        return -1;
    }
    const uint8_t *f = NULL;
    size_t fl = 0;
    if (check_chain(&c, "precertificate_chain", &f, &fl, err) < 0)
        return -1;
    if (c.left) {
        cap_err_set(err, CAP_E_INVALID, "extra_data: %zu trailing bytes", c.left);
        return -1;
    }
    *pre = cert;
    *pre_len = l;
    if (first) {
        *first = f;
        *first_len = fl;
    }
    return 0;
}

int cap_ct_extra_x509(const uint8_t *p, size_t n, struct cap_err *err)
{
    struct cap_ct_cur c;
    cap_ct_cur_init(&c, p, n);
    if (check_chain(&c, "certificate_chain", NULL, NULL, err) < 0)
        return -1;
    if (c.left) {
        cap_err_set(err, CAP_E_INVALID, "extra_data: %zu trailing bytes", c.left);
        return -1;
    }
    return 0;
}

/* Parses len bytes of JSON into an object. NULL with err. */
static json_object *parse_json(const char *body, size_t len, const char *what, struct cap_err *err)
{
    if (len > INT32_MAX) {
        cap_err_set(err, CAP_E_LIMIT, "%s: body too large", what);
        return NULL;
    }
    json_tokener *tok = json_tokener_new();
    if (!tok) {
        cap_err_set(err, CAP_E_NOMEM, "%s: out of memory", what);
        return NULL;
    }
    json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!o || je != json_tokener_success) {
        if (o)
            json_object_put(o);
        cap_err_set(err, CAP_E_INVALID, "%s: malformed JSON (%s) in %zu bytes", what,
                    je == json_tokener_continue ? "truncated" : json_tokener_error_desc(je), len);
        return NULL;
    }
    for (size_t i = used; i < len; i++) {
        char ch = body[i];
        if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
            json_object_put(o);
            cap_err_set(err, CAP_E_INVALID, "%s: trailing data after JSON at offset %zu", what,
                        i);
            return NULL;
        }
    }
    if (!json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        cap_err_set(err, CAP_E_INVALID, "%s: expected a JSON object", what);
        return NULL;
    }
    return o;
}

static int get_b64(json_object *o, const char *key, uint8_t *out, size_t cap, size_t *n,
                   const char *what, struct cap_err *err)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) {
        cap_err_set(err, CAP_E_INVALID, "%s: field \"%s\" missing or not a string", what, key);
        return -1;
    }
    long r = cap_ct_b64_decode(json_object_get_string(v), (size_t)json_object_get_string_len(v),
                               out, cap, err);
    if (r < 0) {
        cap_err_prefix(err, "%s: field \"%s\": ", what, key);
        return -1;
    }
    *n = (size_t)r;
    return 0;
}

static int get_u64(json_object *o, const char *key, uint64_t *out, const char *what,
                   struct cap_err *err)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) {
        cap_err_set(err, CAP_E_INVALID, "%s: field \"%s\" missing or not an integer", what, key);
        return -1;
    }
    errno = 0;
    int64_t x = json_object_get_int64(v);
    if (x < 0 || (x == INT64_MAX && errno != 0)) {
        cap_err_set(err, CAP_E_INVALID, "%s: field \"%s\" out of range", what, key);
        return -1;
    }
    *out = (uint64_t)x;
    return 0;
}

/* ------------------------------------------------------------------ get-entries pre-check */

/* A scanner over a get-entries body for cap_ct_entries_precheck. */
struct jscan {
    const char *p;
    size_t n, i;
    struct cap_err *err;
    /* where the entries' strings are (cap_ct_entries_parse; NULL: not wanted) */
    struct jraw *raw;
    size_t raw_cap, raw_n;
    bool escaped; /* some leaf_input or extra_data string holds an escape */
    bool array;   /* "entries" is an array */
};

/* The text of one entry's leaf_input and extra_data strings, as found by the scanner. */
struct jraw {
    const char *leaf, *extra;
    size_t leaf_len, extra_len;
};

static void js_ws(struct jscan *s)
{
    while (s->i < s->n &&
           (s->p[s->i] == ' ' || s->p[s->i] == '\t' || s->p[s->i] == '\n' || s->p[s->i] == '\r'))
        s->i++;
}

/* A syntax error at the cursor. */
static int js_syntax(struct jscan *s, const char *what)
{
    if (s->i >= s->n)
        cap_err_set(s->err, CAP_E_INVALID, "get-entries: malformed JSON (truncated) in %zu bytes",
                    s->n);
    else
        cap_err_set(s->err, CAP_E_INVALID, "get-entries: malformed JSON (%s) at offset %zu", what,
                    s->i);
    return -1;
}

/* Something a get-entries answer never holds, at the cursor. */
static int js_shape(struct jscan *s, const char *what)
{
    cap_err_set(s->err, CAP_E_LIMIT, "get-entries: %s at offset %zu", what, s->i);
    return -1;
}

/* Skips a string at the cursor; *raw and *raw_len give what is between the quotes, *escaped
 * tells whether it holds a backslash escape. */
static int js_string(struct jscan *s, const char **raw, size_t *raw_len, bool *escaped)
{
    if (s->i >= s->n || s->p[s->i] != '"')
        return js_syntax(s, "expected a string");
    size_t start = ++s->i;
    bool esc = false;
    /* The common string (base64 of a whole certificate chain) has no escape: find its end with
     * memchr and check the bytes before it for controls in one vectorisable pass; anything else
     * goes through the loop below, which names what is wrong. */
    const char *q = memchr(s->p + start, '"', s->n - start);
    if (q && !memchr(s->p + start, '\\', (size_t)(q - (s->p + start)))) {
        const unsigned char *u = (const unsigned char *)s->p + start;
        size_t len = (size_t)(q - (s->p + start));
        unsigned bad = 0;
        for (size_t k = 0; k < len; k++)
            bad |= u[k] < 0x20;
        if (!bad) {
            *raw = s->p + start;
            *raw_len = len;
            *escaped = false;
            s->i = start + len + 1;
            return 0;
        }
    }
    while (s->i < s->n) {
        unsigned char c = (unsigned char)s->p[s->i];
        if (c == '"') {
            *raw = s->p + start;
            *raw_len = s->i - start;
            *escaped = esc;
            s->i++;
            return 0;
        }
        if (c < 0x20)
            return js_syntax(s, "control character in a string");
        if (c == '\\') {
            esc = true;
            if (++s->i >= s->n)
                break;
            char e = s->p[s->i];
            if (e == 'u') {
                for (int k = 0; k < 4; k++) {
                    if (++s->i >= s->n)
                        return js_syntax(s, "");
                    char h = s->p[s->i];
                    if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                          (h >= 'A' && h <= 'F')))
                        return js_syntax(s, "bad \\u escape");
                }
            } else if (!strchr("\"\\/bfnrt", e) || e == '\0') {
                return js_syntax(s, "bad escape");
            }
        }
        s->i++;
    }
    return js_syntax(s, "");
}

static bool js_digit(const struct jscan *s)
{
    return s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9';
}

static int js_number(struct jscan *s)
{
    if (s->i < s->n && s->p[s->i] == '-')
        s->i++;
    if (!js_digit(s))
        return js_syntax(s, "bad number");
    if (s->p[s->i] == '0')
        s->i++;
    else
        while (js_digit(s))
            s->i++;
    if (s->i < s->n && s->p[s->i] == '.') {
        s->i++;
        if (!js_digit(s))
            return js_syntax(s, "bad number");
        while (js_digit(s))
            s->i++;
    }
    if (s->i < s->n && (s->p[s->i] == 'e' || s->p[s->i] == 'E')) {
        s->i++;
        if (s->i < s->n && (s->p[s->i] == '+' || s->p[s->i] == '-'))
            s->i++;
        if (!js_digit(s))
            return js_syntax(s, "bad number");
        while (js_digit(s))
            s->i++;
    }
    return 0;
}

/* Skips a string, number, true, false or null; an object or array is a shape error. */
static int js_scalar(struct jscan *s)
{
    if (s->i >= s->n)
        return js_syntax(s, "");
    char c = s->p[s->i];
    if (c == '"') {
        const char *r;
        size_t rl;
        bool esc;
        return js_string(s, &r, &rl, &esc);
    }
    if (c == '{' || c == '[')
        return js_shape(s, "nested object or array where the answer has none");
    if (c == '-' || (c >= '0' && c <= '9'))
        return js_number(s);
    static const char *const lit[] = {"true", "false", "null"};
    for (size_t k = 0; k < 3; k++) {
        size_t l = strlen(lit[k]);
        if (s->n - s->i >= l && memcmp(s->p + s->i, lit[k], l) == 0) {
            s->i += l;
            return 0;
        }
    }
    return js_syntax(s, "unexpected character");
}

/* Reads a member name and the colon after it; names with escapes are refused (no log writes
 * one, and json-c would read "leaf\u005finput" as leaf_input). */
static int js_name(struct jscan *s, const char **name, size_t *len)
{
    bool esc = false;
    if (js_string(s, name, len, &esc) < 0)
        return -1;
    if (esc)
        return js_shape(s, "escaped member name");
    js_ws(s);
    if (s->i >= s->n || s->p[s->i] != ':')
        return js_syntax(s, "expected ':'");
    s->i++;
    js_ws(s);
    return 0;
}

static bool js_is(const char *name, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(name, want, len) == 0;
}

/* After a member: ',' (returns 1, then a name must follow) or the closing '}' (returns 0). */
static int js_next_member(struct jscan *s, size_t *members)
{
    js_ws(s);
    if (s->i >= s->n)
        return js_syntax(s, "");
    if (s->p[s->i] == '}') {
        s->i++;
        return 0;
    }
    if (s->p[s->i] != ',')
        return js_syntax(s, "expected ',' or '}'");
    s->i++;
    js_ws(s);
    if (++*members >= CAP_CT_JSON_MEMBERS_MAX)
        return js_shape(s, "object with too many members");
    return 1;
}

/* One entry: an object with exactly one leaf_input and one extra_data string. */
static int js_entry(struct jscan *s, size_t index)
{
    if (s->i >= s->n)
        return js_syntax(s, "");
    if (s->p[s->i] != '{')
        return js_shape(s, "entry that is not an object");
    s->i++;
    js_ws(s);
    bool leaf = false, extra = false;
    size_t members = 0;
    if (s->i < s->n && s->p[s->i] == '}') {
        s->i++;
    } else {
        for (;;) {
            const char *name;
            size_t nl;
            if (js_name(s, &name, &nl) < 0)
                return -1;
            bool is_leaf = js_is(name, nl, "leaf_input");
            if (is_leaf || js_is(name, nl, "extra_data")) {
                bool *seen = is_leaf ? &leaf : &extra;
                if (*seen)
                    return js_shape(s, "member named twice");
                *seen = true;
                if (s->i >= s->n || s->p[s->i] != '"')
                    return s->i >= s->n ? js_syntax(s, "")
                                        : js_shape(s, "leaf_input or extra_data not a string");
                const char *r;
                size_t rl;
                bool esc;
                if (js_string(s, &r, &rl, &esc) < 0)
                    return -1;
                s->escaped = s->escaped || esc;
                if (s->raw && index < s->raw_cap) {
                    struct jraw *j = &s->raw[index];
                    if (is_leaf) {
                        j->leaf = r;
                        j->leaf_len = rl;
                    } else {
                        j->extra = r;
                        j->extra_len = rl;
                    }
                    if (index + 1 > s->raw_n)
                        s->raw_n = index + 1;
                }
            } else if (js_scalar(s) < 0) {
                return -1;
            }
            int more = js_next_member(s, &members);
            if (more < 0)
                return -1;
            if (more == 0)
                break;
        }
    }
    if (!leaf || !extra) {
        cap_err_set(s->err, CAP_E_LIMIT,
                    "get-entries: entry %zu lacks its leaf_input or extra_data string (before "
                    "offset %zu)",
                    index, s->i);
        return -1;
    }
    return 0;
}

/* The "entries" member: an array of at most max entries (none, or a scalar instead of the
 * array, is left to the parser's own message). */
static int js_entries(struct jscan *s, size_t max)
{
    if (s->i >= s->n || s->p[s->i] != '[')
        return js_scalar(s); /* not an array: the parser names it */
    s->array = true;
    s->i++;
    js_ws(s);
    if (s->i < s->n && s->p[s->i] == ']') {
        s->i++;
        return 0;
    }
    for (size_t k = 0;; k++) {
        if (k == max) {
            cap_err_set(s->err, CAP_E_LIMIT,
                        "get-entries: more than the %zu entries asked for (at offset %zu)", max,
                        s->i);
            return -1;
        }
        if (js_entry(s, k) < 0)
            return -1;
        js_ws(s);
        if (s->i >= s->n)
            return js_syntax(s, "");
        if (s->p[s->i] == ']') {
            s->i++;
            return 0;
        }
        if (s->p[s->i] != ',')
            return js_syntax(s, "expected ',' or ']'");
        s->i++;
        js_ws(s);
    }
}

/* The checks of cap_ct_entries_precheck over s, which may also collect where the entries'
 * strings are (s->raw). */
static int precheck_scan(struct jscan *s, size_t max)
{
    js_ws(s);
    if (s->i >= s->n || s->p[s->i] != '{')
        return s->i < s->n && s->p[s->i] == '['
                   ? js_shape(s, "an array where the answer is an object")
                   : js_syntax(s, "expected an object");
    s->i++;
    js_ws(s);
    bool entries = false;
    size_t members = 0;
    if (s->i < s->n && s->p[s->i] == '}') {
        s->i++;
    } else {
        for (;;) {
            const char *name;
            size_t nl;
            if (js_name(s, &name, &nl) < 0)
                return -1;
            if (js_is(name, nl, "entries")) {
                if (entries)
                    return js_shape(s, "member named twice");
                entries = true;
                if (js_entries(s, max) < 0)
                    return -1;
            } else if (js_scalar(s) < 0) {
                return -1;
            }
            int more = js_next_member(s, &members);
            if (more < 0)
                return -1;
            if (more == 0)
                break;
        }
    }
    js_ws(s);
    if (s->i != s->n) {
        cap_err_set(s->err, CAP_E_INVALID, "get-entries: trailing data after JSON at offset %zu",
                    s->i);
        return -1;
    }
    return 0;
}

int cap_ct_entries_precheck(const char *body, size_t len, size_t max, struct cap_err *err)
{
    struct jscan s = {.p = body, .n = len, .err = err};
    return precheck_scan(&s, max);
}

/* The entries straight from the strings the pre-check found (none escaped): what json-c would
 * give for them, without building its tree (which cost as much as the rest of a read). */
static int entries_from_raw(const struct jscan *s, size_t len, size_t max,
                            struct cap_ct_entries *out, struct cap_err *err)
{
    size_t n = s->raw_n;
    if (n == 0 || n > max) {
        cap_err_set(err, CAP_E_INVALID, "get-entries: %zu entries, expected 1 to %zu", n, max);
        return -1;
    }
    struct cap_ct_entries e = {0};
    e.v = calloc(n, sizeof *e.v);
    e.arena = malloc(len ? len : 1);
    if (!e.v || !e.arena) {
        cap_err_set(err, CAP_E_NOMEM, "get-entries: out of memory for %zu entries", n);
        goto fail;
    }
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const struct jraw *j = &s->raw[i];
        long ln = cap_ct_b64_decode(j->leaf, j->leaf_len, e.arena + used, len - used, err);
        if (ln < 0) {
            cap_err_prefix(err, "get-entries: field \"leaf_input\": ");
            goto fail;
        }
        e.v[i].leaf = e.arena + used;
        e.v[i].leaf_len = (size_t)ln;
        used += (size_t)ln;
        long xn = cap_ct_b64_decode(j->extra, j->extra_len, e.arena + used, len - used, err);
        if (xn < 0) {
            cap_err_prefix(err, "get-entries: field \"extra_data\": ");
            goto fail;
        }
        e.v[i].extra = e.arena + used;
        e.v[i].extra_len = (size_t)xn;
        used += (size_t)xn;
        e.n++;
    }
    *out = e;
    return 0;
fail:
    cap_ct_entries_free(&e);
    return -1;
}

int cap_ct_entries_parse(const char *body, size_t len, size_t max, struct cap_ct_entries *out,
                         struct cap_err *err)
{
    /* Before json-c: a tree of small objects costs hundreds of times the bytes of its text. The
     * pre-check is a full JSON scan, so when it finds every entry's two strings and none holds
     * an escape, they are decoded where they lie; otherwise json-c reads the body. */
    struct jscan s = {.p = body, .n = len, .err = err};
    s.raw_cap = max < 65536 ? max : 65536;
    s.raw = calloc(s.raw_cap ? s.raw_cap : 1, sizeof *s.raw);
    if (!s.raw) {
        cap_err_set(err, CAP_E_NOMEM, "get-entries: out of memory for %zu entries", max);
        return -1;
    }
    if (precheck_scan(&s, max) < 0) {
        free(s.raw);
        return -1;
    }
    if (s.array && !s.escaped && s.raw_n <= s.raw_cap) {
        int rc = entries_from_raw(&s, len, max, out, err);
        free(s.raw);
        return rc;
    }
    free(s.raw);
    json_object *o = parse_json(body, len, "get-entries", err);
    if (!o)
        return -1;
    struct cap_ct_entries e = {0};
    json_object *arr;
    if (!json_object_object_get_ex(o, "entries", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        cap_err_set(err, CAP_E_INVALID, "get-entries: field \"entries\" missing or not an array");
        goto fail;
    }
    size_t n = json_object_array_length(arr);
    if (n == 0 || n > max) {
        cap_err_set(err, CAP_E_INVALID, "get-entries: %zu entries, expected 1 to %zu", n, max);
        goto fail;
    }
    e.v = calloc(n, sizeof *e.v);
    e.arena = malloc(len);
    if (!e.v || !e.arena) {
        cap_err_set(err, CAP_E_NOMEM, "get-entries: out of memory for %zu entries", n);
        goto fail;
    }
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        json_object *it = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(it, json_type_object)) {
            cap_err_set(err, CAP_E_INVALID, "get-entries: entry %zu is not an object", i);
            goto fail;
        }
        size_t ln = 0, xn = 0;
        if (get_b64(it, "leaf_input", e.arena + used, len - used, &ln, "get-entries", err) < 0)
            goto fail;
        e.v[i].leaf = e.arena + used;
        e.v[i].leaf_len = ln;
        used += ln;
        if (get_b64(it, "extra_data", e.arena + used, len - used, &xn, "get-entries", err) < 0)
            goto fail;
        e.v[i].extra = e.arena + used;
        e.v[i].extra_len = xn;
        used += xn;
        e.n++;
    }
    json_object_put(o);
    *out = e;
    return 0;
fail:
    json_object_put(o);
    cap_ct_entries_free(&e);
    return -1;
}

void cap_ct_entries_free(struct cap_ct_entries *e)
{
    if (!e)
        return;
    free(e->v);
    free(e->arena);
    e->v = NULL;
    e->arena = NULL;
    e->n = 0;
}

int cap_ct_sth_parse(const char *body, size_t len, struct cap_ct_sth *out, struct cap_err *err)
{
    json_object *o = parse_json(body, len, "get-sth", err);
    if (!o)
        return -1;
    struct cap_ct_sth s;
    memset(&s, 0, sizeof s);
    size_t rn = 0;
    uint8_t root[48];
    if (get_u64(o, "tree_size", &s.tree_size, "get-sth", err) < 0 ||
        get_u64(o, "timestamp", &s.timestamp, "get-sth", err) < 0 ||
        get_b64(o, "sha256_root_hash", root, sizeof root, &rn, "get-sth", err) < 0 ||
        get_b64(o, "tree_head_signature", s.sig, sizeof s.sig, &s.sig_len, "get-sth", err) < 0)
        goto fail;
    if (rn != 32) {
        cap_err_set(err, CAP_E_INVALID, "get-sth: root hash of %zu bytes, expected 32", rn);
        goto fail;
    }
    if (s.tree_size >= (UINT64_C(1) << 62)) {
        cap_err_set(err, CAP_E_INVALID, "get-sth: tree size %llu out of range",
                    (unsigned long long)s.tree_size);
        goto fail;
    }
    memcpy(s.root, root, 32);
    json_object_put(o);
    *out = s;
    return 0;
fail:
    json_object_put(o);
    return -1;
}

int cap_ct_consistency_parse(const char *body, size_t len, uint8_t (**proof)[32], size_t *n,
                             struct cap_err *err)
{
    json_object *o = parse_json(body, len, "get-sth-consistency", err);
    if (!o)
        return -1;
    json_object *arr;
    uint8_t(*p)[32] = NULL;
    if (!json_object_object_get_ex(o, "consistency", &arr) ||
        !json_object_is_type(arr, json_type_array)) {
        cap_err_set(err, CAP_E_INVALID,
                    "get-sth-consistency: field \"consistency\" missing or not an array");
        goto fail;
    }
    size_t k = json_object_array_length(arr);
    if (k > 128) {
        cap_err_set(err, CAP_E_INVALID, "get-sth-consistency: %zu nodes, at most 128", k);
        goto fail;
    }
    p = calloc(k ? k : 1, sizeof *p);
    if (!p) {
        cap_err_set(err, CAP_E_NOMEM, "get-sth-consistency: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < k; i++) {
        json_object *it = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(it, json_type_string)) {
            cap_err_set(err, CAP_E_INVALID, "get-sth-consistency: node %zu is not a string", i);
            goto fail;
        }
        uint8_t tmp[48];
        long r = cap_ct_b64_decode(json_object_get_string(it),
                                   (size_t)json_object_get_string_len(it), tmp, sizeof tmp, err);
        if (r != 32) {
            cap_err_set(err, CAP_E_INVALID, "get-sth-consistency: node %zu is not 32 bytes", i);
            goto fail;
        }
        memcpy(p[i], tmp, 32);
    }
    json_object_put(o);
    *proof = p;
    *n = k;
    return 0;
fail:
    free(p);
    json_object_put(o);
    return -1;
}

/* Decodes an array of base64 hashes (field key of o) into a malloc'd array. */
static int hash_array(json_object *o, const char *key, const char *what, uint8_t (**out)[32],
                      size_t *n, struct cap_err *err)
{
    json_object *arr;
    if (!json_object_object_get_ex(o, key, &arr) || !json_object_is_type(arr, json_type_array)) {
        cap_err_set(err, CAP_E_INVALID, "%s: field \"%s\" missing or not an array", what, key);
        return -1;
    }
    size_t k = json_object_array_length(arr);
    if (k > 128) {
        cap_err_set(err, CAP_E_INVALID, "%s: %zu nodes, at most 128", what, k);
        return -1;
    }
    uint8_t(*p)[32] = calloc(k ? k : 1, sizeof *p);
    if (!p) {
        cap_err_set(err, CAP_E_NOMEM, "%s: out of memory", what);
        return -1;
    }
    for (size_t i = 0; i < k; i++) {
        json_object *it = json_object_array_get_idx(arr, i);
        uint8_t tmp[48];
        struct cap_err e2 = {0};
        if (!json_object_is_type(it, json_type_string) ||
            cap_ct_b64_decode(json_object_get_string(it), (size_t)json_object_get_string_len(it),
                              tmp, sizeof tmp, &e2) != 32) {
            cap_err_set(err, CAP_E_INVALID, "%s: node %zu is not a base64 32-byte hash", what, i);
            free(p);
            return -1;
        }
        memcpy(p[i], tmp, 32);
    }
    *out = p;
    *n = k;
    return 0;
}

int cap_ct_entry_proof_parse(const char *body, size_t len, uint8_t **leaf, size_t *leaf_len,
                             uint8_t (**path)[32], size_t *n, struct cap_err *err)
{
    json_object *o = parse_json(body, len, "get-entry-and-proof", err);
    if (!o)
        return -1;
    uint8_t *l = malloc(len ? len : 1);
    size_t ln = 0;
    int rc = -1;
    if (l && get_b64(o, "leaf_input", l, len, &ln, "get-entry-and-proof", err) == 0 &&
        hash_array(o, "audit_path", "get-entry-and-proof", path, n, err) == 0) {
        *leaf = l;
        *leaf_len = ln;
        l = NULL;
        rc = 0;
    } else if (!l) {
        cap_err_set(err, CAP_E_NOMEM, "get-entry-and-proof: out of memory");
    }
    free(l);
    json_object_put(o);
    return rc;
}

EVP_PKEY *cap_ct_key_load(const char *text, struct cap_err *err)
{
    EVP_PKEY *k = NULL;
    ERR_clear_error();
    if (strstr(text, "-----BEGIN")) {
        BIO *b = BIO_new_mem_buf(text, -1);
        if (b) {
            k = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL);
            BIO_free(b);
        }
    } else {
        size_t len = strlen(text);
        while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
            len--;
        uint8_t der[4096];
        struct cap_err e2 = {0};
        long n = cap_ct_b64_decode(text, len, der, sizeof der, &e2);
        if (n > 0) {
            const uint8_t *p = der;
            k = d2i_PUBKEY(NULL, &p, n);
            if (k && p != der + n) {
                EVP_PKEY_free(k);
                k = NULL;
            }
        }
    }
    if (!k) {
        char q[96];
        cap_err_set(err, CAP_E_INVALID, "log key \"%s\": not a PEM or base64 DER public key",
                    cap_err_quote(q, sizeof q, text, strlen(text)));
        return NULL;
    }
    int id = EVP_PKEY_base_id(k);
    if (id != EVP_PKEY_EC && id != EVP_PKEY_RSA && id != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        cap_err_set(err, CAP_E_INVALID, "log key: unsupported algorithm (need EC, RSA, Ed25519)");
        return NULL;
    }
    return k;
}

int cap_ct_key_id(EVP_PKEY *key, uint8_t out[32])
{
    uint8_t *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    if (n <= 0)
        return -1;
    SHA256(der, (size_t)n, out);
    OPENSSL_free(der);
    return 0;
}

/* TreeHeadSignature: version v1(0), signature_type tree_hash(1), timestamp, tree_size, root. */
static void tree_head_input(uint64_t ts, uint64_t size, const uint8_t root[32], uint8_t out[50])
{
    out[0] = 0;
    out[1] = 1;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(ts >> (56 - 8 * i));
        out[10 + i] = (uint8_t)(size >> (56 - 8 * i));
    }
    memcpy(out + 18, root, 32);
}

/* Verifies a DigitallySigned struct over msg. */
static int verify_ds(EVP_PKEY *key, const uint8_t *ds, size_t ds_len, const uint8_t *msg,
                     size_t msg_len, const char *what, struct cap_err *err)
{
    struct cap_ct_cur c;
    cap_ct_cur_init(&c, ds, ds_len);
    uint64_t hash_alg = cap_ct_cur_uint(&c, 1);
    uint64_t sig_alg = cap_ct_cur_uint(&c, 1);
    size_t sl = 0;
    const uint8_t *sig = cap_ct_cur_vec(&c, 2, &sl);
    if (!sig || c.left) {
        cap_err_set(err, CAP_E_INVALID, "%s: malformed signature (%zu bytes)", what, ds_len);
        return -1;
    }
    int id = EVP_PKEY_base_id(key);
    if (hash_alg != 4 || !((sig_alg == 3 && id == EVP_PKEY_EC) ||
                           (sig_alg == 1 && id == EVP_PKEY_RSA))) {
        cap_err_set(err, CAP_E_INVALID,
                    "%s: signature algorithm %llu/%llu does not fit the log key", what,
                    (unsigned long long)hash_alg, (unsigned long long)sig_alg);
        return -1;
    }
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    int ok = 0;
    ERR_clear_error();
    if (mc && EVP_DigestVerifyInit(mc, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestVerify(mc, sig, sl, msg, msg_len) == 1)
        ok = 1;
    EVP_MD_CTX_free(mc);
    ERR_clear_error();
    if (!ok) {
        cap_err_set(err, CAP_E_INVALID, "%s: signature does not verify against the log key",
                    what);
        return -1;
    }
    return 0;
}

int cap_ct_sth_verify(EVP_PKEY *key, const struct cap_ct_sth *sth, struct cap_err *err)
{
    uint8_t msg[50];
    tree_head_input(sth->timestamp, sth->tree_size, sth->root, msg);
    char what[96];
    snprintf(what, sizeof what, "tree head of size %llu", (unsigned long long)sth->tree_size);
    return verify_ds(key, sth->sig, sth->sig_len, msg, sizeof msg, what, err);
}

/* Key ID of a note verifier: SHA-256(name || "\n" || type || key material)[:4]. */
static int note_key_id(EVP_PKEY *key, const char *name, size_t name_len, uint8_t out[4])
{
    uint8_t *mat = NULL;
    size_t ml = 0;
    uint8_t type;
    uint8_t raw[32];
    if (EVP_PKEY_base_id(key) == EVP_PKEY_ED25519) {
        type = 0x01;
        ml = sizeof raw;
        if (EVP_PKEY_get_raw_public_key(key, raw, &ml) != 1 || ml != 32)
            return -1;
        mat = raw;
    } else {
        /* RFC 6962 note verifiers hash the log ID (SHA-256 of the SPKI), not the SPKI. */
        type = 0x05;
        if (cap_ct_key_id(key, raw) < 0)
            return -1;
        mat = raw;
        ml = 32;
    }
    SHA256_CTX c;
    uint8_t h[32];
    uint8_t nl = '\n';
    SHA256_Init(&c);
    SHA256_Update(&c, name, name_len);
    SHA256_Update(&c, &nl, 1);
    SHA256_Update(&c, &type, 1);
    SHA256_Update(&c, mat, ml);
    SHA256_Final(h, &c);
    memcpy(out, h, 4);
    return 0;
}

static int parse_u64_dec(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

int cap_ct_checkpoint_parse(const char *note, size_t len, EVP_PKEY *key,
                            const char *expected_origin, struct cap_ct_sth *out, bool *verified,
                            struct cap_err *err)
{
    if (len > 1 << 16) {
        cap_err_set(err, CAP_E_LIMIT, "checkpoint: %zu bytes, at most 65536", len);
        return -1;
    }
    /* The body ends at the first blank line; it must end with a newline. */
    const char *sep = NULL;
    for (size_t i = 0; i + 1 < len; i++) {
        if (note[i] == '\n' && note[i + 1] == '\n') {
            sep = note + i;
            break;
        }
    }
    if (!sep) {
        cap_err_set(err, CAP_E_INVALID, "checkpoint: no blank line before the signatures");
        return -1;
    }
    size_t body_len = (size_t)(sep - note) + 1;
    const char *lines[3];
    size_t lens[3];
    const char *p = note;
    for (int i = 0; i < 3; i++) {
        const char *nl = memchr(p, '\n', body_len - (size_t)(p - note));
        if (!nl) {
            cap_err_set(err, CAP_E_INVALID, "checkpoint: fewer than 3 lines");
            return -1;
        }
        lines[i] = p;
        lens[i] = (size_t)(nl - p);
        p = nl + 1;
    }
    struct cap_ct_sth s;
    memset(&s, 0, sizeof s);
    char q[96];
    if (lens[0] == 0 || memchr(lines[0], ' ', lens[0])) {
        cap_err_set(err, CAP_E_INVALID, "checkpoint: bad origin line \"%s\"",
                    cap_err_quote(q, sizeof q, lines[0], lens[0]));
        return -1;
    }
    if (expected_origin && (strlen(expected_origin) != lens[0] ||
                            memcmp(expected_origin, lines[0], lens[0]) != 0)) {
        cap_err_set(err, CAP_E_INVALID, "checkpoint: origin \"%s\" is not the log's origin",
                    cap_err_quote(q, sizeof q, lines[0], lens[0]));
        return -1;
    }
    if (parse_u64_dec(lines[1], lens[1], &s.tree_size) < 0 ||
        s.tree_size >= (UINT64_C(1) << 62)) {
        cap_err_set(err, CAP_E_INVALID, "checkpoint: bad tree size \"%s\"",
                    cap_err_quote(q, sizeof q, lines[1], lens[1]));
        return -1;
    }
    uint8_t root[48];
    struct cap_err e2 = {0};
    if (cap_ct_b64_decode(lines[2], lens[2], root, sizeof root, &e2) != 32) {
        cap_err_set(err, CAP_E_INVALID, "checkpoint: bad root hash \"%s\"",
                    cap_err_quote(q, sizeof q, lines[2], lens[2]));
        return -1;
    }
    memcpy(s.root, root, 32);
    bool ok = false;
    uint8_t want_id[4];
    bool have_id = key && note_key_id(key, lines[0], lens[0], want_id) == 0;
    /* Signature lines: "\xe2\x80\x94 name base64\n". */
    const char *sp = sep + 2;
    const char *end = note + len;
    while (sp < end) {
        const char *nl = memchr(sp, '\n', (size_t)(end - sp));
        if (!nl) {
            cap_err_set(err, CAP_E_INVALID, "checkpoint: signature line without newline");
            return -1;
        }
        size_t ll = (size_t)(nl - sp);
        if (ll < 4 || memcmp(sp, "\xe2\x80\x94 ", 4) != 0) {
            cap_err_set(err, CAP_E_INVALID, "checkpoint: bad signature line \"%s\"",
                        cap_err_quote(q, sizeof q, sp, ll));
            return -1;
        }
        const char *name = sp + 4;
        const char *space = memchr(name, ' ', (size_t)(nl - name));
        if (!space) {
            cap_err_set(err, CAP_E_INVALID, "checkpoint: bad signature line \"%s\"",
                        cap_err_quote(q, sizeof q, sp, ll));
            return -1;
        }
        size_t name_len = (size_t)(space - name);
        uint8_t sig[CAP_CT_SIG_MAX + 16];
        long sn = cap_ct_b64_decode(space + 1, (size_t)(nl - space - 1), sig, sizeof sig, &e2);
        if (sn < 5) {
            cap_err_set(err, CAP_E_INVALID, "checkpoint: bad signature encoding by \"%s\"",
                        cap_err_quote(q, sizeof q, name, name_len));
            return -1;
        }
        if (have_id && !ok && name_len == lens[0] && memcmp(name, lines[0], name_len) == 0 &&
            memcmp(sig, want_id, 4) == 0) {
            if (EVP_PKEY_base_id(key) == EVP_PKEY_ED25519) {
                EVP_MD_CTX *mc = EVP_MD_CTX_new();
                ERR_clear_error();
                if (sn == 4 + 64 && mc && EVP_DigestVerifyInit(mc, NULL, NULL, NULL, key) == 1 &&
                    EVP_DigestVerify(mc, sig + 4, 64, (const uint8_t *)note, body_len) == 1)
                    ok = true;
                EVP_MD_CTX_free(mc);
                ERR_clear_error();
                if (!ok) {
                    cap_err_set(err, CAP_E_INVALID,
                                "checkpoint: Ed25519 signature does not verify against the log key");
                    return -1;
                }
            } else {
                struct cap_ct_cur c;
                cap_ct_cur_init(&c, sig + 4, (size_t)sn - 4);
                uint64_t ts = cap_ct_cur_uint(&c, 8);
                if (c.bad) {
                    cap_err_set(err, CAP_E_INVALID, "checkpoint: truncated note signature");
                    return -1;
                }
                uint8_t msg[50];
                tree_head_input(ts, s.tree_size, s.root, msg);
                if (verify_ds(key, c.p, c.left, msg, sizeof msg, "checkpoint", err) < 0)
                    return -1;
                s.timestamp = ts;
                ok = true;
            }
        }
        sp = nl + 1;
    }
    if (key && !ok) {
        cap_err_set(err, CAP_E_INVALID, "checkpoint: no signature by the log key for origin \"%s\"",
                    cap_err_quote(q, sizeof q, lines[0], lens[0]));
        return -1;
    }
    *out = s;
    *verified = ok;
    return 0;
}

int cap_ct_tile_leaf_next(struct cap_ct_cur *c, struct cap_ct_tile_leaf *out, struct cap_err *err)
{
    struct cap_ct_tile_leaf t;
    memset(&t, 0, sizeof t);
    t.te = c->p;
    size_t start_left = c->left;
    t.leaf.timestamp = cap_ct_cur_uint(c, 8);
    uint64_t et = cap_ct_cur_uint(c, 2);
    if (c->bad) {
        cap_err_set(err, CAP_E_INVALID, "data tile: truncated entry");
        return -1;
    }
    if (et == CAP_CT_ENTRY_PRECERT) {
        t.leaf.issuer_key_hash = cap_ct_cur_bytes(c, 32);
    } else if (et != CAP_CT_ENTRY_X509) {
        cap_err_set(err, CAP_E_INVALID, "data tile: unknown entry type %llu",
                    (unsigned long long)et);
        return -1;
    }
    t.leaf.entry_type = (int)et;
    t.leaf.cert = cap_ct_cur_vec(c, 3, &t.leaf.cert_len);
    size_t ext_len = 0;
    cap_ct_cur_vec(c, 2, &ext_len);
    if (c->bad || t.leaf.cert_len == 0) {
        cap_err_set(err, CAP_E_INVALID, "data tile: bad certificate length");
        return -1;
    }
    t.te_len = start_left - c->left;
    if (et == CAP_CT_ENTRY_PRECERT) {
        t.precert = cap_ct_cur_vec(c, 3, &t.precert_len);
        if (!t.precert || t.precert_len == 0) {
            cap_err_set(err, CAP_E_INVALID, "data tile: bad pre_certificate length");
            return -1;
        }
    }
    size_t fl = 0;
    t.chain_fps = cap_ct_cur_vec(c, 2, &fl);
    if (!t.chain_fps || fl % 32 != 0) {
        cap_err_set(err, CAP_E_INVALID, "data tile: bad chain fingerprint list");
        c->bad = true;
        return -1;
    }
    t.chain_n = fl / 32;
    *out = t;
    return 0;
}

void cap_ct_tile_leaf_hash(const struct cap_ct_tile_leaf *t, uint8_t out[32])
{
    SHA256_CTX c;
    static const uint8_t prefix[3] = {0, 0, 0};
    SHA256_Init(&c);
    SHA256_Update(&c, prefix, 3);
    SHA256_Update(&c, t->te, t->te_len);
    SHA256_Final(out, &c);
}

int cap_ct_tile_path(int level, uint64_t index, unsigned width, char *out, size_t cap)
{
    char idx[64];
    int groups[8], ng = 0;
    uint64_t x = index;
    do {
        groups[ng++] = (int)(x % 1000);
        x /= 1000;
    } while (x && ng < 8);
    size_t o = 0;
    for (int i = ng - 1; i >= 0; i--) {
        int w = snprintf(idx + o, sizeof idx - o, i ? "x%03d/" : "%03d", groups[i]);
        if (w < 0 || (size_t)w >= sizeof idx - o)
            return -1;
        o += (size_t)w;
    }
    int w;
    if (level < 0)
        w = snprintf(out, cap, "tile/data/%s", idx);
    else
        w = snprintf(out, cap, "tile/%d/%s", level, idx);
    if (w < 0 || (size_t)w >= cap)
        return -1;
    if (width < 256) {
        int w2 = snprintf(out + w, cap - (size_t)w, ".p/%u", width);
        if (w2 < 0 || (size_t)w2 >= cap - (size_t)w)
            return -1;
    }
    return 0;
}
