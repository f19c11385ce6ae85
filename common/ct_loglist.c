/* CT log entries of the curated list: checking one (URL, protocol, key and log ID), the
 * browsers' v3 JSON log list they may come from (ct.log_list_url, ct.log_list_file), and the
 * choice of the logs a certificate issued now can land in. */
#include "common/ct_loglist.h"

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define LOGLIST_DEPTH 16          /* JSON nesting a v3 log list may use */
#define MMD_DEFAULT_S 86400       /* maximum merge delay when none is given */
#define MMD_MAX_S (365LL * 86400) /* longest maximum merge delay accepted */
#define KEY_DER_MAX 4096          /* longest log key */
#define WHERE_MAX 192             /* "ct log list \"x.json\": operators[0].logs[1].url" */

static char *xstrndup(const char *s, size_t n, struct cap_err *err)
{
    char *d = malloc(n + 1);
    if (!d) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static char *xstrdup(const char *s, struct cap_err *err)
{
    return xstrndup(s, strlen(s), err);
}

/* Records "<where>: value "<v>" <why> (allowed <allowed>)" and returns -1. */
static int fail_value(struct cap_err *err, const char *where, const char *v, size_t vlen,
                      const char *why, const char *allowed)
{
    char q[96];
    cap_err_quote(q, sizeof q, v, vlen);
    cap_err_set(err, CAP_E_INVALID, "%s: value \"%s\" %s (allowed %s)", where, q, why, allowed);
    return -1;
}

/* Strict base64 (standard alphabet, padding required). Returns decoded length or -1. */
static long b64_decode(const char *s, unsigned char *out, size_t cap)
{
    size_t len = strlen(s);
    if (len == 0 || len % 4 != 0)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = s[i + j];
            if (c >= 'A' && c <= 'Z')
                v[j] = c - 'A';
            else if (c >= 'a' && c <= 'z')
                v[j] = c - 'a' + 26;
            else if (c >= '0' && c <= '9')
                v[j] = c - '0' + 52;
            else if (c == '+')
                v[j] = 62;
            else if (c == '/')
                v[j] = 63;
            else if (c == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
            } else
                return -1;
            if (pad && c != '=')
                return -1;
        }
        unsigned long w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
                          ((unsigned long)v[2] << 6) | (unsigned long)v[3];
        unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
        for (int j = 0; j < 3 - pad; j++) {
            if (o >= cap)
                return -1;
            out[o++] = b[j];
        }
    }
    return (long)o;
}

static char *b64_encode(const unsigned char *in, size_t n, struct cap_err *err)
{
    size_t olen = 4 * ((n + 2) / 3) + 1;
    char *out = malloc(olen);
    if (!out) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return NULL;
    }
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

/* ---------------------------------------------------------------- one entry */

void cap_ct_log_clear(struct cap_ct_log *l)
{
    free(l->url);
    free(l->protocol);
    free(l->key_b64);
    free(l->log_id_b64);
    free(l->description);
    free(l->operator_name);
    free(l->refused);
    memset(l, 0, sizeof *l);
}

void cap_ct_logs_free(struct cap_ct_log *logs, size_t n)
{
    if (!logs)
        return;
    for (size_t i = 0; i < n; i++)
        cap_ct_log_clear(&logs[i]);
    free(logs);
}

int cap_ct_loglist_push(struct cap_ct_loglist *lv, struct cap_ct_log *l, struct cap_err *err)
{
    if (lv->n == lv->cap) {
        size_t ncap = lv->cap ? lv->cap * 2 : 8;
        struct cap_ct_log *nv = realloc(lv->v, ncap * sizeof *nv);
        if (!nv) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            return -1;
        }
        lv->v = nv;
        lv->cap = ncap;
    }
    lv->v[lv->n++] = *l;
    memset(l, 0, sizeof *l);
    return 0;
}

void cap_ct_loglist_free(struct cap_ct_loglist *lv)
{
    cap_ct_logs_free(lv->v, lv->n);
    memset(lv, 0, sizeof *lv);
}

static bool has_ctl_or_space(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
            return true;
    return false;
}

