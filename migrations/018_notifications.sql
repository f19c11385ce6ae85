-- Webhook notifications (notify.webhooks). A transactional outbox: triggers on findings and
-- discovery_runs write one notify_events row per state change worth telling, in the
-- transaction that made the change, whoever wrote it (a worker, capctl, any other tool). The
-- scheduler turns events into notify_deliveries (one message per webhook, source and run: a
-- digest when there are several events) and publishes each as a notify_deliver job on the
-- worker stream; a worker claims it (attempts is its fencing token), posts it and records the
-- outcome. Acknowledged and suppressed findings raise no events (migration 014 keeps them out
-- of status 'open').

CREATE TABLE notify_events (
    id bigserial PRIMARY KEY,
    event text NOT NULL
        CHECK (event IN ('opened', 'escalated', 'reopened', 'resolved', 'failed', 'dead')),
    kind text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low', 'info')),
    finding_id bigint REFERENCES findings(id) ON DELETE CASCADE,
    source_id bigint REFERENCES discovery_sources(id) ON DELETE CASCADE,
    run_id bigint,
    subject_key text,
    reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,
    CHECK ((finding_id IS NULL) = (event IN ('failed', 'dead')))
);
COMMENT ON TABLE notify_events IS
    'Outbox of state changes to notify: a finding opened, escalated, reopened or resolved, a run failed or dead. Written by triggers; turned into notify_deliveries by the scheduler; pruned after retention.notifications.';
COMMENT ON COLUMN notify_events.id IS 'Event id (part of every idempotency key).';
COMMENT ON COLUMN notify_events.event IS
    'opened, escalated (severity rose), reopened (an acknowledgement or suppression ended), resolved; failed or dead for runs.';
COMMENT ON COLUMN notify_events.kind IS 'Finding kind, or run_failed / run_dead for a run event.';
COMMENT ON COLUMN notify_events.severity IS 'Severity at the change (run events: high).';
COMMENT ON COLUMN notify_events.finding_id IS 'The finding; NULL for run events.';
COMMENT ON COLUMN notify_events.source_id IS 'Source of the finding or run.';
COMMENT ON COLUMN notify_events.run_id IS
    'Run that raised the finding or that ended; kept after retention deletes the run (no foreign key).';
COMMENT ON COLUMN notify_events.subject_key IS 'The finding''s subject_key (run:ID for run events).';
COMMENT ON COLUMN notify_events.reason IS 'Why it reopened (findings.reopen_reason), or the run''s error.';
COMMENT ON COLUMN notify_events.created_at IS 'When the change was committed.';
COMMENT ON COLUMN notify_events.dispatched_at IS
    'When the scheduler turned it into deliveries (or found no webhook that wants it); NULL: not yet.';
CREATE INDEX notify_events_pending ON notify_events (id) WHERE dispatched_at IS NULL;
CREATE INDEX notify_events_dispatched ON notify_events (dispatched_at) WHERE dispatched_at IS NOT NULL;
CREATE INDEX notify_events_pending_run ON notify_events (run_id, created_at) WHERE dispatched_at IS NULL;

CREATE TABLE notify_deliveries (
    id bigserial PRIMARY KEY,
    webhook text NOT NULL,
    idempotency_key text NOT NULL,
    digest boolean NOT NULL DEFAULT false,
    event_ids bigint[] NOT NULL,
    source_id bigint,
    run_id bigint,
    body text NOT NULL,
    content_type text NOT NULL DEFAULT 'application/json',
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    stream_id text,
    published_at timestamptz,
    heartbeat_at timestamptz,
    worker text,
    http_status integer,
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    UNIQUE (webhook, idempotency_key)
);
COMMENT ON TABLE notify_deliveries IS
    'One webhook message and its delivery: a notify_deliver job on the worker stream, claimed, fenced by attempts, retried with backoff, dead after worker.max_attempts.';
COMMENT ON COLUMN notify_deliveries.id IS 'Delivery id (the job message carries it).';
COMMENT ON COLUMN notify_deliveries.webhook IS 'Name of the webhook (notify.webhooks[].name).';
COMMENT ON COLUMN notify_deliveries.idempotency_key IS
    'Sent in the body and as the Idempotency-Key header, the same on every attempt: cap:f<finding>:<event>:e<event id> for one finding, cap:r<run>:<status>:e<event id> for a run, cap:digest:s<source>:r<run>:e<first>-<last>:n<count> for a digest.';
COMMENT ON COLUMN notify_deliveries.digest IS 'True when the message carries several events.';
COMMENT ON COLUMN notify_deliveries.event_ids IS 'The notify_events it carries.';
COMMENT ON COLUMN notify_deliveries.source_id IS 'Source of its events (no foreign key: the message outlives it).';
COMMENT ON COLUMN notify_deliveries.run_id IS 'Run of its events, when they have one.';
COMMENT ON COLUMN notify_deliveries.body IS 'The message, exactly as posted (json or slack format).';
COMMENT ON COLUMN notify_deliveries.content_type IS 'Content-Type of the body.';
COMMENT ON COLUMN notify_deliveries.status IS
    'queued (waiting for next_attempt_at and a worker), sending (claimed), delivered (2xx), dead (4xx other than 429, refused by the network policy, or out of attempts).';
