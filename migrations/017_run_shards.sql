-- Shards: a network_scan run with more targets than scan.shard_targets is split into contiguous
-- slices of its target sequence (the order cap_targets_next produces: the CIDRs, each address
-- with every port, then the host names), each a job of its own on the stream. A shard is
-- claimed, fenced by its own attempts, heartbeated, reclaimed and dead-lettered like a run; the
-- run keeps status running while its shards go, and ends when the last of them ends (trigger
-- below), whoever ended it (a worker, the scheduler's sweep of stale heartbeats, a worker
-- burying a shard out of attempts).

ALTER TABLE discovery_runs ADD COLUMN shards integer NOT NULL DEFAULT 0 CHECK (shards >= 0);
COMMENT ON COLUMN discovery_runs.shards IS
    'Number of shards the run was split into (discovery_run_shards); 0: the run is one job. '
    'While a sharded run is running its counts are the sums of its shards''.';

CREATE TABLE discovery_run_shards (
    run_id bigint NOT NULL REFERENCES discovery_runs(id) ON DELETE CASCADE,
    shard integer NOT NULL CHECK (shard >= 1),
    first_target bigint NOT NULL CHECK (first_target >= 0),
    end_target bigint NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'dead')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    heartbeat_at timestamptz,
    stream_id text,
    worker text,
    error text,
    items_total bigint NOT NULL DEFAULT 0,
    items_done bigint NOT NULL DEFAULT 0,
    items_ok bigint NOT NULL DEFAULT 0,
    items_failed bigint NOT NULL DEFAULT 0,
    stats jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (run_id, shard),
    CHECK (end_target > first_target)
);
COMMENT ON TABLE discovery_run_shards IS
    'Slices of a large network_scan run, each run as a job of its own by any worker.';
COMMENT ON COLUMN discovery_run_shards.run_id IS 'The run this shard belongs to.';
COMMENT ON COLUMN discovery_run_shards.shard IS 'Shard number within the run, from 1.';
COMMENT ON COLUMN discovery_run_shards.first_target IS
    'Index of the first target of the slice in the run''s target sequence (from 0).';
COMMENT ON COLUMN discovery_run_shards.end_target IS
    'Index one past the last target of the slice.';
COMMENT ON COLUMN discovery_run_shards.status IS
    'queued, running, succeeded, partial, failed or dead, as for a run.';
COMMENT ON COLUMN discovery_run_shards.attempts IS
    'Number of claims; the fencing token every write of the shard carries.';
COMMENT ON COLUMN discovery_run_shards.queued_at IS 'When the shard was created.';
COMMENT ON COLUMN discovery_run_shards.published_at IS
    'When the shard''s job was last added to the Redis stream.';
COMMENT ON COLUMN discovery_run_shards.started_at IS 'When a worker last claimed the shard.';
COMMENT ON COLUMN discovery_run_shards.finished_at IS 'When the shard reached a final status.';
COMMENT ON COLUMN discovery_run_shards.heartbeat_at IS
    'Last sign of life from the worker running the shard.';
COMMENT ON COLUMN discovery_run_shards.stream_id IS
    'Redis stream entry id of the shard''s last publication.';
COMMENT ON COLUMN discovery_run_shards.worker IS
    'Consumer name of the worker that last claimed the shard.';
COMMENT ON COLUMN discovery_run_shards.error IS
    'Why the shard failed or died, or what went partly wrong.';
COMMENT ON COLUMN discovery_run_shards.items_total IS
    'Targets of the slice, less what the network policy refused.';
COMMENT ON COLUMN discovery_run_shards.items_done IS
    'Targets of the slice processed by its current attempt.';
COMMENT ON COLUMN discovery_run_shards.items_ok IS
    'Endpoints of the slice that completed a handshake.';
COMMENT ON COLUMN discovery_run_shards.items_failed IS
    'Endpoints of the slice refused, timed out or failing TLS.';
COMMENT ON COLUMN discovery_run_shards.stats IS
    'The slice''s counters by name, as discovery_runs.stats (summed into the run).';