static int check_ct_url(char **url, const char *where, struct cap_err *err)
{
    const char *u = *url;
    size_t plen = 0;
    if (strncasecmp(u, "https://", 8) == 0)
        plen = 8;
    else if (strncasecmp(u, "http://", 7) == 0)
        plen = 7;
    if (plen == 0 || u[plen] == '\0' || u[plen] == '/' || has_ctl_or_space(u))
        return fail_value(err, where, u, strlen(u), "is not an http:// or https:// URL",
                          "a log URL such as https://ct.example.com/2026h1/");
    size_t len = strlen(u);
    if (u[len - 1] != '/') {
        /* Keep one form: base URLs end with '/', so clients append paths without guessing. */
        char *n = malloc(len + 2);
        if (!n) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            return -1;
        }
        memcpy(n, u, len);
        n[len] = '/';
        n[len + 1] = '\0';
        free(*url);
        *url = n;
    }
    return 0;
}

int cap_ct_log_check(struct cap_ct_log *l, const char *path,
                     void (*where_cb)(const void *ctx, const char *path, char *out, size_t n),
                     const void *ctx, struct cap_err *err)
{
    char where[WHERE_MAX], sub[128];
    if (!l->url) {
        where_cb(ctx, path, where, sizeof where);
        cap_err_set(err, CAP_E_INVALID,
                    "%s: missing \"url\" (allowed a map with url, protocol, key, "
                    "log_id, description, mmd)",
                    where);
        return -1;
    }
    snprintf(sub, sizeof sub, "%s.url", path);
    where_cb(ctx, sub, where, sizeof where);
    if (check_ct_url(&l->url, where, err) != 0)
        return -1;
    if (!l->protocol && !(l->protocol = xstrdup("rfc6962", err)))
        return -1;
    if (strcmp(l->protocol, "rfc6962") != 0 && strcmp(l->protocol, "static-ct") != 0 &&
        strcmp(l->protocol, "auto") != 0) {
        snprintf(sub, sizeof sub, "%s.protocol", path);
        where_cb(ctx, sub, where, sizeof where);
        return fail_value(err, where, l->protocol, strlen(l->protocol), "is not a CT protocol",
                          "rfc6962, static-ct, auto");
    }
    unsigned char id[SHA256_DIGEST_LENGTH];
    bool have_id = false;
    if (l->key_b64) {
        snprintf(sub, sizeof sub, "%s.key", path);
        where_cb(ctx, sub, where, sizeof where);
        unsigned char *der = malloc(KEY_DER_MAX);
        if (!der) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            return -1;
        }
        long dlen = b64_decode(l->key_b64, der, KEY_DER_MAX);
        const unsigned char *p = der;
        EVP_PKEY *pk = dlen > 0 ? d2i_PUBKEY(NULL, &p, dlen) : NULL;
        bool ok = pk && p == der + dlen;
        EVP_PKEY_free(pk);
        if (ok)
            SHA256(der, (size_t)dlen, id);
        free(der);
        if (!ok)
            return fail_value(err, where, l->key_b64, strlen(l->key_b64),
                              dlen < 0 ? "is not base64" : "is not a DER SubjectPublicKeyInfo",
                              "the log's public key as base64 DER SubjectPublicKeyInfo");
        have_id = true;
    }
    if (l->log_id_b64) {
        snprintf(sub, sizeof sub, "%s.log_id", path);
        where_cb(ctx, sub, where, sizeof where);
        unsigned char given[SHA256_DIGEST_LENGTH + 1];
        long glen = b64_decode(l->log_id_b64, given, sizeof given);
        if (glen != SHA256_DIGEST_LENGTH)
            return fail_value(err, where, l->log_id_b64, strlen(l->log_id_b64),
                              "is not a base64 SHA-256 hash", "32 bytes in base64");
        if (have_id && memcmp(given, id, sizeof id) != 0)
            return fail_value(err, where, l->log_id_b64, strlen(l->log_id_b64),
                              "does not match the key", "the base64 SHA-256 of key");
    } else if (have_id) {
        if (!(l->log_id_b64 = b64_encode(id, sizeof id, err)))
            return -1;
    }
    if (l->mmd_s == 0)
        l->mmd_s = MMD_DEFAULT_S;
    return 0;
}

