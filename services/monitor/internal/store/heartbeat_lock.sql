-- A heartbeat site's row, locked: the run's start of the last /start.
SELECT started_at FROM heartbeats WHERE site_id = $1 FOR UPDATE
