-- The 1-minute rollups of the sites $1 not folded into the hours and days
-- yet (rollup_unfolded; package rollup): a public page adds them to its
-- bars.
SELECT site_id, bucket_start, checks, failures, duration_sum FROM rollup_unfolded($1::bigint[])
