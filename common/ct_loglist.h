/* The CT logs a deployment watches (ct.logs, ct.log_list_file): one entry checked and completed,
 * and the browsers' v3 JSON log list parsed into entries. Pure; config.c reads the files. */
#ifndef CAP_CT_LOGLIST_H
#define CAP_CT_LOGLIST_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* A v3 log list larger than this is refused. */
#define CAP_CT_LOGLIST_MAX (16 << 20)

/* One CT log of the curated list (ct.logs or ct.log_list_file). */
struct cap_ct_log {
    char *url;        /* base URL: https://ct.example/2026h1/ (RFC 6962) or tile prefix;
                         always ends with '/' after load */
    char *protocol;   /* "rfc6962" or "static-ct"; "auto" (probe) for bare URLs */
    char *key_b64;    /* DER SubjectPublicKeyInfo, base64; NULL when unknown */
    char *log_id_b64; /* SHA-256 of the key, base64; NULL when unknown (computed from key) */
    char *description;
    int64_t mmd_s; /* maximum merge delay, seconds */
};

/* A growing array of entries; zero it to start. */
struct cap_ct_loglist {
    struct cap_ct_log *v;
    size_t n, cap;
};

/* Checks one entry and fills in what follows from it: the '/' at the end of the URL, protocol
 * rfc6962 when none, the log ID from the key (a given one must match it), the default maximum
 * merge delay (24 h). path names the entry in messages ("ct.logs[0]", "operators[0].logs[2]");
 * where_cb writes the message prefix for a path below it ("ct.logs[0].key") into out, with
 * ctx. 0, or -1 with err naming the field, the value and what is allowed. */
int cap_ct_log_check(struct cap_ct_log *l, const char *path,
                     void (*where_cb)(const void *ctx, const char *path, char *out, size_t n),
                     const void *ctx, struct cap_err *err);

/* Frees what l holds and zeroes it. */
void cap_ct_log_clear(struct cap_ct_log *l);

/* Frees n entries and the array. logs may be NULL. */
void cap_ct_logs_free(struct cap_ct_log *logs, size_t n);

/* Appends *l, taken over (*l is zeroed). 0, or -1 with err (out of memory; *l kept). */
int cap_ct_loglist_push(struct cap_ct_loglist *lv, struct cap_ct_log *l, struct cap_err *err);

/* Frees the entries and the array, and zeroes lv. */
void cap_ct_loglist_free(struct cap_ct_loglist *lv);

/* Parses a CT log list in the browsers' v3 JSON schema (operators[].logs[] and
 * operators[].tiled_logs[]; retired and rejected logs skipped; tiled logs use monitoring_url and
 * protocol "static-ct"), at most CAP_CT_LOGLIST_MAX bytes. name labels messages, which give the
 * JSON path. On success *out (an array of *out_n entries, NULL when none) belongs to the caller:
 * cap_ct_logs_free. On failure out and out_n are untouched. */
int cap_ct_loglist_parse(const char *buf, size_t len, const char *name, struct cap_ct_log **out,
                         size_t *out_n, struct cap_err *err);

#endif