COMMENT ON COLUMN notify_deliveries.attempts IS 'Claims so far; the fencing token of the current one.';
COMMENT ON COLUMN notify_deliveries.next_attempt_at IS 'Not published before this (backoff, Retry-After).';
COMMENT ON COLUMN notify_deliveries.stream_id IS 'Stream entry of the current job message; NULL: to be published.';
COMMENT ON COLUMN notify_deliveries.published_at IS 'When the job message was added to the stream.';
COMMENT ON COLUMN notify_deliveries.heartbeat_at IS 'When the worker sending it claimed it.';
COMMENT ON COLUMN notify_deliveries.worker IS 'Worker (consumer name) of the last claim.';
COMMENT ON COLUMN notify_deliveries.http_status IS 'HTTP status of the last answer; NULL when none came.';
COMMENT ON COLUMN notify_deliveries.error IS 'What went wrong with the last attempt.';
COMMENT ON COLUMN notify_deliveries.created_at IS 'When the scheduler built the message.';
COMMENT ON COLUMN notify_deliveries.finished_at IS 'When it was delivered or given up.';
CREATE INDEX notify_deliveries_to_publish ON notify_deliveries (next_attempt_at)
    WHERE status = 'queued';
CREATE INDEX notify_deliveries_sending ON notify_deliveries (heartbeat_at) WHERE status = 'sending';
CREATE INDEX notify_deliveries_finished ON notify_deliveries (finished_at)
    WHERE status IN ('delivered', 'dead');

-- A finding's change worth telling. Acknowledging, suppressing and refreshing tell nothing; a
-- drift closed as an expected change (resolved_by set) was acknowledged, not resolved by a run.
CREATE FUNCTION cap_notify_finding() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ev text;
    run bigint := NEW.run_id;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status = 'open' THEN
            ev := 'opened';
        END IF;
    ELSIF NEW.status = 'open' AND OLD.status = 'open' THEN
        IF cap_severity_rank(NEW.severity) < cap_severity_rank(OLD.severity) THEN
            ev := 'escalated';
        END IF;
    ELSIF NEW.status = 'open' THEN
        ev := CASE WHEN NEW.reopen_reason = 'escalated' AND OLD.status <> 'resolved'
                   THEN 'escalated' ELSE 'reopened' END;
    ELSIF NEW.status = 'resolved' AND OLD.status = 'open' AND NEW.resolved_by IS NULL THEN
        ev := 'resolved';
    END IF;
    IF ev = 'resolved' THEN
        -- A run resolves what it no longer sees without stamping the row: the source's run in
        -- progress is the one that resolved it, so its digest carries the resolution too.
        run := coalesce((SELECT r.id FROM discovery_runs r WHERE r.source_id = NEW.source_id
                         AND r.status = 'running' LIMIT 1), NEW.run_id);
    END IF;
    IF ev IS NOT NULL THEN
        INSERT INTO notify_events (event, kind, severity, finding_id, source_id, run_id,
                                   subject_key, reason)
        VALUES (ev, NEW.kind, NEW.severity, NEW.id, NEW.source_id, run, NEW.subject_key,
                CASE WHEN ev = 'reopened' THEN NEW.reopen_reason END);
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION cap_notify_finding() IS
    'Trigger: writes a notify_events row when a finding opens, escalates, reopens or is resolved by a run.';
CREATE TRIGGER findings_notify_insert AFTER INSERT ON findings
    FOR EACH ROW WHEN (NEW.status = 'open') EXECUTE FUNCTION cap_notify_finding();
-- Refreshes (the bulk of updates) change neither status nor severity and skip the function.
CREATE TRIGGER findings_notify_update AFTER UPDATE ON findings
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       OR OLD.severity IS DISTINCT FROM NEW.severity)
    EXECUTE FUNCTION cap_notify_finding();

CREATE FUNCTION cap_notify_run() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notify_events (event, kind, severity, source_id, run_id, subject_key, reason)
    VALUES (NEW.status, 'run_' || NEW.status, 'high', NEW.source_id, NEW.id, 'run:' || NEW.id,
            left(NEW.error, 1024));
    RETURN NULL;
END $$;
COMMENT ON FUNCTION cap_notify_run() IS
    'Trigger: writes a notify_events row when a run ends failed or dead.';
CREATE TRIGGER discovery_runs_notify_insert AFTER INSERT ON discovery_runs
    FOR EACH ROW WHEN (NEW.status IN ('failed', 'dead'))
    EXECUTE FUNCTION cap_notify_run();
CREATE TRIGGER discovery_runs_notify_update AFTER UPDATE OF status ON discovery_runs
    FOR EACH ROW WHEN (NEW.status IN ('failed', 'dead') AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION cap_notify_run();

-- ---- dashboards ----

CREATE VIEW cap_notify_deliveries AS
SELECT d.id AS delivery_id,
       d.webhook,
       d.status,
       d.digest,
       cardinality(d.event_ids) AS events,
       d.source_id,
       s.name AS source_name,
       d.run_id,
       d.attempts,
       d.http_status,
       d.error,
       d.created_at,
       d.finished_at,
       extract(epoch FROM coalesce(d.finished_at, now()) - d.created_at) AS seconds_to_finish
FROM notify_deliveries d
LEFT JOIN discovery_sources s ON s.id = d.source_id;
COMMENT ON VIEW cap_notify_deliveries IS
    'Webhook messages and how their delivery went (the bodies left out), for panels on notification health.';
COMMENT ON COLUMN cap_notify_deliveries.events IS 'Events the message carries (several: a digest).';
COMMENT ON COLUMN cap_notify_deliveries.source_name IS 'Source of its events, while it exists.';
COMMENT ON COLUMN cap_notify_deliveries.seconds_to_finish IS
    'From the message being built to delivered or given up (so far, while queued or sending).';
GRANT SELECT ON cap_notify_deliveries TO cap_dashboard;
