/* The inventory writer: queues certificates, observations, CT sightings and findings, and
 * writes them in fenced batches of multi-row statements (unnest over text arrays), so each
 * batch costs a handful of round trips whatever its size. Every statement is an upsert keyed
 * by what it describes, so a batch written twice changes nothing the second time. */
#include "worker/inventory.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/pg.h"
#include "common/pqc.h"

/* ---- statements ---- */

static const char SQL_BEGIN[] = "BEGIN";
/* Batch statements are costed high enough to start the JIT, which then costs more than the
 * statement itself; it is turned off for the writer's transactions only. */
static const char SQL_NO_JIT[] = "SET LOCAL jit = off";
/* The same for a network scan's batch, which also runs its statements on generic plans: they
 * are lookups per row of unnested arrays, whose plan does not depend on the values, and a
 * worker's job threads each run them too seldom for PostgreSQL's plan cache to settle on its
 * own (five planned runs per statement and connection first): without this a re-scan's batch
 * spends a fifth of its time planning. */
static const char SQL_BATCH_SETTINGS[] =
    "SELECT set_config('jit', 'off', true), "
    "set_config('plan_cache_mode', 'force_generic_plan', true)";
static const char SQL_COMMIT[] = "COMMIT";
static const char SQL_ROLLBACK[] = "ROLLBACK";

/* A row last written at or after this is not rewritten when nothing in it changed (see
 * CAP_INVENTORY_REFRESH_S). */
#define SQL_STR_(x) #x
#define SQL_STR(x) SQL_STR_(x)
#define SQL_FRESH "now() - interval '" SQL_STR(CAP_INVENTORY_REFRESH_S) " seconds'"

/* $1..$23: one array per column; $24: the run. Duplicates in a batch collapse to one row; a
 * certificate already stored and seen recently is left alone (no write, no row lock). */
static const char SQL_UPSERT_CERTS[] =
    "INSERT INTO discovered_certificates AS d (fingerprint_sha256, subject, issuer, sans, "
    "san_ips, san_emails, san_uris, serial, not_before, not_after, key_algorithm, key_bits, "
    "key_curve, key_oid, signature_algorithm, signature_oid, pqc_class, is_precert, is_ca, "
    "self_signed, spki_sha256, tbs_sha256, der, first_seen_run_id) "
    "SELECT DISTINCT ON (t.fp) t.fp, t.subject, t.issuer, t.sans::text[], t.ips::text[], "
    "t.emails::text[], t.uris::text[], t.serial, to_timestamp(t.nb), to_timestamp(t.na), "
    "t.kalg, t.kbits, t.kcurve, t.koid, t.salg, t.soid, t.pqc, t.pre, t.ca, t.ss, t.spki, "
    "t.tbs, decode(t.der, 'hex'), $24::bigint "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], "
    "$7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::int[], $13::text[], "
    "$14::text[], $15::text[], $16::text[], $17::text[], $18::bool[], $19::bool[], $20::bool[], "
    "$21::text[], $22::text[], $23::text[]) "
    "AS t(fp, subject, issuer, sans, ips, emails, uris, serial, nb, na, kalg, kbits, kcurve, "
    "koid, salg, soid, pqc, pre, ca, ss, spki, tbs, der) "
    "WHERE NOT EXISTS (SELECT 1 FROM discovered_certificates x "
    " WHERE x.fingerprint_sha256 = t.fp AND x.last_seen_at > " SQL_FRESH ") "
    "ORDER BY t.fp "
    "ON CONFLICT (fingerprint_sha256) DO UPDATE SET last_seen_at = now()";

/* $1 fingerprints of the queued certificates: the positions (from 1) of those to write, not
 * stored or not seen recently. A re-scan's certificates are all stored and fresh: their rows
 * (DER and all) are then not sent, only their fingerprints. Certificates are never deleted, so
 * one found fresh here is still there when the batch's observations name it. */
static const char SQL_CERTS_TO_WRITE[] =
    "SELECT t.i FROM unnest($1::text[]) WITH ORDINALITY AS t(fp, i) "
    "WHERE NOT EXISTS (SELECT 1 FROM discovered_certificates x "
    " WHERE x.fingerprint_sha256 = t.fp AND x.last_seen_at > " SQL_FRESH ")";

/* The observation arrays shared by the three endpoint statements:
 * $1 host, $2 address, $3 port, $4 sni, $5 outcome, $6 leaf fingerprint, $7 ord. */
#define SQL_OBS_INPUT                                                                              \
    "unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::int[]) "    \
    "AS t(host, addr, port, sni, outcome, fp, ord)"

/* $8 source. The last observation of an endpoint in the batch wins. An endpoint whose row
 * would not change (host, source, status, certificate, outcome) and was written recently is
 * left alone. */
static const char SQL_UPSERT_ENDPOINTS[] =
    "INSERT INTO endpoints AS e (host, address, port, sni, source_id, status, "
    "fingerprint_sha256, last_outcome) "
    "SELECT n.host, n.addr, n.port, n.sni, n.src, n.status, n.fp, n.outcome FROM ("
    " SELECT DISTINCT ON (t.addr::inet, t.port, t.sni) t.host, t.addr::inet AS addr, t.port, "
    " t.sni, $8::bigint AS src, CASE WHEN t.outcome = 'ok' THEN 'online' "
    " WHEN t.outcome IN ('refused', 'timeout') THEN 'offline' ELSE 'unknown' END AS status, "
    " CASE WHEN t.outcome = 'ok' THEN t.fp END AS fp, t.outcome "
    " FROM " SQL_OBS_INPUT " "
    " ORDER BY t.addr::inet, t.port, t.sni, t.ord DESC) n "
    "WHERE NOT EXISTS (SELECT 1 FROM endpoints x WHERE x.address = n.addr AND x.port = n.port "
    " AND x.sni = n.sni AND x.host = n.host AND x.source_id IS NOT DISTINCT FROM n.src "
    " AND x.last_outcome IS NOT DISTINCT FROM n.outcome "
    " AND x.status = CASE WHEN n.status = 'unknown' THEN x.status ELSE n.status END "
    " AND x.fingerprint_sha256 IS NOT DISTINCT FROM coalesce(n.fp, x.fingerprint_sha256) "
    " AND x.last_seen_at > " SQL_FRESH ") "
    "ON CONFLICT (address, port, sni) DO UPDATE SET host = EXCLUDED.host, "
    "source_id = EXCLUDED.source_id, "
    "status = CASE WHEN EXCLUDED.last_outcome = 'ok' THEN 'online' "
    "WHEN EXCLUDED.last_outcome IN ('refused', 'timeout') THEN 'offline' ELSE e.status END, "
    "fingerprint_sha256 = coalesce(EXCLUDED.fingerprint_sha256, e.fingerprint_sha256), "
    "last_outcome = EXCLUDED.last_outcome, last_seen_at = now()";

/* $8 run, $9 source, $10 and $11 the drift finding's kind and severity (the catalogue's). An
 * ok observation whose leaf differs from the endpoint's last ok observation of an EARLIER run
 * is a drift (so a re-run of the same run finds the same comparison and the ON CONFLICT keeps
 * one event); the drift finding is raised with it. Runs before the batch's endpoint upsert:
 * an endpoint whose row still names the leaf observed now (the last one any run wrote) has not
 * drifted, and its earlier observations are not looked up; only the others are compared. */
static const char SQL_DRIFT[] =
    "WITH cur AS ("
    " SELECT n.endpoint_id, n.host, n.new_fp, p.fp AS old_fp FROM ("
    "  SELECT DISTINCT ON (e.id) e.id AS endpoint_id, t.host, t.fp AS new_fp, "
    "  e.fingerprint_sha256 AS row_fp "
    "  FROM " SQL_OBS_INPUT " "
    "  JOIN endpoints e ON e.address = t.addr::inet AND e.port = t.port AND e.sni = t.sni "
    "  WHERE t.outcome = 'ok' AND t.fp IS NOT NULL "
    "  ORDER BY e.id, t.ord DESC) n "
    " CROSS JOIN LATERAL (SELECT o.fingerprint_sha256 AS fp FROM endpoint_observations o "
    "  WHERE o.endpoint_id = n.endpoint_id AND o.outcome = 'ok' AND o.run_id < $8::bigint "
    "  AND o.fingerprint_sha256 IS NOT NULL ORDER BY o.run_id DESC LIMIT 1) p "
    " WHERE n.new_fp IS DISTINCT FROM n.row_fp), "
    "d AS ("
    " INSERT INTO drift_events (endpoint_id, run_id, old_fingerprint_sha256, "
    " new_fingerprint_sha256, changed) "
    " SELECT c.endpoint_id, $8::bigint, c.old_fp, c.new_fp, "
    " ARRAY['fingerprint']::text[] "
    " || CASE WHEN oc.issuer IS DISTINCT FROM nc.issuer THEN ARRAY['issuer']::text[] "
    "    ELSE ARRAY[]::text[] END "
    " || CASE WHEN oc.spki_sha256 IS DISTINCT FROM nc.spki_sha256 "
    "    THEN ARRAY['public_key']::text[] ELSE ARRAY[]::text[] END "
    " || CASE WHEN (SELECT array_agg(DISTINCT lower(x) ORDER BY lower(x)) "
    "              FROM unnest(oc.sans || oc.san_ips) AS x) "
    "    IS DISTINCT FROM (SELECT array_agg(DISTINCT lower(x) ORDER BY lower(x)) "
    "              FROM unnest(nc.sans || nc.san_ips) AS x) "
    "    THEN ARRAY['sans']::text[] ELSE ARRAY[]::text[] END "
    " FROM cur c "
    " JOIN discovered_certificates oc ON oc.fingerprint_sha256 = c.old_fp "
    " JOIN discovered_certificates nc ON nc.fingerprint_sha256 = c.new_fp "
    " WHERE c.old_fp <> c.new_fp "
    " ON CONFLICT (endpoint_id, run_id) DO NOTHING "
    " RETURNING endpoint_id, old_fingerprint_sha256, new_fingerprint_sha256, changed), "
    "f AS ("
    " INSERT INTO findings AS f (kind, severity, subject_key, source_id, run_id, endpoint_id, "
    " fingerprint_sha256, details) "
    " SELECT $10::text, $11::text, 'endpoint:' || d.endpoint_id, $9::bigint, $8::bigint, "
    " d.endpoint_id, d.new_fingerprint_sha256, "
    " jsonb_build_object('old_fingerprint', d.old_fingerprint_sha256, "
    "  'new_fingerprint', d.new_fingerprint_sha256, 'changed', to_jsonb(d.changed), "
    "  'host', c.host, 'address', host(e.address), 'port', e.port, 'sni', e.sni) "
    " FROM d JOIN endpoints e ON e.id = d.endpoint_id "
    " JOIN cur c ON c.endpoint_id = d.endpoint_id "
    " ON CONFLICT (kind, subject_key) WHERE status = 'open' DO UPDATE SET "
    " severity = EXCLUDED.severity, source_id = EXCLUDED.source_id, run_id = EXCLUDED.run_id, "
    " endpoint_id = EXCLUDED.endpoint_id, fingerprint_sha256 = EXCLUDED.fingerprint_sha256, "
    " details = EXCLUDED.details, last_seen_at = now() "
    " RETURNING 1) "
    "SELECT count(*) FROM d";

