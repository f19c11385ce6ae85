/* OCSP and CRL revocation checks over the worker's HTTP client: requests built with OpenSSL,
 * responses verified against the certificate's issuer, answers cached per (certificate, URL),
 * fetches held to ports 80 and 443 and a byte budget per run, facts written per certificate. */
#include "worker/scan/revocation.h"

#include <curl/curl.h>
#include <errno.h>
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
#define URL_MAX CAP_REVOCATION_URL_MAX
/* Cache lifetime of an answer that gives no nextUpdate. */
#define DEFAULT_VALIDITY_S 3600
/* Longest an answer is cached, whatever nextUpdate it gives. */
#define MAX_VALIDITY_S (7 * 86400)
/* Oldest thisUpdate (lastUpdate) accepted from an answer without a nextUpdate, and the clock
 * skew allowed. */
#define MAX_AGE_S (7 * 86400)
#define SKEW_S 300
/* Times PostgreSQL and the JSON facts take: 0001-01-01 to 9999-12-31 (UTC). */
#define TIME_MIN (-62135596800LL)
#define TIME_MAX 253402300799LL

/* What is stored when a URL gave no answer: fixed texts, so nothing an attacker's server (or
 * an internal one it pointed at) sent can be read back from the facts. Details go to the log. */
static const char ERR_URL[] = "not asked: not an http(s) URL of the characters URLs may hold";
static const char ERR_URL_LONG[] = "not asked: URL of 512 bytes or more";
static const char ERR_PORT[] = "not asked: only ports 80 and 443 are asked";
static const char ERR_ISSUER[] =
    "not asked: issuer not proven (not sent, or its key does not verify the certificate)";
static const char ERR_BYTES[] = "not asked: the run's revocation byte budget (64 MiB) is spent";
_Static_assert(CAP_REVOCATION_RUN_BYTES_MAX == 64u * 1024 * 1024, "ERR_BYTES names the budget");
static const char ERR_TIME[] = "not asked: the run's revocation time budget is spent";
static const char ERR_DEADLINE[] = "no answer within the run's revocation time budget";
static const char ERR_POLICY[] = "refused by network policy";
static const char ERR_NO_ANSWER[] = "no usable answer";
static const char ERR_LOCAL_REQUEST[] = "local: cannot build the OCSP request";
static const char ERR_LOCAL_START[] = "local: cannot start a transfer";

static const char SQL_BEGIN[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";
static const char SQL_SAVEPOINT[] = "SAVEPOINT revocation_item";
static const char SQL_RELEASE[] = "RELEASE SAVEPOINT revocation_item";
static const char SQL_ROLLBACK_ITEM[] = "ROLLBACK TO SAVEPOINT revocation_item";
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

/* A URL that gave no answer: the URL as the certificate holds it (malloc'd, url_len bytes and
 * a NUL) and why (a fixed text, or a reason about data the issuer signed). */
struct rev_error {
    char *url;
    size_t url_len;
    char error[128];
};

struct item {
    char fp[CAP_X509_HEX256_LEN];
    X509 *leaf, *issuer;          /* issuer: NULL unless its key verifies leaf */
    char ocsp[URLS_MAX][URL_MAX]; /* URLs to fetch: cap_revocation_check_url accepted them */
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
    struct rev_error *errors;
    size_t errors_n, errors_more;
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
    /* The run's byte budget: spent by answers that ended, reserved by fetches in flight. */
    size_t spent, reserved;
};

struct xfer {
    struct cap_http_req req; /* url, body cap and OCSP body; the answer */
    uint8_t *ocsp_der;       /* OCSP: the request, OPENSSL_free */
    size_t ocsp_len;
    bool started, ended;
    size_t reserved;   /* bytes of the run's budget held while in flight */
    const char *error; /* ended: NULL for an HTTP 200 answer (req.body), else a fixed text */
    char detail[CAP_HTTP_ERROR_MAX]; /* what went wrong, for the log only */
    struct item *item;               /* OCSP: the item asking */
};

/* Called once per xfer when it ends (answered, failed or not asked). */
typedef void (*xfer_done_fn)(struct cap_revocation *rv, struct xfer *x);

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

static void item_cleanup(struct item *it)
{
    X509_free(it->leaf);
    X509_free(it->issuer);
    for (size_t i = 0; i < it->errors_n; i++)
        free(it->errors[i].url);
    free(it->errors);
    it->leaf = it->issuer = NULL;
    it->errors = NULL;
    it->errors_n = 0;
}

void cap_revocation_free(struct cap_revocation *rv)
{
    if (!rv)
        return;
    for (size_t i = 0; i < rv->n; i++)
        item_cleanup(&rv->items[i]);
    free(rv->items);
    cap_http_free(rv->http);
    free(rv);
}

/* ---- URLs ---- */

/* The characters RFC 3986 allows in a URI: unreserved, reserved and '%'. */
static bool uri_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~:/?#[]@!$&'()*+,;=%", c) != NULL;
}

