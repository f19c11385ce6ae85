/* OCSP and CRL revocation checks over the worker's HTTP client: requests built with OpenSSL,
 * responses verified against the certificate's issuer, answers cached per (certificate, URL). */
#include "worker/scan/revocation.h"

#include <json-c/json.h>
#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/pg.h"
#include "common/x509.h"
#include "worker/http.h"

#define URLS_MAX 2
#define URL_MAX 512
/* Cache lifetime of an answer that gives no nextUpdate. */
#define DEFAULT_VALIDITY_S 3600
/* Longest an answer is cached, whatever nextUpdate it gives. */
#define MAX_VALIDITY_S (7 * 86400)
/* Oldest thisUpdate (lastUpdate) accepted from an answer without a nextUpdate, and the clock
 * skew allowed. */
#define MAX_AGE_S (7 * 86400)
#define SKEW_S 300

static const char SQL_BEGIN[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";
static const char SQL_CACHE_GET[] =
    "SELECT fingerprint_sha256, url, method, status, "
    "coalesce(extract(epoch FROM revoked_at)::bigint, 0), coalesce(reason, ''), "
    "extract(epoch FROM next_update)::bigint FROM scan_revocation_cache "
    "WHERE fingerprint_sha256 = ANY($1::text[]) AND next_update > now() "
    "ORDER BY fingerprint_sha256, (status = 'revoked') DESC";
static const char SQL_CACHE_PUT[] =
    "INSERT INTO scan_revocation_cache AS c (fingerprint_sha256, url, method, status, revoked_at, "
    "reason, this_update, next_update, checked_at) "
    "VALUES ($1, $2, $3, $4, to_timestamp(nullif($5, '0')::bigint), nullif($6, ''), "
    "to_timestamp(nullif($7, '0')::bigint), to_timestamp($8::bigint), now()) "
    "ON CONFLICT (fingerprint_sha256, url) DO UPDATE SET method = EXCLUDED.method, "
    "status = EXCLUDED.status, revoked_at = EXCLUDED.revoked_at, reason = EXCLUDED.reason, "
    "this_update = EXCLUDED.this_update, next_update = EXCLUDED.next_update, "
    "checked_at = EXCLUDED.checked_at";
/* The inventory writer has no call for this column yet; the scanner sets it itself. */
static const char SQL_SET_REVOCATION[] =
    "UPDATE discovered_certificates SET revocation = $2::jsonb WHERE fingerprint_sha256 = $1";

enum answer { ANS_NONE = 0, ANS_GOOD, ANS_REVOKED, ANS_UNKNOWN, ANS_ERROR };
static const char *const answer_names[] = {"none", "good", "revoked", "unknown", "error"};

struct item {
    char fp[CAP_X509_HEX256_LEN];
    X509 *leaf, *issuer; /* issuer may be NULL */
    char ocsp[URLS_MAX][URL_MAX];
    size_t ocsp_n;
    char crl[URLS_MAX][URL_MAX];
    size_t crl_n;
    /* the answer */
    enum answer ans;
    bool cached;
    char method[8];
    char url[URL_MAX];
    int64_t revoked_at, this_update, next_update;
    char reason[64];
    json_object *errors; /* [{url, error}] */
};

struct cap_revocation {
    struct cap_run_ctx *ctx;
    struct cap_inventory *inv;
    const struct cap_policy *policy;
    int timeout_ms;
    struct cap_http *http;
    struct item *items;
    size_t n, cap;
    size_t dropped;
};

struct xfer {
    struct cap_http_req req; /* url, body cap and OCSP body; the answer */
    uint8_t *ocsp_der;       /* OCSP: the request, OPENSSL_free */
    size_t ocsp_len;
    bool started;
    bool ok; /* HTTP 200 with a body */
    char error[CAP_HTTP_ERROR_MAX];
    struct item *item; /* OCSP: the item asking */
};

/* Whether issuer issued leaf: names, key identifiers and key usage match, and issuer's key
 * verifies leaf's signature (a look-alike issuer with the same name is not enough). */
static bool issued_by(X509 *leaf, X509 *issuer)
{
    EVP_PKEY *k = issuer ? X509_get0_pubkey(issuer) : NULL;
    bool ok = k && X509_check_issued(issuer, leaf) == X509_V_OK && X509_verify(leaf, k) == 1;
    ERR_clear_error();
    return ok;
}

/* The cache lifetime of an answer: its nextUpdate, at most MAX_VALIDITY_S from now. */
static int64_t capped_next_update(int64_t next_update, int64_t now)
{
    return next_update > now + MAX_VALIDITY_S ? now + MAX_VALIDITY_S : next_update;
}

int cap_revocation_global_init(struct cap_err *err)
{
    if (cap_http_global_init(err) != 0) {
        cap_err_prefix(err, "revocation checks: ");
        return -1;
    }
    return 0;
}

void cap_revocation_global_cleanup(void)
{
    cap_http_global_cleanup();
}

struct cap_revocation *cap_revocation_new(struct cap_run_ctx *ctx, struct cap_inventory *inv,
                                          const struct cap_policy *policy, int timeout_ms,
                                          struct cap_err *err)
{
    struct cap_revocation *rv = calloc(1, sizeof *rv);
    if (!rv) {
        cap_err_set(err, CAP_E_NOMEM, "revocation checks: out of memory");
        return NULL;
    }
    rv->ctx = ctx;
    rv->inv = inv;
    rv->policy = policy;
    rv->timeout_ms = timeout_ms < 2000 ? 2000 : (timeout_ms > 15000 ? 15000 : timeout_ms);
    struct cap_http_limits lim = {.total_ms = rv->timeout_ms,
                                  .max_inflight = CAP_REVOCATION_PARALLEL,
                                  .user_agent = "certautopilot-discovery"};
    rv->http = cap_http_new(policy, &lim, err);
    if (!rv->http) {
        free(rv);
        cap_err_prefix(err, "revocation checks: ");
        return NULL;
    }
    return rv;
}

void cap_revocation_free(struct cap_revocation *rv)
{
    if (!rv)
        return;
    for (size_t i = 0; i < rv->n; i++) {
        X509_free(rv->items[i].leaf);
        X509_free(rv->items[i].issuer);
        json_object_put(rv->items[i].errors);
    }
    free(rv->items);
    cap_http_free(rv->http);
    free(rv);
}

static bool http_url(const char *u)
{
    return strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
}

static void collect_urls(struct item *it)
{
    STACK_OF(OPENSSL_STRING) *o = X509_get1_ocsp(it->leaf);
    for (int i = 0; o && i < sk_OPENSSL_STRING_num(o) && it->ocsp_n < URLS_MAX; i++) {
        const char *u = sk_OPENSSL_STRING_value(o, i);
        if (http_url(u) && strlen(u) < URL_MAX)
            snprintf(it->ocsp[it->ocsp_n++], URL_MAX, "%s", u);
    }
    X509_email_free(o);
    STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(it->leaf, NID_crl_distribution_points, NULL, NULL);
    for (int i = 0; dps && i < sk_DIST_POINT_num(dps); i++) {
        DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
        if (!dp->distpoint || dp->distpoint->type != 0)
            continue;
        GENERAL_NAMES *gns = dp->distpoint->name.fullname;
        for (int k = 0; k < sk_GENERAL_NAME_num(gns) && it->crl_n < URLS_MAX; k++) {
            GENERAL_NAME *gn = sk_GENERAL_NAME_value(gns, k);
            if (gn->type != GEN_URI)
                continue;
            const char *u = (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
            int ul = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
            if (ul > 0 && ul < URL_MAX && (size_t)ul == strlen(u) && http_url(u))
                snprintf(it->crl[it->crl_n++], URL_MAX, "%s", u);
        }
    }
    sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
}

void cap_revocation_add_chain(struct cap_revocation *rv, STACK_OF(X509) * chain)
{
    if (!chain || sk_X509_num(chain) < 1)
        return;
    X509 *leaf = sk_X509_value(chain, 0);
    uint8_t md[32];
    unsigned mdl = 0;
    if (X509_digest(leaf, EVP_sha256(), md, &mdl) != 1 || mdl != 32)
        return;
    char fp[CAP_X509_HEX256_LEN];
    cap_x509_hex(md, 32, fp);
    for (size_t i = 0; i < rv->n; i++) {
        if (strcmp(rv->items[i].fp, fp) == 0)
            return;
    }
    if (rv->n >= CAP_REVOCATION_MAX_CERTS) {
        rv->dropped++;
        return;
    }
    if (rv->n == rv->cap) {
        size_t nc = rv->cap ? rv->cap * 2 : 64;
        struct item *ni = realloc(rv->items, nc * sizeof *ni);
        if (!ni) {
            rv->dropped++;
            return;
        }
        rv->items = ni;
        rv->cap = nc;
    }
    struct item *it = &rv->items[rv->n];
    memset(it, 0, sizeof *it);
    memcpy(it->fp, fp, sizeof fp);
    X509_up_ref(leaf);
    it->leaf = leaf;
    if (sk_X509_num(chain) > 1) {
        X509 *iss = sk_X509_value(chain, 1);
        if (issued_by(leaf, iss)) {
            X509_up_ref(iss);
            it->issuer = iss;
        }
    }
    collect_urls(it);
    if (it->ocsp_n == 0 && it->crl_n == 0) {
        X509_free(it->leaf);
        X509_free(it->issuer);
        return; /* nothing to ask: no fact to record either */
    }
    rv->n++;
}

static void add_error(struct item *it, const char *url, const char *error)
{
    if (!it->errors)
        it->errors = json_object_new_array();
    json_object *e = json_object_new_object();
    json_object_object_add(e, "url", json_object_new_string(url));
    json_object_object_add(e, "error", json_object_new_string(error));
    json_object_array_add(it->errors, e);
}

static int64_t asn1_epoch(const ASN1_TIME *t)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* ---- transfers ---- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs xs[0..n) with at most CAP_REVOCATION_PARALLEL at once until all ended, the deadline
 * passes or *stopping is set; each xfer ends with ok, or error set. Redirects are followed (3 at
 * most), each one checked by the network policy. */
static void run_transfers(struct cap_revocation *rv, struct xfer *xs, size_t n, int64_t deadline,
                          const atomic_int *stopping)
{
    size_t next = 0;
    for (;;) {
        while (cap_http_inflight(rv->http) < CAP_REVOCATION_PARALLEL && next < n) {
            struct xfer *x = &xs[next++];
            struct cap_err e = {0};
            x->req.data = x;
            x->req.max_redirects = 3;
            x->req.post = x->ocsp_der;
            x->req.post_len = x->ocsp_len;
            x->req.content_type = x->ocsp_der ? "application/ocsp-request" : NULL;
            if (cap_http_start(rv->http, &x->req, &e) != 0) {
                snprintf(x->error, sizeof x->error, "local: cannot start a transfer");
                continue;
            }
            x->started = true;
        }
        if (cap_http_inflight(rv->http) == 0 && next >= n)
            break;
        struct cap_http_req *d = cap_http_wait(rv->http, 100);
        if (d) {
            struct xfer *x = d->data;
            if (d->result == CAP_HTTP_DONE && d->status == 200)
                x->ok = true;
            else if (d->result == CAP_HTTP_DONE)
                snprintf(x->error, sizeof x->error, "HTTP status %ld", d->status);
            else
                snprintf(x->error, sizeof x->error, "%s", d->error);
        }
        if (mono_ms() >= deadline || (stopping && atomic_load(stopping)))
            break;
    }
    /* Whatever did not end in time. */
    for (size_t i = 0; i < next; i++) {
        struct xfer *x = &xs[i];
        if (!x->started || x->req.result != CAP_HTTP_PENDING)
            continue;
        snprintf(x->error, sizeof x->error, "no answer within the revocation time budget");
        cap_http_cancel(rv->http, &x->req);
    }
    for (size_t i = next; i < n; i++)
        snprintf(xs[i].error, sizeof xs[i].error, "not asked: revocation time budget exhausted");
}

/* ---- OCSP ---- */

static int ocsp_request(struct item *it, struct xfer *x)
{
    OCSP_REQUEST *req = OCSP_REQUEST_new();
    OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), it->leaf, it->issuer);
    if (!req || !id)
        goto fail;
    if (!OCSP_request_add0_id(req, id))
        goto fail;
    id = NULL;
    unsigned char *der = NULL;
    int len = i2d_OCSP_REQUEST(req, &der);
    if (len <= 0)
        goto fail;
    x->ocsp_der = der;
    x->ocsp_len = (size_t)len;
    OCSP_REQUEST_free(req);
    return 0;
fail:
    OCSP_CERTID_free(id);
    OCSP_REQUEST_free(req);
    return -1;
}

