/* Certificate facts from DER certificates and bare CT TBSCertificates, with OpenSSL 3.0, for
 * the inventory, the PQC classes and the findings. Input comes from TLS peers and CT logs:
 * nothing here may crash on it, and every string produced is valid UTF-8 without controls. */
#include "common/x509.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/pqc.h"

/* Longest DNS name we compare (RFC 1035 limit, plus a trailing dot). */
#define NAME_MAX_LEN 254

/* A growable NULL-terminated string array. */
struct strv {
    char **v;
    size_t n;
    size_t cap;
};

static int strv_push(struct strv *s, char *str)
{
    if (!str) {
        return -1;
    }
    if (s->n + 1 >= s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        char **nv = realloc(s->v, ncap * sizeof(*nv));
        if (!nv) {
            free(str);
            return -1;
        }
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
    return 0;
}

/* Makes sure the array exists (an empty list is a one-element array holding NULL). */
static int strv_finish(struct strv *s)
{
    if (s->v) {
        return 0;
    }
    s->v = calloc(1, sizeof(*s->v));
    return s->v ? 0 : -1;
}

static void strv_free(char **v)
{
    if (!v) {
        return;
    }
    for (char **p = v; *p; p++) {
        free(*p);
    }
    free(v);
}

void cap_x509_hex(const uint8_t *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static void sha256_hex(const uint8_t *data, size_t len, char out[CAP_X509_HEX256_LEN])
{
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    cap_x509_hex(md, sizeof(md), out);
}

/* Length of the valid UTF-8 sequence at p (n bytes left), or 0 when it is not one (overlong
 * forms, surrogates and code points above U+10FFFF are refused). */
static size_t utf8_seq_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t need;
    unsigned int cp;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < need) {
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return need;
}

/* Copies len bytes into a new string that is valid UTF-8 with no control characters: those
 * and invalid bytes become \xNN; with esc_backslash a backslash becomes \\ so the escapes stay
 * unambiguous. Returns NULL on allocation failure only. */
static char *clean_utf8(const unsigned char *data, size_t len, bool esc_backslash)
{
    if (len > SIZE_MAX / 4 - 1) {
        return NULL;
    }
    char *out = malloc(len * 4 + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = data[i];
        size_t sl = utf8_seq_len(data + i, len - i);
        if (sl == 1 && c >= 0x20 && c != 0x7f) {
            if (c == '\\' && esc_backslash) {
                out[o++] = '\\';
            }
            out[o++] = (char)c;
            i++;
        } else if (sl > 1) {
            memcpy(out + o, data + i, sl);
            o += sl;
            i += sl;
        } else {
            static const char digits[] = "0123456789abcdef";
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = digits[c >> 4];
            out[o++] = digits[c & 0x0f];
            i++;
        }
    }
    out[o] = '\0';
    return out;
}

char *cap_x509_clean_text(const void *data, size_t len)
{
    return clean_utf8(data ? data : "", data ? len : 0, true);
}

static char *asn1_string_clean(const ASN1_STRING *s)
{
    const unsigned char *d = ASN1_STRING_get0_data(s);
    int n = ASN1_STRING_length(s);
    if (!d || n <= 0) {
        return strdup("");
    }
    return clean_utf8(d, (size_t)n, true);
}

/* Dotted text of an OID in a new string ("" when it cannot be written). */
static char *obj_dotted(const ASN1_OBJECT *obj)
{
    if (!obj) {
        return strdup("");
    }
    char small[128];
    int n = OBJ_obj2txt(small, sizeof(small), obj, 1);
    if (n <= 0) {
        return strdup("");
    }
    if ((size_t)n < sizeof(small)) {
        return strdup(small);
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        return NULL;
    }
    if (OBJ_obj2txt(big, n + 1, obj, 1) != n) {
        free(big);
        return strdup("");
    }
    return big;
}

/* RFC 4514 one-line form of a name: UTF-8 kept, specials and controls escaped. Falls back to
 * hex dumps of the values when a string does not convert. */
static char *name_oneline(const X509_NAME *name)
{
    static const unsigned long flag_sets[] = {
        XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB,
        XN_FLAG_RFC2253 | ASN1_STRFLGS_DUMP_ALL,
    };
    if (!name) {
        return strdup("");
    }
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        BIO *b = BIO_new(BIO_s_mem());
        if (!b) {
            return NULL;
        }
        int rc = X509_NAME_print_ex(b, name, 0, flag_sets[i]);
        if (rc >= 0) {
            char *data = NULL;
            long n = BIO_get_mem_data(b, &data);
            char *out =
                clean_utf8((const unsigned char *)(data ? data : ""), n > 0 ? (size_t)n : 0, false);
            BIO_free(b);
            return out;
        }
        BIO_free(b);
        ERR_clear_error();
    }
    return strdup("");
}

