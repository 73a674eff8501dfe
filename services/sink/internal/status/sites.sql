-- A page of sites, worst first (down, stale, degraded, unknown, up, paused),
-- then by id; $1 text the URL must contain (empty: every site), $2 the page
-- size, $3 how many to skip, $4 only this site (NULL: any). A site's state:
-- its open incidents, else its state over its regions (up until a region
-- says otherwise), unknown when no region has checked it yet.
WITH s AS (
    SELECT s.id, s.url, s.interval_ms,
           CASE
               WHEN NOT s.enabled THEN 'paused'
               WHEN EXISTS (SELECT 1 FROM incidents i WHERE i.site_id = s.id AND i.resolved_at IS NULL AND i.kind = 'down') THEN 'down'
               WHEN EXISTS (SELECT 1 FROM incidents i WHERE i.site_id = s.id AND i.resolved_at IS NULL AND i.kind = 'stale') THEN 'stale'
               WHEN st.state = 'degraded'
                 OR EXISTS (SELECT 1 FROM incidents i WHERE i.site_id = s.id AND i.resolved_at IS NULL AND i.kind = 'warning') THEN 'degraded'
               WHEN NOT EXISTS (SELECT 1 FROM site_region_state r WHERE r.site_id = s.id) THEN 'unknown'
               ELSE coalesce(st.state, 'up')
           END AS state
    FROM sites s
    LEFT JOIN site_state st ON st.site_id = s.id
    WHERE ($1 = '' OR strpos(lower(s.url), lower($1)) > 0) AND ($4::bigint IS NULL OR s.id = $4)
)
SELECT id, url, interval_ms, state, count(*) OVER () AS total
FROM s
ORDER BY CASE state WHEN 'down' THEN 0 WHEN 'stale' THEN 1 WHEN 'degraded' THEN 2 WHEN 'unknown' THEN 3 WHEN 'up' THEN 4 ELSE 5 END, id
LIMIT $2 OFFSET $3
