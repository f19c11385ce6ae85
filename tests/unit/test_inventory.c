/* Tests of worker/inventory. Without arguments: the checks made before anything is queued
 * (the pure finding rules are in test_findings.c). With --pg URL (as tests/e2e/test_inventory.py
 * runs it against a migrated throwaway PostgreSQL): a three-run scenario through the real writer,
 * checking the rows, drift, idempotence, fencing and finding resolution; then re-scans that
 * confirm what is stored (nothing rewritten, findings still counted as raised by the run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/pg.h"
#include "common/x509.h"
#include "worker/inventory.h"

static int failures;
static int checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(want, got)                                                                       \
    do {                                                                                           \
        checks++;                                                                                  \
        long long w_ = (long long)(want), g_ = (long long)(got);                                   \
        if (w_ != g_) {                                                                            \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: want %lld, got %lld (%s)\n", __FILE__, __LINE__, w_, g_,       \
                    #got);                                                                         \
        }                                                                                          \
    } while (0)

#define CHECK_STR(want, got)                                                                       \
    do {                                                                                           \
        checks++;                                                                                  \
        const char *w_ = (want), *g_ = (got);                                                      \
        if (!g_ || strcmp(w_, g_) != 0) {                                                          \
            failures++;                                                                            \
            fprintf(stderr, "%s:%d: want \"%s\", got \"%s\"\n", __FILE__, __LINE__, w_,            \
                    g_ ? g_ : "(null)");                                                           \
        }                                                                                          \
    } while (0)

/* ---- arguments, checked before anything is queued (no database needed) ---- */

static void test_raise_arguments(void)
{
    struct cap_config cfg = {0};
    struct cap_run_ctx ctx = {.cfg = &cfg, .run_id = 7, .source_id = 3, .attempt = 1};
    struct cap_err err = {0};
    struct cap_inventory *inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    CHECK(inv != NULL);
    /* The subject must be the kind's (the catalogue's subject prefix, then something). */
    CHECK_INT(
        -1, cap_inventory_raise(inv, CAP_FINDING_POLICY_BLOCK, "source:3", 0, 0, NULL, NULL, &err));
    CHECK_INT(CAP_E_INVALID, err.code);
    CHECK(strstr(err.msg, "\"run:\"") != NULL);
    cap_err_clear(&err);
    CHECK_INT(-1,
              cap_inventory_raise(inv, CAP_FINDING_UNRESOLVABLE, "name:", 0, 0, NULL, NULL, &err));
    cap_err_clear(&err);
    CHECK_INT(-1, cap_inventory_raise(inv, CAP_FINDING_EXPIRED, NULL, 0, 0, NULL, NULL, &err));
    cap_err_clear(&err);
    /* Details must be a JSON object. */
    CHECK_INT(-1,
              cap_inventory_raise(inv, CAP_FINDING_POLICY_BLOCK, "run:7", 0, 0, NULL, "[1]", &err));
    CHECK(strstr(err.msg, "not a JSON object") != NULL);
    cap_err_clear(&err);
    /* Endpoint findings by address are for endpoint kinds only. */
    CHECK_INT(-1, cap_inventory_raise_endpoint(inv, CAP_FINDING_EXPIRED, "127.0.0.1", 443, "", NULL,
                                               &err));
    cap_err_clear(&err);
    CHECK_INT(
        -1, cap_inventory_raise_endpoint(inv, CAP_FINDING_TLS_ERROR, "host", 443, "", NULL, &err));
    cap_err_clear(&err);
    CHECK_INT(-1, cap_inventory_count_empty(inv, "quiet"));
    /* What is valid is queued (and discarded with the writer: no database here). */
    CHECK_INT(0,
              cap_inventory_raise(inv, CAP_FINDING_POLICY_BLOCK, "run:7", 0, 0, NULL, NULL, &err));
    CHECK_INT(0, cap_inventory_raise(inv, CAP_FINDING_REVOKED, "cert:ab", 0, 0, "ab", "{}", &err));
    CHECK_INT(0, cap_inventory_count_empty(inv, "silent"));
    cap_inventory_free(inv);
}

/* ---- the PostgreSQL scenario ---- */

static PGconn *pg;

static long long q_int(const char *sql, const char *p1)
{
    const char *params[] = {p1};
    PGresult *r = PQexecParams(pg, sql, p1 ? 1 : 0, NULL, params, NULL, NULL, 0);
    long long v = -1;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        fprintf(stderr, "query failed: %s: %s\n", sql, PQerrorMessage(pg));
    } else {
        v = PQgetisnull(r, 0, 0) ? -1 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    }
    PQclear(r);
    return v;
}

static char *q_text(const char *sql, const char *p1)
{
    const char *params[] = {p1};
    PGresult *r = PQexecParams(pg, sql, p1 ? 1 : 0, NULL, params, NULL, NULL, 0);
    char *v = NULL;
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        fprintf(stderr, "query failed: %s: %s\n", sql, PQerrorMessage(pg));
    } else if (!PQgetisnull(r, 0, 0)) {
        v = strdup(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return v;
}

static void q_cmd(const char *sql, const char *p1)
{
    const char *params[] = {p1};
    PGresult *r = PQexecParams(pg, sql, p1 ? 1 : 0, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "command failed: %s: %s\n", sql, PQerrorMessage(pg));
        exit(2);
    }
    PQclear(r);
}

struct der {
    uint8_t *p;
    size_t n;
};

static struct der make_cert(EVP_PKEY *key, EVP_PKEY *signer, const char *cn, const char *issuer_cn,
                            const char *san, const EVP_MD *md, time_t nb, time_t na, long serial)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    ASN1_TIME_set(X509_getm_notBefore(x), nb);
    ASN1_TIME_set(X509_getm_notAfter(x), na);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(X509_get_issuer_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)issuer_cn, -1, -1, 0);
    X509_set_pubkey(x, key);
    if (san) {
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    X509_sign(x, signer, md);
    struct der d = {0};
    unsigned char *buf = NULL;
    int n = i2d_X509(x, &buf);
    if (n <= 0) {
        fprintf(stderr, "cannot encode test certificate\n");
        exit(2);
    }
    d.p = buf;
    d.n = (size_t)n;
    X509_free(x);
    return d;
}

/* The precertificate of a (same names, key and serial, plus the CT poison), and the bare TBS of
 * the precert_entry a log would serve (the precertificate's TBS without the poison). */