/* The most specific (last) commonName, as clean UTF-8, or "". */
static char *name_cn(const X509_NAME *name)
{
    int idx = -1, last = -1;
    while ((idx = X509_NAME_get_index_by_NID(name, NID_commonName, idx)) >= 0) {
        last = idx;
    }
    if (last < 0) {
        return strdup("");
    }
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, last));
    if (!s) {
        return strdup("");
    }
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0) {
        ERR_clear_error();
        return asn1_string_clean(s);
    }
    char *out = clean_utf8(utf8, (size_t)n, true);
    OPENSSL_free(utf8);
    return out;
}

static char *serial_hex(const ASN1_INTEGER *serial)
{
    if (!serial) {
        return strdup("");
    }
    BIGNUM *bn = ASN1_INTEGER_to_BN(serial, NULL);
    if (!bn) {
        ERR_clear_error();
        return strdup("");
    }
    char *hex = BN_bn2hex(bn);
    BN_free(bn);
    if (!hex) {
        return NULL;
    }
    char *out = strdup(hex);
    OPENSSL_free(hex);
    if (out) {
        for (char *p = out; *p; p++) {
            if (*p >= 'A' && *p <= 'F') {
                *p = (char)(*p - 'A' + 'a');
            }
        }
    }
    return out;
}

static int time_unix(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm)) {
        ERR_clear_error();
        return -1;
    }
    time_t v = timegm(&tm);
    if (v == (time_t)-1 && !(tm.tm_year == 69 && tm.tm_mon == 11 && tm.tm_mday == 31)) {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* Adds the SANs of x to f. Allocation failure gives -1; odd entries are skipped or escaped. */
static int read_sans(X509 *x, struct cap_cert_facts *f)
{
    struct strv dns = {0}, ip = {0}, email = {0}, uri = {0};
    int rc = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    ERR_clear_error();
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && rc == 0; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        switch (g->type) {
        case GEN_DNS:
            rc = strv_push(&dns, asn1_string_clean(g->d.dNSName));
            break;
        case GEN_EMAIL:
            rc = strv_push(&email, asn1_string_clean(g->d.rfc822Name));
            break;
        case GEN_URI:
            rc = strv_push(&uri, asn1_string_clean(g->d.uniformResourceIdentifier));
            break;
        case GEN_IPADD: {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
            int n = ASN1_STRING_length(g->d.iPAddress);
            char buf[INET6_ADDRSTRLEN];
            if (d && (n == 4 || n == 16) &&
                inet_ntop(n == 4 ? AF_INET : AF_INET6, d, buf, sizeof(buf))) {
                rc = strv_push(&ip, strdup(buf));
            } else if (d && n > 0 && n <= 64) {
                /* Not an address (a name-constraint style range, or junk): keep it as hex. */
                char hex[2 * 64 + 1];
                cap_x509_hex(d, (size_t)n, hex);
                rc = strv_push(&ip, strdup(hex));
            }
            break;
        }
        default:
            break;
        }
    }
    GENERAL_NAMES_free(gens);
    if (rc == 0 &&
        (strv_finish(&dns) || strv_finish(&ip) || strv_finish(&email) || strv_finish(&uri))) {
        rc = -1;
    }
    if (rc != 0) {
        strv_free(dns.v);
        strv_free(ip.v);
        strv_free(email.v);
        strv_free(uri.v);
        return -1;
    }
    f->dns_sans = dns.v;
    f->dns_sans_n = dns.n;
    f->ip_sans = ip.v;
    f->ip_sans_n = ip.n;
    f->email_sans = email.v;
    f->email_sans_n = email.n;
    f->uri_sans = uri.v;
    f->uri_sans_n = uri.n;
    return 0;
}

