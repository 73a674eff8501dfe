package store

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/services/sink/internal/rollup"
)

// bucketSums is one rollup bucket as compared in the tests.
type bucketSums struct {
	Width                                       int32
	SiteID                                      int64
	Region                                      string
	Start                                       time.Time
	Checks, Failures, PhaseChecks               int64
	Duration, DNS, Connect, TLS, TTFB, Transfer float64
	Histogram                                   []int64
}

const rollupsSQL = `SELECT bucket_width, site_id, region, bucket_start, checks, failures, phase_checks,
	round(duration_sum::numeric, 6)::float8, round(dns_sum::numeric, 6)::float8, round(connect_sum::numeric, 6)::float8,
	round(tls_sum::numeric, 6)::float8, round(ttfb_sum::numeric, 6)::float8, round(transfer_sum::numeric, 6)::float8, histogram::bigint[]
	FROM rollups ORDER BY 1, 2, 3, 4`

// recomputeSQL rebuilds every bucket from the raw rows, bucketing durations
// in SQL with the same bounds (passed in) as package rollup; the last
// column lists each check's histogram index (made a histogram by
// readBuckets).
const recomputeSQL = `WITH w(width) AS (VALUES (60), (3600), (86400)),
b AS (
	SELECT w.width, s.site_id, coalesce(s.region, '') AS region,
		to_timestamp(floor(extract(epoch FROM s.checked_at) / w.width) * w.width) AS start, s.error_class,
		s.schema_version, s.duration_ms, s.dns_ms, s.connect_ms, s.tls_ms, s.ttfb_ms, s.transfer_ms,
		(SELECT count(*) FROM unnest($1::float8[]) AS bound WHERE bound < s.duration_ms) AS hb
	FROM stats s CROSS JOIN w
)
SELECT width, site_id, region, start, count(*), count(*) FILTER (WHERE error_class IS NOT NULL),
	count(*) FILTER (WHERE schema_version >= 2),
	round(sum(duration_ms)::numeric, 6)::float8, round(coalesce(sum(dns_ms), 0)::numeric, 6)::float8,
	round(coalesce(sum(connect_ms), 0)::numeric, 6)::float8, round(coalesce(sum(tls_ms), 0)::numeric, 6)::float8,
	round(coalesce(sum(ttfb_ms), 0)::numeric, 6)::float8, round(coalesce(sum(transfer_ms), 0)::numeric, 6)::float8,
	array_agg(hb)
FROM b GROUP BY width, site_id, region, start ORDER BY 1, 2, 3, 4`

