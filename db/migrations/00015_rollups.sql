-- +goose Up
-- Issue 9: rollups of the checks per site and region in 1-minute, 1-hour
-- and 1-day buckets, maintained by the sink in the transaction that stores
-- the raw rows (only rows stored for the first time count) and kept much
-- longer than them. Everything is a sum, so buckets merge: a wider range is
-- the sum of its buckets, and percentiles come from the summed histogram.
--
-- One table for the three widths rather than three tables: one upsert, one
-- expiry statement, one query shape; bucket_width picks the width. Expired
-- rows are deleted in small batches by the sink's maintenance loop: a
-- rollup table is about 1,440 (1m), 24 (1h) or 1 (1d) rows per site and
-- region a day, small next to stats, so batches of deletes stay cheap and
-- need no partition management of their own.
CREATE TABLE rollups (
    bucket_width  integer     NOT NULL CHECK (bucket_width IN (60, 3600, 86400)), -- seconds
    site_id       bigint      NOT NULL,
    region        text        NOT NULL, -- '' for checks that carry none
    bucket_start  timestamptz NOT NULL,
    checks        integer     NOT NULL,
    failures      integer     NOT NULL, -- uptime = 1 - failures / checks
    duration_sum  double precision NOT NULL,
    -- Counts of checks per response-time bucket: element i counts durations
    -- at most the i-th bound of rollup.Bounds (log-spaced, 2^(i/4) ms), the
    -- last element the ones above every bound. Bounds are only ever
    -- appended to, so arrays of different lengths still add up.
    histogram     integer[]   NOT NULL,
    phase_checks  integer     NOT NULL, -- checks that carried phases (schema_version >= 2)
    dns_sum       double precision NOT NULL,
    connect_sum   double precision NOT NULL,
    tls_sum       double precision NOT NULL,
    ttfb_sum      double precision NOT NULL,
    transfer_sum  double precision NOT NULL,
    PRIMARY KEY (bucket_width, site_id, region, bucket_start)
) WITH (fillfactor = 80); -- upserts change no indexed column: room for HOT updates
CREATE INDEX rollups_expiry ON rollups (bucket_width, bucket_start);

-- +goose Down
DROP TABLE rollups;
