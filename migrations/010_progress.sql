-- Run progress in counters every source type shares (items total, done, ok, failed), with what
-- is particular to a type in stats. The worker writes them with one statement (worker/run.c,
-- cap_run_progress), which also keeps the older columns (targets_*, ok_count,
-- unreachable_count) as dashboards and capctl read them. Runs from before are filled from those.

ALTER TABLE discovery_runs
    ADD COLUMN items_total bigint NOT NULL DEFAULT 0,
    ADD COLUMN items_done bigint NOT NULL DEFAULT 0,
    ADD COLUMN items_ok bigint NOT NULL DEFAULT 0,
    ADD COLUMN items_failed bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN discovery_runs.items_total IS
    'Items the run is to process: network_scan targets (address x port, host name x port, '
    'less what the network policy refused), ct_log entries to read from its logs.';
COMMENT ON COLUMN discovery_runs.items_done IS
    'Items processed so far: network_scan endpoints observed plus sweep addresses that never '
    'answered (stats silent, closed, no_route); ct_log entries read.';
COMMENT ON COLUMN discovery_runs.items_ok IS
    'Items processed with a result: network_scan endpoints that completed a handshake; ct_log '
    'entries read and stored or passed over.';
COMMENT ON COLUMN discovery_runs.items_failed IS
    'Items that failed: network_scan endpoints refused, timed out or failing TLS; ct_log '
    'entries that matched but whose certificate could not be read.';
COMMENT ON COLUMN discovery_runs.stats IS
    'Further per-run counters, by source type. network_scan: silent, closed, no_route (sweep '
    'addresses that never answered), unreachable (endpoints refused or timed out), tls_error. '
    'ct_log: matches (entries whose names match the source''s domains).';
COMMENT ON COLUMN discovery_runs.targets_total IS
    'Targets (endpoints, or CT entries) to process. Kept for dashboards: items_total.';
COMMENT ON COLUMN discovery_runs.targets_done IS
    'Targets processed so far. Kept for dashboards: items_done.';
COMMENT ON COLUMN discovery_runs.ok_count IS
    'Endpoints that completed a handshake (or CT entries matched). Kept for dashboards: '
    'items_ok, or stats matches for a ct_log run.';
COMMENT ON COLUMN discovery_runs.unreachable_count IS
    'Endpoints refused or timed out. Kept for dashboards: stats unreachable.';

-- Runs from before: a ct_log run kept its entries in targets_* and its matches in ok_count;
-- a network_scan run its endpoints that answered in ok_count and the refused or timed-out
-- ones in unreachable_count (its TLS failures are counted from its observations, when kept).
UPDATE discovery_runs r
SET items_total = r.targets_total,
    items_done = r.targets_done,
    items_ok = CASE WHEN s.type = 'ct_log' THEN r.targets_done ELSE r.ok_count END,
    items_failed = CASE WHEN s.type = 'ct_log' THEN 0
                        ELSE greatest(r.unreachable_count,
                                      (SELECT count(*) FROM endpoint_observations o
                                       WHERE o.run_id = r.id AND o.outcome <> 'ok')) END,
    stats = CASE WHEN r.started_at IS NULL THEN r.stats
                 WHEN s.type = 'ct_log' THEN jsonb_build_object('matches', r.ok_count) || r.stats
                 ELSE jsonb_build_object('unreachable', r.unreachable_count) || r.stats END
FROM discovery_sources s
WHERE s.id = r.source_id;
