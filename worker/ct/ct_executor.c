/* The ct_log executor: for each log of a source, reads the signed tree head (RFC 6962) or
 * checkpoint (static-ct), checks its signature and its consistency with the stored checkpoint,
 * reads the entries since the checkpoint with several requests in flight, hashes them into the
 * Merkle frontier, matches their names against the source's suffixes, stores matching
 * certificates with their sightings and findings (the CT ones and the certificate rules of
 * worker/findings.h), and moves the checkpoint in the same
 * transaction, only over a contiguous, fully stored prefix. A log is read once for every source
 * that follows it: the run holding its reader lease reads for all of them (README.md). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/ct_logs_default.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/pg.h"
#include "common/policy.h"
#include "common/source/ct_log.h"
#include "worker/ct/ct_http.h"
#include "worker/ct/ct_loglist_refresh.h"
#include "worker/ct/ct_match.h"
#include "worker/ct/ct_merkle.h"
#include "worker/ct/ct_metrics.h"
#include "worker/ct/ct_parse.h"
#include "worker/ct/ct_precert.h"
#include "worker/executor.h"
#include "worker/http.h"
#include "worker/inventory.h"

/* Requests in flight per log (at most ct.max_requests_per_second). */
#define CT_INFLIGHT 4
/* Times one run goes back to the log's reader lease after reading its own range up to the
 * shared frontier (the frontier may have moved meanwhile). */
#define CT_JOIN_TRIES 8
/* First get-entries batch asked for; a log answering with fewer sets the batch. */
#define CT_BATCH_START 1024
/* Attempts per request for retryable failures (429, 5xx, transport errors); a request that
 * timed out (each attempt costs the stall time) gets fewer. */
#define CT_MAX_ATTEMPTS 6
#define CT_MAX_TIMEOUT_ATTEMPTS 3
#define CT_BACKOFF_BASE_MS 250
#define CT_BACKOFF_CAP_MS 8000
#define CT_RETRY_AFTER_CAP_S 60
/* Answers 429/503 in a row to one request before the read of the log stops for this run (what
 * was read is kept; the next run goes on): a log that rate-limits is never a failed run. */
#define CT_MAX_LIMITED 10
/* Checkpoint commit cadence: entries, queued inventory items, or time. Items stay under
 * CAP_INVENTORY_BATCH (one batch per commit) and near it: every batch has a fixed cost in
 * PostgreSQL, and the time bound keeps a crash's re-read short anyway. */
#define CT_COMMIT_ENTRIES 65536
#define CT_COMMIT_ITEMS 1800
#define CT_COMMIT_MS 2000
/* Issuer certificates (static-ct issuer/<hex>) and hash tiles kept by one log's reader. */
#define CT_ISSUERS_MAX 16
#define CT_TILES_MAX 16

static struct cap_policy g_policy;
static bool g_policy_ready;
static struct cap_metric *g_m_rate_limited;

static const char SQL_BEGIN[] = "BEGIN";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

static const char SQL_CP_GET[] =
    "SELECT next_index, tree_size, encode(root_hash, 'hex'), encode(frontier, 'hex') "
    "FROM ct_checkpoints WHERE source_id = $1 AND log_url = $2";

/* A source's own checkpoint, moved only from where this run last saw it ($11; -1: the run
 * found none): the shared reader moves a checkpoint that stands at its frontier, so a write
 * from a stale position is refused (no row) rather than undoing or skipping what it stored. */
static const char SQL_CP_PUT[] =
    "INSERT INTO ct_checkpoints AS c (source_id, log_url, next_index, tree_size, root_hash, "
    "sth_timestamp, frontier, backlog, verified, reader_key, updated_at) "
    "VALUES ($1, $2, $3, $4, decode($5, 'hex'), $6, decode($7, 'hex'), $8, $9, $10, now()) "
    "ON CONFLICT (source_id, log_url) DO UPDATE SET next_index = EXCLUDED.next_index, "
    "tree_size = EXCLUDED.tree_size, root_hash = EXCLUDED.root_hash, "
    "sth_timestamp = EXCLUDED.sth_timestamp, frontier = EXCLUDED.frontier, "
    "backlog = EXCLUDED.backlog, verified = EXCLUDED.verified, "
    "reader_key = EXCLUDED.reader_key, updated_at = now() "
    "WHERE c.next_index = $11::bigint";

/* The shared reader's commit: the checkpoints of the sources it read for ($3 ids), all at its
 * frontier ($4), move together; the caller checks every one moved. */
static const char SQL_CP_GROUP[] =
    "UPDATE ct_checkpoints SET next_index = $5, tree_size = $6, root_hash = decode($7, 'hex'), "
    "sth_timestamp = $8, frontier = decode($9, 'hex'), backlog = $10, verified = $11, "
    "reader_key = $2, updated_at = now() "
    "WHERE log_url = $1 AND source_id = ANY($3::bigint[]) AND next_index = $4";

/* The lease: made at the frontier of its first reader when missing, then locked. */
static const char SQL_LEASE_MAKE[] =
    "INSERT INTO ct_log_readers (reader_key, log_url, next_index) VALUES ($1, $2, $3) "
    "ON CONFLICT (reader_key) DO NOTHING";
static const char SQL_LEASE_LOCK[] =
    "SELECT next_index, coalesce(holder_run_id, 0), generation, "
    "holder_run_id IS NOT NULL AND heartbeat_at > now() - $2::float8 * interval '1 millisecond' "
    "FROM ct_log_readers WHERE reader_key = $1 FOR UPDATE";
/* Whether a live run of another source holds the lease and this source's checkpoint stands at
 * or ahead of the frontier: that run reads for it, and this one need not even ask the log. */
static const char SQL_LEASE_PEEK[] =
    "SELECT 1 FROM ct_log_readers l JOIN ct_checkpoints c ON c.log_url = l.log_url "
    "AND c.reader_key = l.reader_key AND c.next_index >= l.next_index "
    "WHERE l.reader_key = $1 AND c.source_id = $2 AND l.holder_run_id IS NOT NULL "
    "AND l.holder_run_id <> $3 AND l.heartbeat_at > now() - $4::float8 * interval '1 millisecond'";
static const char SQL_CP_NEXT[] =
    "SELECT next_index FROM ct_checkpoints WHERE source_id = $1 AND log_url = $2";
static const char SQL_LEASE_TAKE[] =
    "UPDATE ct_log_readers SET holder_run_id = $2, holder_source_id = $3, "
    "generation = generation + 1, heartbeat_at = now(), updated_at = now() "
    "WHERE reader_key = $1 RETURNING generation";
/* Moves the frontier; no row when another run took the lease over (this one is fenced). */
static const char SQL_LEASE_MOVE[] =
    "UPDATE ct_log_readers SET next_index = $3, heartbeat_at = now(), updated_at = now() "
    "WHERE reader_key = $1 AND generation = $2";
static const char SQL_LEASE_FREE[] =
    "UPDATE ct_log_readers SET holder_run_id = NULL, holder_source_id = NULL, "
    "heartbeat_at = NULL, updated_at = now() WHERE reader_key = $1 AND generation = $2";

/* The sources the shared reader reads for: enabled ct_log sources that watch the log (listed,
 * or through the configured list when they list none), verify it the same way, and whose
 * checkpoint stands at the frontier $3. */
#define SQL_WATCHERS                                                                               \
    "FROM ct_checkpoints c JOIN discovery_sources s ON s.id = c.source_id "                        \
    "WHERE c.log_url = $1 AND c.reader_key = $2 AND s.enabled AND s.type = 'ct_log' "              \
    "AND (jsonb_array_length(coalesce(s.spec -> 'log_urls', '[]'::jsonb)) = 0 "                    \
    "OR s.spec -> 'log_urls' ? $1) "
static const char SQL_MEMBERS[] =
    "SELECT c.source_id, coalesce(s.spec -> 'domains', '[]'::jsonb)::text, "
    "coalesce(s.spec -> 'expected_issuers', '[]'::jsonb)::text " SQL_WATCHERS
    "AND c.next_index = $3 ORDER BY c.source_id LIMIT 10000";
/* The next checkpoint above the frontier: where a source ahead of it joins. */
static const char SQL_NEXT_JOIN[] =
    "SELECT min(c.next_index) " SQL_WATCHERS "AND c.next_index > $3";

/* Fleet-wide pacing of one log: reserves the next request slot ($2 ms apart) and returns how
 * long to wait for it. */
static const char SQL_RATE[] =
    "INSERT INTO ct_log_rate AS r (log_url, next_at, requests) "
    "VALUES ($1, clock_timestamp() + $2::float8 * interval '1 millisecond', 1) "
    "ON CONFLICT (log_url) DO UPDATE SET requests = r.requests + 1, "
    "next_at = greatest(r.next_at, clock_timestamp()) + $2::float8 * interval '1 millisecond' "
    "RETURNING greatest(0, ceil(extract(epoch FROM r.next_at - clock_timestamp()) * 1000 - "
    "$2::float8))";
static const char SQL_RATE_LIMITED[] =
    "UPDATE ct_log_rate SET rate_limited = rate_limited + 1, last_rate_limited_at = now() "
    "WHERE log_url = $1";

/* Which of the given (fingerprint, tbs_sha256) pairs are managed: the certificate itself, or
 * (for a precertificate) a managed final certificate with the same TBS. */
static const char SQL_MANAGED[] =
    "SELECT t.fp FROM unnest($1::text[], $2::text[]) AS t(fp, tbs) "
    "WHERE EXISTS (SELECT 1 FROM managed_certificates m WHERE m.fingerprint_sha256 = t.fp) "
    "OR (t.tbs <> '' AND EXISTS (SELECT 1 FROM discovered_certificates d "
    "JOIN managed_certificates m ON m.fingerprint_sha256 = d.fingerprint_sha256 "
    "WHERE d.tbs_sha256 = t.tbs))";

/* Logs that left the log list (or stopped taking new certificates) which this source has not yet
 * read to their final tree head: not read since they left, or behind the final tree size the
 * list gives, else behind the tree size the source last saw. Once caught up they are dropped. */
static const char SQL_LOGS_LEAVING[] =
    "SELECT l.log_url, l.protocol, l.key_b64 FROM ct_log_list l "
    "JOIN ct_checkpoints c ON c.log_url = l.log_url AND c.source_id = $1 "
    "WHERE NOT l.current AND l.refused IS NULL "
    "AND (c.updated_at < coalesce(l.left_at, '-infinity') "
    "OR c.next_index < coalesce(l.final_tree_size, c.tree_size)) ORDER BY l.log_url";

/* One log to read, resolved from the source or the configuration. */
struct ct_log {
    char url[512];       /* as stored in ct_checkpoints.log_url */
    char base[512];      /* url with a trailing slash */
    char protocol[16];   /* rfc6962 | static-ct | auto */
    char origin[512];    /* static-ct origin when known, "" otherwise */
    EVP_PKEY *key;       /* NULL: unverified */
};

/* The stored position of one log. */
struct ct_pos {
    uint64_t next_index;
    uint64_t tree_size;
    uint8_t root[32];
    bool has_root;
    bool has_frontier;
    struct cap_ct_frontier fr;
};

/* One request of the pipelined read (get-entries range or data tile). */
struct ct_slot {
    struct cap_ct_req req;
    bool used;      /* issued or completed, not yet consumed */
    bool ready;     /* completed successfully, body parsed */
    int64_t not_before_ms; /* retry wait */
    bool waiting;   /* waiting to be re-issued */
    bool paced;     /* its request slot is reserved (ct_log_rate) */
    int limited;    /* 429/503 answers in a row */
    struct cap_ct_entries ents; /* rfc6962 */
};

/* A certificate fetched from a static-ct log's issuer/<hex fingerprint>. */
struct ct_issuer {
    uint8_t fp[32];
    uint8_t *der;
    size_t len;
};

/* A hash tile read while proving frontiers (tiles do not change once published). */
struct ct_tile {
    char path[128];
    uint8_t *data;
    size_t len;
};

/* Where the precertificate of an entry and its chain are: extra_data (RFC 6962), or the data
 * tile's pre_certificate and chain fingerprints (static-ct). */
struct ct_extra {
    const uint8_t *extra;
    size_t extra_len;
    const uint8_t *precert;
    size_t precert_len;
    const uint8_t *chain_fps;
    size_t chain_n;
};

/* A match whose findings wait for the managed check, done for a whole batch at once: one per
 * (certificate, source it matched). */
struct ct_pending {
    char fp[65];
    char tbs[65];
    int64_t source_id; /* the source whose findings these are */
    bool unexpected_issuer;
    bool precert;
    char *details;                /* JSON text, malloc'd */
    struct cap_cert_facts *facts; /* for the certificate rules; freed by the one that owns it */
    bool owns_facts;
};

/* A source the shared reader reads for. */
struct ct_member {
    int64_t source_id;
    struct cap_ct_suffixes *sfx;
    char **issuers; /* expected issuers */
    size_t issuers_n;
};

