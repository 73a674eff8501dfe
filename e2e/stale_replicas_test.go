package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
)

// A sink replica caught up on its own partitions opens no stale incident
// while another replica says it is behind on its partitions (the site's
// checks may be waiting there, unread); once that replica catches up, or
// stops reporting, the quiet site is judged stale.
func TestStaleWaitsForEverySinkReplicaToCatchUp(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	ctx := context.Background()
	topic, incidents := kafkatest.NewTopic(t, 3), kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}

	// The other replica, behind, reporting as a live one does.
	_, err := pool.Exec(ctx, "INSERT INTO sink_replicas (instance_id, caught_up, behind, reported_at) VALUES ('replica-b', false, 5000, now())")
	require.NoError(t, err)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				_, _ = pool.Exec(ctx, "UPDATE sink_replicas SET reported_at = now() WHERE instance_id = 'replica-b'")
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	// A site checked every second that nothing checks, made a minute ago.
	_, err = pool.Exec(ctx, `INSERT INTO sites (url, interval_ms, timeout_ms, created_at, updated_at)
		VALUES ('https://quiet.example/', 1000, 1000, now() - interval '1 minute', now() - interval '1 minute')`)
	require.NoError(t, err)

	// A check on every partition (of a site that does not exist: stored,
	// nothing else), so each partition has an end to have read up to.
	producer, err := kafka.NewProducer(kafkatest.Config(t).ConfigMap(kafka.ConfigMap{"acks": "all"}))
	require.NoError(t, err)
	defer producer.Close()
	reports := make(chan kafka.Event, 3)
	for p := int32(0); p < 3; p++ {
		v, err := json.Marshal(checkevent.Check{SchemaVersion: checkevent.SchemaVersion, EventID: uuid.NewString(), SiteID: 999_999,
			URL: "https://gone.example/", Region: "local", CheckedAt: time.Now().UTC(), StatusCode: 200, DurationMS: 1})
		require.NoError(t, err)
		require.NoError(t, producer.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: p}, Value: v}, reports))
	}
	for range 3 {
		require.NoError(t, (<-reports).(*kafka.Message).TopicPartition.Error)
	}

	sink := start(t, "sink", env, append(sinkArgs(topic, incidents), "-instance-id", "replica-a", "-incident-sweep-interval", "200ms")...)
	require.Eventually(t, func() bool {
		return strings.Contains(sink.out.String(), "another sink replica is behind its partitions")
	}, 60*time.Second, 20*time.Millisecond, "replica-a sees replica-b behind")
	require.Contains(t, sink.out.String(), `"replica-b"`)
	// Two more of replica-a's reports: a whole sweep ran after it saw b.
	reported := func() time.Time {
		var at time.Time
		require.NoError(t, pool.QueryRow(ctx, "SELECT reported_at FROM sink_replicas WHERE instance_id = 'replica-a'").Scan(&at))
		return at
	}
	for range 2 {
		before := reported()
		require.Eventually(t, func() bool { return reported().After(before) }, 10*time.Second, 20*time.Millisecond)
	}
	require.Zero(t, count(t, pool, "SELECT count(*) FROM incidents WHERE kind = 'stale'"), "no stale incident while replica-b is behind")

	// replica-b catches up: the site is stale.
	_, err = pool.Exec(ctx, "UPDATE sink_replicas SET caught_up = true, behind = 0 WHERE instance_id = 'replica-b'")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM incidents WHERE kind = 'stale' AND resolved_at IS NULL") == 1
	}, 30*time.Second, 50*time.Millisecond)
	require.Contains(t, sink.out.String(), "every sink replica has read its partitions up to their ends")

	// At shutdown replica-a takes its report away.
	sink.stop(t, 30*time.Second)
	require.Zero(t, count(t, pool, "SELECT count(*) FROM sink_replicas WHERE instance_id = 'replica-a'"))
}