CREATE INDEX discovery_run_shards_unpublished ON discovery_run_shards (run_id, shard)
    WHERE status = 'queued' AND stream_id IS NULL;
CREATE INDEX discovery_run_shards_queued ON discovery_run_shards (published_at)
    WHERE status = 'queued';
CREATE INDEX discovery_run_shards_running ON discovery_run_shards (heartbeat_at)
    WHERE status = 'running';

-- A sharded run is never stale itself (its shards are): the index the sweep walks leaves it out.
DROP INDEX discovery_runs_running;
CREATE INDEX discovery_runs_running ON discovery_runs (heartbeat_at)
    WHERE status = 'running' AND shards = 0;

-- Wake the schedulers when a shard is queued, as for runs, and when one is claimed: shards of
-- a run are published one at a time (scheduler/sched.c), the next once the last is taken.
CREATE FUNCTION cap_run_shards_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cap_scheduler', 'run ' || NEW.run_id || ' shard ' || NEW.shard);
    RETURN NULL;
END $$;
CREATE TRIGGER discovery_run_shards_notify AFTER INSERT OR UPDATE OF status
    ON discovery_run_shards
    FOR EACH ROW WHEN (NEW.status = 'queued' AND NEW.stream_id IS NULL)
    EXECUTE FUNCTION cap_run_shards_notify();
CREATE TRIGGER discovery_run_shards_claimed AFTER UPDATE OF status ON discovery_run_shards
    FOR EACH ROW WHEN (NEW.status = 'running' AND OLD.status = 'queued')
    EXECUTE FUNCTION cap_run_shards_notify();

-- The sums of a run's shards, for the run's own columns.
CREATE FUNCTION cap_run_shard_sums(run bigint)
RETURNS TABLE (items_total bigint, items_done bigint, items_ok bigint, items_failed bigint,
               stats jsonb)
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(sh.items_total), 0)::bigint, coalesce(sum(sh.items_done), 0)::bigint,
           coalesce(sum(sh.items_ok), 0)::bigint, coalesce(sum(sh.items_failed), 0)::bigint,
           coalesce((SELECT jsonb_object_agg(k, v) FROM (
                        SELECT e.key AS k, sum(e.value::text::numeric)::bigint AS v
                        FROM discovery_run_shards x, jsonb_each(x.stats) e
                        WHERE x.run_id = run AND jsonb_typeof(e.value) = 'number'
                        GROUP BY e.key) q), '{}'::jsonb)
    FROM discovery_run_shards sh WHERE sh.run_id = run
$$;
COMMENT ON FUNCTION cap_run_shard_sums(bigint) IS
    'Items and stats of a sharded run: the sums over its shards.';

-- Writes a run's counts from its shards. The new certificates and drift events are counted
-- where they are stored (the shards of a run write under the run's id).
CREATE FUNCTION cap_run_shards_rollup(run bigint) RETURNS void LANGUAGE sql AS $$
    UPDATE discovery_runs r SET
        items_total = s.items_total, items_done = s.items_done, items_ok = s.items_ok,
        items_failed = s.items_failed, stats = r.stats || s.stats,
        targets_total = s.items_total, targets_done = s.items_done, ok_count = s.items_ok,
        unreachable_count = cap_run_stat(r.stats || s.stats, 'unreachable'),
        new_certificates = (SELECT count(*) FROM discovered_certificates c
                            WHERE c.first_seen_run_id = run),
        drift_count = (SELECT count(*) FROM drift_events d WHERE d.run_id = run),
        heartbeat_at = now()
    FROM cap_run_shard_sums(run) s
    WHERE r.id = run
$$;
COMMENT ON FUNCTION cap_run_shards_rollup(bigint) IS
    'Sets a sharded run''s counts from its shards and its stored results.';

-- Progress of a shard shows on its run at once, without making shards wait for each other: a
-- run row another shard's transaction holds is skipped (that one writes the sums).
CREATE FUNCTION cap_run_shards_progress() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM discovery_runs WHERE id = NEW.run_id AND status = 'running'
               FOR UPDATE SKIP LOCKED) THEN
        UPDATE discovery_runs r SET
            items_total = s.items_total, items_done = s.items_done, items_ok = s.items_ok,
            items_failed = s.items_failed, stats = r.stats || s.stats,
            targets_total = s.items_total, targets_done = s.items_done, ok_count = s.items_ok,
            unreachable_count = cap_run_stat(r.stats || s.stats, 'unreachable'),
            heartbeat_at = now()
        FROM cap_run_shard_sums(NEW.run_id) s
        WHERE r.id = NEW.run_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER discovery_run_shards_progress AFTER UPDATE OF items_done, items_total
    ON discovery_run_shards
    FOR EACH ROW WHEN (NEW.status = 'running')
    EXECUTE FUNCTION cap_run_shards_progress();