struct ct_reader {
    struct cap_run_ctx *ctx;
    const struct cap_ct_log_spec *spec; /* the source's, ctx->src->spec */
    struct ct_log *log;
    struct cap_inventory *inv;
    const struct cap_ct_suffixes *sfx;
    struct cap_ct_http *http;
    const struct cap_policy *policy; /* for aux */
    struct cap_ct_http *aux;         /* issuer fetches in the middle of the read; lazily made */
    struct ct_issuer issuers[CT_ISSUERS_MAX];
    size_t issuers_next;
    struct ct_tile tiles[CT_TILES_MAX];
    size_t tiles_next;
    bool static_ct;
    struct cap_ct_sth sth;
    bool verified;
    struct ct_pos pos;   /* live: advanced as entries are processed */
    struct ct_pos start; /* as at the start of the run */
    /* what the commit callback writes */
    struct ct_pos commit;
    bool commit_pending, commit_written;
    /* counters */
    int64_t entries, matches, items_queued, since_commit;
    int64_t entries_shown, matches_shown; /* of entries and matches, in the metrics so far */
    int64_t last_commit_ms;
    int64_t *run_entries, *run_matches, *run_unreadable, run_total;
    struct ct_counts *counts;
    uint64_t batch;
    /* the shared reader */
    char reader_key[600]; /* protocol, URL, key (ct_log_readers.reader_key) */
    int64_t cp_next;      /* the source's checkpoint as last written or read; -1: none */
    bool shared;          /* reading for the members, holding the lease */
    int64_t lease_gen;
    uint64_t group_from;  /* the frontier the members stand at */
    struct ct_member *members;
    size_t members_n;
    struct cap_ct_suffixes *union_sfx; /* the members' suffixes together */
    uint64_t next_join;   /* the next checkpoint above the frontier; 0: none */
    bool moved;           /* a checkpoint moved under this run, or the lease went to another */
    bool left_to_shared;  /* the shared reader of another run reads this log for the source */
    bool rate_stop;       /* the log kept answering 429/503: its read stopped, not failed */
    int64_t interval_ms;  /* between two requests to the log (ct.max_requests_per_second) */
    int inflight;         /* ranges in flight */
    uint64_t rng;
    bool db_failed; /* a database or fencing failure: ends the whole run */
    bool misbehaving; /* err is a failed verification (ct_log_misbehaving raised) */
    bool hostile;     /* the last failed request broke a cap or the shape of its answer */
    bool proven;      /* pos.fr was proven by a signed root this run */
    char flagged[300]; /* first misbehaviour found while reading on (raised at the end) */
    int64_t flagged_n;
    struct ct_pending *pend; /* matches since the last commit */
    size_t pend_n, pend_cap;
    char *probed;     /* tree head body fetched while probing the protocol, reused once */
    size_t probed_len;
    char err[400];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool stopping(const struct ct_reader *r)
{
    return r->ctx->stopping && atomic_load(r->ctx->stopping);
}

static void note_misbehaving(struct ct_reader *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Records a misbehaviour found while the read goes on: the first reason is kept, and the log's
 * read ends with one ct_log_misbehaving finding. */
static void note_misbehaving(struct ct_reader *r, const char *fmt, ...)
{
    if (r->flagged_n++ > 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->flagged, sizeof r->flagged, fmt, ap);
    va_end(ap);
}

/* Frees the reader's issuer client, issuers and tiles. */
static void reader_cleanup(struct ct_reader *r)
{
    cap_ct_http_free(r->aux);
    r->aux = NULL;
    for (size_t i = 0; i < CT_ISSUERS_MAX; i++)
        free(r->issuers[i].der);
    for (size_t i = 0; i < CT_TILES_MAX; i++)
        free(r->tiles[i].data);
    memset(r->issuers, 0, sizeof r->issuers);
    memset(r->tiles, 0, sizeof r->tiles);
}

static void hexs(const uint8_t *p, size_t n, char *out)
{
    cap_ct_hex(p, n, out);
}

static int unhex(const char *s, uint8_t *out, size_t cap, size_t *n)
{
    size_t l = strlen(s);
    if (l % 2 || l / 2 > cap)
        return -1;
    for (size_t i = 0; i < l / 2; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = s[2 * i + (size_t)k];
            int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    *n = l / 2;
    return 0;
}

/* ------------------------------------------------------------------ checkpoints */

static int cp_load(struct ct_reader *r, bool *found, struct cap_err *err)
{
    char sb[24];
    const char *p[] = {cap_pg_i64(sb, r->ctx->source_id), r->log->url};
    PGresult *res = cap_pg_exec(r->ctx->pg, "load ct checkpoint", SQL_CP_GET, 2, p, err);
    if (!res)
        return -1;
    *found = PQntuples(res) == 1;
    r->cp_next = -1;
    if (*found) {
        r->cp_next = cap_pg_get_i64(res, 0, 0);
        struct ct_pos *c = &r->pos;
        memset(c, 0, sizeof *c);
        c->next_index = (uint64_t)cap_pg_get_i64(res, 0, 0);
        c->tree_size = (uint64_t)cap_pg_get_i64(res, 0, 1);
        size_t n = 0;
        if (!PQgetisnull(res, 0, 2) && unhex(PQgetvalue(res, 0, 2), c->root, 32, &n) == 0 &&
            n == 32)
            c->has_root = true;
        if (!PQgetisnull(res, 0, 3)) {
            size_t cap = 8 + CAP_CT_MAX_LEVELS * 32;
            uint8_t *b = malloc(cap);
            if (b && unhex(PQgetvalue(res, 0, 3), b, cap, &n) == 0 &&
                cap_ct_frontier_decode(b, n, &c->fr, NULL) == 0 && c->fr.size == c->next_index)
                c->has_frontier = true;
            free(b);
        }
    }
    PQclear(res);
    return 0;
}

/* The text forms of a position for the checkpoint statements: root and frontier in hex
 * (*fr malloc'd, NULL when the position has none). 0, or -1 with err. */
static int pos_text(const struct ct_pos *c, char root[65], char **fr, struct cap_err *err)
{
    root[0] = 0;
    *fr = NULL;
    if (c->has_root)
        hexs(c->root, 32, root);
    if (c->has_frontier) {
        uint8_t enc[8 + CAP_CT_MAX_LEVELS * 32];
        long el = cap_ct_frontier_encode(&c->fr, enc, sizeof enc);
        *fr = malloc(2 * (size_t)(el > 0 ? el : 0) + 1);
        if (!*fr) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory writing the checkpoint");
            return -1;
        }
        hexs(enc, (size_t)(el > 0 ? el : 0), *fr);
    }
    return 0;
}

/* A checkpoint moved under this run (the shared reader took the source along, or another run
 * took the log's lease over): the batch is rolled back and this log's read ends, neither
 * failed nor skipping anything: whoever moved it stored what lies below. */
static int moved_under(struct ct_reader *r, const char *what, struct cap_err *err)
{
    r->moved = true;
    cap_err_set(err, CAP_E_IO, "%s moved under this run", what);
    return -1;
}

/* Writes r->commit (inside the caller's fenced transaction): the source's own checkpoint, or,
 * for the shared reader, the checkpoints of every member and the frontier of the lease. */
static int cp_write(struct ct_reader *r, struct cap_err *err)
{
    const struct ct_pos *c = &r->commit;
    char sb[24], nb[24], tb[24], tsb[24], bb[24], ob[24], gb[24];
    char root[65];
    char *fr = NULL;
    if (pos_text(c, root, &fr, err) < 0)
        return -1;
    int64_t backlog = (int64_t)(c->tree_size > c->next_index ? c->tree_size - c->next_index : 0);
    int rc = -1;
    PGresult *res = NULL;
    char *ids = NULL;
    if (!r->shared) {
        const char *p[] = {cap_pg_i64(sb, r->ctx->source_id),
                           r->log->url,
                           cap_pg_i64(nb, (int64_t)c->next_index),
                           cap_pg_i64(tb, (int64_t)c->tree_size),
                           c->has_root ? root : NULL,
                           r->sth.timestamp ? cap_pg_i64(tsb, (int64_t)r->sth.timestamp) : NULL,
                           fr,
                           cap_pg_i64(bb, backlog),
                           r->verified ? "true" : "false",
                           r->reader_key,
                           cap_pg_i64(ob, r->cp_next)};
        res = cap_pg_exec(r->ctx->pg, "write ct checkpoint", SQL_CP_PUT, 11, p, err);
        if (!res)
            goto out;
        if (strcmp(PQcmdTuples(res), "1") != 0) {
            moved_under(r, "the checkpoint", err);
            goto out;
        }
        rc = 0;
        goto out;
    }
    /* The lease first: a run whose lease was taken over writes nothing. */
    const char *lp[] = {r->reader_key, cap_pg_i64(gb, r->lease_gen),
                        cap_pg_i64(nb, (int64_t)c->next_index)};
    res = cap_pg_exec(r->ctx->pg, "move the ct reader's frontier", SQL_LEASE_MOVE, 3, lp, err);
    if (!res)
        goto out;
    if (strcmp(PQcmdTuples(res), "1") != 0) {
        moved_under(r, "the log's reader lease", err);
        goto out;
    }
    PQclear(res);
    res = NULL;
    if (r->members_n > 0) {
        int64_t *v = malloc(r->members_n * sizeof *v);
        if (v) {
            for (size_t i = 0; i < r->members_n; i++)
                v[i] = r->members[i].source_id;
            ids = cap_pg_i64_array(v, r->members_n);
            free(v);
        }
        if (!ids) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory writing the checkpoints");
            goto out;
        }
        const char *p[] = {r->log->url,
                           r->reader_key,
                           ids,
                           cap_pg_i64(ob, (int64_t)r->group_from),
                           cap_pg_i64(sb, (int64_t)c->next_index),
                           cap_pg_i64(tb, (int64_t)c->tree_size),
                           c->has_root ? root : NULL,
                           r->sth.timestamp ? cap_pg_i64(tsb, (int64_t)r->sth.timestamp) : NULL,
                           fr,
                           cap_pg_i64(bb, backlog),
                           r->verified ? "true" : "false"};
        res = cap_pg_exec(r->ctx->pg, "write ct checkpoints", SQL_CP_GROUP, 11, p, err);
        if (!res)
            goto out;
        if (strtoull(PQcmdTuples(res), NULL, 10) != r->members_n) {
            /* A member deleted, or moved by a run of its own: nothing of this batch may stay. */
            moved_under(r, "a checkpoint of the sources read together", err);
            goto out;
        }
    }
    rc = 0;
out:
    PQclear(res);
    free(ids);
    free(fr);
    return rc;
}

static int on_commit_cb(struct cap_run_ctx *ctx, void *arg, struct cap_err *err)
{
    (void)ctx;
    struct ct_reader *r = arg;
    if (!r || !r->commit_pending)
        return 0;
    if (cp_write(r, err) < 0)
        return -1;
    r->commit_written = true;
    return 0;
}

static int pending_findings(struct ct_reader *r, struct cap_err *err);

/* The run's counts beside entries and matches: requests made to the logs, answers 429/503. */
struct ct_counts {
    int64_t requests, rate_limited;
    int64_t shared_logs; /* logs left to the shared reader of another run */
};

/* The run's progress: entries to read (items total), read (done), matched but unreadable
 * (failed), the others ok; the matches, requests and rate-limited answers in stats. A failure
 * is only logged: the counts are written again with the next commit. */
static void write_progress(struct cap_run_ctx *ctx, int64_t total, int64_t entries,
                           int64_t matches, int64_t unreadable, const struct ct_counts *k)
{
    char stats[200];
    snprintf(stats, sizeof stats,
             "{\"matches\": %lld, \"requests\": %lld, \"rate_limited\": %lld, "
             "\"logs_left_to_shared_reader\": %lld}",
             (long long)matches, (long long)k->requests, (long long)k->rate_limited,
             (long long)k->shared_logs);
    struct cap_progress p = CAP_PROGRESS_KEEP;
    p.items_total = total;
    p.items_done = entries;
    p.items_ok = entries - unreadable;
    p.items_failed = unreadable;
    p.stats = stats;
    struct cap_err err = {0};
    if (cap_run_progress(ctx, &p, &err) < 0)
        cap_log(CAP_LOG_WARN, "ct_progress_failed", CAP_LI("run_id", ctx->run_id),
                CAP_LS("err", err.msg));
}

/* Stores everything queued and moves the checkpoint to c in one transaction. */
static int commit_pos(struct ct_reader *r, const struct ct_pos *c, struct cap_err *err)
{
    if (pending_findings(r, err) < 0) {
        r->db_failed = true;
        return -1;
    }
    r->commit = *c;
    r->commit_pending = true;
    r->commit_written = false;
    int rc = cap_inventory_flush(r->inv, err);
    if (rc == 0 && !r->commit_written) {
        /* Nothing was queued, so no batch ran the callback: write it on our own. */
        PGconn *pg = r->ctx->pg;
        if (cap_pg_cmd(pg, "begin checkpoint", SQL_BEGIN, 0, NULL, err) < 0) {
            rc = -1;
        } else if (cap_run_fence(r->ctx, err) < 0 || cp_write(r, err) < 0 ||
                   cap_pg_cmd(pg, "commit checkpoint", SQL_COMMIT, 0, NULL, err) < 0) {
            struct cap_err e2 = {0};
            cap_pg_cmd(pg, "rollback checkpoint", SQL_ROLLBACK, 0, NULL, &e2);
            rc = -1;
        }
    }
    r->commit_pending = false;
    if (rc < 0 && !r->moved)
        r->db_failed = true;
    if (rc == 0) {
        cap_ct_metrics_entries(r->log->url, r->entries - r->entries_shown,
                               r->matches - r->matches_shown);
        r->entries_shown = r->entries;
        r->matches_shown = r->matches;
        cap_ct_metrics_lag(r->log->url, r->sth.tree_size, c->next_index);
        r->items_queued = 0;
        r->since_commit = 0;
        r->last_commit_ms = now_ms();
        if (r->shared) {
            for (size_t i = 0; i < r->members_n; i++)
                if (r->members[i].source_id == r->ctx->source_id)
                    r->cp_next = (int64_t)c->next_index;
            r->group_from = c->next_index;
        } else {
            r->cp_next = (int64_t)c->next_index;
        }
        write_progress(r->ctx, r->run_total, *r->run_entries, *r->run_matches,
                       *r->run_unreadable, r->counts);
    }
    return rc;
}

/* ------------------------------------------------------------------ findings */

static int raise_misbehaving_for(struct ct_reader *r, int64_t source_id, const char *reason,
                                 struct cap_err *err)
{
    char subject[64];
    snprintf(subject, sizeof subject, "source:%lld", (long long)source_id);
    json_object *d = json_object_new_object();
    json_object_object_add(d, "log_url", json_object_new_string(r->log->url));
    json_object_object_add(d, "reason", json_object_new_string(reason));
    json_object_object_add(d, "tree_size", json_object_new_int64((int64_t)r->sth.tree_size));
    int rc = cap_inventory_raise(r->inv, CAP_FINDING_CT_LOG_MISBEHAVING, subject, source_id, 0,
                                 NULL, json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN),
                                 err);
    json_object_put(d);
    return rc;
}

/* The finding on the run's source, and on every source the shared reader reads for. */
static int raise_misbehaving(struct ct_reader *r, const char *reason, struct cap_err *err)
{
    if (raise_misbehaving_for(r, r->ctx->source_id, reason, err) < 0)
        return -1;
    for (size_t i = 0; r->shared && i < r->members_n; i++)
        if (r->members[i].source_id != r->ctx->source_id &&
            raise_misbehaving_for(r, r->members[i].source_id, reason, err) < 0)
            return -1;
    return 0;
}

static bool issuer_expected(char *const *v, size_t n, const char *issuer)
{
    for (size_t i = 0; i < n; i++)
        if (v[i][0] && strcasestr(issuer, v[i]))
            return true;
    return false;
}

static void pending_clear(struct ct_reader *r)
{
    for (size_t i = 0; i < r->pend_n; i++) {
        free(r->pend[i].details);
        if (r->pend[i].owns_facts) {
            cap_cert_facts_cleanup(r->pend[i].facts);
            free(r->pend[i].facts);
        }
    }
    r->pend_n = 0;
}

