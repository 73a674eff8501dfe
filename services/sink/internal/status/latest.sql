-- The latest check of each site of $1, and its TLS certificate's expiry.
SELECT s.id, c.checked_at, c.duration_ms, c.status_code, coalesce(c.error_class, ''), coalesce(c.error, ''), c.tls_expiry
FROM unnest($1::bigint[]) s(id)
CROSS JOIN LATERAL (
    SELECT checked_at, duration_ms, status_code, error_class, error, tls_expiry
    FROM stats
    WHERE site_id = s.id AND checked_at > now() - interval '30 days'
    ORDER BY checked_at DESC
    LIMIT 1
) c
