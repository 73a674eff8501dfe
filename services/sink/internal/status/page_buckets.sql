-- The rollups of width $2 (seconds) of the sites $1 since $3, a row per
-- region: what a public page's bars need, and no more (buckets.sql, for
-- the operator's charts, adds the phases, sums the regions and orders).
-- The page adds the minutes not folded yet (page_unfolded.sql) itself.
SELECT site_id, bucket_start, checks, failures, duration_sum
FROM rollups
WHERE bucket_width = $2 AND site_id = ANY ($1::bigint[]) AND bucket_start >= $3
