-- Core schema: sources, runs, the certificate inventory, endpoints, findings, drift and CT
-- checkpoints. Dashboards read these tables directly, so every table and column is commented.

CREATE FUNCTION cap_ports_valid(p integer[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT coalesce(bool_and(x BETWEEN 1 AND 65535), true) FROM unnest(p) AS x
$$;
COMMENT ON FUNCTION cap_ports_valid(integer[]) IS
    'True when every port of the array is between 1 and 65535.';

-- The blocks the network policy always refuses, whatever a source lists.
CREATE FUNCTION cap_refused_blocks() RETURNS TABLE (block cidr, reason text)
LANGUAGE sql IMMUTABLE AS $$
    VALUES ('169.254.0.0/16'::cidr, 'link-local (169.254.0.0/16)'),
           ('fe80::/10'::cidr, 'IPv6 link-local (fe80::/10)'),
           ('0.0.0.0/8'::cidr, '"this network" (0.0.0.0/8)'),
           ('224.0.0.0/4'::cidr, 'multicast (224.0.0.0/4)'),
           ('ff00::/8'::cidr, 'IPv6 multicast (ff00::/8)'),
           ('255.255.255.255/32'::cidr, 'broadcast (255.255.255.255)'),
           ('100.100.100.200/32'::cidr, 'cloud metadata (Alibaba 100.100.100.200)'),
           ('fd00:ec2::254/128'::cidr, 'cloud metadata (AWS fd00:ec2::254)'),
           ('192.0.0.192/32'::cidr, 'cloud metadata (Oracle 192.0.0.192)'),
           ('::/128'::cidr, 'unspecified address (::)')
$$;
COMMENT ON FUNCTION cap_refused_blocks() IS
    'Address blocks the network policy always refuses, with the reason given to users.';

-- NULL when every range may be scanned (perhaps in part); otherwise why the first bad one
-- may not: it lies wholly inside a refused block.
CREATE FUNCTION cap_cidrs_refused_reason(c cidr[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT format('cidr %s lies wholly inside %s, which the network policy always refuses',
                  x, b.reason)
    FROM unnest(c) AS x, cap_refused_blocks() AS b
    WHERE family(x) = family(b.block) AND x <<= b.block
    LIMIT 1
$$;
COMMENT ON FUNCTION cap_cidrs_refused_reason(cidr[]) IS
    'NULL when no listed range lies wholly inside an always-refused block, else the reason.';

CREATE TABLE discovery_sources (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
    type text NOT NULL CHECK (type IN ('network_scan', 'ct_log')),
    enabled boolean NOT NULL DEFAULT true,
    schedule text NOT NULL DEFAULT 'manual' CHECK (length(schedule) BETWEEN 1 AND 200),
    next_run_at timestamptz,
    schedule_judged text,
    trigger_on_save boolean NOT NULL DEFAULT false,
    last_error text,
    cidrs cidr[] NOT NULL DEFAULT '{}'
        CHECK (cap_cidrs_refused_reason(cidrs) IS NULL),
    hosts text[] NOT NULL DEFAULT '{}'
        CHECK (array_position(hosts, NULL) IS NULL),
    ports integer[] NOT NULL DEFAULT '{}' CHECK (cap_ports_valid(ports)),
    timeout_ms integer NOT NULL DEFAULT 5000 CHECK (timeout_ms BETWEEN 100 AND 600000),
    concurrency integer NOT NULL DEFAULT 8 CHECK (concurrency BETWEEN 1 AND 100000),
    domains text[] NOT NULL DEFAULT '{}',
    log_urls text[] NOT NULL DEFAULT '{}',
    log_protocol text NOT NULL DEFAULT 'auto'
        CHECK (log_protocol IN ('auto', 'rfc6962', 'static-ct')),
    log_key text,
    expected_issuers text[] NOT NULL DEFAULT '{}',
    backfill_from bigint CHECK (backfill_from >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT network_scan_has_targets CHECK
        (type <> 'network_scan' OR cardinality(cidrs) + cardinality(hosts) > 0),
    CONSTRAINT ct_log_has_domains CHECK (type <> 'ct_log' OR cardinality(domains) > 0)
);
COMMENT ON TABLE discovery_sources IS
    'Discovery sources: where to look for certificates that are not yet managed.';
COMMENT ON COLUMN discovery_sources.id IS 'Source id.';
COMMENT ON COLUMN discovery_sources.name IS 'Unique name, as used by capctl.';
COMMENT ON COLUMN discovery_sources.type IS 'network_scan or ct_log.';
COMMENT ON COLUMN discovery_sources.enabled IS
    'Disabled sources are never scheduled (manual triggers still run).';
COMMENT ON COLUMN discovery_sources.schedule IS
    'manual|once, every DURATION, hourly, daily [HH:MM UTC], weekly [DAY HH:MM UTC] or 5-field cron (UTC).';
COMMENT ON COLUMN discovery_sources.next_run_at IS
    'When the scheduler next enqueues a run; NULL for manual schedules or until first judged.';
COMMENT ON COLUMN discovery_sources.schedule_judged IS
    'The schedule text the scheduler last parsed; differs from schedule until it is judged.';
COMMENT ON COLUMN discovery_sources.trigger_on_save IS
    'When true, inserting or changing the source queues a run at once.';
COMMENT ON COLUMN discovery_sources.last_error IS
    'Why the scheduler disabled the source (e.g. a schedule it cannot parse); NULL when fine.';
COMMENT ON COLUMN discovery_sources.cidrs IS 'network_scan: ranges to scan (IPv4 and IPv6).';
COMMENT ON COLUMN discovery_sources.hosts IS 'network_scan: host names, sent as SNI.';
COMMENT ON COLUMN discovery_sources.ports IS
    'network_scan: TCP ports; empty means the defaults 443 and 8443.';
COMMENT ON COLUMN discovery_sources.timeout_ms IS
    'network_scan: deadline per host:port for connect, STARTTLS and handshake together.';
COMMENT ON COLUMN discovery_sources.concurrency IS
    'network_scan: handshakes in flight for this source (also capped per worker).';
COMMENT ON COLUMN discovery_sources.domains IS
    'ct_log: domain suffixes; each matches the apex and every subdomain.';
COMMENT ON COLUMN discovery_sources.log_urls IS
    'ct_log: log URLs; empty means the curated list of the configuration.';
COMMENT ON COLUMN discovery_sources.log_protocol IS
    'ct_log: auto (probe), rfc6962 or static-ct, for the URLs of log_urls.';
COMMENT ON COLUMN discovery_sources.log_key IS
    'ct_log: PEM public key of a private log, used to verify its signed tree heads.';
COMMENT ON COLUMN discovery_sources.expected_issuers IS
    'ct_log: issuer substrings; a match from any other issuer is a ct_unexpected_issuer finding.';
COMMENT ON COLUMN discovery_sources.backfill_from IS
    'ct_log: first log index to read for a new source; NULL starts at the current tree size.';
COMMENT ON COLUMN discovery_sources.created_at IS 'When the source was created.';
COMMENT ON COLUMN discovery_sources.updated_at IS 'When the source was last changed.';

CREATE INDEX discovery_sources_due ON discovery_sources (next_run_at) WHERE enabled;

-- Readable rejection for ranges inside refused blocks (the CHECK above enforces the same).
CREATE FUNCTION cap_sources_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    reason text := cap_cidrs_refused_reason(NEW.cidrs);
BEGIN
    IF reason IS NOT NULL THEN
        RAISE EXCEPTION 'source "%": %', NEW.name, reason
            USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'INSERT' OR (OLD.name, OLD.type, OLD.enabled, OLD.schedule, OLD.trigger_on_save,
        OLD.cidrs, OLD.hosts, OLD.ports, OLD.timeout_ms, OLD.concurrency, OLD.domains,
        OLD.log_urls, OLD.log_protocol, OLD.log_key, OLD.expected_issuers, OLD.backfill_from)
        IS DISTINCT FROM (NEW.name, NEW.type, NEW.enabled, NEW.schedule, NEW.trigger_on_save,
        NEW.cidrs, NEW.hosts, NEW.ports, NEW.timeout_ms, NEW.concurrency, NEW.domains,
        NEW.log_urls, NEW.log_protocol, NEW.log_key, NEW.expected_issuers, NEW.backfill_from) THEN
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER discovery_sources_check BEFORE INSERT OR UPDATE ON discovery_sources
    FOR EACH ROW EXECUTE FUNCTION cap_sources_check();

CREATE TABLE discovery_runs (
    id bigserial PRIMARY KEY,
    source_id bigint NOT NULL REFERENCES discovery_sources(id) ON DELETE CASCADE,
    trigger text NOT NULL DEFAULT 'schedule'
        CHECK (trigger IN ('schedule', 'manual', 'save', 'backlog')),
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'dead')),
    queued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz,
    started_at timestamptz,
    finished_at timestamptz,
    heartbeat_at timestamptz,
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    stream_id text,
    worker text,
    error text,
    targets_total bigint NOT NULL DEFAULT 0,
    targets_done bigint NOT NULL DEFAULT 0,
    ok_count bigint NOT NULL DEFAULT 0,
    unreachable_count bigint NOT NULL DEFAULT 0,
    new_certificates bigint NOT NULL DEFAULT 0,
    drift_count bigint NOT NULL DEFAULT 0,
    stats jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE discovery_runs IS 'One execution of a discovery source.';
COMMENT ON COLUMN discovery_runs.id IS 'Run id.';
COMMENT ON COLUMN discovery_runs.source_id IS 'The source this run executes.';
COMMENT ON COLUMN discovery_runs.trigger IS
    'Why the run exists: schedule, manual (capctl/UI trigger), save (trigger on save), backlog (CT catch-up).';
COMMENT ON COLUMN discovery_runs.status IS 'queued, running, succeeded, partial, failed or dead.';
COMMENT ON COLUMN discovery_runs.queued_at IS 'When the run was created.';
COMMENT ON COLUMN discovery_runs.published_at IS 'When the job was last added to the Redis stream.';
COMMENT ON COLUMN discovery_runs.started_at IS 'When a worker last claimed the run.';
COMMENT ON COLUMN discovery_runs.finished_at IS 'When the run reached a final status.';
COMMENT ON COLUMN discovery_runs.heartbeat_at IS 'Last sign of life from the worker running it.';
COMMENT ON COLUMN discovery_runs.attempts IS
    'Number of claims; the fencing token every worker write carries.';
COMMENT ON COLUMN discovery_runs.stream_id IS 'Redis stream entry id of the last publication.';
COMMENT ON COLUMN discovery_runs.worker IS 'Consumer name of the worker that last claimed it.';
COMMENT ON COLUMN discovery_runs.error IS 'Why the run failed or died, or what went partly wrong.';
COMMENT ON COLUMN discovery_runs.targets_total IS 'Targets (endpoints, or CT entries) to process.';
COMMENT ON COLUMN discovery_runs.targets_done IS 'Targets processed so far.';
COMMENT ON COLUMN discovery_runs.ok_count IS 'Endpoints that completed a handshake (or CT entries matched).';
COMMENT ON COLUMN discovery_runs.unreachable_count IS 'Endpoints refused or timed out.';
COMMENT ON COLUMN discovery_runs.new_certificates IS 'Certificates first seen by this run.';
COMMENT ON COLUMN discovery_runs.drift_count IS 'Drift events this run recorded.';
COMMENT ON COLUMN discovery_runs.stats IS 'Further per-run counters, by executor.';

-- One active run per source: a trigger while a run is queued or running joins that run.
CREATE UNIQUE INDEX discovery_runs_one_active ON discovery_runs (source_id)
    WHERE status IN ('queued', 'running');
CREATE INDEX discovery_runs_unpublished ON discovery_runs (id)
    WHERE status = 'queued' AND stream_id IS NULL;
CREATE INDEX discovery_runs_queued ON discovery_runs (published_at) WHERE status = 'queued';
CREATE INDEX discovery_runs_running ON discovery_runs (heartbeat_at) WHERE status = 'running';
CREATE INDEX discovery_runs_source ON discovery_runs (source_id, id DESC);

-- Wake the schedulers when a run is queued.
CREATE FUNCTION cap_runs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cap_scheduler', 'run ' || NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER discovery_runs_notify AFTER INSERT OR UPDATE OF status ON discovery_runs
    FOR EACH ROW WHEN (NEW.status = 'queued' AND NEW.stream_id IS NULL)
    EXECUTE FUNCTION cap_runs_notify();

-- Trigger on save: a new or changed source with trigger_on_save queues a run, whoever wrote it
-- (capctl, the product UI, plain SQL). A schedule change wakes the schedulers to re-judge it.
CREATE FUNCTION cap_sources_saved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.trigger_on_save AND NEW.enabled AND (TG_OP = 'INSERT' OR
        (OLD.cidrs, OLD.hosts, OLD.ports, OLD.timeout_ms, OLD.concurrency, OLD.domains,
         OLD.log_urls, OLD.log_protocol, OLD.log_key, OLD.expected_issuers, OLD.backfill_from,
         OLD.schedule, OLD.enabled, OLD.trigger_on_save)
        IS DISTINCT FROM
        (NEW.cidrs, NEW.hosts, NEW.ports, NEW.timeout_ms, NEW.concurrency, NEW.domains,
         NEW.log_urls, NEW.log_protocol, NEW.log_key, NEW.expected_issuers, NEW.backfill_from,
         NEW.schedule, NEW.enabled, NEW.trigger_on_save)) THEN
        INSERT INTO discovery_runs (source_id, trigger) VALUES (NEW.id, 'save')
            ON CONFLICT (source_id) WHERE status IN ('queued', 'running') DO NOTHING;
    END IF;
    IF TG_OP = 'INSERT' OR OLD.schedule IS DISTINCT FROM NEW.schedule
       OR OLD.enabled IS DISTINCT FROM NEW.enabled THEN
        PERFORM pg_notify('cap_scheduler', 'source ' || NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER discovery_sources_saved AFTER INSERT OR UPDATE ON discovery_sources
    FOR EACH ROW EXECUTE FUNCTION cap_sources_saved();

CREATE TABLE discovered_certificates (
    fingerprint_sha256 text PRIMARY KEY CHECK (fingerprint_sha256 ~ '^[0-9a-f]{64}$'),
    subject text NOT NULL,
    issuer text NOT NULL,
    sans text[] NOT NULL DEFAULT '{}',
    san_ips text[] NOT NULL DEFAULT '{}',
    san_emails text[] NOT NULL DEFAULT '{}',
    san_uris text[] NOT NULL DEFAULT '{}',
    serial text NOT NULL,
    not_before timestamptz,
    not_after timestamptz,
    key_algorithm text NOT NULL,
    key_bits integer,
    key_curve text,
    key_oid text,
    signature_algorithm text NOT NULL,
    signature_oid text,
    pqc_class text NOT NULL CHECK (pqc_class IN ('vulnerable', 'transition', 'ready', 'unknown')),
    is_precert boolean NOT NULL DEFAULT false,
    is_ca boolean NOT NULL DEFAULT false,
    self_signed boolean NOT NULL DEFAULT false,
    spki_sha256 text,
    tbs_sha256 text,
    der bytea NOT NULL,
    revocation jsonb NOT NULL DEFAULT '{}',
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE discovered_certificates IS
    'The inventory: one row per certificate (leaf, chain or CT precertificate) by SHA-256.';
COMMENT ON COLUMN discovered_certificates.fingerprint_sha256 IS
    'SHA-256 of the DER, 64 lower-case hex digits (for a precertificate: of the precertificate).';
COMMENT ON COLUMN discovered_certificates.subject IS 'Subject DN (RFC 4514 form).';
COMMENT ON COLUMN discovered_certificates.issuer IS 'Issuer DN (RFC 4514 form).';
COMMENT ON COLUMN discovered_certificates.sans IS 'DNS subject alternative names.';
COMMENT ON COLUMN discovered_certificates.san_ips IS 'IP address subject alternative names.';
COMMENT ON COLUMN discovered_certificates.san_emails IS 'E-mail subject alternative names.';
COMMENT ON COLUMN discovered_certificates.san_uris IS 'URI subject alternative names.';
COMMENT ON COLUMN discovered_certificates.serial IS 'Serial number, lower-case hex.';
COMMENT ON COLUMN discovered_certificates.not_before IS 'Start of validity.';
COMMENT ON COLUMN discovered_certificates.not_after IS 'End of validity.';
COMMENT ON COLUMN discovered_certificates.key_algorithm IS
    'Public key algorithm: RSA, DSA, EC, Ed25519, Ed448, ML-DSA-65, ...';
COMMENT ON COLUMN discovered_certificates.key_bits IS 'Key size in bits (RSA/DSA modulus, EC field).';
COMMENT ON COLUMN discovered_certificates.key_curve IS 'Named curve of an EC key (P-256, ...).';
COMMENT ON COLUMN discovered_certificates.key_oid IS 'Public key algorithm OID, dotted.';
COMMENT ON COLUMN discovered_certificates.signature_algorithm IS 'Signature algorithm name.';
COMMENT ON COLUMN discovered_certificates.signature_oid IS 'Signature algorithm OID, dotted.';
COMMENT ON COLUMN discovered_certificates.pqc_class IS
    'Post-quantum readiness: vulnerable, transition, ready or unknown.';
COMMENT ON COLUMN discovered_certificates.is_precert IS 'True for a CT precertificate.';
COMMENT ON COLUMN discovered_certificates.is_ca IS 'True when basicConstraints says CA.';
COMMENT ON COLUMN discovered_certificates.self_signed IS
    'True when issuer equals subject and its own key verifies the signature.';
COMMENT ON COLUMN discovered_certificates.spki_sha256 IS 'SHA-256 of the SubjectPublicKeyInfo, hex.';
COMMENT ON COLUMN discovered_certificates.tbs_sha256 IS
    'SHA-256 of the TBSCertificate without poison and SCT list; joins precert and final cert.';
COMMENT ON COLUMN discovered_certificates.der IS 'The certificate, DER.';
COMMENT ON COLUMN discovered_certificates.revocation IS
    'Last revocation check: OCSP/CRL status, responder errors, when checked.';
COMMENT ON COLUMN discovered_certificates.first_seen_at IS 'When discovery first saw it.';
COMMENT ON COLUMN discovered_certificates.last_seen_at IS 'When discovery last saw it.';
CREATE INDEX discovered_certificates_not_after ON discovered_certificates (not_after);
CREATE INDEX discovered_certificates_tbs ON discovered_certificates (tbs_sha256);

CREATE TABLE managed_certificates (
    fingerprint_sha256 text PRIMARY KEY CHECK (fingerprint_sha256 ~ '^[0-9a-f]{64}$'),
    managed_since timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE managed_certificates IS
    'Certificates CertAutoPilot manages, written by the rest of the product; discovery only reads it.';
COMMENT ON COLUMN managed_certificates.fingerprint_sha256 IS 'SHA-256 of the certificate DER, hex.';
COMMENT ON COLUMN managed_certificates.managed_since IS 'When management began.';

CREATE TABLE endpoints (
    id bigserial PRIMARY KEY,
    host text NOT NULL,
    address inet NOT NULL,
    port integer NOT NULL CHECK (port BETWEEN 1 AND 65535),
    sni text NOT NULL DEFAULT '',
    source_id bigint REFERENCES discovery_sources(id) ON DELETE SET NULL,
    status text NOT NULL DEFAULT 'unknown' CHECK (status IN ('online', 'offline', 'unknown')),
    fingerprint_sha256 text REFERENCES discovered_certificates(fingerprint_sha256),
    last_outcome text,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (address, port, sni)
);
COMMENT ON TABLE endpoints IS 'Where certificates are served: (address, port, SNI).';
COMMENT ON COLUMN endpoints.id IS 'Endpoint id.';
COMMENT ON COLUMN endpoints.host IS 'Host name target, or the address text for an IP target.';
COMMENT ON COLUMN endpoints.address IS 'IP address connected to.';
COMMENT ON COLUMN endpoints.port IS 'TCP port.';
COMMENT ON COLUMN endpoints.sni IS 'Server name sent in the ClientHello; empty for none.';
COMMENT ON COLUMN endpoints.source_id IS 'Source that last scanned the endpoint.';
COMMENT ON COLUMN endpoints.status IS 'online (last handshake ok), offline (refused or timed out), unknown.';
COMMENT ON COLUMN endpoints.fingerprint_sha256 IS 'Leaf certificate of the last ok observation.';
COMMENT ON COLUMN endpoints.last_outcome IS 'Outcome of the last observation.';
COMMENT ON COLUMN endpoints.first_seen_at IS 'First observation.';
COMMENT ON COLUMN endpoints.last_seen_at IS 'Last observation.';
CREATE INDEX endpoints_fingerprint ON endpoints (fingerprint_sha256);

CREATE TABLE endpoint_observations (
    id bigserial PRIMARY KEY,
    endpoint_id bigint NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    run_id bigint NOT NULL REFERENCES discovery_runs(id) ON DELETE CASCADE,
    observed_at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL CHECK (outcome IN ('ok', 'refused', 'timeout', 'tls_error', 'policy_block')),
    fingerprint_sha256 text REFERENCES discovered_certificates(fingerprint_sha256),
    chain text[] NOT NULL DEFAULT '{}',
    tls_version text,
    cipher_suite text,
    kex_group text,
    kex_group_id integer,
    kex_pqc text CHECK (kex_pqc IN ('classical', 'hybrid', 'pqc')),
    error text,
    UNIQUE (endpoint_id, run_id)
);
COMMENT ON TABLE endpoint_observations IS 'What an endpoint presented in one run.';
COMMENT ON COLUMN endpoint_observations.id IS 'Observation id.';
COMMENT ON COLUMN endpoint_observations.endpoint_id IS 'The endpoint.';
COMMENT ON COLUMN endpoint_observations.run_id IS 'The run that observed it.';
COMMENT ON COLUMN endpoint_observations.observed_at IS 'When.';
COMMENT ON COLUMN endpoint_observations.outcome IS 'ok, refused, timeout, tls_error or policy_block.';
COMMENT ON COLUMN endpoint_observations.fingerprint_sha256 IS 'Leaf certificate presented.';
COMMENT ON COLUMN endpoint_observations.chain IS 'Fingerprints of the chain as sent, leaf first.';
COMMENT ON COLUMN endpoint_observations.tls_version IS 'Negotiated version (TLSv1.3, ...).';
COMMENT ON COLUMN endpoint_observations.cipher_suite IS 'Negotiated cipher suite, IANA name.';
COMMENT ON COLUMN endpoint_observations.kex_group IS 'Key-exchange group name.';
COMMENT ON COLUMN endpoint_observations.kex_group_id IS 'Key-exchange group IANA code point.';
COMMENT ON COLUMN endpoint_observations.kex_pqc IS 'classical, hybrid or pqc key exchange.';
COMMENT ON COLUMN endpoint_observations.error IS 'Why the handshake failed, when it did.';
CREATE INDEX endpoint_observations_endpoint ON endpoint_observations (endpoint_id, observed_at DESC);
CREATE INDEX endpoint_observations_run ON endpoint_observations (run_id);

CREATE TABLE drift_events (
    id bigserial PRIMARY KEY,
    endpoint_id bigint NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    run_id bigint NOT NULL REFERENCES discovery_runs(id) ON DELETE CASCADE,
    old_fingerprint_sha256 text NOT NULL,
    new_fingerprint_sha256 text NOT NULL,
    changed text[] NOT NULL
        CHECK (changed <@ ARRAY['fingerprint', 'issuer', 'public_key', 'sans']::text[]),
    detected_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, run_id)
);
COMMENT ON TABLE drift_events IS 'An endpoint that served certificate A now serves B.';
COMMENT ON COLUMN drift_events.id IS 'Drift event id.';
COMMENT ON COLUMN drift_events.endpoint_id IS 'The endpoint.';
COMMENT ON COLUMN drift_events.run_id IS 'The run that saw the change.';
COMMENT ON COLUMN drift_events.old_fingerprint_sha256 IS 'Certificate of the previous ok observation.';
COMMENT ON COLUMN drift_events.new_fingerprint_sha256 IS 'Certificate now served.';
COMMENT ON COLUMN drift_events.changed IS 'What changed: fingerprint, issuer, public_key, sans.';
COMMENT ON COLUMN drift_events.detected_at IS 'When.';
CREATE INDEX drift_events_endpoint ON drift_events (endpoint_id, detected_at DESC);

CREATE TABLE findings (
    id bigserial PRIMARY KEY,
    kind text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low', 'info')),
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    subject_key text NOT NULL,
    source_id bigint REFERENCES discovery_sources(id) ON DELETE CASCADE,
    run_id bigint REFERENCES discovery_runs(id) ON DELETE SET NULL,
    endpoint_id bigint REFERENCES endpoints(id) ON DELETE CASCADE,
    fingerprint_sha256 text,
    details jsonb NOT NULL DEFAULT '{}',
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
COMMENT ON TABLE findings IS
    'Problems discovery found; one open row per (kind, subject), refreshed while the cause lasts.';
COMMENT ON COLUMN findings.id IS 'Finding id.';
COMMENT ON COLUMN findings.kind IS 'expired, revoked, self_signed, drift, unreachable, ... (see docs).';
COMMENT ON COLUMN findings.severity IS 'critical, high, medium, low or info.';
COMMENT ON COLUMN findings.status IS 'open while the cause lasts, then resolved.';
COMMENT ON COLUMN findings.subject_key IS
    'What the finding is about: cert:FINGERPRINT, endpoint:ID, run:ID or source:ID.';
COMMENT ON COLUMN findings.source_id IS 'Source whose run raised it.';
COMMENT ON COLUMN findings.run_id IS 'Run that last raised or refreshed it.';
COMMENT ON COLUMN findings.endpoint_id IS 'Endpoint, for endpoint findings.';
COMMENT ON COLUMN findings.fingerprint_sha256 IS 'Certificate, for certificate findings.';
COMMENT ON COLUMN findings.details IS 'Kind-specific facts (endpoints, reasons, counts).';
COMMENT ON COLUMN findings.first_seen_at IS 'When first raised.';
COMMENT ON COLUMN findings.last_seen_at IS 'When last confirmed.';
COMMENT ON COLUMN findings.resolved_at IS 'When the cause went away.';
CREATE UNIQUE INDEX findings_open_one ON findings (kind, subject_key) WHERE status = 'open';
CREATE INDEX findings_source ON findings (source_id, status);

CREATE TABLE ct_checkpoints (
    source_id bigint NOT NULL REFERENCES discovery_sources(id) ON DELETE CASCADE,
    log_url text NOT NULL,
    next_index bigint NOT NULL DEFAULT 0 CHECK (next_index >= 0),
    tree_size bigint NOT NULL DEFAULT 0 CHECK (tree_size >= 0),
    root_hash bytea,
    sth_timestamp bigint,
    frontier bytea,
    backlog bigint NOT NULL DEFAULT 0,
    verified boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, log_url)
);
COMMENT ON TABLE ct_checkpoints IS 'How far each CT source has read each log.';
COMMENT ON COLUMN ct_checkpoints.source_id IS 'The ct_log source.';
COMMENT ON COLUMN ct_checkpoints.log_url IS 'The log.';
COMMENT ON COLUMN ct_checkpoints.next_index IS 'First entry not yet stored; every entry below is stored.';
COMMENT ON COLUMN ct_checkpoints.tree_size IS 'Tree size of the last verified signed tree head.';
COMMENT ON COLUMN ct_checkpoints.root_hash IS 'Root hash of that tree head.';
COMMENT ON COLUMN ct_checkpoints.sth_timestamp IS 'Timestamp of that tree head, ms since 1970.';
COMMENT ON COLUMN ct_checkpoints.frontier IS
    'Compact-range (Merkle frontier) hashes covering entries 0..next_index-1.';
COMMENT ON COLUMN ct_checkpoints.backlog IS 'Entries not yet read: tree_size - next_index.';
COMMENT ON COLUMN ct_checkpoints.verified IS 'True when the tree head signature was checked against a key.';
COMMENT ON COLUMN ct_checkpoints.updated_at IS 'When it last moved.';

CREATE TABLE ct_sightings (
    fingerprint_sha256 text NOT NULL REFERENCES discovered_certificates(fingerprint_sha256),
    source_id bigint NOT NULL REFERENCES discovery_sources(id) ON DELETE CASCADE,
    log_url text NOT NULL,
    log_index bigint NOT NULL,
    entry_timestamp timestamptz,
    PRIMARY KEY (source_id, log_url, log_index)
);
COMMENT ON TABLE ct_sightings IS 'Where in which CT log a matching certificate was seen.';
COMMENT ON COLUMN ct_sightings.fingerprint_sha256 IS 'The certificate or precertificate.';
COMMENT ON COLUMN ct_sightings.source_id IS 'The ct_log source that matched it.';
COMMENT ON COLUMN ct_sightings.log_url IS 'The log.';
COMMENT ON COLUMN ct_sightings.log_index IS 'Entry index in the log.';
COMMENT ON COLUMN ct_sightings.entry_timestamp IS 'The entry timestamp the log gave.';
CREATE INDEX ct_sightings_fingerprint ON ct_sightings (fingerprint_sha256);
