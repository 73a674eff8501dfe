package rollup

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
)

// apply adds checks to the rollups in a transaction of their own, as a
// sink's writer does.
func apply(t *testing.T, pool *pgxpool.Pool, checks ...Check) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, Apply(ctx, tx, checks, NewRecent())) // as a sink just started: every minute is inserted, or added to once one exists
	require.NoError(t, tx.Commit(ctx))
}

// checksIn is the checks counted in the rollup of width and start for site 1.
func checksIn(t *testing.T, pool *pgxpool.Pool, width time.Duration, start time.Time) int {
	t.Helper()
	var n int
	err := pool.QueryRow(context.Background(), `SELECT coalesce(sum(checks), 0) FROM rollups
		WHERE site_id = 1 AND bucket_width = $1 AND bucket_start = $2`, int32(width/time.Second), start).Scan(&n)
	require.NoError(t, err)
	return n
}

// foldedTo is rollup_fold.folded_to, nil while folding has not started.
func foldedTo(t *testing.T, pool *pgxpool.Pool) *time.Time {
	t.Helper()
	var at *time.Time
	require.NoError(t, pool.QueryRow(context.Background(), foldedToSQL).Scan(&at))
	if at != nil {
		*at = at.UTC()
	}
	return at
}

// A fold waits for a writer that decided on folded_to to commit, and then
// counts that writer's check; checks of minutes not folded go to their
// minute only until folded, those of minutes folded already to all three
// widths at once, and nothing is counted twice.
func TestFoldCountsEveryCheckOnceAndWaitsForWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	_, err := pool.Exec(ctx, setFoldedToSQL, base)
	require.NoError(t, err)
	day := base.Truncate(24 * time.Hour)
	var checks []Check
	for m := range 60 { // a check a minute, 10:00..10:59
		checks = append(checks, Check{SiteID: 1, CheckedAt: base.Add(time.Duration(m)*time.Minute + 7*time.Second), DurationMS: float64(10 + m)})
	}
	apply(t, pool, checks...)
	require.Equal(t, 0, checksIn(t, pool, time.Hour, base), "not folded yet: in the minutes only")
	require.Equal(t, 1, checksIn(t, pool, time.Minute, base.Add(20*time.Minute)))

	// A writer decides (10:20 is not folded: its minute only) and has not
	// committed when the fold starts.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback(ctx) }()
	require.NoError(t, Apply(ctx, tx, []Check{{SiteID: 1, CheckedAt: base.Add(20*time.Minute + 30*time.Second), DurationMS: 5}}, NewRecent()))
	type result struct {
		res Folded
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := Fold(ctx, pool, base.Add(2*time.Hour))
		done <- result{res, err}
	}()
	require.Eventually(t, func() bool {
		var waiting int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").Scan(&waiting))
		return waiting == 1
	}, 10*time.Second, 5*time.Millisecond, "the fold waits for the writer's lock")
	select {
	case r := <-done:
		t.Fatalf("the fold ran while a writer held the lock: %+v %v", r.res, r.err)
	default:
	}
	require.NoError(t, tx.Commit(ctx))
	r := <-done
	require.NoError(t, r.err)
	require.Equal(t, Folded{From: base, To: base.Add(FoldMax), Checks: 31, FoldedTo: base.Add(FoldMax)}, r.res,
		"the oldest FoldMax of minutes (the newest five wait: FoldLag), the waiting writer's check among them")
	require.Equal(t, 31, checksIn(t, pool, time.Hour, base))
	require.Equal(t, 31, checksIn(t, pool, 24*time.Hour, day))
	require.Equal(t, base.Add(FoldMax), *foldedTo(t, pool))

	// A check for a minute folded already goes to all three widths; one
	// for a minute not folded yet, to its minute only.
	apply(t, pool, Check{SiteID: 1, CheckedAt: base.Add(10 * time.Minute), DurationMS: 1},
		Check{SiteID: 1, CheckedAt: base.Add(40 * time.Minute), DurationMS: 1})
	require.Equal(t, 32, checksIn(t, pool, time.Hour, base))
	require.Equal(t, 2, checksIn(t, pool, time.Minute, base.Add(10*time.Minute)))
	require.Equal(t, 2, checksIn(t, pool, time.Minute, base.Add(40*time.Minute)))

	// A writer of minutes the next fold does not take (10:55: it takes
	// 10:30..10:50, five minutes before the newest cut to a FoldSlot) does
	// not hold it up.
	other, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = other.Rollback(ctx) }()
	require.NoError(t, Apply(ctx, other, []Check{{SiteID: 1, CheckedAt: base.Add(55 * time.Minute), DurationMS: 1}}, NewRecent()))
	go func() {
		res, err := Fold(ctx, pool, base.Add(2*time.Hour))
		done <- result{res, err}
	}()
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		require.NoError(t, other.Commit(ctx)) // let the fold end before failing
		t.Fatalf("the fold waited for a writer of other minutes: %+v", <-done)
	}
	require.NoError(t, r.err)
	require.Equal(t, Folded{From: base.Add(FoldMax), To: base.Add(50 * time.Minute), Checks: 21, FoldedTo: base.Add(50 * time.Minute)}, r.res)
	require.NoError(t, other.Commit(ctx))
	require.Equal(t, 53, checksIn(t, pool, time.Hour, base))
	require.Equal(t, 53, checksIn(t, pool, 24*time.Hour, day))
	r.res, r.err = Fold(ctx, pool, base.Add(2*time.Hour))
	require.NoError(t, r.err)
	require.Equal(t, Folded{FoldedTo: base.Add(50 * time.Minute)}, r.res, "less than FoldMin ready: nothing")

	// The folded hour holds the histogram of its checks, element by element.
	var hist []int32
	require.NoError(t, pool.QueryRow(ctx, "SELECT histogram FROM rollups WHERE bucket_width = 3600").Scan(&hist))
	want := make([]int32, len(Bounds)+1)
	for _, c := range checks[:50] {
		want[BucketOf(c.DurationMS)]++
	}
	want[BucketOf(5)]++
	want[BucketOf(1)] += 2 // 10:10 and 10:40
	require.Equal(t, want, hist)
}

