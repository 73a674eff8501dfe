-- +goose Up
-- Issue 9: the 1-hour and 1-day rollups are folded from the 1-minute ones a few
-- minutes' worth at a time instead of being upserted for every check in
-- the transaction that stores it. A check in a sink's write transaction
-- then costs one rollup row (its minute), not three: the hour and day rows
-- of a site are rewritten once per fold, not once per check
-- (BenchmarkSinkPreloaded: see the README).
--
-- folded_to divides the checks: those of a minute before it are counted in
-- the 1-hour and 1-day rollups, those from it on only in their minute's
-- row, and readers add those minutes to the wider buckets themselves. The
-- sink's writers hold advisory locks shared while they decide (a check
-- that arrives for a minute already folded is added to all three widths at
-- once): one per ten minutes of their checks not folded yet. The folder
-- holds those of [folded_to, T) alone while it adds those minutes to their
-- hours and days and moves folded_to to T, so every check is counted
-- exactly once, and writers of later minutes do not wait for it
-- (services/sink/internal/rollup).
-- NULL: not folding yet. Folding starts once no sink replica that predates
-- it still reports (sink_replicas.folds): such a sink adds every check to
-- all three widths itself, which a fold would count again.
CREATE TABLE rollup_fold (
    singleton boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    folded_to timestamptz CHECK (folded_to = date_trunc('minute', folded_to))
);
INSERT INTO rollup_fold (folded_to) VALUES (NULL);

ALTER TABLE sink_replicas ADD COLUMN folds boolean NOT NULL DEFAULT false;

-- rollup_unfolded(sites) is the 1-minute rollups of those sites not folded
-- yet, which a reader of the 1-hour or 1-day rollups adds to them. The
-- primary key leads with (bucket_width, site_id, region): the regions of
-- each site are found first, one index probe each (a loose index scan),
-- and then only the few minutes from folded_to on are read, instead of all
-- the minutes kept (two days' worth) of every region of the site.
-- +goose StatementBegin
CREATE FUNCTION rollup_unfolded(sites bigint[]) RETURNS SETOF rollups
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE regions AS (
        SELECT s.id AS site_id, (SELECT min(region) FROM rollups WHERE bucket_width = 60 AND site_id = s.id) AS region
        FROM unnest(sites) AS s(id)
        UNION ALL
        SELECT g.site_id, (SELECT min(region) FROM rollups WHERE bucket_width = 60 AND site_id = g.site_id AND region > g.region)
        FROM regions g WHERE g.region IS NOT NULL
    )
    SELECT r.* FROM regions g
    JOIN rollups r ON r.bucket_width = 60 AND r.site_id = g.site_id AND r.region = g.region
    WHERE r.bucket_start >= (SELECT folded_to FROM rollup_fold)
$$;
-- +goose StatementEnd

-- +goose Down
-- The sinks of the version before add every check to all three widths and
-- read the wide rollups alone: add the minutes not folded yet to them
-- first.
INSERT INTO rollups AS r (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum, phase_checks,
    dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum, histogram)
WITH m AS (
    SELECT w.width, m.site_id, m.region, date_bin(make_interval(secs => w.width), m.bucket_start, timestamptz 'epoch') AS b,
           m.checks, m.failures, m.duration_sum, m.phase_checks, m.dns_sum, m.connect_sum, m.tls_sum, m.ttfb_sum,
           m.transfer_sum, m.histogram
    FROM rollups m CROSS JOIN (VALUES (3600), (86400)) AS w(width) CROSS JOIN rollup_fold f
    WHERE m.bucket_width = 60 AND m.bucket_start >= f.folded_to
), sums AS (
    SELECT width, site_id, region, b, sum(checks) AS checks, sum(failures) AS failures, sum(duration_sum) AS duration_sum,
           sum(phase_checks) AS phase_checks, sum(dns_sum) AS dns_sum, sum(connect_sum) AS connect_sum,
           sum(tls_sum) AS tls_sum, sum(ttfb_sum) AS ttfb_sum, sum(transfer_sum) AS transfer_sum
    FROM m GROUP BY width, site_id, region, b
), counts AS ( -- the histograms added element by element
    SELECT width, site_id, region, b, array_agg(c ORDER BY i) AS histogram
    FROM (SELECT width, site_id, region, b, u.i, sum(u.c)::integer AS c
          FROM m CROSS JOIN LATERAL unnest(m.histogram) WITH ORDINALITY AS u(c, i)
          GROUP BY width, site_id, region, b, u.i) AS per_index
    GROUP BY width, site_id, region, b
)
SELECT s.width, s.site_id, s.region, s.b, s.checks, s.failures, s.duration_sum, s.phase_checks,
       s.dns_sum, s.connect_sum, s.tls_sum, s.ttfb_sum, s.transfer_sum, c.histogram
FROM sums s JOIN counts c USING (width, site_id, region, b)
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
    histogram    = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0)
                         FROM unnest(r.histogram, excluded.histogram) WITH ORDINALITY AS u(a, b, i) ORDER BY i);
DROP FUNCTION rollup_unfolded(bigint[]);
ALTER TABLE sink_replicas DROP COLUMN folds;
DROP TABLE rollup_fold;
