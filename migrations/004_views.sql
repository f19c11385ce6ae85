-- Dashboard views: the questions operators ask of the inventory, as stable SQL names, and the
-- read-only role cap_dashboard that may read these views and nothing else.
--
-- The views run with their owner's rights (no security_invoker), so a role granted SELECT on a
-- view reads through it without any right on the tables underneath.

-- Every certificate of the inventory with what dashboards derive from it.
CREATE VIEW cap_inventory AS
SELECT c.fingerprint_sha256,
       c.subject,
       c.issuer,
       c.sans,
       c.serial,
       c.not_before,
       c.not_after,
       floor(extract(epoch FROM (c.not_after - now())) / 86400)::integer AS days_to_expiry,
       coalesce(c.not_after < now(), false) AS expired,
       c.key_algorithm,
       c.key_bits,
       c.key_curve,
       c.signature_algorithm,
       c.pqc_class,
       c.is_precert,
       c.is_ca,
       c.self_signed,
       c.tbs_sha256,
       (c.is_precert AND EXISTS (
            SELECT 1 FROM discovered_certificates f
            WHERE f.tbs_sha256 = c.tbs_sha256 AND NOT f.is_precert)) AS has_final_certificate,
       EXISTS (SELECT 1 FROM managed_certificates m
               WHERE m.fingerprint_sha256 = c.fingerprint_sha256) AS managed,
       (SELECT count(*) FROM endpoints e
        WHERE e.fingerprint_sha256 = c.fingerprint_sha256) AS endpoint_count,
       coalesce((SELECT array_agg(DISTINCT e.host || ':' || e.port)
                 FROM endpoints e WHERE e.fingerprint_sha256 = c.fingerprint_sha256),
                '{}') AS served_at,
       EXISTS (SELECT 1 FROM ct_sightings s
               WHERE s.fingerprint_sha256 = c.fingerprint_sha256) AS seen_in_ct,
       (SELECT count(*) FROM findings f
        WHERE f.fingerprint_sha256 = c.fingerprint_sha256 AND f.status = 'open') AS open_findings,
       c.first_seen_at,
       c.last_seen_at
FROM discovered_certificates c;
COMMENT ON VIEW cap_inventory IS
    'The inventory, one row per certificate, with days to expiry, managed flag, where it is served and open findings.';
COMMENT ON COLUMN cap_inventory.days_to_expiry IS
    'Whole days until not_after, rounded down: 0 expires within a day, negative has expired.';
COMMENT ON COLUMN cap_inventory.expired IS 'True once not_after has passed.';
COMMENT ON COLUMN cap_inventory.has_final_certificate IS
    'For a CT precertificate: true when its final certificate (same tbs_sha256) is also in the inventory.';
COMMENT ON COLUMN cap_inventory.managed IS 'True when CertAutoPilot manages the certificate.';
COMMENT ON COLUMN cap_inventory.endpoint_count IS 'Endpoints whose last good handshake served it.';
COMMENT ON COLUMN cap_inventory.served_at IS 'Those endpoints as host:port.';
COMMENT ON COLUMN cap_inventory.seen_in_ct IS 'True when a CT log source matched it.';
COMMENT ON COLUMN cap_inventory.open_findings IS 'Open findings about the certificate.';

-- End-entity certificates by expiry; a precertificate counts only until its final certificate
-- is seen, so one issuance is one row.
CREATE VIEW cap_certificates_expiring AS
SELECT i.fingerprint_sha256,
       i.subject,
       i.issuer,
       i.sans,
       i.not_after,
       i.days_to_expiry,
       i.expired,
       i.managed,
       i.is_precert,
       i.endpoint_count,
       i.served_at,
       i.seen_in_ct
FROM cap_inventory i
WHERE NOT i.is_ca AND i.not_after IS NOT NULL AND NOT i.has_final_certificate;
COMMENT ON VIEW cap_certificates_expiring IS
    'End-entity certificates with days_to_expiry; filter it (days_to_expiry <= 30) or call cap_expiring(days).';

CREATE FUNCTION cap_expiring(days integer) RETURNS SETOF cap_certificates_expiring
LANGUAGE sql STABLE STRICT AS $$
    SELECT * FROM cap_certificates_expiring
    WHERE NOT expired AND not_after <= now() + make_interval(days => days)
    ORDER BY not_after, fingerprint_sha256
$$;
COMMENT ON FUNCTION cap_expiring(integer) IS
    'End-entity certificates not yet expired that expire within the given number of days, soonest first.';