/* ---------------------------------------------------------------- v3 JSON log list */

struct jctx {
    const char *name; /* quoted file name */
    struct cap_err *err;
};

/* The message prefix naming path in the list. */
static void list_where(const struct jctx *j, const char *path, char *out, size_t n)
{
    snprintf(out, n, "ct log list %s: %s", j->name, path);
}

static void list_where_cb(const void *ctx, const char *path, char *out, size_t n)
{
    list_where(ctx, path, out, n);
}

static int jerr_type(const struct jctx *j, const char *path, const char *want,
                     const json_object *got)
{
    cap_err_set(j->err, CAP_E_INVALID, "ct log list %s: %s: expected %s, got %s", j->name, path,
                want, got ? json_type_to_name(json_object_get_type(got)) : "nothing");
    return -1;
}

/* Copies the string member key of obj into *dst; absent is fine unless required. */
static int jstr(const struct jctx *j, json_object *obj, const char *key, const char *path,
                bool required, char **dst)
{
    json_object *v = NULL;
    char sub[128];
    snprintf(sub, sizeof sub, "%s.%s", path, key);
    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null)) {
        if (required)
            return jerr_type(j, sub, "a string", NULL);
        return 0;
    }
    if (!json_object_is_type(v, json_type_string))
        return jerr_type(j, sub, "a string", v);
    const char *s = json_object_get_string(v);
    size_t len = (size_t)json_object_get_string_len(v);
    if (memchr(s, '\0', len)) {
        char where[WHERE_MAX];
        list_where(j, sub, where, sizeof where);
        return fail_value(j->err, where, s, len, "contains a NUL byte", "text without NUL bytes");
    }
    char *d = xstrndup(s, len, j->err);
    if (!d)
        return -1;
    free(*dst);
    *dst = d;
    return 0;
}

/* A member of obj holding an RFC 3339 timestamp, into *out (left as it is when absent). */
static int jtime(const struct jctx *j, json_object *obj, const char *key, const char *path,
                 int64_t *out)
{
    char *s = NULL;
    char sub[160];
    snprintf(sub, sizeof sub, "%s.%s", path, key);
    if (jstr(j, obj, key, path, false, &s) != 0)
        return -1;
    if (!s)
        return 0;
    int64_t t;
    if (cap_ct_parse_time(s, &t) != 0) {
        char where[WHERE_MAX];
        list_where(j, sub, where, sizeof where);
        fail_value(j->err, where, s, strlen(s), "is not a timestamp",
                   "RFC 3339 such as 2026-01-01T00:00:00Z");
        free(s);
        return -1;
    }
    free(s);
    *out = t;
    return 0;
}

static const char *const STATE_NAMES[] = {"",         "pending", "qualified", "usable",
                                          "readonly", "retired", "rejected"};

const char *cap_ct_log_state_name(enum cap_ct_log_state s)
{
    if ((unsigned)s >= sizeof STATE_NAMES / sizeof STATE_NAMES[0])
        return "";
    return STATE_NAMES[s];
}

/* The "state" object of a log: one of the six states, with its timestamp; a readonly log's
 * final tree head. Absent or null: no state. */