/* OCSP responders (AIA) and CRL distribution point URIs. */
static int read_revocation_urls(X509 *x, struct cap_cert_facts *f)
{
    struct strv ocsp = {0}, crl = {0};
    int rc = 0;
    AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(x, NID_info_access, NULL, NULL);
    ERR_clear_error();
    for (int i = 0; aia && i < sk_ACCESS_DESCRIPTION_num(aia) && rc == 0; i++) {
        const ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);
        if (OBJ_obj2nid(ad->method) == NID_ad_OCSP && ad->location &&
            ad->location->type == GEN_URI) {
            rc = strv_push(&ocsp, asn1_string_clean(ad->location->d.uniformResourceIdentifier));
        }
    }
    AUTHORITY_INFO_ACCESS_free(aia);
    STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(x, NID_crl_distribution_points, NULL, NULL);
    ERR_clear_error();
    for (int i = 0; dps && i < sk_DIST_POINT_num(dps) && rc == 0; i++) {
        const DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
        if (!dp->distpoint || dp->distpoint->type != 0) {
            continue;
        }
        GENERAL_NAMES *names = dp->distpoint->name.fullname;
        for (int j = 0; names && j < sk_GENERAL_NAME_num(names) && rc == 0; j++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, j);
            if (g->type == GEN_URI) {
                rc = strv_push(&crl, asn1_string_clean(g->d.uniformResourceIdentifier));
            }
        }
    }
    sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
    if (rc == 0 && (strv_finish(&ocsp) || strv_finish(&crl))) {
        rc = -1;
    }
    if (rc != 0) {
        strv_free(ocsp.v);
        strv_free(crl.v);
        return -1;
    }
    f->ocsp_urls = ocsp.v;
    f->ocsp_urls_n = ocsp.n;
    f->crl_urls = crl.v;
    f->crl_urls_n = crl.n;
    return 0;
}

/* Curve of an id-ecPublicKey SPKI from its algorithm parameters (no key load needed). */
static char *ec_curve_name(const X509_ALGOR *alg)
{
    const ASN1_OBJECT *aobj = NULL;
    int ptype = 0;
    const void *pval = NULL;
    X509_ALGOR_get0(&aobj, &ptype, &pval, alg);
    if (ptype == V_ASN1_SEQUENCE) {
        return strdup("explicit");
    }
    if (ptype != V_ASN1_OBJECT || !pval) {
        return strdup("");
    }
    const ASN1_OBJECT *curve = pval;
    int nid = OBJ_obj2nid(curve);
    if (nid != NID_undef) {
        const char *nist = EC_curve_nid2nist(nid);
        if (nist) {
            return strdup(nist);
        }
        const char *sn = OBJ_nid2sn(nid);
        if (sn) {
            return strdup(sn);
        }
    }
    return obj_dotted(curve);
}

static const char *key_alg_name(int nid)
{
    switch (nid) {
    case NID_rsaEncryption:
        return "RSA";
    case NID_rsassaPss:
        return "RSA-PSS";
    case NID_dsa:
        return "DSA";
    case NID_X9_62_id_ecPublicKey:
        return "EC";
    case NID_ED25519:
        return "Ed25519";
    case NID_ED448:
        return "Ed448";
    case NID_X25519:
        return "X25519";
    case NID_X448:
        return "X448";
    default:
        return NULL;
    }
}

static int read_key(X509 *x, struct cap_cert_facts *f)
{
    X509_PUBKEY *pub = X509_get_X509_PUBKEY(x);
    ASN1_OBJECT *kobj = NULL;
    X509_ALGOR *palg = NULL;
    if (!pub || !X509_PUBKEY_get0_param(&kobj, NULL, NULL, &palg, pub) || !kobj) {
        ERR_clear_error();
        f->key_algorithm = strdup("unknown");
        f->key_oid = strdup("");
        f->key_curve = strdup("");
        f->key_malformed = true;
        return f->key_algorithm && f->key_oid && f->key_curve ? 0 : -1;
    }
    f->key_oid = obj_dotted(kobj);
    if (!f->key_oid) {
        return -1;
    }
    int nid = OBJ_obj2nid(kobj);
    const char *name = key_alg_name(nid);
    if (!name) {
        name = cap_pqc_oid_name(f->key_oid);
    }
    if (name) {
        f->key_algorithm = strdup(name);
    } else {
        f->key_algorithm = strdup(*f->key_oid ? f->key_oid : "unknown");
    }
    f->key_curve = nid == NID_X9_62_id_ecPublicKey && palg ? ec_curve_name(palg) : strdup("");
    if (!f->key_algorithm || !f->key_curve) {
        return -1;
    }

    /* The key itself: OpenSSL loads what it knows; a known algorithm that does not load is a
     * malformed key (bucket unknown), an unknown one is simply not measured. */
    EVP_PKEY *pkey = X509_get0_pubkey(x);
    ERR_clear_error();
    if (key_alg_name(nid)) {
        if (!pkey) {
            f->key_malformed = true;
        } else {
            int bits = EVP_PKEY_get_bits(pkey);
            f->key_bits = bits > 0 ? bits : 0;
        }
    }
    return 0;
}