static int expiring_days(const struct ct_reader *r)
{
    return r->ctx->cfg ? r->ctx->cfg->scan_expiring_days : 14;
}

/* The certificate rules (expired, weak_key, weak_signature, self_signed, expiring,
 * san_case_duplicate, pqc_vulnerable) for one match, as the network scan raises them for a
 * leaf. A precertificate's facts come from its TBSCertificate, poison extension removed: the
 * key, validity, signature algorithm and names of the certificate the CA issues, so the rules
 * apply to it too (self_signed is never raised for it: a bare TBS has no signature to check).
 * The inventory leaves out "expiring" (unmanaged only) when the fingerprint is managed; a
 * precertificate is managed through its final certificate (same TBS), which the inventory
 * cannot see, so for a managed precertificate the rules other than the unmanaged-only ones are
 * raised here. */
static int cert_findings(struct ct_reader *r, const struct ct_pending *m, bool is_managed,
                         struct cap_err *err)
{
    if (!m->precert || !is_managed)
        return cap_inventory_cert_findings_for(r->inv, m->source_id, m->facts, true, err);
    struct cap_finding_spec specs[16];
    size_t n =
        cap_findings_cert_specs(m->facts, true, (int64_t)time(NULL), expiring_days(r), specs, 16);
    char subject[80];
    snprintf(subject, sizeof subject, "cert:%s", m->fp);
    for (size_t i = 0; i < n && i < 16; i++) {
        if (specs[i].unmanaged_only)
            continue;
        json_object *d = json_object_new_object();
        json_object_object_add(d, "reason", json_object_new_string(specs[i].reason));
        json_object_object_add(d, "subject",
                               json_object_new_string(m->facts->subject ? m->facts->subject : ""));
        json_object_object_add(d, "issuer",
                               json_object_new_string(m->facts->issuer ? m->facts->issuer : ""));
        json_object_object_add(d, "precert", json_object_new_boolean(true));
        int rc =
            cap_inventory_raise(r->inv, specs[i].id, subject, m->source_id, 0, m->fp,
                                json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN), err);
        json_object_put(d);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* Checks the pending matches against managed_certificates in one query and queues their
 * findings: ct_new_certificate for the unmanaged ones, ct_unexpected_issuer where due, and the
 * certificate rules (cert_findings). */
static int pending_findings(struct ct_reader *r, struct cap_err *err)
{
    if (r->pend_n == 0)
        return 0;
    const char **fps = calloc(r->pend_n, sizeof *fps);
    const char **tbs = calloc(r->pend_n, sizeof *tbs);
    char *a1 = NULL, *a2 = NULL;
    PGresult *res = NULL;
    int rc = -1;
    if (!fps || !tbs) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory checking managed certificates");
        goto out;
    }
    for (size_t i = 0; i < r->pend_n; i++) {
        fps[i] = r->pend[i].fp;
        tbs[i] = r->pend[i].tbs;
    }
    a1 = cap_pg_text_array(fps, r->pend_n);
    a2 = cap_pg_text_array(tbs, r->pend_n);
    if (!a1 || !a2) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory checking managed certificates");
        goto out;
    }
    const char *p[] = {a1, a2};
    res = cap_pg_exec(r->ctx->pg, "check managed certificates", SQL_MANAGED, 2, p, err);
    if (!res)
        goto out;
    int nm = PQntuples(res);
    for (size_t i = 0; i < r->pend_n; i++) {
        const struct ct_pending *m = &r->pend[i];
        bool is_managed = false;
        for (int k = 0; k < nm && !is_managed; k++)
            is_managed = strcmp(PQgetvalue(res, k, 0), m->fp) == 0;
        char subject[80];
        snprintf(subject, sizeof subject, "cert:%s", m->fp);
        if (!is_managed && cap_inventory_raise(r->inv, CAP_FINDING_CT_NEW_CERTIFICATE, subject,
                                               m->source_id, 0, m->fp, m->details, err) < 0)
            goto out;
        if (m->unexpected_issuer &&
            cap_inventory_raise(r->inv, CAP_FINDING_CT_UNEXPECTED_ISSUER, subject, m->source_id, 0,
                                m->fp, m->details, err) < 0)
            goto out;
        if (cert_findings(r, m, is_managed, err) < 0)
            goto out;
    }
    rc = 0;
out:
    PQclear(res);
    free(a1);
    free(a2);
    free(fps);
    free(tbs);
    if (rc == 0)
        pending_clear(r);
    return rc;
}

/* Queues the sighting and the pending findings of one stored match for one source. facts is
 * taken over when owns (freed with the pending match). */
static int match_for(struct ct_reader *r, int64_t source_id, char *const *issuers,
                     size_t issuers_n, uint64_t index, const struct cap_ct_leaf *leaf,
                     const char *fp, const char *details, struct cap_cert_facts *facts,
                     bool owns, struct cap_err *err)
{
    if (cap_inventory_add_sighting_for(r->inv, source_id, fp, r->log->url, (int64_t)index,
                                       (int64_t)leaf->timestamp, err) < 0)
        return -1;
    r->items_queued++;
    if (r->pend_n == r->pend_cap) {
        size_t nc = r->pend_cap ? 2 * r->pend_cap : 64;
        struct ct_pending *np = realloc(r->pend, nc * sizeof *np);
        if (!np) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory queueing findings");
            return -1;
        }
        r->pend = np;
        r->pend_cap = nc;
    }
    struct ct_pending *m = &r->pend[r->pend_n];
    memset(m, 0, sizeof *m);
    memcpy(m->fp, fp, sizeof m->fp);
    snprintf(m->tbs, sizeof m->tbs, "%s", facts->tbs_sha256);
    m->source_id = source_id;
    m->unexpected_issuer = issuers_n > 0 && !issuer_expected(issuers, issuers_n, facts->issuer);
    m->details = strdup(details);
    if (!m->details) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory queueing findings");
        return -1;
    }
    /* The certificate rules, counted now so the commit cadence bounds the batch. */
    size_t rules =
        cap_findings_cert_specs(facts, true, (int64_t)time(NULL), expiring_days(r), NULL, 0);
    m->precert = leaf->entry_type == CAP_CT_ENTRY_PRECERT;
    m->facts = facts;
    m->owns_facts = owns;
    r->pend_n++;
    r->items_queued += 2 + (int64_t)rules; /* the findings, queued at the next commit */
    return 0;
}

/* Stores one matching entry: certificate (or precertificate) once, then the sighting and
 * findings of each source it matches: the run's own, or each member of the shared reader whose
 * suffixes it matches (*stored_n: how many). */
static int store_match(struct ct_reader *r, uint64_t index, const struct cap_ct_leaf *leaf,
                       const uint8_t *precert, size_t precert_len, size_t *stored_n,
                       struct cap_err *err)
{
    struct cap_cert_facts *f = calloc(1, sizeof *f);
    if (!f) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory storing a match");
        return -1;
    }
    char fp[65];
    int rc;
    bool is_pre = leaf->entry_type == CAP_CT_ENTRY_PRECERT;
    if (is_pre) {
        rc = cap_inventory_add_precert(r->inv, precert, precert_len, leaf->cert, leaf->cert_len,
                                       f, err);
        uint8_t h[32];
        SHA256(precert, precert_len, h);
        hexs(h, 32, fp);
    } else {
        rc = cap_inventory_add_cert(r->inv, leaf->cert, leaf->cert_len, f, err);
        uint8_t h[32];
        SHA256(leaf->cert, leaf->cert_len, h);
        hexs(h, 32, fp);
    }
    if (rc < 0) {
        free(f);
        cap_err_prefix(err, "entry %llu: ", (unsigned long long)index);
        return -1;
    }
    r->items_queued++;
    json_object *d = json_object_new_object();
    json_object_object_add(d, "issuer", json_object_new_string(f->issuer ? f->issuer : ""));
    json_object_object_add(d, "subject", json_object_new_string(f->subject ? f->subject : ""));
    json_object_object_add(d, "log_url", json_object_new_string(r->log->url));
    json_object_object_add(d, "log_index", json_object_new_int64((int64_t)index));
    json_object_object_add(d, "precert", json_object_new_boolean(is_pre));
    json_object *names = json_object_new_array();
    for (size_t i = 0; i < f->dns_sans_n && i < 50; i++)
        json_object_array_add(names, json_object_new_string(f->dns_sans[i]));
    json_object_object_add(d, "dns_names", names);
    const char *details = json_object_to_json_string_ext(d, JSON_C_TO_STRING_PLAIN);
    bool owned = false; /* f handed to a pending match */
    size_t n = 0;
    rc = 0;
    if (!r->shared) {
        rc = match_for(r, r->ctx->source_id, r->spec->expected_issuers,
                       r->spec->expected_issuers_n, index, leaf, fp, details, f, true, err);
        owned = rc == 0;
        n = rc == 0;
    } else {
        for (size_t i = 0; i < r->members_n && rc == 0; i++) {
            const struct ct_member *mb = &r->members[i];
            if (r->members_n > 1) {
                struct cap_err me = {0};
                if (cap_ct_match_cert(mb->sfx, leaf->cert, leaf->cert_len, is_pre, &me) != 1)
                    continue;
            }
            rc = match_for(r, mb->source_id, mb->issuers, mb->issuers_n, index, leaf, fp, details,
                           f, !owned, err);
            if (rc == 0) {
                owned = true;
                n++;
            }
        }
    }
    json_object_put(d);
    if (!owned) {
        cap_cert_facts_cleanup(f);
        free(f);
    }
    if (rc == 0)
        *stored_n = n;
    return rc;
}

/* ------------------------------------------------------------------ entries */

static int maybe_commit(struct ct_reader *r, struct cap_err *err)
{
    if (r->items_queued >= CT_COMMIT_ITEMS || r->since_commit >= CT_COMMIT_ENTRIES ||
        (r->since_commit > 0 && now_ms() - r->last_commit_ms >= CT_COMMIT_MS))
        return commit_pos(r, &r->pos, err);
    return 0;
}

static int fetch_on(struct ct_reader *r, struct cap_ct_http *h, struct cap_ct_req *q,
                    const char *what, struct cap_err *err);

/* Static-ct: the certificate whose SHA-256 is fp, from the log's issuer/<hex fp> (kept for the
 * rest of the read). 0 with *der (the reader's); 1 when the log serves another certificate
 * there; -1 with err when it cannot be fetched. */
static int issuer_get(struct ct_reader *r, const uint8_t fp[32], const uint8_t **der, size_t *len,
                      struct cap_err *err)
{
    for (size_t i = 0; i < CT_ISSUERS_MAX; i++)
        if (r->issuers[i].der && memcmp(r->issuers[i].fp, fp, 32) == 0) {
            *der = r->issuers[i].der;
            *len = r->issuers[i].len;
            return 0;
        }
    if (!r->aux) {
        /* The read's own client has its get-entries in flight; this fetch needs one to itself. */
        r->aux = cap_ct_http_new(r->policy, 10000, 20, 120000, err);
        if (!r->aux)
            return -1;
    }
    struct cap_ct_req q;
    memset(&q, 0, sizeof q);
    char hex[65];
    hexs(fp, 32, hex);
    snprintf(q.url, sizeof q.url, "%sissuer/%s", r->log->base, hex);
    if (fetch_on(r, r->aux, &q, "issuer certificate", err) < 0)
        return -1;
    uint8_t h[32];
    SHA256((const uint8_t *)q.body, q.len, h);
    if (q.len == 0 || memcmp(h, fp, 32) != 0) {
        cap_ct_req_reset(&q);
        return 1;
    }
    struct ct_issuer *slot = &r->issuers[r->issuers_next++ % CT_ISSUERS_MAX];
    free(slot->der);
    memcpy(slot->fp, fp, 32);
    slot->der = (uint8_t *)q.body;
    slot->len = q.len;
    q.body = NULL;
    cap_ct_req_reset(&q);
    *der = slot->der;
    *len = slot->len;
    return 0;
}

/* Whether the precertificate of a matching entry is its leaf's (ct_precert.h): its identity,
 * the fingerprint stored, comes from extra_data or the data tile, which no signature covers.
 * Returns 1 when it is; 0 when it is not (noted as misbehaviour; the entry is not stored); -1
 * with err when that cannot be told now (a static-ct log's issuer could not be fetched). */
static int precert_bound(struct ct_reader *r, uint64_t index, const struct cap_ct_leaf *leaf,
                         const uint8_t *pre, size_t pre_len, const uint8_t *first, size_t first_len,
                         const struct ct_extra *x, struct cap_err *err)
{
    struct cap_err pe = {0};
    int c = cap_ct_precert_check(pre, pre_len, first, first_len, leaf->cert, leaf->cert_len, &pe);
    if (c == 1 && x->chain_n > 0) {
        /* static-ct lists the chain by fingerprint: fetch its first certificate, which may be a
         * Precertificate Signing Certificate. */
        int g = issuer_get(r, x->chain_fps, &first, &first_len, err);
        if (g < 0) {
            cap_err_prefix(err, "entry %llu: ", (unsigned long long)index);
            return -1;
        }
        if (g == 1)
            cap_err_set(&pe, CAP_E_INVALID,
                        "the log's issuer certificate does not have the fingerprint it lists");
        else
            c = cap_ct_precert_check(pre, pre_len, first, first_len, leaf->cert, leaf->cert_len,
                                     &pe);
    }
    if (c == 0)
        return 1;
    if (c == 1)
        cap_err_set(&pe, CAP_E_INVALID,
                    "precertificate does not match the leaf's TBSCertificate: different issuer "
                    "(and no chain)");
    cap_log(CAP_LOG_WARN, "ct_precert_mismatch", CAP_LI("run_id", r->ctx->run_id),
            CAP_LS("log", r->log->url), CAP_LI("index", (long long)index), CAP_LS("err", pe.msg));
    note_misbehaving(r, "entry %llu: %s", (unsigned long long)index, pe.msg);
    return 0;
}