static int jstate(const struct jctx *j, json_object *lo, const char *path, struct cap_ct_log *l)
{
    json_object *state = NULL;
    char sub[128];
    if (!json_object_object_get_ex(lo, "state", &state) ||
        json_object_is_type(state, json_type_null))
        return 0;
    snprintf(sub, sizeof sub, "%s.state", path);
    if (!json_object_is_type(state, json_type_object))
        return jerr_type(j, sub, "an object", state);
    json_object_object_foreach(state, k, v)
    {
        enum cap_ct_log_state st = CAP_CT_STATE_NONE;
        for (size_t i = 1; i < sizeof STATE_NAMES / sizeof STATE_NAMES[0]; i++)
            if (strcmp(k, STATE_NAMES[i]) == 0)
                st = (enum cap_ct_log_state)i;
        char where[WHERE_MAX];
        if (st == CAP_CT_STATE_NONE || l->state != CAP_CT_STATE_NONE) {
            list_where(j, sub, where, sizeof where);
            return fail_value(j->err, where, k, strlen(k),
                              st == CAP_CT_STATE_NONE ? "is not a log state" : "is a second state",
                              "one of usable, qualified, readonly, retired, pending, rejected");
        }
        char ssub[160];
        snprintf(ssub, sizeof ssub, "%s.%s", sub, k);
        if (json_object_is_type(v, json_type_null))
            continue;
        if (!json_object_is_type(v, json_type_object))
            return jerr_type(j, ssub, "an object", v);
        l->state = st;
        if (jtime(j, v, "timestamp", ssub, &l->state_at) != 0)
            return -1;
        json_object *fth = NULL, *ts = NULL;
        if (st == CAP_CT_STATE_READONLY && json_object_object_get_ex(v, "final_tree_head", &fth) &&
            !json_object_is_type(fth, json_type_null)) {
            char fsub[192];
            snprintf(fsub, sizeof fsub, "%s.final_tree_head", ssub);
            if (!json_object_is_type(fth, json_type_object))
                return jerr_type(j, fsub, "an object", fth);
            snprintf(fsub, sizeof fsub, "%s.final_tree_head.tree_size", ssub);
            if (!json_object_object_get_ex(fth, "tree_size", &ts) ||
                !json_object_is_type(ts, json_type_int))
                return jerr_type(j, fsub, "an integer", ts);
            int64_t n = json_object_get_int64(ts);
            if (n < 0) {
                char num[32];
                list_where(j, fsub, where, sizeof where);
                snprintf(num, sizeof num, "%lld", (long long)n);
                return fail_value(j->err, where, num, strlen(num), "is out of range",
                                  "0 or more entries");
            }
            l->final_tree_size = n;
        }
    }
    return 0;
}

/* The "temporal_interval" of a log: start_inclusive and end_exclusive, either may be open. */
static int jinterval(const struct jctx *j, json_object *lo, const char *path, struct cap_ct_log *l)
{
    json_object *ti = NULL;
    char sub[128];
    if (!json_object_object_get_ex(lo, "temporal_interval", &ti) ||
        json_object_is_type(ti, json_type_null))
        return 0;
    snprintf(sub, sizeof sub, "%s.temporal_interval", path);
    if (!json_object_is_type(ti, json_type_object))
        return jerr_type(j, sub, "an object", ti);
    if (jtime(j, ti, "start_inclusive", sub, &l->interval_start) != 0 ||
        jtime(j, ti, "end_exclusive", sub, &l->interval_end) != 0)
        return -1;
    if (l->interval_start && l->interval_end && l->interval_end <= l->interval_start) {
        char where[WHERE_MAX], v[64];
        snprintf(v, sizeof v, "%lld..%lld", (long long)l->interval_start,
                 (long long)l->interval_end);
        list_where(j, sub, where, sizeof where);
        return fail_value(j->err, where, v, strlen(v), "ends before it starts",
                          "end_exclusive after start_inclusive");
    }
    return 0;
}

