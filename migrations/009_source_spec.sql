-- Source specs. What a source of one type needs (network_scan: cidrs, hosts, ports, starttls,
-- timeout_ms, concurrency, connect_rate; ct_log: domains, log_urls, log_protocol, log_key,
-- expected_issuers, backfill_from) moves from a column per field into one jsonb column, spec,
-- checked against the type's row of discovery_source_types. A row there is the schema of the
-- type's descriptor in common/source/ (the end-to-end tests compare the two), so a new type
-- is a new row, not new columns, CHECKs and view CASEs. The check runs in the database as
-- before: a row the product UI or a script writes is held to the same rules as capctl's.
--
-- The old columns stay, kept from spec by the trigger, so that nothing that reads or writes
-- them breaks: the product UI writes sources with plain SQL, scripts and dashboards read
-- them. A row written with the old columns gets its spec from them; a row written with spec
-- gets the old columns from it; a write that sets both is refused rather than guessed at.
-- They cover the two original types only and can go once nothing writes them any more.

CREATE TABLE discovery_source_types (
    type text PRIMARY KEY CHECK (type ~ '^[a-z][a-z0-9_]{0,62}$'),
    fields jsonb NOT NULL CHECK (jsonb_typeof(fields) = 'object'),
    needs_one_of text[] NOT NULL DEFAULT '{}',
    needs_constraint text
);
COMMENT ON TABLE discovery_source_types IS
    'Source types and the fields of their spec, as the descriptors in common/source/ define them.';
COMMENT ON COLUMN discovery_source_types.type IS 'The type, as in discovery_sources.type.';
COMMENT ON COLUMN discovery_source_types.fields IS
    'Field name -> {kind: int|text|texts|cidrs|ports|port_map, default, min, max (int), choices}.';
COMMENT ON COLUMN discovery_source_types.needs_one_of IS
    'List fields of which at least one must hold an entry (empty: no such rule).';
COMMENT ON COLUMN discovery_source_types.needs_constraint IS
    'The constraint name a violation of needs_one_of is reported under.';

INSERT INTO discovery_source_types (type, fields, needs_one_of, needs_constraint) VALUES
('network_scan', '{
    "cidrs": {"kind": "cidrs", "default": []},
    "hosts": {"kind": "texts", "default": []},
    "ports": {"kind": "ports", "default": []},
    "starttls": {"kind": "port_map", "default": [],
                 "choices": ["smtp", "imap", "pop3", "ldap", "postgres", "none"]},
    "timeout_ms": {"kind": "int", "default": 5000, "min": 100, "max": 600000},
    "concurrency": {"kind": "int", "default": 8, "min": 1, "max": 100000},
    "connect_rate": {"kind": "int", "default": null, "min": 1, "max": 1000000}
 }', '{cidrs,hosts}', 'network_scan_has_targets'),
('ct_log', '{
    "domains": {"kind": "texts", "default": []},
    "log_urls": {"kind": "texts", "default": []},
    "log_protocol": {"kind": "text", "default": "auto", "choices": ["auto", "rfc6962", "static-ct"]},
    "log_key": {"kind": "text", "default": null},
    "expected_issuers": {"kind": "texts", "default": []},
    "backfill_from": {"kind": "int", "default": null, "min": 0, "max": 9223372036854775807}
 }', '{domains}', 'ct_log_has_domains');