-- One policy_block finding for a sharded run, as for a run of one job: each shard keeps what
-- the network policy refused in its stats (policy: refused_addresses, ranges, hosts), and the
-- run's finding sums them when the run ends.
CREATE FUNCTION cap_run_shards_policy_block(run bigint) RETURNS void LANGUAGE sql AS $$
    INSERT INTO findings AS f (kind, severity, subject_key, source_id, run_id, details)
    SELECT 'policy_block', k.severity, 'run:' || run, r.source_id, run,
           jsonb_build_object(
               'refused_addresses', d.n,
               'ranges', (SELECT coalesce(jsonb_agg(jsonb_build_object('reason', q.reason,
                                                                       'count', q.cnt)
                                                    ORDER BY q.reason), '[]'::jsonb)
                          FROM (SELECT x->>'reason' AS reason, sum((x->>'count')::bigint) AS cnt
                                FROM discovery_run_shards s2,
                                     jsonb_array_elements(s2.stats->'policy'->'ranges') x
                                WHERE s2.run_id = run GROUP BY 1) q),
               'hosts', (SELECT coalesce(jsonb_agg(DISTINCT h), '[]'::jsonb)
                         FROM discovery_run_shards s3,
                              jsonb_array_elements(s3.stats->'policy'->'hosts') h
                         WHERE s3.run_id = run),
               'reason', format('%s address%s refused by the network policy', d.n,
                                CASE WHEN d.n = 1 THEN '' ELSE 'es' END))
    FROM finding_kinds k, discovery_runs r,
         (SELECT sum((stats->'policy'->>'refused_addresses')::bigint) AS n
          FROM discovery_run_shards WHERE run_id = run AND stats ? 'policy') d
    WHERE k.kind = 'policy_block' AND r.id = run AND d.n > 0
    ON CONFLICT (kind, subject_key) WHERE status = 'open' DO UPDATE SET
        details = EXCLUDED.details, run_id = EXCLUDED.run_id, last_seen_at = now()
$$;
COMMENT ON FUNCTION cap_run_shards_policy_block(bigint) IS
    'Raises a sharded run''s policy_block finding from what its shards refused.';

-- The run ends with its last shard. Its status: succeeded when every shard succeeded; failed
-- (dead when every shard died) when none completed; partial otherwise, with the slices that
-- were not scanned named first in its error.
CREATE FUNCTION cap_run_shards_end() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n_all integer;
    n_open integer;
    n_ok integer;
    n_dead integer;
    n_bad integer;
    msg text;