/* Hashes, matches and (when it matches) stores one entry at r->pos.next_index. */
static int process_entry(struct ct_reader *r, const uint8_t leaf_hash[32],
                         const struct cap_ct_leaf *leaf, const struct ct_extra *x,
                         struct cap_err *err)
{
    uint64_t index = r->pos.next_index;
    struct cap_err me = {0};
    int m = cap_ct_match_cert(r->shared ? r->union_sfx : r->sfx, leaf->cert, leaf->cert_len,
                              leaf->entry_type == CAP_CT_ENTRY_PRECERT, &me);
    const uint8_t *precert = x->precert;
    size_t precert_len = x->precert_len;
    /* A certificate our quick walk cannot read is not a log fault: it is stored as unmatched
     * (the log accepted it; the leaf hash still goes into the tree). */
    if (m == 1 && leaf->entry_type == CAP_CT_ENTRY_PRECERT) {
        const uint8_t *first = NULL;
        size_t first_len = 0;
        if (!precert && cap_ct_extra_precert(x->extra, x->extra_len, &precert, &precert_len, &first,
                                             &first_len, err) < 0) {
            cap_err_prefix(err, "entry %llu: ", (unsigned long long)index);
            return -1;
        }
        int b = precert_bound(r, index, leaf, precert, precert_len, first, first_len, x, err);
        if (b < 0)
            return -1;
        if (b == 0)
            m = 0; /* not stored; its leaf hash still goes into the tree */
    }
    size_t stored_n = 0;
    if (m == 1) {
        if (store_match(r, index, leaf, precert, precert_len, &stored_n, err) < 0) {
            if (err->code != CAP_E_INVALID) {
                r->db_failed = true;
                return -1;
            }
            /* A certificate the inventory cannot parse: logged, not stored, not fatal. */
            cap_log(CAP_LOG_WARN, "ct_entry_unparsable", CAP_LI("run_id", r->ctx->run_id),
                    CAP_LS("log", r->log->url), CAP_LI("index", (long long)index),
                    CAP_LS("err", err->msg));
            cap_err_clear(err);
            (*r->run_unreadable)++;
        } else {
            r->matches += (int64_t)stored_n;
            (*r->run_matches) += (int64_t)stored_n;
        }
    }
    if (r->pos.has_frontier && cap_ct_frontier_append(&r->pos.fr, leaf_hash) < 0) {
        cap_err_set(err, CAP_E_INVALID, "tree too large");
        return -1;
    }
    r->pos.next_index++;
    r->entries++;
    r->since_commit++;
    (*r->run_entries)++;
    return 0;
}

/* Processes a decoded get-entries response starting at r->pos.next_index. */
static int process_rfc_entries(struct ct_reader *r, const struct cap_ct_entries *e,
                               struct cap_err *err)
{
    for (size_t i = 0; i < e->n; i++) {
        struct cap_ct_leaf leaf;
        uint64_t index = r->pos.next_index;
        if (cap_ct_leaf_parse(e->v[i].leaf, e->v[i].leaf_len, &leaf, err) < 0 ||
            (leaf.entry_type == CAP_CT_ENTRY_X509 &&
             cap_ct_extra_x509(e->v[i].extra, e->v[i].extra_len, err) < 0)) {
            cap_err_prefix(err, "entry %llu: ", (unsigned long long)index);
            return -1;
        }
        uint8_t lh[32];
        cap_ct_leaf_hash(e->v[i].leaf, e->v[i].leaf_len, lh);
        struct ct_extra x = {.extra = e->v[i].extra, .extra_len = e->v[i].extra_len};
        if (process_entry(r, lh, &leaf, &x, err) < 0)
            return -1;
    }
    return maybe_commit(r, err);
}

/* Processes a data tile holding entries [tile*256, tile*256 + width), from r->pos.next_index
 * up to end. */
static int process_tile(struct ct_reader *r, uint64_t tile, unsigned width, const uint8_t *p,
                        size_t n, uint64_t end, struct cap_err *err)
{
    struct cap_ct_cur c;
    cap_ct_cur_init(&c, p, n);
    uint64_t first = tile * 256;
    for (unsigned i = 0; i < width; i++) {
        struct cap_ct_tile_leaf t;
        if (cap_ct_tile_leaf_next(&c, &t, err) < 0) {
            cap_err_prefix(err, "entry %llu: ", (unsigned long long)(first + i));
            return -1;
        }
        uint64_t index = first + i;
        if (index < r->pos.next_index)
            continue;
        if (index >= end)
            break;
        uint8_t lh[32];
        cap_ct_tile_leaf_hash(&t, lh);
        struct ct_extra x = {.precert = t.precert,
                             .precert_len = t.precert_len,
                             .chain_fps = t.chain_fps,
                             .chain_n = t.chain_n};
        if (process_entry(r, lh, &t.leaf, &x, err) < 0)
            return -1;
    }
    if (first + width <= end && c.left != 0) {
        cap_err_set(err, CAP_E_INVALID, "data tile %llu: %zu trailing bytes",
                    (unsigned long long)tile, c.left);
        return -1;
    }
    return maybe_commit(r, err);
}

/* ------------------------------------------------------------------ HTTP with retries */

/* The answer broke its body cap or the decompression cap (worker/http.c says "response
 * larger than ..." for both). */
static bool over_cap(const struct cap_ct_req *q)
{
    return q->status == 0 && strncmp(q->error, "response larger", 15) == 0;
}

static bool retryable(const struct cap_ct_req *q)
{
    if (q->status == 429 || q->status == 500 || q->status == 502 || q->status == 503 ||
        q->status == 504)
        return true;
    return q->status == 0 && strncmp(q->error, "refused by network policy", 25) != 0 &&
           !over_cap(q);
}

static bool limited_answer(const struct cap_ct_req *q)
{
    return q->status == 429 || q->status == 503;
}

static uint64_t rnd(struct ct_reader *r)
{
    /* xorshift64: jitter only, seeded per reader */
    uint64_t x = r->rng ? r->rng : 0x9e3779b97f4a7c15ULL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->rng = x;
    return x;
}

/* The wait before a retry: Retry-After (capped) when the log gave one, else exponential
 * backoff; with jitter either way, so the readers of a fleet that were told to slow down at
 * once do not come back at once. */
static int64_t backoff_ms(struct ct_reader *r, const struct cap_ct_req *q)
{
    if (limited_answer(q) && q->retry_after_s >= 0) {
        int64_t b = (q->retry_after_s > CT_RETRY_AFTER_CAP_S ? CT_RETRY_AFTER_CAP_S
                                                              : q->retry_after_s) *
                    1000;
        return b + (int64_t)(rnd(r) % (uint64_t)(b / 10 + 1));
    }
    int shift = q->attempts > 6 ? 6 : q->attempts;
    int64_t d = CT_BACKOFF_BASE_MS << shift;
    if (d > CT_BACKOFF_CAP_MS)
        d = CT_BACKOFF_CAP_MS;
    return d / 2 + (int64_t)(rnd(r) % (uint64_t)(d / 2 + 1));
}

/* Reserves the log's next request slot (ct.max_requests_per_second, paced across the fleet in
 * PostgreSQL) and returns how many ms to wait for it. When the database cannot pace, this run
 * paces itself. */
static int64_t rate_reserve(struct ct_reader *r)
{
    char ib[24];
    const char *p[] = {r->log->url, cap_pg_i64(ib, r->interval_ms)};
    struct cap_err e = {0};
    r->counts->requests++;
    PGresult *res = cap_pg_exec(r->ctx->pg, "pace ct requests", SQL_RATE, 2, p, &e);
    if (!res) {
        cap_log(CAP_LOG_WARN, "ct_rate_unpaced", CAP_LI("run_id", r->ctx->run_id),
                CAP_LS("log", r->log->url), CAP_LS("err", e.msg));
        return r->interval_ms;
    }
    int64_t w = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return w < 0 ? 0 : w;
}

/* Counts an answer 429/503 (run stats, metric, ct_log_rate). */
static void note_limited(struct ct_reader *r, const struct cap_ct_req *q, const char *what)
{
    if (!limited_answer(q))
        return;
    r->counts->rate_limited++;
    cap_metric_add(g_m_rate_limited, r->log->url, 1);
    const char *p[] = {r->log->url};
    struct cap_err e = {0};
    cap_pg_cmd(r->ctx->pg, "count ct rate limiting", SQL_RATE_LIMITED, 1, p, &e);
    cap_log(CAP_LOG_INFO, "ct_rate_limited", CAP_LI("run_id", r->ctx->run_id),
            CAP_LS("log", r->log->url), CAP_LS("what", what), CAP_LI("status", q->status),
            CAP_LI("retry_after_s", q->retry_after_s));
}

/* Sleeps ms in steps, returning early (false) when the worker stops. */
static bool nap(struct ct_reader *r, int64_t ms)
{
    for (int64_t slept = 0; slept < ms && !stopping(r); slept += 100)
        sleep_ms(ms - slept < 100 ? ms - slept : 100);
    return !stopping(r);
}

/* Fetches url to completion with retries on client h, which has nothing else in flight; on
 * success q->status is 200 and q->body is set. An answer over its cap sets r->hostile; a log
 * that keeps answering 429/503 sets r->rate_stop. */
static int fetch_on(struct ct_reader *r, struct cap_ct_http *h, struct cap_ct_req *q,
                    const char *what, struct cap_err *err)
{
    q->attempts = 0;
    int limited = 0;
    r->hostile = false;
    for (;;) {
        if (!nap(r, rate_reserve(r))) {
            cap_err_set(err, CAP_E_IO, "%s: worker is stopping", what);
            return -1;
        }
        if (cap_ct_http_start(h, q, err) < 0)
            return -1;
        struct cap_ct_req *d = NULL;
        while (!(d = cap_ct_http_wait(h, 200))) {
            if (stopping(r)) {
                cap_ct_http_cancel(h, q);
                cap_err_set(err, CAP_E_IO, "%s: worker is stopping", what);
                return -1;
            }
        }
        cap_ct_metrics_request(r->log->url, q);
        if (q->status == 200)
            return 0;
        char desc[300];
        cap_ct_req_describe(q, desc, sizeof desc);
        note_limited(r, q, what);
        if (limited_answer(q)) {
            /* Asked to slow down: not an attempt that failed, up to CT_MAX_LIMITED in a row. */
            if (++limited >= CT_MAX_LIMITED) {
                r->rate_stop = true;
                cap_err_set(err, CAP_E_IO, "%s: %s (the log keeps asking to slow down)", what,
                            desc);
                return -1;
            }
        } else {
            q->attempts++;
        }
        if (!retryable(q) || q->attempts >= CT_MAX_ATTEMPTS ||
            (q->timed_out && q->attempts >= CT_MAX_TIMEOUT_ATTEMPTS)) {
            cap_err_set(err, q->status == 0 ? CAP_E_IO : CAP_E_INVALID, "%s: %s%s", what, desc,
                        retryable(q) ? " (gave up after retries)" : "");
            r->hostile = over_cap(q);
            return -1;
        }
        int64_t wait = backoff_ms(r, q);
        cap_log(CAP_LOG_INFO, "ct_retry", CAP_LI("run_id", r->ctx->run_id),
                CAP_LS("log", r->log->url), CAP_LS("what", what), CAP_LS("err", desc),
                CAP_LI("wait_ms", wait));
        if (!nap(r, wait)) {
            cap_err_set(err, CAP_E_IO, "%s: worker is stopping", what);
            return -1;
        }
    }
}

static int fetch(struct ct_reader *r, struct cap_ct_req *q, const char *what, struct cap_err *err)
{
    return fetch_on(r, r->http, q, what, err);
}

/* ------------------------------------------------------------------ tree heads */

static int get_tree_head(struct ct_reader *r, struct cap_err *err)
{
    struct cap_ct_req q;
    memset(&q, 0, sizeof q);
    int rc = -1;
    const char *what = r->static_ct ? "checkpoint" : "get-sth";
    snprintf(q.url, sizeof q.url, "%s%s", r->log->base,
             r->static_ct ? "checkpoint" : "ct/v1/get-sth");
    if (r->probed) {
        /* The answer the protocol probe got: asking again could hide what the log said. */
        q.body = r->probed;
        q.len = r->probed_len;
        r->probed = NULL;
    } else if (fetch(r, &q, what, err) < 0) {
        return -1;
    }
    if (r->static_ct) {
        rc = cap_ct_checkpoint_parse(q.body, q.len, r->log->key,
                                     r->log->origin[0] ? r->log->origin : NULL, &r->sth,
                                     &r->verified, err);
    } else if (cap_ct_sth_parse(q.body, q.len, &r->sth, err) == 0) {
        rc = 0;
        r->verified = false;
        if (r->log->key) {
            rc = cap_ct_sth_verify(r->log->key, &r->sth, err);
            r->verified = rc == 0;
        }
    }
    cap_ct_req_reset(&q);
    return rc;
}

/* Static-ct: hash of the perfect subtree (level, index) read from the hash tiles of a tree of
 * size tree. */
static int tile_node(struct ct_reader *r, int level, uint64_t index, uint64_t tree,
                     uint8_t out[32], struct cap_err *err)
{
    int tl = level / 8, rem = level % 8;
    uint64_t pos = index << rem;            /* first hash at tile level tl */
    uint64_t k = pos >> 8;                  /* tile index */
    uint64_t at_level = tree >> (8 * tl);   /* complete hashes at that level */
    uint64_t width = at_level - k * 256 > 256 ? 256 : at_level - k * 256;
    char path[128];
    if (cap_ct_tile_path(tl, k, (unsigned)width, path, sizeof path) < 0)
        return -1;
    uint64_t off = pos - k * 256, cnt = UINT64_C(1) << rem;
    if (off + cnt > width) {
        cap_err_set(err, CAP_E_INVALID, "hash tile %s: node %llu past its width", path,
                    (unsigned long long)pos);
        return -1;
    }
    /* A tile never changes once published (a partial one is named by its width), so one read
     * serves every node asked of it during the run. */
    const struct ct_tile *tile = NULL;
    for (size_t i = 0; i < CT_TILES_MAX && !tile; i++)
        if (r->tiles[i].data && strcmp(r->tiles[i].path, path) == 0)
            tile = &r->tiles[i];
    if (!tile) {
        struct cap_ct_req q;
        memset(&q, 0, sizeof q);
        snprintf(q.url, sizeof q.url, "%s%s", r->log->base, path);
        if (fetch(r, &q, "hash tile", err) < 0)
            return -1;
        if (q.len != width * 32) {
            cap_err_set(err, CAP_E_INVALID, "hash tile %s: %zu bytes, expected %llu", path, q.len,
                        (unsigned long long)(width * 32));
            cap_ct_req_reset(&q);
            return -1;
        }
        struct ct_tile *t = &r->tiles[r->tiles_next++ % CT_TILES_MAX];
        free(t->data);
        snprintf(t->path, sizeof t->path, "%s", path);
        t->data = (uint8_t *)q.body;
        t->len = q.len;
        q.body = NULL;
        cap_ct_req_reset(&q);
        tile = t;
    }
    uint8_t h[256][32];
    memcpy(h, tile->data + off * 32, cnt * 32);
    for (uint64_t n = cnt; n > 1; n /= 2)
        for (uint64_t i = 0; i < n / 2; i++)
            cap_ct_node_hash(h[2 * i], h[2 * i + 1], h[i]);
    memcpy(out, h[0], 32);
    return 0;
}