/* $1..$7 as SQL_OBS_INPUT, $8 chain, $9 tls_version, $10 cipher, $11 group, $12 group id,
 * $13 kex class, $14 error, $15 run. One row per (endpoint, run): a repeat replaces it. */
static const char SQL_UPSERT_OBSERVATIONS[] =
    "INSERT INTO endpoint_observations AS o (endpoint_id, run_id, observed_at, outcome, "
    "fingerprint_sha256, chain, tls_version, cipher_suite, kex_group, kex_group_id, kex_pqc, "
    "error) "
    "SELECT DISTINCT ON (e.id) e.id, $15::bigint, now(), t.outcome, t.fp, t.chain::text[], "
    "t.ver, t.cipher, t.grp, t.grp_id, t.kex, t.error "
    "FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], "
    "$7::int[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int[], $13::text[], "
    "$14::text[]) "
    "AS t(host, addr, port, sni, outcome, fp, ord, chain, ver, cipher, grp, grp_id, kex, error) "
    "JOIN endpoints e ON e.address = t.addr::inet AND e.port = t.port AND e.sni = t.sni "
    "ORDER BY e.id, t.ord DESC "
    "ON CONFLICT (endpoint_id, run_id) DO UPDATE SET observed_at = EXCLUDED.observed_at, "
    "outcome = EXCLUDED.outcome, fingerprint_sha256 = EXCLUDED.fingerprint_sha256, "
    "chain = EXCLUDED.chain, tls_version = EXCLUDED.tls_version, "
    "cipher_suite = EXCLUDED.cipher_suite, kex_group = EXCLUDED.kex_group, "
    "kex_group_id = EXCLUDED.kex_group_id, kex_pqc = EXCLUDED.kex_pqc, error = EXCLUDED.error";

/* $1 run's source, $2 fingerprints, $3 log URLs, $4 indexes, $5 entry timestamps (ms, 0:
 * unknown), $6 sources (0: the run's; the CT monitor's shared reader stores for several). */
static const char SQL_UPSERT_SIGHTINGS[] =
    "INSERT INTO ct_sightings (fingerprint_sha256, source_id, log_url, log_index, "
    "entry_timestamp) "
    "SELECT DISTINCT ON (s.src, t.url, t.idx) t.fp, s.src, t.url, t.idx, "
    "CASE WHEN t.ts > 0 THEN to_timestamp(t.ts / 1000.0) END "
    "FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[]) "
    "AS t(fp, url, idx, ts, src) "
    "CROSS JOIN LATERAL (SELECT CASE WHEN t.src > 0 THEN t.src ELSE $1::bigint END AS src) s "
    "ORDER BY s.src, t.url, t.idx "
    "ON CONFLICT (source_id, log_url, log_index) DO UPDATE SET "
    "fingerprint_sha256 = EXCLUDED.fingerprint_sha256, "
    "entry_timestamp = EXCLUDED.entry_timestamp";

/* Endpoints listed in a certificate finding (x.fp): those serving it as leaf (mode 1), or
 * whose observation in this run carried it in the chain (mode 2). */
#define SQL_EP_LEAF "WHERE ee.fingerprint_sha256 = x.fp"
#define SQL_EP_CHAIN                                                                               \
    "WHERE ee.id IN (SELECT o.endpoint_id FROM endpoint_observations o "                           \
    "WHERE o.run_id = $1::bigint AND o.chain @> ARRAY[x.fp])"
#define SQL_EP_LIST(where)                                                                         \
    "(SELECT jsonb_build_object('endpoints', coalesce(jsonb_agg(s.ep), '[]'::jsonb), "             \
    "'endpoint_count', (SELECT count(*) FROM endpoints ee " where ")) "                            \
    "FROM (SELECT jsonb_build_object('id', ee.id, 'host', ee.host, 'address', "                    \
    "host(ee.address), 'port', ee.port, 'sni', ee.sni) AS ep FROM endpoints ee " where " "         \
    "ORDER BY ee.id LIMIT 100) s)"
/* A finding's whole details: what the worker sent (x.bd) and, for a certificate finding, the
 * endpoints listed. */
#define SQL_DETAILS                                                                                \
    "x.bd || CASE x.mode WHEN 1 THEN " SQL_EP_LIST(SQL_EP_LEAF) " WHEN 2 THEN " SQL_EP_LIST(       \
        SQL_EP_CHAIN) " ELSE '{}'::jsonb END"

/* A finding row f that stands as it is: active, written recently, its acknowledgement or rule
 * not ended (an ended one is left to the refresh, which opens the row again). */
#define SQL_FINDING_STANDS                                                                         \
    "f.status IN ('open', 'acknowledged', 'suppressed') AND f.last_seen_at > " SQL_FRESH " "       \
    "AND (f.status <> 'acknowledged' OR f.ack_until IS NULL OR f.ack_until > now()) "              \
    "AND NOT (f.status = 'suppressed' AND EXISTS (SELECT 1 FROM finding_suppressions r "           \
    "WHERE r.id = f.suppression_id AND r.until <= now()))"
/* The endpoint list of f, the finding of the leaf certificate fp, stands: as many endpoints
 * serve the certificate as it counts, and none of them was written after the finding (one
 * pass over the endpoints serving it). */
#define SQL_LEAF_LIST_STANDS(fp)                                                                   \
    "(SELECT count(*) = (f.details ->> 'endpoint_count')::bigint "                                 \
    "AND coalesce(max(ee.last_seen_at) <= f.last_seen_at, true) "                                  \
    "FROM endpoints ee WHERE ee.fingerprint_sha256 = " fp ")"

/* $1 run, $2 kinds, $3 severities, $4 subject keys (NULL: the endpoint's), $5 sources,
 * $6 endpoint ids, $7 fingerprints, $8 details, $9-$11 endpoint address/port/sni (NULL: no
 * endpoint), $12 unmanaged_only, $13 endpoint list mode, $14 ord. A finding raised again
 * exactly as it stands (severity, source, endpoint, certificate, details), open or
 * acknowledged or suppressed until later, and written recently is not rewritten: its id goes
 * to run_confirmed_findings (one row per batch), which cap_inventory_resolve_missing reads as
 * raised by this run. Each is looked up through the unique (kind, subject_key) index of the
 * active rows (LIMIT 1 keeps it a lookup per row, never a pass over every finding).
 * The endpoint list of a leaf certificate's finding is not built to confirm it: the list
 * stands while as many endpoints serve the certificate as it counts and none of them was
 * written after the finding (an endpoint that starts or stops serving it is written, with
 * last_seen_at now; endpoints written in the finding's own transaction come before it, so its
 * list holds them). Lists are built only for the findings written. Returns, for each finding
 * confirmed or written, its order in the batch, its id and its row version (xmin), which the
 * worker remembers for SQL_CONFIRM_FINDINGS. */
static const char SQL_UPSERT_FINDINGS[] =
    "WITH x AS ("
    "SELECT DISTINCT ON (x.kind, x.subject_key) x.kind, x.severity, x.subject_key, x.src, "
    "x.eid, x.fp, x.bd, x.mode, x.ord "
    "FROM (SELECT t.kind, t.severity, coalesce(t.subject, 'endpoint:' || e.id) AS subject_key, "
    " t.src, coalesce(t.eid, e.id) AS eid, t.fp, t.ord, t.details::jsonb AS bd, t.mode "
    " FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], "
    " $8::text[], $9::text[], $10::int[], $11::text[], $12::bool[], $13::int[], $14::int[]) "
    " AS t(kind, severity, subject, src, eid, fp, details, ep_addr, ep_port, ep_sni, unmanaged, "
    " mode, ord) "
    " LEFT JOIN endpoints e ON t.ep_addr IS NOT NULL AND e.address = t.ep_addr::inet "
    "  AND e.port = t.ep_port AND e.sni = t.ep_sni "
    " WHERE (t.ep_addr IS NULL OR e.id IS NOT NULL) "
    " AND NOT (t.unmanaged AND EXISTS (SELECT 1 FROM managed_certificates m "
    "  WHERE m.fingerprint_sha256 = t.fp))) x "
    "ORDER BY x.kind, x.subject_key, x.ord DESC), "
    "same AS (SELECT f.id, f.xm, x.kind, x.subject_key, x.ord FROM x CROSS JOIN LATERAL ("
    " SELECT f.id, f.xmin::text AS xm FROM findings f "
    " WHERE f.kind = x.kind AND f.subject_key = x.subject_key "
    " AND " SQL_FINDING_STANDS " AND f.severity = x.severity "
    " AND f.source_id IS NOT DISTINCT FROM x.src AND f.endpoint_id IS NOT DISTINCT FROM x.eid "
    " AND f.fingerprint_sha256 IS NOT DISTINCT FROM x.fp "
    " AND CASE x.mode "
    "  WHEN 0 THEN f.details = x.bd "
    "  WHEN 1 THEN f.details - 'endpoints' - 'endpoint_count' = x.bd "
    "   AND " SQL_LEAF_LIST_STANDS(
        "x.fp") " "
                "  ELSE f.details = " SQL_DETAILS " END LIMIT 1) f), "
                "w AS (INSERT INTO findings AS f (kind, severity, subject_key, source_id, run_id, "
                " endpoint_id, fingerprint_sha256, details) "
                " SELECT x.kind, x.severity, x.subject_key, x.src, $1::bigint, x.eid, "
                "x.fp, " SQL_DETAILS " "
                " FROM x WHERE NOT EXISTS (SELECT 1 FROM same s "
                "  WHERE s.kind = x.kind AND s.subject_key = x.subject_key) "
                " ON CONFLICT (kind, subject_key) WHERE status = 'open' DO UPDATE SET "
                " severity = EXCLUDED.severity, source_id = EXCLUDED.source_id, run_id = "
                "EXCLUDED.run_id, "
                " endpoint_id = EXCLUDED.endpoint_id, fingerprint_sha256 = "
                "EXCLUDED.fingerprint_sha256, "
                " details = EXCLUDED.details, last_seen_at = now() "
                " RETURNING f.kind, f.subject_key, f.id, f.xmin::text AS xm), "
                "c AS (INSERT INTO run_confirmed_findings (run_id, finding_ids) "
                " SELECT $1::bigint, array_agg(id ORDER BY id) FROM same HAVING count(*) > 0) "
                "SELECT s.ord, s.id, s.xm FROM same s "
                "UNION ALL SELECT x.ord, w.id, w.xm FROM w "
                " JOIN x ON x.kind = w.kind AND x.subject_key = w.subject_key";

