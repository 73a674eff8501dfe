-- The maintenance windows (silences) of sites $1 not over yet, soonest
-- first: announced ahead and shown while they run.
SELECT site_id, starts_at, until, reason
FROM silences
WHERE site_id = ANY ($1::bigint[]) AND until > now()
ORDER BY starts_at, until, site_id