static int read_signature(X509 *x, struct cap_cert_facts *f)
{
    const X509_ALGOR *alg = X509_get0_tbs_sigalg(x);
    const ASN1_OBJECT *sobj = NULL;
    int ptype = 0;
    const void *pval = NULL;
    if (alg) {
        X509_ALGOR_get0(&sobj, &ptype, &pval, alg);
    }
    f->signature_oid = obj_dotted(sobj);
    if (!f->signature_oid) {
        return -1;
    }
    int nid = sobj ? OBJ_obj2nid(sobj) : NID_undef;
    const char *name = NULL;
    if (nid != NID_undef) {
        name = OBJ_nid2ln(nid);
    }
    if (!name) {
        name = cap_pqc_oid_name(f->signature_oid);
    }
    if (!name) {
        name = *f->signature_oid ? f->signature_oid : "unknown";
    }
    f->signature_algorithm = strdup(name);

    const char *hash = "";
    int md_nid = NID_undef, pk_nid = NID_undef;
    if (nid == NID_rsassaPss) {
        /* The hash is in the parameters; absent means SHA-1 (RFC 4055). */
        hash = "sha1";
        if (ptype == V_ASN1_SEQUENCE && pval) {
            ASN1_TYPE t = {.type = V_ASN1_SEQUENCE, .value.sequence = (ASN1_STRING *)pval};
            RSA_PSS_PARAMS *pss = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_PSS_PARAMS), &t);
            ERR_clear_error();
            if (!pss) {
                hash = "";
            } else {
                if (pss->hashAlgorithm) {
                    const char *ln = OBJ_nid2ln(OBJ_obj2nid(pss->hashAlgorithm->algorithm));
                    hash = ln ? ln : "";
                }
                f->signature_hash = strdup(hash);
                RSA_PSS_PARAMS_free(pss);
                return f->signature_algorithm && f->signature_hash ? 0 : -1;
            }
        }
    } else if (nid != NID_undef && OBJ_find_sigid_algs(nid, &md_nid, &pk_nid) &&
               md_nid != NID_undef) {
        const char *ln = OBJ_nid2ln(md_nid);
        hash = ln ? ln : "";
    }
    f->signature_hash = strdup(hash);
    return f->signature_algorithm && f->signature_hash ? 0 : -1;
}

/* A bounds-checked DER reader over one buffer. */
struct der_cur {
    const uint8_t *p;
    size_t n;
};

/* Reads one TLV with a one-byte tag and a definite length. Fills tag, the contents (val, vlen)
 * and the whole element (hdr_start = c->p before the call, total length in *tlen). */
static int der_next(struct der_cur *c, uint8_t *tag, const uint8_t **val, size_t *vlen,
                    size_t *tlen)
{
    if (c->n < 2 || (c->p[0] & 0x1f) == 0x1f) {
        return -1;
    }
    size_t hdr = 2, len = c->p[1];
    if (len & 0x80) {
        size_t nb = len & 0x7f;
        if (nb == 0 || nb > 4 || c->n < 2 + nb) {
            return -1;
        }
        len = 0;
        for (size_t i = 0; i < nb; i++) {
            len = (len << 8) | c->p[2 + i];
        }
        hdr += nb;
    }
    if (len > c->n - hdr) {
        return -1;
    }
    *tag = c->p[0];
    *val = c->p + hdr;
    *vlen = len;
    *tlen = hdr + len;
    c->p += hdr + len;
    c->n -= hdr + len;
    return 0;
}

/* Writes a DER length at out (at least 1 + sizeof(size_t) bytes); returns its size. */
static size_t der_put_len(uint8_t *out, size_t len)
{
    if (len < 0x80) {
        out[0] = (uint8_t)len;
        return 1;
    }
    size_t nb = 0;
    while (nb < sizeof(size_t) && (len >> (8 * nb)) != 0) {
        nb++;
    }
    out[0] = (uint8_t)(0x80 | nb);
    for (size_t i = 0; i < nb && i < sizeof(size_t); i++) {
        out[1 + i] = (uint8_t)(len >> (8 * (nb - 1 - i)));
    }
    return 1 + nb;
}

/* DER of the OIDs removed before hashing a TBS: CT poison and SCT list. */
static const uint8_t oid_ct_poison[] = {0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                        0x01, 0xd6, 0x79, 0x02, 0x04, 0x03};
static const uint8_t oid_ct_scts[] = {0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04,
                                      0x01, 0xd6, 0x79, 0x02, 0x04, 0x02};

