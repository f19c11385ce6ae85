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
