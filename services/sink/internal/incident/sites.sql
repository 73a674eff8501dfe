-- The settings of the sites $1 that decide their state, and their state
-- as a whole ('' before the first is written).
SELECT id, url, enabled, interval_ms, failure_threshold, success_threshold, coalesce(quorum, 0), tls_warning_days, regions,
       coalesce((SELECT st.state FROM site_state st WHERE st.site_id = sites.id), '')
FROM sites
WHERE id = ANY ($1::bigint[])
