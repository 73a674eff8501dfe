-- Every region's state of the sites $1, locked for this transaction.
SELECT site_id, region, state, failures, passes, last_checked_at, coalesce(error_class, ''), coalesce(error, ''), degraded
FROM site_region_state
WHERE site_id = ANY ($1::bigint[])
ORDER BY site_id, region
FOR UPDATE