/* One entry of operators[].logs[] or operators[].tiled_logs[], whatever its state. */
static int jlog(const struct jctx *j, json_object *lo, const char *path, bool tiled,
                const char *op_name, struct cap_ct_loglist *lv)
{
    if (!json_object_is_type(lo, json_type_object))
        return jerr_type(j, path, "an object", lo);
    char sub[128];
    struct cap_ct_log l = {0};
    l.final_tree_size = -1;
    if (jstate(j, lo, path, &l) != 0 || jinterval(j, lo, path, &l) != 0)
        goto fail;
    if ((op_name && !(l.operator_name = xstrdup(op_name, j->err))) ||
        jstr(j, lo, tiled ? "monitoring_url" : "url", path, true, &l.url) != 0 ||
        jstr(j, lo, "key", path, true, &l.key_b64) != 0 ||
        jstr(j, lo, "log_id", path, false, &l.log_id_b64) != 0 ||
        jstr(j, lo, "description", path, false, &l.description) != 0 ||
        !(l.protocol = xstrdup(tiled ? "static-ct" : "rfc6962", j->err)))
        goto fail;
    char *log_type = NULL;
    if (jstr(j, lo, "log_type", path, false, &log_type) != 0)
        goto fail;
    l.test_log = log_type && strcmp(log_type, "test") == 0;
    free(log_type);
    json_object *mmd = NULL;
    if (json_object_object_get_ex(lo, "mmd", &mmd) && !json_object_is_type(mmd, json_type_null)) {
        snprintf(sub, sizeof sub, "%s.mmd", path);
        if (!json_object_is_type(mmd, json_type_int)) {
            jerr_type(j, sub, "an integer number of seconds", mmd);
            goto fail;
        }
        int64_t s = json_object_get_int64(mmd);
        if (s < 1 || s > MMD_MAX_S) {
            char where[WHERE_MAX], num[32];
            list_where(j, sub, where, sizeof where);
            snprintf(num, sizeof num, "%lld", (long long)s);
            fail_value(j->err, where, num, strlen(num), "is out of range", "1-31536000 seconds");
            goto fail;
        }
        l.mmd_s = s;
    }
    /* The URL, protocol and delay first: a list with a broken entry there is not one to
     * trust. A key that is not one, or a log_id that is not its hash, refuses that log alone
     * (it is kept, marked, so the refusal is seen), and the others are read. */
    char *key = l.key_b64, *id = l.log_id_b64;
    l.key_b64 = l.log_id_b64 = NULL;
    int crc = cap_ct_log_check(&l, path, list_where_cb, j, j->err);
    l.key_b64 = key;
    l.log_id_b64 = id;
    if (crc != 0)
        goto fail;
    struct cap_err ke = {0};
    if (cap_ct_log_check(&l, path, list_where_cb, j, &ke) != 0) {
        if (ke.code == CAP_E_NOMEM) {
            *j->err = ke;
            goto fail;
        }
        if (!(l.refused = xstrdup(ke.msg, j->err)))
            goto fail;
    }
    if (cap_ct_loglist_push(lv, &l, j->err) != 0)
        goto fail;
    return 0;
fail:
    cap_ct_log_clear(&l);
    return -1;
}

static int jlogs_parse(const struct jctx *j, json_object *root, struct cap_ct_loglist *lv)
{
    if (!json_object_is_type(root, json_type_object))
        return jerr_type(j, "(top level)", "an object", root);
    json_object *ops = NULL;
    if (!json_object_object_get_ex(root, "operators", &ops) ||
        !json_object_is_type(ops, json_type_array))
        return jerr_type(j, "operators", "an array", ops);
    size_t nops = json_object_array_length(ops);
    for (size_t i = 0; i < nops; i++) {
        json_object *op = json_object_array_get_idx(ops, i);
        char path[128];
        snprintf(path, sizeof path, "operators[%zu]", i);
        if (!json_object_is_type(op, json_type_object))
            return jerr_type(j, path, "an object", op);
        json_object *nm = NULL;
        const char *op_name = NULL;
        if (json_object_object_get_ex(op, "name", &nm) &&
            json_object_is_type(nm, json_type_string) &&
            !memchr(json_object_get_string(nm), '\0', (size_t)json_object_get_string_len(nm)))
            op_name = json_object_get_string(nm);
        static const char *const kinds[] = {"logs", "tiled_logs"};
        for (int t = 0; t < 2; t++) {
            json_object *arr = NULL;
            snprintf(path, sizeof path, "operators[%zu].%s", i, kinds[t]);
            if (!json_object_object_get_ex(op, kinds[t], &arr) ||
                json_object_is_type(arr, json_type_null))
                continue;
            if (!json_object_is_type(arr, json_type_array))
                return jerr_type(j, path, "an array", arr);
            size_t n = json_object_array_length(arr);
            for (size_t k = 0; k < n; k++) {
                char lpath[128];
                snprintf(lpath, sizeof lpath, "operators[%zu].%s[%zu]", i, kinds[t], k);
                if (jlog(j, json_object_array_get_idx(arr, k), lpath, t == 1, op_name, lv) != 0)
                    return -1;
            }
        }
    }
    return 0;
}

