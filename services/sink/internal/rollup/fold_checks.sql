-- The 1-minute rollups of the minutes [$1, $2) summed per site, region,
-- hour and histogram count: rows (site, region, hour, index, count of the
-- index, then the sums of the minutes' other fields). A minute of one
-- check (most, at a check a minute) gives its count's index by where its
-- histogram holds the 1; the others are unnested, their sums carried on
-- their first element only, so each minute's sums are counted once.
-- rollups_expiry finds the minutes.
SELECT site_id, region, date_bin(interval '1 hour', bucket_start, timestamptz 'epoch'), i, sum(n)::int,
       sum(checks)::int, sum(failures)::int, sum(duration_sum), sum(phase_checks)::int,
       sum(dns_sum), sum(connect_sum), sum(tls_sum), sum(ttfb_sum), sum(transfer_sum)
FROM (
    SELECT site_id, region, bucket_start, array_position(histogram, 1) - 1 AS i, 1 AS n,
           checks, failures, duration_sum, phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum
    FROM rollups
    WHERE bucket_width = 60 AND bucket_start >= $1 AND bucket_start < $2 AND checks = 1
    UNION ALL
    SELECT r.site_id, r.region, r.bucket_start, u.i::int - 1, u.n,
           CASE WHEN u.i = 1 THEN r.checks ELSE 0 END, CASE WHEN u.i = 1 THEN r.failures ELSE 0 END,
           CASE WHEN u.i = 1 THEN r.duration_sum ELSE 0 END, CASE WHEN u.i = 1 THEN r.phase_checks ELSE 0 END,
           CASE WHEN u.i = 1 THEN r.dns_sum ELSE 0 END, CASE WHEN u.i = 1 THEN r.connect_sum ELSE 0 END,
           CASE WHEN u.i = 1 THEN r.tls_sum ELSE 0 END, CASE WHEN u.i = 1 THEN r.ttfb_sum ELSE 0 END,
           CASE WHEN u.i = 1 THEN r.transfer_sum ELSE 0 END
    FROM rollups r CROSS JOIN LATERAL unnest(r.histogram) WITH ORDINALITY AS u(n, i)
    WHERE r.bucket_width = 60 AND r.bucket_start >= $1 AND r.bucket_start < $2 AND r.checks > 1 AND (u.n > 0 OR u.i = 1)
) AS m
GROUP BY 1, 2, 3, 4
