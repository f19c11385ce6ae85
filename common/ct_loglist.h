/* The CT logs a deployment watches (ct.logs, ct.log_list_url, ct.log_list_file): one entry
 * checked and completed, the browsers' v3 JSON log list parsed into entries with their states and
 * temporal intervals, and the choice of the logs a certificate issued now can land in. Pure;
 * config.c and the worker's refresher read the files and URLs. */
#ifndef CAP_CT_LOGLIST_H
#define CAP_CT_LOGLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* A v3 log list larger than this is refused. */
#define CAP_CT_LOGLIST_MAX (16 << 20)

/* Where a log stands in the v3 list (its "state" object). NONE: not given (ct.logs entries,
 * which are read as configured). */
enum cap_ct_log_state {
    CAP_CT_STATE_NONE = 0,
    CAP_CT_STATE_PENDING,
    CAP_CT_STATE_QUALIFIED,
    CAP_CT_STATE_USABLE,
    CAP_CT_STATE_READONLY,
    CAP_CT_STATE_RETIRED,
    CAP_CT_STATE_REJECTED
};

/* A certificate issued now lives at most this long (the CA/Browser Forum's 398 days): a log
 * whose temporal interval overlaps [now, now + this] can receive it. */
#define CAP_CT_CERT_LIFETIME_S (398LL * 86400)

/* One CT log of the curated list (ct.logs, or a v3 log list). */
struct cap_ct_log {
    char *url;        /* base URL: https://ct.example/2026h1/ (RFC 6962) or tile prefix;
                         always ends with '/' after load */
    char *protocol;   /* "rfc6962" or "static-ct"; "auto" (probe) for bare URLs */
    char *key_b64;    /* DER SubjectPublicKeyInfo, base64; NULL when unknown */
    char *log_id_b64; /* SHA-256 of the key, base64; NULL when unknown (computed from key) */
    char *description;
    int64_t mmd_s; /* maximum merge delay, seconds */
    /* From a v3 log list only (zero for ct.logs entries): */
    char *operator_name;         /* operators[].name; NULL when none */
    enum cap_ct_log_state state; /* NONE when the list gives none */
    int64_t state_at;            /* state timestamp, seconds since 1970; 0 when none */
    int64_t interval_start;      /* temporal_interval.start_inclusive, seconds; 0: open */
    int64_t interval_end;        /* temporal_interval.end_exclusive, seconds; 0: open */
    int64_t final_tree_size;     /* readonly.final_tree_head.tree_size; -1 when none */
    bool test_log;               /* log_type "test": a log for testing CAs, never chosen */
    char *refused; /* why the log cannot be used (a key that is not one, or a log_id that is
                      not the key's hash); NULL for a good entry. A refused log is never
                      chosen. */
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
 * operators[].tiled_logs[]; tiled logs use monitoring_url and protocol "static-ct"), at most
 * CAP_CT_LOGLIST_MAX bytes. Every log is returned, whatever its state, with its operator, state,
 * temporal interval and final tree size; cap_ct_log_current says which to read. A log whose key
 * is not a DER SubjectPublicKeyInfo or whose log_id is not the SHA-256 of its key is returned
 * with refused set (the message names the log and the value), so one bad entry does not take
 * the others with it; anything else wrong (JSON, types, URLs, states, timestamps) fails the
 * whole list. name labels messages, which give the JSON path. On success *out (an array of
 * *out_n entries, NULL when none) belongs to the caller: cap_ct_logs_free. On failure out and
 * out_n are untouched. */
int cap_ct_loglist_parse(const char *buf, size_t len, const char *name, struct cap_ct_log **out,
                         size_t *out_n, struct cap_err *err);

/* Whether a certificate issued at now_s (seconds since 1970) can land in l: not refused, not a
 * test log, state
 * usable or qualified (or none given, for ct.logs entries), and a temporal interval (open ends
 * allowed) overlapping [now_s, now_s + CAP_CT_CERT_LIFETIME_S]. Pure. */
bool cap_ct_log_current(const struct cap_ct_log *l, int64_t now_s);

/* The name of a state as the v3 list spells it ("usable", ...; "" for NONE). Static. */
const char *cap_ct_log_state_name(enum cap_ct_log_state s);

/* Parses an RFC 3339 timestamp as the v3 list writes them ("2026-01-01T00:00:00Z", fractions
 * of a second and numeric offsets accepted) into seconds since 1970. 0, or -1 when s is not
 * one. Pure. */
int cap_ct_parse_time(const char *s, int64_t *out);

#endif