static bool ext_is_ct(const uint8_t *ext, size_t len)
{
    struct der_cur c = {ext, len};
    uint8_t tag;
    const uint8_t *val;
    size_t vlen, tlen;
    if (der_next(&c, &tag, &val, &vlen, &tlen) || tag != 0x30) {
        return false;
    }
    struct der_cur in = {val, vlen};
    const uint8_t *oid = in.p;
    if (der_next(&in, &tag, &val, &vlen, &tlen) || tag != 0x06) {
        return false;
    }
    return (tlen == sizeof(oid_ct_poison) && memcmp(oid, oid_ct_poison, tlen) == 0) ||
           (tlen == sizeof(oid_ct_scts) && memcmp(oid, oid_ct_scts, tlen) == 0);
}

/* SHA-256 of the TBSCertificate tbs (one DER element) with the CT poison and SCT list
 * extensions removed (and the extensions field left out when nothing remains), done on the
 * bytes so every other field keeps its encoding. -1 when tbs does not have the TBS shape. */
static int tbs_hash(const uint8_t *tbs, size_t len, char out[CAP_X509_HEX256_LEN])
{
    struct der_cur c = {tbs, len};
    uint8_t tag;
    const uint8_t *val;
    size_t vlen, tlen;
    if (der_next(&c, &tag, &val, &vlen, &tlen) || tag != 0x30 || c.n != 0) {
        return -1;
    }
    /* The rebuilt TBS is never longer than the original. */
    uint8_t *buf = malloc(len + 16);
    uint8_t *body = malloc(len);
    if (!buf || !body) {
        free(buf);
        free(body);
        return -1;
    }
    size_t bn = 0;
    int rc = 0;
    struct der_cur fields = {val, vlen};
    while (fields.n > 0 && rc == 0) {
        const uint8_t *start = fields.p;
        if (der_next(&fields, &tag, &val, &vlen, &tlen)) {
            rc = -1;
            break;
        }
        if (tag != 0xa3) {
            memcpy(body + bn, start, tlen);
            bn += tlen;
            continue;
        }
        struct der_cur wrap = {val, vlen};
        if (der_next(&wrap, &tag, &val, &vlen, &tlen) || tag != 0x30 || wrap.n != 0) {
            rc = -1;
            break;
        }
        struct der_cur exts = {val, vlen};
        size_t kept = 0;
        uint8_t *kept_buf = malloc(vlen ? vlen : 1);
        if (!kept_buf) {
            rc = -1;
            break;
        }
        while (exts.n > 0) {
            const uint8_t *es = exts.p;
            if (der_next(&exts, &tag, &val, &vlen, &tlen)) {
                rc = -1;
                break;
            }
            if (!ext_is_ct(es, tlen)) {
                memcpy(kept_buf + kept, es, tlen);
                kept += tlen;
            }
        }
        if (rc == 0 && kept > 0) {
            uint8_t l1[1 + sizeof(size_t)], l2[1 + sizeof(size_t)];
            size_t n2 = der_put_len(l2, kept);
            size_t n1 = der_put_len(l1, 1 + n2 + kept);
            body[bn++] = 0xa3;
            memcpy(body + bn, l1, n1);
            bn += n1;
            body[bn++] = 0x30;
            memcpy(body + bn, l2, n2);
            bn += n2;
            memcpy(body + bn, kept_buf, kept);
            bn += kept;
        }
        free(kept_buf);
    }
    if (rc == 0) {
        size_t o = 0;
        buf[o++] = 0x30;
        o += der_put_len(buf + o, bn);
        memcpy(buf + o, body, bn);
        o += bn;
        sha256_hex(buf, o, out);
    }
    free(buf);
    free(body);
    return rc;
}

/* The TBSCertificate element of a Certificate's DER. */
static int cert_tbs(const uint8_t *der, size_t len, const uint8_t **tbs, size_t *tbs_len)
{
    struct der_cur c = {der, len};
    uint8_t tag;
    const uint8_t *val;
    size_t vlen, tlen;
    if (der_next(&c, &tag, &val, &vlen, &tlen) || tag != 0x30) {
        return -1;
    }
    struct der_cur in = {val, vlen};
    const uint8_t *start = in.p;
    if (der_next(&in, &tag, &val, &vlen, &tlen) || tag != 0x30) {
        return -1;
    }
    *tbs = start;
    *tbs_len = tlen;
    return 0;
}

