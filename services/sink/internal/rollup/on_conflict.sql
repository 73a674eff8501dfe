-- Follows insert.sql: a bucket that exists gets the batch's sums added.
-- Histograms add element by element, the shorter one padded with zeros:
-- {{histogram_sum}} is that sum written out element by element
-- (rollup.go), cheaper than unnesting both and aggregating them again.
ON CONFLICT (bucket_width, site_id, region, bucket_start) DO UPDATE SET
    checks       = r.checks + excluded.checks,
    failures     = r.failures + excluded.failures,
    duration_sum = r.duration_sum + excluded.duration_sum,
    phase_checks = r.phase_checks + excluded.phase_checks,
    dns_sum      = r.dns_sum + excluded.dns_sum,
    connect_sum  = r.connect_sum + excluded.connect_sum,
    tls_sum      = r.tls_sum + excluded.tls_sum,
    ttfb_sum     = r.ttfb_sum + excluded.ttfb_sum,
    transfer_sum = r.transfer_sum + excluded.transfer_sum,
    histogram    = {{histogram_sum}}
