-- Open an incident unless one of its kind is open for the site already.
INSERT INTO incidents (site_id, url, kind, opened_at, error_class, error, regions)
VALUES ($1, $2, $3, $4, nullif($5, ''), nullif($6, ''), $7)
ON CONFLICT (site_id, kind) WHERE resolved_at IS NULL DO NOTHING
RETURNING id
