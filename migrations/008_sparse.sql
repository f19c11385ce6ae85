-- Sparse networks. A source may lower the worker's connect rate. An address of a CIDR sweep
-- that never completes a TCP connect is no longer an endpoint: the run counts it in its stats
-- (silent, closed, no_route), and the views show those counts. Endpoints stored for such
-- addresses before this migration are removed with their findings, observations and drift.

ALTER TABLE discovery_sources
    ADD COLUMN connect_rate integer
        CONSTRAINT discovery_sources_connect_rate_range
        CHECK (connect_rate IS NULL OR connect_rate BETWEEN 1 AND 1000000);
COMMENT ON COLUMN discovery_sources.connect_rate IS
    'network_scan: TCP connects per second for this source; can only lower the worker''s '
    'scan.connect_rate. NULL: the worker''s rate.';

-- A change of connect_rate (or starttls, which 005 left out) is a change of the source: it
-- moves updated_at and, with trigger_on_save, queues a run. Same functions as in 001 with the
-- two columns added; the triggers keep calling them.
CREATE OR REPLACE FUNCTION cap_sources_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    reason text := cap_cidrs_refused_reason(NEW.cidrs);
BEGIN
    IF reason IS NOT NULL THEN
        RAISE EXCEPTION 'source "%": %', NEW.name, reason
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'INSERT' OR (OLD.name, OLD.type, OLD.enabled, OLD.schedule, OLD.trigger_on_save,
        OLD.cidrs, OLD.hosts, OLD.ports, OLD.timeout_ms, OLD.concurrency, OLD.domains,
        OLD.log_urls, OLD.log_protocol, OLD.log_key, OLD.expected_issuers, OLD.backfill_from,
        OLD.starttls, OLD.connect_rate)
        IS DISTINCT FROM (NEW.name, NEW.type, NEW.enabled, NEW.schedule, NEW.trigger_on_save,
        NEW.cidrs, NEW.hosts, NEW.ports, NEW.timeout_ms, NEW.concurrency, NEW.domains,
        NEW.log_urls, NEW.log_protocol, NEW.log_key, NEW.expected_issuers, NEW.backfill_from,
        NEW.starttls, NEW.connect_rate) THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION cap_sources_saved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.trigger_on_save AND NEW.enabled AND (TG_OP = 'INSERT' OR
        (OLD.cidrs, OLD.hosts, OLD.ports, OLD.timeout_ms, OLD.concurrency, OLD.domains,
         OLD.log_urls, OLD.log_protocol, OLD.log_key, OLD.expected_issuers, OLD.backfill_from,
         OLD.schedule, OLD.enabled, OLD.trigger_on_save, OLD.starttls, OLD.connect_rate)
        IS DISTINCT FROM
        (NEW.cidrs, NEW.hosts, NEW.ports, NEW.timeout_ms, NEW.concurrency, NEW.domains,
         NEW.log_urls, NEW.log_protocol, NEW.log_key, NEW.expected_issuers, NEW.backfill_from,
         NEW.schedule, NEW.enabled, NEW.trigger_on_save, NEW.starttls, NEW.connect_rate)) THEN
        INSERT INTO discovery_runs (source_id, trigger) VALUES (NEW.id, 'save')
            ON CONFLICT (source_id) WHERE status IN ('queued', 'running') DO NOTHING;
    END IF;
    IF TG_OP = 'INSERT' OR OLD.schedule IS DISTINCT FROM NEW.schedule
       OR OLD.enabled IS DISTINCT FROM NEW.enabled THEN
        PERFORM pg_notify('cap_scheduler', 'source ' || NEW.id);
    END IF;
    RETURN NULL;
END $$;

-- Deleting an endpoint cascades to its findings; without this index every deleted endpoint
-- would scan the whole findings table.
CREATE INDEX findings_endpoint ON findings (endpoint_id) WHERE endpoint_id IS NOT NULL;

-- Endpoints that never answered: an address target (no SNI) with no certificate ever, no
-- drift, and no observation other than refused or timeout (or none at all). An address a
-- source lists alone (/32, /128) keeps its endpoint: for a listed target, unreachable is
-- still news. Host-name targets (SNI set) keep theirs for the same reason. Observations and
-- drift events go with their endpoint (ON DELETE CASCADE), and so do the findings that name
-- it by endpoint_id; the CTE removes those that name it only by subject_key.
WITH listed AS (
    SELECT DISTINCT host(c)::inet AS address
    FROM discovery_sources s, unnest(s.cidrs) AS c
    WHERE masklen(c) = CASE family(c) WHEN 4 THEN 32 ELSE 128 END),
