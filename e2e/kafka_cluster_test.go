package e2e

// The pipeline on a Kafka cluster of three brokers (scripts/kafka.sh
// cluster), under a steady load written through the outbox, through the
// faults such a cluster has: each test counts the outbox's event ids
// against stats (0 lost, 0 stored twice), checks each site's order in the
// topic, that the relay and the sink ran on without a restart, and reports
// the longest an event written after the fault waited to be stored.

import (
	"context"
	"encoding/json"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// clusterRun is the relay and the sink on the cluster, and a writer of
// check events into the outbox at about 1,000 a second.
type clusterRun struct {
	*load
	t           *testing.T
	c           *kafkatest.Cluster
	relay, sink *process
	relayOps    string
}

func startClusterRun(t *testing.T) *clusterRun {
	c := kafkatest.StartCluster(t)
	dbURL := dbtest.New(t)
	r := &clusterRun{t: t, c: c, relayOps: porttest.Addr(t)}
	topic := c.NewTopic(6)
	incidents := c.NewTopic(3)
	c.DeleteAtEnd(topic + ".dlq") // the sink makes it
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + c.Brokers, "LOG_FORMAT=console"}
	r.relay = start(t, "relay", env, "-ops-addr", r.relayOps, "-poll-interval", "50ms", "-topics", topic+","+incidents)
	r.sink = start(t, "sink", env, append(sinkArgs(topic, incidents), "-notify=false")...)
	r.load = startLoad(t, dbtest.Pool(t, dbURL), topic)
	require.Eventually(t, func() bool { return count(t, r.pool, "SELECT count(*) FROM stats") > 1000 }, 90*time.Second,
		100*time.Millisecond, "the load is being stored")
	return r
}

// busiest is the partition of the topic with the most messages, and the
// node leading it.
func (r *clusterRun) busiest() (partition, node int) {
	r.t.Helper()
	cons, err := kafka.NewConsumer(r.c.Config().ConfigMap(kafka.ConfigMap{"group.id": "e2e-watermarks"}))
	require.NoError(r.t, err)
	defer func() { _ = cons.Close() }()
	leaders, err := r.c.Leaders(r.topic)
	require.NoError(r.t, err)
	most := int64(-1)
	for p := range leaders {
		_, high, err := cons.QueryWatermarkOffsets(r.topic, int32(p), 10_000)
		require.NoError(r.t, err)
		if high > most {
			most, partition = high, p
		}
	}
	return partition, leaders[partition]
}

// runOn lets the load run for d.
func (r *clusterRun) runOn(d time.Duration) {
	until := time.Now().Add(d)
	require.Eventually(r.t, func() bool { return time.Now().After(until) }, d+time.Minute, 100*time.Millisecond)
}

// finish stops the load and checks what came through; it returns the
// longest an event written after fault waited to be stored, and how many
// events the topic holds twice (the sink stores each once). Each site's
// events must be in the topic in the order they were written.
func (r *clusterRun) finish(fault time.Time) (time.Duration, int) {
	t := r.t
	t.Helper()
	written := r.halt()
	for _, p := range []*process{r.relay, r.sink} {
		select {
		case err := <-p.done:
			t.Fatalf("the %s exited (%v): no service may need a restart", p.name, err)
		default:
		}
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.GreaterOrEqual(c, count(t, r.pool, "SELECT count(*) FROM stats"), len(written), "every event stored: %s", state(t, r.pool))
	}, 3*time.Minute, 200*time.Millisecond)
	require.Equal(t, len(written), count(t, r.pool, "SELECT count(DISTINCT event_id) FROM stats"), "no event lost")
	require.Equal(t, len(written), count(t, r.pool, "SELECT count(*) FROM stats"), "no event stored twice")
	require.Zero(t, count(t, r.pool, "SELECT count(*) FROM outbox WHERE NOT published"), "every outbox row flipped")

	rows, err := r.pool.Query(context.Background(), "SELECT event_id::text, inserted_at FROM stats")
	require.NoError(t, err)
	var worst time.Duration
	stored := 0
	for rows.Next() {
		var id string
		var at time.Time
		require.NoError(t, rows.Scan(&id, &at))
		w, ok := written[id]
		require.True(t, ok, "event %s in stats was never written", id)
		stored++
		if w.After(fault) && at.Sub(w) > worst {
			worst = at.Sub(w)
		}
	}
	require.NoError(t, rows.Err())
	require.Equal(t, len(written), stored)

	// Each site's checks in the topic in the order they were written; an
	// event the relay sent again (its first send was appended, but the
	// relay could not flip its row) is counted.
	msgs := kafkatest.ConsumeUntilIdle(t, r.c.Config(), r.topic, 3*time.Second, 2*time.Minute)
	last, seen, dup := map[string]time.Time{}, map[string]bool{}, 0
	for _, m := range msgs {
		var c checkevent.Check
		require.NoError(t, json.Unmarshal(m.Value, &c))
		if seen[c.EventID] {
			dup++
			continue
		}
		seen[c.EventID] = true
		key := string(m.Key)
		require.False(t, c.CheckedAt.Before(last[key]), "site %s out of order in the topic", key)
		last[key] = c.CheckedAt
	}
	require.Len(t, seen, len(written), "every event in the topic")
	t.Logf("%d events, %d of them twice in the topic, each site's in order; the longest an event written after the fault waited to be stored: %s",
		len(written), dup, worst.Round(time.Millisecond))

	r.relay.stop(t, 30*time.Second)
	r.sink.stop(t, 30*time.Second)
	return worst, dup
}

