-- The rollups of width $2 (seconds) of the sites $1 since $3, every region
-- summed per bucket, oldest first. For a width above a minute, the minutes
-- not folded into it yet (rollup_unfolded; package rollup) are added to
-- their buckets here.
SELECT site_id, bucket_start, sum(checks)::bigint, sum(failures)::bigint, sum(duration_sum),
       sum(phase_checks)::bigint, sum(dns_sum), sum(connect_sum), sum(tls_sum), sum(ttfb_sum), sum(transfer_sum)
FROM (
    SELECT site_id, bucket_start, checks, failures, duration_sum, phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum
    FROM rollups
    WHERE bucket_width = $2 AND site_id = ANY ($1::bigint[]) AND bucket_start >= $3
    UNION ALL
    SELECT site_id, date_bin(make_interval(secs => $2), bucket_start, timestamptz 'epoch'), checks, failures, duration_sum,
           phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum
    FROM rollup_unfolded($1::bigint[])
    WHERE $2 > 60 AND date_bin(make_interval(secs => $2), bucket_start, timestamptz 'epoch') >= $3
) AS b
GROUP BY site_id, bucket_start
ORDER BY site_id, bucket_start
