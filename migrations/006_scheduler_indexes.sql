-- Indexes for the scheduler's per-tick questions, so a sweep reads only the rows it acts on
-- however many sources exist: sources whose schedule text is not judged yet, and runs
-- still running (for stale-heartbeat recovery, already indexed in 001).
CREATE INDEX discovery_sources_unjudged ON discovery_sources (id)
    WHERE schedule_judged IS DISTINCT FROM schedule;