static void make_precert(EVP_PKEY *key, EVP_PKEY *signer, time_t nb, time_t na, struct der *pre,
                         struct der *tbs)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 77);
    ASN1_TIME_set(X509_getm_notBefore(x), nb);
    ASN1_TIME_set(X509_getm_notAfter(x), na);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"ct.test", -1, -1, 0);
    X509_NAME_add_entry_by_txt(X509_get_issuer_name(x), "CN", MBSTRING_UTF8,
                               (const unsigned char *)"Inv CA", -1, -1, 0);
    X509_set_pubkey(x, key);
    /* Signed once first so the TBS carries its signature algorithm. */
    X509_sign(x, signer, EVP_sha256());
    unsigned char *tbs_der = NULL;
    int tbs_len = i2d_re_X509_tbs(x, &tbs_der);
    static const uint8_t null_der[] = {0x05, 0x00};
    ASN1_OCTET_STRING *os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, null_der, sizeof(null_der));
    X509_EXTENSION *e = X509_EXTENSION_create_by_NID(NULL, NID_ct_precert_poison, 1, os);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    ASN1_OCTET_STRING_free(os);
    X509_sign(x, signer, EVP_sha256());
    unsigned char *pre_der = NULL;
    int pre_len = i2d_X509(x, &pre_der);
    if (tbs_len <= 0 || pre_len <= 0) {
        fprintf(stderr, "cannot encode test precertificate\n");
        exit(2);
    }
    pre->p = pre_der;
    pre->n = (size_t)pre_len;
    tbs->p = tbs_der;
    tbs->n = (size_t)tbs_len;
    X509_free(x);
}

static char *fp_of(struct der d)
{
    struct cap_cert_facts f;
    if (cap_x509_facts_from_der(d.p, d.n, &f, NULL) != 0) {
        exit(2);
    }
    char *fp = strdup(f.fingerprint_sha256);
    cap_cert_facts_cleanup(&f);
    return fp;
}

static int64_t new_run(int64_t source_id)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)source_id);
    return q_int("INSERT INTO discovery_runs (source_id, trigger, status, attempts, started_at) "
                 "VALUES ($1, 'manual', 'running', 1, now()) RETURNING id",
                 s);
}

static void end_run(int64_t run_id)
{
    char s[24];
    snprintf(s, sizeof(s), "%lld", (long long)run_id);
    q_cmd("UPDATE discovery_runs SET status = 'succeeded', finished_at = now() WHERE id = $1", s);
}

static long long count_findings(const char *kind, const char *subject_like, const char *status)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM findings WHERE kind = '%s' AND subject_key LIKE '%s' "
             "AND status = '%s'",
             kind, subject_like, status);
    return q_int(sql, NULL);
}

static long long endpoint_id(const char *addr_port)
{
    /* addr_port: "127.0.0.1|443" */
    char sql[256];
    char addr[64];
    int port = 0;
    if (sscanf(addr_port, "%63[^|]|%d", addr, &port) != 2) {
        exit(2);
    }
    snprintf(sql, sizeof(sql), "SELECT id FROM endpoints WHERE address = '%s' AND port = %d", addr,
             port);
    return q_int(sql, NULL);
}

static int add_obs(struct cap_inventory *inv, const char *addr, int port, const char *sni,
                   bool named, const char *outcome, const struct der *chain, size_t chain_n,
                   const char *version, const char *cipher, uint16_t group, int verify)
{
    struct cap_der c[4];
    for (size_t i = 0; i < chain_n; i++) {
        c[i].der = chain[i].p;
        c[i].len = chain[i].n;
        c[i].x509 = NULL;
    }
    struct cap_observation o = {.host = named ? sni : addr,
                                .address = addr,
                                .port = port,
                                .sni = sni,
                                .host_is_name = named,
                                .outcome = outcome,
                                .error = strcmp(outcome, "ok") ? "handshake failure \xff" : NULL,
                                .tls_version = version,
                                .cipher_suite = cipher,
                                .kex_group_id = group,
                                .chain = c,
                                .chain_n = chain_n,
                                .verify_result = verify,
                                .verify_error = verify > 0 ? "unable to get local issuer" : NULL};
    struct cap_err err = {0};
    int rc = cap_inventory_add_observation(inv, &o, &err);
    if (rc != 0) {
        fprintf(stderr, "add observation %s:%d: %s\n", addr, port, err.msg);
    }
    return rc;
}

static int flush(struct cap_inventory *inv)
{
    struct cap_err err = {0};
    int rc = cap_inventory_flush(inv, &err);
    if (rc != 0) {
        fprintf(stderr, "flush: %s\n", err.msg);
    }
    return rc;
}

/* What the rows of source src look like now: each certificate of fps (an array literal), each
 * endpoint and each finding by row version, a finding also by run, so a rewrite shows. */
static char *row_versions(const char *src, const char *fps)
{
    char *c = q_text("SELECT string_agg(fingerprint_sha256 || '@' || xmin::text, ',' "
                     "ORDER BY fingerprint_sha256) FROM discovered_certificates "
                     "WHERE fingerprint_sha256 = ANY($1::text[])",
                     fps);
    char *e = q_text("SELECT string_agg(id || '@' || xmin::text, ',' ORDER BY id) FROM endpoints "
                     "WHERE source_id = $1::bigint",
                     src);
    char *f = q_text("SELECT string_agg(id || '@' || xmin::text || '/' || run_id, ',' ORDER BY "
                     "id) FROM findings WHERE source_id = $1::bigint AND status = 'open'",
                     src);
    size_t len = strlen(c ? c : "") + strlen(e ? e : "") + strlen(f ? f : "") + 4;
    char *out = malloc(len);
    snprintf(out, len, "%s|%s|%s", c ? c : "", e ? e : "", f ? f : "");
    free(c);
    free(e);
    free(f);
    return out;
}

static long long run_finding(const char *kind, const char *subject, const char *what)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM findings WHERE kind = '%s' AND subject_key = $1 AND status = 'open'",
             what, kind);
    return q_int(sql, subject);
}

/* Re-scans of a second source: a shared intermediate queued once per run yet still listing every
 * endpoint in its finding; a re-scan within CAP_INVENTORY_REFRESH_S that rewrites no
 * certificate, endpoint or finding and still keeps every finding it raised; a batch written
 * twice; rows refreshed once they are older; a changed finding rewritten at once. */
