package rollup

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
)

// A 1-minute bucket this sink has not written is inserted as a new row, one
// it wrote is added to; one it does not remember but that exists (written
// before a restart, by another sink, or too long ago to be remembered)
// makes the batch add to its buckets instead, in the same transaction.
// Every check is counted once either way.
func TestNewMinutesAreInsertedAndOthersAddedTo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	minute := time.Date(2026, 11, 25, 10, 7, 0, 0, time.UTC)
	applyWith := func(recent *Recent, checks ...Check) {
		t.Helper()
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		require.NoError(t, Apply(ctx, tx, checks, recent))
		// The transaction goes on after a fallback: the savepoint was
		// rolled back, not the transaction.
		var one int
		require.NoError(t, tx.QueryRow(ctx, "SELECT 1").Scan(&one))
		require.NoError(t, tx.Commit(ctx))
	}
	check := func(site int64, at time.Time) Check { return Check{SiteID: site, CheckedAt: at, DurationMS: 5} }

	small := NewRecent()
	applyWith(small, check(9, minute))
	require.Zero(t, small.Inserted(), "a batch with fewer than MinNewBuckets new buckets adds to them all")

	recent := newRecent(1) // batches of a check or two
	applyWith(recent, check(1, minute.Add(time.Second)))
	require.EqualValues(t, 1, recent.Inserted(), "a minute no batch wrote is inserted")
	applyWith(recent, check(1, minute.Add(30*time.Second)), check(2, minute.Add(31*time.Second)))
	require.EqualValues(t, 2, recent.Inserted(), "site 2's minute is new; site 1's is added to")
	require.Zero(t, recent.Fallbacks())
	require.Equal(t, 2, checksIn(t, pool, time.Minute, minute))

	restarted := newRecent(1) // remembers nothing: site 1's minute exists all the same
	applyWith(restarted, check(1, minute.Add(40*time.Second)), check(3, minute.Add(41*time.Second)))
	require.EqualValues(t, 1, restarted.Fallbacks(), "the batch met a minute that existed")
	require.Zero(t, restarted.Inserted(), "and added to all its minutes instead")
	require.Equal(t, 3, checksIn(t, pool, time.Minute, minute))
	applyWith(restarted, check(3, minute.Add(50*time.Second)))
	require.EqualValues(t, 1, restarted.Fallbacks(), "the minutes of a batch that fell back are remembered")

	// A check from a clock ten years ahead takes one of the minutes
	// remembered, not the present's place.
	applyWith(recent, check(4, minute.AddDate(10, 0, 0)))
	applyWith(recent, check(2, minute.Add(45*time.Second)))
	require.EqualValues(t, 0, recent.Fallbacks(), "site 2's minute is still remembered")

	// Once RecentMinutes newer minutes are written, the first is
	// forgotten: a late check of it finds it exists.
	for i := 1; i < RecentMinutes; i++ {
		applyWith(recent, check(1, minute.Add(time.Duration(i)*time.Minute)))
	}
	applyWith(recent, check(1, minute.Add(59*time.Second)))
	require.EqualValues(t, 1, recent.Fallbacks())
	require.Equal(t, 4, checksIn(t, pool, time.Minute, minute))

	var total, rows int
	require.NoError(t, pool.QueryRow(ctx, "SELECT sum(checks), count(*) FROM rollups WHERE bucket_width = 60").Scan(&total, &rows))
	require.Equal(t, 10+RecentMinutes-1, total, "every check counted once")
	require.Equal(t, 5+RecentMinutes-1, rows, "sites 1, 2, 3 and 9 in the first minute, site 4 ten years on, site 1 in each later minute")
}