void cap_cert_facts_cleanup(struct cap_cert_facts *f)
{
    if (!f) {
        return;
    }
    free(f->subject);
    free(f->issuer);
    free(f->cn);
    free(f->serial);
    strv_free(f->dns_sans);
    strv_free(f->ip_sans);
    strv_free(f->email_sans);
    strv_free(f->uri_sans);
    strv_free(f->ocsp_urls);
    strv_free(f->crl_urls);
    free(f->key_algorithm);
    free(f->key_oid);
    free(f->key_curve);
    free(f->signature_algorithm);
    free(f->signature_oid);
    free(f->signature_hash);
    memset(f, 0, sizeof(*f));
}

/* Fills f from a parsed certificate whose TBS bytes are tbs. */
static int facts_fill(X509 *x, const uint8_t *tbs, size_t tbs_len, bool from_tbs,
                      struct cap_cert_facts *f, struct cap_err *err)
{
    f->from_tbs = from_tbs;
    if (tbs_hash(tbs, tbs_len, f->tbs_sha256) != 0) {
        /* OpenSSL took it, so it is well-formed DER; a shape we cannot rebuild (e.g. a
         * multi-byte tag) is hashed as it stands. */
        sha256_hex(tbs, tbs_len, f->tbs_sha256);
    }
    const X509_NAME *subj = X509_get_subject_name(x);
    const X509_NAME *iss = X509_get_issuer_name(x);
    f->subject = name_oneline(subj);
    f->issuer = name_oneline(iss);
    f->cn = subj ? name_cn(subj) : strdup("");
    f->serial = serial_hex(X509_get0_serialNumber(x));
    if (!f->subject || !f->issuer || !f->cn || !f->serial) {
        goto nomem;
    }
    if (time_unix(X509_get0_notBefore(x), &f->not_before) == 0 &&
        time_unix(X509_get0_notAfter(x), &f->not_after) == 0) {
        f->has_validity = true;
    } else {
        f->not_before = f->not_after = 0;
    }
    if (read_sans(x, f) || read_revocation_urls(x, f) || read_key(x, f) || read_signature(x, f)) {
        goto nomem;
    }

    unsigned char *spki = NULL;
    int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &spki);
    if (spki_len > 0) {
        sha256_hex(spki, (size_t)spki_len, f->spki_sha256);
        OPENSSL_free(spki);
    }
    ERR_clear_error();

    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    f->is_ca = bc && bc->ca;
    BASIC_CONSTRAINTS_free(bc);
    f->is_precert = X509_get_ext_by_NID(x, NID_ct_precert_poison, -1) >= 0;
    ERR_clear_error();

    if (!from_tbs && subj && iss && X509_NAME_cmp(subj, iss) == 0) {
        EVP_PKEY *pkey = X509_get0_pubkey(x);
        f->self_signed = pkey && X509_verify(x, pkey) == 1;
    }
    ERR_clear_error();
    return 0;

nomem:
    ERR_clear_error();
    cap_cert_facts_cleanup(f);
    cap_err_set(err, CAP_E_NOMEM, "reading certificate facts: out of memory");
    return -1;
}

static const char *openssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    if (!e) {
        snprintf(buf, n, "not a DER certificate");
    } else {
        ERR_error_string_n(e, buf, n);
    }
    ERR_clear_error();
    return buf;
}

/* The facts of der, with x its parse (ours, or the caller's when given) and fp its SHA-256
 * (computed when NULL). */
static int facts_of(const uint8_t *der, size_t len, X509 *given, const uint8_t *fp,
                    struct cap_cert_facts *out, struct cap_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!der || len == 0) {
        cap_err_set(err, CAP_E_INVALID, "certificate: empty input");
        return -1;
    }
    if (len > CAP_X509_DER_MAX) {
        cap_err_set(err, CAP_E_LIMIT, "certificate: %zu bytes, more than the limit of %d", len,
                    CAP_X509_DER_MAX);
        return -1;
    }
    X509 *x = given;
    if (!x) {
        ERR_clear_error();
        const unsigned char *p = der;
        x = d2i_X509(NULL, &p, (long)len);
        if (!x) {
            char reason[160];
            cap_err_set(err, CAP_E_INVALID, "certificate of %zu bytes does not parse: %s", len,
                        openssl_reason(reason, sizeof(reason)));
            return -1;
        }
        if (p != der + len) {
            X509_free(x);
            ERR_clear_error();
            cap_err_set(err, CAP_E_INVALID, "certificate: %zu trailing bytes after the DER",
                        (size_t)(der + len - p));
            return -1;
        }
    }
    const uint8_t *tbs;
    size_t tbs_len;
    if (cert_tbs(der, len, &tbs, &tbs_len) != 0) {
        if (!given)
            X509_free(x);
        cap_err_set(err, CAP_E_INVALID, "certificate: cannot find the TBSCertificate");
        return -1;
    }
    if (fp)
        cap_x509_hex(fp, SHA256_DIGEST_LENGTH, out->fingerprint_sha256);
    else
        sha256_hex(der, len, out->fingerprint_sha256);
    int rc = facts_fill(x, tbs, tbs_len, false, out, err);
    if (!given)
        X509_free(x);
    return rc;
}

