-- Adds a batch's buckets to the rollups, one row per (width, site, region,
-- bucket) in the batch (rollup.Aggregate merged duplicates, which one
-- statement could not update twice). A bucket of one check sends only the
-- index of its histogram count ($15, 0-based; the array is built here:
-- zeros, a 1, zeros); the histograms of the others travel as one flat
-- array ($14), $17 counts each, from offset $16. Most buckets of a batch
-- hold one check, and encoding 65 counts each was a third of the sink's
-- CPU. Histograms add element by element, the shorter one padded with
-- zeros: {{histogram_sum}} is that sum written out element by element
-- (rollup.go), cheaper than unnesting both and aggregating them again
-- (store.BenchmarkInsert: rollups from about 100 to 80 µs a check).
INSERT INTO rollups AS r (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum, phase_checks,
    dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum, histogram)
SELECT u.w, u.s, u.g, u.b, u.c, u.f, u.d, u.pc, u.dns, u.con, u.tls, u.ttfb, u.tr,
       CASE WHEN u.one >= 0 THEN array_fill(0, ARRAY[u.one]) || 1
            ELSE ($14::int[])[u.off + 1 : u.off + $17] END
FROM unnest($1::int[], $2::bigint[], $3::text[], $4::timestamptz[], $5::int[], $6::int[], $7::float8[], $8::int[],
            $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], $15::int[], $16::int[])
     AS u(w, s, g, b, c, f, d, pc, dns, con, tls, ttfb, tr, one, off)
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