/* $1 run; per finding the worker raised exactly as it last wrote or confirmed it: $2 its id,
 * $3 the row version (xmin) it had then, $4 the endpoint list mode, $5 the certificate, $6 the
 * finding's order in the batch, $7 its kind, $8 unmanaged_only. A row still at that version was
 * written by nobody since, so its content is what the worker would write: it is confirmed as
 * SQL_UPSERT_FINDINGS confirms an unchanged finding (still active, written recently, its
 * acknowledgement or rule not ended, its certificate not managed now when the kind is about
 * unmanaged certificates, a leaf certificate's endpoint list still standing), without reading
 * its details. Returns the orders of those confirmed; the others go through
 * SQL_UPSERT_FINDINGS. */
static const char SQL_CONFIRM_FINDINGS[] =
    "WITH ok AS (SELECT t.ord, f.id FROM unnest($2::bigint[], $3::text[], $4::int[], "
    " $5::text[], $6::int[], $7::text[], $8::bool[]) AS t(id, xm, mode, fp, ord, kind, unmanaged) "
    " JOIN findings f ON f.id = t.id "
    " WHERE f.xmin::text = t.xm AND f.kind = t.kind "
    " AND " SQL_FINDING_STANDS " "
    " AND NOT (t.unmanaged AND EXISTS (SELECT 1 FROM managed_certificates m "
    "  WHERE m.fingerprint_sha256 = t.fp)) "
    " AND (t.mode <> 1 OR (" SQL_LEAF_LIST_STANDS(
        "t.fp") "))), "
                "c AS (INSERT INTO run_confirmed_findings (run_id, finding_ids) "
                " SELECT $1::bigint, array_agg(id ORDER BY id) FROM ok HAVING count(*) > 0) "
                "SELECT ord FROM ok";

/* $1 run: what this run has written so far. */
static const char SQL_RUN_COUNTS[] =
    "SELECT (SELECT count(*) FROM discovered_certificates WHERE first_seen_run_id = $1::bigint), "
    "(SELECT count(*) FROM drift_events WHERE run_id = $1::bigint), "
    "count(*), count(*) FILTER (WHERE outcome = 'ok'), "
    "count(*) FILTER (WHERE outcome IN ('refused', 'timeout')), "
    "count(*) FILTER (WHERE outcome = 'tls_error') "
    "FROM endpoint_observations WHERE run_id = $1::bigint";

/* $1 source, $2 run, $3 kinds. See cap_inventory_resolve_missing. The sets of what this run
 * saw are computed once (hashed), and "seen elsewhere" goes through the GIN index on chain.
 * An acknowledged or suppressed finding whose cause went away is resolved too: left as it is,
 * it would open again when its acknowledgement expired, for a cause long gone. What this run
 * raised: the findings it wrote (run_id) and those it confirmed unchanged
 * (run_confirmed_findings, whose rows of the run go with this statement). */
static const char SQL_RESOLVE_MISSING[] =
    "WITH seen AS (SELECT DISTINCT endpoint_id FROM endpoint_observations "
    " WHERE run_id = $2::bigint), "
    "confirmed AS (SELECT DISTINCT unnest(finding_ids) AS id FROM run_confirmed_findings "
    " WHERE run_id = $2::bigint), "
    "forget AS (DELETE FROM run_confirmed_findings WHERE run_id = $2::bigint), "
    "reexamined AS (SELECT DISTINCT endpoint_id FROM endpoint_observations "
    " WHERE run_id = $2::bigint AND cardinality(chain) > 0), "
    "certs_now AS (SELECT DISTINCT unnest(chain) AS fp FROM endpoint_observations "
    " WHERE run_id = $2::bigint) "
    "UPDATE findings f SET status = 'resolved', resolved_at = now() "
    "WHERE f.status IN ('open', 'acknowledged', 'suppressed') AND f.source_id = $1::bigint "
    "AND f.kind = ANY($3::text[]) "
    "AND f.run_id IS DISTINCT FROM $2::bigint AND f.id NOT IN (SELECT id FROM confirmed) AND ("
    " (f.subject_key LIKE 'endpoint:%' AND f.endpoint_id IN (SELECT endpoint_id FROM seen)) "
    " OR (f.subject_key LIKE 'cert:%' AND ("
    "  f.fingerprint_sha256 IN (SELECT fp FROM certs_now) "
    "  OR NOT EXISTS (SELECT 1 FROM endpoint_observations o "
    "   WHERE o.chain @> ARRAY[f.fingerprint_sha256] "
    "   AND o.endpoint_id NOT IN (SELECT endpoint_id FROM reexamined)))) "
    " OR f.subject_key LIKE 'run:%' OR f.subject_key LIKE 'source:%' "
    " OR f.subject_key LIKE 'name:%')";

/* ---- queued rows: a table of owned strings (NULL cells are SQL NULL) ---- */

enum { CERT_COLS = 23, OBS_COLS = 14, SIGHT_COLS = 5, FIND_COLS = 13 };

/* A certificate this inventory met before. Many endpoints of a run serve the same certificate
 * (an intermediate, a wildcard or load-balanced leaf): its row is queued once per inventory,
 * and as a chain certificate that raised no finding it is not even parsed again. */
enum { SEEN_USED = 1, SEEN_QUEUED = 2, SEEN_CHAIN_CLEAN = 4 };
struct seen_cert {
    uint8_t md[32]; /* SHA-256 of the DER */
    uint8_t flags;  /* SEEN_*; 0: free slot */
};
/* Distinct certificates remembered per inventory (40 bytes each at most twice over); past
 * this, a repeat is parsed and queued as if new. */
#define SEEN_MAX (1u << 20)

struct rows {
    size_t ncols;
    size_t n;
    size_t cap;
    char **cells; /* n * ncols */
};

struct cap_inventory {
    struct cap_run_ctx *ctx;
    unsigned flags;
    struct rows certs, obs, sights, finds;
    int ord;                 /* order of observations and findings, so the last one wins */
    int64_t first_queued_ms; /* monotonic time of the oldest queued item, 0 when empty */
    cap_inventory_commit_cb commit_cb;
    void *commit_arg;
    struct cap_inventory_stats stats;
    int64_t empty[3];         /* silent, closed, no_route (see cap_inventory_count_empty) */
    bool empty_dirty;         /* counted since the run's row last got them */
    int64_t empty_written_ms; /* when it last got them */
    struct seen_cert *seen;   /* certificates met so far, open addressing on their SHA-256 */
    size_t seen_cap;          /* slots, a power of two (0: none yet) */
    size_t seen_n;            /* slots in use */
};

static const char *const empty_reasons[3] = {"silent", "closed", "no_route"};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void rows_clear(struct rows *r)
{
    for (size_t i = 0; i < r->n * r->ncols; i++) {
        free(r->cells[i]);
    }
    r->n = 0;
}

static void rows_free(struct rows *r)
{
    rows_clear(r);
    free(r->cells);
    r->cells = NULL;
    r->cap = 0;
}

/* Appends a row of ncols cells taken over from vals (each malloc'd or NULL). When alloc_failed
 * is set (a strdup of the caller failed), or growing fails, everything is freed and -1. */
static int rows_add(struct rows *r, char **vals, bool alloc_failed)
{
    if (!alloc_failed && r->n == r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 64;
        char **nc = realloc(r->cells, ncap * r->ncols * sizeof(*nc));
        if (!nc) {
            alloc_failed = true;
        } else {
            r->cells = nc;
            r->cap = ncap;
        }
    }
    if (alloc_failed) {
        for (size_t i = 0; i < r->ncols; i++) {
            free(vals[i]);
        }
        return -1;
    }
    memcpy(r->cells + r->n * r->ncols, vals, r->ncols * sizeof(*vals));
    r->n++;
    return 0;
}

/* A PostgreSQL array literal of column col (NULL cells as NULL), malloc'd. */
static char *rows_array(const struct rows *r, size_t col)
{
    size_t cap = 3;
    for (size_t i = 0; i < r->n; i++) {
        const char *v = r->cells[i * r->ncols + col];
        cap += (v ? 2 * strlen(v) + 2 : 4) + 1;
    }
    char *out = malloc(cap);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    out[o++] = '{';
    for (size_t i = 0; i < r->n; i++) {
        const char *v = r->cells[i * r->ncols + col];
        if (i) {
            out[o++] = ',';
        }
        if (!v) {
            memcpy(out + o, "NULL", 4);
            o += 4;
            continue;
        }
        out[o++] = '"';
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\') {
                out[o++] = '\\';
            }
            out[o++] = *p;
        }
        out[o++] = '"';
    }
    out[o++] = '}';
    out[o] = '\0';
    return out;
}