static void answer_clear(struct cap_revocation_answer *out)
{
    memset(out, 0, sizeof *out);
}

static int answer_fail(struct cap_revocation_answer *out, const char *why)
{
    out->status = CAP_REVOCATION_NONE;
    snprintf(out->why, sizeof out->why, "%s", why);
    ERR_clear_error();
    return -1;
}

int cap_revocation_read_ocsp(const uint8_t *buf, size_t len, X509 *leaf, X509 *issuer,
                             struct cap_revocation_answer *out)
{
    answer_clear(out);
    if (!leaf || !issuer)
        return answer_fail(out, "local: no issuer to check an OCSP response against");
    if (!issued_by(leaf, issuer))
        return answer_fail(out, "local: the issuer given did not sign the certificate");
    if (len > CAP_REVOCATION_OCSP_MAX)
        return answer_fail(out, "response is larger than an OCSP response may be");
    const unsigned char *p = buf;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    OCSP_BASICRESP *bs = NULL;
    OCSP_CERTID *id = NULL;
    X509_STORE *st = NULL;
    STACK_OF(X509) *certs = NULL;
    const char *why = NULL;
    char tmp[96];
    if (!resp) {
        why = "response is not an OCSP response";
        goto out;
    }
    int rs = OCSP_response_status(resp);
    if (rs != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(tmp, sizeof tmp, "responder said %s", OCSP_response_status_str(rs));
        why = tmp;
        goto out;
    }
    bs = OCSP_response_get1_basic(resp);
    if (!bs) {
        why = "response has no basic response";
        goto out;
    }
    st = X509_STORE_new();
    certs = sk_X509_new_null();
    id = OCSP_cert_to_id(EVP_sha1(), leaf, issuer);
    if (!st || !certs || !id || !X509_STORE_add_cert(st, issuer) || !sk_X509_push(certs, issuer)) {
        why = "local: out of memory reading an OCSP response";
        goto out;
    }
    X509_up_ref(issuer);
    X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
    /* Signed by the issuer itself, or by a responder certificate the issuer issued. */
    if (OCSP_basic_verify(bs, certs, st, 0) <= 0) {
        why = "response signature does not verify against the issuer";
        goto out;
    }
    int status = -1, reason = -1;
    ASN1_GENERALIZEDTIME *rev = NULL, *thisupd = NULL, *nextupd = NULL;
    if (!OCSP_resp_find_status(bs, id, &status, &reason, &rev, &thisupd, &nextupd)) {
        why = "response does not cover this certificate";
        goto out;
    }
    /* Within its window; without a nextUpdate, no older than MAX_AGE_S (an old GOOD answer
     * from before a revocation must not be replayable for ever). */
    if (!OCSP_check_validity(thisupd, nextupd, SKEW_S, nextupd ? -1 : MAX_AGE_S)) {
        why = "response is outside its validity window";
        goto out;
    }
    out->status = status == V_OCSP_CERTSTATUS_GOOD      ? CAP_REVOCATION_GOOD
                  : status == V_OCSP_CERTSTATUS_REVOKED ? CAP_REVOCATION_REVOKED
                                                        : CAP_REVOCATION_UNKNOWN;
    out->revoked_at = asn1_epoch(rev);
    out->this_update = asn1_epoch(thisupd);
    int64_t now = (int64_t)time(NULL);
    out->next_update =
        capped_next_update(nextupd ? asn1_epoch(nextupd) : now + DEFAULT_VALIDITY_S, now);
    if (out->status == CAP_REVOCATION_REVOKED && reason >= 0)
        snprintf(out->reason, sizeof out->reason, "%s", OCSP_crl_reason_str(reason));
out:
    sk_X509_pop_free(certs, X509_free);
    X509_STORE_free(st);
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    if (why)
        return answer_fail(out, why);
    ERR_clear_error();
    return 0;
}

