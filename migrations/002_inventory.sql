-- Inventory writer additions: which run first saw a certificate (so a run's new-certificate
-- count is exact and idempotent across retried attempts), and indexes the writer's statements
-- rely on.

ALTER TABLE discovered_certificates
    ADD COLUMN first_seen_run_id bigint REFERENCES discovery_runs(id) ON DELETE SET NULL;
COMMENT ON COLUMN discovered_certificates.first_seen_run_id IS
    'Run that first stored the certificate (NULL when that run was deleted).';
CREATE INDEX discovered_certificates_first_run ON discovered_certificates (first_seen_run_id)
    WHERE first_seen_run_id IS NOT NULL;

-- Drift looks up an endpoint's last ok observation of an earlier run.
CREATE INDEX endpoint_observations_endpoint_ok ON endpoint_observations (endpoint_id, run_id DESC)
    WHERE outcome = 'ok';

-- Certificate findings look up the observations whose chain holds a certificate. No pending
-- list: every lookup would scan it, and the writer looks up as often as it inserts.
CREATE INDEX endpoint_observations_chain ON endpoint_observations USING gin (chain)
    WITH (fastupdate = off);

-- Findings are resolved per source and run.
CREATE INDEX findings_open_source_run ON findings (source_id, run_id) WHERE status = 'open';
