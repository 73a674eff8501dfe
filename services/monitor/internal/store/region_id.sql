-- The number of region $1, registered on first use.
WITH added AS (
    INSERT INTO monitor_regions (name) VALUES ($1)
    ON CONFLICT (name) DO NOTHING
    RETURNING id
)
SELECT id FROM added
UNION ALL
SELECT id FROM monitor_regions WHERE name = $1
LIMIT 1