CREATE VIEW cap_open_findings AS
SELECT f.kind,
       f.severity,
       CASE f.severity WHEN 'critical' THEN 1 WHEN 'high' THEN 2 WHEN 'medium' THEN 3
                       WHEN 'low' THEN 4 ELSE 5 END AS severity_rank,
       f.source_id,
       s.name AS source_name,
       s.type AS source_type,
       count(*) AS open_count,
       min(f.first_seen_at) AS oldest_first_seen_at,
       max(f.last_seen_at) AS last_seen_at
FROM findings f
LEFT JOIN discovery_sources s ON s.id = f.source_id
WHERE f.status = 'open'
GROUP BY f.kind, f.severity, f.source_id, s.name, s.type;
COMMENT ON VIEW cap_open_findings IS
    'Open findings counted by kind, severity and source (severity_rank 1 = critical ... 5 = info).';

CREATE VIEW cap_drift_history AS
SELECT d.id AS drift_id,
       d.detected_at,
       d.endpoint_id,
       e.host,
       host(e.address) AS address,
       e.port,
       e.sni,
       e.host || ':' || e.port AS endpoint,
       d.run_id,
       r.source_id,
       s.name AS source_name,
       d.changed,
       d.old_fingerprint_sha256,
       oc.subject AS old_subject,
       oc.issuer AS old_issuer,
       oc.not_after AS old_not_after,
       d.new_fingerprint_sha256,
       nc.subject AS new_subject,
       nc.issuer AS new_issuer,
       nc.not_after AS new_not_after
FROM drift_events d
JOIN endpoints e ON e.id = d.endpoint_id
JOIN discovery_runs r ON r.id = d.run_id
LEFT JOIN discovery_sources s ON s.id = r.source_id
LEFT JOIN discovered_certificates oc ON oc.fingerprint_sha256 = d.old_fingerprint_sha256
LEFT JOIN discovered_certificates nc ON nc.fingerprint_sha256 = d.new_fingerprint_sha256;
COMMENT ON VIEW cap_drift_history IS
    'Every certificate change per endpoint (host:port in endpoint), with what changed and both certificates.';

CREATE VIEW cap_source_health AS
SELECT s.id AS source_id,
       s.name AS source_name,
       s.type AS source_type,
       s.enabled,
       s.schedule,
       s.next_run_at,
       s.last_error,
       CASE
           WHEN NOT s.enabled THEN 'disabled'
           WHEN r.id IS NULL THEN 'never_run'
           WHEN r.status IN ('queued', 'running') THEN r.status
           WHEN r.status IN ('failed', 'dead') THEN 'failing'
           WHEN r.status = 'partial' THEN 'degraded'
           ELSE 'ok'
       END AS health,
       r.id AS last_run_id,
       r.trigger AS last_run_trigger,
       r.status AS last_run_status,
       r.queued_at AS last_run_queued_at,
       r.started_at AS last_run_started_at,
       r.finished_at AS last_run_finished_at,
       extract(epoch FROM (coalesce(r.finished_at,
                                    CASE WHEN r.status = 'running' THEN now() END)
                           - r.started_at))::double precision AS last_run_duration_seconds,
       r.targets_total AS last_run_targets_total,
       r.targets_done AS last_run_targets_done,
       r.ok_count AS last_run_ok,
       r.unreachable_count AS last_run_unreachable,
       CASE WHEN s.type = 'network_scan'
                 AND greatest(r.targets_done, r.ok_count + r.unreachable_count) > 0
            THEN r.unreachable_count::double precision
                 / greatest(r.targets_done, r.ok_count + r.unreachable_count)
       END AS last_run_unreachable_share,
       r.error AS last_run_error,
       ok.finished_at AS last_success_at,
       (SELECT count(*) FROM findings f
        WHERE f.source_id = s.id AND f.status = 'open') AS open_findings
FROM discovery_sources s
LEFT JOIN LATERAL (
    SELECT * FROM discovery_runs x WHERE x.source_id = s.id ORDER BY x.id DESC LIMIT 1) r ON true
LEFT JOIN LATERAL (
    SELECT x.finished_at FROM discovery_runs x
    WHERE x.source_id = s.id AND x.status IN ('succeeded', 'partial')
    ORDER BY x.id DESC LIMIT 1) ok ON true;
COMMENT ON VIEW cap_source_health IS
    'Per source: health (ok, degraded, failing, queued, running, never_run, disabled), its last run (status, duration, unreachable share), last success and next run.';
COMMENT ON COLUMN cap_source_health.last_run_unreachable_share IS
    'network_scan: share (0..1) of the last run''s targets refused or timed out; NULL for ct_log or no targets.';