/* Static-ct: the frontier of [0, size) from the hash tiles of the current tree. */
static int tile_frontier(struct ct_reader *r, uint64_t size, struct cap_ct_frontier *f,
                         struct cap_err *err)
{
    f->size = size;
    for (int level = 0; level < CAP_CT_MAX_LEVELS; level++)
        if ((size >> level) & 1)
            if (tile_node(r, level, (size >> level) - 1, r->sth.tree_size, f->hash[level], err) <
                0)
                return -1;
    return 0;
}

/* RFC 6962: the frontier of [0, index) from the audit path of entry index in the current
 * tree, checked against its signed root. */
static int proof_frontier(struct ct_reader *r, uint64_t index, struct cap_ct_frontier *f,
                          struct cap_err *err)
{
    struct cap_ct_req q;
    memset(&q, 0, sizeof q);
    snprintf(q.url, sizeof q.url, "%sct/v1/get-entry-and-proof?leaf_index=%llu&tree_size=%llu",
             r->log->base, (unsigned long long)index, (unsigned long long)r->sth.tree_size);
    if (fetch(r, &q, "get-entry-and-proof", err) < 0)
        return -1;
    uint8_t *leaf = NULL;
    size_t leaf_len = 0, pn = 0;
    uint8_t(*path)[32] = NULL;
    int rc = cap_ct_entry_proof_parse(q.body, q.len, &leaf, &leaf_len, &path, &pn, err);
    cap_ct_req_reset(&q);
    if (rc < 0)
        return -1;
    uint8_t lh[32];
    cap_ct_leaf_hash(leaf, leaf_len, lh);
    struct cap_err ve = {0};
    rc = cap_ct_inclusion_verify(index, r->sth.tree_size, lh, r->sth.root,
                                 (const uint8_t(*)[32])path, pn, f, &ve);
    free(leaf);
    free(path);
    if (rc < 0) {
        snprintf(r->err, sizeof r->err, "%s", ve.msg);
        return 1;
    }
    return 0;
}

/* The frontier of [0, m), 0 < m <= tree size (m < tree size for RFC 6962), proven by the signed
 * root: RFC 6962 from the audit path of entry m; static-ct from the hash tiles, whose nodes for
 * [0, m) and the perfect subtrees covering [m, tree size) must hash to the root. Returns 0, 1
 * when the log's own proof does not give its root (reason in r->err), or -1 with err. */
static int proven_frontier(struct ct_reader *r, uint64_t m, struct cap_ct_frontier *f,
                           struct cap_err *err)
{
    if (!r->static_ct)
        return proof_frontier(r, m, f, err);
    if (tile_frontier(r, m, f, err) < 0)
        return -1;
    struct cap_ct_frontier all = *f;
    uint64_t n = r->sth.tree_size;
    for (uint64_t p = m; p < n;) {
        int level = __builtin_ctzll(p);
        while ((UINT64_C(1) << level) > n - p)
            level--;
        uint8_t h[32];
        if (tile_node(r, level, p >> level, n, h, err) < 0)
            return -1;
        if (cap_ct_frontier_append_node(&all, level, h) < 0) {
            cap_err_set(err, CAP_E_INVALID, "tree too large");
            return -1;
        }
        p += UINT64_C(1) << level;
    }
    uint8_t root[32];
    cap_ct_frontier_root(&all, root);
    if (memcmp(root, r->sth.root, 32) != 0) {
        snprintf(r->err, sizeof r->err,
                 "the hash tiles of tree size %llu do not hash to its signed root",
                 (unsigned long long)n);
        return 1;
    }
    return 0;
}

/* Checks the new tree head against the stored one. Returns 0, 1 when the log misbehaved
 * (reason in r->err), or -1 with err. When the stored position is at the stored tree size,
 * the proof also gives the frontier of what was read: it replaces a missing or wrong one (and
 * a wrong one is noted as misbehaviour: the entries read were not the log's tree). */
static int check_consistency(struct ct_reader *r, struct cap_err *err)
{
    struct ct_pos *c = &r->pos;
    if (!c->has_root)
        return 0;
    if (r->sth.tree_size < c->tree_size) {
        snprintf(r->err, sizeof r->err, "tree shrank from %llu to %llu entries",
                 (unsigned long long)c->tree_size, (unsigned long long)r->sth.tree_size);
        return 1;
    }
    if (r->sth.tree_size == c->tree_size) {
        if (memcmp(r->sth.root, c->root, 32) != 0) {
            snprintf(r->err, sizeof r->err,
                     "two tree heads of size %llu have different roots (forked log)",
                     (unsigned long long)c->tree_size);
            return 1;
        }
        return 0;
    }
    if (c->tree_size == 0)
        return 0;
    struct cap_ct_frontier old;
    struct cap_err ce = {0};
    if (r->static_ct) {
        if (tile_frontier(r, c->tree_size, &old, err) < 0)
            return -1;
        uint8_t root[32];
        cap_ct_frontier_root(&old, root);
        if (memcmp(root, c->root, 32) != 0) {
            snprintf(r->err, sizeof r->err,
                     "tiles of tree size %llu do not contain the tree of size %llu seen before",
                     (unsigned long long)r->sth.tree_size, (unsigned long long)c->tree_size);
            return 1;
        }
    } else {
        struct cap_ct_req q;
        memset(&q, 0, sizeof q);
        snprintf(q.url, sizeof q.url, "%sct/v1/get-sth-consistency?first=%llu&second=%llu",
                 r->log->base, (unsigned long long)c->tree_size,
                 (unsigned long long)r->sth.tree_size);
        if (fetch(r, &q, "get-sth-consistency", err) < 0)
            return -1;
        uint8_t(*proof)[32] = NULL;
        size_t pn = 0;
        int prc = cap_ct_consistency_parse(q.body, q.len, &proof, &pn, err);
        cap_ct_req_reset(&q);
        if (prc < 0)
            return -1;
        int v = cap_ct_consistency_verify(c->tree_size, r->sth.tree_size, c->root, r->sth.root,
                                          (const uint8_t(*)[32])proof, pn, &old, &ce);
        free(proof);
        if (v < 0) {
            snprintf(r->err, sizeof r->err, "%s", ce.msg);
            return 1;
        }
    }
    if (c->next_index == c->tree_size) {
        if (c->has_frontier && !cap_ct_frontier_equal(&c->fr, &old))
            note_misbehaving(r,
                             "the first %llu entries as read before do not hash to the log's "
                             "tree; the frontier of its consistency proof replaces them",
                             (unsigned long long)c->tree_size);
        c->fr = old;
        c->has_frontier = true;
        r->start.fr = old;
        r->start.has_frontier = true;
        r->proven = true;
    }
    return 0;
}

/* ------------------------------------------------------------------ the read */

static void slot_free(struct ct_reader *r, struct ct_slot *s)
{
    cap_ct_http_cancel(r->http, &s->req);
    cap_ct_entries_free(&s->ents);
    memset(s, 0, sizeof *s);
}

static int issue(struct ct_reader *r, struct ct_slot *s, struct cap_err *err)
{
    if (r->static_ct) {
        char path[256];
        if (cap_ct_tile_path(-1, s->req.start, (unsigned)s->req.count, path, sizeof path) < 0)
            return -1;
        snprintf(s->req.url, sizeof s->req.url, "%s%s", r->log->base, path);
    } else {
        snprintf(s->req.url, sizeof s->req.url, "%sct/v1/get-entries?start=%llu&end=%llu",
                 r->log->base, (unsigned long long)s->req.start,
                 (unsigned long long)(s->req.start + s->req.count - 1));
    }
    s->used = true;
    s->ready = false;
    if (!s->paced) {
        /* Every request, a retry too, takes a slot of the log's rate first. */
        s->paced = true;
        int64_t w = rate_reserve(r);
        if (w > 0) {
            s->waiting = true;
            s->not_before_ms = now_ms() + w;
            return 0;
        }
    }
    s->paced = false;
    s->waiting = false;
    return cap_ct_http_start(r->http, &s->req, err);
}

/* Reads entries [r->pos.next_index, end). Returns 0 when all were processed, -1 with err. */
static int read_range(struct ct_reader *r, uint64_t end, struct cap_err *err)
{
    struct ct_slot slots[CT_INFLIGHT];
    memset(slots, 0, sizeof slots);
    uint64_t next_req = r->pos.next_index; /* rfc6962: next index; static: next tile */
    if (r->static_ct)
        next_req = r->pos.next_index / 256;
    uint64_t last_tile = end ? (end - 1) / 256 : 0;
    int rc = 0;
    while (r->pos.next_index < end) {
        if (stopping(r))
            break;
        /* Fill free slots. */
        for (int i = 0; i < r->inflight; i++) {
            struct ct_slot *s = &slots[i];
            if (s->used)
                continue;
            if (r->static_ct) {
                if (next_req > last_tile)
                    continue;
                s->req.start = next_req;
                uint64_t w = r->sth.tree_size - next_req * 256;
                s->req.count = w > 256 ? 256 : w;
                next_req++;
            } else {
                if (next_req >= end)
                    continue;
                s->req.start = next_req;
                s->req.count = end - next_req < r->batch ? end - next_req : r->batch;
                next_req += s->req.count;
            }
            s->req.attempts = 0;
            if (issue(r, s, err) < 0) {
                rc = -1;
                goto out;
            }
        }
        /* Re-issue slots whose retry wait is over. */
        int64_t t = now_ms();
        for (int i = 0; i < CT_INFLIGHT; i++)
            if (slots[i].waiting && t >= slots[i].not_before_ms && issue(r, &slots[i], err) < 0) {
                rc = -1;
                goto out;
            }
        struct cap_ct_req *d = cap_ct_http_wait(r->http, 100);
        if (d) {
            cap_ct_metrics_request(r->log->url, d);
            struct ct_slot *s = NULL;
            for (int i = 0; i < CT_INFLIGHT; i++)
                if (&slots[i].req == d)
                    s = &slots[i];
            char what[128];
            snprintf(what, sizeof what, r->static_ct ? "data tile %llu" : "get-entries %llu",
                     (unsigned long long)d->start);
            if (d->status != 200) {
                char desc[300];
                cap_ct_req_describe(d, desc, sizeof desc);
                note_limited(r, d, what);
                if (limited_answer(d)) {
                    /* Asked to slow down: a fact of the run, never its failure. After
                     * CT_MAX_LIMITED in a row the read stops at what it has, and the next run
                     * goes on from there. */
                    if (++s->limited >= CT_MAX_LIMITED) {
                        r->rate_stop = true;
                        cap_log(CAP_LOG_WARN, "ct_rate_stop", CAP_LI("run_id", r->ctx->run_id),
                                CAP_LS("log", r->log->url), CAP_LS("err", desc));
                        goto out;
                    }
                } else {
                    d->attempts++;
                }
                if (!retryable(d) || d->attempts >= CT_MAX_ATTEMPTS ||
                    (d->timed_out && d->attempts >= CT_MAX_TIMEOUT_ATTEMPTS)) {
                    cap_err_set(err, d->status == 0 ? CAP_E_IO : CAP_E_INVALID, "%s: %s%s", what,
                                desc, retryable(d) ? " (gave up after retries)" : "");
                    r->hostile = over_cap(d);
                    rc = -1;
                    goto out;
                }
                s->waiting = true;
                s->not_before_ms = now_ms() + backoff_ms(r, d);
                cap_log(CAP_LOG_INFO, "ct_retry", CAP_LI("run_id", r->ctx->run_id),
                        CAP_LS("log", r->log->url), CAP_LS("what", what), CAP_LS("err", desc),
                        CAP_LI("wait_ms", s->not_before_ms - now_ms()));
                continue;
            }
            if (!r->static_ct) {
                if (cap_ct_entries_parse(d->body, d->len, d->count, &s->ents, err) < 0) {
                    /* CAP_E_LIMIT: outside what a get-entries answer is (a JSON bomb). */
                    r->hostile = err->code == CAP_E_LIMIT;
                    cap_err_prefix(err, "%s: ", what);
                    rc = -1;
                    goto out;
                }
                free(d->body);
                d->body = NULL;
                if (s->ents.n < d->count) {
                    /* The log caps its batches: ask for that much from now on, and ask again
                     * for the rest of this range in a slot of its own. */
                    uint64_t rest_start = d->start + s->ents.n, rest_n = d->count - s->ents.n;
                    r->batch = s->ents.n;
                    d->count = s->ents.n;
                    struct ct_slot *fs = NULL;
                    for (int i = 0; i < r->inflight && !fs; i++)
                        if (!slots[i].used)
                            fs = &slots[i];
                    if (fs) {
                        fs->req.start = rest_start;
                        fs->req.count = rest_n;
                        fs->req.attempts = 0;
                        if (issue(r, fs, err) < 0) {
                            rc = -1;
                            goto out;
                        }
                    } else {
                        /* No free slot: the rest is asked for again after the slots drain. */
                        next_req = rest_start;
                        for (int i = 0; i < CT_INFLIGHT; i++)
                            if (slots[i].used && slots[i].req.start > rest_start)
                                slot_free(r, &slots[i]);
                    }
                }
            }
            s->limited = 0;
            s->ready = true;
        }
        /* Consume ready slots in order. */
        for (bool progress = true; progress;) {
            progress = false;
            for (int i = 0; i < CT_INFLIGHT; i++) {
                struct ct_slot *s = &slots[i];
                if (!s->ready)
                    continue;
                bool in_order = r->static_ct ? s->req.start == r->pos.next_index / 256
                                             : s->req.start == r->pos.next_index;
                if (!in_order)
                    continue;
                int prc = r->static_ct ? process_tile(r, s->req.start, (unsigned)s->req.count,
                                                      (const uint8_t *)s->req.body, s->req.len,
                                                      end, err)
                                       : process_rfc_entries(r, &s->ents, err);
                slot_free(r, s);
                if (prc < 0) {
                    rc = -1;
                    goto out;
                }
                progress = true;
            }
        }
    }
out:
    for (int i = 0; i < CT_INFLIGHT; i++)
        slot_free(r, &slots[i]);
    return rc;
}

/* ------------------------------------------------------------------ one log */

