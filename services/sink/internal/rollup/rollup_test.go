package rollup

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBucketOf(t *testing.T) {
	for _, tc := range []struct {
		ms   float64
		want int
	}{
		{0, 0}, {1, 0}, {1.0001, 1}, {math.Pow(2, 0.25), 1}, {1000, 40}, {1e9, len(Bounds)},
	} {
		require.Equal(t, tc.want, BucketOf(tc.ms), "%v ms", tc.ms)
	}
}

func TestPercentile(t *testing.T) {
	require.True(t, math.IsNaN(Percentile(make([]int64, len(Bounds)+1), 0.5)), "empty")
	one := make([]int64, len(Bounds)+1)
	one[BucketOf(100)] = 1
	p := Percentile(one, 0.99)
	require.InDelta(t, 100, p, 100*0.19, "a single 100 ms check")
	over := make([]int64, len(Bounds)+1)
	over[len(Bounds)] = 5
	require.Equal(t, Bounds[len(Bounds)-1], Percentile(over, 0.5), "above every bound: the last bound")

	// Random durations: every estimate within a bucket's width (19 %) of the exact one.
	r := rand.New(rand.NewPCG(1, 2))
	hist := make([]int64, len(Bounds)+1)
	var exact []float64
	for range 10000 {
		ms := math.Exp(r.NormFloat64()*1.2 + 4.5) // log-normal around 90 ms
		exact = append(exact, ms)
		hist[BucketOf(ms)]++
	}
	slices.Sort(exact)
	for _, q := range []float64{0.5, 0.95, 0.99} {
		want := exact[int(math.Ceil(q*float64(len(exact))))-1]
		require.InEpsilon(t, want, Percentile(hist, q), 0.19, "p%v", q*100)
	}
}

func TestAggregateMergesBucketsInKeyOrder(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 30, 15, 0, time.UTC)
	rows := Aggregate([]Check{
		{SiteID: 2, Region: "eu", CheckedAt: at, DurationMS: 10},
		{SiteID: 1, Region: "eu", CheckedAt: at.Add(30 * time.Second), DurationMS: 20, Failed: true, Phases: true, DNSMS: 1, TTFBMS: 5},
		{SiteID: 1, Region: "eu", CheckedAt: at.Add(50 * time.Second), DurationMS: 30},
	})
	// Site 1: 2 one-minute buckets, 1 hour, 1 day; site 2: one of each.
	require.Len(t, rows, 7)
	require.True(t, slices.IsSortedFunc(rows, func(a, b Row) int {
		if a.Width != b.Width {
			return int(a.Width - b.Width)
		}
		return int(a.SiteID - b.SiteID)
	}))
	day := rows[len(rows)-2]
	require.Equal(t, Key{Width: 86400, SiteID: 1, Region: "eu", Start: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}, day.Key)
	require.EqualValues(t, 2, day.Checks)
	require.EqualValues(t, 1, day.Failures)
	require.EqualValues(t, 1, day.PhaseChecks)
	require.Equal(t, 50.0, day.DurationSum)
	require.Equal(t, 5.0, day.TTFBSum)
	require.EqualValues(t, 1, day.Histogram[BucketOf(20)])
	require.EqualValues(t, 1, day.Histogram[BucketOf(30)])
	site2 := rows[len(rows)-1]
	require.EqualValues(t, 1, site2.Checks)
	require.Nil(t, site2.Histogram, "a bucket of one check carries only the index of its count")
	require.EqualValues(t, BucketOf(site2.DurationSum), site2.One)
}