/* Copies a reader's answer into the item (method and url say where it came from). */
static void item_take(struct item *it, const char *method, const char *url,
                      const struct cap_revocation_answer *a)
{
    it->ans = a->status == CAP_REVOCATION_GOOD      ? ANS_GOOD
              : a->status == CAP_REVOCATION_REVOKED ? ANS_REVOKED
                                                    : ANS_UNKNOWN;
    snprintf(it->method, sizeof it->method, "%s", method);
    snprintf(it->url, sizeof it->url, "%s", url);
    it->revoked_at = a->revoked_at;
    it->this_update = a->this_update;
    it->next_update = a->next_update;
    snprintf(it->reason, sizeof it->reason, "%s", a->reason);
}

/* Reads a verified OCSP answer for the item into it, or records why not. */
static void ocsp_answer(struct item *it, struct xfer *x)
{
    struct cap_revocation_answer a;
    const uint8_t *body = (const uint8_t *)x->req.body;
    if (cap_revocation_read_ocsp(body, x->req.len, it->leaf, it->issuer, &a) == 0)
        item_take(it, "ocsp", x->req.url, &a);
    else
        add_error(it, x->req.url, a.why);
}

/* ---- CRL ---- */

X509_CRL *cap_revocation_parse_crl(const uint8_t *buf, size_t len)
{
    if (!buf || len == 0 || len > CAP_REVOCATION_CRL_MAX)
        return NULL;
    const unsigned char *p = buf;
    X509_CRL *crl = d2i_X509_CRL(NULL, &p, (long)len);
    if (!crl) {
        BIO *b = BIO_new_mem_buf(buf, (int)len);
        if (b) {
            crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
            BIO_free(b);
        }
    }
    ERR_clear_error();
    return crl;
}

