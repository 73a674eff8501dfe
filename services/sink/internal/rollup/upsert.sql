-- Adds a batch's buckets to the rollups, one row per (width, site, region,
-- bucket) in the batch (rollup.Aggregate merged duplicates, which one
-- statement could not update twice). The histograms travel as one flat
-- array ($14), $15 counts per bucket; they add element by element, the
-- shorter one padded with zeros. {{histogram_sum}} is that sum written out
-- element by element (rollup.go): about twice as fast as unnesting the
-- two arrays and aggregating them again, and the upsert is most of a
-- batch's cost.
INSERT INTO rollups AS r (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum, phase_checks,
    dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum, histogram)
SELECT u.w, u.s, u.g, u.b, u.c, u.f, u.d, u.pc, u.dns, u.con, u.tls, u.ttfb, u.tr,
       ($14::int[])[(u.i - 1) * $15 + 1 : u.i * $15]
FROM unnest($1::int[], $2::bigint[], $3::text[], $4::timestamptz[], $5::int[], $6::int[], $7::float8[], $8::int[],
            $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[])
     WITH ORDINALITY AS u(w, s, g, b, c, f, d, pc, dns, con, tls, ttfb, tr, i)
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