static int probe_protocol(struct ct_reader *r, struct cap_err *err)
{
    struct cap_ct_req q;
    memset(&q, 0, sizeof q);
    snprintf(q.url, sizeof q.url, "%sct/v1/get-sth", r->log->base);
    struct cap_err pe = {0};
    if (fetch(r, &q, "probe get-sth", &pe) == 0) {
        json_tokener *tok = json_tokener_new();
        json_object *o = tok ? json_tokener_parse_ex(tok, q.body, (int)q.len) : NULL;
        bool is_json = o && json_object_is_type(o, json_type_object) &&
                       json_object_object_get_ex(o, "tree_size", NULL);
        json_object_put(o);
        json_tokener_free(tok);
        if (is_json) {
            r->static_ct = false;
            r->probed = q.body;
            r->probed_len = q.len;
            q.body = NULL;
            return 0;
        }
        cap_err_set(&pe, CAP_E_INVALID, "get-sth answered something other than a tree head");
    }
    cap_ct_req_reset(&q);
    snprintf(q.url, sizeof q.url, "%scheckpoint", r->log->base);
    struct cap_err pe2 = {0};
    if (fetch(r, &q, "probe checkpoint", &pe2) == 0) {
        r->static_ct = true;
        r->probed = q.body;
        r->probed_len = q.len;
        return 0;
    }
    cap_ct_req_reset(&q);
    cap_err_set(err, CAP_E_IO, "cannot tell the log's protocol: %s; %s", pe.msg, pe2.msg);
    return -1;
}

/* ------------------------------------------------------------------ the shared reader */

/* The misbehaviour in r->err: the finding raised (for the members too when reading for them),
 * the checkpoint left where the read found it. 0, or -1 with err. */
static int log_misbehaving(struct ct_reader *r, struct cap_err *err)
{
    cap_log(CAP_LOG_WARN, "ct_log_misbehaving", CAP_LI("run_id", r->ctx->run_id),
            CAP_LS("log", r->log->url), CAP_LS("err", r->err));
    if (raise_misbehaving(r, r->err, err) < 0)
        return -1;
    /* The finding is written; the checkpoint stays where the run found it. */
    bool had = r->start.has_root || r->start.next_index;
    if (had) {
        if (commit_pos(r, &r->start, err) < 0) {
            if (!r->moved)
                return -1;
            cap_err_clear(err);
        }
    } else if (cap_inventory_flush(r->inv, err) < 0) {
        return -1;
    }
    r->misbehaving = true;
    return 0;
}

/* Misbehaviour found while reading on (or while checking the stored position): one finding,
 * queued with the next commit; the checkpoint moves as read. 0, or -1 with err. */
static int raise_flagged(struct ct_reader *r, struct cap_err *err)
{
    if (r->flagged_n == 0 || r->misbehaving)
        return 0;
    if (r->flagged_n > 1)
        snprintf(r->err, sizeof r->err, "%s (and %lld more)", r->flagged,
                 (long long)(r->flagged_n - 1));
    else
        snprintf(r->err, sizeof r->err, "%s", r->flagged);
    cap_log(CAP_LOG_WARN, "ct_log_misbehaving", CAP_LI("run_id", r->ctx->run_id),
            CAP_LS("log", r->log->url), CAP_LS("err", r->err));
    if (raise_misbehaving(r, r->err, err) < 0)
        return -1;
    r->misbehaving = true;
    return 0;
}

/* After a read of [r->start, r->pos): the frontier it built proven, misbehaviour found on the
 * way raised, what was read committed. rrc and le: what the read returned. Returns 0 (r->err
 * set when the log failed or misbehaved), or -1 with err when the run must end. */
static int finish_read(struct ct_reader *r, int rrc, const struct cap_err *le, bool *backlog_left,
                       struct cap_err *err)
{
    if (rrc < 0 && r->moved) {
        /* Another run took the log's lease or moved the checkpoint: what it read is its. */
        r->left_to_shared = true;
        return 0;
    }
    if (rrc < 0 && (le->code == CAP_E_FENCED || r->db_failed)) {
        *err = *le;
        return -1;
    }
    /* An answer past its caps or outside the shape of its kind (a bomb): what was read before
     * it is kept, and the log is reported. */
    if (rrc < 0 && r->hostile)
        note_misbehaving(r, "%s", le->msg);
    /* Store what was read, up to the first entry that failed; the frontier it built must be
     * the log's, proven by the signed root: directly at the tree size, else by the log's
     * proof for the next entry. A wrong one (the log served entries other than its tree's) goes
     * back to where the run started, which was proven, and those entries are read again by the
     * next run: the checkpoint never keeps a frontier that would fail every later run. */
    if (r->pos.next_index == r->sth.tree_size && r->pos.has_frontier && rrc == 0) {
        uint8_t root[32];
        cap_ct_frontier_root(&r->pos.fr, root);
        if (memcmp(root, r->sth.root, 32) != 0) {
            snprintf(r->err, sizeof r->err,
                     "entries 0..%llu hash to a root other than the signed one",
                     (unsigned long long)r->sth.tree_size - 1);
            /* Keep the certificates, but leave the checkpoint where the run found it. */
            r->pos = r->start;
            return log_misbehaving(r, err);
        }
    } else if (r->pos.has_frontier && r->pos.next_index > r->start.next_index &&
               r->pos.next_index < r->sth.tree_size) {
        struct cap_ct_frontier pf;
        struct cap_err pe = {0};
        int pv = proven_frontier(r, r->pos.next_index, &pf, &pe);
        if (pv == 0 && !cap_ct_frontier_equal(&pf, &r->pos.fr)) {
            snprintf(r->err, sizeof r->err,
                     "entries %llu..%llu as read do not hash to the log's tree (its proof for "
                     "entry %llu disagrees); they are read again",
                     (unsigned long long)r->start.next_index,
                     (unsigned long long)r->pos.next_index - 1,
                     (unsigned long long)r->pos.next_index);
            pv = 1;
        }
        if (pv == 1) {
            r->pos = r->start;
            return log_misbehaving(r, err);
        }
        if (pv < 0) {
            if (pe.code == CAP_E_FENCED) {
                *err = pe;
                return -1;
            }
            /* Not proven now: the next run's check does it before reading on. */
            cap_log(CAP_LOG_WARN, "ct_frontier_unproven", CAP_LI("run_id", r->ctx->run_id),
                    CAP_LS("log", r->log->url), CAP_LI("index", (long long)r->pos.next_index),
                    CAP_LS("err", pe.msg));
        }
    }
    if (raise_flagged(r, err) < 0)
        return -1;
    if (commit_pos(r, &r->pos, err) < 0) {
        if (!r->moved)
            return -1;
        cap_err_clear(err);
        r->left_to_shared = true;
        return 0;
    }
    *backlog_left = r->pos.next_index < r->sth.tree_size;
    if (rrc < 0 && !r->misbehaving)
        snprintf(r->err, sizeof r->err, "%s", le->msg);
    return 0;
}

/* The key the log is shared under: sources read it together only when they verify it with the
 * same key (or none). A log URL speaks one protocol, and its entries are the same whichever. */
static void reader_key_make(struct ct_reader *r)
{
    char kh[65] = "unverified";
    if (r->log->key) {
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(r->log->key, &der);
        if (n > 0) {
            uint8_t h[32];
            SHA256(der, (size_t)n, h);
            hexs(h, 32, kh);
        }
        OPENSSL_free(der);
    }
    snprintf(r->reader_key, sizeof r->reader_key, "%s %s", kh, r->log->url);
}

/* True when the log's lease is held by a live run of another source and this source stands at
 * or ahead of its frontier (SQL_LEASE_PEEK). A failure only means the log is looked at. */
static bool lease_peek(struct ct_reader *r)
{
    char sb[24], rb[24], ib[24];
    int64_t idle = r->ctx->cfg ? r->ctx->cfg->worker_reclaim_idle_ms : 60000;
    const char *p[] = {r->reader_key, cap_pg_i64(sb, r->ctx->source_id),
                       cap_pg_i64(rb, r->ctx->run_id), cap_pg_i64(ib, idle)};
    struct cap_err e = {0};
    PGresult *res = cap_pg_exec(r->ctx->pg, "peek at the ct lease", SQL_LEASE_PEEK, 4, p, &e);
    bool held = res && PQntuples(res) > 0;
    PQclear(res);
    return held;
}

static void members_free(struct ct_reader *r)
{
    for (size_t i = 0; i < r->members_n; i++) {
        cap_ct_suffixes_free(r->members[i].sfx);
        for (size_t k = 0; k < r->members[i].issuers_n; k++)
            free(r->members[i].issuers[k]);
        free(r->members[i].issuers);
    }
    free(r->members);
    r->members = NULL;
    r->members_n = 0;
    cap_ct_suffixes_free(r->union_sfx);
    r->union_sfx = NULL;
}

/* The strings of a JSON array text (as the spec stores texts fields); NULL-terminated, *n
 * entries; NULL on a malformed value or no memory. */
static char **json_texts(const char *text, size_t *n)
{
    json_object *o = json_tokener_parse(text);
    char **v = NULL;
    *n = 0;
    if (!o || !json_object_is_type(o, json_type_array))
        goto out;
    size_t len = json_object_array_length(o);
    v = calloc(len + 1, sizeof *v);
    if (!v)
        goto out;
    for (size_t i = 0; i < len; i++) {
        json_object *e = json_object_array_get_idx(o, i);
        const char *t = json_object_is_type(e, json_type_string) ? json_object_get_string(e) : "";
        v[*n] = strdup(t);
        if (!v[*n]) {
            for (size_t k = 0; k < *n; k++)
                free(v[k]);
            free(v);
            v = NULL;
            *n = 0;
            goto out;
        }
        (*n)++;
    }
out:
    json_object_put(o);
    return v;
}

/* Loads the sources the shared reader reads for at r->group_from (members, their suffixes
 * together in union_sfx) and the next checkpoint above it (next_join). A source whose spec
 * cannot be read is left out (it reads its own range later). 0, or -1 with err. */
static int load_members(struct ct_reader *r, struct cap_err *err)
{
    members_free(r);
    r->next_join = 0;
    char fb[24];
    const char *p[] = {r->log->url, r->reader_key, cap_pg_i64(fb, (int64_t)r->group_from)};
    PGresult *res = cap_pg_exec(r->ctx->pg, "load ct reader members", SQL_MEMBERS, 3, p, err);
    if (!res)
        return -1;
    int n = PQntuples(res);
    r->members = calloc((size_t)n + 1, sizeof *r->members);
    char ***doms = calloc((size_t)n + 1, sizeof *doms);
    size_t *doms_n = calloc((size_t)n + 1, sizeof *doms_n);
    const char **all = NULL;
    size_t all_n = 0;
    int rc = -1;
    if (!r->members || !doms || !doms_n) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory loading the ct reader's sources");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct ct_member *m = &r->members[r->members_n];
        m->source_id = cap_pg_get_i64(res, i, 0);
        size_t dn = 0;
        char **d = json_texts(PQgetvalue(res, i, 1), &dn);
        struct cap_err se = {0};
        m->sfx = d ? cap_ct_suffixes_new((const char *const *)d, dn, &se) : NULL;
        m->issuers = json_texts(PQgetvalue(res, i, 2), &m->issuers_n);
        if (!m->sfx || !m->issuers) {
            cap_log(CAP_LOG_WARN, "ct_member_skipped", CAP_LI("run_id", r->ctx->run_id),
                    CAP_LS("log", r->log->url), CAP_LI("source_id", m->source_id),
                    CAP_LS("err", se.msg[0] ? se.msg : "unreadable spec"));
            cap_ct_suffixes_free(m->sfx);
            for (size_t k = 0; m->issuers && k < m->issuers_n; k++)
                free(m->issuers[k]);
            free(m->issuers);
            memset(m, 0, sizeof *m);
            for (size_t k = 0; d && k < dn; k++)
                free(d[k]);
            free(d);
            continue;
        }
        doms[r->members_n] = d;
        doms_n[r->members_n] = dn;
        r->members_n++;
        all_n += dn;
    }
    all = calloc(all_n + 1, sizeof *all);
    if (!all) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory loading the ct reader's sources");
    } else {
        size_t k = 0;
        for (size_t i = 0; i < r->members_n; i++)
            for (size_t j = 0; j < doms_n[i]; j++)
                all[k++] = doms[i][j];
        if (r->members_n == 0 || (r->union_sfx = cap_ct_suffixes_new(all, k, err)) != NULL)
            rc = 0;
    }
out:
    for (size_t i = 0; doms && i < r->members_n; i++) {
        for (size_t j = 0; j < doms_n[i]; j++)
            free(doms[i][j]);
        free(doms[i]);
    }
    free(doms);
    free(doms_n);
    free(all);
    PQclear(res);
    if (rc < 0) {
        members_free(r);
        return -1;
    }
    res = cap_pg_exec(r->ctx->pg, "find the next ct checkpoint", SQL_NEXT_JOIN, 3, p, err);
    if (!res) {
        members_free(r);
        return -1;
    }
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
        r->next_join = (uint64_t)cap_pg_get_i64(res, 0, 0);
    PQclear(res);
    return 0;
}

/* Takes the log's reader lease unless a live run of another source holds it (*held): made at
 * this source's checkpoint when missing; a stale one (no heartbeat for worker.reclaim_idle) is
 * taken over with a new generation, which fences the old holder's writes. *frontier: the
 * shared frontier; *now_cp: the source's checkpoint as it is now (-1: none). 0, or -1 with
 * err. */
