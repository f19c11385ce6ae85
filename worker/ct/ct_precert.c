/* The precertificate of a CT precert_entry checked against the TBSCertificate of its leaf
 * (RFC 6962 section 3.2), over a small bounds-checked DER reader. */
#include "worker/ct/ct_precert.h"

#include <stdbool.h>
#include <string.h>

/* Most fields of a TBSCertificate besides its extensions: version, serial, signature, issuer,
 * validity, subject, subjectPublicKeyInfo and the two unique identifiers. */
#define TBS_FIELDS_MAX 9

struct span {
    const uint8_t *p;
    size_t n;
};

struct ext {
    struct span tlv;  /* the whole Extension */
    struct span oid;  /* extnID contents */
    struct span crit; /* the critical BOOLEAN (whole element), empty when absent */
    struct span val;  /* extnValue contents */
};

/* A TBSCertificate cut into its fields (whole elements, in order) and its extensions. */
struct tbs {
    struct span f[TBS_FIELDS_MAX];
    size_t nf;
    size_t issuer; /* index of the issuer in f */
    struct ext ext[CAP_CT_EXTENSIONS_MAX];
    size_t next;
};

/* 1.3.6.1.4.1.11129.2.4.3 (precertificate poison), .2 (SCT list), .4 (Precertificate Signing
 * Certificate extended key usage); 2.5.29.35 (authority key identifier), 2.5.29.37 (extended
 * key usage). Contents octets only. */
static const uint8_t OID_POISON[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x03};
static const uint8_t OID_SCT_LIST[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x02};
static const uint8_t OID_PSC_EKU[] = {0x2b, 0x06, 0x01, 0x04, 0x01, 0xd6, 0x79, 0x02, 0x04, 0x04};
static const uint8_t OID_AKI[] = {0x55, 0x1d, 0x23};
static const uint8_t OID_EKU[] = {0x55, 0x1d, 0x25};

#define IS_OID(s, o) ((s).n == sizeof(o) && memcmp((s).p, (o), sizeof(o)) == 0)

