-- Resolve an open incident.
UPDATE incidents SET resolved_at = $2, resolution = $3
WHERE id = $1 AND resolved_at IS NULL
RETURNING site_id, url, kind, opened_at, coalesce(error_class, ''), coalesce(error, ''), regions
