package incident

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// addSite inserts a site checked every second, created long ago.
func addSite(t *testing.T, pool *pgxpool.Pool, settings string) int64 {
	t.Helper()
	var id int64
	require.NoError(t, pool.QueryRow(context.Background(), `INSERT INTO sites (url, interval_ms, timeout_ms, created_at, updated_at)
		VALUES ('https://example.com/', 1000, 1000, now() - interval '1 hour', now() - interval '1 hour') RETURNING id`).Scan(&id))
	if settings != "" {
		_, err := pool.Exec(context.Background(), "UPDATE sites SET "+settings+" WHERE id = $1", id)
		require.NoError(t, err)
		_, err = pool.Exec(context.Background(), "UPDATE sites SET created_at = now() - interval '1 hour' WHERE id = $1", id)
		require.NoError(t, err)
	}
	return id
}

func apply(t *testing.T, pool *pgxpool.Pool, checks ...Check) []Change {
	t.Helper()
	var changes []Change
	require.NoError(t, pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		changes, err = Apply(context.Background(), tx, checkevent.IncidentTopic, checks)
		return err
	}))
	return changes
}

func fail(site int64, region string, at time.Duration) Check {
	return Check{SiteID: site, Region: region, CheckedAt: t0.Add(at), Failed: true, ErrorClass: "connect", Error: "connection refused"}
}

func pass(site int64, region string, at time.Duration) Check {
	return Check{SiteID: site, Region: region, CheckedAt: t0.Add(at)}
}

type announced struct {
	Type string
	checkevent.Incident
}

