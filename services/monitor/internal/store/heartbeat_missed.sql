-- A missed deadline was written as a failed check: the next one is an
-- interval on (one failed check per interval while the job stays silent),
-- and a run started before it is over.
UPDATE heartbeats h
SET deadline = now() + make_interval(secs => s.interval_ms / 1000.0), started_at = NULL
FROM sites s
WHERE s.id = h.site_id AND h.site_id = ANY ($1::bigint[])