/* Whether the CRL's issuing distribution point (if any) lists url among its names. */
static bool idp_names_url(const ISSUING_DIST_POINT *idp, const char *url)
{
    if (!idp->distpoint)
        return true; /* no name: the scope is the issuer's whole CRL */
    if (idp->distpoint->type != 0 || !url)
        return false; /* a name relative to the issuer, or nothing to compare with */
    GENERAL_NAMES *names = idp->distpoint->name.fullname;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI)
            continue;
        const ASN1_IA5STRING *u = gn->d.uniformResourceIdentifier;
        if ((size_t)u->length == strlen(url) && memcmp(u->data, url, (size_t)u->length) == 0)
            return true;
    }
    return false;
}

/* Why crl cannot answer for an end-entity certificate it was fetched for from url (NULL when
 * it can): a delta CRL, a partitioned scope, or a critical extension not understood. */
static const char *crl_scope_problem(X509_CRL *crl, const char *url)
{
    for (int i = 0; i < X509_CRL_get_ext_count(crl); i++) {
        X509_EXTENSION *ex = X509_CRL_get_ext(crl, i);
        int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ex));
        if (nid == NID_delta_crl)
            return "CRL is a delta CRL (it lists only recent changes)";
        if (X509_EXTENSION_get_critical(ex) && nid != NID_issuing_distribution_point)
            return "CRL has a critical extension this reader does not understand";
    }
    int crit = 0;
    ISSUING_DIST_POINT *idp =
        X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &crit, NULL);
    const char *why = NULL;
    if (!idp && crit != -1)
        why = "CRL has an unreadable issuing distribution point";
    else if (idp &&
             (idp->onlyCA > 0 || idp->onlyattr > 0 || idp->onlysomereasons || idp->indirectCRL > 0))
        why = "CRL covers only part of what the issuer revokes (issuing distribution point)";
    else if (idp && !idp_names_url(idp, url))
        why = "CRL's issuing distribution point is not the URL it was fetched from";
    ISSUING_DIST_POINT_free(idp);
    ERR_clear_error();
    return why;
}

