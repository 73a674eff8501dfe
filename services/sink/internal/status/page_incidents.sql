-- The outages of sites $1 a status page shows: the open ones and those
-- opened since $2, newest first, at most $3. Only outages (kind down):
-- stale checks and certificate warnings are the operator's business.
SELECT id, site_id, opened_at, resolved_at
FROM incidents
WHERE site_id = ANY ($1::bigint[]) AND kind = 'down' AND (resolved_at IS NULL OR opened_at >= $2)
ORDER BY opened_at DESC, id DESC
LIMIT $3
