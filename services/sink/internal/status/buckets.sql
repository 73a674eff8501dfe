-- The rollups of width $2 (seconds) of the sites $1 since $3, every region
-- summed per bucket, oldest first.
SELECT site_id, bucket_start, sum(checks)::bigint, sum(failures)::bigint, sum(duration_sum),
       sum(phase_checks)::bigint, sum(dns_sum), sum(connect_sum), sum(tls_sum), sum(ttfb_sum), sum(transfer_sum)
FROM rollups
WHERE bucket_width = $2 AND site_id = ANY ($1::bigint[]) AND bucket_start >= $3
GROUP BY site_id, bucket_start
ORDER BY site_id, bucket_start
