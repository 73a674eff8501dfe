-- The state of site $1 in each region.
SELECT region, state, last_checked_at, coalesce(error_class, ''), coalesce(error, '')
FROM site_region_state
WHERE site_id = $1
ORDER BY region
