-- Retention: one small batch of rows published before the cutoff. SKIP
-- LOCKED lets every replica run it without waiting on the others.
DELETE FROM {{table}}
WHERE id IN (
    SELECT id FROM {{table}}
    WHERE published AND published_at < now() - make_interval(secs => $1)
    ORDER BY published_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
