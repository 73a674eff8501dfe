package e2e

// One database role per service: each binary does its whole job with only
// the privileges db/grants.sql gives its role, and is refused the rest.

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// asRole is databaseURL with the role's login (scripts/pg.sh gives each
// role its name as password).
func asRole(t *testing.T, databaseURL, role string) string {
	u, err := url.Parse(databaseURL)
	require.NoError(t, err)
	u.User = url.UserPassword(role, role)
	return u.String()
}

func TestEachServiceRunsWithOnlyItsOwnRole(t *testing.T) {
	owner := dbtest.New(t)
	pool := dbtest.Pool(t, owner)
	ctx := context.Background()
	var roles int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)", db.Roles).Scan(&roles))
	require.Equal(t, len(db.Roles), roles, "the services' roles %v: scripts/pg.sh up creates them (on another server, create them and migrate again)", db.Roles)
	topic, incidents := kafkatest.NewTopic(t, 3), kafkatest.NewTopic(t, 3)
	brokers := "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers
	monitorEnv := []string{"DATABASE_URL=" + asRole(t, owner, "sitewatch_monitor"), "LOG_FORMAT=console"}
	relayEnv := []string{"DATABASE_URL=" + asRole(t, owner, "sitewatch_relay"), brokers, "LOG_FORMAT=console"}
	sinkEnv := []string{"DATABASE_URL=" + asRole(t, owner, "sitewatch_sink"), brokers, "LOG_FORMAT=console"}

	srv, failing := switchableServer(t)
	hook := newHookReceiver(t)
	hook.up()

	// The monitor's CLI: sites, channels, silences, incidents.
	for _, args := range [][]string{
		{"channels", "add", "oncall", "--webhook", hook.url(), "--default"},
		{"channels", "update", "oncall", "--default"},
		{"sites", "add", srv.URL + "/", "--interval", "1s", "--timeout", "1s", "--topic", topic},
		{"sites", "update", "1", "--channel", "oncall"},
		{"sites", "add", "heartbeat://roles-job", "--interval", "1h"},
		{"silence", "add", "--site", "1", "--for", "1h"},
		{"silence", "list"},
		{"silence", "remove", "1"},
		{"incidents", "list"},
		{"channels", "show", "oncall"},
		{"sites", "export"},
	} {
		code, out := run(t, append(monitorEnv, "SITEWATCH_CHANNEL_SECRET=hook-secret"), "monitor", args...)
		require.Equal(t, 0, code, "monitor %v as sitewatch_monitor: %s", args, out)
	}

	monitor := startReplica(t, monitorEnv, "eu-west")
	relay := start(t, "relay", relayEnv, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+incidents)
	sink := start(t, "sink", sinkEnv, sinkArgs(topic, incidents)...)
	require.Eventually(t, func() bool { return count(t, pool, "SELECT count(*) FROM stats") >= 2 }, 60*time.Second, 100*time.Millisecond,
		"checks written by the monitor, published by the relay, stored by the sink, each as its own role")
	// The heartbeat sweep gives the heartbeat site its row; removing the
	// site as the monitor's role removes the row too.
	require.Eventually(t, func() bool { return count(t, pool, "SELECT count(*) FROM heartbeats WHERE site_id = 2") == 1 },
		30*time.Second, 100*time.Millisecond, "the monitor's role sweeps the heartbeats")
	code, out := run(t, monitorEnv, "monitor", "sites", "remove", "2")
	require.Equal(t, 0, code, out)
	require.Zero(t, count(t, pool, "SELECT count(*) FROM heartbeats"))
	failing.Store(true)
	require.Eventually(t, func() bool { return len(hook.notices()) >= 1 }, 60*time.Second, 100*time.Millisecond,
		"an incident opened by the sink, published by the relay, notified by the sink's notifier")
	for _, c := range []struct {
		env  []string
		name string
		args []string
	}{
		{sinkEnv, "sink", []string{"deliveries", "list"}},
		{sinkEnv, "sink", []string{"deliveries", "retry", "-all"}},
		{relayEnv, "relay", []string{"parked", "list", "-topics", topic}},
	} {
		code, out := run(t, c.env, c.name, c.args...)
		require.Equal(t, 0, code, "%s %v: %s", c.name, c.args, out)
	}
	monitor.stop(t, 30*time.Second)
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)
	require.NotContains(t, sink.out.String(), "permission denied", "the sink's maintenance (partitions, rollup expiry) as its role too")
	require.NotContains(t, monitor.out.String(), "permission denied")
	require.NotContains(t, relay.out.String(), "permission denied")
	require.Positive(t, count(t, pool, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'stats'::regclass"), "partitions made by the sink's role")

	// And nothing more.
	denied := map[string][]string{
		"sitewatch_monitor": {"SELECT count(*) FROM stats", "DELETE FROM incidents", "UPDATE deliveries SET attempts = 0",
			"DELETE FROM outbox", "SELECT count(*) FROM outbox", "CREATE TABLE x (id int)", "SELECT stats_partitions_drop('2100-01-01')",
			"SELECT count(*) FROM rollups", "SELECT outbox_drop('outbox_default')"},
		"sitewatch_relay": {"SELECT count(*) FROM sites", "SELECT count(*) FROM channels", "INSERT INTO stats (event_id) VALUES (gen_random_uuid())",
			"DELETE FROM sites", "SELECT stats_partition_create('2100-01-01')"},
		"sitewatch_sink": {"UPDATE sites SET enabled = false", "DELETE FROM outbox", "UPDATE outbox SET published = true",
			"DELETE FROM stats", "SELECT outbox_extend('outbox', 1000, 9)", "INSERT INTO channels (name, kind, url) VALUES ('x', 'webhook', 'https://x/')", "SELECT secret FROM channels LIMIT 0 FOR UPDATE"},
	}
	for role, statements := range denied {
		conn, err := pgx.Connect(ctx, asRole(t, owner, role))
		require.NoError(t, err)
		for _, q := range statements {
			_, err := conn.Exec(ctx, q)
			var pgErr *pgconn.PgError
			require.True(t, errors.As(err, &pgErr), "%s: %q must be refused, got %v", role, q, err)
			require.Equal(t, "42501", pgErr.Code, "%s: %q: %v", role, q, err) // insufficient_privilege
		}
		require.NoError(t, conn.Close(ctx))
	}
}
