-- The finding workflow: people acknowledge findings (capctl findings ack, or any tool that
-- updates the row) and suppress them by rule (finding_suppressions). An acknowledged or
-- suppressed finding keeps its row, with who, when, why and until when; it is not open, so
-- the views that count status = 'open' leave it out. It opens again when its
-- acknowledgement or rule expires (cap_findings_expire, or the next refresh of the row),
-- when its severity rises, when it is unacknowledged or when its rule is removed. The
-- database enforces all of it, whoever writes: the triggers below validate and complete
-- every row, so capctl only issues plain UPDATEs and INSERTs.

-- The catalogue of kinds (worker/findings.c, docs/findings.md), for the rows people write.
CREATE TABLE finding_kinds (
    kind text PRIMARY KEY,
    severity text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low', 'info')),
    subject text NOT NULL CHECK (subject IN ('certificate', 'endpoint', 'run', 'source', 'name'))
);
COMMENT ON TABLE finding_kinds IS
    'The kinds of findings a worker raises (the catalogue of worker/findings.c); a new kind adds its row in a migration.';
COMMENT ON COLUMN finding_kinds.kind IS 'Kind, as stored in findings.kind.';
COMMENT ON COLUMN finding_kinds.severity IS 'Severity the catalogue gives the kind.';
COMMENT ON COLUMN finding_kinds.subject IS 'What a finding of the kind is about: certificate, endpoint, run, source or name.';
INSERT INTO finding_kinds (kind, severity, subject) VALUES
    ('expired', 'critical', 'certificate'),
    ('revoked', 'critical', 'certificate'),
    ('self_signed', 'high', 'certificate'),
    ('weak_signature', 'high', 'certificate'),
    ('weak_key', 'high', 'certificate'),
    ('deprecated_tls', 'high', 'endpoint'),
    ('weak_cipher', 'high', 'endpoint'),
    ('expiring', 'medium', 'certificate'),
    ('name_mismatch', 'medium', 'endpoint'),
    ('untrusted', 'medium', 'endpoint'),
    ('drift', 'medium', 'endpoint'),
    ('policy_block', 'medium', 'run'),
    ('unreachable', 'low', 'endpoint'),
    ('unresolvable', 'low', 'name'),
    ('tls_error', 'low', 'endpoint'),
    ('san_case_duplicate', 'low', 'certificate'),
    ('pqc_vulnerable', 'info', 'certificate'),
    ('ct_new_certificate', 'info', 'certificate'),
    ('ct_unexpected_issuer', 'high', 'certificate'),
    ('ct_log_misbehaving', 'high', 'source');

