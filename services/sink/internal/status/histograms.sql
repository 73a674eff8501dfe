-- The response-time histograms of the 1-hour rollups of the sites $1 since
-- $2 and of the minutes not folded into them yet (rollup_unfolded; package
-- rollup), one row per bucket and region (summed in Go: arrays of any
-- length add).
SELECT site_id, histogram
FROM rollups
WHERE bucket_width = 3600 AND site_id = ANY ($1::bigint[]) AND bucket_start >= $2
UNION ALL
SELECT site_id, histogram
FROM rollup_unfolded($1::bigint[])
WHERE bucket_start >= $2