never_answered AS (
    SELECT e.id
    FROM endpoints e
    WHERE e.sni = ''
      AND e.fingerprint_sha256 IS NULL
      AND NOT EXISTS (SELECT 1 FROM endpoint_observations o
                      WHERE o.endpoint_id = e.id AND o.outcome NOT IN ('refused', 'timeout'))
      AND NOT EXISTS (SELECT 1 FROM drift_events d WHERE d.endpoint_id = e.id)
      AND NOT EXISTS (SELECT 1 FROM listed l WHERE l.address = host(e.address)::inet)),
by_subject AS (
    DELETE FROM findings f
    WHERE f.endpoint_id IS NULL
      AND f.subject_key IN (SELECT 'endpoint:' || n.id FROM never_answered n))
DELETE FROM endpoints e
WHERE e.id IN (SELECT n.id FROM never_answered n);

-- A count of a run's stats (silent, closed, no_route, ...): 0 when absent or not a
-- non-negative number.
CREATE FUNCTION cap_run_stat(stats jsonb, key text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    -- CASE, not AND: only CASE fixes the order, and text that is not a number must not be
    -- cast.
    SELECT CASE WHEN jsonb_typeof(stats -> key) IS DISTINCT FROM 'number' THEN 0
                WHEN (stats ->> key)::numeric NOT BETWEEN 0 AND 9223372036854775807 THEN 0
                ELSE trunc((stats ->> key)::numeric)::bigint END
$$;
COMMENT ON FUNCTION cap_run_stat(jsonb, text) IS
    'The integer count stats->key of discovery_runs.stats; 0 when absent or not a count.';

-- The run views gain the counts, at the end (CREATE OR REPLACE keeps grants and columns).
CREATE OR REPLACE VIEW cap_run_history AS
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
       r.error,
       cap_run_stat(r.stats, 'silent') AS silent,
       cap_run_stat(r.stats, 'closed') AS closed,
       cap_run_stat(r.stats, 'no_route') AS no_route
FROM discovery_runs r
JOIN discovery_sources s ON s.id = r.source_id;
COMMENT ON COLUMN cap_run_history.silent IS
    'network_scan: addresses of a sweep that never answered a connect (no endpoint stored).';
COMMENT ON COLUMN cap_run_history.closed IS
    'network_scan: addresses of a sweep that refused the connect (no endpoint stored).';
COMMENT ON COLUMN cap_run_history.no_route IS
    'network_scan: addresses of a sweep the worker has no route to (no endpoint stored).';

CREATE OR REPLACE VIEW cap_source_health AS
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
        WHERE f.source_id = s.id AND f.status = 'open') AS open_findings,
       CASE WHEN r.id IS NOT NULL THEN cap_run_stat(r.stats, 'silent') END AS last_run_silent,
       CASE WHEN r.id IS NOT NULL THEN cap_run_stat(r.stats, 'closed') END AS last_run_closed,
       CASE WHEN r.id IS NOT NULL THEN cap_run_stat(r.stats, 'no_route') END AS last_run_no_route
FROM discovery_sources s
LEFT JOIN LATERAL (
    SELECT * FROM discovery_runs x WHERE x.source_id = s.id ORDER BY x.id DESC LIMIT 1) r ON true
LEFT JOIN LATERAL (
    SELECT x.finished_at FROM discovery_runs x
    WHERE x.source_id = s.id AND x.status IN ('succeeded', 'partial')
    ORDER BY x.id DESC LIMIT 1) ok ON true;
COMMENT ON COLUMN cap_source_health.last_run_silent IS
    'network_scan: addresses of the last run''s sweep that never answered; NULL before any run.';
COMMENT ON COLUMN cap_source_health.last_run_closed IS
    'network_scan: addresses of the last run''s sweep that refused the connect; NULL before any run.';
COMMENT ON COLUMN cap_source_health.last_run_no_route IS
    'network_scan: addresses of the last run''s sweep without a route; NULL before any run.';

-- Views run with their owner's rights, but the functions they call are checked against the
-- reader: the dashboard role may call this one.
GRANT EXECUTE ON FUNCTION cap_run_stat(jsonb, text) TO cap_dashboard;
