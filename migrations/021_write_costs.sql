-- What a re-scan costs PostgreSQL, in the schema.
--
-- One index fewer on endpoint_observations, the table every scan writes a row per endpoint to.
-- The uniqueness of (endpoint_id, run_id) and the run's observations were two indexes,
-- (endpoint_id, run_id) and (run_id). One unique index on (run_id, endpoint_id) serves both:
-- the writer's ON CONFLICT (endpoint_id, run_id) infers it (column order does not matter), and
-- every read by run leads with run_id. Reads by endpoint go through endpoint_observations_endpoint
-- and endpoint_observations_endpoint_ok, as they did. Each observation written now costs one
-- index entry less.

CREATE UNIQUE INDEX endpoint_observations_run_endpoint
    ON endpoint_observations (run_id, endpoint_id);
ALTER TABLE endpoint_observations DROP CONSTRAINT endpoint_observations_endpoint_id_run_id_key;
ALTER TABLE endpoint_observations
    ADD CONSTRAINT endpoint_observations_run_id_endpoint_id_key
    UNIQUE USING INDEX endpoint_observations_run_endpoint;
DROP INDEX endpoint_observations_run;

-- The ids a run's batches confirmed live until the run resolves its findings, then go. A row of
-- a few hundred ids (a few kB) was compressed on every insert, for nothing: rows up to a page
-- are now stored as they are.
ALTER TABLE run_confirmed_findings SET (toast_tuple_target = 8160);

-- The chain index takes each observation's fingerprints into a pending list, merged into the
-- index in bulk when the list reaches 1 MB (or by vacuum), instead of one index insertion per
-- fingerprint per row. Migration 002 chose no pending list because the writer then looked up
-- chains as often as it inserted; it no longer does (findings are confirmed by row version, and
-- a run's own observations are found through its run_id), and a lookup pays at most a scan of
-- 1 MB of pending entries.
ALTER INDEX endpoint_observations_chain SET (fastupdate = on, gin_pending_list_limit = 1024);