int cap_revocation_crl_answer(X509_CRL *crl, X509 *leaf, X509 *issuer, const char *url,
                              struct cap_revocation_answer *out)
{
    answer_clear(out);
    if (!issuer)
        return answer_fail(out, "issuer certificate not sent: CRL signature cannot be checked");
    if (!crl || !leaf)
        return answer_fail(out, "local: no CRL or certificate to read");
    if (!issued_by(leaf, issuer))
        return answer_fail(out, "local: the issuer given did not sign the certificate");
    EVP_PKEY *ik = X509_get0_pubkey(issuer);
    if (!ik || X509_CRL_verify(crl, ik) != 1 ||
        X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0)
        return answer_fail(out, "CRL signature does not verify against the issuer");
    const char *scope = crl_scope_problem(crl, url);
    if (scope)
        return answer_fail(out, scope);
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    int64_t now = (int64_t)time(NULL);
    int64_t last = asn1_epoch(X509_CRL_get0_lastUpdate(crl));
    if (last > now + SKEW_S)
        return answer_fail(out, "CRL's last update is in the future");
    if (!next && last < now - MAX_AGE_S)
        return answer_fail(out, "CRL without a next update is more than 7 days old");
    int64_t nu = next ? asn1_epoch(next) : now + DEFAULT_VALIDITY_S;
    if (next && nu < now)
        return answer_fail(out, "CRL is past its next update");
    nu = capped_next_update(nu, now);
    X509_REVOKED *rev = NULL;
    int found = X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(leaf));
    out->status = found == 1 ? CAP_REVOCATION_REVOKED : CAP_REVOCATION_GOOD;
    out->this_update = last;
    out->next_update = nu;
    if (found == 1 && rev) {
        out->revoked_at = asn1_epoch(X509_REVOKED_get0_revocationDate(rev));
        int crit = 0;
        ASN1_ENUMERATED *r = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, &crit, NULL);
        long code = r ? ASN1_ENUMERATED_get(r) : -1;
        ASN1_ENUMERATED_free(r);
        if (code >= 0)
            snprintf(out->reason, sizeof out->reason, "%s", OCSP_crl_reason_str(code));
    }
    ERR_clear_error();
    return 0;
}

