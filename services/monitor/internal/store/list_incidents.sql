-- Open incidents and those opened since $1, newest first, at most $2;
-- $3: only this id (NULL: any).
SELECT id, site_id, url, kind, opened_at, resolved_at, coalesce(error_class, ''), coalesce(error, ''), regions,
       coalesce(resolution, '')
FROM incidents
WHERE ($3::bigint IS NULL AND (resolved_at IS NULL OR opened_at >= $1)) OR id = $3
ORDER BY opened_at DESC, id DESC
LIMIT $2
