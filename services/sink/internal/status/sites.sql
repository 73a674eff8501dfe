-- A page of sites, worst first (down, stale, degraded, unknown, up, paused),
-- then by id; $1 text the URL or name must contain (empty: every site), $2 the page
-- size, $3 how many to skip, $4 only these sites (NULL: any). A site's state:
-- its open incidents, else its state over its regions (up until a region
-- says otherwise), unknown when no region has checked it yet.
WITH open AS (
    SELECT site_id, bool_or(kind = 'down') AS down, bool_or(kind = 'stale') AS stale, bool_or(kind = 'warning') AS warning
    FROM incidents
    WHERE resolved_at IS NULL
    GROUP BY site_id
), checked AS (
    SELECT DISTINCT site_id FROM site_region_state
), s AS (
    SELECT s.id, s.url, s.name, s.interval_ms,
           CASE
               WHEN NOT s.enabled THEN 'paused'
               WHEN o.down THEN 'down'
               WHEN o.stale THEN 'stale'
               WHEN st.state = 'degraded' OR o.warning THEN 'degraded'
               WHEN c.site_id IS NULL THEN 'unknown'
               ELSE coalesce(st.state, 'up')
           END AS state
    FROM sites s
    LEFT JOIN site_state st ON st.site_id = s.id
    LEFT JOIN open o ON o.site_id = s.id
    LEFT JOIN checked c ON c.site_id = s.id
    WHERE ($1 = '' OR strpos(lower(s.url), lower($1)) > 0 OR strpos(lower(s.name), lower($1)) > 0) AND ($4::bigint[] IS NULL OR s.id = ANY ($4))
)
SELECT id, url, name, interval_ms, state, count(*) OVER () AS total
FROM s
ORDER BY CASE state WHEN 'down' THEN 0 WHEN 'stale' THEN 1 WHEN 'degraded' THEN 2 WHEN 'unknown' THEN 3 WHEN 'up' THEN 4 ELSE 5 END, id
LIMIT $2 OFFSET $3