static void crl_answer(struct item *it, const char *url, X509_CRL *crl)
{
    struct cap_revocation_answer a;
    if (cap_revocation_crl_answer(crl, it->leaf, it->issuer, url, &a) == 0)
        item_take(it, "crl", url, &a);
    else
        add_error(it, url, a.why);
}

/* ---- the phases ---- */

static int cache_read(struct cap_revocation *rv, struct cap_err *err)
{
    const char **fps = calloc(rv->n ? rv->n : 1, sizeof *fps);
    if (!fps) {
        cap_err_set(err, CAP_E_NOMEM, "revocation checks: out of memory");
        return -1;
    }
    for (size_t i = 0; i < rv->n; i++)
        fps[i] = rv->items[i].fp;
    char *arr = cap_pg_text_array(fps, rv->n);
    free(fps);
    if (!arr) {
        cap_err_set(err, CAP_E_NOMEM, "revocation checks: out of memory");
        return -1;
    }
    const char *p[] = {arr};
    PGresult *r = cap_pg_exec(rv->ctx->pg, "read revocation cache", SQL_CACHE_GET, 1, p, err);
    free(arr);
    if (!r)
        return -1;
    for (int row = 0; row < PQntuples(r); row++) {
        const char *fp = PQgetvalue(r, row, 0);
        for (size_t i = 0; i < rv->n; i++) {
            struct item *it = &rv->items[i];
            if (strcmp(it->fp, fp) != 0 || it->ans != ANS_NONE)
                continue;
            const char *st = PQgetvalue(r, row, 3);
            it->ans = strcmp(st, "good") == 0      ? ANS_GOOD
                      : strcmp(st, "revoked") == 0 ? ANS_REVOKED
                                                   : ANS_UNKNOWN;
            it->cached = true;
            snprintf(it->url, sizeof it->url, "%s", PQgetvalue(r, row, 1));
            snprintf(it->method, sizeof it->method, "%s", PQgetvalue(r, row, 2));
            it->revoked_at = cap_pg_get_i64(r, row, 4);
            snprintf(it->reason, sizeof it->reason, "%s", PQgetvalue(r, row, 5));
            it->next_update = cap_pg_get_i64(r, row, 6);
        }
    }
    PQclear(r);
    return 0;
}

static void free_xfers(struct xfer *xs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cap_http_req_reset(&xs[i].req);
        OPENSSL_free(xs[i].ocsp_der);
    }
    free(xs);
}

