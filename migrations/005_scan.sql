-- Network scan: the revocation answer cache, so a re-scan does not ask an OCSP responder or
-- fetch a CRL again while the last answer is still valid.

CREATE TABLE scan_revocation_cache (
    fingerprint_sha256 text NOT NULL CHECK (fingerprint_sha256 ~ '^[0-9a-f]{64}$'),
    url text NOT NULL,
    method text NOT NULL CHECK (method IN ('ocsp', 'crl')),
    status text NOT NULL CHECK (status IN ('good', 'revoked', 'unknown')),
    revoked_at timestamptz,
    reason text,
    this_update timestamptz,
    next_update timestamptz NOT NULL,
    checked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (fingerprint_sha256, url)
);
COMMENT ON TABLE scan_revocation_cache IS
    'Revocation answers (OCSP responses, CRL look-ups) per certificate and URL, kept until the responder''s next update.';
COMMENT ON COLUMN scan_revocation_cache.fingerprint_sha256 IS 'The certificate checked.';
COMMENT ON COLUMN scan_revocation_cache.url IS 'OCSP responder or CRL distribution point asked.';
COMMENT ON COLUMN scan_revocation_cache.method IS 'ocsp or crl.';
COMMENT ON COLUMN scan_revocation_cache.status IS 'good, revoked or unknown, as the responder said.';
COMMENT ON COLUMN scan_revocation_cache.revoked_at IS 'Revocation time, when revoked.';
COMMENT ON COLUMN scan_revocation_cache.reason IS 'Revocation reason, when the responder gave one.';
COMMENT ON COLUMN scan_revocation_cache.this_update IS 'thisUpdate of the OCSP response or CRL.';
COMMENT ON COLUMN scan_revocation_cache.next_update IS
    'Until when the answer is used without asking again (nextUpdate, or a default when none).';
COMMENT ON COLUMN scan_revocation_cache.checked_at IS 'When the answer was fetched.';
CREATE INDEX scan_revocation_cache_next ON scan_revocation_cache (next_update);

-- STARTTLS per port, overriding the defaults (25/587 smtp, 143 imap, 110 pop3, 389 ldap,
-- 5432 postgres; any other port implicit TLS): 'PORT:PROTOCOL' entries.
CREATE FUNCTION cap_starttls_valid(s text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT coalesce(bool_and(x ~ '^[0-9]{1,5}:(smtp|imap|pop3|ldap|postgres|none)$'
                             AND split_part(x, ':', 1)::int BETWEEN 1 AND 65535), true)
    FROM unnest(s) AS x
$$;
COMMENT ON FUNCTION cap_starttls_valid(text[]) IS
    'True when every entry is PORT:PROTOCOL with a port 1..65535 and a known protocol.';

ALTER TABLE discovery_sources
    ADD COLUMN starttls text[] NOT NULL DEFAULT '{}' CHECK (cap_starttls_valid(starttls));
COMMENT ON COLUMN discovery_sources.starttls IS
    'network_scan: STARTTLS per port overriding the defaults, as PORT:PROTOCOL (smtp, imap, '
    'pop3, ldap, postgres, or none for implicit TLS), e.g. {2525:smtp,25:none}.';
