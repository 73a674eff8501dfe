package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/pgtest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// Behind PgBouncer in session mode the pipeline runs as it does directly,
// leases included. In transaction mode each service refuses at start-up,
// naming the setting, instead of failing later on a lease it thinks it
// holds.
func TestPipelineBehindPgBouncer(t *testing.T) {
	dbURL := pgtest.NewDatabase(t) // PgBouncer refuses dbtest's search_path
	pool := dbtest.Pool(t, dbURL)
	topic, incidents := kafkatest.NewTopic(t, 3), kafkatest.NewTopic(t, 3)
	brokers := kafkatest.Config(t).Brokers
	env := func(databaseURL string) []string {
		return []string{"DATABASE_URL=" + databaseURL, "KAFKA_BROKERS=" + brokers, "LOG_FORMAT=console"}
	}
	session := env(pgtest.Bouncer(t, dbURL, "session"))
	srv, _ := switchableServer(t)
	const sites = 5
	importSites(t, session, srv.URL, sites, "1s", "    topic: "+topic+"\n")
	sinkFlags := append(sinkArgs(topic, incidents), "-notify=false")
	monitor := startReplica(t, session, "eu-west")
	relay := start(t, "relay", session, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+incidents)
	sink := start(t, "sink", session, sinkFlags...)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, sites, count(t, pool, "SELECT count(DISTINCT site_id) FROM stats"), "every site checked and stored: %s", state(t, pool))
		assert.GreaterOrEqual(c, count(t, pool, "SELECT count(*) FROM stats"), 3*sites)
		lanes, shards, holders := heldLeases(t, pool)
		assert.Equal(c, outbox.Lanes, lanes, "the relay holds every lane through PgBouncer")
		assert.Equal(c, monitorShards, shards, "the monitor every shard")
		assert.Equal(c, lanes+shards, holders)
	}, 90*time.Second, 200*time.Millisecond)
	monitor.stop(t, 30*time.Second)
	relay.stop(t, 30*time.Second)
	sink.stop(t, 30*time.Second)

	transaction := env(pgtest.Bouncer(t, dbURL, "transaction"))
	for _, p := range []*process{
		start(t, "monitor", transaction, "run", "-ops-addr", porttest.Addr(t), "-region", "eu-west", "-log-format", "console"),
		start(t, "relay", transaction, "-ops-addr", porttest.Addr(t), "-topics", topic),
		start(t, "sink", transaction, sinkFlags...),
	} {
		select {
		case err := <-p.done:
			require.Error(t, err, "the %s refuses", p.name)
			require.Contains(t, p.out.String(), "pool_mode = session", "the %s names the setting", p.name)
		case <-time.After(time.Minute):
			t.Fatalf("the %s runs behind PgBouncer in transaction mode:\n%s", p.name, p.out.String())
		}
	}
}