static bool span_eq(struct span a, struct span b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Reads the DER element at the front of in: its tag, the whole element and its contents.
 * Definite lengths of up to 4 bytes, one-byte tags. 0, or -1 when it does not fit in. */
static int der_next(struct span *in, uint8_t *tag, struct span *tlv, struct span *val)
{
    if (in->n < 2)
        return -1;
    const uint8_t *p = in->p;
    if ((p[0] & 0x1f) == 0x1f)
        return -1;
    size_t hl = 2, len = p[1];
    if (len & 0x80) {
        size_t k = len & 0x7f;
        if (k == 0 || k > 4 || in->n < 2 + k)
            return -1;
        len = 0;
        for (size_t i = 0; i < k; i++)
            len = (len << 8) | p[2 + i];
        hl += k;
    }
    if (len > in->n - hl)
        return -1;
    *tag = p[0];
    tlv->p = p;
    tlv->n = hl + len;
    val->p = p + hl;
    val->n = len;
    in->p += hl + len;
    in->n -= hl + len;
    return 0;
}

/* Extensions ::= SEQUENCE OF Extension; Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER,
 * critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }. */
static int parse_exts(struct span v, struct tbs *t)
{
    uint8_t tag;
    struct span tlv, seq;
    if (der_next(&v, &tag, &tlv, &seq) < 0 || tag != 0x30 || v.n != 0)
        return -1;
    while (seq.n) {
        struct span c;
        if (der_next(&seq, &tag, &tlv, &c) < 0 || tag != 0x30 || t->next == CAP_CT_EXTENSIONS_MAX)
            return -1;
        struct ext *e = &t->ext[t->next++];
        memset(e, 0, sizeof *e);
        e->tlv = tlv;
        struct span el;
        if (der_next(&c, &tag, &el, &e->oid) < 0 || tag != 0x06)
            return -1;
        struct span x;
        if (der_next(&c, &tag, &el, &x) < 0)
            return -1;
        if (tag == 0x01) {
            e->crit = el;
            if (der_next(&c, &tag, &el, &x) < 0)
                return -1;
        }
        if (tag != 0x04 || c.n != 0)
            return -1;
        e->val = x;
    }
    return 0;
}

/* Cuts the TBSCertificate element in into t. 0 or -1. */
static int parse_tbs(struct span in, struct tbs *t)
{
    uint8_t tag;
    struct span tlv, c;
    t->nf = 0;
    t->next = 0;
    if (der_next(&in, &tag, &tlv, &c) < 0 || tag != 0x30 || in.n != 0)
        return -1;
    bool exts = false;
    while (c.n) {
        struct span v;
        if (exts || der_next(&c, &tag, &tlv, &v) < 0)
            return -1; /* nothing follows the extensions */
        if (tag == 0xa3) {
            if (parse_exts(v, t) < 0)
                return -1;
            exts = true;
        } else {
            if (t->nf == TBS_FIELDS_MAX)
                return -1;
            t->f[t->nf++] = tlv;
        }
    }
    /* [0] version, serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo. */
    t->issuer = t->nf > 0 && t->f[0].p[0] == 0xa0 ? 3 : 2;
    return t->nf >= t->issuer + 4 ? 0 : -1;
}

/* Cuts the TBSCertificate of the Certificate in into t. 0 or -1. */
static int parse_cert(struct span in, struct tbs *t)
{
    uint8_t tag;
    struct span tlv, c, tbs, v;
    if (der_next(&in, &tag, &tlv, &c) < 0 || tag != 0x30 || in.n != 0 ||
        der_next(&c, &tag, &tbs, &v) < 0 || tag != 0x30)
        return -1;
    return parse_tbs(tbs, t);
}

static const struct ext *find_ext(const struct tbs *t, const uint8_t *oid, size_t oid_len)
{
    for (size_t i = 0; i < t->next; i++)
        if (t->ext[i].oid.n == oid_len && memcmp(t->ext[i].oid.p, oid, oid_len) == 0)
            return &t->ext[i];
    return NULL;
}

/* True when the certificate cut into t carries the Precertificate Signing Certificate extended
 * key usage. */
static bool is_psc(const struct tbs *t)
{
    const struct ext *e = find_ext(t, OID_EKU, sizeof OID_EKU);
    if (!e)
        return false;
    struct span in = e->val, tlv, seq;
    uint8_t tag;
    if (der_next(&in, &tag, &tlv, &seq) < 0 || tag != 0x30)
        return false;
    while (seq.n) {
        struct span oid;
        if (der_next(&seq, &tag, &tlv, &oid) < 0 || tag != 0x06)
            return false;
        if (IS_OID(oid, OID_PSC_EKU))
            return true;
    }
    return false;
}

/* What a Precertificate Signing Certificate changes in the leaf: its issuer, and the value of
 * the authority key identifier extension (NULL val: the PSC has none). */
struct psc {
    struct span issuer;
    const struct span *aki;
};

enum { DIFF_ISSUER = 1, DIFF_AKI = 2, DIFF_OTHER = 4 };

static const char *field_name(const struct tbs *t, size_t i)
{
    static const char *const after_version[] = {
        "serial number",      "signature algorithm", "issuer",           "validity", "subject",
        "subject public key", "unique identifier",   "unique identifier"};
    if (t->issuer == 3 && i == 0)
        return "version";
    size_t k = i - (t->issuer - 2);
    return k < sizeof after_version / sizeof *after_version ? after_version[k] : "fields";
}

/* Notes a difference: *what names the first one, preferring those a PSC cannot explain. */
static void differ(unsigned *d, unsigned bit, const char **what, const char *name)
{
    if (!*what || (bit == DIFF_OTHER && !(*d & DIFF_OTHER)))
        *what = name;
    *d |= bit;
}

/* Compares the precertificate's TBS p (poison and SCT list left out) with the leaf's l, the
 * PSC's changes applied when psc is not NULL. Returns the DIFF_* bits; *what names the first
 * difference other than issuer and AKI, else the first. */
static unsigned compare(const struct tbs *p, const struct tbs *l, const struct psc *psc,
                        const char **what)
{
    unsigned d = 0;
    *what = NULL;
    if (p->nf != l->nf || p->issuer != l->issuer) {
        *what = "number of fields";
        return DIFF_OTHER;
    }
    for (size_t i = 0; i < p->nf; i++) {
        bool issuer = i == p->issuer;
        struct span want = issuer && psc ? psc->issuer : p->f[i];
        if (!span_eq(want, l->f[i]))
            differ(&d, issuer ? DIFF_ISSUER : DIFF_OTHER, what, field_name(p, i));
    }
    size_t j = 0;
    for (size_t i = 0; i < p->next; i++) {
        const struct ext *pe = &p->ext[i];
        if (IS_OID(pe->oid, OID_POISON) || IS_OID(pe->oid, OID_SCT_LIST))
            continue;
        if (j == l->next) {
            differ(&d, DIFF_OTHER, what, "extensions");
            return d;
        }
        const struct ext *le = &l->ext[j++];
        if (IS_OID(pe->oid, OID_AKI)) {
            bool same = psc ? psc->aki && IS_OID(le->oid, OID_AKI) && span_eq(pe->crit, le->crit) &&
                                  span_eq(*psc->aki, le->val)
                            : span_eq(pe->tlv, le->tlv);
            if (!same)
                differ(&d, DIFF_AKI, what, "authority key identifier");
        } else if (!span_eq(pe->tlv, le->tlv)) {
            differ(&d, DIFF_OTHER, what, "extensions");
        }
    }
    if (j != l->next)
        differ(&d, DIFF_OTHER, what, "extensions");
    return d;
}

/* RFC 6962 section 3.2: the leaf's tbs_certificate is the precertificate's TBSCertificate
 * without the poison extension (RFC 9162 also removes an SCT list), and when a Precertificate
 * Signing Certificate issued the precertificate, with the issuer changed to the PSC's issuer
 * (the CA that issues the final certificate) and the authority key identifier extension, when
 * present, changed to the PSC's own (which identifies that same CA's key). The comparison does
 * not re-encode anything: both TBSCertificates are cut into their DER elements and compared
 * element by element, so the PSC's issuer and AKI value stand in for the precertificate's, the
 * AKI keeping its place and criticality, exactly as a log builds the leaf. */
int cap_ct_precert_check(const uint8_t *precert, size_t precert_len, const uint8_t *first,
                         size_t first_len, const uint8_t *tbs, size_t tbs_len, struct cap_err *err)
{
    struct tbs p, l;
    if (parse_cert((struct span){precert, precert_len}, &p) < 0) {
        cap_err_set(err, CAP_E_INVALID, "precertificate: not a DER certificate (%zu bytes)",
                    precert_len);
        return -1;
    }
    if (!find_ext(&p, OID_POISON, sizeof OID_POISON)) {
        cap_err_set(err, CAP_E_INVALID,
                    "precertificate: no poison extension (not a precertificate)");
        return -1;
    }
    if (parse_tbs((struct span){tbs, tbs_len}, &l) < 0) {
        cap_err_set(err, CAP_E_INVALID, "leaf: tbs_certificate is not a DER TBSCertificate");
        return -1;
    }
    const char *what;
    unsigned d = compare(&p, &l, NULL, &what);
    if (d == 0)
        return 0;
    if (!(d & DIFF_OTHER)) {
        if (!first)
            return 1;
        struct tbs s;
        if (parse_cert((struct span){first, first_len}, &s) == 0 && is_psc(&s)) {
            const struct ext *aki = find_ext(&s, OID_AKI, sizeof OID_AKI);
            struct psc psc = {s.f[s.issuer], aki ? &aki->val : NULL};
            d = compare(&p, &l, &psc, &what);
            if (d == 0)
                return 0;
        }
    }
    cap_err_set(err, CAP_E_INVALID,
                "precertificate does not match the leaf's TBSCertificate: different %s", what);
    return -1;
}