// events are the incident events written to the outbox, in order.
func events(t *testing.T, pool *pgxpool.Pool) []announced {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT headers->>'ce_type', payload FROM outbox
		WHERE topic_name = $1 ORDER BY id`, checkevent.IncidentTopic)
	require.NoError(t, err)
	var out []announced
	for rows.Next() {
		var a announced
		var payload []byte
		require.NoError(t, rows.Scan(&a.Type, &payload))
		require.NoError(t, json.Unmarshal(payload, &a.Incident))
		out = append(out, a)
	}
	require.NoError(t, rows.Err())
	return out
}

func siteState(t *testing.T, pool *pgxpool.Pool, id int64) string {
	t.Helper()
	var s string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT coalesce((SELECT state FROM site_state WHERE site_id = $1), 'none')", id).Scan(&s))
	return s
}

func TestThresholdsOpenAndResolveOnceWithTheirOutboxRows(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.New(t))
	id := addSite(t, pool, "")

	require.Empty(t, apply(t, pool, fail(id, "local", 0)), "one failure is below the threshold of 2")
	changes := apply(t, pool, fail(id, "local", time.Second))
	require.Len(t, changes, 1)
	require.True(t, changes[0].Opened)
	require.Equal(t, "down", siteState(t, pool, id))
	require.Empty(t, apply(t, pool, fail(id, "local", 2*time.Second)), "still down: no second incident")
	require.Empty(t, apply(t, pool, pass(id, "local", 3*time.Second)), "one pass is below the success threshold")
	changes = apply(t, pool, pass(id, "local", 4*time.Second))
	require.Len(t, changes, 1)
	require.False(t, changes[0].Opened)
	require.Equal(t, "up", siteState(t, pool, id))

	ev := events(t, pool)
	require.Len(t, ev, 2, "one opened and one resolved event")
	require.Equal(t, checkevent.IncidentOpenedType, ev[0].Type)
	require.Equal(t, checkevent.KindDown, ev[0].Kind)
	require.Equal(t, "connect", ev[0].ErrorClass)
	require.Equal(t, []string{"local"}, ev[0].Regions)
	require.True(t, t0.Add(time.Second).Equal(ev[0].OpenedAt))
	require.Equal(t, checkevent.IncidentResolvedType, ev[1].Type)
	require.Equal(t, "recovered", ev[1].Resolution)
	require.Equal(t, ev[0].IncidentID, ev[1].IncidentID)
}

func TestOneRegionCannotOpenAnIncidentTwoCan(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.New(t))
	id := addSite(t, pool, "")
	// All three regions report; eu-west fails twice: 1 of 3 is no quorum.
	apply(t, pool, pass(id, "eu-west", 0), pass(id, "us-east", 0), pass(id, "ap-south", 0))
	require.Empty(t, apply(t, pool, fail(id, "eu-west", time.Second), fail(id, "eu-west", 2*time.Second),
		pass(id, "us-east", time.Second), pass(id, "ap-south", time.Second)))
	require.Equal(t, "degraded", siteState(t, pool, id), "down in a region, short of the quorum")
	// us-east agrees: 2 of 3.
	changes := apply(t, pool, fail(id, "us-east", 2*time.Second), fail(id, "us-east", 3*time.Second))
	require.Len(t, changes, 1)
	ev := events(t, pool)
	require.Equal(t, []string{"eu-west", "us-east"}, ev[0].Regions, "the regions that agreed")
}

func TestALateOlderCheckIsIgnored(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.New(t))
	id := addSite(t, pool, "success_threshold = 1")
	apply(t, pool, fail(id, "local", 10*time.Second), fail(id, "local", 11*time.Second))
	require.Equal(t, "down", siteState(t, pool, id))
	// A check from before those two arrives late (replicas' commits out of
	// id order during a handover): stored by the caller, but it moves nothing.
	require.Empty(t, apply(t, pool, pass(id, "local", 5*time.Second)))
	require.Equal(t, "down", siteState(t, pool, id))
	require.Len(t, apply(t, pool, pass(id, "local", 12*time.Second)), 1, "a newer pass recovers it")
}

func TestCertificateExpiringSoonIsAWarning(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.New(t))
	id := addSite(t, pool, "tls_warning_days = 14")
	soon, later := t0.Add(5*24*time.Hour), t0.Add(60*24*time.Hour)
	changes := apply(t, pool, Check{SiteID: id, Region: "eu-west", CheckedAt: t0, TLSExpiry: &soon})
	require.Len(t, changes, 1)
	require.Equal(t, checkevent.KindWarning, changes[0].Kind)
	require.Equal(t, "degraded", siteState(t, pool, id), "up with an open warning")
	require.Empty(t, apply(t, pool, Check{SiteID: id, Region: "us-east", CheckedAt: t0.Add(time.Second), TLSExpiry: &soon}),
		"notified once, whichever region sees it")
	changes = apply(t, pool, Check{SiteID: id, Region: "us-east", CheckedAt: t0.Add(2 * time.Second), TLSExpiry: &later})
	require.Len(t, changes, 1)
	require.False(t, changes[0].Opened)
	require.Equal(t, "renewed", events(t, pool)[1].Resolution)
}

func TestStaleWaitsForTheFloorOnShortIntervals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	// Checked every second, added 10 s ago and checked 10 s ago: silent for
	// 10 intervals, but under the floor.
	fresh := addSite(t, pool, "created_at = now() - interval '10 seconds', updated_at = now() - interval '10 seconds'")
	_, err := pool.Exec(ctx, "UPDATE sites SET created_at = now() - interval '10 seconds' WHERE id = $1", fresh)
	require.NoError(t, err)
	quietRecently := addSite(t, pool, "")
	apply(t, pool, Check{SiteID: quietRecently, Region: "local", CheckedAt: time.Now().Add(-10 * time.Second)})
	quietLong := addSite(t, pool, "")
	apply(t, pool, Check{SiteID: quietLong, Region: "local", CheckedAt: time.Now().Add(-staleFloor - 5*time.Second)})

	changes, err := Sweep(ctx, pool, checkevent.IncidentTopic, time.Now(), true)
	require.NoError(t, err)
	require.Len(t, changes, 1, "only the site silent for longer than the floor: %+v", changes)
	require.Equal(t, quietLong, changes[0].SiteID)
}

func TestSweepOpensStaleAndResolvesRemovedAndDisabled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	quiet := addSite(t, pool, "")   // never checked, created an hour ago
	checked := addSite(t, pool, "") // checked just now
	apply(t, pool, Check{SiteID: checked, Region: "local", CheckedAt: time.Now()})

	changes, err := Sweep(ctx, pool, checkevent.IncidentTopic, time.Now(), false)
	require.NoError(t, err)
	require.Empty(t, changes, "a sink still catching up judges no site stale")
	changes, err = Sweep(ctx, pool, checkevent.IncidentTopic, time.Now(), true)
	require.NoError(t, err)
	require.Equal(t, []Change{{IncidentID: changes[0].IncidentID, SiteID: quiet, Kind: checkevent.KindStale, Opened: true}}, changes)
	changes, err = Sweep(ctx, pool, checkevent.IncidentTopic, time.Now(), true)
	require.NoError(t, err)
	require.Empty(t, changes, "a stale incident is opened once")
	counts, err := OpenCounts(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{checkevent.KindDown: 0, checkevent.KindStale: 1, checkevent.KindWarning: 0}, counts)

	// A check resolves it.
	changes = apply(t, pool, Check{SiteID: quiet, Region: "local", CheckedAt: time.Now()})
	require.Len(t, changes, 1)
	require.Equal(t, "checks_resumed", events(t, pool)[1].Resolution)

	// Down, then disabled; another down, then removed.
	later := time.Now().Add(time.Minute)
	for _, site := range []int64{checked, quiet} {
		require.Len(t, apply(t, pool, Check{SiteID: site, Region: "local", CheckedAt: later, Failed: true, ErrorClass: "http"},
			Check{SiteID: site, Region: "local", CheckedAt: later.Add(time.Second), Failed: true, ErrorClass: "http"}), 1)
	}
	_, err = pool.Exec(ctx, "UPDATE sites SET enabled = false WHERE id = $1", checked)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "DELETE FROM sites WHERE id = $1", quiet)
	require.NoError(t, err)
	changes, err = Sweep(ctx, pool, checkevent.IncidentTopic, time.Now(), true)
	require.NoError(t, err)
	require.Len(t, changes, 2)
	ev := events(t, pool)
	resolutions := map[string]bool{ev[len(ev)-1].Resolution: true, ev[len(ev)-2].Resolution: true}
	require.Equal(t, map[string]bool{"disabled": true, "removed": true}, resolutions)
}

// Stale is judged only when every sink replica reporting lately has read
// its partitions up to their ends; a replica that stopped reporting stops
// counting, and one that leaves counts no more at once.
func TestJudgeWaitsForEveryReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	judge := func(instance string, caughtUp bool) (bool, []string) {
		t.Helper()
		ok, lagging, err := Judge(ctx, pool, instance, caughtUp, 7, 600*time.Millisecond) // a fraction of a second is kept
		require.NoError(t, err)
		return ok, lagging
	}
	ok, lagging := judge("a", true)
	require.True(t, ok, "alone and caught up")
	require.Empty(t, lagging)
	ok, _ = judge("a", false)
	require.False(t, ok, "alone and behind")

	ok, _ = judge("b", false)
	require.False(t, ok)
	ok, lagging = judge("a", true)
	require.False(t, ok, "b is behind: its partitions may hold the checks a judges by")
	require.Equal(t, []string{"b"}, lagging)
	ok, _ = judge("b", true)
	require.True(t, ok)
	ok, _ = judge("a", true)
	require.True(t, ok, "both caught up")

	// b falls behind and then stops reporting (killed): after the
	// freshness window it no longer counts, and much later its row goes.
	judge("b", false)
	_, err := pool.Exec(ctx, "UPDATE sink_replicas SET reported_at = now() - interval '1 second' WHERE instance_id = 'b'")
	require.NoError(t, err)
	ok, _ = judge("a", true)
	require.True(t, ok, "a report older than the window does not count")
	_, err = pool.Exec(ctx, "UPDATE sink_replicas SET reported_at = now() - interval '1 hour' WHERE instance_id = 'b'")
	require.NoError(t, err)
	judge("a", true)
	var rows int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM sink_replicas").Scan(&rows))
	require.Equal(t, 1, rows, "long-gone replicas are deleted")

	// c, behind, leaves at shutdown.
	judge("c", false)
	ok, _ = judge("a", true)
	require.False(t, ok)
	require.NoError(t, Leave(ctx, pool, "c"))
	ok, _ = judge("a", true)
	require.True(t, ok)
	var behind int64
	var folds bool
	require.NoError(t, pool.QueryRow(ctx, "SELECT behind, folds FROM sink_replicas WHERE instance_id = 'a'").Scan(&behind, &folds))
	require.EqualValues(t, 7, behind)
	require.True(t, folds, "a replica of this version says it folds rollups (package rollup waits for those that do not)")
}

// The sink's writers update the region states of their sites once a batch
// while the others' transactions are open, so the old versions cannot be
// pruned yet. The table's fillfactor (migration 00020) leaves room for
// those versions in each row's page: the updates are HOT, adding no index
// entry and keeping the table small. On full pages every row moves.
func TestRegionStateUpdatesStayInTheirPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	const sites = 300
	_, err := pool.Exec(ctx, `INSERT INTO sites (url, interval_ms, timeout_ms) SELECT 'https://example.com/', 1000, 1000 FROM generate_series(1, $1)`, sites)
	require.NoError(t, err)
	round := func(at time.Duration) {
		checks := make([]Check, sites)
		for i := range checks {
			checks[i] = pass(int64(i+1), "local", at)
		}
		apply(t, pool, checks...)
	}
	pages := func() map[string]int {
		rows, err := pool.Query(ctx, `SELECT site_id || '/' || region, (ctid::text::point)[0]::int FROM site_region_state`)
		require.NoError(t, err)
		out := map[string]int{}
		for rows.Next() {
			var key string
			var page int
			require.NoError(t, rows.Scan(&key, &page))
			out[key] = page
		}
		require.NoError(t, rows.Err())
		return out
	}
	round(0)
	before := pages()
	require.Len(t, before, sites)

	// Another writer's transaction, its snapshot taken, open across the next rounds.
	other, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = other.Rollback(ctx) }()
	_, err = other.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`)
	require.NoError(t, err)
	var n int
	require.NoError(t, other.QueryRow(ctx, `SELECT count(*) FROM site_region_state`).Scan(&n))

	for i := 1; i <= 3; i++ {
		round(time.Duration(i) * time.Second)
	}
	after := pages()
	moved := 0
	for key, page := range before {
		if after[key] != page {
			moved++
		}
	}
	require.Zero(t, moved, "region states moved to another page on update (not HOT) of %d", sites)
}

func TestASlowPassingCheckMakesTheSiteDegradedNotDown(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.New(t))
	id := addSite(t, pool, "")
	require.Empty(t, apply(t, pool, Check{SiteID: id, Region: "eu-west", CheckedAt: t0}))
	require.NotEqual(t, "degraded", siteState(t, pool, id))
	require.Empty(t, apply(t, pool, Check{SiteID: id, Region: "eu-west", CheckedAt: t0.Add(time.Second), Degraded: true}),
		"slow is no incident")
	require.Equal(t, "degraded", siteState(t, pool, id))
	require.Empty(t, apply(t, pool, Check{SiteID: id, Region: "us-east", CheckedAt: t0.Add(2 * time.Second)}))
	require.Equal(t, "degraded", siteState(t, pool, id), "still slow from eu-west")
	require.Empty(t, apply(t, pool, Check{SiteID: id, Region: "eu-west", CheckedAt: t0.Add(3 * time.Second)}))
	require.Equal(t, "up", siteState(t, pool, id), "fast again")
}
