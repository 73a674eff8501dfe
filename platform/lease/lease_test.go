package lease

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
	return url, pool, Config{DatabaseURL: url, Group: "test", Key1: int32(oid), Shards: testShards, MemberBase: 1 << 16,
		MaxMembers: 16, Channel: channel, Rebalance: 50 * time.Millisecond, StatementTimeout: 5 * time.Second, DeadPeer: 3 * time.Second}
}

const testShards = 64

// start runs a coordinator until the test ends or stop is called.
func start(t *testing.T, cfg Config) (c *Coordinator, stop func()) {
	t.Helper()
	c, err := New(cfg, zaptest.NewLogger(t))
	require.NoError(t, err)
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

func TestReplicasShareThetestShardsAndTakeOverADeadOnesShare(t *testing.T) {
	t.Parallel()
	_, _, cfg := table(t)
	a, _ := start(t, cfg)
	waitOwned(t, "alone, a replica leases every lane", func() bool { return a.Owned() == testShards })

	b, stopB := start(t, cfg)
	waitOwned(t, "two replicas hold half the lanes each", func() bool { return a.Owned() == testShards/2 && b.Owned() == testShards/2 })

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
	require.Len(t, seen, testShards)

	stopB()
	require.Zero(t, b.Owned(), "a stopped replica holds nothing")
	waitOwned(t, "the survivor takes the stopped replica's lanes", func() bool { return a.Owned() == testShards })
}

func TestLostConnectionDropsThetestShardsAndReleasesThem(t *testing.T) {
	t.Parallel()
	url, pool, cfg := table(t)
	cfg.DatabaseURL = url + "&application_name=lease-test-" + cfg.Channel
	a, _ := start(t, cfg)
	waitOwned(t, "alone, a replica leases every lane", func() bool { return a.Owned() == testShards })

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
		return n == 1 && a.Owned() == testShards
	})
}

func TestSubscribersWakeOnCommittedRows(t *testing.T) {
	t.Parallel()
	_, pool, cfg := table(t)
	cfg.Rebalance = time.Hour // only a notification can wake the subscriber now
	a, _ := start(t, cfg)
	wake := a.Subscribe()
	waitOwned(t, "lanes leased", func() bool { return a.Owned() == testShards })
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
	waitOwned(t, "alone, a replica leases every lane", func() bool { return a.Owned() == testShards })
	lanes, release := a.Acquire(0, 1)
	require.Len(t, lanes, testShards)

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
	require.Equal(t, testShards, a.Owned(), "no lane given back in the middle of a batch")
	require.Zero(t, b.Owned())
	release()
	waitOwned(t, "after the batch, the lanes are shared", func() bool { return a.Owned() == testShards/2 && b.Owned() == testShards/2 })
}

func TestGroupsWithDisjointKeysDoNotMeet(t *testing.T) {
	t.Parallel()
	_, _, cfg := table(t)
	other := cfg
	other.Group, other.ShardBase, other.MemberBase = "other", 1<<17, 1<<17+1<<15
	a, _ := start(t, cfg)
	b, _ := start(t, other)
	waitOwned(t, "each group's only member leases all of its shards", func() bool {
		return a.Owned() == testShards && b.Owned() == testShards && a.Stats().Members == 1 && b.Stats().Members == 1
	})
	require.True(t, a.HoldsShare())
}

func TestConfigValidate(t *testing.T) {
	_, _, good := table(t)
	require.NoError(t, good.Validate())
	for name, mut := range map[string]func(*Config){
		"no url":          func(c *Config) { c.DatabaseURL = "" },
		"no shards":       func(c *Config) { c.Shards = 0 },
		"no members":      func(c *Config) { c.MaxMembers = 0 },
		"overlap":         func(c *Config) { c.MemberBase = 10 },
		"negative base":   func(c *Config) { c.ShardBase = -1 },
		"beyond 2^31":     func(c *Config) { c.MemberBase = 1<<31 - 10 },
		"no rebalance":    func(c *Config) { c.Rebalance = 0 },
		"no timeout":      func(c *Config) { c.StatementTimeout = 0 },
		"short dead peer": func(c *Config) { c.DeadPeer = time.Second },
	} {
		c := good
		mut(&c)
		_, err := New(c, zaptest.NewLogger(t))
		require.Error(t, err, name)
	}
}

func TestLeaseConnectionFindsAVanishedPeerInSeconds(t *testing.T) {
	_, _, cfg := table(t)
	cfg.DeadPeer = 9 * time.Second
	c, err := New(cfg, zaptest.NewLogger(t))
	require.NoError(t, err)
	cc, err := c.connConfig()
	require.NoError(t, err)
	// Server side: the backend drops a silent client after 3 s idle + 3
	// probes 1 s apart, or 9 s of unacknowledged data. Set once connected,
	// not as startup parameters, which PgBouncer refuses.
	require.Empty(t, cc.RuntimeParams["tcp_keepalives_idle"])
	conn, err := pgx.ConnectConfig(context.Background(), cc)
	require.NoError(t, err)
	defer func() { _ = conn.Close(context.Background()) }()
	var idle, interval, count, user string
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT current_setting('tcp_keepalives_idle'),
		current_setting('tcp_keepalives_interval'), current_setting('tcp_keepalives_count'), current_setting('tcp_user_timeout')`).
		Scan(&idle, &interval, &count, &user))
	require.Equal(t, "3", idle, "the server applies the keepalive settings")
	require.Equal(t, "1", interval)
	require.Equal(t, "3", count)
	require.Equal(t, "9000", user)
}

func TestMinShare(t *testing.T) {
	require.Equal(t, 64, MinShare(64, 1))
	require.Equal(t, 32, MinShare(64, 2))
	require.Equal(t, 84, MinShare(256, 3), "86 + 86 + 84")
	require.Equal(t, 0, MinShare(4, 5), "more members than shards: one holds none")
}

func TestMembersNamesEachReplicaAndItsShards(t *testing.T) {
	t.Parallel()
	_, pool, cfg := table(t)
	cfg.AppName = "members-test"
	a, _ := start(t, cfg)
	b, stopB := start(t, cfg)
	waitOwned(t, "two replicas hold half the shards each", func() bool { return a.Owned() == testShards/2 && b.Owned() == testShards/2 })

	ctx := context.Background()
	members, err := Members(ctx, pool, cfg)
	require.NoError(t, err)
	require.Len(t, members, 2)
	held := map[int]bool{}
	var got [][]int16
	for _, m := range members {
		require.Equal(t, "members-test", m.Application)
		require.NotEmpty(t, m.Client)
		require.WithinDuration(t, time.Now(), m.Since, time.Minute)
		require.Len(t, m.Shards, testShards/2)
		var shards []int16
		for _, s := range m.Shards {
			require.False(t, held[s], "shard %d listed twice", s)
			held[s] = true
			shards = append(shards, int16(s))
		}
		got = append(got, shards)
	}
	require.ElementsMatch(t, [][]int16{a.Shards(), b.Shards()}, got, "each member's shards as it holds them")

	other := cfg
	other.Key1++
	members, err = Members(ctx, pool, other)
	require.NoError(t, err)
	require.Empty(t, members, "another group's key names no member")

	stopB()
	waitOwned(t, "the survivor takes every shard", func() bool { return a.Owned() == testShards })
	members, err = Members(ctx, pool, cfg)
	require.NoError(t, err)
	require.Len(t, members, 1)
	require.Len(t, members[0].Shards, testShards)
}