-- 1 = critical ... 5 = info (as cap_open_findings.severity_rank).
CREATE FUNCTION cap_severity_rank(severity text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE severity WHEN 'critical' THEN 1 WHEN 'high' THEN 2 WHEN 'medium' THEN 3
                         WHEN 'low' THEN 4 ELSE 5 END
$$;
COMMENT ON FUNCTION cap_severity_rank(text) IS
    'Rank of a severity: 1 critical, 2 high, 3 medium, 4 low, 5 info.';

-- A piece of text people write (a reason, a name): NULL when it is acceptable, else why not.
CREATE FUNCTION cap_text_problem(v text, max_bytes integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN v IS NULL OR btrim(v) = '' THEN 'must not be empty'
        WHEN octet_length(v) > max_bytes THEN format('is longer than %s bytes', max_bytes)
        WHEN v ~ '[\x01-\x1f\x7f]' THEN 'must not contain control characters'
    END
$$;
COMMENT ON FUNCTION cap_text_problem(text, integer) IS
    'NULL when v is 1..max_bytes bytes, not blank and without control characters; else the problem.';

-- Subject patterns: letters, digits, ".", "-", "_", ":", "[", "]" and "*" (any run of
-- characters); at least one character other than "*".
CREATE FUNCTION cap_subject_pattern_problem(p text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE
        WHEN p = '' THEN 'must not be empty'
        WHEN octet_length(p) > 256 THEN 'is longer than 256 bytes'
        WHEN p !~ '^[A-Za-z0-9.:_*\[\]-]+$'
            THEN 'may hold only letters, digits, ".", "-", "_", ":", "[", "]" and "*"'
        WHEN p !~ '[^*]' THEN 'matches every subject; leave the subject out instead'
    END
$$;
COMMENT ON FUNCTION cap_subject_pattern_problem(text) IS
    'NULL when p is a valid suppression subject pattern; else the problem.';

-- The pattern as a LIKE pattern: "*" is "%", "_" is literal (no "%" or "\" can occur).
CREATE FUNCTION cap_subject_like(p text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT lower(replace(replace(p, '_', '\_'), '*', '%'))
$$;
COMMENT ON FUNCTION cap_subject_like(text) IS
    'A suppression subject pattern as a lower-case LIKE pattern ("*" becomes "%").';

CREATE TABLE finding_suppressions (
    id bigserial PRIMARY KEY,
    kind text NOT NULL REFERENCES finding_kinds(kind),
    source_id bigint REFERENCES discovery_sources(id) ON DELETE CASCADE,
    subject_pattern text CHECK (cap_subject_pattern_problem(subject_pattern) IS NULL),
    reason text NOT NULL CHECK (cap_text_problem(reason, 1024) IS NULL),
    created_by text NOT NULL DEFAULT session_user CHECK (cap_text_problem(created_by, 128) IS NULL),
    created_db_user text NOT NULL DEFAULT session_user,
    created_at timestamptz NOT NULL DEFAULT now(),
    until timestamptz
);
COMMENT ON TABLE finding_suppressions IS
    'Suppression rules: open findings of the kind (and source, and subject pattern) become suppressed while the rule lasts.';
COMMENT ON COLUMN finding_suppressions.id IS 'Rule id.';
COMMENT ON COLUMN finding_suppressions.kind IS 'Kind of findings suppressed (finding_kinds).';
COMMENT ON COLUMN finding_suppressions.source_id IS 'Only findings of this source; NULL: every source.';
COMMENT ON COLUMN finding_suppressions.subject_pattern IS
    'Only findings whose subject matches, case-insensitively, "*" matching any run of characters: the subject_key, an endpoint''s HOST:PORT or ADDRESS:PORT, a certificate''s DNS names, a name finding''s host name. NULL: every subject.';
COMMENT ON COLUMN finding_suppressions.reason IS 'Why (required).';
COMMENT ON COLUMN finding_suppressions.created_by IS 'Who added the rule (capctl: --by or $USER; default the database user).';
COMMENT ON COLUMN finding_suppressions.created_db_user IS 'Database user that added the rule.';
COMMENT ON COLUMN finding_suppressions.created_at IS 'When it was added.';
COMMENT ON COLUMN finding_suppressions.until IS 'When it ends (its findings open again); NULL: never.';
CREATE INDEX finding_suppressions_kind ON finding_suppressions (kind);

ALTER TABLE findings DROP CONSTRAINT findings_status_check;
ALTER TABLE findings ADD CONSTRAINT findings_status_check
    CHECK (status IN ('open', 'acknowledged', 'suppressed', 'resolved'));
ALTER TABLE findings
    ADD COLUMN ack_by text,
    ADD COLUMN ack_db_user text,
    ADD COLUMN ack_at timestamptz,
    ADD COLUMN ack_reason text,
    ADD COLUMN ack_until timestamptz,
    ADD COLUMN suppression_id bigint REFERENCES finding_suppressions(id) ON DELETE SET NULL,
    ADD COLUMN reopened_at timestamptz,
    ADD COLUMN reopen_reason text
        CHECK (reopen_reason IN ('unacknowledged', 'expired', 'escalated', 'rule_removed')),
    ADD COLUMN resolved_by text,
    ADD CONSTRAINT findings_suppressed_rule CHECK (status <> 'suppressed' OR suppression_id IS NOT NULL),
    ADD CONSTRAINT findings_acknowledged_reason CHECK (status <> 'acknowledged' OR ack_reason IS NOT NULL);
COMMENT ON COLUMN findings.status IS
    'open while the cause lasts and nobody acknowledged or suppressed it; acknowledged; suppressed (by a rule); resolved.';
COMMENT ON COLUMN findings.ack_by IS
    'Who acknowledged it (capctl: --by, else $USER; default the database user); NULL unless acknowledged or closed by a person.';
COMMENT ON COLUMN findings.ack_db_user IS 'Database user that acknowledged it.';
COMMENT ON COLUMN findings.ack_at IS 'When it was acknowledged or suppressed.';
COMMENT ON COLUMN findings.ack_reason IS 'Why it was acknowledged (required).';
COMMENT ON COLUMN findings.ack_until IS 'When the acknowledgement ends and the finding opens again; NULL: never.';
COMMENT ON COLUMN findings.suppression_id IS 'Rule that suppresses it (who, why and until are the rule''s).';
COMMENT ON COLUMN findings.reopened_at IS 'When it last opened again after an acknowledgement or suppression.';
COMMENT ON COLUMN findings.reopen_reason IS
    'Why: unacknowledged, expired (the acknowledgement or rule ended), escalated (severity rose), rule_removed.';
COMMENT ON COLUMN findings.resolved_by IS
    'Who closed it (a drift acknowledged as an expected change); NULL when a run resolved it.';

-- One open, acknowledged or suppressed row per (kind, subject). The workers' upserts say
-- ON CONFLICT (kind, subject_key) WHERE status = 'open', which this index also answers, so
-- a run that sees an acknowledged finding again refreshes that row instead of opening a
-- second one.
DROP INDEX findings_open_one;
CREATE UNIQUE INDEX findings_active_one ON findings (kind, subject_key)
    WHERE status IN ('open', 'acknowledged', 'suppressed');
DROP INDEX findings_open_source_run;
CREATE INDEX findings_active_source_run ON findings (source_id, run_id)
    WHERE status IN ('open', 'acknowledged', 'suppressed');
CREATE INDEX findings_ack_until ON findings (ack_until)
    WHERE status = 'acknowledged' AND ack_until IS NOT NULL;
CREATE INDEX findings_suppression ON findings (suppression_id) WHERE suppression_id IS NOT NULL;

-- The texts a subject pattern is compared with (see finding_suppressions.subject_pattern).
-- PL/pgSQL rather than SQL: a trigger calls it for each row, and PL/pgSQL keeps its plans for
-- the session where an SQL function would be planned again at each call.
CREATE FUNCTION cap_finding_subjects(f findings) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    names text[];
BEGIN
    IF f.subject_key LIKE 'endpoint:%' THEN
        SELECT ARRAY[e.host || ':' || e.port,
                     CASE WHEN family(e.address) = 6 THEN '[' || host(e.address) || ']'
                          ELSE host(e.address) END || ':' || e.port]
        INTO names FROM endpoints e WHERE e.id = f.endpoint_id;
    ELSIF f.subject_key LIKE 'cert:%' THEN
        SELECT c.sans INTO names FROM discovered_certificates c
        WHERE c.fingerprint_sha256 = f.fingerprint_sha256;
    ELSIF f.subject_key LIKE 'name:%' THEN
        names := ARRAY[substr(f.subject_key, 6)];
    END IF;
    RETURN ARRAY[f.subject_key] || coalesce(names, '{}');
END $$;
COMMENT ON FUNCTION cap_finding_subjects(findings) IS
    'What a suppression subject pattern is compared with: the subject key and the names of the subject.';

-- True when rule r covers finding f (whether r is still active is not checked).
CREATE FUNCTION cap_suppression_matches(r finding_suppressions, f findings) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF r.kind <> f.kind OR (r.source_id IS NOT NULL AND r.source_id IS DISTINCT FROM f.source_id) THEN
        RETURN false;
    END IF;
    IF r.subject_pattern IS NULL THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM unnest(cap_finding_subjects(f)) AS s
                   WHERE lower(s) LIKE cap_subject_like(r.subject_pattern));
END $$;
COMMENT ON FUNCTION cap_suppression_matches(finding_suppressions, findings) IS
    'True when the rule''s kind, source and subject pattern cover the finding.';

-- Completes and checks every finding row written, by a worker, capctl or any other tool:
-- - staying acknowledged or suppressed (a run refreshing the row): it opens again when its
--   severity rose (escalated) or its acknowledgement or rule has ended (expired);
-- - acknowledged: a reason is required, until must be in the future; who (ack_by, default
--   the database user), the database user and when are recorded; a drift acknowledged is a
--   change that was expected: it is resolved, with the reason;
-- - suppressed: needs an active rule that covers it (who, why and until are the rule's);
-- - open again (unacknowledged, expired, rule removed): the acknowledgement's columns are
--   cleared, reopened_at and reopen_reason say when and why;
-- - open (new, or open again for any reason but escalation): the first active rule that
--   covers it suppresses it.
CREATE FUNCTION cap_findings_workflow() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r finding_suppressions;
    problem text;
    refresh boolean := false;
    why text;
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'resolved'
       AND NEW.status IN ('acknowledged', 'suppressed') THEN
        RAISE EXCEPTION 'finding %: it is resolved; only open, acknowledged or suppressed findings can be %',
            NEW.id, NEW.status USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = 'suppressed' THEN
        IF NEW.suppression_id IS NULL THEN
            RAISE EXCEPTION 'finding %: status suppressed needs suppression_id, the rule that suppresses it',
                NEW.id USING ERRCODE = 'check_violation';
        END IF;
        SELECT * INTO r FROM finding_suppressions WHERE id = NEW.suppression_id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'finding %: suppression rule % does not exist', NEW.id,
                NEW.suppression_id USING ERRCODE = 'foreign_key_violation';
        END IF;
    END IF;

    -- Staying acknowledged (no new acknowledgement) or suppressed by the same rule: a run
    -- refreshing the row, or another column changed.
    IF TG_OP = 'UPDATE' AND NEW.status = OLD.status THEN
        IF NEW.status = 'acknowledged' THEN
            refresh := (NEW.ack_reason, NEW.ack_until, NEW.ack_by, NEW.ack_at)
                       IS NOT DISTINCT FROM (OLD.ack_reason, OLD.ack_until, OLD.ack_by, OLD.ack_at);
        ELSIF NEW.status = 'suppressed' THEN
            refresh := NEW.suppression_id = OLD.suppression_id;
        END IF;
    END IF;
    IF refresh THEN
        IF cap_severity_rank(NEW.severity) < cap_severity_rank(OLD.severity) THEN
            why := 'escalated';
        ELSIF (NEW.status = 'acknowledged' AND NEW.ack_until <= now())
              OR (NEW.status = 'suppressed' AND r.until <= now()) THEN
            why := 'expired';
        ELSE
            RETURN NEW;
        END IF;
        NEW.status := 'open';
    END IF;

    IF NEW.status = 'acknowledged' THEN
        problem := cap_text_problem(NEW.ack_reason, 1024);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'finding %: ack_reason %', NEW.id, problem
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.ack_by := coalesce(NEW.ack_by, session_user);
        problem := cap_text_problem(NEW.ack_by, 128);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'finding %: ack_by %', NEW.id, problem
                USING ERRCODE = 'check_violation';
        END IF;
        IF NEW.ack_until <= now() THEN
            RAISE EXCEPTION 'finding %: ack_until % is not in the future', NEW.id, NEW.ack_until
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.ack_at := now();
        NEW.ack_db_user := session_user;
        NEW.suppression_id := NULL;
        IF NEW.kind = 'drift' THEN
            IF NEW.ack_until IS NOT NULL THEN
                RAISE EXCEPTION 'finding %: acknowledging a drift closes it as an expected change; ack_until does not apply',
                    NEW.id USING ERRCODE = 'check_violation';
            END IF;
            NEW.status := 'resolved';
            NEW.resolved_at := now();
            NEW.resolved_by := NEW.ack_by;
        END IF;
        RETURN NEW;
    END IF;

    IF NEW.status = 'suppressed' THEN
        IF r.until <= now() THEN
            RAISE EXCEPTION 'finding %: suppression rule % ended at %', NEW.id, r.id, r.until
                USING ERRCODE = 'check_violation';
        END IF;
        IF NOT cap_suppression_matches(r, NEW) THEN
            RAISE EXCEPTION 'finding %: suppression rule % does not cover it', NEW.id, r.id
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.ack_at := now();
        NEW.ack_by := NULL;
        NEW.ack_db_user := NULL;
        NEW.ack_reason := NULL;
        NEW.ack_until := NULL;
        RETURN NEW;
    END IF;

    IF NEW.status = 'open' AND (TG_OP = 'INSERT' OR OLD.status <> 'open') THEN
        IF TG_OP = 'UPDATE' AND OLD.status IN ('acknowledged', 'suppressed') THEN
            IF why IS NULL THEN
                -- The writer may say why (capctl unack: unacknowledged).
                IF NEW.reopen_reason IS NOT NULL
                   AND NEW.reopen_reason IS DISTINCT FROM OLD.reopen_reason THEN
                    why := NEW.reopen_reason;
                ELSIF OLD.status = 'acknowledged' THEN
                    why := CASE WHEN OLD.ack_until <= now() THEN 'expired'
                                ELSE 'unacknowledged' END;
                ELSE
                    why := CASE WHEN EXISTS (SELECT 1 FROM finding_suppressions
                                             WHERE id = OLD.suppression_id AND until <= now())
                                THEN 'expired' ELSE 'rule_removed' END;
                END IF;
            END IF;
            NEW.reopened_at := now();
            NEW.reopen_reason := why;
            NEW.ack_by := NULL;
            NEW.ack_db_user := NULL;
            NEW.ack_at := NULL;
            NEW.ack_reason := NULL;
            NEW.ack_until := NULL;
            NEW.suppression_id := NULL;
            IF why = 'escalated' THEN
                RETURN NEW;
            END IF;
        END IF;
        -- Suppressed by the first active rule that covers it (not the rule it just left).
        SELECT * INTO r FROM finding_suppressions s
        WHERE s.kind = NEW.kind AND (s.until IS NULL OR s.until > now())
          AND (TG_OP = 'INSERT' OR OLD.status <> 'suppressed' OR s.id <> OLD.suppression_id)
          AND cap_suppression_matches(s, NEW)
        ORDER BY s.id LIMIT 1;
        IF FOUND THEN
            NEW.status := 'suppressed';
            NEW.suppression_id := r.id;
            NEW.ack_at := now();
        END IF;
    END IF;
    RETURN NEW;
END $$;
COMMENT ON FUNCTION cap_findings_workflow() IS
    'Trigger: validates and completes acknowledgements and suppressions, reopens expired or escalated findings, applies suppression rules to findings that open.';
-- Every insert (a worker's upsert inserts first) may meet a rule; an update only matters when
-- the row is or becomes other than open, so refreshes of open findings skip the function.
CREATE TRIGGER findings_workflow BEFORE INSERT ON findings
    FOR EACH ROW EXECUTE FUNCTION cap_findings_workflow();
CREATE TRIGGER findings_workflow_update BEFORE UPDATE ON findings
    FOR EACH ROW WHEN (OLD.status <> 'open' OR NEW.status <> 'open')
    EXECUTE FUNCTION cap_findings_workflow();

-- Checks a rule written by any tool; kind, source and pattern of a rule never change.
CREATE FUNCTION cap_suppressions_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    problem text;
BEGIN
    IF TG_OP = 'UPDATE' AND (NEW.id, NEW.kind, NEW.source_id, NEW.subject_pattern)
                            IS DISTINCT FROM (OLD.id, OLD.kind, OLD.source_id, OLD.subject_pattern) THEN
        RAISE EXCEPTION 'suppression rule %: kind, source and subject pattern cannot change; remove the rule and add another',
            OLD.id USING ERRCODE = 'check_violation';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM finding_kinds WHERE kind = NEW.kind) THEN
        RAISE EXCEPTION 'suppression rule: unknown kind "%" (see finding_kinds)', left(NEW.kind, 64)
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.subject_pattern IS NOT NULL THEN
        problem := cap_subject_pattern_problem(NEW.subject_pattern);
        IF problem IS NOT NULL THEN
            RAISE EXCEPTION 'suppression rule: subject pattern "%" %', left(NEW.subject_pattern, 64),
                problem USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    problem := cap_text_problem(NEW.reason, 1024);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'suppression rule: reason %', problem USING ERRCODE = 'check_violation';
    END IF;
    NEW.created_by := coalesce(NEW.created_by, session_user);
    problem := cap_text_problem(NEW.created_by, 128);
    IF problem IS NOT NULL THEN
        RAISE EXCEPTION 'suppression rule: created_by %', problem USING ERRCODE = 'check_violation';
    END IF;
    IF (TG_OP = 'INSERT' OR NEW.until IS DISTINCT FROM OLD.until) AND NEW.until <= now() THEN
        RAISE EXCEPTION 'suppression rule: until % is not in the future', NEW.until
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'INSERT' THEN
        NEW.created_db_user := session_user;
        NEW.created_at := now();
    ELSE
        NEW.created_db_user := OLD.created_db_user;
        NEW.created_at := OLD.created_at;
    END IF;
    RETURN NEW;
END $$;
COMMENT ON FUNCTION cap_suppressions_check() IS
    'Trigger: validates a suppression rule (known kind, pattern, reason, until in the future).';
CREATE TRIGGER finding_suppressions_check BEFORE INSERT OR UPDATE ON finding_suppressions
    FOR EACH ROW EXECUTE FUNCTION cap_suppressions_check();

-- A new rule suppresses the open findings it covers. The lock makes a finding that a
-- worker writes at the same moment wait for the rule's transaction, so that either the rule
-- sees the finding or the finding's trigger sees the rule.
CREATE FUNCTION cap_suppressions_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    LOCK TABLE findings IN SHARE ROW EXCLUSIVE MODE;
    UPDATE findings f SET status = 'suppressed', suppression_id = NEW.id
    WHERE f.status = 'open' AND f.kind = NEW.kind
      AND (NEW.source_id IS NULL OR f.source_id = NEW.source_id)
      AND cap_suppression_matches(NEW, f);
    RETURN NULL;
END $$;
COMMENT ON FUNCTION cap_suppressions_apply() IS
    'Trigger: a new rule suppresses the open findings it covers.';
CREATE TRIGGER finding_suppressions_apply AFTER INSERT ON finding_suppressions
    FOR EACH ROW EXECUTE FUNCTION cap_suppressions_apply();

-- A removed rule's findings open again (or another rule that covers them takes them).
CREATE FUNCTION cap_suppressions_remove() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE findings SET status = 'open', reopen_reason = 'rule_removed'
    WHERE suppression_id = OLD.id AND status = 'suppressed';
    RETURN OLD;
END $$;
COMMENT ON FUNCTION cap_suppressions_remove() IS
    'Trigger: the findings of a removed rule open again, unless another active rule covers them.';
CREATE TRIGGER finding_suppressions_remove BEFORE DELETE ON finding_suppressions
    FOR EACH ROW EXECUTE FUNCTION cap_suppressions_remove();

-- Opens every acknowledged finding whose ack_until has passed and every finding suppressed
-- by a rule whose until has passed (the trigger gives reopen_reason 'expired', or lets
-- another active rule that covers it suppress it). A row some writer holds is skipped: that
-- writer's update reopens it through the trigger. Returns how many rows it changed. Meant
-- for the scheduler's tick; capctl runs it before it reads or changes findings.
CREATE FUNCTION cap_findings_expire() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    m integer;
BEGIN
    UPDATE findings f SET status = 'open'
    WHERE f.id IN (SELECT id FROM findings
                   WHERE status = 'acknowledged' AND ack_until <= now()
                   FOR UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE findings f SET status = 'open'
    WHERE f.id IN (SELECT x.id FROM findings x
                   JOIN finding_suppressions r ON r.id = x.suppression_id
                   WHERE x.status = 'suppressed' AND r.until <= now()
                   FOR UPDATE OF x SKIP LOCKED);
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n + m;
END $$;
COMMENT ON FUNCTION cap_findings_expire() IS
    'Opens acknowledged findings and suppressed findings whose acknowledgement or rule has ended; returns how many.';

-- ---- dashboards ----

CREATE VIEW cap_acknowledged_findings AS
SELECT f.id AS finding_id,
       f.kind,
       f.severity,
       CASE f.severity WHEN 'critical' THEN 1 WHEN 'high' THEN 2 WHEN 'medium' THEN 3
                       WHEN 'low' THEN 4 ELSE 5 END AS severity_rank,
       f.status,
       f.source_id,
       s.name AS source_name,
       f.subject_key,
       CASE WHEN f.status = 'suppressed' THEN r.created_by ELSE f.ack_by END AS ack_by,
       f.ack_at,
       CASE WHEN f.status = 'suppressed' THEN r.reason ELSE f.ack_reason END AS ack_reason,
       CASE WHEN f.status = 'suppressed' THEN r.until ELSE f.ack_until END AS ack_until,
       f.suppression_id,
       f.first_seen_at,
       f.last_seen_at
FROM findings f
LEFT JOIN discovery_sources s ON s.id = f.source_id
LEFT JOIN finding_suppressions r ON r.id = f.suppression_id
WHERE f.status IN ('acknowledged', 'suppressed');
COMMENT ON VIEW cap_acknowledged_findings IS
    'Findings people acknowledged or suppressed (left out of the open counts): who, when, why and until when.';
COMMENT ON COLUMN cap_acknowledged_findings.status IS 'acknowledged or suppressed.';
COMMENT ON COLUMN cap_acknowledged_findings.ack_by IS 'Who acknowledged it, or created the rule that suppresses it.';
COMMENT ON COLUMN cap_acknowledged_findings.ack_at IS 'When it was acknowledged or suppressed.';
COMMENT ON COLUMN cap_acknowledged_findings.ack_reason IS 'Why (the acknowledgement''s or the rule''s reason).';
COMMENT ON COLUMN cap_acknowledged_findings.ack_until IS 'When it opens again; NULL: never.';
COMMENT ON COLUMN cap_acknowledged_findings.suppression_id IS 'The rule, for a suppressed finding.';

CREATE VIEW cap_finding_suppressions AS
SELECT r.id AS suppression_id,
       r.kind,
       r.source_id,
       s.name AS source_name,
       r.subject_pattern,
       r.reason,
       r.created_by,
       r.created_at,
       r.until,
       (r.until IS NULL OR r.until > now()) AS active,
       (SELECT count(*) FROM findings f
        WHERE f.suppression_id = r.id AND f.status = 'suppressed') AS suppressed_findings
FROM finding_suppressions r
LEFT JOIN discovery_sources s ON s.id = r.source_id;
COMMENT ON VIEW cap_finding_suppressions IS
    'Suppression rules, whether each is active, and how many findings each suppresses.';
COMMENT ON COLUMN cap_finding_suppressions.active IS 'False once until has passed.';
COMMENT ON COLUMN cap_finding_suppressions.suppressed_findings IS 'Findings it suppresses now.';

GRANT SELECT ON cap_acknowledged_findings, cap_finding_suppressions TO cap_dashboard;
