-- The 1-minute rollups of the minutes [$1, $2) summed per site, region and
-- hour: one row per site and hour instead of one per minute. The
-- histograms travel as the count index of each minute of one check (most,
-- at a check a minute: where its histogram holds the 1), and whole for the
-- others, made $3 counts long so they stack into one two-dimensional
-- array: a shorter one (from a sink that knew fewer bounds) padded with
-- zeros, the tail of a longer one (one that knows more) added to the last
-- count, above every bound this sink knows. rollups_expiry finds
-- the minutes.
SELECT site_id, region, date_bin(interval '1 hour', bucket_start, timestamptz 'epoch'),
       sum(checks)::int, sum(failures)::int, sum(duration_sum), sum(phase_checks)::int,
       sum(dns_sum), sum(connect_sum), sum(tls_sum), sum(ttfb_sum), sum(transfer_sum),
       coalesce(array_agg(array_position(histogram, 1) - 1) FILTER (WHERE checks = 1), '{}'),
       coalesce(array_agg(histogram[1:$3 - 1] || array_fill(0, ARRAY[greatest(0, $3 - 1 - cardinality(histogram))])
                          || coalesce((SELECT sum(c)::int FROM unnest(histogram[$3:]) AS c), 0))
                FILTER (WHERE checks > 1), '{}')
FROM rollups
WHERE bucket_width = 60 AND bucket_start >= $1 AND bucket_start < $2
GROUP BY 1, 2, 3