int cap_revocation_check_url(const char *url, size_t len, const char **why)
{
    *why = ERR_URL;
    if (!url || len == 0)
        return -1;
    if (len >= URL_MAX) {
        *why = ERR_URL_LONG;
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (!uri_char((unsigned char)url[i]))
            return -1;
    }
    if (!(len > 7 && strncmp(url, "http://", 7) == 0) &&
        !(len > 8 && strncmp(url, "https://", 8) == 0))
        return -1;
    char copy[URL_MAX];
    memcpy(copy, url, len);
    copy[len] = '\0';
    /* libcurl's parser, the one the transfer uses, says which host and port it would reach. */
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    int rc = -1;
    if (u && curl_url_set(u, CURLUPART_URL, copy, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && host[0] &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK && port) {
        char *end = NULL;
        errno = 0;
        long p = strtol(port, &end, 10);
        if (errno == 0 && end != port && *end == '\0' && (p == 80 || p == 443))
            rc = 0;
        else
            *why = ERR_PORT;
    }
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

/* Records that url (len bytes as the certificate holds it; NULL: none) gave no answer, and why.
 * At most CAP_REVOCATION_ERRORS_MAX are kept; the rest are counted. */
static void add_error(struct item *it, const char *url, size_t len, const char *why)
{
    if (it->errors_n >= CAP_REVOCATION_ERRORS_MAX) {
        it->errors_more++;
        return;
    }
    if (!it->errors) {
        it->errors = calloc(CAP_REVOCATION_ERRORS_MAX, sizeof *it->errors);
        if (!it->errors) {
            it->errors_more++;
            return;
        }
    }
    struct rev_error *e = &it->errors[it->errors_n];
    e->url = NULL;
    e->url_len = 0;
    if (url) {
        len = len < URL_MAX ? len : URL_MAX;
        e->url = malloc(len + 1);
        if (!e->url) {
            it->errors_more++;
            return;
        }
        memcpy(e->url, url, len);
        e->url[len] = '\0';
        e->url_len = len;
    }
    snprintf(e->error, sizeof e->error, "%s", why);
    it->errors_n++;
}

/* Takes one URL of a certificate into list (at most URLS_MAX, each once) when it may be
 * fetched for this item; else records why not. */
static void take_url(struct item *it, char (*list)[URL_MAX], size_t *n, const ASN1_STRING *s)
{
    const char *u = (const char *)ASN1_STRING_get0_data(s);
    int ul = ASN1_STRING_length(s);
    if (!u || ul <= 0)
        return;
    size_t len = (size_t)ul;
    const char *why = NULL;
    if (cap_revocation_check_url(u, len, &why) != 0) {
        add_error(it, u, len, why);
        return;
    }
    if (!it->issuer) {
        add_error(it, u, len, ERR_ISSUER);
        return;
    }
    for (size_t i = 0; i < *n; i++) {
        if (strlen(list[i]) == len && memcmp(list[i], u, len) == 0)
            return;
    }
    if (*n >= URLS_MAX)
        return;
    memcpy(list[*n], u, len);
    list[*n][len] = '\0';
    (*n)++;
}

static void collect_urls(struct item *it)
{
    AUTHORITY_INFO_ACCESS *aia = X509_get_ext_d2i(it->leaf, NID_info_access, NULL, NULL);
    for (int i = 0; aia && i < sk_ACCESS_DESCRIPTION_num(aia); i++) {
        ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia, i);
        if (OBJ_obj2nid(ad->method) == NID_ad_OCSP && ad->location && ad->location->type == GEN_URI)
            take_url(it, it->ocsp, &it->ocsp_n, ad->location->d.uniformResourceIdentifier);
    }
    AUTHORITY_INFO_ACCESS_free(aia);
    STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(it->leaf, NID_crl_distribution_points, NULL, NULL);
    for (int i = 0; dps && i < sk_DIST_POINT_num(dps); i++) {
        DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
        if (!dp->distpoint || dp->distpoint->type != 0)
            continue;
        GENERAL_NAMES *gns = dp->distpoint->name.fullname;
        for (int k = 0; k < sk_GENERAL_NAME_num(gns); k++) {
            GENERAL_NAME *gn = sk_GENERAL_NAME_value(gns, k);
            if (gn->type == GEN_URI)
                take_url(it, it->crl, &it->crl_n, gn->d.uniformResourceIdentifier);
        }
    }
    sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
    ERR_clear_error();
}

void cap_revocation_add_chain(struct cap_revocation *rv, STACK_OF(X509) * chain)
{
    if (!chain || sk_X509_num(chain) < 1)
        return;
    X509 *leaf = sk_X509_value(chain, 0);
    /* A leaf with neither an OCSP responder nor a CRL distribution point has nothing to ask
     * (most internal certificates): leave before hashing it. */
    if (X509_get_ext_by_NID(leaf, NID_info_access, -1) < 0 &&
        X509_get_ext_by_NID(leaf, NID_crl_distribution_points, -1) < 0)
        return;
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
    if (it->ocsp_n == 0 && it->crl_n == 0 && it->errors_n == 0 && it->errors_more == 0) {
        item_cleanup(it);
        return; /* nothing to ask: no fact to record either */
    }
    rv->n++;
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

static size_t budget_free(const struct cap_revocation *rv)
{
    return CAP_REVOCATION_RUN_BYTES_MAX - rv->spent - rv->reserved;
}

/* Ends x: error NULL means an HTTP 200 answer is in x->req. Gives back the bytes x held of the
 * budget beyond what it received, then calls done. */
static void xfer_end(struct cap_revocation *rv, struct xfer *x, const char *error, size_t used,
                     xfer_done_fn done)
{
    if (x->started) {
        rv->reserved -= x->reserved;
        rv->spent += used < x->reserved ? used : x->reserved;
        x->reserved = 0;
    }
    x->ended = true;
    x->error = error;
    done(rv, x);
}

/* Runs xs[0..n) with at most CAP_REVOCATION_PARALLEL at once until all ended, the deadline
 * passes or *stopping is set; each ends exactly once through done. A fetch starts only when
 * its body cap fits in what is left of the run's byte budget. Redirects are not followed: the
 * network policy checks addresses, not ports, and a redirect could lead anywhere. */
static void run_transfers(struct cap_revocation *rv, struct xfer *xs, size_t n, int64_t deadline,
                          const atomic_int *stopping, xfer_done_fn done)
{
    size_t next = 0;
    for (;;) {
        bool stop = mono_ms() >= deadline || (stopping && atomic_load(stopping));
        while (!stop && cap_http_inflight(rv->http) < CAP_REVOCATION_PARALLEL && next < n) {
            struct xfer *x = &xs[next];
            if (budget_free(rv) < x->req.body_max) {
                if (cap_http_inflight(rv->http) > 0)
                    break; /* wait for answers to give bytes back */
                next++;
                xfer_end(rv, x, ERR_BYTES, 0, done);
                continue;
            }
            next++;
            struct cap_err e = {0};
            x->req.data = x;
            x->req.max_redirects = 0;
            x->req.post = x->ocsp_der;
            x->req.post_len = x->ocsp_len;
            x->req.content_type = x->ocsp_der ? "application/ocsp-request" : NULL;
            if (cap_http_start(rv->http, &x->req, &e) != 0) {
                snprintf(x->detail, sizeof x->detail, "%s", e.msg);
                xfer_end(rv, x, ERR_LOCAL_START, 0, done);
                continue;
            }
            x->started = true;
            x->reserved = x->req.body_max;
            rv->reserved += x->reserved;
        }
        if (cap_http_inflight(rv->http) == 0 && (next >= n || stop))
            break;
        if (stop)
            break;
        struct cap_http_req *d = cap_http_wait(rv->http, 100);
        if (!d)
            continue;
        struct xfer *x = d->data;
        const char *error = NULL;
        /* An answer counts what it received; a failed fetch all it may have received. */
        size_t used = x->reserved;
        if (d->result == CAP_HTTP_DONE) {
            used = d->len;
            if (d->status != 200) {
                error = ERR_NO_ANSWER;
                snprintf(x->detail, sizeof x->detail, "HTTP status %ld", d->status);
            }
        } else {
            /* A refusal by the policy may follow a connect to another address of the same
             * name, so it too keeps its whole cap counted. */
            error = d->result == CAP_HTTP_POLICY ? ERR_POLICY : ERR_NO_ANSWER;
            snprintf(x->detail, sizeof x->detail, "%s", d->error);
        }
        xfer_end(rv, x, error, used, done);
    }
    /* Whatever did not end in time. */
    for (size_t i = 0; i < next; i++) {
        struct xfer *x = &xs[i];
        if (x->ended)
            continue;
        cap_http_cancel(rv->http, &x->req);
        xfer_end(rv, x, ERR_DEADLINE, x->reserved, done);
    }
    for (size_t i = next; i < n; i++)
        xfer_end(rv, &xs[i], ERR_TIME, 0, done);
}

/* Logs why a URL gave no usable answer (the detail is never stored). */
static void log_no_answer(const struct cap_revocation *rv, const struct item *it, const char *url,
                          const char *detail)
{
    cap_log(CAP_LOG_DEBUG, "scan_revocation_no_answer", CAP_LI("run_id", rv->ctx->run_id),
            CAP_LS("fingerprint", it ? it->fp : ""), CAP_LS("url", url), CAP_LS("err", detail));
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
    ERR_clear_error();
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
        out->signed_by_issuer = true;
        goto out;
    }
    /* Within its window; without a nextUpdate, no older than MAX_AGE_S (an old GOOD answer
     * from before a revocation must not be replayable for ever). */
    if (!OCSP_check_validity(thisupd, nextupd, SKEW_S, nextupd ? -1 : MAX_AGE_S)) {
        why = "response is outside its validity window";
        out->signed_by_issuer = true;
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

/* Records a reader's refusal: its reason when it is about data the issuer signed, else only
 * that there was no usable answer (the reason goes to the log). */
static void item_refused(const struct cap_revocation *rv, struct item *it, const char *url,
                         const struct cap_revocation_answer *a)
{
    if (!a->signed_by_issuer)
        log_no_answer(rv, it, url, a->why);
    add_error(it, url, strlen(url), a->signed_by_issuer ? a->why : ERR_NO_ANSWER);
}

/* An OCSP fetch ended: its answer is read for the item asking, then its bytes are freed. */
static void ocsp_done(struct cap_revocation *rv, struct xfer *x)
{
    struct item *it = x->item;
    if (x->error) {
        if (x->detail[0])
            log_no_answer(rv, it, x->req.url, x->detail);
        add_error(it, x->req.url, strlen(x->req.url), x->error);
    } else {
        struct cap_revocation_answer a;
        const uint8_t *body = (const uint8_t *)x->req.body;
        if (cap_revocation_read_ocsp(body, x->req.len, it->leaf, it->issuer, &a) == 0)
            item_take(it, "ocsp", x->req.url, &a);
        else
            item_refused(rv, it, x->req.url, &a);
    }
    cap_http_req_reset(&x->req);
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
    /* From here on the reasons are about what the issuer signed. */
    const char *scope = crl_scope_problem(crl, url);
    const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
    int64_t now = (int64_t)time(NULL);
    int64_t last = asn1_epoch(X509_CRL_get0_lastUpdate(crl));
    int64_t nu = next ? asn1_epoch(next) : now + DEFAULT_VALIDITY_S;
    const char *why = scope;
    if (!why && last > now + SKEW_S)
        why = "CRL's last update is in the future";
    else if (!why && !next && last < now - MAX_AGE_S)
        why = "CRL without a next update is more than 7 days old";
    else if (!why && next && nu < now)
        why = "CRL is past its next update";
    if (why) {
        answer_fail(out, why);
        out->signed_by_issuer = true;
        return -1;
    }
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

/* A CRL fetch ended: parsed, looked up by every item still waiting on its URL, then its bytes
 * and the parsed CRL are freed before the next answer is read. */
static void crl_done(struct cap_revocation *rv, struct xfer *x)
{
    X509_CRL *crl =
        x->error ? NULL : cap_revocation_parse_crl((const uint8_t *)x->req.body, x->req.len);
    cap_http_req_reset(&x->req);
    const char *url = x->req.url;
    if (x->error && x->detail[0])
        log_no_answer(rv, NULL, url, x->detail);
    else if (!x->error && !crl)
        log_no_answer(rv, NULL, url, "response is not a CRL");
    for (size_t i = 0; i < rv->n; i++) {
        struct item *it = &rv->items[i];
        for (size_t k = 0; it->ans == ANS_NONE && k < it->crl_n; k++) {
            if (strcmp(it->crl[k], url) != 0)
                continue;
            struct cap_revocation_answer a;
            if (!crl)
                add_error(it, url, strlen(url), x->error ? x->error : ERR_NO_ANSWER);
            else if (cap_revocation_crl_answer(crl, it->leaf, it->issuer, url, &a) == 0)
                item_take(it, "crl", url, &a);
            else
                item_refused(rv, it, url, &a);
        }
    }
    X509_CRL_free(crl);
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
            add_error(it, it->ocsp[k], strlen(it->ocsp[k]), ERR_LOCAL_REQUEST);
            memset(x, 0, sizeof *x);
            continue;
        }
        n++;
    }
    if (n > 0)
        run_transfers(rv, xs, n, deadline, stopping, ocsp_done);
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
    run_transfers(rv, xs, n, deadline, stopping, crl_done);
    free_xfers(xs, n);
}

/* ---- the write path ---- */

/* Whether s is 64 lower-case hex digits. */
static bool hex64(const char *s)
{
    size_t i = 0;
    for (; s && i < 64; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return s && s[64] == '\0';
}

/* Outside text as a JSON string: cut to URL_MAX bytes, cleaned. NULL when out of memory. */
static json_object *json_text(const char *s, size_t len)
{
    char *c = cap_x509_clean_text(s, len < URL_MAX ? len : URL_MAX);
    json_object *o = c ? json_object_new_string(c) : NULL;
    free(c);
    return o;
}

/* t within the years 1 to 9999, else 0 (absent). */
static int64_t time_in_range(int64_t t)
{
    return t >= TIME_MIN && t <= TIME_MAX ? t : 0;
}

/* Adds key: t as an ISO 8601 UTC time, unless t is 0 or out of range. 0, or -1 (memory). */
static int json_add_time(json_object *o, const char *key, int64_t t)
{
    t = time_in_range(t);
    if (t == 0)
        return 0;
    time_t tt = (time_t)t;
    struct tm tm;
    char ts[32];
    if (!gmtime_r(&tt, &tm) || strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return 0;
    json_object *v = json_object_new_string(ts);
    return v && json_object_object_add(o, key, v) == 0 ? 0 : -1;
}

/* Adds key: v, taking v (NULL: out of memory). 0 or -1. */
static int json_add(json_object *o, const char *key, json_object *v)
{
    if (!v)
        return -1;
    if (json_object_object_add(o, key, v) != 0) {
        json_object_put(v);
        return -1;
    }
    return 0;
}

static int facts_errors(json_object *o, const struct cap_revocation_facts *f)
{
    if (f->errors_n == 0 && f->errors_more == 0)
        return 0;
    json_object *arr = json_object_new_array();
    if (json_add(o, "errors", arr) != 0)
        return -1;
    size_t listed =
        f->errors_n < CAP_REVOCATION_ERRORS_MAX ? f->errors_n : CAP_REVOCATION_ERRORS_MAX;
    size_t more = f->errors_n - listed + f->errors_more;
    for (size_t i = 0; i < listed; i++) {
        const struct cap_revocation_error *e = &f->errors[i];
        json_object *eo = json_object_new_object();
        if (!eo || json_object_array_add(arr, eo) != 0) {
            json_object_put(eo);
            return -1;
        }
        if (e->url && json_add(eo, "url", json_text(e->url, e->url_len)) != 0)
            return -1;
        const char *why = e->error ? e->error : "";
        if (json_add(eo, "error", json_text(why, strlen(why))) != 0)
            return -1;
    }
    if (more > 0 && json_add(o, "errors_more", json_object_new_int64((int64_t)more)) != 0)
        return -1;
    return 0;
}

static int facts_object(const struct cap_revocation_facts *f, enum answer ans, int64_t now,
                        json_object *o)
{
    if (json_add_time(o, "checked_at", now) != 0 ||
        json_add(o, "status", json_object_new_string(answer_names[ans])) != 0)
        return -1;
    if (ans != ANS_ERROR) {
        const char *url = f->url ? f->url : "";
        if (json_add(o, "method", json_object_new_string(f->method)) != 0 ||
            json_add(o, "url", json_text(url, strlen(url))) != 0 ||
            json_add(o, "cached", json_object_new_boolean(f->cached)) != 0 ||
            json_add_time(o, "next_update", f->next_update) != 0)
            return -1;
    }
    if (ans == ANS_REVOKED) {
        if (json_add_time(o, "revoked_at", f->revoked_at) != 0)
            return -1;
        if (f->reason && f->reason[0] &&
            json_add(o, "reason", json_text(f->reason, strlen(f->reason))) != 0)
            return -1;
    }
    return facts_errors(o, f);
}

/* The cache parameters of a fetched answer, or nothing (all NULL) for anything else. */
static int cache_params(const struct cap_revocation_facts *f, enum answer ans, int64_t now,
                        char **p)
{
    int64_t nu = time_in_range(f->next_update);
    if (ans == ANS_ERROR || f->cached || !f->url || !f->url[0] || nu <= now)
        return 0;
    char num[3][24];
    cap_pg_i64(num[0], time_in_range(f->revoked_at));
    cap_pg_i64(num[1], time_in_range(f->this_update));
    cap_pg_i64(num[2], capped_next_update(nu, now));
    const char *reason = f->reason ? f->reason : "";
    size_t ul = strlen(f->url), rl = strlen(reason);
    p[0] = strdup(f->fingerprint);
    p[1] = cap_x509_clean_text(f->url, ul < URL_MAX ? ul : URL_MAX);
    p[2] = strdup(f->method);
    p[3] = strdup(answer_names[ans]);
    p[4] = strdup(num[0]);
    p[5] = cap_x509_clean_text(reason, rl < URL_MAX ? rl : URL_MAX);
    p[6] = strdup(num[1]);
    p[7] = strdup(num[2]);
    for (int i = 0; i < CAP_REVOCATION_CACHE_PARAMS; i++) {
        if (!p[i])
            return -1;
    }
    return 0;
}

void cap_revocation_row_cleanup(struct cap_revocation_row *row)
{
    if (!row)
        return;
    free(row->facts);
    for (int i = 0; i < CAP_REVOCATION_CACHE_PARAMS; i++)
        free(row->cache[i]);
    memset(row, 0, sizeof *row);
}

int cap_revocation_row_build(const struct cap_revocation_facts *f, int64_t now,
                             struct cap_revocation_row *out, struct cap_err *err)
{
    if (!f || !hex64(f->fingerprint)) {
        cap_err_set(err, CAP_E_INVALID, "revocation facts: fingerprint is not 64 hex digits");
        return -1;
    }
    enum answer ans = ANS_NONE;
    for (int a = ANS_GOOD; a <= ANS_ERROR && f->status; a++) {
        if (strcmp(f->status, answer_names[a]) == 0)
            ans = (enum answer)a;
    }
    bool method_ok = f->method && (strcmp(f->method, "ocsp") == 0 || strcmp(f->method, "crl") == 0);
    if (ans == ANS_NONE || (ans != ANS_ERROR && !method_ok)) {
        cap_err_set(err, CAP_E_INVALID,
                    "revocation facts: status is not good, revoked, unknown or error with its "
                    "method");
        return -1;
    }
    struct cap_revocation_row row = {0};
    json_object *o = json_object_new_object();
    int rc = o ? facts_object(f, ans, now, o) : -1;
    if (rc == 0) {
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        row.facts = text ? strdup(text) : NULL;
        rc = row.facts ? cache_params(f, ans, now, row.cache) : -1;
    }
    json_object_put(o);
    if (rc != 0) {
        cap_revocation_row_cleanup(&row);
        cap_err_set(err, CAP_E_NOMEM, "revocation facts: out of memory");
        return -1;
    }
    *out = row;
    return 0;
}

/* The facts of an item, borrowing from it (errs: room for its errors). */
static void item_facts(const struct item *it, struct cap_revocation_error *errs,
                       struct cap_revocation_facts *f)
{
    memset(f, 0, sizeof *f);
    f->fingerprint = it->fp;
    f->status = answer_names[it->ans];
    f->method = it->method;
    f->url = it->url;
    f->cached = it->cached;
    f->revoked_at = it->revoked_at;
    f->this_update = it->this_update;
    f->next_update = it->next_update;
    f->reason = it->reason;
    for (size_t i = 0; i < it->errors_n; i++) {
        errs[i].url = it->errors[i].url;
        errs[i].url_len = it->errors[i].url_len;
        errs[i].error = it->errors[i].error;
    }
    f->errors = errs;
    f->errors_n = it->errors_n;
    f->errors_more = it->errors_more;
}

/* Writes one certificate's cache row and facts inside a savepoint. 0 when written; 1 when the
 * database refused them (rolled back to the savepoint; sqlstate says why); -1 with err when
 * the transaction itself failed. */
static int write_row(struct cap_revocation *rv, const char *fp,
                     const struct cap_revocation_row *row, char *sqlstate, size_t sqlstate_n,
                     struct cap_err *err)
{
    PGconn *c = rv->ctx->pg;
    if (cap_pg_cmd(c, "revocation savepoint", SQL_SAVEPOINT, 0, NULL, err) != 0)
        return -1;
    struct cap_err ie = {0};
    int rc = 0;
    if (row->cache[0])
        rc = cap_pg_cmd(c, "write revocation cache", SQL_CACHE_PUT, CAP_REVOCATION_CACHE_PARAMS,
                        (const char *const *)row->cache, &ie);
    if (rc == 0) {
        const char *p[] = {fp, row->facts};
        rc = cap_pg_cmd(c, "write revocation facts", SQL_SET_REVOCATION, 2, p, &ie);
    }
    if (rc == 0 && cap_pg_cmd(c, "release revocation savepoint", SQL_RELEASE, 0, NULL, err) != 0)
        return -1;
    if (rc == 0)
        return 0;
    snprintf(sqlstate, sqlstate_n, "%s", cap_pg_last_sqlstate());
    struct cap_err re = {0};
    if (cap_pg_cmd(c, "roll back revocation savepoint", SQL_ROLLBACK_ITEM, 0, NULL, &re) != 0) {
        /* The transaction is gone with it: the first failure is the one to report. */
        cap_err_set(err, ie.code, "%s", ie.msg);
        return -1;
    }
    cap_log(CAP_LOG_WARN, "scan_revocation_write_refused", CAP_LI("run_id", rv->ctx->run_id),
            CAP_LS("fingerprint", fp), CAP_LS("err", ie.msg));
    return 1;
}

/* Writes one item (its facts, and its cache row for a fresh answer); when the database refuses
 * them, a fact saying so instead. 0 (written, or the refusal recorded or logged), or -1 with
 * err when the transaction failed. *stored says whether the item's own facts were stored. */
static int write_item(struct cap_revocation *rv, struct item *it, int64_t now, bool *stored,
                      struct cap_err *err)
{
    struct cap_revocation_error errs[CAP_REVOCATION_ERRORS_MAX];
    struct cap_revocation_facts f;
    item_facts(it, errs, &f);
    struct cap_revocation_row row;
    struct cap_err be = {0};
    char sqlstate[8] = "";
    int rc = 1;
    *stored = false;
    if (cap_revocation_row_build(&f, now, &row, &be) == 0) {
        rc = write_row(rv, it->fp, &row, sqlstate, sizeof sqlstate, err);
        cap_revocation_row_cleanup(&row);
        if (rc <= 0) {
            *stored = rc == 0;
            return rc;
        }
    } else {
        snprintf(sqlstate, sizeof sqlstate, "%s", "local");
        cap_log(CAP_LOG_WARN, "scan_revocation_write_refused", CAP_LI("run_id", rv->ctx->run_id),
                CAP_LS("fingerprint", it->fp), CAP_LS("err", be.msg));
    }
    /* The certificate's own facts were refused: say so on it, and nothing else. */
    char why[128];
    snprintf(why, sizeof why,
             "local: the revocation facts of this certificate could not be stored (%s%s)",
             strcmp(sqlstate, "local") == 0 ? "" : "SQLSTATE ", sqlstate[0] ? sqlstate : "?");
    struct cap_revocation_error e = {.url = NULL, .url_len = 0, .error = why};
    struct cap_revocation_facts ef = {
        .fingerprint = it->fp, .status = "error", .errors = &e, .errors_n = 1};
    if (cap_revocation_row_build(&ef, now, &row, &be) != 0)
        return 0; /* logged above; nothing more can be said */
    rc = write_row(rv, it->fp, &row, sqlstate, sizeof sqlstate, err);
    cap_revocation_row_cleanup(&row);
    return rc < 0 ? -1 : 0;
}

/* Raises the revoked finding of an item. 0, or -1 with err (a database failure of the
 * inventory's automatic flush); details the inventory refuses are logged, not fatal. */
static int raise_revoked(struct cap_revocation *rv, const struct item *it, int64_t now,
                         struct cap_err *err)
{
    struct cap_revocation_error errs[CAP_REVOCATION_ERRORS_MAX];
    struct cap_revocation_facts f;
    item_facts(it, errs, &f);
    struct cap_revocation_row row;
    struct cap_err fe = {0};
    if (cap_revocation_row_build(&f, now, &row, &fe) != 0) {
        cap_err_set(err, fe.code, "%s", fe.msg);
        return -1;
    }
    json_object *d = json_tokener_parse(row.facts);
    cap_revocation_row_cleanup(&row);
    if (!d) {
        cap_err_set(err, CAP_E_NOMEM, "revocation finding: out of memory");
        return -1;
    }
    char reason[160];
    snprintf(reason, sizeof reason, "%s says the certificate is revoked",
             strcmp(it->method, "crl") == 0 ? "the CRL" : "the OCSP responder");
    json_object *rr = NULL;
    if (json_object_object_get_ex(d, "reason", &rr))
        json_object_object_add(d, "revocation_reason", json_object_get(rr));
    json_object_object_add(d, "reason", json_object_new_string(reason));
    char subject[80];
    snprintf(subject, sizeof subject, "cert:%s", it->fp);
    int rc = cap_inventory_raise(rv->inv, CAP_FINDING_REVOKED, subject, 0, 0, it->fp,
                                 json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN), &fe);
    json_object_put(d);
    if (rc != 0 && fe.code == CAP_E_INVALID) {
        cap_log(CAP_LOG_WARN, "scan_revocation_finding_refused", CAP_LI("run_id", rv->ctx->run_id),
                CAP_LS("fingerprint", it->fp), CAP_LS("err", fe.msg));
        return 0;
    }
    if (rc != 0)
        cap_err_set(err, fe.code, "%s", fe.msg);
    return rc;
}

static int write_results(struct cap_revocation *rv, struct cap_err *err)
{
    PGconn *c = rv->ctx->pg;
    int64_t now = (int64_t)time(NULL);
    if (cap_pg_cmd(c, "begin revocation results", SQL_BEGIN, 0, NULL, err) != 0)
        return -1;
    int rc = cap_run_fence(rv->ctx, err);
    size_t written = 0, refused = 0;
    for (size_t i = 0; i < rv->n && rc == 0; i++) {
        struct item *it = &rv->items[i];
        if (it->ans == ANS_NONE && (it->errors_n || it->errors_more))
            it->ans = ANS_ERROR;
        if (it->ans == ANS_NONE)
            continue;
        bool stored = false;
        rc = write_item(rv, it, now, &stored, err);
        written += stored;
        refused += rc == 0 && !stored;
    }
    if (rc == 0)
        rc = cap_pg_cmd(c, "commit revocation results", SQL_COMMIT, 0, NULL, err);
    if (rc != 0) {
        PGresult *r = PQexec(c, SQL_ROLLBACK);
        PQclear(r);
        return -1;
    }
    if (refused > 0)
        cap_log(CAP_LOG_WARN, "scan_revocation_facts_refused", CAP_LI("run_id", rv->ctx->run_id),
                CAP_LI("written", (long long)written), CAP_LI("refused", (long long)refused));
    /* Findings go through the inventory (its batch, its fencing). */
    for (size_t i = 0; i < rv->n; i++) {
        if (rv->items[i].ans == ANS_REVOKED && raise_revoked(rv, &rv->items[i], now, err) != 0)
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
            CAP_LI("not_checked", (long long)rv->dropped), CAP_LI("bytes", (long long)rv->spent));
    return write_results(rv, err);
}