static int lease_take(struct ct_reader *r, uint64_t *frontier, bool *held, int64_t *now_cp,
                      struct cap_err *err)
{
    PGconn *pg = r->ctx->pg;
    char nb[24], ib[24], rb[24], sb[24];
    PGresult *res = NULL;
    if (cap_pg_cmd(pg, "begin ct lease", SQL_BEGIN, 0, NULL, err) < 0)
        return -1;
    if (cap_run_fence(r->ctx, err) < 0)
        goto fail;
    const char *mp[] = {r->reader_key, r->log->url, cap_pg_i64(nb, (int64_t)r->pos.next_index)};
    if (cap_pg_cmd(pg, "make ct lease", SQL_LEASE_MAKE, 3, mp, err) < 0)
        goto fail;
    int64_t idle = r->ctx->cfg ? r->ctx->cfg->worker_reclaim_idle_ms : 60000;
    const char *lp[] = {r->reader_key, cap_pg_i64(ib, idle)};
    res = cap_pg_exec(pg, "lock ct lease", SQL_LEASE_LOCK, 2, lp, err);
    if (!res)
        goto fail;
    if (PQntuples(res) != 1) {
        cap_err_set(err, CAP_E_IO, "ct lease of %s: not found after it was made", r->log->url);
        goto fail;
    }
    *frontier = (uint64_t)cap_pg_get_i64(res, 0, 0);
    int64_t holder = cap_pg_get_i64(res, 0, 1);
    bool live = PQgetvalue(res, 0, 3)[0] == 't';
    PQclear(res);
    const char *cp[] = {cap_pg_i64(sb, r->ctx->source_id), r->log->url};
    res = cap_pg_exec(pg, "read ct checkpoint", SQL_CP_NEXT, 2, cp, err);
    if (!res)
        goto fail;
    *now_cp = PQntuples(res) == 1 ? cap_pg_get_i64(res, 0, 0) : -1;
    PQclear(res);
    res = NULL;
    *held = live && holder != r->ctx->run_id;
    if (!*held) {
        const char *tp[] = {r->reader_key, cap_pg_i64(rb, r->ctx->run_id), sb};
        res = cap_pg_exec(pg, "take ct lease", SQL_LEASE_TAKE, 3, tp, err);
        if (!res || PQntuples(res) != 1)
            goto fail;
        r->lease_gen = cap_pg_get_i64(res, 0, 0);
        PQclear(res);
        res = NULL;
    }
    if (cap_pg_cmd(pg, "commit ct lease", SQL_COMMIT, 0, NULL, err) < 0)
        goto fail;
    cap_log(CAP_LOG_INFO, "ct_lease", CAP_LI("run_id", r->ctx->run_id),
            CAP_LS("log", r->log->url), CAP_LS("lease", *held ? "held_by_another" : "taken"),
            CAP_LI("holder_run_id", *held ? holder : r->ctx->run_id),
            CAP_LI("frontier", (long long)*frontier), CAP_LI("checkpoint", *now_cp));
    return 0;
fail:
    PQclear(res);
    if (!cap_err_isset(err))
        cap_err_set(err, CAP_E_IO, "ct lease of %s: cannot take it", r->log->url);
    struct cap_err e2 = {0};
    cap_pg_cmd(pg, "rollback ct lease", SQL_ROLLBACK, 0, NULL, &e2);
    return -1;
}

/* Gives the lease back (a failure only delays the next holder by worker.reclaim_idle). */
static void lease_free(struct ct_reader *r)
{
    char gb[24];
    const char *p[] = {r->reader_key, cap_pg_i64(gb, r->lease_gen)};
    struct cap_err e = {0};
    if (cap_pg_cmd(r->ctx->pg, "give ct lease back", SQL_LEASE_FREE, 2, p, &e) < 0)
        cap_log(CAP_LOG_WARN, "ct_lease_free_failed", CAP_LI("run_id", r->ctx->run_id),
                CAP_LS("log", r->log->url), CAP_LS("err", e.msg));
}

static void log_read_event(struct ct_reader *r, const char *mode, uint64_t end)
{
    cap_log(CAP_LOG_INFO, "ct_log_read", CAP_LI("run_id", r->ctx->run_id),
            CAP_LS("log", r->log->url), CAP_LS("protocol", r->static_ct ? "static-ct" : "rfc6962"),
            CAP_LS("mode", mode), CAP_LI("from", (long long)r->pos.next_index),
            CAP_LI("to", (long long)end), CAP_LI("tree_size", (long long)r->sth.tree_size),
            CAP_LI("sources", r->shared ? (long long)r->members_n : 1),
            CAP_LS("verified", r->verified ? "yes" : "no"));
    cap_ct_metrics_lag(r->log->url, r->sth.tree_size, r->pos.next_index);
}

/* Reads the source's own range [pos, end) by itself (behind the shared frontier). */
static int read_own(struct ct_reader *r, uint64_t end, bool *backlog_left, struct cap_err *err)
{
    r->shared = false;
    r->run_total += (int64_t)(end - r->pos.next_index);
    r->last_commit_ms = now_ms();
    log_read_event(r, "own", end);
    r->hostile = false;
    struct cap_err le = {0};
    int rrc = read_range(r, end, &le);
    return finish_read(r, rrc, &le, backlog_left, err);
}

/* Holding the lease: reads from the shared frontier for every source standing at it, stopping
 * at each checkpoint above it to let its source join, up to the tree size (or left entries,
 * -1: no bound). */
static int read_shared(struct ct_reader *r, uint64_t frontier, int64_t left, bool *backlog_left,
                       struct cap_err *err)
{
    struct cap_err le = {0};
    r->shared = true;
    r->group_from = frontier;
    if (r->pos.next_index != frontier) {
        /* Ahead of the frontier: the reader starts from the frontier's position, proven by the
         * log, and this source joins when the read reaches its checkpoint. */
        struct cap_ct_frontier pf;
        struct cap_err pe = {0};
        int pv = 0;
        if (frontier == 0)
            cap_ct_frontier_init(&pf);
        else
            pv = proven_frontier(r, frontier, &pf, &pe);
        if (pv != 0) {
            r->shared = false;
            if (pv == 1)
                return log_misbehaving(r, err);
            if (pe.code == CAP_E_FENCED) {
                *err = pe;
                return -1;
            }
            if (!r->rate_stop)
                snprintf(r->err, sizeof r->err, "%s", pe.msg);
            return 0;
        }
        r->pos.next_index = frontier;
        r->pos.fr = pf;
        r->pos.has_frontier = true;
        r->start = r->pos;
        r->proven = true;
    }
    uint64_t end = r->sth.tree_size;
    if (left >= 0 && end - r->pos.next_index > (uint64_t)left)
        end = r->pos.next_index + (uint64_t)left;
    int rrc = 0;
    bool logged = false;
    while (r->pos.next_index < end && !stopping(r)) {
        if (load_members(r, &le) < 0) {
            rrc = -1;
            r->db_failed = true;
            break;
        }
        if (r->members_n == 0) {
            /* Nobody stands at the frontier (disabled, deleted, or moved on): nothing below the
             * next checkpoint is read, the frontier jumps there, proven by the log. */
            if (!r->next_join || r->next_join >= end || r->next_join >= r->sth.tree_size)
                break;
            struct cap_ct_frontier pf;
            struct cap_err pe = {0};
            if (proven_frontier(r, r->next_join, &pf, &pe) != 0)
                break;
            r->pos.next_index = r->next_join;
            r->pos.fr = pf;
            r->pos.has_frontier = true;
            r->group_from = r->next_join;
            r->start = r->pos;
            continue;
        }
        uint64_t stop = end;
        if (r->next_join && r->next_join < stop)
            stop = r->next_join;
        if (!logged) {
            r->run_total += (int64_t)(end - r->pos.next_index);
            log_read_event(r, "shared", end);
            logged = true;
        }
        r->last_commit_ms = now_ms();
        r->hostile = false;
        rrc = read_range(r, stop, &le);
        if (rrc < 0 || r->pos.next_index < stop)
            break;
        if (r->pos.next_index < end && commit_pos(r, &r->pos, &le) < 0) {
            rrc = -1;
            break;
        }
    }
    int rc = finish_read(r, rrc, &le, backlog_left, err);
    r->shared = false;
    members_free(r);
    return rc;
}

/* Reads one log. Returns 0 (r->err empty: fine; else the log failed and r->err says why, a
 * misbehaving log included), or -1 with err for failures that end the whole run (fenced,
 * database). budget bounds the entries read (-1: no bound); *backlog_left tells whether
 * entries remain below the tree size. */
static int run_log(struct ct_reader *r, int64_t budget, bool *backlog_left, struct cap_err *err)
{
    struct cap_err le = {0};
    const struct cap_ct_log_spec *src = r->spec;
    r->batch = CT_BATCH_START;
    reader_key_make(r);
    if (lease_peek(r)) {
        /* Read for by the run holding the lease: not one request to the log. */
        cap_log(CAP_LOG_INFO, "ct_log_left_to_shared_reader", CAP_LI("run_id", r->ctx->run_id),
                CAP_LS("log", r->log->url));
        r->left_to_shared = true;
        return 0;
    }
    if (strcmp(r->log->protocol, "auto") == 0) {
        if (probe_protocol(r, &le) < 0)
            goto log_failed;
    } else {
        r->static_ct = strcmp(r->log->protocol, "static-ct") == 0;
    }
    if (get_tree_head(r, &le) < 0) {
        if (le.code == CAP_E_INVALID && strstr(le.msg, "signature")) {
            snprintf(r->err, sizeof r->err, "%s", le.msg);
            goto misbehaving;
        }
        goto log_failed;
    }
    bool found = false;
    if (cp_load(r, &found, err) < 0)
        return -1;
    if (!found) {
        memset(&r->pos, 0, sizeof r->pos);
        uint64_t startix = r->sth.tree_size;
        if (src->backfill_from >= 0 && (uint64_t)src->backfill_from < startix)
            startix = (uint64_t)src->backfill_from;
        r->pos.next_index = startix;
        r->pos.tree_size = r->sth.tree_size;
        memcpy(r->pos.root, r->sth.root, 32);
        r->pos.has_root = true;
        if (startix == 0) {
            cap_ct_frontier_init(&r->pos.fr);
            r->pos.has_frontier = true;
        } else if (r->static_ct || startix < r->sth.tree_size) {
            int pf = proven_frontier(r, startix, &r->pos.fr, &le);
            if (pf < 0)
                goto log_failed;
            if (pf == 1)
                goto misbehaving;
            r->pos.has_frontier = true;
        }
        r->proven = true;
        /* Otherwise (a new source at the current size) the next run's consistency proof
         * gives the frontier. */
        r->start = r->pos;
    } else {
        r->start = r->pos;
        int c = check_consistency(r, &le);
        if (c < 0)
            goto log_failed;
        if (c == 1)
            goto misbehaving;
        r->pos.tree_size = r->sth.tree_size;
        memcpy(r->pos.root, r->sth.root, 32);
        r->pos.has_root = true;
    }
    if (r->pos.next_index > r->sth.tree_size) {
        snprintf(r->err, sizeof r->err, "checkpoint at %llu is past the tree size %llu",
                 (unsigned long long)r->pos.next_index, (unsigned long long)r->sth.tree_size);
        goto misbehaving;
    }
    /* A stored frontier below the tree size may be one no signed root has vouched for yet (a
     * worker died in the middle of a read, or an older version left it): check it against the
     * log's proof before building on it. A wrong one is replaced by the proven one (the entries
     * read before were not the log's tree) and noted as misbehaviour. */
    if (!r->proven && r->pos.next_index > 0 && r->pos.next_index < r->sth.tree_size) {
        struct cap_ct_frontier pf;
        struct cap_err pe = {0};
        int pv = proven_frontier(r, r->pos.next_index, &pf, &pe);
        if (pv == 1)
            goto misbehaving;
        if (pv < 0) {
            if (pe.code == CAP_E_FENCED || r->hostile) {
                le = pe;
                goto log_failed;
            }
            cap_log(CAP_LOG_WARN, "ct_frontier_unproven", CAP_LI("run_id", r->ctx->run_id),
                    CAP_LS("log", r->log->url), CAP_LI("index", (long long)r->pos.next_index),
                    CAP_LS("err", pe.msg));
        } else {
            if (r->pos.has_frontier && !cap_ct_frontier_equal(&pf, &r->pos.fr))
                note_misbehaving(r,
                                 "the first %llu entries as read before do not hash to the log's "
                                 "tree; the frontier of its proof replaces them",
                                 (unsigned long long)r->pos.next_index);
            r->pos.fr = pf;
            r->pos.has_frontier = true;
            r->start.fr = pf;
            r->start.has_frontier = true;
            r->proven = true;
        }
    }
    /* The checkpoint as checked, written now (with its reader key) so that the log's shared
     * reader sees where this source stands. */
    if (commit_pos(r, &r->pos, err) < 0) {
        if (!r->moved)
            return -1;
        /* The shared reader took the source along meanwhile: it reads for it. */
        cap_err_clear(err);
        r->moved = false;
        r->left_to_shared = true;
        return 0;
    }
    r->start = r->pos;
    int64_t left = budget; /* entries this run may still read from the log; -1: no bound */
    for (int tries = 0; tries < CT_JOIN_TRIES && !stopping(r); tries++) {
        uint64_t frontier = 0;
        bool held = false;
        int64_t now_cp = -1;
        if (lease_take(r, &frontier, &held, &now_cp, err) < 0)
            return -1;
        if (now_cp != r->cp_next) {
            /* The shared reader moved this source on meanwhile: it reads for it. */
            if (!held)
                lease_free(r);
            r->left_to_shared = true;
            break;
        }
        if (r->pos.next_index < frontier) {
            /* Behind the shared reader (new with a backfill, re-enabled, or left behind): read
             * its own range up to the frontier, then join. The lease is for the tail only. */
            if (!held)
                lease_free(r);
            uint64_t end = frontier < r->sth.tree_size ? frontier : r->sth.tree_size;
            if (left >= 0 && end - r->pos.next_index > (uint64_t)left)
                end = r->pos.next_index + (uint64_t)left;
            if (end <= r->pos.next_index)
                break;
            int64_t before = r->entries;
            if (read_own(r, end, backlog_left, err) < 0)
                return -1;
            if (left >= 0)
                left -= r->entries - before;
            if (r->err[0] || r->misbehaving || r->left_to_shared || r->rate_stop ||
                r->pos.next_index < frontier)
                return 0;
            r->start = r->pos;
            continue;
        }
        if (held) {
            /* At or ahead of the frontier: the run holding the lease reads for this source. */
            r->left_to_shared = true;
            break;
        }
        int rc = read_shared(r, frontier, left, backlog_left, err);
        lease_free(r);
        return rc;
    }
    *backlog_left = r->cp_next >= 0 && (uint64_t)r->cp_next < r->sth.tree_size &&
                    !r->left_to_shared;
    /* Left to the shared reader: what the checks of the stored position found is still told. */
    if (raise_flagged(r, err) < 0 || (r->misbehaving && cap_inventory_flush(r->inv, err) < 0))
        return -1;
    return 0;

misbehaving:
    return log_misbehaving(r, err);

log_failed:
    if (le.code == CAP_E_FENCED) {
        *err = le;
        return -1;
    }
    if (r->rate_stop) {
        /* The log asked us to slow down and kept asking: nothing failed. */
        cap_log(CAP_LOG_WARN, "ct_log_rate_limited", CAP_LI("run_id", r->ctx->run_id),
                CAP_LS("log", r->log->url), CAP_LS("err", le.msg));
        *backlog_left = true;
        return 0;
    }
    snprintf(r->err, sizeof r->err, "%s", le.msg);
    if (r->hostile)
        goto misbehaving; /* an answer past its caps */
    return 0;
}

