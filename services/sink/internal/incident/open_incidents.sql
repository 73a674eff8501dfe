-- The open incidents of the sites $1, locked for this transaction.
SELECT id, site_id, kind, opened_at
FROM incidents
WHERE site_id = ANY ($1::bigint[]) AND resolved_at IS NULL
FOR UPDATE