// Folding starts only once no replica of a sink that does not fold
// reports, and after the newest minute stored, however far ahead: every
// check stored before went to all three widths already.
func TestFoldStartsAfterOldSinksAndTheNewestMinute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	now := time.Date(2026, 11, 24, 10, 0, 30, 0, time.UTC)
	ahead := now.Add(3 * time.Hour).Truncate(time.Minute) // a monitor's clock ahead
	apply(t, pool, Check{SiteID: 1, CheckedAt: now.Add(-time.Hour), DurationMS: 1}, Check{SiteID: 1, CheckedAt: ahead, DurationMS: 1})
	require.Nil(t, foldedTo(t, pool))
	require.Equal(t, 1, checksIn(t, pool, time.Hour, ahead.Truncate(time.Hour)), "not folding: all three widths")

	_, err := pool.Exec(ctx, `INSERT INTO sink_replicas (instance_id, caught_up, behind, reported_at) VALUES ('old', true, 0, now())`)
	require.NoError(t, err)
	res, err := Fold(ctx, pool, now)
	require.NoError(t, err)
	require.Equal(t, Folded{Waiting: []string{"old"}}, res)
	require.Nil(t, foldedTo(t, pool), "a sink that adds every check to every width still runs")

	_, err = pool.Exec(ctx, `UPDATE sink_replicas SET folds = true`)
	require.NoError(t, err)
	res, err = Fold(ctx, pool, now)
	require.NoError(t, err)
	start := ahead.Add(FoldSlot) // the first slot after the newest minute
	require.Equal(t, Folded{Started: true, To: start, FoldedTo: start}, res)
	require.Equal(t, start, *foldedTo(t, pool))

	apply(t, pool, Check{SiteID: 1, CheckedAt: start.Add(-time.Minute), DurationMS: 1}, Check{SiteID: 1, CheckedAt: start, DurationMS: 1})
	require.Equal(t, 2, checksIn(t, pool, time.Hour, ahead.Truncate(time.Hour)), "before the start: all widths; from it: the minute only")
	require.Equal(t, 1, checksIn(t, pool, time.Minute, start))
}

// Minutes written by sinks that knew fewer or more histogram bounds fold
// too: a shorter histogram adds as if padded with zeros, the counts past
// this sink's bounds go to its last count (above every bound it knows).
func TestFoldAddsHistogramsOfOtherLengths(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	base := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	_, err := pool.Exec(ctx, setFoldedToSQL, base)
	require.NoError(t, err)
	n := len(Bounds) + 1
	longer := make([]int32, n+2)
	longer[3], longer[n], longer[n+1] = 1, 2, 1 // four checks
	oneBeyond := make([]int32, n+1)
	oneBeyond[n] = 1
	_, err = pool.Exec(ctx, `INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum,
		histogram, phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum) VALUES
		(60, 1, '', $1, 2, 0, 2, '{1,1}', 0, 0, 0, 0, 0, 0),
		(60, 1, '', $1::timestamptz + interval '1 minute', 4, 0, 4, $2, 0, 0, 0, 0, 0, 0),
		(60, 1, '', $1::timestamptz + interval '2 minutes', 1, 0, 1, $3, 0, 0, 0, 0, 0, 0),
		(60, 1, '', $1::timestamptz + interval '59 minutes', 1, 0, 1, '{1}', 0, 0, 0, 0, 0, 0)`, base, longer, oneBeyond)
	require.NoError(t, err)
	res, err := Fold(ctx, pool, base.Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 7, res.Checks)
	var hist []int32
	require.NoError(t, pool.QueryRow(ctx, "SELECT histogram FROM rollups WHERE bucket_width = 3600").Scan(&hist))
	want := make([]int32, n)
	want[0], want[1], want[3], want[n-1] = 1, 1, 1, 4
	require.Equal(t, want, hist)
}

// RunFolder starts folding and says so in its metrics.
func TestRunFolderReportsWhereFoldingStands(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := dbtest.Pool(t, dbtest.New(t))
	reg := prometheus.NewRegistry()
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunFolder(ctx, pool, time.Hour, time.Minute, zaptest.NewLogger(t), reg)
	}()
	var at float64
	require.Eventually(t, func() bool {
		families, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range families {
			if f.GetName() == "sitewatch_sink_rollup_folded_to_seconds" {
				at = f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return at > 0
	}, 10*time.Second, 10*time.Millisecond, "folding started")
	require.Equal(t, float64(foldedTo(t, pool).Unix()), at)
	cancel()
	<-done
}