// readBuckets reads buckets, their histograms padded to every bound; with
// indexes, the histogram column lists each check's index instead of counts.
func readBuckets(t *testing.T, pool *pgxpool.Pool, indexes bool, query string, args ...any) []bucketSums {
	t.Helper()
	rows, err := pool.Query(context.Background(), query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var out []bucketSums
	for rows.Next() {
		var b bucketSums
		require.NoError(t, rows.Scan(&b.Width, &b.SiteID, &b.Region, &b.Start, &b.Checks, &b.Failures, &b.PhaseChecks,
			&b.Duration, &b.DNS, &b.Connect, &b.TLS, &b.TTFB, &b.Transfer, &b.Histogram))
		if indexes {
			hist := make([]int64, len(rollup.Bounds)+1)
			for _, i := range b.Histogram {
				hist[i]++
			}
			b.Histogram = hist
		}
		// A histogram may end early: the counts after it are zeros (a
		// bucket of one check is stored up to its count).
		for len(b.Histogram) < len(rollup.Bounds)+1 {
			b.Histogram = append(b.Histogram, 0)
		}
		b.Start = b.Start.UTC()
		out = append(out, b)
	}
	require.NoError(t, rows.Err())
	return out
}

func randomRecords(r *rand.Rand, n int, from time.Time) []Record {
	regions := []string{"", "eu", "us"}
	recs := make([]Record, n)
	for i := range recs {
		c := checkevent.Check{SchemaVersion: 1 + r.IntN(3), EventID: uuid.NewString(), SiteID: int64(1 + r.IntN(5)),
			URL: "https://example.com/", CheckedAt: from.Add(time.Duration(r.Int64N(int64(49 * time.Hour)))).Truncate(time.Microsecond),
			StatusCode: 200, DurationMS: float64(r.IntN(200000)) / 100}
		if c.SchemaVersion >= 2 {
			c.DNSMS, c.ConnectMS, c.TLSMS, c.TTFBMS, c.TransferMS = 1.25, float64(r.IntN(100))/4, 3, float64(r.IntN(1000))/8, 0.5
		}
		if c.SchemaVersion >= 3 {
			c.Region = regions[r.IntN(len(regions))]
		}
		if r.IntN(5) == 0 {
			c.ErrorClass, c.Error = "timeout", "deadline exceeded"
		}
		recs[i] = Record{Check: c, Topic: "checks", Partition: 0, Offset: int64(i)}
	}
	return recs
}

// Rollups built batch by batch, with re-deliveries, equal the rollups
// recomputed from the raw rows; delivering everything again changes nothing.
func TestRollupsEqualRecomputationFromRawRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := New(pool, checkevent.IncidentTopic, prometheus.NewRegistry())
	r := rand.New(rand.NewPCG(9, uint64(time.Now().UnixNano())))
	recs := randomRecords(r, 3000, time.Now().UTC().Add(-48*time.Hour))
	// A check from a clock 10 years ahead: stored (default partition) and rolled up.
	recs[0].CheckedAt = time.Now().UTC().AddDate(10, 0, 0).Truncate(time.Microsecond)

	var stored int64
	for i := 0; i < len(recs); i += 250 {
		batch := recs[i:min(i+250, len(recs))]
		if i > 0 { // re-delivered: the end of the previous batch, and a duplicate within the batch
			batch = append(append([]Record{}, recs[i-20:i]...), batch...)
			batch = append(batch, batch[len(batch)-1])
		}
		n, err := st.Insert(ctx, batch)
		require.NoError(t, err)
		stored += n
	}
	require.EqualValues(t, len(recs), stored, "each event stored once")
	require.Positive(t, st.recent.Inserted(), "minutes no batch wrote were inserted as new rows")

	want := readBuckets(t, pool, true, recomputeSQL, rollup.Bounds)
	got := readBuckets(t, pool, false, rollupsSQL)
	require.NotEmpty(t, want)
	require.Equal(t, want, got, "rollups = recomputation from stats")

	n, err := st.Insert(ctx, recs)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Equal(t, got, readBuckets(t, pool, false, rollupsSQL), "re-delivery counts nothing twice")

	var inDefault int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM stats_default WHERE event_id = $1", recs[0].EventID).Scan(&inDefault))
	require.Equal(t, 1, inDefault, "a check outside every partition is stored in the default one")
}

// A bucket written with fewer histogram bounds (an older sink) or more (a
// newer one) still adds up element by element, and a newer sink's extra
// counts are kept.
func TestRollupsAddHistogramsOfOtherLengths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := New(pool, checkevent.IncidentTopic, prometheus.NewRegistry())
	at := time.Date(2026, 11, 24, 10, 30, 0, 0, time.UTC)
	n := len(rollup.Bounds) + 1
	longer := make([]int32, n+2)
	longer[0], longer[n], longer[n+1] = 1, 7, 9
	_, err := pool.Exec(ctx, `INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum,
		histogram, phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum)
		VALUES (60, 1, '', $1, 2, 0, 2, '{1,1}', 0, 0, 0, 0, 0, 0), (3600, 1, '', $2, 10, 0, 10, $3, 0, 0, 0, 0, 0, 0)`,
		at.Truncate(time.Minute), at.Truncate(time.Hour), longer)
	require.NoError(t, err)

	c := checkevent.Check{SchemaVersion: 3, EventID: uuid.NewString(), SiteID: 1, URL: "https://example.com/",
		CheckedAt: at, StatusCode: 200, DurationMS: 1}
	_, err = st.Insert(ctx, []Record{{Check: c, Topic: "checks"}})
	require.NoError(t, err)

	hist := func(width int) []int32 {
		var h []int32
		require.NoError(t, pool.QueryRow(ctx, "SELECT histogram FROM rollups WHERE bucket_width = $1", width).Scan(&h))
		return h
	}
	shorter := make([]int32, n)
	shorter[0], shorter[1] = 2, 1 // {1,1} padded, plus the new check at 1 ms (index 0)
	require.Equal(t, shorter, hist(60))
	longer[0] = 2
	require.Equal(t, longer, hist(3600), "the counts past this sink's bounds are kept")
}