/* OCSP round k: the k-th responder of every item still without an answer. */
static void ocsp_round(struct cap_revocation *rv, size_t k, int64_t deadline,
                       const atomic_int *stopping)
{
    struct xfer *xs = calloc(rv->n ? rv->n : 1, sizeof *xs);
    if (!xs)
        return;
    size_t n = 0;
    for (size_t i = 0; i < rv->n; i++) {
        struct item *it = &rv->items[i];
        if (it->ans != ANS_NONE || !it->issuer || k >= it->ocsp_n)
            continue;
        struct xfer *x = &xs[n];
        snprintf(x->req.url, sizeof x->req.url, "%s", it->ocsp[k]);
        x->req.body_max = CAP_REVOCATION_OCSP_MAX;
        x->item = it;
        if (ocsp_request(it, x) != 0) {
            add_error(it, it->ocsp[k], "local: cannot build the OCSP request");
            OPENSSL_free(x->ocsp_der);
            memset(x, 0, sizeof *x);
            continue;
        }
        n++;
    }
    if (n > 0)
        run_transfers(rv, xs, n, deadline, stopping);
    for (size_t i = 0; i < n; i++) {
        if (xs[i].ok)
            ocsp_answer(xs[i].item, &xs[i]);
        else
            add_error(xs[i].item, xs[i].req.url, xs[i].error);
    }
    free_xfers(xs, n);
}

/* CRLs: each distinct URL fetched once, every waiting item looked up in it. */
static void crl_round(struct cap_revocation *rv, int64_t deadline, const atomic_int *stopping)
{
    size_t want = 0;
    for (size_t i = 0; i < rv->n; i++)
        want += rv->items[i].ans == ANS_NONE ? rv->items[i].crl_n : 0;
    if (want == 0)
        return;
    struct xfer *xs = calloc(want, sizeof *xs);
    if (!xs)
        return;
    size_t n = 0;
    for (size_t i = 0; i < rv->n; i++) {
        struct item *it = &rv->items[i];
        for (size_t k = 0; it->ans == ANS_NONE && k < it->crl_n; k++) {
            bool dup = false;
            for (size_t j = 0; j < n && !dup; j++)
                dup = strcmp(xs[j].req.url, it->crl[k]) == 0;
            if (dup)
                continue;
            snprintf(xs[n].req.url, sizeof xs[n].req.url, "%s", it->crl[k]);
            xs[n].req.body_max = CAP_REVOCATION_CRL_MAX;
            n++;
        }
    }
    run_transfers(rv, xs, n, deadline, stopping);
    for (size_t j = 0; j < n; j++) {
        struct xfer *x = &xs[j];
        X509_CRL *crl =
            x->ok ? cap_revocation_parse_crl((const uint8_t *)x->req.body, x->req.len) : NULL;
        /* Parsed: the fetched bytes are not needed any more. */
        cap_http_req_reset(&x->req);
        for (size_t i = 0; i < rv->n; i++) {
            struct item *it = &rv->items[i];
            for (size_t k = 0; it->ans == ANS_NONE && k < it->crl_n; k++) {
                if (strcmp(it->crl[k], x->req.url) != 0)
                    continue;
                if (crl)
                    crl_answer(it, x->req.url, crl);
                else
                    add_error(it, x->req.url, x->ok ? "response is not a CRL" : x->error);
            }
        }
        X509_CRL_free(crl);
    }
    free_xfers(xs, n);
}