-- One value of a spec, checked against its field's schema f; returns it in its normal form
-- (an integer as an integer, a range as PostgreSQL writes it). Raises check_violation naming
-- the source and the field.
CREATE FUNCTION cap_source_value(source text, field text, f jsonb, v jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    kind text := f ->> 'kind';
    e jsonb;
    n numeric;
    port numeric;
    tail text;
    ranges cidr[];
    reason text;
    out jsonb := '[]';
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        IF jsonb_typeof(f -> 'default') = 'null' THEN
            RETURN 'null'::jsonb;
        END IF;
        RAISE EXCEPTION 'source "%": spec field "%" may not be null', source, field
            USING ERRCODE = 'check_violation';
    END IF;
    IF kind = 'int' THEN
        n := CASE WHEN jsonb_typeof(v) = 'number' THEN (v #>> '{}')::numeric END;
        IF n IS NULL OR n <> trunc(n) OR n < (f ->> 'min')::numeric
           OR n > (f ->> 'max')::numeric THEN
            RAISE EXCEPTION 'source "%": spec field "%": % is not an integer %-%', source, field,
                left(v::text, 64), f ->> 'min', f ->> 'max'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN to_jsonb(n::bigint);
    END IF;
    IF kind = 'text' THEN
        IF jsonb_typeof(v) <> 'string' THEN
            RAISE EXCEPTION 'source "%": spec field "%": % is not a string', source, field,
                left(v::text, 64) USING ERRCODE = 'check_violation';
        END IF;
        IF f ? 'choices' AND NOT (f -> 'choices') @> jsonb_build_array(v) THEN
            RAISE EXCEPTION 'source "%": spec field "%": % is not one of %', source, field,
                left(v::text, 64), f -> 'choices' USING ERRCODE = 'check_violation';
        END IF;
        RETURN v;
    END IF;
    IF jsonb_typeof(v) <> 'array' THEN
        RAISE EXCEPTION 'source "%": spec field "%": % is not a list', source, field,
            left(v::text, 64) USING ERRCODE = 'check_violation';
    END IF;
    FOR e IN SELECT x FROM jsonb_array_elements(v) AS x LOOP
        IF kind = 'ports' THEN
            n := CASE WHEN jsonb_typeof(e) = 'number' THEN (e #>> '{}')::numeric END;
            IF n IS NULL OR n <> trunc(n) OR n NOT BETWEEN 1 AND 65535 THEN
                RAISE EXCEPTION 'source "%": spec field "%": % is not a port 1-65535', source,
                    field, left(e::text, 64) USING ERRCODE = 'check_violation';
            END IF;
            out := out || to_jsonb(n::integer);
            CONTINUE;
        END IF;
        IF jsonb_typeof(e) <> 'string' THEN
            RAISE EXCEPTION 'source "%": spec field "%": % is not a string', source, field,
                left(e::text, 64) USING ERRCODE = 'check_violation';
        END IF;
        IF kind = 'port_map' THEN
            port := CASE WHEN (e #>> '{}') ~ '^[0-9]{1,5}:'
                         THEN split_part(e #>> '{}', ':', 1)::numeric END;
            tail := substr(e #>> '{}', strpos(e #>> '{}', ':') + 1);
            IF port IS NULL OR port NOT BETWEEN 1 AND 65535
               OR NOT (f -> 'choices') @> jsonb_build_array(tail) THEN
                RAISE EXCEPTION 'source "%": spec field "%": % is not PORT:VALUE with a port '
                    '1-65535 and a value of %', source, field, left(e::text, 64), f -> 'choices'
                    USING ERRCODE = 'check_violation';
            END IF;
        END IF;
        out := out || e;
    END LOOP;
    IF kind = 'cidrs' THEN
        -- One cast for the list; only a bad one is looked for entry by entry.
        BEGIN
            ranges := ARRAY(SELECT jsonb_array_elements_text(out))::cidr[];
        EXCEPTION WHEN data_exception THEN
            FOR e IN SELECT x FROM jsonb_array_elements(out) AS x LOOP
                BEGIN
                    PERFORM (e #>> '{}')::cidr;
                EXCEPTION WHEN data_exception THEN
                    RAISE EXCEPTION 'source "%": spec field "%": % is not a CIDR range (%)',
                        source, field, left(e::text, 64), SQLERRM
                        USING ERRCODE = 'check_violation';
                END;
            END LOOP;
            RAISE;
        END;
        reason := cap_cidrs_refused_reason(ranges);
        IF reason IS NOT NULL THEN
            RAISE EXCEPTION 'source "%": %', source, reason USING ERRCODE = 'check_violation';
        END IF;
        RETURN to_jsonb(ranges::text[]);
    END IF;
    RETURN out;
END $$;
COMMENT ON FUNCTION cap_source_value(text, text, jsonb, jsonb) IS
    'One spec value checked against its field schema (discovery_source_types.fields), in normal form.';

-- A source's spec, checked against its type's row: no unknown field, every field valid (a
-- missing one takes its default), the needs_one_of rule. Returns it with every field present.
CREATE FUNCTION cap_source_spec_normalise(source text, source_type text, spec jsonb)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    t discovery_source_types%ROWTYPE;
    k text;
    f record;
    out jsonb := '{}';
BEGIN
    SELECT * INTO t FROM discovery_source_types WHERE type = source_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%": unknown type "%" (see discovery_source_types)', source,
            left(source_type, 64) USING ERRCODE = 'check_violation';
    END IF;
    IF spec IS NULL OR jsonb_typeof(spec) <> 'object' THEN
        RAISE EXCEPTION 'source "%": spec must be a JSON object', source
            USING ERRCODE = 'check_violation';
    END IF;
    FOR k IN SELECT jsonb_object_keys(spec) LOOP
        IF NOT t.fields ? k THEN
            RAISE EXCEPTION 'source "%": a % source has no field "%" (fields: %)', source,
                source_type, left(k, 64),
                (SELECT string_agg(x, ', ' ORDER BY x) FROM jsonb_object_keys(t.fields) AS x)
                USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    FOR f IN SELECT key, value FROM jsonb_each(t.fields) LOOP
        out := out || jsonb_build_object(f.key, cap_source_value(source, f.key, f.value,
            CASE WHEN spec ? f.key THEN spec -> f.key ELSE f.value -> 'default' END));
    END LOOP;
    IF cardinality(t.needs_one_of) > 0 AND NOT EXISTS (
            SELECT 1 FROM unnest(t.needs_one_of) AS n
            WHERE jsonb_array_length(out -> n) > 0) THEN
        RAISE EXCEPTION 'source "%": a % source needs at least one entry in % (%)', source,
            source_type, array_to_string(t.needs_one_of, ' or '), t.needs_constraint
            USING ERRCODE = 'check_violation', CONSTRAINT = coalesce(t.needs_constraint, '');
    END IF;
    RETURN out;
END $$;
COMMENT ON FUNCTION cap_source_spec_normalise(text, text, jsonb) IS
    'A source''s spec checked against discovery_source_types, with defaults filled in.';

ALTER TABLE discovery_sources ADD COLUMN spec jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN discovery_sources.spec IS
    'The fields of the source''s type (see discovery_source_types), checked and complete, e.g. '
    '{"cidrs": ["10.0.0.0/24"], "hosts": [], "ports": [443], "timeout_ms": 5000, ...}.';

-- The old columns of a row as a spec-shaped object.
CREATE FUNCTION cap_sources_columns(s discovery_sources) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'cidrs', to_jsonb(s.cidrs::text[]), 'hosts', to_jsonb(s.hosts),
        'ports', to_jsonb(s.ports), 'starttls', to_jsonb(s.starttls),
        'timeout_ms', s.timeout_ms, 'concurrency', s.concurrency,
        'connect_rate', s.connect_rate, 'domains', to_jsonb(s.domains),
        'log_urls', to_jsonb(s.log_urls), 'log_protocol', s.log_protocol,
        'log_key', s.log_key, 'expected_issuers', to_jsonb(s.expected_issuers),
        'backfill_from', s.backfill_from)
$$;
COMMENT ON FUNCTION cap_sources_columns(discovery_sources) IS
    'The compatibility columns of a source row (cidrs ... backfill_from) as a JSON object.';

-- The spec the old columns describe for a source of source_type: the columns that are fields
-- of that type (a column another type uses is left out, as it was ignored before).
CREATE FUNCTION cap_sources_spec_from_columns(source_type text, columns jsonb) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_object_agg(c.key, c.value), '{}')
    FROM jsonb_each(columns) AS c, discovery_source_types t
    WHERE t.type = source_type AND t.fields ? c.key
$$;

-- Existing rows (the triggers of 008 see no change of theirs: nothing else moves).
UPDATE discovery_sources s
SET spec = cap_source_spec_normalise(s.name, s.type,
                                     cap_sources_spec_from_columns(s.type, cap_sources_columns(s)));

-- The spec check holds every rule the columns' CHECKs held; the type is one of the table.
ALTER TABLE discovery_sources
    DROP CONSTRAINT discovery_sources_type_check,
    DROP CONSTRAINT discovery_sources_cidrs_check,
    DROP CONSTRAINT discovery_sources_hosts_check,
    DROP CONSTRAINT discovery_sources_ports_check,
    DROP CONSTRAINT discovery_sources_timeout_ms_check,
    DROP CONSTRAINT discovery_sources_concurrency_check,
    DROP CONSTRAINT discovery_sources_log_protocol_check,
    DROP CONSTRAINT discovery_sources_backfill_from_check,
    DROP CONSTRAINT discovery_sources_starttls_check,
    DROP CONSTRAINT discovery_sources_connect_rate_range,
    DROP CONSTRAINT network_scan_has_targets,
    DROP CONSTRAINT ct_log_has_domains,
    ADD CONSTRAINT discovery_sources_type_fkey FOREIGN KEY (type)
        REFERENCES discovery_source_types (type);
-- The STARTTLS protocols are in discovery_source_types now (from the C table).
DROP FUNCTION cap_starttls_valid(text[]);

COMMENT ON COLUMN discovery_sources.type IS 'network_scan, ct_log, or another row of discovery_source_types.';
COMMENT ON COLUMN discovery_sources.cidrs IS 'Compatibility: spec->''cidrs'' (network_scan).';
COMMENT ON COLUMN discovery_sources.hosts IS 'Compatibility: spec->''hosts'' (network_scan).';
COMMENT ON COLUMN discovery_sources.ports IS 'Compatibility: spec->''ports'' (network_scan).';
COMMENT ON COLUMN discovery_sources.starttls IS 'Compatibility: spec->''starttls'' (network_scan).';
COMMENT ON COLUMN discovery_sources.timeout_ms IS
    'Compatibility: spec->''timeout_ms'' (network_scan).';
COMMENT ON COLUMN discovery_sources.concurrency IS
    'Compatibility: spec->''concurrency'' (network_scan).';
COMMENT ON COLUMN discovery_sources.connect_rate IS
    'Compatibility: spec->''connect_rate'' (network_scan).';
COMMENT ON COLUMN discovery_sources.domains IS 'Compatibility: spec->''domains'' (ct_log).';
COMMENT ON COLUMN discovery_sources.log_urls IS 'Compatibility: spec->''log_urls'' (ct_log).';
COMMENT ON COLUMN discovery_sources.log_protocol IS
    'Compatibility: spec->''log_protocol'' (ct_log).';
COMMENT ON COLUMN discovery_sources.log_key IS 'Compatibility: spec->''log_key'' (ct_log).';
COMMENT ON COLUMN discovery_sources.expected_issuers IS
    'Compatibility: spec->''expected_issuers'' (ct_log).';
COMMENT ON COLUMN discovery_sources.backfill_from IS
    'Compatibility: spec->''backfill_from'' (ct_log).';

-- Before a write: spec from the old columns when a writer used those, the spec checked and
-- completed, the old columns from spec; updated_at moves when the source changed. A write
-- that touches neither spec nor the old columns (the scheduler moving next_run_at, enable,
-- disable) is not checked again: a stored spec was valid when written.
CREATE OR REPLACE FUNCTION cap_sources_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    columns jsonb := cap_sources_columns(NEW);
    columns_given boolean;
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- The columns' defaults: what a writer that names none of them leaves there.
        columns_given := columns IS DISTINCT FROM
            '{"cidrs": [], "hosts": [], "ports": [], "starttls": [], "timeout_ms": 5000,
              "concurrency": 8, "connect_rate": null, "domains": [], "log_urls": [],
              "log_protocol": "auto", "log_key": null, "expected_issuers": [],
              "backfill_from": null}'::jsonb;
        IF columns_given AND NEW.spec IS DISTINCT FROM '{}'::jsonb THEN
            RAISE EXCEPTION 'source "%": give its fields in spec or in the compatibility columns '
                '(cidrs ... backfill_from), not both', NEW.name USING ERRCODE = 'check_violation';
        END IF;
        IF columns_given THEN
            NEW.spec := cap_sources_spec_from_columns(NEW.type, columns);
        END IF;
    ELSIF columns IS DISTINCT FROM cap_sources_columns(OLD) THEN
        IF NEW.spec IS DISTINCT FROM OLD.spec THEN
            RAISE EXCEPTION 'source "%": change its fields in spec or in the compatibility '
                'columns (cidrs ... backfill_from), not both', NEW.name
                USING ERRCODE = 'check_violation';
        END IF;
        NEW.spec := CASE WHEN NEW.type = OLD.type THEN OLD.spec ELSE '{}' END
                    || cap_sources_spec_from_columns(NEW.type, columns);
    ELSIF NEW.spec IS NOT DISTINCT FROM OLD.spec AND NEW.type IS NOT DISTINCT FROM OLD.type THEN
        IF (OLD.name, OLD.enabled, OLD.schedule, OLD.trigger_on_save)
           IS DISTINCT FROM (NEW.name, NEW.enabled, NEW.schedule, NEW.trigger_on_save) THEN
            NEW.updated_at := now();
        END IF;
        RETURN NEW;
    END IF;
    NEW.spec := cap_source_spec_normalise(NEW.name, NEW.type, NEW.spec);
    NEW.cidrs := ARRAY(SELECT jsonb_array_elements_text(NEW.spec -> 'cidrs'))::cidr[];
    NEW.hosts := ARRAY(SELECT jsonb_array_elements_text(NEW.spec -> 'hosts'));
    NEW.ports := ARRAY(SELECT jsonb_array_elements_text(NEW.spec -> 'ports'))::integer[];
    NEW.starttls := ARRAY(SELECT jsonb_array_elements_text(NEW.spec -> 'starttls'));
    NEW.timeout_ms := coalesce((NEW.spec ->> 'timeout_ms')::integer, 5000);
    NEW.concurrency := coalesce((NEW.spec ->> 'concurrency')::integer, 8);
    NEW.connect_rate := (NEW.spec ->> 'connect_rate')::integer;
    NEW.domains := ARRAY(SELECT jsonb_array_elements_text(NEW.spec -> 'domains'));
    NEW.log_urls := ARRAY(SELECT jsonb_array_elements_text(NEW.spec -> 'log_urls'));
    NEW.log_protocol := coalesce(NEW.spec ->> 'log_protocol', 'auto');
    NEW.log_key := NEW.spec ->> 'log_key';
    NEW.expected_issuers := ARRAY(SELECT jsonb_array_elements_text(NEW.spec -> 'expected_issuers'));
    NEW.backfill_from := (NEW.spec ->> 'backfill_from')::bigint;
    IF TG_OP = 'INSERT' OR (OLD.name, OLD.type, OLD.enabled, OLD.schedule, OLD.trigger_on_save,
        OLD.spec) IS DISTINCT FROM (NEW.name, NEW.type, NEW.enabled, NEW.schedule,
        NEW.trigger_on_save, NEW.spec) THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;

-- Trigger on save: as in 008, with spec standing for the type's fields.
CREATE OR REPLACE FUNCTION cap_sources_saved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.trigger_on_save AND NEW.enabled AND (TG_OP = 'INSERT' OR
        (OLD.spec, OLD.schedule, OLD.enabled, OLD.trigger_on_save)
        IS DISTINCT FROM (NEW.spec, NEW.schedule, NEW.enabled, NEW.trigger_on_save)) THEN
        INSERT INTO discovery_runs (source_id, trigger) VALUES (NEW.id, 'save')
            ON CONFLICT (source_id) WHERE status IN ('queued', 'running') DO NOTHING;
    END IF;
    IF TG_OP = 'INSERT' OR OLD.schedule IS DISTINCT FROM NEW.schedule
       OR OLD.enabled IS DISTINCT FROM NEW.enabled THEN
        PERFORM pg_notify('cap_scheduler', 'source ' || NEW.id);
    END IF;
    RETURN NULL;
END $$;
