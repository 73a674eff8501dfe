package e2e

// The pipeline on a PostgreSQL primary with a synchronous streaming standby
// (scripts/pgha.sh), every service given both hosts with
// target_session_attrs=read-write, under the load of a monitor checking
// sites and a writer of check events at about 1,000 a second: the primary
// crashes (immediate stop) as incidents open, the standby is promoted, and
// everything must carry on against it by itself.

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/pgtest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// monitorShards is the monitor's shards of a region's sites (site.Shards).
const monitorShards = 256

// heldLeases counts the advisory-lock leases held on the server pool is
// connected to: the relay's lanes of the outbox, the monitor's shards of
// its region's sites (member slots are keyed above both), each counted
// once however many sessions would hold it.
func heldLeases(t *testing.T, pool *pgxpool.Pool) (lanes, shards, holders int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(DISTINCT objid) FILTER (WHERE classid = 'outbox'::regclass::oid AND objid::bigint < $1),
		       count(DISTINCT objid) FILTER (WHERE classid = 'sites'::regclass::oid AND (objid::bigint & 65535) < $2),
		       count(*) FILTER (WHERE (classid = 'outbox'::regclass::oid AND objid::bigint < $1)
		                           OR (classid = 'sites'::regclass::oid AND (objid::bigint & 65535) < $2))
		FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 2
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
		outbox.Lanes, monitorShards).Scan(&lanes, &shards, &holders))
	return lanes, shards, holders
}

func TestPostgresFailoverToASynchronousStandby(t *testing.T) {
	pair := pgtest.StartPair(t)
	env := []string{"DATABASE_URL=" + pair.URL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
	code, out := run(t, env, "monitor", "migrate")
	require.Equal(t, 0, code, out)
	pool := dbtest.Pool(t, pair.URL) // finds the new primary too
	topic, incidents := kafkatest.NewTopic(t, 6), kafkatest.NewTopic(t, 3)
	srv, failing := switchableServer(t)
	hook := newHookReceiver(t)
	hook.up()
	code, out = run(t, append(env, "SITEWATCH_CHANNEL_SECRET=hook-secret"), "monitor", "channels", "add", "oncall", "--webhook", hook.url(), "--default")
	require.Equal(t, 0, code, out)
	const sites = 10
	importSites(t, env, srv.URL, sites, "1s", "    topic: "+topic+"\n")

	monitor := startReplica(t, env, "eu-west")
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+incidents)
	sink := start(t, "sink", env, sinkArgs(topic, incidents)...)
	l := startLoad(t, pool, topic)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Greater(c, count(t, pool, "SELECT count(*) FROM stats"), 1000, "the load is stored")
		assert.Equal(c, sites, count(t, pool, "SELECT count(DISTINCT site_id) FROM stats WHERE region = 'eu-west'"), "every site checked")
		lanes, shards, _ := heldLeases(t, pool)
		assert.Equal(c, outbox.Lanes, lanes, "the relay holds every lane")
		assert.Equal(c, monitorShards, shards, "the monitor holds every shard")
	}, 90*time.Second, 200*time.Millisecond)

	// The sites go down; the primary crashes as their incidents open.
	failing.Store(true)
	require.Eventually(t, func() bool { return count(t, pool, "SELECT count(*) FROM incidents") > 0 }, time.Minute,
		50*time.Millisecond, "an incident opens: %s", state(t, pool))
	fault := time.Now()
	pair.CrashPrimary()
	pair.Promote()
	promoted := time.Since(fault)
	t.Logf("the primary crashed; the standby promoted %s later", promoted.Round(time.Millisecond))

	// Each site's incident opens once and is notified once, and the
	// leases are held again on the new primary, each by one holder.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, sites, count(t, pool, "SELECT count(*) FROM incidents WHERE resolved_at IS NULL"), "every site's incident open: %s", state(t, pool))
		assert.Len(c, deduped(hook.notices()), sites, "and notified")
		lanes, shards, holders := heldLeases(t, pool)
		assert.Equal(c, outbox.Lanes, lanes, "the relay holds every lane again")
		assert.Equal(c, monitorShards, shards, "the monitor holds every shard again")
		assert.Equal(c, lanes+shards, holders, "each by one session")
	}, 2*time.Minute, 200*time.Millisecond)
	leased := time.Since(fault)
	failing.Store(false)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, count(t, pool, "SELECT count(*) FROM incidents WHERE resolved_at IS NULL"), "every incident resolved: %s", state(t, pool))
		assert.Len(c, deduped(hook.notices()), 2*sites, "and notified")
		assert.Equal(c, 2*sites, count(t, pool, "SELECT count(*) FROM deliveries WHERE status = 'delivered'"), "and recorded")
	}, 2*time.Minute, 200*time.Millisecond)

	written := l.halt()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Zero(c, count(t, pool, "SELECT count(*) FROM outbox WHERE NOT published"), "every outbox row flipped: %s", state(t, pool))
		assert.Equal(c, count(t, pool, "SELECT count(*) FROM outbox WHERE topic_name = $1", topic), count(t, pool, "SELECT count(*) FROM stats"),
			"every check stored: %s", state(t, pool))
	}, 2*time.Minute, 200*time.Millisecond)

	// Every commit that was acknowledged is on the new primary: the
	// standby had its WAL before the commit returned.
	ids := make([]string, 0, len(written))
	for id := range written {
		ids = append(ids, id)
	}
	require.Equal(t, len(ids), count(t, pool, "SELECT count(*) FROM outbox WHERE event_id = ANY($1::uuid[])", ids),
		"no acknowledged outbox write lost")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM outbox o WHERE topic_name = $1
		AND NOT EXISTS (SELECT FROM stats s WHERE s.event_id = o.event_id)`, topic), "every committed check in stats")
	require.Equal(t, count(t, pool, "SELECT count(DISTINCT event_id) FROM stats"), count(t, pool, "SELECT count(*) FROM stats"),
		"none twice")
	require.Equal(t, sites, count(t, pool, "SELECT count(*) FROM incidents"), "no incident opened twice")
	want := incidentEvents(t, pool, incidents)
	require.Len(t, want, 2*sites)
	got := deduped(hook.notices())
	for key, typ := range want {
		require.Contains(t, got, key)
		require.Equal(t, typ, got[key].typ)
	}

	// How long the pipeline stood still: the longest an event written
	// after the crash waited to be stored.
	var worst time.Duration
	rows, err := pool.Query(context.Background(), "SELECT event_id::text, inserted_at FROM stats WHERE event_id = ANY($1::uuid[])", ids)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var at time.Time
		require.NoError(t, rows.Scan(&id, &at))
		if w := written[id]; w.After(fault) && at.Sub(w) > worst {
			worst = at.Sub(w)
		}
	}
	require.NoError(t, rows.Err())
	t.Logf("%d events written (%d transactions unsure at the crash); every lease held again %s after the crash; "+
		"%d notifications, %d requests to the receiver; the longest an event written after the crash waited to be stored: %s",
		len(written), l.unsure, leased.Round(time.Millisecond), len(got), len(hook.notices()), worst.Round(time.Millisecond))
	require.Less(t, worst, time.Minute)

	for _, p := range []*process{monitor.process, relay, sink} {
		select {
		case err := <-p.done:
			t.Fatalf("the %s exited (%v): no service may need a restart", p.name, err)
		default:
		}
	}
	monitor.stop(t, 30*time.Second)
	relay.stop(t, 30*time.Second)
	sink.stop(t, 30*time.Second)
}
