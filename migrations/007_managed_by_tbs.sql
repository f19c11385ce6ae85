-- A CT precertificate is managed when its final certificate is: the two share tbs_sha256
-- (the TBSCertificate without the poison and SCT extensions). cap_inventory.managed said
-- false for such a precertificate until now; the CT monitor already judged it this way for
-- its own findings. Same columns as before (CREATE OR REPLACE keeps grants and the views
-- built on it).
CREATE OR REPLACE VIEW cap_inventory AS
SELECT c.fingerprint_sha256,
       c.subject,
       c.issuer,
       c.sans,
       c.serial,
       c.not_before,
       c.not_after,
       floor(extract(epoch FROM (c.not_after - now())) / 86400)::integer AS days_to_expiry,
       coalesce(c.not_after < now(), false) AS expired,
       c.key_algorithm,
       c.key_bits,
       c.key_curve,
       c.signature_algorithm,
       c.pqc_class,
       c.is_precert,
       c.is_ca,
       c.self_signed,
       c.tbs_sha256,
       (c.is_precert AND EXISTS (
            SELECT 1 FROM discovered_certificates f
            WHERE f.tbs_sha256 = c.tbs_sha256 AND NOT f.is_precert)) AS has_final_certificate,
       (EXISTS (SELECT 1 FROM managed_certificates m
                WHERE m.fingerprint_sha256 = c.fingerprint_sha256)
        OR (c.is_precert AND EXISTS (
            SELECT 1 FROM discovered_certificates f
            JOIN managed_certificates m ON m.fingerprint_sha256 = f.fingerprint_sha256
            WHERE f.tbs_sha256 = c.tbs_sha256))) AS managed,
       (SELECT count(*) FROM endpoints e
        WHERE e.fingerprint_sha256 = c.fingerprint_sha256) AS endpoint_count,
       coalesce((SELECT array_agg(DISTINCT e.host || ':' || e.port)
                 FROM endpoints e WHERE e.fingerprint_sha256 = c.fingerprint_sha256),
                '{}') AS served_at,
       EXISTS (SELECT 1 FROM ct_sightings s
               WHERE s.fingerprint_sha256 = c.fingerprint_sha256) AS seen_in_ct,
       (SELECT count(*) FROM findings f
        WHERE f.fingerprint_sha256 = c.fingerprint_sha256 AND f.status = 'open') AS open_findings,
       c.first_seen_at,
       c.last_seen_at
FROM discovered_certificates c;
COMMENT ON COLUMN cap_inventory.managed IS
    'True when CertAutoPilot manages the certificate, or (for a CT precertificate) its final certificate.';
