-- A re-scan that confirms what is stored writes as little as it can (worker/inventory.c,
-- CAP_INVENTORY_REFRESH_S): a certificate already stored, an endpoint whose row would not change
-- and a finding (open, or acknowledged or suppressed until later) raised again unchanged are
-- left alone when they were written less than an hour ago. An unchanged finding is then not
-- stamped with the run, so the run records the ids it confirmed here, one row per batch, in the
-- batch's transaction; the resolution at the end of the run counts them as raised by the run
-- and drops the run's rows.

CREATE TABLE run_confirmed_findings (
    run_id bigint NOT NULL REFERENCES discovery_runs(id) ON DELETE CASCADE,
    finding_ids bigint[] NOT NULL
);
CREATE INDEX run_confirmed_findings_run ON run_confirmed_findings (run_id);
COMMENT ON TABLE run_confirmed_findings IS
    'Findings a running run raised again unchanged without rewriting them (one row per '
    'batch); dropped when the run resolves its findings.';
COMMENT ON COLUMN run_confirmed_findings.run_id IS 'The run.';
COMMENT ON COLUMN run_confirmed_findings.finding_ids IS 'Ids of the findings it confirmed.';

COMMENT ON COLUMN discovered_certificates.last_seen_at IS
    'When discovery last saw it, to within an hour (moved when at least an hour old).';
COMMENT ON COLUMN endpoints.last_seen_at IS
    'Last observation, to within an hour: moved with any change, else when at least an hour old.';
COMMENT ON COLUMN findings.run_id IS
    'Run that last wrote it: raised, changed, or refreshed (an unchanged finding is refreshed at '
    'most once an hour; the runs in between confirm it in run_confirmed_findings). NULL when '
    'that run was deleted.';
COMMENT ON COLUMN findings.last_seen_at IS
    'When last confirmed, to within an hour (moved with any change, else when at least an hour old).';