// backAfterKill lets the load run on 10 s with a node killed at fault,
// starts the node again, runs 5 s more and checks what came through: each
// site's order kept, no event waiting 30 s, and no copy in the topic.
func (r *clusterRun) backAfterKill(fault time.Time) {
	r.t.Helper()
	r.runOn(10 * time.Second)
	r.c.Up()
	r.runOn(5 * time.Second)
	worst, dup := r.finish(fault)
	require.Less(r.t, worst, 30*time.Second)
	require.Zero(r.t, dup, "the idempotent producer's retries leave no copy in the topic")
}

// The leader of the busiest partition killed with kill -9: its partitions
// move to the other replicas in sync, the relay's idempotent producer
// resends what was not acknowledged, and nothing is lost or doubled.
func TestClusterLeaderKill9(t *testing.T) {
	r := startClusterRun(t)
	partition, node := r.busiest()
	t.Logf("killing node %d, the leader of partition %d", node, partition)
	fault := time.Now()
	r.c.Kill9(node)
	r.backAfterKill(fault)
}

// The active KRaft controller killed with kill -9: another voter takes
// the quorum over, and the pipeline goes on.
func TestClusterControllerKill9(t *testing.T) {
	r := startClusterRun(t)
	node, err := r.c.Controller()
	require.NoError(t, err)
	t.Logf("killing node %d, the active controller", node)
	fault := time.Now()
	r.c.Kill9(node)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		now, err := r.c.Controller()
		assert.NoError(c, err)
		assert.NotEqual(c, node, now, "another controller")
	}, time.Minute, 500*time.Millisecond)
	t.Logf("a new controller %s after the kill", time.Since(fault).Round(time.Millisecond))
	r.backAfterKill(fault)
}

// A broker that hangs rather than dies (SIGSTOP for 30 s, holding its
// connections): the controller fences it when its heartbeats stop, its
// partitions move, and the requests it held time out and are sent again.
func TestClusterBrokerHangs30s(t *testing.T) {
	r := startClusterRun(t)
	partition, node := r.busiest()
	t.Logf("stopping node %d (SIGSTOP), the leader of partition %d", node, partition)
	fault := time.Now()
	r.c.Signal(node, syscall.SIGSTOP)
	r.runOn(30 * time.Second)
	r.c.Signal(node, syscall.SIGCONT)
	r.runOn(10 * time.Second)
	worst, _ := r.finish(fault)
	require.Less(t, worst, 90*time.Second)
}

// A rolling restart, one broker at a time, each back in sync before the
// next: what an upgrade does.
func TestClusterRollingRestart(t *testing.T) {
	r := startClusterRun(t)
	fault := time.Now()
	for n := 1; n <= 3; n++ {
		restarted := time.Now()
		r.c.Stop(n)
		stopped := time.Now()
		r.c.Up()
		t.Logf("node %d: stopped in %s, started in %s", n, stopped.Sub(restarted).Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
		require.EventuallyWithT(t, func(c *assert.CollectT) {
			ok, err := r.c.InSync(r.topic)
			assert.NoError(c, err)
			assert.True(c, ok, "every replica in sync again")
		}, 2*time.Minute, 500*time.Millisecond)
		t.Logf("node %d restarted and in sync in %s", n, time.Since(restarted).Round(time.Millisecond))
	}
	r.runOn(5 * time.Second)
	worst, dup := r.finish(fault)
	require.Less(t, worst, 30*time.Second)
	require.Zero(t, dup, "a controlled shutdown moves leaders first: nothing sent twice")
}

// Two brokers of three down at once: with min.insync.replicas 2 no write
// can be acknowledged, so the relay keeps its rows unflipped and its
// /readyz says why; when they come back everything drains.
func TestClusterTwoBrokersDownBlocksAndDrains(t *testing.T) {
	r := startClusterRun(t)
	_, leader := r.busiest()
	down := []int{leader, leader%3 + 1}
	fault := time.Now()
	for _, n := range down {
		r.c.Kill9(n)
	}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		code, checks := readiness(t, r.relayOps)
		assert.Equal(c, http.StatusServiceUnavailable, code, "the relay is not ready: %v", checks)
		assert.Contains(c, checks["publishing"], "no row acknowledged by Kafka", "and says why")
	}, 90*time.Second, 250*time.Millisecond)
	_, checks := readiness(t, r.relayOps)
	t.Logf("relay /readyz with two brokers down: %v", checks)
	held := count(t, r.pool, "SELECT count(*) FROM outbox WHERE NOT published")
	require.Positive(t, held, "rows wait, unflipped")
	r.runOn(5 * time.Second)
	require.Greater(t, count(t, r.pool, "SELECT count(*) FROM outbox WHERE NOT published"), held, "and more keep coming")
	back := time.Now()
	r.c.Up()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		code, checks := readiness(t, r.relayOps)
		assert.Equal(c, http.StatusOK, code, "ready again: %v", checks)
	}, 90*time.Second, 250*time.Millisecond)
	t.Logf("ready again %s after the brokers came back", time.Since(back).Round(time.Millisecond))
	r.runOn(5 * time.Second)
	worst, _ := r.finish(fault)
	require.Greater(t, worst, 10*time.Second, "events written while two brokers were down waited for them")
}
