-- Retention (retention.observations, retention.runs): the indexes the scheduler's pruning walks
-- (scheduler/sched.c), so that each small batch reads only its own rows. On a large inventory
-- these take a write lock on their table while they are built, once.

-- Observations oldest first; (observed_at, id) is the pass's cursor.
CREATE INDEX endpoint_observations_observed ON endpoint_observations (observed_at, id);

-- Finished runs by when they ended; the pruning never looks at a queued or running run.
CREATE INDEX discovery_runs_finished ON discovery_runs ((coalesce(finished_at, queued_at)), id)
    WHERE status IN ('succeeded', 'partial', 'failed', 'dead');

-- "Does a drift event or a finding still name this run?", asked before a run is deleted; the
-- foreign keys' own checks on delete use them too.
CREATE INDEX drift_events_run ON drift_events (run_id);
CREATE INDEX findings_run ON findings (run_id) WHERE run_id IS NOT NULL;

COMMENT ON COLUMN findings.run_id IS
    'Run that last raised or refreshed it (NULL for a resolved finding whose run retention.runs pruned).';
COMMENT ON COLUMN discovered_certificates.first_seen_run_id IS
    'Run that first stored the certificate (NULL when that run was deleted, e.g. by retention.runs).';
COMMENT ON TABLE endpoint_observations IS
    'What an endpoint presented in one run. Rows older than retention.observations are pruned, '
    'but never the newest (nor newest ok) one of an endpoint or one a drift event or an '
    'unresolved finding names.';
