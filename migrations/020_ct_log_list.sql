-- The CT log list as data (ct.log_list_url, ct.log_list_file): every worker that reads the list
-- writes what it found here, so a log that leaves the list (or turns readonly or retired) is
-- still known, with its key, to the sources that have not yet read it to its final tree head,
-- across worker restarts; and dashboards see the logs, their states and their lag.

CREATE TABLE ct_log_list (
    log_url text PRIMARY KEY,
    description text,
    operator text,
    protocol text NOT NULL CHECK (protocol IN ('rfc6962', 'static-ct', 'auto')),
    key_b64 text,
    log_id_b64 text,
    mmd_seconds bigint,
    state text NOT NULL DEFAULT '' CHECK (state IN ('', 'pending', 'qualified', 'usable',
                                                    'readonly', 'retired', 'rejected')),
    state_at timestamptz,
    interval_start timestamptz,
    interval_end timestamptz,
    final_tree_size bigint CHECK (final_tree_size >= 0),
    refused text,
    listed boolean NOT NULL,
    current boolean NOT NULL,
    first_listed_at timestamptz NOT NULL DEFAULT now(),
    left_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ct_log_list IS
    'CT logs of the configured v3 log list as last read by a worker (one row per log URL, kept '
    'after the log leaves the list so its sources can read it to its final tree head).';
COMMENT ON COLUMN ct_log_list.log_url IS
    'Base URL of the log as in ct_checkpoints.log_url (RFC 6962 url, or static-ct monitoring_url).';
COMMENT ON COLUMN ct_log_list.description IS 'The list''s description of the log.';
COMMENT ON COLUMN ct_log_list.operator IS 'Name of the log''s operator in the list.';
COMMENT ON COLUMN ct_log_list.protocol IS 'rfc6962 (logs[]) or static-ct (tiled_logs[]).';
COMMENT ON COLUMN ct_log_list.key_b64 IS 'The log''s public key, base64 DER SubjectPublicKeyInfo.';
COMMENT ON COLUMN ct_log_list.log_id_b64 IS 'Base64 SHA-256 of the key, as listed (checked).';
COMMENT ON COLUMN ct_log_list.mmd_seconds IS 'Maximum merge delay, seconds.';
COMMENT ON COLUMN ct_log_list.state IS
    'State in the list: usable, qualified, readonly, retired, pending, rejected ('''' when none).';
COMMENT ON COLUMN ct_log_list.state_at IS 'Timestamp of that state in the list.';
COMMENT ON COLUMN ct_log_list.interval_start IS
    'temporal_interval.start_inclusive: first certificate expiry the log accepts (NULL: open).';
COMMENT ON COLUMN ct_log_list.interval_end IS
    'temporal_interval.end_exclusive: expiry from which the log refuses certificates (NULL: open).';
COMMENT ON COLUMN ct_log_list.final_tree_size IS
    'readonly.final_tree_head.tree_size from the list; NULL when the list gives none.';
COMMENT ON COLUMN ct_log_list.refused IS
    'Why the log is not read (its key is not one, or log_id is not the key''s hash); NULL when fine.';
COMMENT ON COLUMN ct_log_list.listed IS 'In the list as last read.';
COMMENT ON COLUMN ct_log_list.current IS
    'Read by sources: listed, usable or qualified, temporal interval overlapping now to now + 398 '
    'days, not refused.';
COMMENT ON COLUMN ct_log_list.first_listed_at IS 'When a worker first found the log in the list.';
COMMENT ON COLUMN ct_log_list.left_at IS
    'When the log stopped being current; a source with a checkpoint on it reads it once more, '
    'then to its final tree head, then no more.';
COMMENT ON COLUMN ct_log_list.updated_at IS 'When a worker last wrote the row (a list read).';

-- CT lag per log: the largest tree size any source saw, how far behind the furthest-behind
-- enabled source is, and when any source last moved its checkpoint.
CREATE VIEW cap_ct_log_lag AS
WITH cp AS (
    SELECT c.log_url,
           max(c.tree_size) AS tree_size,
           min(c.next_index) FILTER (WHERE s.enabled) AS min_next_index,
           count(*) FILTER (WHERE s.enabled) AS sources,
           max(c.updated_at) AS last_read_at
    FROM ct_checkpoints c
    JOIN discovery_sources s ON s.id = c.source_id
    GROUP BY c.log_url
)
SELECT coalesce(cp.log_url, l.log_url) AS log_url,
       l.description,
       l.operator,
       coalesce(l.state, '') AS state,
       coalesce(l.current, true) AS current,
       l.left_at,
       cp.tree_size,
       coalesce(cp.sources, 0) AS sources,
       greatest(coalesce(cp.tree_size - cp.min_next_index, 0), 0) AS lag_entries,
       cp.last_read_at,
       extract(epoch FROM (now() - cp.last_read_at))::double precision AS seconds_since_read
FROM cp
FULL JOIN ct_log_list l ON l.log_url = cp.log_url;
COMMENT ON VIEW cap_ct_log_lag IS
    'CT lag per log: entries between the furthest-behind enabled source and the largest tree size '
    'seen (lag_entries), time since any checkpoint on the log moved, and the log''s state in the '
    'log list (current false: left the list or no longer takes new certificates).';

-- Per source and log, against the largest tree size any source saw of that log (a source that
-- has not read for a while does not know how far the log has grown).
CREATE VIEW cap_ct_source_lag AS
SELECT c.source_id,
       s.name AS source_name,
       s.enabled,
       c.log_url,
       c.next_index,
       greatest(m.tree_size - c.next_index, 0) AS lag_entries,
       coalesce(l.state, '') AS log_state,
       coalesce(l.current, true) AS log_current,
       c.updated_at,
       extract(epoch FROM (now() - c.updated_at))::double precision AS seconds_since_update
FROM ct_checkpoints c
JOIN discovery_sources s ON s.id = c.source_id
JOIN (SELECT log_url, max(tree_size) AS tree_size FROM ct_checkpoints GROUP BY log_url) m
    ON m.log_url = c.log_url
LEFT JOIN ct_log_list l ON l.log_url = c.log_url;
COMMENT ON VIEW cap_ct_source_lag IS
    'CT lag per source and log: entries between the source''s checkpoint and the largest tree size '
    'any source saw of the log (lag_entries), and the log''s state in the log list.';

GRANT SELECT ON cap_ct_log_lag, cap_ct_source_lag TO cap_dashboard;
