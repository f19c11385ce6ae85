/* Suffix set and certificate-name extraction for the CT monitor's matching step. */
#include "worker/ct/ct_match.h"

#include <stdlib.h>
#include <string.h>

#include "common/idna.h"

/* Longest DNS label (RFC 1035); a longer one matches no certificate name. */
#define CAP_CT_LABEL_MAX 63

struct cap_ct_suffixes {
    size_t cap;      /* power of two */
    size_t n;
    char **slot;     /* open addressing; NULL is empty */
    uint64_t *hash;
};

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

int cap_ct_suffix_normalize(const char *in, char *out, struct cap_err *err)
{
    char q[96];
    size_t len = strlen(in);
    const char *s = in;
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n'))
        len--;
    if (len >= 2 && s[0] == '*' && s[1] == '.') {
        s += 2;
        len -= 2;
    }
    while (len && s[len - 1] == '.')
        len--;
    if (len == 0 || len > 4 * CAP_CT_NAME_MAX) {
        cap_err_set(err, CAP_E_INVALID, "domain suffix \"%s\": empty or too long",
                    cap_err_quote(q, sizeof q, in, strlen(in)));
        return -1;
    }
    /* U-labels become A-labels (libidn2); then every label is checked as ASCII */
    char alabels[CAP_CT_NAME_MAX + 1];
    if (cap_idna_has_non_ascii(s, len)) {
        const char *why = "";
        if (cap_idna_to_ascii(s, len, alabels, sizeof alabels, &why) != 0) {
            cap_err_set(err, CAP_E_INVALID,
                        "domain suffix \"%s\": not a valid internationalised name (%s)",
                        cap_err_quote(q, sizeof q, in, strlen(in)), why);
            return -1;
        }
        s = alabels;
        len = strlen(alabels);
        while (len && s[len - 1] == '.')
            len--; /* a trailing ideographic full stop, mapped to '.' */
    }
    size_t o = 0;
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && s[j] != '.')
            j++;
        size_t ln = j - i;
        if (ln == 0 || ln > CAP_CT_LABEL_MAX || o + ln + 1 > CAP_CT_NAME_MAX)
            goto bad;
        for (size_t k = 0; k < ln; k++) {
            char c = s[i + k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c + 32);
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
                goto bad;
            out[o++] = c;
        }
        if (j < len)
            out[o++] = '.';
        i = j + 1;
    }
    out[o] = '\0';
    return 0;
bad:
    cap_err_set(err, CAP_E_INVALID,
                "domain suffix \"%s\": not a valid DNS name (letters, digits, '-', IDN labels)",
                cap_err_quote(q, sizeof q, in, strlen(in)));
    return -1;
}

static bool set_has(const struct cap_ct_suffixes *s, const char *p, size_t n)
{
    uint64_t h = fnv1a(p, n);
    size_t mask = s->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        if (!s->slot[i])
            return false;
        if (s->hash[i] == h && strlen(s->slot[i]) == n && memcmp(s->slot[i], p, n) == 0)
            return true;
    }
}

struct cap_ct_suffixes *cap_ct_suffixes_new(const char *const *v, size_t n, struct cap_err *err)
{
    struct cap_ct_suffixes *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->cap = 16;
    while (s->cap < 2 * n + 2)
        s->cap <<= 1;
    s->slot = calloc(s->cap, sizeof *s->slot);
    s->hash = calloc(s->cap, sizeof *s->hash);
    if (!s->slot || !s->hash)
        goto nomem;
    for (size_t k = 0; k < n; k++) {
        char norm[CAP_CT_NAME_MAX + 1];
        if (cap_ct_suffix_normalize(v[k], norm, err) < 0) {
            cap_ct_suffixes_free(s);
            return NULL;
        }
        size_t ln = strlen(norm);
        if (set_has(s, norm, ln))
            continue;
        uint64_t h = fnv1a(norm, ln);
        size_t i = (size_t)h & (s->cap - 1);
        while (s->slot[i])
            i = (i + 1) & (s->cap - 1);
        s->slot[i] = strdup(norm);
        if (!s->slot[i])
            goto nomem;
        s->hash[i] = h;
        s->n++;
    }
    return s;
nomem:
    cap_err_set(err, CAP_E_NOMEM, "out of memory building the suffix set");
    cap_ct_suffixes_free(s);
    return NULL;
}

void cap_ct_suffixes_free(struct cap_ct_suffixes *s)
{
    if (!s)
        return;
    if (s->slot)
        for (size_t i = 0; i < s->cap; i++)
            free(s->slot[i]);
    free(s->slot);
    free(s->hash);
    free(s);
}

