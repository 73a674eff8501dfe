package status

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/services/sink/internal/rollup"
)

// BenchmarkStatusPage: 10,000 sites, each with a day of 1-hour rollups and
// 30 days of 1-day rollups (540,000 rows) and the 15 minutes not folded into
// them yet (150,000 1-minute rows; two days of them for the 101 sites read
// most), a latest check and a region state, 1 % of them down with an open
// incident. Reports the time to
// render the first page of / and of /api/sites, a filtered page, and a
// site's page over 7 days.
func BenchmarkStatusPage(b *testing.B) {
	ctx := context.Background()
	pool := dbtest.Pool(b, dbtest.New(b))
	hist := make([]int32, len(rollup.Bounds)+1)
	hist[rollup.BucketOf(40)] = 60
	one := make([]int32, len(rollup.Bounds)+1)
	one[rollup.BucketOf(40)] = 1
	for _, q := range []string{
		`INSERT INTO sites (url) SELECT 'https://site' || i || '.example/' FROM generate_series(1, 10000) i`,
		`INSERT INTO site_region_state (site_id, region, state, last_checked_at) SELECT id, 'eu-west', 'up', now() FROM sites`,
		`INSERT INTO site_state (site_id, state, since) SELECT id, 'up', now() FROM sites`,
		`INSERT INTO incidents (site_id, url, kind, opened_at, error_class, error, regions)
		 SELECT id, url, 'down', now(), 'http', 'status 503', '{eu-west}' FROM sites WHERE id % 100 = 0`,
		`INSERT INTO stats (event_id, site_id, url, checked_at, status_code, duration_ms, topic_name, kafka_partition, kafka_offset, region)
		 SELECT gen_random_uuid(), id, url, now() - interval '10 seconds', 200, 40, 'checks', 0, id, 'eu-west' FROM sites`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum, histogram,
		                     phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum)
		SELECT w, s.id, 'eu-west', b, 60, (s.id % 100 = 0)::int, 2400, $1, 60, 300, 600, 600, 600, 300
		FROM sites s,
		     LATERAL (SELECT 3600 AS w, g AS b FROM generate_series(date_trunc('hour', now()) - interval '23 hours', date_trunc('hour', now()), interval '1 hour') g
		              UNION ALL
		              SELECT 86400, g FROM generate_series(date_trunc('day', now()) - interval '29 days', date_trunc('day', now()), interval '1 day') g) t`,
		hist); err != nil {
		b.Fatal(err)
	}
	// Folding (package rollup) has reached 15 minutes ago: every site has
	// those minutes in 1-minute rollups only, which the pages add to the
	// hours and days; the sites on the first page and the one whose page
	// is read have the two days of minutes kept.
	if _, err := pool.Exec(ctx, `UPDATE rollup_fold SET folded_to = date_trunc('minute', now()) - interval '15 minutes'`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum, histogram,
		                     phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum)
		SELECT 60, s.id, 'eu-west', g, 1, 0, 40, $1, 1, 5, 10, 10, 10, 5
		FROM sites s, generate_series(date_trunc('minute', now()) - interval '2 days', date_trunc('minute', now()), interval '1 minute') g
		WHERE s.id % 100 = 0 OR s.id = 4242 OR g >= date_trunc('minute', now()) - interval '15 minutes'`, one); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	s, err := New(Config{Addr: "127.0.0.1:0"}, pool, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	for _, path := range []string{"/", "/api/sites", "/api/sites?q=site77", "/sites/4242?range=7d"} {
		b.Run(path, func(b *testing.B) {
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", path, w.Code, w.Body.String())
				}
			}
		})
	}
}

// BenchmarkPublicPage: a public status page of 100 sites in 5 groups,
// each site with 90 days of 1-day rollups, 24 hours of 1-hour rollups and
// the 15 minutes not folded into them yet, 10 of them down with an open
// outage and every site with 3 outages resolved in the last 90 days; among
// 10,000 sites. Reports one render with nothing cached (HTML with gzip,
// and JSON): what a request costs when the page's cache has expired.
func BenchmarkPublicPage(b *testing.B) {
	pool := benchPool(b)
	s, err := NewPublic(PublicConfig{Addr: "127.0.0.1:0", Rate: 1e4, Burst: 1e4, CacheFor: time.Second}, pool, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	s.cache = newRenderCache(0) // every request renders
	h := s.Handler()
	for _, path := range []string{"/status/big", "/api/status/big", "/status/big/feed.atom"} {
		b.Run(path, func(b *testing.B) {
			size := 0
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
				if w.Code != http.StatusOK {
					b.Fatalf("%s: %d %s", path, w.Code, w.Body.String())
				}
				size = w.Body.Len()
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}

// benchPool is BenchmarkPublicPage's database.
func benchPool(b *testing.B) *pgxpool.Pool {
	ctx := context.Background()
	pool := dbtest.Pool(b, dbtest.New(b))
	hist := make([]int32, len(rollup.Bounds)+1)
	hist[rollup.BucketOf(40)] = 60
	for _, q := range []string{
		`INSERT INTO sites (url, name) SELECT 'https://site' || i || '.example/', 'Service number ' || i FROM generate_series(1, 10000) i`,
		`INSERT INTO site_region_state (site_id, region, state, last_checked_at) SELECT id, 'eu-west', 'up', now() FROM sites`,
		`INSERT INTO site_state (site_id, state, since) SELECT id, 'up', now() FROM sites`,
		`INSERT INTO incidents (site_id, url, kind, opened_at, error_class, error, regions)
		 SELECT id, url, 'down', now() - interval '5 minutes', 'http', 'status 503', '{eu-west}' FROM sites WHERE id % 10 = 0`,
		`INSERT INTO incidents (site_id, url, kind, opened_at, resolved_at, error_class, error, regions)
		 SELECT id, url, 'down', now() - k * interval '20 days', now() - k * interval '20 days' + interval '30 minutes', 'http', 'status 503', '{eu-west}'
		 FROM sites, generate_series(1, 3) k`,
		`INSERT INTO status_pages (slug, title, announcement) VALUES ('big', 'A big page', 'We are **watching**.')`,
		`INSERT INTO status_page_sites (slug, site_id, grp, position) SELECT 'big', id, 'Group ' || ((id - 1) / 20), id FROM sites WHERE id <= 100`,
		`UPDATE rollup_fold SET folded_to = date_trunc('minute', now()) - interval '15 minutes'`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum, histogram,
		                     phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum)
		SELECT w, s.id, 'eu-west', b, 60, (s.id % 7 = 0)::int, 2400, $1::integer[], 0, 0, 0, 0, 0, 0
		FROM sites s,
		     LATERAL (SELECT 3600 AS w, g AS b FROM generate_series(date_trunc('hour', now()) - interval '23 hours', date_trunc('hour', now()), interval '1 hour') g
		              UNION ALL
		              SELECT 86400, g FROM generate_series(date_trunc('day', now()) - interval '89 days', date_trunc('day', now()), interval '1 day') g) t
		WHERE s.id <= 1000
		UNION ALL
		SELECT 60, s.id, 'eu-west', g, 1, 0, 40, $1, 0, 0, 0, 0, 0, 0
		FROM sites s, generate_series(date_trunc('minute', now()) - interval '15 minutes', date_trunc('minute', now()), interval '1 minute') g`,
		hist); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	return pool
}