CREATE VIEW cap_run_history AS
SELECT r.id AS run_id,
       r.source_id,
       s.name AS source_name,
       s.type AS source_type,
       r.trigger,
       r.status,
       r.queued_at,
       r.started_at,
       r.finished_at,
       extract(epoch FROM (r.started_at - r.queued_at))::double precision AS wait_seconds,
       extract(epoch FROM (r.finished_at - r.started_at))::double precision AS duration_seconds,
       r.attempts,
       r.targets_total,
       r.targets_done,
       r.ok_count,
       r.unreachable_count,
       r.new_certificates,
       r.drift_count,
       r.error
FROM discovery_runs r
JOIN discovery_sources s ON s.id = r.source_id;
COMMENT ON VIEW cap_run_history IS
    'Every run with its source, time queued before start (wait_seconds), duration and counts.';

CREATE VIEW cap_ct_lag AS
SELECT c.source_id,
       s.name AS source_name,
       c.log_url,
       c.tree_size,
       c.next_index,
       c.backlog AS backlog_entries,
       c.verified,
       c.updated_at,
       extract(epoch FROM (now() - c.updated_at))::double precision AS seconds_since_update
FROM ct_checkpoints c
JOIN discovery_sources s ON s.id = c.source_id;
COMMENT ON VIEW cap_ct_lag IS
    'CT lag per source and log: entries not yet read (backlog_entries) and time since the checkpoint last moved.';

CREATE VIEW cap_pqc_readiness AS
WITH cert_classes(class, sort_order) AS (
    VALUES ('vulnerable', 1), ('transition', 2), ('ready', 3), ('unknown', 4)),
kex_classes(class, sort_order) AS (
    VALUES ('classical', 5), ('hybrid', 6), ('pqc', 7)),
last_ok AS (
    SELECT DISTINCT ON (o.endpoint_id) o.endpoint_id, o.kex_pqc
    FROM endpoint_observations o
    WHERE o.outcome = 'ok'
    ORDER BY o.endpoint_id, o.observed_at DESC, o.id DESC),
counts AS (
    SELECT 'certificate'::text AS scope, k.class, k.sort_order,
           count(c.fingerprint_sha256) AS total
    FROM cert_classes k
    LEFT JOIN cap_inventory c
           ON c.pqc_class = k.class AND NOT c.is_ca AND NOT c.has_final_certificate
    GROUP BY k.class, k.sort_order
    UNION ALL
    SELECT 'key_exchange'::text, k.class, k.sort_order, count(l.endpoint_id)
    FROM kex_classes k
    LEFT JOIN last_ok l ON l.kex_pqc = k.class
    GROUP BY k.class, k.sort_order)
SELECT scope,
       class,
       sort_order,
       total,
       CASE WHEN sum(total) OVER (PARTITION BY scope) > 0
            THEN total::double precision / sum(total) OVER (PARTITION BY scope)
            ELSE 0 END AS share
FROM counts;
COMMENT ON VIEW cap_pqc_readiness IS
    'PQC readiness counts: end-entity certificates per class (vulnerable, transition, ready, unknown) and endpoints per key exchange of their last good handshake (classical, hybrid, pqc), every class listed even at 0.';

-- The read-only dashboard role. Roles belong to the whole PostgreSQL cluster, so it may exist
-- already: an operator whose migration user may not create roles creates it first.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cap_dashboard') THEN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user
                       AND (rolsuper OR rolcreaterole)) THEN
            RAISE EXCEPTION 'role cap_dashboard does not exist and user % may not create roles',
                current_user
                USING HINT = 'As a superuser run: CREATE ROLE cap_dashboard NOLOGIN; '
                             'then run capctl migrate again.';
        END IF;
        CREATE ROLE cap_dashboard NOLOGIN;
        COMMENT ON ROLE cap_dashboard IS
            'Read-only dashboards: SELECT on the cap_* views only. Grant it to a login role.';
    END IF;
    -- PUBLIC holds CONNECT and USAGE ON SCHEMA public by default; grant them explicitly when
    -- we may, for databases where an operator revoked them from PUBLIC.
    IF has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO cap_dashboard', current_database());
    END IF;
    IF has_schema_privilege('public', 'USAGE WITH GRANT OPTION') THEN
        GRANT USAGE ON SCHEMA public TO cap_dashboard;
    END IF;
END $$;

GRANT SELECT ON cap_inventory, cap_certificates_expiring, cap_open_findings, cap_drift_history,
    cap_source_health, cap_run_history, cap_ct_lag, cap_pqc_readiness TO cap_dashboard;
GRANT EXECUTE ON FUNCTION cap_expiring(integer) TO cap_dashboard;