/* An array literal of n strings (for text[] cells such as SAN lists). */
static char *strv_literal(char *const *v, size_t n)
{
    struct rows r = {.ncols = 1, .n = n, .cap = n, .cells = (char **)v};
    return rows_array(&r, 0);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static char *i64_text(int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%lld", (long long)v);
    return strdup(buf);
}

/* Outside text (peer names, error strings) made safe for a text column; NULL stays NULL. */
static char *clean_or_null(const char *s)
{
    return s ? cap_x509_clean_text(s, strlen(s)) : NULL;
}

static size_t queued(const struct cap_inventory *inv)
{
    return inv->certs.n + inv->obs.n + inv->sights.n + inv->finds.n;
}

static void mark_queued(struct cap_inventory *inv)
{
    if (inv->first_queued_ms == 0) {
        inv->first_queued_ms = mono_ms();
    }
}

static int maybe_flush(struct cap_inventory *inv, struct cap_err *err)
{
    if (queued(inv) >= CAP_INVENTORY_BATCH) {
        return cap_inventory_flush(inv, err);
    }
    return 0;
}

struct cap_inventory *cap_inventory_new(struct cap_run_ctx *ctx, unsigned flags,
                                        struct cap_err *err)
{
    struct cap_inventory *inv = calloc(1, sizeof(*inv));
    if (!inv) {
        cap_err_set(err, CAP_E_NOMEM, "creating the inventory writer: out of memory");
        return NULL;
    }
    inv->ctx = ctx;
    inv->flags = flags;
    inv->certs.ncols = CERT_COLS;
    inv->obs.ncols = OBS_COLS;
    inv->sights.ncols = SIGHT_COLS;
    inv->finds.ncols = FIND_COLS;
    return inv;
}

void cap_inventory_free(struct cap_inventory *inv)
{
    if (!inv) {
        return;
    }
    free(inv->seen);
    rows_free(&inv->certs);
    rows_free(&inv->obs);
    rows_free(&inv->sights);
    rows_free(&inv->finds);
    free(inv);
}

void cap_inventory_on_commit(struct cap_inventory *inv, cap_inventory_commit_cb cb, void *arg)
{
    inv->commit_cb = cb;
    inv->commit_arg = arg;
}

void cap_inventory_stats(const struct cap_inventory *inv, struct cap_inventory_stats *out)
{
    *out = inv->stats;
}

/* ---- certificates ---- */

/* The slot of md: its entry, or the free slot where it would go. seen_cap must be non-zero. */
static struct seen_cert *seen_slot(struct seen_cert *tab, size_t cap, const uint8_t *md)
{
    uint64_t h;
    memcpy(&h, md, sizeof h); /* a SHA-256 is as good a hash as any */
    for (size_t i = (size_t)h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (!tab[i].flags || memcmp(tab[i].md, md, 32) == 0) {
            return &tab[i];
        }
    }
}

/* The entry of the certificate with SHA-256 md, NULL when it was not met. */
static struct seen_cert *seen_find(const struct cap_inventory *inv, const uint8_t *md)
{
    if (!inv->seen_cap) {
        return NULL;
    }
    struct seen_cert *s = seen_slot(inv->seen, inv->seen_cap, md);
    return s->flags ? s : NULL;
}

/* Sets flags on md's entry, adding it (the table at most half full); when memory or SEEN_MAX
 * runs out the certificate is simply not remembered. */
static void seen_mark(struct cap_inventory *inv, const uint8_t *md, uint8_t flags)
{
    struct seen_cert *s = seen_find(inv, md);
    if (!s) {
        if (inv->seen_n >= SEEN_MAX) {
            return;
        }
        if (2 * (inv->seen_n + 1) > inv->seen_cap) {
            size_t ncap = inv->seen_cap ? 2 * inv->seen_cap : 256;
            struct seen_cert *nt = calloc(ncap, sizeof *nt);
            if (!nt) {
                return;
            }
            for (size_t i = 0; i < inv->seen_cap; i++) {
                if (inv->seen[i].flags) {
                    *seen_slot(nt, ncap, inv->seen[i].md) = inv->seen[i];
                }
            }
            free(inv->seen);
            inv->seen = nt;
            inv->seen_cap = ncap;
        }
        s = seen_slot(inv->seen, inv->seen_cap, md);
        memcpy(s->md, md, 32);
        s->flags = SEEN_USED;
        inv->seen_n++;
    }
    s->flags |= flags;
}

/* The 32 bytes of a 64-digit lower-case hex fingerprint; false when it is not one. */
static bool fp_bytes(const char *hex, uint8_t *md)
{
    for (size_t i = 0; i < 32; i++) {
        int v = 0;
        for (size_t k = 0; k < 2; k++) {
            char c = hex[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) {
                return false;
            }
            v = v * 16 + d;
        }
        md[i] = (uint8_t)v;
    }
    return hex[64] == '\0';
}

/* Queues the upsert row of f with the certificate DER der. */
static int queue_cert(struct cap_inventory *inv, const struct cap_cert_facts *f, const uint8_t *der,
                      size_t len, bool precert, struct cap_err *err)
{
    /* Queued before: that row is written with this batch or was written already (a failed
     * batch stays queued), and it would be the same row. */
    uint8_t md[32];
    bool keyed = fp_bytes(f->fingerprint_sha256, md);
    const struct seen_cert *seen = keyed ? seen_find(inv, md) : NULL;
    if (seen && (seen->flags & SEEN_QUEUED)) {
        return 0;
    }
    char *hex = malloc(2 * len + 1);
    if (hex) {
        cap_x509_hex(der, len, hex);
    }
    char *v[CERT_COLS] = {
        strdup(f->fingerprint_sha256),
        strdup(f->subject),
        strdup(f->issuer),
        strv_literal(f->dns_sans, f->dns_sans_n),
        strv_literal(f->ip_sans, f->ip_sans_n),
        strv_literal(f->email_sans, f->email_sans_n),
        strv_literal(f->uri_sans, f->uri_sans_n),
        strdup(f->serial),
        f->has_validity ? i64_text(f->not_before) : NULL,
        f->has_validity ? i64_text(f->not_after) : NULL,
        strdup(f->key_algorithm),
        f->key_bits > 0 ? i64_text(f->key_bits) : NULL,
        *f->key_curve ? strdup(f->key_curve) : NULL,
        *f->key_oid ? strdup(f->key_oid) : NULL,
        strdup(f->signature_algorithm),
        *f->signature_oid ? strdup(f->signature_oid) : NULL,
        strdup(cap_pqc_class_cert(f)),
        strdup(precert || f->is_precert ? "t" : "f"),
        strdup(f->is_ca ? "t" : "f"),
        strdup(f->self_signed ? "t" : "f"),
        *f->spki_sha256 ? strdup(f->spki_sha256) : NULL,
        *f->tbs_sha256 ? strdup(f->tbs_sha256) : NULL,
        hex,
    };
    /* Cells that may legitimately be NULL: validity, bits, curve, OIDs, spki, tbs. */
    static const bool nullable[CERT_COLS] = {[8] = true,  [9] = true,  [11] = true, [12] = true,
                                             [13] = true, [15] = true, [20] = true, [21] = true};
    bool failed = false;
    for (size_t i = 0; i < CERT_COLS; i++) {
        if (!v[i] && !nullable[i]) {
            failed = true;
        }
    }
    if (rows_add(&inv->certs, v, failed) != 0) {
        cap_err_set(err, CAP_E_NOMEM, "queueing certificate %s: out of memory",
                    f->fingerprint_sha256);
        return -1;
    }
    mark_queued(inv);
    if (keyed) {
        seen_mark(inv, md, SEEN_QUEUED);
    }
    return 0;
}

int cap_inventory_add_cert(struct cap_inventory *inv, const uint8_t *der, size_t len,
                           struct cap_cert_facts *facts_out, struct cap_err *err)
{
    struct cap_cert_facts f;
    if (cap_x509_facts_from_der(der, len, &f, err) != 0) {
        return -1;
    }
    if (queue_cert(inv, &f, der, len, false, err) != 0) {
        cap_cert_facts_cleanup(&f);
        return -1;
    }
    int rc = maybe_flush(inv, err);
    if (rc != 0 || !facts_out) {
        /* Out-parameters are written only on success. */
        cap_cert_facts_cleanup(&f);
        return rc;
    }
    *facts_out = f;
    return 0;
}

int cap_inventory_add_precert(struct cap_inventory *inv, const uint8_t *precert, size_t precert_len,
                              const uint8_t *tbs, size_t tbs_len, struct cap_cert_facts *facts_out,
                              struct cap_err *err)
{
    if (!precert || precert_len == 0) {
        cap_err_set(err, CAP_E_INVALID, "precertificate entry without its precertificate");
        return -1;
    }
    if (precert_len > CAP_X509_DER_MAX) {
        cap_err_set(err, CAP_E_LIMIT, "precertificate: %zu bytes, more than the limit of %d",
                    precert_len, CAP_X509_DER_MAX);
        return -1;
    }
    struct cap_cert_facts f;
    if (cap_x509_facts_from_tbs(tbs, tbs_len, &f, err) != 0) {
        return -1;
    }
    uint8_t md[SHA256_DIGEST_LENGTH];
    SHA256(precert, precert_len, md);
    cap_x509_hex(md, sizeof(md), f.fingerprint_sha256);
    f.is_precert = true;
    if (queue_cert(inv, &f, precert, precert_len, true, err) != 0) {
        cap_cert_facts_cleanup(&f);
        return -1;
    }
    int rc = maybe_flush(inv, err);
    if (rc != 0 || !facts_out) {
        /* Out-parameters are written only on success. */
        cap_cert_facts_cleanup(&f);
        return rc;
    }
    *facts_out = f;
    return 0;
}

/* ---- findings ---- */

/* Queues one finding of kind d; details is taken over (a JSON object text). ep_addr non-NULL:
 * an endpoint finding resolved by (address, port, sni). mode: the endpoints listed in a
 * certificate finding's details (0 none, 1 serving it as leaf, 2 with it in this run's chain). */
static int queue_finding(struct cap_inventory *inv, const struct cap_finding_def *d,
                         const char *subject, int64_t source_id, int64_t endpoint_id,
                         const char *fp, char *details, const char *ep_addr, int ep_port,
                         const char *ep_sni, int mode, struct cap_err *err)
{
    char *v[FIND_COLS] = {
        strdup(d->kind),
        strdup(d->severity),
        dup_or_null(subject),
        i64_text(source_id > 0 ? source_id : inv->ctx->source_id),
        endpoint_id > 0 ? i64_text(endpoint_id) : NULL,
        dup_or_null(fp),
        details,
        dup_or_null(ep_addr),
        ep_addr ? i64_text(ep_port) : NULL,
        ep_addr ? strdup(ep_sni ? ep_sni : "") : NULL,
        strdup(d->unmanaged_only ? "t" : "f"),
        i64_text(mode),
        i64_text(++inv->ord),
    };
    bool failed = !v[0] || !v[1] || (subject && !v[2]) || !v[3] || !v[6] || (fp && !v[5]) ||
                  (ep_addr && (!v[7] || !v[8] || !v[9])) || !v[10] || !v[11] || !v[12];
    if (rows_add(&inv->finds, v, failed) != 0) {
        cap_err_set(err, CAP_E_NOMEM, "queueing finding %s: out of memory", d->kind);
        return -1;
    }
    mark_queued(inv);
    return 0;
}

/* Queues the certificate findings of f for source_id (0: the run's); *queued_n (may be NULL)
 * gets how many. */
static int queue_cert_findings(struct cap_inventory *inv, const struct cap_cert_facts *f, bool leaf,
                               int64_t source_id, size_t *queued_n, struct cap_err *err)
{
    if (!f->fingerprint_sha256[0]) {
        cap_err_set(err, CAP_E_INVALID, "certificate findings: certificate without fingerprint");
        return -1;
    }
    struct cap_finding_spec specs[16];
    int days = inv->ctx->cfg ? inv->ctx->cfg->scan_expiring_days : 14;
    size_t n = cap_findings_cert_specs(f, leaf, (int64_t)time(NULL), days, specs, 16);
    char subject[5 + CAP_X509_HEX256_LEN];
    snprintf(subject, sizeof(subject), "cert:%s", f->fingerprint_sha256);
    for (size_t i = 0; i < n && i < 16; i++) {
        char *details = cap_findings_cert_details(&specs[i], f);
        if (!details) {
            cap_err_set(err, CAP_E_NOMEM, "queueing finding %s: out of memory", specs[i].kind);
            return -1;
        }
        if (queue_finding(inv, cap_findings_def(specs[i].id), subject, source_id, 0,
                          f->fingerprint_sha256, details, NULL, 0, NULL, leaf ? 1 : 2, err) != 0) {
            return -1;
        }
    }
    if (queued_n) {
        *queued_n = n < 16 ? n : 16;
    }
    return 0;
}

int cap_inventory_cert_findings(struct cap_inventory *inv, const struct cap_cert_facts *f,
                                bool leaf, struct cap_err *err)
{
    return cap_inventory_cert_findings_for(inv, 0, f, leaf, err);
}

int cap_inventory_cert_findings_for(struct cap_inventory *inv, int64_t source_id,
                                    const struct cap_cert_facts *f, bool leaf, struct cap_err *err)
{
    if (queue_cert_findings(inv, f, leaf, source_id, NULL, err) != 0) {
        return -1;
    }
    return maybe_flush(inv, err);
}

int cap_inventory_raise(struct cap_inventory *inv, enum cap_finding_kind kind,
                        const char *subject_key, int64_t source_id, int64_t endpoint_id,
                        const char *fingerprint, const char *details_json, struct cap_err *err)
{
    const struct cap_finding_def *d = cap_findings_def(kind);
    const char *prefix = cap_findings_subject_prefix(d->subject);
    if (!subject_key || strncmp(subject_key, prefix, strlen(prefix)) != 0 ||
        !subject_key[strlen(prefix)]) {
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        const char *s = subject_key ? subject_key : "";
        cap_err_set(err, CAP_E_INVALID, "finding %s: subject \"%s\" does not start with \"%s\"",
                    d->kind, cap_err_quote(q, sizeof(q), s, strlen(s)), prefix);
        return -1;
    }
    char *details = cap_findings_details_clean(details_json, d->kind, err);
    if (!details) {
        return -1;
    }
    char *subject = clean_or_null(subject_key);
    if (!subject) {
        free(details);
        cap_err_set(err, CAP_E_NOMEM, "finding %s: out of memory", d->kind);
        return -1;
    }
    int rc = queue_finding(inv, d, subject, source_id, endpoint_id, fingerprint, details, NULL, 0,
                           NULL, 0, err);
    free(subject);
    return rc == 0 ? maybe_flush(inv, err) : -1;
}

static bool is_ip(const char *s)
{
    uint8_t buf[16];
    return s && (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1);
}

int cap_inventory_raise_endpoint(struct cap_inventory *inv, enum cap_finding_kind kind,
                                 const char *address, int port, const char *sni,
                                 const char *details_json, struct cap_err *err)
{
    const struct cap_finding_def *d = cap_findings_def(kind);
    if (d->subject != CAP_FINDING_ON_ENDPOINT) {
        cap_err_set(err, CAP_E_INVALID, "finding %s: not about an endpoint", d->kind);
        return -1;
    }
    if (!is_ip(address) || port < 1 || port > 65535) {
        char q[CAP_ERR_VALUE_MAX * 4 + 8];
        const char *a = address ? address : "";
        cap_err_set(err, CAP_E_INVALID, "finding %s: bad endpoint address \"%s\" port %d", d->kind,
                    cap_err_quote(q, sizeof(q), a, strlen(a)), port);
        return -1;
    }
    char *details = cap_findings_details_clean(details_json, d->kind, err);
    if (!details) {
        return -1;
    }
    char *csni = cap_x509_clean_text(sni ? sni : "", sni ? strlen(sni) : 0);
    if (!csni) {
        free(details);
        cap_err_set(err, CAP_E_NOMEM, "finding %s: out of memory", d->kind);
        return -1;
    }
    int rc = queue_finding(inv, d, NULL, 0, 0, NULL, details, address, port, csni, 0, err);
    free(csni);
    return rc == 0 ? maybe_flush(inv, err) : -1;
}

/* ---- observations ---- */

/* Chain certificates read per observation; a longer chain keeps its first ones and says so. */
#define CHAIN_MAX 32

static bool outcome_ok(const char *o)
{
    static const char *const outcomes[] = {"ok", "refused", "timeout", "tls_error", "policy_block"};
    for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
        if (o && strcmp(o, outcomes[i]) == 0) {
            return true;
        }
    }
    return false;
}