static void iso_time(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_object *facts_json(const struct item *it)
{
    json_object *o = json_object_new_object();
    char ts[32];
    iso_time((int64_t)time(NULL), ts, sizeof ts);
    json_object_object_add(o, "checked_at", json_object_new_string(ts));
    json_object_object_add(o, "status", json_object_new_string(answer_names[it->ans]));
    if (it->ans != ANS_NONE && it->ans != ANS_ERROR) {
        json_object_object_add(o, "method", json_object_new_string(it->method));
        json_object_object_add(o, "url", json_object_new_string(it->url));
        json_object_object_add(o, "cached", json_object_new_boolean(it->cached));
        iso_time(it->next_update, ts, sizeof ts);
        json_object_object_add(o, "next_update", json_object_new_string(ts));
    }
    if (it->ans == ANS_REVOKED) {
        if (it->revoked_at) {
            iso_time(it->revoked_at, ts, sizeof ts);
            json_object_object_add(o, "revoked_at", json_object_new_string(ts));
        }
        if (it->reason[0])
            json_object_object_add(o, "reason", json_object_new_string(it->reason));
    }
    if (it->errors)
        json_object_object_add(o, "errors", json_object_get(it->errors));
    return o;
}

static int write_results(struct cap_revocation *rv, struct cap_err *err)
{
    PGconn *c = rv->ctx->pg;
    if (cap_pg_cmd(c, "begin revocation results", SQL_BEGIN, 0, NULL, err) != 0)
        return -1;
    int rc = cap_run_fence(rv->ctx, err);
    for (size_t i = 0; i < rv->n && rc == 0; i++) {
        struct item *it = &rv->items[i];
        if (it->ans == ANS_NONE && it->errors)
            it->ans = ANS_ERROR;
        if (it->ans == ANS_NONE)
            continue;
        if (!it->cached && it->ans != ANS_ERROR) {
            char ra[24], tu[24], nu[24];
            const char *p[] = {it->fp,
                               it->url,
                               it->method,
                               answer_names[it->ans],
                               cap_pg_i64(ra, it->revoked_at),
                               it->reason,
                               cap_pg_i64(tu, it->this_update),
                               cap_pg_i64(nu, it->next_update)};
            rc = cap_pg_cmd(c, "write revocation cache", SQL_CACHE_PUT, 8, p, err);
        }
        json_object *f = facts_json(it);
        const char *p2[] = {it->fp, json_object_to_json_string_ext(f, JSON_C_TO_STRING_PLAIN)};
        if (rc == 0)
            rc = cap_pg_cmd(c, "write revocation facts", SQL_SET_REVOCATION, 2, p2, err);
        json_object_put(f);
    }
    if (rc == 0)
        rc = cap_pg_cmd(c, "commit revocation results", SQL_COMMIT, 0, NULL, err);
    if (rc != 0) {
        PGresult *r = PQexec(c, SQL_ROLLBACK);
        PQclear(r);
        return -1;
    }
    /* Findings go through the inventory (its batch, its fencing). */
    for (size_t i = 0; i < rv->n; i++) {
        struct item *it = &rv->items[i];
        if (it->ans != ANS_REVOKED)
            continue;
        json_object *d = facts_json(it);
        char reason[160];
        snprintf(reason, sizeof reason, "%s says the certificate is revoked",
                 strcmp(it->method, "crl") == 0 ? "the CRL" : "the OCSP responder");
        json_object_object_add(d, "reason", json_object_new_string(reason));
        char subject[80];
        snprintf(subject, sizeof subject, "cert:%s", it->fp);
        int frc =
            cap_findings_raise(rv->inv, "revoked", "critical", subject, 0, 0, it->fp,
                               json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN), err);
        json_object_put(d);
        if (frc != 0)
            return -1;
    }
    return 0;
}

int cap_revocation_finish(struct cap_revocation *rv, const atomic_int *stopping, int budget_ms,
                          struct cap_err *err)
{
    if (!rv || rv->n == 0)
        return 0;
    int64_t deadline = mono_ms() + budget_ms;
    if (cache_read(rv, err) != 0)
        return -1;
    for (size_t k = 0; k < URLS_MAX; k++)
        ocsp_round(rv, k, deadline, stopping);
    crl_round(rv, deadline, stopping);
    size_t revoked = 0, failed = 0, cached = 0;
    for (size_t i = 0; i < rv->n; i++) {
        revoked += rv->items[i].ans == ANS_REVOKED;
        cached += rv->items[i].cached;
        failed += rv->items[i].ans == ANS_NONE;
    }
    cap_log(CAP_LOG_INFO, "scan_revocation_checked", CAP_LI("run_id", rv->ctx->run_id),
            CAP_LI("certificates", (long long)rv->n), CAP_LI("revoked", (long long)revoked),
            CAP_LI("cached", (long long)cached), CAP_LI("no_answer", (long long)failed),
            CAP_LI("not_checked", (long long)rv->dropped));
    return write_results(rv, err);
}