int cap_x509_facts_from_der(const uint8_t *der, size_t len, struct cap_cert_facts *out,
                            struct cap_err *err)
{
    return facts_of(der, len, NULL, NULL, out, err);
}

int cap_x509_facts_from_x509(X509 *x, const uint8_t *der, size_t len,
                             const uint8_t sha256[SHA256_DIGEST_LENGTH],
                             struct cap_cert_facts *out, struct cap_err *err)
{
    return facts_of(der, len, x, sha256, out, err);
}

/* sha256WithRSAEncryption with NULL parameters and an empty BIT STRING: the dummy signature
 * that turns a bare TBSCertificate into something d2i_X509 accepts. */
static const uint8_t dummy_sig[] = {0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                                    0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00, 0x03, 0x01, 0x00};

int cap_x509_facts_from_tbs(const uint8_t *tbs, size_t len, struct cap_cert_facts *out,
                            struct cap_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!tbs || len == 0) {
        cap_err_set(err, CAP_E_INVALID, "tbs certificate: empty input");
        return -1;
    }
    if (len > CAP_X509_DER_MAX) {
        cap_err_set(err, CAP_E_LIMIT, "tbs certificate: %zu bytes, more than the limit of %d", len,
                    CAP_X509_DER_MAX);
        return -1;
    }
    struct der_cur c = {tbs, len};
    uint8_t tag;
    const uint8_t *val;
    size_t vlen, tlen;
    if (der_next(&c, &tag, &val, &vlen, &tlen) || tag != 0x30) {
        cap_err_set(err, CAP_E_INVALID, "tbs certificate of %zu bytes: not a DER SEQUENCE", len);
        return -1;
    }
    if (c.n != 0) {
        cap_err_set(err, CAP_E_INVALID, "tbs certificate: %zu trailing bytes after the DER", c.n);
        return -1;
    }
    size_t inner = len + sizeof(dummy_sig);
    uint8_t *wrap = malloc(inner + 6);
    if (!wrap) {
        cap_err_set(err, CAP_E_NOMEM, "tbs certificate: out of memory");
        return -1;
    }
    size_t o = 0;
    wrap[o++] = 0x30;
    o += der_put_len(wrap + o, inner);
    memcpy(wrap + o, tbs, len);
    o += len;
    memcpy(wrap + o, dummy_sig, sizeof(dummy_sig));
    o += sizeof(dummy_sig);

    ERR_clear_error();
    const unsigned char *p = wrap;
    X509 *x = d2i_X509(NULL, &p, (long)o);
    if (!x || p != wrap + o) {
        char reason[160];
        cap_err_set(err, CAP_E_INVALID, "tbs certificate of %zu bytes does not parse: %s", len,
                    openssl_reason(reason, sizeof(reason)));
        X509_free(x);
        free(wrap);
        return -1;
    }
    int rc = facts_fill(x, tbs, len, true, out, err);
    X509_free(x);
    free(wrap);
    return rc;
}

/* Copies s into out (n bytes) without one trailing dot. -1 when empty or too long. */
static int copy_name(const char *s, char *out, size_t n)
{
    size_t len = strlen(s);
    if (len > 0 && s[len - 1] == '.') {
        len--;
    }
    if (len == 0 || len >= n) {
        return -1;
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return 0;
}

static bool is_ip_literal(const char *s, uint8_t addr[16], int *family)
{
    if (inet_pton(AF_INET, s, addr) == 1) {
        *family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, addr) == 1) {
        *family = AF_INET6;
        return true;
    }
    return false;
}

