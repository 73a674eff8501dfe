package lease

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
)

// table returns the URL of a fresh schema with an outbox table and the
// table's oid and notification channel.
func table(t *testing.T) (string, *pgxpool.Pool, Config) {
	t.Helper()
	url := dbtest.New(t)
	pool := dbtest.Pool(t, url)
	var oid int64
	var channel string
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT 'outbox'::regclass::oid::bigint, current_schema() || '.outbox'`).Scan(&oid, &channel))
	return url, pool, Config{DatabaseURL: url, TableOID: uint32(oid), Channel: channel, Rebalance: 50 * time.Millisecond}
}

// start runs a coordinator until the test ends or stop is called.
func start(t *testing.T, cfg Config) (c *Coordinator, stop func()) {
	t.Helper()
	c = New(cfg, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return c, stop
}

func waitOwned(t *testing.T, msg string, want func() bool) {
	t.Helper()
	require.Eventually(t, want, 15*time.Second, 10*time.Millisecond, msg)
}

func TestReplicasShareTheLanesAndTakeOverADeadOnesShare(t *testing.T) {
	t.Parallel()
	_, _, cfg := table(t)
	a, _ := start(t, cfg)
	waitOwned(t, "alone, a replica leases every lane", func() bool { return a.Owned() == Lanes })

	b, stopB := start(t, cfg)
	waitOwned(t, "two replicas hold half the lanes each", func() bool { return a.Owned() == Lanes/2 && b.Owned() == Lanes/2 })

	// No lane is held twice: Acquire on both sides gives disjoint sets.
	seen := map[int16]bool{}
	for _, c := range []*Coordinator{a, b} {
		for w := range 3 {
			lanes, release := c.Acquire(w, 3)
			for _, l := range lanes {
				require.False(t, seen[l], "lane %d held by two replicas", l)
				require.Equal(t, w, int(l)%3, "a worker gets only its own lanes")
				seen[l] = true
			}
			release()
		}
	}
	require.Len(t, seen, Lanes)

	stopB()
	require.Zero(t, b.Owned(), "a stopped replica holds nothing")
	waitOwned(t, "the survivor takes the stopped replica's lanes", func() bool { return a.Owned() == Lanes })
}

func TestLostConnectionDropsTheLanesAndReleasesThem(t *testing.T) {
	t.Parallel()
	url, pool, cfg := table(t)
	cfg.DatabaseURL = url + "&application_name=lease-test-" + cfg.Channel
	a, _ := start(t, cfg)
	waitOwned(t, "alone, a replica leases every lane", func() bool { return a.Owned() == Lanes })

	var killed int
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`,
		"lease-test-"+cfg.Channel).Scan(&killed))
	require.Equal(t, 1, killed, "one lease connection")
	// It notices, reconnects and leases every lane again.
	waitOwned(t, "the replica leases its lanes again after reconnecting", func() bool {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
			"lease-test-"+cfg.Channel).Scan(&n))
		return n == 1 && a.Owned() == Lanes
	})
}

func TestSubscribersWakeOnCommittedRows(t *testing.T) {
	t.Parallel()
	_, pool, cfg := table(t)
	cfg.Rebalance = time.Hour // only a notification can wake the subscriber now
	a, _ := start(t, cfg)
	wake := a.Subscribe()
	waitOwned(t, "lanes leased", func() bool { return a.Owned() == Lanes })
	// Drain the wake-ups of joining and of taking lanes.
	for drained := false; !drained; {
		select {
		case <-wake:
		default:
			drained = true
		}
	}
	_, err := pool.Exec(context.Background(), `INSERT INTO outbox (event_id, topic_name, payload) VALUES (gen_random_uuid(), 't', '')`)
	require.NoError(t, err)
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up after a committed insert")
	}
}

func TestReleaseWaitsForTheBatchInFlight(t *testing.T) {
	t.Parallel()
	_, _, cfg := table(t)
	a, _ := start(t, cfg)
	waitOwned(t, "alone, a replica leases every lane", func() bool { return a.Owned() == Lanes })
	lanes, release := a.Acquire(0, 1)
	require.Len(t, lanes, Lanes)

	b, _ := start(t, cfg)
	// a's rebalance now wants to give lanes back and waits for the batch:
	// a writer waiting on the lock makes TryRLock fail.
	waitOwned(t, "a waits for its batch before giving lanes back", func() bool {
		if a.mu.TryRLock() {
			a.mu.RUnlock()
			return false
		}
		return true
	})
	require.Equal(t, Lanes, a.Owned(), "no lane given back in the middle of a batch")
	require.Zero(t, b.Owned())
	release()
	waitOwned(t, "after the batch, the lanes are shared", func() bool { return a.Owned() == Lanes/2 && b.Owned() == Lanes/2 })
}