int cap_inventory_add_observation(struct cap_inventory *inv, const struct cap_observation *o,
                                  struct cap_err *err)
{
    char q[CAP_ERR_VALUE_MAX * 4 + 8];
    if (!is_ip(o->address)) {
        const char *a = o->address ? o->address : "";
        cap_err_set(err, CAP_E_INVALID, "observation: address \"%s\" is not an IP address",
                    cap_err_quote(q, sizeof(q), a, strlen(a)));
        return -1;
    }
    if (o->port < 1 || o->port > 65535) {
        cap_err_set(err, CAP_E_INVALID, "observation of %s: port %d out of range", o->address,
                    o->port);
        return -1;
    }
    if (!outcome_ok(o->outcome)) {
        const char *a = o->outcome ? o->outcome : "";
        cap_err_set(err, CAP_E_INVALID, "observation of %s: unknown outcome \"%s\"", o->address,
                    cap_err_quote(q, sizeof(q), a, strlen(a)));
        return -1;
    }
    if (o->chain_n > 0 && !o->chain) {
        cap_err_set(err, CAP_E_INVALID, "observation of %s: chain_n without chain", o->address);
        return -1;
    }

    /* Certificates first, so the observation can point at its leaf. */
    size_t n = o->chain_n < CHAIN_MAX ? o->chain_n : CHAIN_MAX;
    struct cap_cert_facts facts[CHAIN_MAX];
    bool parsed[CHAIN_MAX] = {false};
    char fps[CHAIN_MAX][CAP_X509_HEX256_LEN];
    char note[512] = "";
    size_t note_len = 0;
    int rc = 0;
    uint8_t mds[CHAIN_MAX][SHA256_DIGEST_LENGTH];
    for (size_t i = 0; i < n; i++) {
        uint8_t *md = mds[i];
        SHA256(o->chain[i].der ? o->chain[i].der : (const uint8_t *)"", o->chain[i].len, md);
        cap_x509_hex(md, SHA256_DIGEST_LENGTH, fps[i]);
        const struct seen_cert *seen = seen_find(inv, md);
        if (i > 0 && seen && (seen->flags & SEEN_CHAIN_CLEAN)) {
            continue; /* stored, and as a chain certificate it raises nothing */
        }
        struct cap_err perr = {0};
        int frc = o->chain[i].x509
                      ? cap_x509_facts_from_x509(o->chain[i].x509, o->chain[i].der, o->chain[i].len,
                                                 md, &facts[i], &perr)
                      : cap_x509_facts_from_der(o->chain[i].der, o->chain[i].len, &facts[i], &perr);
        if (frc != 0) {
            if (perr.code == CAP_E_NOMEM) {
                cap_err_set(err, CAP_E_NOMEM, "%s", perr.msg);
                rc = -1;
                break;
            }
            int w = snprintf(note + note_len, sizeof(note) - note_len, "%schain[%zu]: %s",
                             note_len ? "; " : "", i, perr.msg);
            if (w > 0) {
                note_len = strlen(note);
            }
            continue;
        }
        parsed[i] = true;
        if (queue_cert(inv, &facts[i], o->chain[i].der, o->chain[i].len, false, err) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && o->chain_n > CHAIN_MAX) {
        snprintf(note + note_len, sizeof(note) - note_len,
                 "%schain of %zu certificates: only the first %d stored", note_len ? "; " : "",
                 o->chain_n, CHAIN_MAX);
        note_len = strlen(note);
    }

    char *error = NULL;
    if (rc == 0) {
        char *cerr = clean_or_null(o->error);
        if (o->error && !cerr) {
            rc = -1;
        } else if (note_len) {
            size_t len = (cerr ? strlen(cerr) + 2 : 0) + note_len + 1;
            error = malloc(len);
            if (error) {
                snprintf(error, len, "%s%s%s", cerr ? cerr : "", cerr ? "; " : "", note);
            }
            free(cerr);
            rc = error ? 0 : -1;
        } else {
            error = cerr;
        }
        if (rc != 0) {
            cap_err_set(err, CAP_E_NOMEM, "queueing observation of %s: out of memory", o->address);
        }
    }

    const char *leaf_fp = n > 0 && parsed[0] ? fps[0] : NULL;
    if (rc == 0) {
        char *chain_fps[CHAIN_MAX + 1];
        for (size_t i = 0; i < n; i++) {
            chain_fps[i] = fps[i];
        }
        chain_fps[n] = NULL;
        char gbuf[8];
        const char *group = o->kex_group;
        if (!group && o->kex_group_id) {
            group = cap_pqc_group_name(o->kex_group_id);
            if (!group) {
                snprintf(gbuf, sizeof(gbuf), "0x%04x", o->kex_group_id);
                group = gbuf;
            }
        }
        const char *kex = cap_pqc_kex_class(o->kex_group_id);
        const char *host = o->host && *o->host ? o->host : o->address;
        char *v[OBS_COLS] = {
            clean_or_null(host),
            strdup(o->address),
            i64_text(o->port),
            clean_or_null(o->sni ? o->sni : ""),
            strdup(o->outcome),
            dup_or_null(leaf_fp),
            i64_text(++inv->ord),
            strv_literal(chain_fps, n),
            clean_or_null(o->tls_version),
            clean_or_null(o->cipher_suite),
            clean_or_null(group),
            o->kex_group_id ? i64_text(o->kex_group_id) : NULL,
            dup_or_null(kex),
            error,
        };
        bool failed = !v[0] || !v[1] || !v[2] || !v[3] || !v[4] || (leaf_fp && !v[5]) || !v[6] ||
                      !v[7] || (o->tls_version && !v[8]) || (o->cipher_suite && !v[9]) ||
                      (group && !v[10]) || (o->kex_group_id && !v[11]) || (kex && !v[12]);
        error = NULL; /* owned by the row now */
        if (rows_add(&inv->obs, v, failed) != 0) {
            cap_err_set(err, CAP_E_NOMEM, "queueing observation of %s: out of memory", o->address);
            rc = -1;
        } else {
            mark_queued(inv);
        }
    }
    free(error);

    /* Endpoint findings, then certificate findings of the chain (leaf: all kinds). */
    if (rc == 0) {
        struct cap_finding_spec specs[8];
        size_t ns = cap_findings_endpoint_specs(o, leaf_fp ? &facts[0] : NULL, specs, 8);
        const char *row_error = inv->obs.cells[(inv->obs.n - 1) * OBS_COLS + 13];
        for (size_t i = 0; i < ns && i < 8 && rc == 0; i++) {
            char *details = cap_findings_endpoint_details(&specs[i], o, row_error, leaf_fp);
            char *sni = clean_or_null(o->sni ? o->sni : "");
            if (!details || !sni) {
                free(details);
                free(sni);
                cap_err_set(err, CAP_E_NOMEM, "queueing finding %s: out of memory", specs[i].kind);
                rc = -1;
                break;
            }
            rc = queue_finding(inv, cap_findings_def(specs[i].id), NULL, 0, 0, NULL, details,
                               o->address, o->port, sni, 0, err);
            free(sni);
        }
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t nf = 0;
        if (parsed[i]) {
            rc = queue_cert_findings(inv, &facts[i], i == 0, 0, &nf, err);
        }
        if (rc == 0 && parsed[i] && i > 0 && nf == 0) {
            seen_mark(inv, mds[i], SEEN_CHAIN_CLEAN);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (parsed[i]) {
            cap_cert_facts_cleanup(&facts[i]);
        }
    }
    return rc == 0 ? maybe_flush(inv, err) : -1;
}

int cap_inventory_add_sighting(struct cap_inventory *inv, const char *fingerprint_sha256,
                               const char *log_url, int64_t log_index, int64_t entry_ts_ms,
                               struct cap_err *err)
{
    return cap_inventory_add_sighting_for(inv, 0, fingerprint_sha256, log_url, log_index,
                                          entry_ts_ms, err);
}

int cap_inventory_add_sighting_for(struct cap_inventory *inv, int64_t source_id,
                                   const char *fingerprint_sha256, const char *log_url,
                                   int64_t log_index, int64_t entry_ts_ms, struct cap_err *err)
{
    if (!fingerprint_sha256 || strlen(fingerprint_sha256) != 64 || !log_url || !*log_url ||
        log_index < 0) {
        cap_err_set(err, CAP_E_INVALID, "sighting: bad fingerprint, log URL or index %lld",
                    (long long)log_index);
        return -1;
    }
    char *v[SIGHT_COLS] = {strdup(fingerprint_sha256), clean_or_null(log_url), i64_text(log_index),
                           i64_text(entry_ts_ms > 0 ? entry_ts_ms : 0),
                           i64_text(source_id > 0 ? source_id : 0)};
    if (rows_add(&inv->sights, v, !v[0] || !v[1] || !v[2] || !v[3] || !v[4]) != 0) {
        cap_err_set(err, CAP_E_NOMEM, "queueing sighting: out of memory");
        return -1;
    }
    mark_queued(inv);
    return maybe_flush(inv, err);
}

/* ---- writing ---- */

/* Runs sql with the first ncols columns of r as array parameters followed by extra. */
/* Runs sql with the parameters: the nlead scalars lead, then one array per column of r, then
 * the nextra scalars. */
static PGresult *exec_rows(PGconn *c, const char *name, const char *sql, const char *const *lead,
                           size_t nlead, const struct rows *r, size_t ncols,
                           const char *const *extra, size_t nextra, struct cap_err *err)
{
    const char *params[32];
    char *arrays[32] = {0};
    PGresult *res = NULL;
    if (nlead + ncols + nextra > 32) {
        cap_err_set(err, CAP_E_INVALID, "%s: too many parameters", name);
        return NULL;
    }
    for (size_t i = 0; i < nlead; i++) {
        params[i] = lead[i];
    }
    for (size_t i = 0; i < ncols; i++) {
        arrays[i] = rows_array(r, i);
        if (!arrays[i]) {
            cap_err_set(err, CAP_E_NOMEM, "%s: out of memory", name);
            goto out;
        }
        params[nlead + i] = arrays[i];
    }
    for (size_t i = 0; i < nextra; i++) {
        params[nlead + ncols + i] = extra[i];
    }
    res = cap_pg_exec(c, name, sql, (int)(nlead + ncols + nextra), params, err);
out:
    for (size_t i = 0; i < ncols; i++) {
        free(arrays[i]);
    }
    return res;
}

static int cmd_rows(PGconn *c, const char *name, const char *sql, const char *const *lead,
                    size_t nlead, const struct rows *r, size_t ncols, const char *const *extra,
                    size_t nextra, struct cap_err *err)
{
    PGresult *res = exec_rows(c, name, sql, lead, nlead, r, ncols, extra, nextra, err);
    if (!res) {
        return -1;
    }
    PQclear(res);
    return 0;
}

/* ---- findings confirmed by id and row version ----
 *
 * The worker remembers, for each finding it wrote or confirmed, the finding's id and row
 * version (xmin) with a hash of the row it queued. A later run that raises the same finding
 * with the same row sends only the id and version (SQL_CONFIRM_FINDINGS): if the row is still
 * at that version nobody wrote it since, and its details need not be read or compared. Anything
 * else (a new row, a changed one, a row another tool or worker wrote, a batch that rolled
 * back) falls back to SQL_UPSERT_FINDINGS, whose answer refreshes what is remembered. One
 * table per worker process, shared by its job threads, direct-mapped (a collision only
 * forgets), filled by network scans only: their re-scans raise the same findings again. */

struct fseen {
    uint64_t key; /* hash of the finding's identity (kind, subject or endpoint); 0: empty */
    uint64_t row; /* hash of the row queued */
    int64_t id;
    uint32_t xmin;
};
#define FSEEN_SLOTS (1u << 17) /* 4 MiB of address space, touched as used */

static struct fseen *g_fseen;
static pthread_mutex_t g_fseen_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t fnv_cell(uint64_t h, const char *v)
{
    if (!v) {
        return (h ^ 0xffu) * 1099511628211u; /* NULL differs from "" */
    }
    for (; *v; v++) {
        h = (h ^ (unsigned char)*v) * 1099511628211u;
    }
    return (h ^ 0xfeu) * 1099511628211u;
}

/* Identity and row hashes of queued finding i (never 0 for the identity). */
static void finding_hashes(const struct rows *r, size_t i, uint64_t *key, uint64_t *row)
{
    char *const *v = r->cells + i * r->ncols;
    uint64_t k = fnv_cell(1469598103934665603u, v[0]);
    if (v[2]) {
        k = fnv_cell(k, v[2]);
    } else {
        k = fnv_cell(fnv_cell(fnv_cell(k, v[7]), v[8]), v[9]);
    }
    *key = k ? k : 1;
    uint64_t h = 0x84222325cbf29ce4u;
    for (size_t c = 0; c < FIND_COLS - 1; c++) { /* every column but the order */
        h = fnv_cell(h, v[c]);
    }
    *row = h;
}

static int cmp_u64_idx(const void *a, const void *b)
{
    const uint64_t *x = a, *y = b;
    return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* The index of the queued finding whose order is ord (text), r->n when there is none. Orders
 * grow with the row index. */
static size_t finding_of_ord(const struct rows *r, const char *ord)
{
    long long o = atoll(ord);
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        long long m = atoll(r->cells[mid * r->ncols + 12]);
        if (m == o) {
            return mid;
        }
        if (m < o) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return r->n;
}

/* Remembers id and version for the queued finding whose order is ord (text). */
static void fseen_store(const struct rows *r, const uint64_t *keys, const uint64_t *rowh,
                        const char *ord, const char *id, const char *xmin)
{
    size_t lo = finding_of_ord(r, ord);
    if (lo >= r->n) {
        return;
    }
    pthread_mutex_lock(&g_fseen_mu);
    if (!g_fseen) {
        g_fseen = calloc(FSEEN_SLOTS, sizeof *g_fseen);
    }
    if (g_fseen) {
        struct fseen *e = &g_fseen[keys[lo] & (FSEEN_SLOTS - 1)];
        e->key = keys[lo];
        e->row = rowh[lo];
        e->id = atoll(id);
        e->xmin = (uint32_t)strtoul(xmin, NULL, 10);
    }
    pthread_mutex_unlock(&g_fseen_mu);
}

/* The batch's findings: those raised exactly as last time confirmed by id and version, the
 * rest through SQL_UPSERT_FINDINGS. A finding raised twice in one batch always takes the long
 * way (the last one raised wins there). */
static int write_findings(struct cap_inventory *inv, PGconn *c, const char *run,
                          struct cap_err *err)
{
    const struct rows *r = &inv->finds;
    size_t n = r->n;
    uint64_t *keys = calloc(n, sizeof *keys), *rowh = calloc(n, sizeof *rowh);
    uint64_t *sorted = calloc(2 * n, sizeof *sorted);
    unsigned char *fast = calloc(n, 1);
    char **rest = calloc(n * r->ncols, sizeof *rest);
    char *arr[8] = {0};
    PGresult *res = NULL;
    int rc = -1;
    if (!keys || !rowh || !sorted || !fast || !rest) {
        cap_err_set(err, CAP_E_NOMEM, "upsert findings: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        finding_hashes(r, i, &keys[i], &rowh[i]);
        sorted[2 * i] = keys[i];
        sorted[2 * i + 1] = i;
    }
    qsort(sorted, n, 2 * sizeof *sorted, cmp_u64_idx);
    size_t nfast = 0;
    struct rows cand = {.ncols = 8, .n = 0, .cap = n, .cells = calloc(n * 8, sizeof(char *))};
    if (!cand.cells) {
        cap_err_set(err, CAP_E_NOMEM, "upsert findings: out of memory");
        goto out;
    }
    pthread_mutex_lock(&g_fseen_mu);
    for (size_t s = 0; s < n; s++) {
        size_t i = (size_t)sorted[2 * s + 1];
        bool dup =
            (s > 0 && sorted[2 * s - 2] == keys[i]) || (s + 1 < n && sorted[2 * s + 2] == keys[i]);
        const char *mode = r->cells[i * r->ncols + 11];
        const struct fseen *e = g_fseen ? &g_fseen[keys[i] & (FSEEN_SLOTS - 1)] : NULL;
        if (dup || !e || e->key != keys[i] || e->row != rowh[i] || strcmp(mode, "2") == 0) {
            continue;
        }
        char idb[24], xb[16];
        snprintf(idb, sizeof idb, "%lld", (long long)e->id);
        snprintf(xb, sizeof xb, "%u", e->xmin);
        char **cv = cand.cells + cand.n * 8;
        cv[0] = strdup(idb);
        cv[1] = strdup(xb);
        cv[2] = strdup(mode);
        cv[3] = dup_or_null(r->cells[i * r->ncols + 5]);
        cv[4] = strdup(r->cells[i * r->ncols + 12]);
        cv[5] = strdup(r->cells[i * r->ncols + 0]);
        cv[6] = strdup(r->cells[i * r->ncols + 10]);
        cv[7] = NULL;
        cand.n++;
        fast[i] = 1;
        nfast++;
    }
    pthread_mutex_unlock(&g_fseen_mu);
    if (nfast > 0) {
        const char *params[8] = {run};
        for (size_t k = 0; k < 7; k++) {
            arr[k] = rows_array(&cand, k);
            if (!arr[k]) {
                cap_err_set(err, CAP_E_NOMEM, "confirm findings: out of memory");
                goto out_cand;
            }
            params[k + 1] = arr[k];
        }
        res = cap_pg_exec(c, "confirm findings", SQL_CONFIRM_FINDINGS, 8, params, err);
        if (!res) {
            goto out_cand;
        }
        /* Those confirmed stay out of the upsert; the others go through it. */
        for (size_t i = 0; i < n; i++) {
            fast[i] = 0;
        }
        for (int k = 0; k < PQntuples(res); k++) {
            size_t i = finding_of_ord(r, PQgetvalue(res, k, 0));
            if (i < n) {
                fast[i] = 1;
                inv->stats.findings_by_version++;
            }
        }
        PQclear(res);
        res = NULL;
    }
    struct rows todo = {.ncols = r->ncols, .n = 0, .cap = n, .cells = rest};
    for (size_t i = 0; i < n; i++) {
        if (!fast[i]) {
            memcpy(todo.cells + todo.n * r->ncols, r->cells + i * r->ncols,
                   r->ncols * sizeof(char *));
            todo.n++;
        }
    }
    if (todo.n > 0) {
        const char *run_lead[] = {run};
        res = exec_rows(c, "upsert findings", SQL_UPSERT_FINDINGS, run_lead, 1, &todo, FIND_COLS,
                        NULL, 0, err);
        if (!res) {
            goto out_cand;
        }
        /* Remembered for network scans, whose re-scans raise the same findings again; a CT
         * run raises each finding once. */
        for (int k = 0; (inv->flags & CAP_INVENTORY_PROGRESS_OBSERVATIONS) && k < PQntuples(res);
             k++) {
            fseen_store(r, keys, rowh, PQgetvalue(res, k, 0), PQgetvalue(res, k, 1),
                        PQgetvalue(res, k, 2));
        }
        PQclear(res);
    }
    rc = 0;
out_cand:
    for (size_t i = 0; i < cand.n * 8; i++) {
        free(cand.cells[i]);
    }
    free(cand.cells);
out:
    for (size_t k = 0; k < 8; k++) {
        free(arr[k]);
    }
    free(keys);
    free(rowh);
    free(sorted);
    free(fast);
    free(rest);
    return rc;
}

/* The run's progress (one cap_run_progress call) from st: with counts, the certificates and
 * drifts and, for the network scan (CAP_INVENTORY_PROGRESS_OBSERVATIONS), its observations by
 * outcome; without, only the items done. The counts of empty addresses go with either, when
 * some were counted since they were last written. */
static int write_progress(struct cap_inventory *inv, const struct cap_inventory_stats *st,
                          bool counts, struct cap_err *err)
{
    struct cap_progress p = CAP_PROGRESS_KEEP;
    bool obs = inv->flags & CAP_INVENTORY_PROGRESS_OBSERVATIONS;
    char stats[320] = "";
    size_t off = 0;
    if (counts) {
        p.new_certificates = st->certs_new;
        p.drifts = st->drifts;
    }
    if (counts && obs) {
        p.items_ok = st->ok;
        p.items_failed = st->observations - st->ok;
        off += (size_t)snprintf(stats + off, sizeof stats - off,
                                "\"unreachable\": %lld, \"tls_error\": %lld",
                                (long long)st->unreachable, (long long)st->tls_errors);
    }
    if (counts ? obs : inv->empty_dirty) {
        p.items_done = st->observations + inv->empty[0] + inv->empty[1] + inv->empty[2];
    }
    if (inv->empty_dirty) {
        snprintf(stats + off, sizeof stats - off,
                 "%s\"silent\": %lld, \"closed\": %lld, \"no_route\": %lld", off ? ", " : "",
                 (long long)inv->empty[0], (long long)inv->empty[1], (long long)inv->empty[2]);
    }
    char json[sizeof stats + 4];
    if (stats[0]) {
        snprintf(json, sizeof json, "{%s}", stats);
        p.stats = json;
    }
    return cap_run_progress(inv->ctx, &p, err);
}

/* The queued certificates SQL_CERTS_TO_WRITE names, in *out (cells borrowed from inv->certs;
 * free out->cells only). 0 or -1 with err. */
static int certs_to_write(struct cap_inventory *inv, PGconn *c, struct rows *out,
                          struct cap_err *err)
{
    *out = (struct rows){.ncols = CERT_COLS};
    PGresult *r = exec_rows(c, "certificates to write", SQL_CERTS_TO_WRITE, NULL, 0, &inv->certs,
                            1, NULL, 0, err);
    if (!r) {
        return -1;
    }
    size_t k = (size_t)PQntuples(r);
    if (k > 0 && !(out->cells = malloc(k * CERT_COLS * sizeof *out->cells))) {
        PQclear(r);
        cap_err_set(err, CAP_E_NOMEM, "certificates to write: out of memory");
        return -1;
    }
    for (size_t j = 0; j < k; j++) {
        int64_t i = cap_pg_get_i64(r, (int)j, 0);
        if (i < 1 || (size_t)i > inv->certs.n) {
            PQclear(r);
            free(out->cells);
            out->cells = NULL;
            cap_err_set(err, CAP_E_IO, "certificates to write: position %lld out of range",
                        (long long)i);
            return -1;
        }
        memcpy(out->cells + j * CERT_COLS, inv->certs.cells + (size_t)(i - 1) * CERT_COLS,
               CERT_COLS * sizeof *out->cells);
    }
    out->n = out->cap = k;
    PQclear(r);
    return 0;
}

/* The batch's statements, inside the open transaction. */
static int write_batch(struct cap_inventory *inv, struct cap_err *err)
{
    struct cap_run_ctx *ctx = inv->ctx;
    PGconn *c = ctx->pg;
    char run[24], src[24];
    cap_pg_i64(run, ctx->run_id);
    cap_pg_i64(src, ctx->source_id);

    if (cap_run_fence(ctx, err) != 0) {
        return -1;
    }
    if (inv->certs.n > 0) {
        /* A network scan sees the same certificates run after run: it asks which to write
         * first. A CT batch's certificates are nearly all new: written at once. */
        struct rows todo = inv->certs;
        bool asked = inv->flags & CAP_INVENTORY_PROGRESS_OBSERVATIONS;
        if (asked && certs_to_write(inv, c, &todo, err) != 0) {
            return -1;
        }
        const char *extra[] = {run};
        int rc = todo.n > 0 ? cmd_rows(c, "upsert certificates", SQL_UPSERT_CERTS, NULL, 0, &todo,
                                       CERT_COLS, extra, 1, err)
                            : 0;
        if (asked) {
            inv->stats.certs_unsent += (int64_t)(inv->certs.n - todo.n);
            free(todo.cells);
        }
        if (rc) {
            return -1;
        }
    }
    if (inv->obs.n > 0) {
        /* Drift first: it reads the leaf each endpoint's row names before this batch. */
        const struct cap_finding_def *drift = cap_findings_def(CAP_FINDING_DRIFT);
        const char *drift_extra[] = {run, src, drift->kind, drift->severity};
        if (cmd_rows(c, "record drift", SQL_DRIFT, NULL, 0, &inv->obs, 7, drift_extra, 4, err)) {
            return -1;
        }
        const char *ep_extra[] = {src};
        if (cmd_rows(c, "upsert endpoints", SQL_UPSERT_ENDPOINTS, NULL, 0, &inv->obs, 7, ep_extra,
                     1, err)) {
            return -1;
        }
        const char *obs_extra[] = {run};
        if (cmd_rows(c, "upsert observations", SQL_UPSERT_OBSERVATIONS, NULL, 0, &inv->obs,
                     OBS_COLS, obs_extra, 1, err)) {
            return -1;
        }
    }
    const char *src_lead[] = {src};
    if (inv->sights.n > 0 && cmd_rows(c, "upsert sightings", SQL_UPSERT_SIGHTINGS, src_lead, 1,
                                      &inv->sights, SIGHT_COLS, NULL, 0, err)) {
        return -1;
    }
    if (inv->finds.n > 0 && write_findings(inv, c, run, err) != 0) {
        return -1;
    }
    if (inv->commit_cb && inv->commit_cb(ctx, inv->commit_arg, err) != 0) {
        if (!cap_err_isset(err)) {
            cap_err_set(err, CAP_E_IO, "inventory commit hook failed");
        }
        return -1;
    }

    struct cap_inventory_stats st = inv->stats;
    if (ctx->shard > 0) {
        /* A shard counts what it observed itself: the run's rows are every shard's. Each
         * target of its slice is observed once per attempt, and an attempt starts from zero.
         * Certificates and drift events are counted for the whole run when it ends. */
        for (size_t i = 0; i < inv->obs.n; i++) {
            const char *outcome = inv->obs.cells[i * inv->obs.ncols + 4];
            st.observations++;
            if (outcome && strcmp(outcome, "ok") == 0) {
                st.ok++;
            } else if (outcome && strcmp(outcome, "tls_error") == 0) {
                st.tls_errors++;
            } else if (outcome &&
                       (strcmp(outcome, "refused") == 0 || strcmp(outcome, "timeout") == 0)) {
                st.unreachable++;
            }
        }
    } else {
        const char *cp[] = {run};
        PGresult *r = cap_pg_exec(c, "count run results", SQL_RUN_COUNTS, 1, cp, err);
        if (!r) {
            return -1;
        }
        st.certs_new = cap_pg_get_i64(r, 0, 0);
        st.drifts = cap_pg_get_i64(r, 0, 1);
        st.observations = cap_pg_get_i64(r, 0, 2);
        st.ok = cap_pg_get_i64(r, 0, 3);
        st.unreachable = cap_pg_get_i64(r, 0, 4);
        st.tls_errors = cap_pg_get_i64(r, 0, 5);
        PQclear(r);
    }
    if (write_progress(inv, &st, true, err) != 0) {
        return -1;
    }
    st.batches++;
    inv->stats = st;
    return 0;
}

/* Only the progress: items done (observations + empty addresses) and the empty counts. */
static int write_progress_only(struct cap_inventory *inv, struct cap_err *err)
{
    if (write_progress(inv, &inv->stats, false, err) != 0) {
        return -1;
    }
    inv->empty_dirty = false;
    inv->empty_written_ms = mono_ms();
    return 0;
}

int cap_inventory_flush(struct cap_inventory *inv, struct cap_err *err)
{
    if (queued(inv) == 0) {
        return inv->empty_dirty ? write_progress_only(inv, err) : 0;
    }
    PGconn *c = inv->ctx->pg;
    struct cap_inventory_stats before = inv->stats;
    if (cap_pg_cmd(c, "begin inventory batch", SQL_BEGIN, 0, NULL, err) != 0) {
        return -1;
    }
    /* Generic plans for the network scan's batches (a few hundred rows each run, again and
     * again); a CT batch is large and rarer, and keeps the plans made for its rows. */
    bool generic = inv->flags & CAP_INVENTORY_PROGRESS_OBSERVATIONS;
    if (cap_pg_cmd(c, generic ? "batch settings" : "turn off jit",
                   generic ? SQL_BATCH_SETTINGS : SQL_NO_JIT, 0, NULL, err) != 0) {
        PGresult *r = PQexec(c, SQL_ROLLBACK);
        PQclear(r);
        return -1;
    }
    if (write_batch(inv, err) != 0 ||
        cap_pg_cmd(c, "commit inventory batch", SQL_COMMIT, 0, NULL, err) != 0) {
        PGresult *r = PQexec(c, SQL_ROLLBACK);
        PQclear(r);
        inv->stats = before;
        cap_log(CAP_LOG_WARN, "inventory_batch_failed", CAP_LI("run_id", inv->ctx->run_id),
                CAP_LI("items", queued(inv)), CAP_LS("err", err ? err->msg : ""));
        return -1;
    }
    cap_log(CAP_LOG_DEBUG, "inventory_batch", CAP_LI("run_id", inv->ctx->run_id),
            CAP_LI("certs", inv->certs.n), CAP_LI("observations", inv->obs.n),
            CAP_LI("sightings", inv->sights.n), CAP_LI("findings", inv->finds.n));
    rows_clear(&inv->certs);
    rows_clear(&inv->obs);
    rows_clear(&inv->sights);
    rows_clear(&inv->finds);
    inv->first_queued_ms = 0;
    inv->empty_dirty = false;
    inv->empty_written_ms = mono_ms();
    return 0;
}

int cap_inventory_flush_if_due(struct cap_inventory *inv, struct cap_err *err)
{
    if (queued(inv) > 0 && inv->first_queued_ms &&
        mono_ms() - inv->first_queued_ms >= CAP_INVENTORY_FLUSH_MS) {
        return cap_inventory_flush(inv, err);
    }
    if (queued(inv) == 0 && inv->empty_dirty &&
        mono_ms() - inv->empty_written_ms >= CAP_INVENTORY_FLUSH_MS) {
        return write_progress_only(inv, err);
    }
    return 0;
}

int cap_inventory_count_empty(struct cap_inventory *inv, const char *reason)
{
    for (size_t i = 0; i < 3; i++) {
        if (reason && strcmp(reason, empty_reasons[i]) == 0) {
            inv->empty[i]++;
            inv->empty_dirty = true;
            return 0;
        }
    }
    return -1;
}

/* The resolving statement, inside the caller's open transaction (fenced here). */
static int resolve_open(struct cap_inventory *inv, unsigned by, int64_t *resolved,
                        struct cap_err *err)
{
    const char *kinds[CAP_FINDING_KINDS];
    size_t kinds_n = cap_findings_resolve_kinds(by, kinds, CAP_FINDING_KINDS);
    char *kind_arr = strv_literal((char *const *)kinds, kinds_n);
    if (!kind_arr) {
        cap_err_set(err, CAP_E_NOMEM, "resolving findings: out of memory");
        return -1;
    }
    struct cap_run_ctx *ctx = inv->ctx;
    char run[24], src[24];
    const char *p[] = {cap_pg_i64(src, ctx->source_id), cap_pg_i64(run, ctx->run_id), kind_arr};
    PGresult *r = NULL;
    if (cap_pg_cmd(ctx->pg, "turn off jit", SQL_NO_JIT, 0, NULL, err) == 0 &&
        cap_run_fence(ctx, err) == 0) {
        r = cap_pg_exec(ctx->pg, "resolve findings", SQL_RESOLVE_MISSING, 3, p, err);
    }
    free(kind_arr);
    if (!r) {
        return -1;
    }
    if (resolved) {
        *resolved = strtoll(PQcmdTuples(r), NULL, 10);
    }
    PQclear(r);
    return 0;
}

int cap_inventory_resolve_missing_open(struct cap_inventory *inv, unsigned by, int64_t *resolved,
                                       struct cap_err *err)
{
    if (queued(inv) != 0) {
        cap_err_set(err, CAP_E_INVALID,
                    "resolving findings: %zu items are still queued (flush them first)",
                    (size_t)queued(inv));
        return -1;
    }
    return resolve_open(inv, by, resolved, err);
}

int cap_inventory_resolve_missing(struct cap_inventory *inv, unsigned by, int64_t *resolved,
                                  struct cap_err *err)
{
    if (cap_inventory_flush(inv, err) != 0) {
        return -1;
    }
    struct cap_run_ctx *ctx = inv->ctx;
    int64_t n = 0;
    int rc = cap_pg_cmd(ctx->pg, "begin resolve findings", SQL_BEGIN, 0, NULL, err);
    if (rc == 0 && (resolve_open(inv, by, &n, err) != 0 ||
                    cap_pg_cmd(ctx->pg, "commit resolve findings", SQL_COMMIT, 0, NULL, err))) {
        PGresult *rb = PQexec(ctx->pg, SQL_ROLLBACK);
        PQclear(rb);
        rc = -1;
    }
    if (rc == 0 && resolved) {
        *resolved = n;
    }
    return rc;
}
