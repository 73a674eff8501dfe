package store

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/google/uuid"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
)

// BenchmarkInsert writes batches of 500 new records of 500 existing sites,
// the sink's default batch size, with their state changes.
func BenchmarkInsert(b *testing.B) {
	ctx := context.Background()
	pool := dbtest.Pool(b, dbtest.New(b))
	reg := prometheus.NewRegistry()
	st := New(pool, checkevent.IncidentTopic, reg)
	// The sites exist: every batch also moves their states (package incident).
	if _, err := pool.Exec(ctx, `INSERT INTO sites (url) SELECT 'https://example.com/' FROM generate_series(1, 500)`); err != nil {
		b.Fatal(err)
	}
	expiry := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	no := false
	batch := func(offset int64) []Record {
		recs := make([]Record, 500)
		for i := range recs {
			recs[i] = Record{Check: checkevent.Check{SchemaVersion: 3, Region: "local", EventID: uuid.NewString(), SiteID: int64(i + 1),
				URL: "https://example.com/", CheckedAt: time.Now().UTC(), StatusCode: 200, DurationMS: 12.5,
				RegexMatched: &no, ErrorClass: "regex", Error: "body does not match",
				Regexes: []checkevent.RegexResult{{Pattern: "ok", Match: true}}, DNSMS: 1, ConnectMS: 2, TLSMS: 3,
				TTFBMS: 4, TransferMS: 5, BodyBytes: 1024, Redirects: 1, FinalURL: "https://example.com/final",
				TLSExpiry: &expiry, TLSChainExpiry: &expiry, RemoteIP: "127.0.0.1"},
				Topic: "checks", Partition: 0, Offset: offset + int64(i)}
		}
		return recs
	}
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		recs := batch(int64(i) * 500)
		b.StartTimer()
		if _, err := st.Insert(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	reportSteps(b, st, 500)
}

// reportSteps reports the time per row each write step took, from the
// store's own metric.
func reportSteps(b *testing.B, st *Store, rowsPerOp int) {
	rows := float64(b.N * rowsPerOp)
	for _, step := range Steps {
		b.ReportMetric(testutil.ToFloat64(st.steps.WithLabelValues(step))*1e6/rows, step+"-µs/row")
	}
	b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")
}
