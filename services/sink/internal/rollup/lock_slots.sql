-- Takes alone, in ascending order, the locks of the fold slots $1 to $2
-- (lock_slots_shared.sql), until the transaction ends: waits for the
-- writers of those minutes to commit.
SELECT count(pg_advisory_xact_lock((hashtext('sitewatch.rollups.fold.slot')::bigint << 32) + s))
FROM generate_series($1::bigint, $2::bigint) AS s