/* ------------------------------------------------------------------ logs of a source */

static int url_ok(const struct cap_config *cfg, const char *url, struct cap_err *err)
{
    char q[96];
    if (strncmp(url, "https://", 8) == 0)
        return 0;
    if (strncmp(url, "http://", 7) == 0) {
        if (cfg->network_allow_loopback)
            return 0;
        cap_err_set(err, CAP_E_INVALID,
                    "log url \"%s\": plain http is only allowed with network.allow_loopback",
                    cap_err_quote(q, sizeof q, url, strlen(url)));
        return -1;
    }
    cap_err_set(err, CAP_E_INVALID, "log url \"%s\": not an https:// URL",
                cap_err_quote(q, sizeof q, url, strlen(url)));
    return -1;
}

static int log_fill(struct ct_log *l, const char *url, const char *protocol, const char *key,
                    const char *origin, struct cap_err *err)
{
    memset(l, 0, sizeof *l);
    size_t n = strlen(url);
    if (n == 0 || n + 2 > sizeof l->url) {
        cap_err_set(err, CAP_E_INVALID, "log url of %zu bytes", n);
        return -1;
    }
    snprintf(l->url, sizeof l->url, "%s", url);
    snprintf(l->base, sizeof l->base, "%s%s", url, url[n - 1] == '/' ? "" : "/");
    snprintf(l->protocol, sizeof l->protocol, "%s", protocol ? protocol : "auto");
    if (origin)
        snprintf(l->origin, sizeof l->origin, "%s", origin);
    if (key && key[0]) {
        l->key = cap_ct_key_load(key, err);
        if (!l->key) {
            cap_err_prefix(err, "log %s: ", url);
            return -1;
        }
    }
    return 0;
}

static void logs_free(struct ct_log *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        EVP_PKEY_free(v[i].key);
    free(v);
}

static bool logs_have(const struct ct_log *v, size_t n, const char *url)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].url, url) == 0)
            return true;
    return false;
}

/* With a log list configured: the ct.logs entries, then the list's current logs, then the logs
 * that left it which this source still has to read to their final tree head. */
static struct ct_log *logs_from_list(const struct cap_run_ctx *ctx, const struct cap_policy *pol,
                                     size_t *n_out, struct cap_err *err)
{
    const struct cap_config *cfg = ctx->cfg;
    struct cap_ct_log *cur = NULL;
    size_t ncur = 0, n = 0, cap = 0;
    struct ct_log *v = NULL;
    PGresult *res = NULL;
    if (cap_ct_loglist_current_logs(cfg, pol, ctx->pg, &cur, &ncur, err) < 0)
        return NULL;
    char sid[24];
    const char *p[1] = {cap_pg_i64(sid, ctx->source_id)};
    res = cap_pg_exec(ctx->pg, "logs leaving the list", SQL_LOGS_LEAVING, 1, p, err);
    if (!res)
        goto fail;
    cap = cfg->ct_logs_n + ncur + (size_t)PQntuples(res);
    v = calloc(cap ? cap : 1, sizeof *v);
    if (!v) {
        cap_err_set(err, CAP_E_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->ct_logs_n; i++, n++)
        if (url_ok(cfg, cfg->ct_logs[i].url, err) < 0 ||
            log_fill(&v[n], cfg->ct_logs[i].url, cfg->ct_logs[i].protocol,
                     cfg->ct_logs[i].key_b64, NULL, err) < 0)
            goto fail;
    /* A log of the list this worker cannot read (plain http without network.allow_loopback, a
     * key OpenSSL will not load) is left out with its reason, not the run failed: the list
     * comes from outside and one entry must not stop the others. */
    for (size_t i = 0; i < ncur; i++) {
        if (logs_have(v, n, cur[i].url))
            continue;
        struct cap_err le = {0};
        if (url_ok(cfg, cur[i].url, &le) < 0 ||
            log_fill(&v[n], cur[i].url, cur[i].protocol, cur[i].key_b64, NULL, &le) < 0) {
            if (le.code == CAP_E_NOMEM) {
                *err = le;
                goto fail;
            }
            cap_log(CAP_LOG_WARN, "ct_log_refused", CAP_LI("run_id", ctx->run_id),
                    CAP_LS("log", cur[i].url), CAP_LS("err", le.msg));
            memset(&v[n], 0, sizeof v[n]);
            continue;
        }
        n++;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *url = PQgetvalue(res, i, 0);
        if (logs_have(v, n, url))
            continue;
        struct cap_err le = {0};
        if (url_ok(cfg, url, &le) < 0 ||
            log_fill(&v[n], url, PQgetvalue(res, i, 1),
                     PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2), NULL, &le) < 0) {
            if (le.code == CAP_E_NOMEM) {
                *err = le;
                goto fail;
            }
            cap_log(CAP_LOG_WARN, "ct_log_refused", CAP_LI("run_id", ctx->run_id),
                    CAP_LS("log", url), CAP_LS("err", le.msg));
            memset(&v[n], 0, sizeof v[n]);
            continue;
        }
        cap_log(CAP_LOG_INFO, "ct_log_leaving", CAP_LI("run_id", ctx->run_id), CAP_LS("log", url));
        n++;
    }
    PQclear(res);
    cap_ct_logs_free(cur, ncur);
    *n_out = n;
    return v;
fail:
    PQclear(res);
    cap_ct_logs_free(cur, ncur);
    logs_free(v, v ? cap : 0); /* calloc'd: entries not filled hold no key */
    return NULL;
}

static struct ct_log *logs_resolve(const struct cap_run_ctx *ctx, const struct cap_policy *pol,
                                   size_t *n_out, struct cap_err *err)
{
    const struct cap_ct_log_spec *src = ctx->src->spec;
    const struct cap_config *cfg = ctx->cfg;
    size_t n;
    struct ct_log *v = NULL;
    if (src->log_urls_n > 0) {
        n = src->log_urls_n;
        v = calloc(n, sizeof *v);
        if (!v)
            goto nomem;
        for (size_t i = 0; i < n; i++)
            if (url_ok(cfg, src->log_urls[i], err) < 0 ||
                log_fill(&v[i], src->log_urls[i], src->log_protocol, src->log_key, NULL, err) <
                    0)
                goto fail;
    } else if (cap_ct_loglist_configured(cfg)) {
        return logs_from_list(ctx, pol, n_out, err);
    } else if (cfg->ct_logs_n > 0) {
        n = cfg->ct_logs_n;
        v = calloc(n, sizeof *v);
        if (!v)
            goto nomem;
        for (size_t i = 0; i < n; i++)
            if (url_ok(cfg, cfg->ct_logs[i].url, err) < 0 ||
                log_fill(&v[i], cfg->ct_logs[i].url, cfg->ct_logs[i].protocol,
                         cfg->ct_logs[i].key_b64, NULL, err) < 0)
                goto fail;
    } else {
        const struct cap_ct_default_log *d = cap_ct_logs_default(&n);
        v = calloc(n, sizeof *v);
        if (!v)
            goto nomem;
        for (size_t i = 0; i < n; i++)
            if (log_fill(&v[i], d[i].url, d[i].protocol, d[i].key_b64, d[i].origin, err) < 0)
                goto fail;
    }
    *n_out = n;
    return v;
nomem:
    cap_err_set(err, CAP_E_NOMEM, "out of memory");
fail:
    logs_free(v, v ? n : 0);
    return NULL;
}

static int ct_init(const struct cap_config *cfg, struct cap_err *err)
{
    /* Once, before any job thread makes a transfer (reference counted). */
    if (cap_http_global_init(err) < 0)
        return -1;
    if (cap_policy_init(&g_policy, cfg, err) < 0) {
        cap_http_global_cleanup();
        return -1;
    }
    g_policy_ready = true;
    g_m_rate_limited = cap_metrics_counter(
        "cap_ct_rate_limited_total", "CT log answers 429 or 503 (asked to slow down), by log.",
        "log");
    return 0;
}

static void ct_shutdown(void)
{
    cap_ct_loglist_refresh_reset();
    if (g_policy_ready) {
        cap_policy_cleanup(&g_policy);
        cap_http_global_cleanup();
    }
    g_policy_ready = false;
}

static int ct_execute(struct cap_run_ctx *ctx, struct cap_run_outcome *out, struct cap_err *err)
{
    const struct cap_ct_log_spec *src = ctx->src->spec;
    struct cap_policy local;
    const struct cap_policy *pol = &g_policy;
    bool local_policy = false;
    if (!g_policy_ready) {
        if (cap_policy_init(&local, ctx->cfg, err) < 0)
            return -1;
        pol = &local;
        local_policy = true;
    }
    int rc = -1;
    size_t nlogs = 0;
    struct ct_log *logs = NULL;
    struct cap_ct_suffixes *sfx = NULL;
    struct cap_inventory *inv = NULL;
    struct cap_ct_http *http = NULL;
    sfx = cap_ct_suffixes_new((const char *const *)src->domains, src->domains_n, err);
    if (!sfx)
        goto done;
    logs = logs_resolve(ctx, pol, &nlogs, err);
    if (!logs)
        goto done;
    inv = cap_inventory_new(ctx, 0, err);
    if (!inv)
        goto done;
    http = cap_ct_http_new(pol, 10000, 20, 120000, err);
    if (!http)
        goto done;
    int64_t run_entries = 0, run_matches = 0, run_unreadable = 0;
    struct ct_counts counts = {0};
    size_t failed = 0, misbehaving = 0, logs_done = 0, shared_logs = 0;
    bool backlog = false;
    char summary[512] = "";
    size_t so = 0;
    int64_t total = 0;
    for (size_t i = 0; i < nlogs; i++) {
        if (ctx->stopping && atomic_load(ctx->stopping))
            break;
        struct ct_reader *r = calloc(1, sizeof *r);
        if (!r) {
            cap_err_set(err, CAP_E_NOMEM, "out of memory");
            goto done;
        }
        r->ctx = ctx;
        r->spec = src;
        r->log = &logs[i];
        r->sfx = sfx;
        r->http = http;
        r->policy = pol;
        r->run_entries = &run_entries;
        r->run_matches = &run_matches;
        r->run_unreadable = &run_unreadable;
        r->counts = &counts;
        r->run_total = total;
        r->cp_next = -1;
        int rate = ctx->cfg->ct_max_requests_per_second > 0 ? ctx->cfg->ct_max_requests_per_second
                                                            : 10;
        r->interval_ms = 1000 / rate;
        r->inflight = rate < CT_INFLIGHT ? rate : CT_INFLIGHT;
        r->rng = (uint64_t)now_ms() * 2654435761u ^ (uint64_t)ctx->run_id ^ (uint64_t)i << 32;
        /* One writer per log: a batch that a moved checkpoint rolls back is dropped with it. */
        r->inv = cap_inventory_new(ctx, 0, err);
        if (!r->inv) {
            free(r);
            goto done;
        }
        cap_inventory_on_commit(r->inv, on_commit_cb, r);
        bool left = false;
        int lrc = run_log(r, ctx->cfg->ct_run_budget, &left, err);
        cap_inventory_on_commit(r->inv, NULL, NULL);
        if (lrc == 0 && !r->moved && cap_inventory_flush(r->inv, err) < 0)
            lrc = -1;
        cap_inventory_free(r->inv);
        reader_cleanup(r);
        members_free(r);
        free(r->probed);
        pending_clear(r);
        free(r->pend);
        total = r->run_total;
        if (lrc < 0) {
            free(r);
            goto done;
        }
        backlog = backlog || left;
        logs_done++;
        if (r->left_to_shared)
            counts.shared_logs = (int64_t)++shared_logs;
        else if (!r->err[0])
            cap_ct_metrics_read_ok(r->log->url);
        if (r->err[0]) {
            failed++;
            if (r->misbehaving)
                misbehaving++;
            cap_log(CAP_LOG_WARN, "ct_log_failed", CAP_LI("run_id", ctx->run_id),
                    CAP_LS("log", r->log->url), CAP_LS("err", r->err));
            if (so < sizeof summary - 1) {
                int w = snprintf(summary + so, sizeof summary - so, "%s%s: %s%s", so ? "; " : "",
                                 r->log->url, r->misbehaving ? "log misbehaving: " : "",
                                 r->err);
                so = w < 0 ? so : so + (size_t)w;
                if (so > sizeof summary - 1)
                    so = sizeof summary - 1;
            }
        }
        free(r);
    }
    if (cap_inventory_flush(inv, err) < 0)
        goto done;
    /* Every log of the source read again without a fault (tree heads checked against the
     * stored ones): the cause of an earlier ct_log_misbehaving finding is gone (or its log is
     * no longer listed). A run that missed a log, or stopped early, leaves it open. */
    if (failed == 0 && logs_done == nlogs && shared_logs == 0) {
        int64_t resolved = 0;
        if (cap_inventory_resolve_missing(inv, CAP_FINDING_BY_CT, &resolved, err) != 0)
            goto done;
        if (resolved > 0)
            cap_log(CAP_LOG_INFO, "ct_log_misbehaving_resolved", CAP_LI("run_id", ctx->run_id),
                    CAP_LI("findings", resolved));
    }
    write_progress(ctx, total, run_entries, run_matches, run_unreadable, &counts);
    out->run_again = backlog && failed < nlogs;
    snprintf(out->error, sizeof out->error, "%s", summary);
    if (failed == 0)
        out->status = CAP_RUN_SUCCEEDED;
    else if (failed < nlogs)
        out->status = CAP_RUN_PARTIAL;
    else
        out->status = CAP_RUN_FAILED;
    cap_log(CAP_LOG_INFO, "ct_run_done", CAP_LI("run_id", ctx->run_id),
            CAP_LI("entries", run_entries), CAP_LI("matches", run_matches),
            CAP_LI("logs_failed", (long long)failed),
            CAP_LI("logs_left_to_shared_reader", (long long)shared_logs),
            CAP_LI("requests", counts.requests), CAP_LI("rate_limited", counts.rate_limited),
            CAP_LI("logs_misbehaving", (long long)misbehaving),
            CAP_LS("backlog", backlog ? "yes" : "no"));
    rc = 0;
done:
    cap_ct_http_free(http);
    cap_inventory_free(inv);
    logs_free(logs, nlogs);
    cap_ct_suffixes_free(sfx);
    if (local_policy)
        cap_policy_cleanup(&local);
    return rc;
}

const struct cap_executor cap_ct_executor = {
    .type = "ct_log",
    .init = ct_init,
    .shutdown = ct_shutdown,
    .execute = ct_execute,
};