bool cap_x509_name_matches(const char *pattern_from_cert, const char *hostname)
{
    char pat[NAME_MAX_LEN + 1], host[NAME_MAX_LEN + 1];
    if (!pattern_from_cert || !hostname || copy_name(pattern_from_cert, pat, sizeof(pat)) ||
        copy_name(hostname, host, sizeof(host))) {
        return false;
    }
    uint8_t addr[16];
    int fam;
    if (is_ip_literal(host, addr, &fam) || strchr(host, '*') || strstr(host, "..") ||
        host[0] == '.') {
        return false;
    }
    const char *star = strchr(pat, '*');
    if (!star) {
        return strcasecmp(pat, host) == 0;
    }
    /* Only "*." followed by at least two labels, and no other wildcard. */
    if (star != pat || pat[1] != '.' || strchr(pat + 1, '*')) {
        return false;
    }
    const char *rest = pat + 2;
    const char *dot = strchr(rest, '.');
    if (!dot || dot == rest || dot[1] == '\0') {
        return false;
    }
    const char *hdot = strchr(host, '.');
    if (!hdot || hdot == host) {
        return false;
    }
    return strcasecmp(hdot + 1, rest) == 0;
}

bool cap_x509_host_matches(const struct cap_cert_facts *f, const char *hostname)
{
    if (!f || !hostname || !*hostname) {
        return false;
    }
    uint8_t want[16];
    int fam;
    if (is_ip_literal(hostname, want, &fam)) {
        for (size_t i = 0; i < f->ip_sans_n; i++) {
            uint8_t got[16];
            int gfam;
            if (is_ip_literal(f->ip_sans[i], got, &gfam) && gfam == fam &&
                memcmp(got, want, fam == AF_INET ? 4 : 16) == 0) {
                return true;
            }
        }
        return false;
    }
    for (size_t i = 0; i < f->dns_sans_n; i++) {
        if (cap_x509_name_matches(f->dns_sans[i], hostname)) {
            return true;
        }
    }
    if (f->dns_sans_n == 0 && f->cn && *f->cn) {
        return cap_x509_name_matches(f->cn, hostname);
    }
    return false;
}

/* A SAN and its position, sorted case-insensitively, then exactly, then by position. */
struct san_ref {
    const char *s;
    size_t idx;
};

static int san_ref_cmp(const void *a, const void *b)
{
    const struct san_ref *x = a, *y = b;
    int c = strcasecmp(x->s, y->s);
    if (c == 0) {
        c = strcmp(x->s, y->s);
    }
    if (c == 0) {
        c = x->idx < y->idx ? -1 : x->idx > y->idx;
    }
    return c;
}

size_t cap_x509_san_case_duplicates(const struct cap_cert_facts *f, const char **out, size_t max)
{
    if (!f || f->dns_sans_n < 2) {
        return 0;
    }
    size_t n = f->dns_sans_n;
    struct san_ref *refs = malloc(n * sizeof(*refs));
    bool *mark = calloc(n, sizeof(*mark));
    if (!refs || !mark) {
        free(refs);
        free(mark);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        refs[i].s = f->dns_sans[i];
        refs[i].idx = i;
    }
    qsort(refs, n, sizeof(*refs), san_ref_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        bool differs = false;
        while (j < n && strcasecmp(refs[j].s, refs[i].s) == 0) {
            if (strcmp(refs[j].s, refs[i].s) != 0) {
                differs = true;
            }
            j++;
        }
        if (differs) {
            for (size_t k = i; k < j; k++) {
                /* First of each exact spelling (the run is sorted exactly within). */
                if (k == i || strcmp(refs[k].s, refs[k - 1].s) != 0) {
                    mark[refs[k].idx] = true;
                }
            }
        }
        i = j;
    }
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (mark[i]) {
            if (count < max && out) {
                out[count] = f->dns_sans[i];
            }
            count++;
        }
    }
    free(refs);
    free(mark);
    return count;
}

bool cap_x509_weak_signature(const struct cap_cert_facts *f)
{
    if (!f || !f->signature_hash) {
        return false;
    }
    static const char *const weak[] = {"md2", "md4", "md5", "sha1"};
    for (size_t i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
        if (strcmp(f->signature_hash, weak[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool cap_x509_weak_key(const struct cap_cert_facts *f)
{
    if (!f || !f->key_algorithm || f->key_bits <= 0) {
        return false;
    }
    const char *a = f->key_algorithm;
    if (strcmp(a, "RSA") == 0 || strcmp(a, "RSA-PSS") == 0 || strcmp(a, "DSA") == 0) {
        return f->key_bits < 2048;
    }
    if (strcmp(a, "EC") == 0) {
        return f->key_bits < 224;
    }
    return false;
}