// effectiveBuckets is what readers see: the rollups, with the 1-minute
// buckets not folded yet (from folded_to on) added to their hours and days.
func effectiveBuckets(t *testing.T, pool *pgxpool.Pool) []bucketSums {
	t.Helper()
	var foldedTo *time.Time
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT folded_to FROM rollup_fold").Scan(&foldedTo))
	rows := readBuckets(t, pool, false, rollupsSQL)
	byKey := map[rollup.Key]*bucketSums{}
	for i := range rows {
		r := &rows[i]
		byKey[rollup.Key{Width: r.Width, SiteID: r.SiteID, Region: r.Region, Start: r.Start}] = r
	}
	for _, r := range rows {
		if r.Width != 60 || foldedTo == nil || r.Start.Before(*foldedTo) {
			continue
		}
		for _, w := range rollup.Widths[1:] {
			k := rollup.Key{Width: int32(w / time.Second), SiteID: r.SiteID, Region: r.Region, Start: r.Start.Truncate(w)}
			b := byKey[k]
			if b == nil {
				b = &bucketSums{Width: k.Width, SiteID: k.SiteID, Region: k.Region, Start: k.Start, Histogram: make([]int64, len(r.Histogram))}
				byKey[k] = b
			}
			b.Checks += r.Checks
			b.Failures += r.Failures
			b.PhaseChecks += r.PhaseChecks
			b.Duration += r.Duration
			b.DNS += r.DNS
			b.Connect += r.Connect
			b.TLS += r.TLS
			b.TTFB += r.TTFB
			b.Transfer += r.Transfer
			for i, n := range r.Histogram {
				b.Histogram[i] += n
			}
		}
	}
	out := make([]bucketSums, 0, len(byKey))
	for _, b := range byKey {
		for _, f := range []*float64{&b.Duration, &b.DNS, &b.Connect, &b.TLS, &b.TTFB, &b.Transfer} {
			*f = math.Round(*f*1e6) / 1e6
		}
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b bucketSums) int {
		return cmp.Or(cmp.Compare(a.Width, b.Width), cmp.Compare(a.SiteID, b.SiteID), cmp.Compare(a.Region, b.Region), a.Start.Compare(b.Start))
	})
	return out
}

// With folding, rollups built batch by batch (re-deliveries, checks far
// behind and ahead of the folds) while folds run between the batches are,
// as readers see them, the rollups recomputed from the raw rows: each
// check counted exactly once, whether Apply or Fold added it to its hour
// and day.
func TestFoldedRollupsEqualRecomputationFromRawRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := New(pool, checkevent.IncidentTopic, prometheus.NewRegistry())
	r := rand.New(rand.NewPCG(11, uint64(time.Now().UnixNano())))
	from := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Minute)
	recs := randomRecords(r, 3000, from)
	_, err := pool.Exec(ctx, "UPDATE rollup_fold SET folded_to = $1", from.Add(6*time.Hour))
	require.NoError(t, err)

	folded := 0
	for i := 0; i < len(recs); i += 250 {
		batch := recs[i:min(i+250, len(recs))]
		if i > 0 {
			batch = append(append([]Record{}, recs[i-20:i]...), batch...)
		}
		_, err := st.Insert(ctx, batch)
		require.NoError(t, err)
		for {
			res, err := rollup.Fold(ctx, pool, from.Add(time.Duration(i/250)*4*time.Hour))
			require.NoError(t, err)
			if res.To.IsZero() {
				break
			}
			folded += res.Checks
		}
	}
	require.Positive(t, folded, "folds added checks to hours and days")
	require.Positive(t, st.recent.Inserted(), "minutes no batch wrote were inserted as new rows")
	var unfolded int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM rollups, rollup_fold WHERE bucket_width = 60 AND bucket_start >= folded_to`).Scan(&unfolded))
	require.Positive(t, unfolded, "minutes not folded yet, which readers add")
	t.Logf("%d checks folded, %d minutes not folded yet", folded, unfolded)

	want := readBuckets(t, pool, true, recomputeSQL, rollup.Bounds)
	require.Equal(t, want, effectiveBuckets(t, pool), "rollups and the minutes not folded = recomputation from stats")
}