static void test_rescans(struct cap_config *cfg)
{
    struct cap_err err = {0};
    int64_t src = q_int("INSERT INTO discovery_sources (name, type, cidrs) "
                        "VALUES ('inv2', 'network_scan', '{127.0.1.0/29}') RETURNING id",
                        NULL);
    char srcs[24];
    snprintf(srcs, sizeof(srcs), "%lld", (long long)src);
    time_t now = time(NULL);
    EVP_PKEY *root = EVP_EC_gen("P-256"), *ki = EVP_EC_gen("P-256"), *kg = EVP_EC_gen("P-256");
    EVP_PKEY *ke = EVP_EC_gen("P-256"), *kf = EVP_EC_gen("P-256"), *kl = EVP_EC_gen("P-256");
    struct der old_int = make_cert(ki, root, "Old Intermediate", "Root", NULL, EVP_sha256(),
                                   now - 400 * 86400, now - 86400, 10);
    struct der good_int = make_cert(kg, root, "Good Intermediate", "Root", NULL, EVP_sha256(),
                                    now - 86400, now + 3650 * 86400, 11);
    struct der e = make_cert(ke, ki, "e.test", "Old Intermediate", "DNS:e.test", EVP_sha256(),
                             now - 86400, now + 365 * 86400, 12);
    struct der f = make_cert(kf, ki, "f.test", "Old Intermediate", "DNS:f.test", EVP_sha256(),
                             now - 86400, now + 365 * 86400, 13);
    struct der g = make_cert(kl, kg, "g.test", "Good Intermediate", "DNS:g.test", EVP_sha256(),
                             now - 86400, now + 365 * 86400, 14);
    char *fold = fp_of(old_int), *fgood = fp_of(good_int), *fe = fp_of(e), *ff = fp_of(f),
         *fg = fp_of(g);
    char fps[5 * 66 + 4];
    snprintf(fps, sizeof(fps), "{%s,%s,%s,%s,%s}", fold, fgood, fe, ff, fg);
    struct der ce[] = {e, old_int}, cf[] = {f, old_int}, cg[] = {g, good_int};
    char subj_e[80], subj_f[80], subj_g[80], subj_old[80];
    snprintf(subj_e, sizeof(subj_e), "cert:%s", fe);
    snprintf(subj_f, sizeof(subj_f), "cert:%s", ff);
    snprintf(subj_g, sizeof(subj_g), "cert:%s", fg);
    snprintf(subj_old, sizeof(subj_old), "cert:%s", fold);
    const char *tls = "TLS_AES_128_GCM_SHA256";

    /* Run A: the expired intermediate behind two endpoints, written in two batches; the good
     * one behind two more. */
    int64_t ra = new_run(src);
    struct cap_run_ctx ctx = {.cfg = cfg, .pg = pg, .run_id = ra, .source_id = src, .attempt = 1};
    struct cap_inventory *inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    CHECK_INT(0, add_obs(inv, "127.0.1.1", 443, "", false, "ok", ce, 2, "TLSv1.3", tls, 29, 20));
    CHECK_INT(0, flush(inv));
    CHECK_INT(0, add_obs(inv, "127.0.1.2", 443, "", false, "ok", cf, 2, "TLSv1.3", tls, 29, 20));
    CHECK_INT(0, add_obs(inv, "127.0.1.3", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.4", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, flush(inv));
    CHECK_INT(5, q_int("SELECT count(*) FROM discovered_certificates "
                       "WHERE fingerprint_sha256 = ANY($1::text[])",
                       fps));
    /* the intermediate met a second time is not parsed again, yet stays in the chain */
    char *v = q_text("SELECT string_agg(o.chain[2], ',') FROM endpoint_observations o "
                     "JOIN endpoints x ON x.id = o.endpoint_id WHERE x.address IN "
                     "('127.0.1.3', '127.0.1.4') GROUP BY o.chain[2]",
                     NULL);
    char want[400];
    snprintf(want, sizeof(want), "%s,%s", fgood, fgood);
    CHECK_STR(want, v);
    free(v);
    CHECK_INT(2, run_finding("expired", subj_old, "(details->>'endpoint_count')::int"));
    CHECK_INT(2, run_finding("pqc_vulnerable", subj_g, "(details->>'endpoint_count')::int"));
    CHECK_INT(6, q_int("SELECT count(*) FROM findings WHERE source_id = $1::bigint "
                       "AND status = 'open'",
                       srcs));
    int64_t resolved = -1;
    CHECK_INT(0, cap_inventory_resolve_missing(inv, CAP_FINDING_BY_SCAN, &resolved, &err));
    CHECK_INT(0, resolved);
    cap_inventory_free(inv);
    end_run(ra);

    /* Run B, at once: the same. Only the observations are written; the findings are confirmed
     * and not resolved. A batch written twice changes nothing. */
    char *before = row_versions(srcs, fps);
    int64_t rb = new_run(src);
    char rbs[24];
    snprintf(rbs, sizeof(rbs), "%lld", (long long)rb);
    ctx.run_id = rb;
    inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    for (int pass = 0; pass < 2; pass++) {
        CHECK_INT(0,
                  add_obs(inv, "127.0.1.1", 443, "", false, "ok", ce, 2, "TLSv1.3", tls, 29, 20));
        CHECK_INT(0,
                  add_obs(inv, "127.0.1.2", 443, "", false, "ok", cf, 2, "TLSv1.3", tls, 29, 20));
        CHECK_INT(0, add_obs(inv, "127.0.1.3", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
        CHECK_INT(0, add_obs(inv, "127.0.1.4", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
        CHECK_INT(0, flush(inv));
        char *after = row_versions(srcs, fps);
        CHECK_STR(before, after);
        free(after);
    }
    CHECK_INT(4,
              q_int("SELECT count(*) FROM endpoint_observations WHERE run_id = $1::bigint", rbs));
    CHECK_INT(6, q_int("SELECT count(DISTINCT x) FROM run_confirmed_findings, "
                       "unnest(finding_ids) AS x WHERE run_id = $1::bigint",
                       rbs));
    {
        /* This process wrote them in run A: every one of them is confirmed by its id and row
         * version alone, in both passes. */
        struct cap_inventory_stats st;
        cap_inventory_stats(inv, &st);
        fprintf(stderr, "run B: %lld findings confirmed by version, %lld certificates not sent\n",
                (long long)st.findings_by_version, (long long)st.certs_unsent);
        CHECK(st.findings_by_version >= 6);
        /* ... and its certificates, stored and fresh, are not sent again */
        CHECK(st.certs_unsent >= 3);
    }
    CHECK_INT(4, q_int("SELECT items_ok FROM discovery_runs WHERE id = $1::bigint", rbs));
    resolved = -1;
    CHECK_INT(0, cap_inventory_resolve_missing(inv, CAP_FINDING_BY_SCAN, &resolved, &err));
    CHECK_INT(0, resolved);
    CHECK_INT(0,
              q_int("SELECT count(*) FROM run_confirmed_findings WHERE run_id = $1::bigint", rbs));
    CHECK_INT(6, q_int("SELECT count(*) FROM findings WHERE source_id = $1::bigint "
                       "AND status = 'open'",
                       srcs));
    cap_inventory_free(inv);
    end_run(rb);
    free(before);

    /* Run C, the rows an hour old: refreshed. 127.0.1.1 now verifies (its untrusted goes),
     * 127.0.1.5 serves e too. */
    q_cmd("UPDATE discovered_certificates SET last_seen_at = now() - interval '2 hours' "
          "WHERE fingerprint_sha256 = ANY($1::text[])",
          fps);
    q_cmd("UPDATE endpoints SET last_seen_at = now() - interval '2 hours' "
          "WHERE source_id = $1::bigint",
          srcs);
    q_cmd("UPDATE findings SET last_seen_at = now() - interval '2 hours' "
          "WHERE source_id = $1::bigint",
          srcs);
    int64_t rc_ = new_run(src);
    char rcs[24];
    snprintf(rcs, sizeof(rcs), "%lld", (long long)rc_);
    ctx.run_id = rc_;
    inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    CHECK_INT(0, add_obs(inv, "127.0.1.1", 443, "", false, "ok", ce, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.2", 443, "", false, "ok", cf, 2, "TLSv1.3", tls, 29, 20));
    CHECK_INT(0, add_obs(inv, "127.0.1.3", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.4", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.5", 443, "", false, "ok", ce, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, flush(inv));
    resolved = -1;
    CHECK_INT(0, cap_inventory_resolve_missing(inv, CAP_FINDING_BY_SCAN, &resolved, &err));
    CHECK_INT(1, resolved);
    {
        /* every certificate an hour old is sent again, to move its last_seen_at */
        struct cap_inventory_stats st;
        cap_inventory_stats(inv, &st);
        CHECK_INT(0, (int)st.certs_unsent);
    }
    cap_inventory_free(inv);
    end_run(rc_);
    CHECK_INT(5, q_int("SELECT count(*) FROM discovered_certificates WHERE fingerprint_sha256 = "
                       "ANY($1::text[]) AND last_seen_at > now() - interval '1 minute'",
                       fps));
    CHECK_INT(5, q_int("SELECT count(*) FROM endpoints WHERE source_id = $1::bigint "
                       "AND last_seen_at > now() - interval '1 minute'",
                       srcs));
    CHECK_INT(5, q_int("SELECT count(*) FROM findings WHERE source_id = $1::bigint "
                       "AND status = 'open' AND last_seen_at > now() - interval '1 minute'",
                       srcs));
    CHECK_INT(rc_, run_finding("pqc_vulnerable", subj_g, "run_id"));
    CHECK_INT(2, run_finding("pqc_vulnerable", subj_e, "(details->>'endpoint_count')::int"));
    CHECK_INT(3, run_finding("expired", subj_old, "(details->>'endpoint_count')::int"));

    /* Run D, at once: 127.0.1.5 now serves f (a drift): e's and f's findings change and are
     * rewritten, g's stay as run C wrote them. */
    int64_t rd = new_run(src);
    char rds[24];
    snprintf(rds, sizeof(rds), "%lld", (long long)rd);
    ctx.run_id = rd;
    inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    CHECK_INT(0, add_obs(inv, "127.0.1.1", 443, "", false, "ok", ce, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.2", 443, "", false, "ok", cf, 2, "TLSv1.3", tls, 29, 20));
    CHECK_INT(0, add_obs(inv, "127.0.1.3", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.4", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.5", 443, "", false, "ok", cf, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, flush(inv));
    resolved = -1;
    CHECK_INT(0, cap_inventory_resolve_missing(inv, CAP_FINDING_BY_SCAN, &resolved, &err));
    CHECK_INT(0, resolved);
    cap_inventory_free(inv);
    end_run(rd);
    CHECK_INT(1, q_int("SELECT count(*) FROM drift_events WHERE run_id = $1::bigint", rds));
    CHECK_INT(rd, run_finding("pqc_vulnerable", subj_e, "run_id"));
    CHECK_INT(rd, run_finding("pqc_vulnerable", subj_f, "run_id"));
    CHECK_INT(rc_, run_finding("pqc_vulnerable", subj_g, "run_id"));
    CHECK_INT(1, run_finding("pqc_vulnerable", subj_e, "(details->>'endpoint_count')::int"));
    CHECK_INT(2, run_finding("pqc_vulnerable", subj_f, "(details->>'endpoint_count')::int"));
    CHECK_INT(6, q_int("SELECT count(*) FROM findings WHERE source_id = $1::bigint "
                       "AND status = 'open'",
                       srcs));

    /* Acknowledged findings: one with no end and one until tomorrow are confirmed as they
     * stand (still acknowledged, not rewritten, not resolved); one whose acknowledgement has
     * just ended is refreshed, and the refresh opens it again. */
    q_cmd("UPDATE findings SET status = 'acknowledged', ack_reason = 'known' "
          "WHERE subject_key = $1",
          subj_g);
    q_cmd("UPDATE findings SET status = 'acknowledged', ack_reason = 'replaced soon', "
          "ack_until = now() + interval '1 day' WHERE subject_key = $1",
          subj_old);
    char *acked = q_text("SELECT string_agg(id || '@' || xmin::text, ',' ORDER BY id) "
                         "FROM findings WHERE status = 'acknowledged'",
                         NULL);
    char subj_ep2[48];
    snprintf(subj_ep2, sizeof(subj_ep2), "endpoint:%lld", endpoint_id("127.0.1.2|443"));
    q_cmd("UPDATE findings SET status = 'acknowledged', ack_reason = 'for a second', "
          "ack_until = now() + interval '1 second' WHERE kind = 'untrusted' AND subject_key = $1",
          subj_ep2);
    struct timespec pause = {1, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
    int64_t re = new_run(src);
    ctx.run_id = re;
    inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    CHECK_INT(0, add_obs(inv, "127.0.1.1", 443, "", false, "ok", ce, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.2", 443, "", false, "ok", cf, 2, "TLSv1.3", tls, 29, 20));
    CHECK_INT(0, add_obs(inv, "127.0.1.3", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.4", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.5", 443, "", false, "ok", cf, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, flush(inv));
    resolved = -1;
    CHECK_INT(0, cap_inventory_resolve_missing(inv, CAP_FINDING_BY_SCAN, &resolved, &err));
    CHECK_INT(0, resolved);
    cap_inventory_free(inv);
    end_run(re);
    v = q_text("SELECT status || ' ' || run_id FROM findings WHERE subject_key = $1", subj_g);
    snprintf(want, sizeof(want), "acknowledged %lld", (long long)rc_);
    CHECK_STR(want, v);
    free(v);
    v = q_text("SELECT string_agg(id || '@' || xmin::text, ',' ORDER BY id) "
               "FROM findings WHERE status = 'acknowledged'",
               NULL);
    CHECK_STR(acked, v);
    free(v);
    free(acked);
    char res_[24];
    snprintf(res_, sizeof(res_), "%lld", (long long)re);
    v = q_text("SELECT status || ' ' || reopen_reason || ' ' || run_id FROM findings "
               "WHERE kind = 'untrusted' AND subject_key = $1",
               subj_ep2);
    snprintf(want, sizeof(want), "open expired %s", res_);
    CHECK_STR(want, v);
    free(v);

    /* Run F: two endpoints swap certificates, so each certificate is served by as many
     * endpoints as before, but not the same ones: both findings list their new endpoints. */
    int64_t rf = new_run(src);
    ctx.run_id = rf;
    inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    CHECK_INT(0, add_obs(inv, "127.0.1.1", 443, "", false, "ok", ce, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.2", 443, "", false, "ok", cf, 2, "TLSv1.3", tls, 29, 20));
    CHECK_INT(0, add_obs(inv, "127.0.1.3", 443, "", false, "ok", cf, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.4", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, add_obs(inv, "127.0.1.5", 443, "", false, "ok", cg, 2, "TLSv1.3", tls, 29, 0));
    CHECK_INT(0, flush(inv));
    CHECK_INT(0, cap_inventory_resolve_missing(inv, CAP_FINDING_BY_SCAN, &resolved, &err));
    cap_inventory_free(inv);
    end_run(rf);
    static const char listed[] =
        "SELECT (details->>'endpoint_count') || ':' || string_agg(e->>'address', ',' "
        "ORDER BY e->>'address') FROM findings, jsonb_array_elements(details->'endpoints') e "
        "WHERE kind = 'pqc_vulnerable' AND subject_key = $1 GROUP BY details";
    v = q_text(listed, subj_f);
    CHECK_STR("2:127.0.1.2,127.0.1.3", v);
    free(v);
    v = q_text(listed, subj_g);
    CHECK_STR("2:127.0.1.4,127.0.1.5", v);
    free(v);

    EVP_PKEY *keys[] = {root, ki, kg, ke, kf, kl};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        EVP_PKEY_free(keys[i]);
    }
    struct der ders[] = {old_int, good_int, e, f, g};
    for (size_t i = 0; i < sizeof(ders) / sizeof(ders[0]); i++) {
        OPENSSL_free(ders[i].p);
    }
    char *fpv[] = {fold, fgood, fe, ff, fg};
    for (size_t i = 0; i < sizeof(fpv) / sizeof(fpv[0]); i++) {
        free(fpv[i]);
    }
}

static int run_pg(const char *url)
{
    struct cap_err err = {0};
    pg = cap_pg_connect(url, "test_inventory", &err);
    if (!pg) {
        fprintf(stderr, "connect: %s\n", err.msg);
        return 2;
    }
    int64_t src = q_int("INSERT INTO discovery_sources (name, type, cidrs) "
                        "VALUES ('inv', 'network_scan', '{127.0.0.0/29}') RETURNING id",
                        NULL);
    struct cap_config cfg = {0};
    cfg.scan_expiring_days = 14;
    time_t now = time(NULL);

    EVP_PKEY *ca_key = EVP_RSA_gen(2048);
    EVP_PKEY *ka = EVP_EC_gen("P-256"), *kb = EVP_EC_gen("P-256");
    EVP_PKEY *kc = EVP_RSA_gen(1024), *kd = EVP_EC_gen("P-384");
    struct der ca = make_cert(ca_key, ca_key, "Inv CA", "Inv CA", NULL, EVP_sha256(), now - 86400,
                              now + 3650 * 86400, 1);
    struct der a = make_cert(ka, ca_key, "a.test", "Inv CA", "DNS:a.test", EVP_sha256(),
                             now - 86400, now + 365 * 86400, 2);
    struct der b = make_cert(kb, ca_key, "a.test", "Inv CA", "DNS:a.test,DNS:b.test", EVP_sha256(),
                             now - 86400, now + 365 * 86400, 3);
    struct der c = make_cert(kc, kc, "old.test", "old.test", "DNS:X.test,DNS:x.test", EVP_sha1(),
                             now - 400 * 86400, now - 86400, 4);
    struct der d = make_cert(kd, ca_key, "soon.test", "Inv CA", "DNS:soon.test", EVP_sha256(),
                             now - 86400, now + 3 * 86400, 5);
    char *fa = fp_of(a), *fb = fp_of(b), *fc = fp_of(c), *fd = fp_of(d), *fca = fp_of(ca);

    /* Run 1. */
    int64_t run1 = new_run(src);
    struct cap_run_ctx ctx = {
        .cfg = &cfg, .pg = pg, .run_id = run1, .source_id = src, .attempt = 1};
    struct cap_inventory *inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    struct der chain_a[] = {a, ca}, chain_b[] = {b, ca}, chain_c[] = {c}, chain_d[] = {d};
    CHECK_INT(0, add_obs(inv, "127.0.0.1", 443, "a.test", true, "ok", chain_a, 2, "TLSv1.3",
                         "TLS_AES_128_GCM_SHA256", 0x001d, 0));
    CHECK_INT(0, add_obs(inv, "127.0.0.2", 443, "", false, "ok", chain_c, 1, "TLSv1",
                         "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x0017, 20));
    CHECK_INT(0, add_obs(inv, "127.0.0.3", 443, "", false, "refused", NULL, 0, NULL, NULL, 0, -1));
    CHECK_INT(
        0, add_obs(inv, "127.0.0.4", 8443, "", false, "tls_error", chain_d, 1, NULL, NULL, 0, -1));
    /* Bad arguments queue nothing. */
    struct cap_observation bad = {.address = "not-an-ip", .port = 443, .outcome = "ok"};
    cap_err_clear(&err);
    CHECK_INT(-1, cap_inventory_add_observation(inv, &bad, &err));
    CHECK(strstr(err.msg, "not-an-ip") != NULL);
    bad.address = "127.0.0.9";
    bad.outcome = "maybe";
    CHECK_INT(-1, cap_inventory_add_observation(inv, &bad, NULL));
    CHECK_INT(0, flush(inv));
    CHECK_INT(0, flush(inv)); /* nothing queued: no-op */

    CHECK_INT(4, q_int("SELECT count(*) FROM discovered_certificates", NULL));
    CHECK_INT(4, q_int("SELECT count(*) FROM endpoints", NULL));
    CHECK_INT(4, q_int("SELECT count(*) FROM endpoint_observations", NULL));
    CHECK_INT(0, q_int("SELECT count(*) FROM drift_events", NULL));
    char r1[24];
    snprintf(r1, sizeof(r1), "%lld", (long long)run1);
    CHECK_INT(4, q_int("SELECT new_certificates FROM discovery_runs WHERE id = $1", r1));
    CHECK_INT(4, q_int("SELECT targets_done FROM discovery_runs WHERE id = $1", r1));
    CHECK_INT(2, q_int("SELECT ok_count FROM discovery_runs WHERE id = $1", r1));
    CHECK_INT(1, q_int("SELECT unreachable_count FROM discovery_runs WHERE id = $1", r1));
    /* The generic counters: ok, and refused + tls_error failed; the scan's own in stats. */
    char *v = q_text("SELECT items_done || ' ' || items_ok || ' ' || items_failed || ' ' || "
                     "(stats->>'unreachable') || ' ' || (stats->>'tls_error') || ' ' || "
                     "(stats ? 'silent')::text FROM discovery_runs WHERE id = $1",
                     r1);
    CHECK_STR("4 2 2 1 1 false", v);
    free(v);
    struct cap_inventory_stats st;
    cap_inventory_stats(inv, &st);
    CHECK_INT(4, st.certs_new);
    CHECK_INT(1, st.batches);

    /* Certificate rows. */
    v = q_text("SELECT pqc_class || ' ' || key_algorithm || ' ' || key_bits || ' ' || "
               "self_signed || ' ' || array_to_string(sans, ',') || ' ' || "
               "signature_algorithm FROM discovered_certificates "
               "WHERE fingerprint_sha256 = $1",
               fc);
    CHECK_STR("vulnerable RSA 1024 true X.test,x.test sha1WithRSAEncryption", v);
    free(v);
    v = q_text("SELECT key_curve || ' ' || pqc_class || ' ' || (first_seen_run_id IS NOT NULL) "
               "|| ' ' || (der = decode(fingerprint_sha256, 'hex'))::text "
               "FROM discovered_certificates WHERE fingerprint_sha256 = $1",
               fa);
    CHECK_STR("P-256 transition true false", v);
    free(v);
    CHECK_INT(1, q_int("SELECT count(*) FROM discovered_certificates WHERE "
                       "encode(sha256(der), 'hex') = fingerprint_sha256 AND "
                       "fingerprint_sha256 = $1",
                       fa));
    /* Endpoints and observations. */
    v = q_text("SELECT e.status || ' ' || e.host || ' ' || e.sni || ' ' || o.tls_version || ' ' "
               "|| o.kex_group || ' ' || o.kex_group_id || ' ' || o.kex_pqc || ' ' || "
               "cardinality(o.chain) FROM endpoints e JOIN endpoint_observations o "
               "ON o.endpoint_id = e.id WHERE e.fingerprint_sha256 = $1",
               fa);
    CHECK_STR("online a.test a.test TLSv1.3 x25519 29 classical 2", v);
    free(v);
    v = q_text("SELECT e.status || ' ' || coalesce(e.fingerprint_sha256, '-') || ' ' || "
               "o.outcome || ' ' || o.error FROM endpoints e JOIN endpoint_observations o "
               "ON o.endpoint_id = e.id WHERE e.address = '127.0.0.3'",
               NULL);
    CHECK_STR("offline - refused handshake failure \\xff", v);
    free(v);
    v = q_text("SELECT e.status || ' ' || coalesce(e.fingerprint_sha256, '-') || ' ' || "
               "o.fingerprint_sha256 FROM endpoints e JOIN endpoint_observations o "
               "ON o.endpoint_id = e.id WHERE e.address = '127.0.0.4'",
               NULL);
    char want[200];
    snprintf(want, sizeof(want), "unknown - %s", fd);
    CHECK_STR(want, v);
    free(v);

    /* Findings of run 1. */
    CHECK_INT(1, count_findings("deprecated_tls", "endpoint:%", "open"));
    CHECK_INT(1, count_findings("weak_cipher", "endpoint:%", "open"));
    CHECK_INT(1, count_findings("untrusted", "endpoint:%", "open"));
    CHECK_INT(1, count_findings("unreachable", "endpoint:%", "open"));
    CHECK_INT(1, count_findings("tls_error", "endpoint:%", "open"));
    CHECK_INT(0, count_findings("name_mismatch", "%", "open"));
    CHECK_INT(1, count_findings("expired", "cert:%", "open"));
    CHECK_INT(1, count_findings("self_signed", "cert:%", "open"));
    CHECK_INT(1, count_findings("weak_signature", "cert:%", "open"));
    CHECK_INT(1, count_findings("weak_key", "cert:%", "open"));
    CHECK_INT(1, count_findings("san_case_duplicate", "cert:%", "open"));
    CHECK_INT(1, count_findings("expiring", "cert:%", "open"));
    /* a, c, d (leaves); the CA is a chain certificate. */
    CHECK_INT(3, count_findings("pqc_vulnerable", "cert:%", "open"));
    long long e2 = endpoint_id("127.0.0.2|443");
    char e2s[24];
    snprintf(e2s, sizeof(e2s), "%lld", e2);
    CHECK_INT(e2, q_int("SELECT (details->'endpoints'->0->>'id')::bigint FROM findings "
                        "WHERE kind = 'expired'",
                        NULL));
    CHECK_INT(1, q_int("SELECT (details->>'endpoint_count')::int FROM findings "
                       "WHERE kind = 'expired'",
                       NULL));
    CHECK_INT(e2, q_int("SELECT endpoint_id FROM findings WHERE kind = 'untrusted'", NULL));
    v = q_text("SELECT details->>'reason' FROM findings WHERE kind = 'weak_cipher'", NULL);
    CHECK_STR("negotiated TLS_RSA_WITH_3DES_EDE_CBC_SHA (3DES)", v);
    free(v);
    long long total_open = q_int("SELECT count(*) FROM findings WHERE status = 'open'", NULL);
    CHECK_INT(14, total_open);

    /* The same observations again in the same run (a redelivered job): nothing new. */
    CHECK_INT(0, add_obs(inv, "127.0.0.1", 443, "a.test", true, "ok", chain_a, 2, "TLSv1.3",
                         "TLS_AES_128_GCM_SHA256", 0x001d, 0));
    CHECK_INT(0, add_obs(inv, "127.0.0.2", 443, "", false, "ok", chain_c, 1, "TLSv1",
                         "TLS_RSA_WITH_3DES_EDE_CBC_SHA", 0x0017, 20));
    CHECK_INT(0, flush(inv));
    CHECK_INT(4, q_int("SELECT count(*) FROM endpoint_observations", NULL));
    CHECK_INT(total_open, q_int("SELECT count(*) FROM findings", NULL));
    int64_t resolved = -1;
    CHECK_INT(0, cap_inventory_resolve_missing(inv, CAP_FINDING_BY_SCAN, &resolved, &err));
    CHECK_INT(0, resolved);
    cap_inventory_free(inv);
    end_run(run1);

    /* Run 2: 127.0.0.1 now serves b (drift), 127.0.0.2 got fixed, 127.0.0.3 times out,
     * 127.0.0.4 is not reached at all. */
    int64_t run2 = new_run(src);
    ctx.run_id = run2;
    inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    CHECK_INT(0, add_obs(inv, "127.0.0.1", 443, "a.test", true, "ok", chain_b, 2, "TLSv1.3",
                         "TLS_AES_128_GCM_SHA256", 0x11ec, 0));
    CHECK_INT(0, add_obs(inv, "127.0.0.2", 443, "", false, "ok", chain_c, 1, "TLSv1.2",
                         "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 0x0017, 0));
    CHECK_INT(0, add_obs(inv, "127.0.0.3", 443, "", false, "timeout", NULL, 0, NULL, NULL, 0, -1));
    CHECK_INT(0, flush(inv));
    char r2[24];
    snprintf(r2, sizeof(r2), "%lld", (long long)run2);
    CHECK_INT(1, q_int("SELECT count(*) FROM drift_events WHERE run_id = $1", r2));
    v = q_text("SELECT array_to_string(changed, ',') || ' ' || old_fingerprint_sha256 "
               "FROM drift_events WHERE run_id = $1",
               r2);
    snprintf(want, sizeof(want), "fingerprint,public_key,sans %s", fa);
    CHECK_STR(want, v);
    free(v);
    CHECK_INT(1, q_int("SELECT drift_count FROM discovery_runs WHERE id = $1", r2));
    CHECK_INT(1, q_int("SELECT new_certificates FROM discovery_runs WHERE id = $1", r2));
    CHECK_INT(1, count_findings("drift", "endpoint:%", "open"));
    v = q_text("SELECT kex_pqc || ' ' || kex_group FROM endpoint_observations o "
               "JOIN endpoints e ON e.id = o.endpoint_id "
               "WHERE o.run_id = $1 AND e.address = '127.0.0.1'",
               r2);
    CHECK_STR("hybrid X25519MLKEM768", v);
    free(v);
    /* A re-run of run 2 (a second inventory, as after a reclaim) adds no second drift. */
    cap_inventory_free(inv);
    inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    CHECK_INT(0, add_obs(inv, "127.0.0.1", 443, "a.test", true, "ok", chain_b, 2, "TLSv1.3",
                         "TLS_AES_128_GCM_SHA256", 0x11ec, 0));
    CHECK_INT(0, flush(inv));
    CHECK_INT(1, q_int("SELECT count(*) FROM drift_events", NULL));
    CHECK_INT(1, q_int("SELECT drift_count FROM discovery_runs WHERE id = $1", r2));

    resolved = -1;
    CHECK_INT(0, cap_inventory_resolve_missing(inv, CAP_FINDING_BY_SCAN, &resolved, &err));
    /* 127.0.0.2's deprecated_tls, weak_cipher, untrusted; a's pqc_vulnerable (only
     * 127.0.0.1 served it, and it now serves b). d (seen at the unreached 127.0.0.4) keeps
     * its findings, and so does 127.0.0.4. */
    CHECK_INT(4, resolved);
    CHECK_INT(0, count_findings("deprecated_tls", "%", "open"));
    CHECK_INT(0, count_findings("untrusted", "%", "open"));
    CHECK_INT(1, count_findings("unreachable", "%", "open"));
    CHECK_INT(1, count_findings("tls_error", "%", "open"));
    CHECK_INT(1, count_findings("expiring", "%", "open"));
    CHECK_INT(1, count_findings("expired", "%", "open"));
    snprintf(want, sizeof(want), "cert:%s", fa);
    CHECK_INT(1, q_int("SELECT count(*) FROM findings WHERE status = 'resolved' AND "
                       "subject_key = $1",
                       want));
    cap_inventory_free(inv);
    end_run(run2);

    /* Run 3: d becomes managed and 127.0.0.4 answers with it; 127.0.0.1 goes offline (no
     * drift); 127.0.0.3 answers for the first time (no drift: no earlier ok). */
    q_cmd("INSERT INTO managed_certificates (fingerprint_sha256) VALUES ($1)", fd);
    int64_t run3 = new_run(src);
    ctx.run_id = run3;
    inv = cap_inventory_new(&ctx, CAP_INVENTORY_PROGRESS_OBSERVATIONS, &err);
    CHECK_INT(0, add_obs(inv, "127.0.0.4", 8443, "", false, "ok", chain_d, 1, "TLSv1.3",
                         "TLS_AES_128_GCM_SHA256", 0x001d, 0));
    CHECK_INT(
        0, add_obs(inv, "127.0.0.1", 443, "a.test", true, "refused", NULL, 0, NULL, NULL, 0, -1));
    CHECK_INT(0, add_obs(inv, "127.0.0.3", 443, "", false, "ok", chain_a, 2, "TLSv1.2",
                         "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", 0x0017, 0));
    CHECK_INT(0, flush(inv));
    CHECK_INT(1, q_int("SELECT count(*) FROM drift_events", NULL));
    v = q_text("SELECT status || ' ' || fingerprint_sha256 FROM endpoints "
               "WHERE address = '127.0.0.1'",
               NULL);
    snprintf(want, sizeof(want), "offline %s", fb);
    CHECK_STR(want, v);
    free(v);
    resolved = -1;
    CHECK_INT(0, cap_inventory_resolve_missing(inv, CAP_FINDING_BY_SCAN, &resolved, &err));
    /* d's expiring (managed now), 127.0.0.4's tls_error, 127.0.0.3's unreachable. */
    CHECK_INT(3, resolved);
    CHECK_INT(0, count_findings("expiring", "%", "open"));
    CHECK_INT(1, count_findings("unreachable", "%", "open")); /* 127.0.0.1 now */
    CHECK_INT(1, count_findings("drift", "%", "open"));       /* left to people */
    /* a is served again (by 127.0.0.3): its pqc_vulnerable is a new open finding. */
    snprintf(want, sizeof(want), "cert:%s", fa);
    CHECK_INT(1, q_int("SELECT count(*) FROM findings WHERE status = 'open' AND "
                       "subject_key = $1",
                       want));

    /* Sightings, explicit findings and the commit hook. */
    CHECK_INT(0,
              cap_inventory_add_sighting(inv, fa, "https://log.example/", 42, 1700000000123, &err));
    CHECK_INT(
        -1, cap_inventory_raise(inv, CAP_FINDING_POLICY_BLOCK, "run:1", 0, 0, NULL, "[1,2]", &err));
    cap_err_clear(&err);
    CHECK_INT(0, cap_inventory_raise(inv, CAP_FINDING_POLICY_BLOCK, "run:x", 0, 0, NULL,
                                     "{\"refused\":{\"169.254.0.0/16\":4}}", &err));
    /* Details with NUL escapes, controls and invalid UTF-8 are cleaned, not refused by jsonb. */
    CHECK_INT(0,
              cap_inventory_raise(inv, CAP_FINDING_CT_LOG_MISBEHAVING, "source:hostile", 0, 0, NULL,
                                  "{\"a\":\"x\\u0000y\",\"k\\u0001\":[\"\xff\",1,null]}", &err));
    CHECK_INT(0, flush(inv));
    v = q_text("SELECT (details->>'a') || ' ' || (details->'k\\x01'->>0) || ' ' || "
               "jsonb_array_length(details->'k\\x01') FROM findings "
               "WHERE subject_key = 'source:hostile'",
               NULL);
    CHECK_STR("x\\x00y \\xff 3", v);
    free(v);
    v = q_text("SELECT log_index || ' ' || extract(epoch FROM entry_timestamp)::numeric(16,3) "
               "FROM ct_sightings",
               NULL);
    CHECK_STR("42 1700000000.123", v);
    free(v);

    /* The CT monitor's shared reader: one entry stored for another source in the same batch,
     * beside the run's own, each under its source. */
    int64_t other = q_int("INSERT INTO discovery_sources (name, type, domains) "
                          "VALUES ('inv-ct-other', 'ct_log', '{example.com}') RETURNING id",
                          NULL);
    CHECK_INT(0,
              cap_inventory_add_sighting_for(inv, other, fa, "https://log.example/", 43, 0, &err));
    CHECK_INT(0, cap_inventory_add_sighting_for(inv, 0, fa, "https://log.example/", 43, 0, &err));
    CHECK_INT(0, flush(inv));
    char others[24];
    snprintf(others, sizeof(others), "%lld", (long long)other);
    CHECK_INT(1, q_int("SELECT count(*) FROM ct_sightings WHERE log_index = 43 "
                       "AND source_id = $1::bigint",
                       others));
    CHECK_INT(2, q_int("SELECT count(*) FROM ct_sightings WHERE log_index = 43", NULL));
    CHECK_INT(4, q_int("SELECT (details->'refused'->>'169.254.0.0/16')::int FROM findings "
                       "WHERE kind = 'policy_block'",
                       NULL));

    /* A CT precert_entry: facts from the TBS, row keyed by the precertificate's SHA-256. */
    struct der pre, pre_tbs;
    make_precert(ka, ca_key, now - 86400, now + 90 * 86400, &pre, &pre_tbs);
    char *fpre = fp_of(pre);
    struct cap_cert_facts pf;
    CHECK_INT(0, cap_inventory_add_precert(inv, pre.p, pre.n, pre_tbs.p, pre_tbs.n, &pf, &err));
    CHECK_STR(fpre, pf.fingerprint_sha256);
    CHECK(pf.is_precert);
    CHECK_INT(-1, cap_inventory_add_precert(inv, pre.p, pre.n, pre.p, pre.n, NULL, NULL));
    CHECK_INT(0, flush(inv));
    char *pre_hex = malloc(2 * pre.n + 3);
    memcpy(pre_hex, "\\x", 2);
    cap_x509_hex(pre.p, pre.n, pre_hex + 2);
    v = q_text("SELECT is_precert || ' ' || subject || ' ' || (der = $1::bytea)::text || ' ' || "
               "tbs_sha256 FROM discovered_certificates "
               "WHERE fingerprint_sha256 = encode(sha256($1::bytea), 'hex')",
               pre_hex);
    snprintf(want, sizeof(want), "true CN=ct.test true %s", pf.tbs_sha256);
    CHECK_STR(want, v);
    free(v);
    free(pre_hex);
    cap_cert_facts_cleanup(&pf);
    free(fpre);
    OPENSSL_free(pre.p);
    OPENSSL_free(pre_tbs.p);

    /* Fencing: another attempt took the run; the batch is refused and nothing is written. */
    char r3[24];
    snprintf(r3, sizeof(r3), "%lld", (long long)run3);
    q_cmd("UPDATE discovery_runs SET attempts = 2 WHERE id = $1", r3);
    CHECK_INT(0, add_obs(inv, "127.0.0.5", 443, "", false, "refused", NULL, 0, NULL, NULL, 0, -1));
    cap_err_clear(&err);
    CHECK_INT(-1, cap_inventory_flush(inv, &err));
    CHECK_INT(CAP_E_FENCED, err.code);
    CHECK_INT(0, q_int("SELECT count(*) FROM endpoints WHERE address = '127.0.0.5'", NULL));
    /* Back to our attempt: the batch was kept and goes through. */
    q_cmd("UPDATE discovery_runs SET attempts = 1 WHERE id = $1", r3);
    CHECK_INT(0, flush(inv));
    CHECK_INT(1, q_int("SELECT count(*) FROM endpoints WHERE address = '127.0.0.5'", NULL));
    cap_inventory_free(inv);
    end_run(run3);

    /* The progress writer: a count at -1 stays; the older columns follow the new ones, ok_count
     * from stats matches when a run has it (CT). */
    int64_t run4 = new_run(src);
    char r4[24];
    snprintf(r4, sizeof(r4), "%lld", (long long)run4);
    ctx.run_id = run4;
    cap_err_clear(&err);
    struct cap_progress p = CAP_PROGRESS_KEEP;
    p.items_total = 100;
    p.items_done = 40;
    p.items_ok = 39;
    p.items_failed = 1;
    p.stats = "{\"matches\": 7}";
    CHECK_INT(0, cap_run_progress(&ctx, &p, &err));
    p = (struct cap_progress)CAP_PROGRESS_KEEP;
    p.items_done = 50;
    p.items_ok = 49;
    CHECK_INT(0, cap_run_progress(&ctx, &p, &err));
    v = q_text("SELECT concat_ws(' ', items_total, items_done, items_ok, items_failed, "
               "targets_total, targets_done, ok_count, unreachable_count, stats->>'matches') "
               "FROM discovery_runs WHERE id = $1",
               r4);
    CHECK_STR("100 50 49 1 100 50 7 0 7", v);
    free(v);
    p.stats = "[1]";
    CHECK_INT(-1, cap_run_progress(&ctx, &p, &err));
    CHECK_INT(CAP_E_INVALID, err.code);
    cap_err_clear(&err);
    end_run(run4);
    p.stats = NULL;
    CHECK_INT(-1, cap_run_progress(&ctx, &p, &err));
    CHECK_INT(CAP_E_FENCED, err.code);

    test_rescans(&cfg);

    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ka);
    EVP_PKEY_free(kb);
    EVP_PKEY_free(kc);
    EVP_PKEY_free(kd);
    OPENSSL_free(ca.p);
    OPENSSL_free(a.p);
    OPENSSL_free(b.p);
    OPENSSL_free(c.p);
    OPENSSL_free(d.p);
    free(fa);
    free(fb);
    free(fc);
    free(fd);
    free(fca);
    PQfinish(pg);
    return 0;
}

int main(int argc, char **argv)
{
    test_raise_arguments();
    if (argc == 3 && strcmp(argv[1], "--pg") == 0) {
        if (run_pg(argv[2]) != 0) {
            return 2;
        }
    } else if (argc != 1) {
        fprintf(stderr, "usage: test_inventory [--pg URL]\n");
        return 2;
    }
    printf("test_inventory: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