bool cap_ct_suffixes_match(const struct cap_ct_suffixes *s, const char *name, size_t len)
{
    char buf[CAP_CT_NAME_MAX + 2];
    while (len && name[len - 1] == '.')
        len--;
    if (len == 0 || len > CAP_CT_NAME_MAX + 1 || s->n == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    /* Probe the whole name, then the rest after every dot: one probe per label boundary. */
    if (set_has(s, buf, len))
        return true;
    for (size_t i = 0; i + 1 < len; i++)
        if (buf[i] == '.' && set_has(s, buf + i + 1, len - i - 1))
            return true;
    return false;
}

/* --- DER walk --- */

struct der {
    const uint8_t *p;
    size_t n;
};

/* Reads one TLV from d: tag (single byte tags only; CT certificates use no others), content.
 * Returns 0 or -1. */
static int der_next(struct der *d, unsigned *tag, struct der *content)
{
    if (d->n < 2)
        return -1;
    unsigned t = d->p[0];
    if ((t & 0x1f) == 0x1f)
        return -1;
    size_t len = d->p[1];
    size_t hdr = 2;
    if (len & 0x80) {
        size_t nb = len & 0x7f;
        if (nb == 0 || nb > 4 || d->n < 2 + nb)
            return -1;
        len = 0;
        for (size_t i = 0; i < nb; i++)
            len = (len << 8) | d->p[2 + i];
        hdr += nb;
    }
    if (len > d->n - hdr)
        return -1;
    *tag = t;
    content->p = d->p + hdr;
    content->n = len;
    d->p += hdr + len;
    d->n -= hdr + len;
    return 0;
}

static const uint8_t OID_SAN[] = {0x55, 0x1d, 0x11};
static const uint8_t OID_CN[] = {0x55, 0x04, 0x03};

static int walk_cn(struct der subject, cap_ct_name_cb cb, void *ud)
{
    unsigned tag;
    struct der rdn;
    while (subject.n) {
        if (der_next(&subject, &tag, &rdn) < 0 || tag != 0x31)
            return -1;
        struct der atv;
        while (rdn.n) {
            if (der_next(&rdn, &tag, &atv) < 0 || tag != 0x30)
                return -1;
            struct der oid, val;
            unsigned vt;
            if (der_next(&atv, &tag, &oid) < 0 || tag != 0x06 || der_next(&atv, &vt, &val) < 0)
                return -1;
            if (oid.n == sizeof OID_CN && memcmp(oid.p, OID_CN, sizeof OID_CN) == 0 &&
                (vt == 0x0c || vt == 0x13 || vt == 0x16 || vt == 0x14) && val.n > 0 &&
                cb(ud, (const char *)val.p, val.n))
                return 1;
        }
    }
    return 0;
}

int cap_ct_names_each(const uint8_t *der, size_t len, bool is_tbs, cap_ct_name_cb cb, void *ud,
                      struct cap_err *err)
{
    struct der d = {der, len}, tbs, f;
    unsigned tag;
    if (!is_tbs) {
        struct der cert;
        if (der_next(&d, &tag, &cert) < 0 || tag != 0x30)
            goto bad;
        if (der_next(&cert, &tag, &tbs) < 0 || tag != 0x30)
            goto bad;
    } else {
        if (der_next(&d, &tag, &tbs) < 0 || tag != 0x30)
            goto bad;
    }
    /* version [0] (optional), serial, signature, issuer, validity, subject, spki */
    if (der_next(&tbs, &tag, &f) < 0)
        goto bad;
    if (tag == 0xa0 && der_next(&tbs, &tag, &f) < 0)
        goto bad;
    if (tag != 0x02)
        goto bad;
    struct der subject = {NULL, 0};
    for (int i = 0; i < 5; i++) {
        if (der_next(&tbs, &tag, &f) < 0 || tag != 0x30)
            goto bad;
        if (i == 3)
            subject = f;
    }
    struct der exts = {NULL, 0};
    bool have_exts = false;
    while (tbs.n) {
        if (der_next(&tbs, &tag, &f) < 0)
            goto bad;
        if (tag == 0xa3) {
            if (der_next(&f, &tag, &exts) < 0 || tag != 0x30)
                goto bad;
            have_exts = true;
        }
    }
    bool have_san = false;
    while (have_exts && exts.n) {
        struct der ext, oid, v;
        if (der_next(&exts, &tag, &ext) < 0 || tag != 0x30)
            goto bad;
        if (der_next(&ext, &tag, &oid) < 0 || tag != 0x06)
            goto bad;
        if (oid.n != sizeof OID_SAN || memcmp(oid.p, OID_SAN, sizeof OID_SAN) != 0)
            continue;
        if (der_next(&ext, &tag, &v) < 0)
            goto bad;
        if (tag == 0x01 && der_next(&ext, &tag, &v) < 0)
            goto bad;
        if (tag != 0x04)
            goto bad;
        struct der seq;
        if (der_next(&v, &tag, &seq) < 0 || tag != 0x30)
            goto bad;
        have_san = true;
        while (seq.n) {
            struct der gn;
            if (der_next(&seq, &tag, &gn) < 0)
                goto bad;
            if (tag == 0x82 && gn.n > 0 && cb(ud, (const char *)gn.p, gn.n))
                return 1;
        }
    }
    if (!have_san) {
        int r = walk_cn(subject, cb, ud);
        if (r < 0)
            goto bad;
        return r;
    }
    return 0;
bad:
    cap_err_set(err, CAP_E_INVALID, "certificate: malformed DER (%zu bytes)", len);
    return -1;
}

static int match_cb(void *ud, const char *name, size_t len)
{
    const struct cap_ct_suffixes *s = ud;
    return cap_ct_suffixes_match(s, name, len) ? 1 : 0;
}

int cap_ct_match_cert(const struct cap_ct_suffixes *s, const uint8_t *der, size_t len,
                      bool is_tbs, struct cap_err *err)
{
    return cap_ct_names_each(der, len, is_tbs, match_cb, (void *)s, err);
}
