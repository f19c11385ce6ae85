-- One reader per CT log for every source (issue 15). Entries of a log are downloaded once and
-- matched against the suffixes of every enabled ct_log source whose checkpoint stands at the
-- shared frontier; the run that reads for them holds the log's reader lease, fenced by its
-- generation. A source behind the frontier (new with a backfill, re-enabled) reads its own
-- range until it reaches the frontier and joins. Requests to a log are paced fleet-wide by
-- ct.max_requests_per_second through ct_log_rate.

CREATE TABLE ct_log_readers (
    reader_key text PRIMARY KEY,
    log_url text NOT NULL,
    next_index bigint NOT NULL CHECK (next_index >= 0),
    holder_run_id bigint,
    holder_source_id bigint,
    generation bigint NOT NULL DEFAULT 0,
    heartbeat_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ct_log_readers IS
    'The shared reader of each CT log: how far it has read for the sources that follow it, and '
    'which run holds it (one at a time across the fleet).';
COMMENT ON COLUMN ct_log_readers.reader_key IS
    'SHA-256 of the verifying key (or "unverified") and log URL: sources read one log together '
    'only when they verify it the same way.';
COMMENT ON COLUMN ct_log_readers.log_url IS 'The log, as in ct_checkpoints.log_url.';
COMMENT ON COLUMN ct_log_readers.next_index IS
    'The shared frontier: the sources whose ct_checkpoints.next_index equals it are read for '
    'together; it moves with their checkpoints in one transaction.';
COMMENT ON COLUMN ct_log_readers.holder_run_id IS
    'The run reading for them now (no foreign key: the lease outlives pruned runs); NULL when '
    'none.';
COMMENT ON COLUMN ct_log_readers.holder_source_id IS 'The source of that run; NULL when none.';
COMMENT ON COLUMN ct_log_readers.generation IS
    'Fencing token: raised by every take-over; a holder whose generation is no longer current '
    'has its writes refused.';
COMMENT ON COLUMN ct_log_readers.heartbeat_at IS
    'Last sign of life of the holder; a lease older than worker.reclaim_idle is taken over.';
COMMENT ON COLUMN ct_log_readers.updated_at IS 'When the frontier or the holder last changed.';

ALTER TABLE ct_checkpoints ADD COLUMN reader_key text;
COMMENT ON COLUMN ct_checkpoints.reader_key IS
    'The shared reader (ct_log_readers.reader_key) this checkpoint follows when it stands at '
    'its frontier; NULL until the source''s first run under this version.';
CREATE INDEX ct_checkpoints_reader ON ct_checkpoints (reader_key, next_index);

CREATE TABLE ct_log_rate (
    log_url text PRIMARY KEY,
    next_at timestamptz NOT NULL,
    requests bigint NOT NULL DEFAULT 0,
    rate_limited bigint NOT NULL DEFAULT 0,
    last_rate_limited_at timestamptz
);
COMMENT ON TABLE ct_log_rate IS
    'Fleet-wide pacing of the requests made to each CT log (ct.max_requests_per_second).';
COMMENT ON COLUMN ct_log_rate.log_url IS 'The log (its base URL as a source names it).';
COMMENT ON COLUMN ct_log_rate.next_at IS
    'The earliest time the next request may start; every request reserves one interval.';
COMMENT ON COLUMN ct_log_rate.requests IS 'Requests made to the log since the row was made.';
COMMENT ON COLUMN ct_log_rate.rate_limited IS
    'Answers 429 or 503 (the log asked us to slow down) since the row was made.';
COMMENT ON COLUMN ct_log_rate.last_rate_limited_at IS 'When the log last answered 429 or 503.';
