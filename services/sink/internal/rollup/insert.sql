-- Inserts a batch's buckets into the rollups, one row per (width, site,
-- region, bucket) in the batch (rollup.Aggregate merged duplicates, which
-- one statement could not update twice). Alone for the 1-minute buckets
-- that rollup.Recent says are new; followed by on_conflict.sql for all
-- others (upsertSQL in rollup.go). A bucket of one check sends only the
-- index of its histogram count ($15, 0-based; the array is built here:
-- zeros up to a 1, the zeros after it left out); the histograms of the
-- others travel as one flat array ($14), $17 counts each, from offset
-- $16. Most buckets of a batch hold one check, and encoding 65 counts each
-- was a third of the sink's CPU.
INSERT INTO rollups AS r (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum, phase_checks,
    dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum, histogram)
SELECT u.w, u.s, u.g, u.b, u.c, u.f, u.d, u.pc, u.dns, u.con, u.tls, u.ttfb, u.tr,
       CASE WHEN u.one >= 0 THEN array_fill(0, ARRAY[u.one]) || 1
            ELSE ($14::int[])[u.off + 1 : u.off + $17] END
FROM unnest($1::int[], $2::bigint[], $3::text[], $4::timestamptz[], $5::int[], $6::int[], $7::float8[], $8::int[],
            $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], $15::int[], $16::int[])
     AS u(w, s, g, b, c, f, d, pc, dns, con, tls, ttfb, tr, one, off)
