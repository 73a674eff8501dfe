package rollup

import (
	"context"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/db/dbtest"
)

// BenchmarkFold: 10,000 sites checked once a minute (one check per
// 1-minute rollup, response times spread over 20 buckets), 30 minutes not
// folded yet: the time one Fold takes to add them to their hours and days,
// per check. Each iteration folds the same 30 minutes again from a fresh
// copy.
func BenchmarkFold(b *testing.B) {
	ctx := context.Background()
	pool := dbtest.Pool(b, dbtest.New(b))
	base := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	if _, err := pool.Exec(ctx, `CREATE TABLE fold_source AS
		SELECT 60 AS bucket_width, s AS site_id, 'local'::text AS region, $1::timestamptz + m * interval '1 minute' AS bucket_start,
		       1 AS checks, (s + m) % 100 / 99 AS failures, 20.0 + (s + m) % 170 AS duration_sum,
		       array_fill(0, ARRAY[28 + (s + m) % 20]) || 1 || array_fill(0, ARRAY[64 - 28 - (s + m) % 20]) AS histogram,
		       1 AS phase_checks, 1.0 AS dns_sum, 3.0 AS connect_sum, 6.0 AS tls_sum, 9.0 AS ttfb_sum, 1.0 AS transfer_sum
		FROM generate_series(1, 10000) s, generate_series(0, 59) m`, base); err != nil {
		b.Fatal(err)
	}
	const checks = 10000 * 30
	var seconds float64
	for b.Loop() {
		b.StopTimer()
		for _, q := range []string{`TRUNCATE rollups`, `INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures,
			duration_sum, histogram, phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum) SELECT * FROM fold_source`,
			`VACUUM ANALYZE rollups`} {
			if _, err := pool.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := pool.Exec(ctx, setFoldedToSQL, base); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := Fold(ctx, pool, base.Add(2*time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		seconds += time.Since(start).Seconds()
		if res.Checks != checks {
			b.Fatalf("folded %d checks, want %d", res.Checks, checks)
		}
	}
	b.ReportMetric(seconds*1e6/float64(checks*b.N), "µs/check")
}