BEGIN
    -- One shard ends at a time per run: the one that sees no other open shard ends the run.
    PERFORM 1 FROM discovery_runs WHERE id = NEW.run_id AND status = 'running' FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    SELECT count(*), count(*) FILTER (WHERE status IN ('queued', 'running')),
           count(*) FILTER (WHERE status = 'succeeded'),
           count(*) FILTER (WHERE status = 'dead'),
           count(*) FILTER (WHERE status IN ('failed', 'dead'))
    INTO n_all, n_open, n_ok, n_dead, n_bad
    FROM discovery_run_shards WHERE run_id = NEW.run_id;
    IF n_open > 0 THEN
        RETURN NULL;
    END IF;
    SELECT string_agg(m, '; ' ORDER BY o, shard) INTO msg FROM (
        SELECT 0 AS o, shard, format('targets %s-%s not scanned (shard %s %s: %s)',
               first_target, end_target - 1, shard, status, coalesce(error, 'no error recorded')) AS m
        FROM discovery_run_shards WHERE run_id = NEW.run_id AND status IN ('failed', 'dead')
        UNION ALL
        SELECT 1, shard, format('shard %s: %s', shard, error)
        FROM discovery_run_shards WHERE run_id = NEW.run_id AND status = 'partial'
            AND error IS NOT NULL) q;
    PERFORM cap_run_shards_rollup(NEW.run_id);
    PERFORM cap_run_shards_policy_block(NEW.run_id);
    UPDATE discovery_runs SET
        status = CASE WHEN n_ok = n_all THEN 'succeeded'
                      WHEN n_dead = n_all THEN 'dead'
                      WHEN n_bad = n_all THEN 'failed'
                      ELSE 'partial' END,
        finished_at = now(), heartbeat_at = now(),
        error = left(msg, 4000)
    WHERE id = NEW.run_id;
    RETURN NULL;
END $$;
CREATE TRIGGER discovery_run_shards_end AFTER UPDATE OF status ON discovery_run_shards
    FOR EACH ROW WHEN (NEW.status IN ('succeeded', 'partial', 'failed', 'dead')
                       AND OLD.status IN ('queued', 'running'))
    EXECUTE FUNCTION cap_run_shards_end();

-- The dashboard's run view: one row per shard, with the run it belongs to.
CREATE VIEW cap_run_shards AS
SELECT sh.run_id,
       r.source_id,
       s.name AS source_name,
       sh.shard,
       sh.first_target,
       sh.end_target,
       sh.status,
       sh.attempts,
       sh.worker,
       sh.started_at,
       sh.finished_at,
       sh.heartbeat_at,
       sh.items_total AS targets_total,
       sh.items_done AS targets_done,
       sh.items_ok AS ok_count,
       sh.error
FROM discovery_run_shards sh
JOIN discovery_runs r ON r.id = sh.run_id
JOIN discovery_sources s ON s.id = r.source_id;
COMMENT ON VIEW cap_run_shards IS
    'The shards of sharded network_scan runs: slice, worker, status, attempts, progress.';
COMMENT ON COLUMN cap_run_shards.run_id IS 'The run the shard belongs to.';
COMMENT ON COLUMN cap_run_shards.source_id IS 'The run''s source.';
COMMENT ON COLUMN cap_run_shards.source_name IS 'The run''s source name.';
COMMENT ON COLUMN cap_run_shards.shard IS 'Shard number within the run, from 1.';
COMMENT ON COLUMN cap_run_shards.first_target IS 'First target index of the slice.';
COMMENT ON COLUMN cap_run_shards.end_target IS 'One past the last target index of the slice.';
COMMENT ON COLUMN cap_run_shards.status IS 'queued, running, succeeded, partial, failed or dead.';
COMMENT ON COLUMN cap_run_shards.attempts IS 'Claims of the shard so far.';
COMMENT ON COLUMN cap_run_shards.worker IS 'The worker that last claimed it.';
COMMENT ON COLUMN cap_run_shards.started_at IS 'When it was last claimed.';
COMMENT ON COLUMN cap_run_shards.finished_at IS 'When it ended.';
COMMENT ON COLUMN cap_run_shards.heartbeat_at IS 'Last sign of life of its worker.';
COMMENT ON COLUMN cap_run_shards.targets_total IS 'Targets of the slice.';
COMMENT ON COLUMN cap_run_shards.targets_done IS 'Targets of the slice processed.';
COMMENT ON COLUMN cap_run_shards.ok_count IS 'Endpoints of the slice that completed a handshake.';
COMMENT ON COLUMN cap_run_shards.error IS 'What went wrong, if anything.';
GRANT SELECT ON cap_run_shards TO cap_dashboard;