int cap_ct_loglist_parse(const char *buf, size_t len, const char *name, struct cap_ct_log **out,
                         size_t *out_n, struct cap_err *err)
{
    char qname[96];
    cap_err_quote(qname, sizeof qname, name ? name : "(buffer)", strlen(name ? name : "(buffer)"));
    if (len > CAP_CT_LOGLIST_MAX) {
        cap_err_set(err, CAP_E_LIMIT, "ct log list %s: larger than %d bytes", qname,
                    CAP_CT_LOGLIST_MAX);
        return -1;
    }
    if (memchr(buf, '\0', len)) {
        size_t at = (size_t)((const char *)memchr(buf, '\0', len) - buf);
        cap_err_set(err, CAP_E_INVALID, "ct log list %s: invalid JSON at byte %zu: NUL byte", qname,
                    at);
        return -1;
    }
    json_tokener *tok = json_tokener_new_ex(LOGLIST_DEPTH);
    if (!tok) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        return -1;
    }
    json_object *root = json_tokener_parse_ex(tok, buf, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (je == json_tokener_continue) {
        cap_err_set(err, CAP_E_INVALID, "ct log list %s: invalid JSON: ends early at byte %zu",
                    qname, len);
        json_object_put(root);
        json_tokener_free(tok);
        return -1;
    }
    if (je != json_tokener_success) {
        cap_err_set(err, CAP_E_INVALID, "ct log list %s: invalid JSON at byte %zu: %s", qname, end,
                    json_tokener_error_desc(je));
        json_object_put(root);
        json_tokener_free(tok);
        return -1;
    }
    json_tokener_free(tok);
    for (size_t i = end; i < len; i++) {
        if (buf[i] != ' ' && buf[i] != '\n' && buf[i] != '\r' && buf[i] != '\t') {
            cap_err_set(err, CAP_E_INVALID,
                        "ct log list %s: invalid JSON at byte %zu: data after the end", qname, i);
            json_object_put(root);
            return -1;
        }
    }
    struct jctx j = {qname, err};
    struct cap_ct_loglist lv = {0};
    int rc = jlogs_parse(&j, root, &lv);
    json_object_put(root);
    if (rc != 0) {
        cap_ct_loglist_free(&lv);
        return -1;
    }
    *out = lv.v;
    *out_n = lv.n;
    return 0;
}

/* ---------------------------------------------------------------- time and choice */

/* n digits at *p into *out; advances *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

int cap_ct_parse_time(const char *s, int64_t *out)
{
    const char *p = s;
    int y, mo, d, h, mi, se;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return -1;
    if (*p != 'T' && *p != 't')
        return -1;
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
        !digits(&p, 2, &se))
        return -1;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = sign * (oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 60)
        return -1;
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap))
        return -1;
    /* Days since 1970 from the civil date (proleptic Gregorian), without timegm's time zone
     * and range questions. */
    int64_t yy = y - (mo <= 2);
    int64_t era = yy / 400;
    int64_t yoe = yy - era * 400;
    int64_t doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    *out = days * 86400 + h * 3600 + mi * 60 + (se > 59 ? 59 : se) - off;
    return 0;
}

bool cap_ct_log_current(const struct cap_ct_log *l, int64_t now_s)
{
    if (l->refused || l->test_log)
        return false;
    if (l->state != CAP_CT_STATE_NONE && l->state != CAP_CT_STATE_USABLE &&
        l->state != CAP_CT_STATE_QUALIFIED)
        return false;
    /* [start, end) overlaps [now, now + lifetime]: a certificate issued now, valid for up to
     * 398 days, is logged in the shard whose interval holds its expiry. */
    if (l->interval_end && l->interval_end <= now_s)
        return false;
    if (l->interval_start && l->interval_start > now_s + CAP_CT_CERT_LIFETIME_S)
        return false;
    return true;
}
