package e2e

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
)

// steadyChecks produces check events of 30 sites to topic at about 200/s
// until stop is closed, and returns the produce time of each event id.
func steadyChecks(t *testing.T, topic string, stop <-chan struct{}) func() map[string]time.Time {
	p, err := kafka.NewProducer(kafkatest.Config(t).ConfigMap(kafka.ConfigMap{"acks": "all", "linger.ms": 1}))
	require.NoError(t, err)
	var mu sync.Mutex
	sent := map[string]time.Time{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				p.Flush(10_000)
				p.Close()
				return
			case <-tick.C:
			}
			site := int64(i%30 + 1)
			c := checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "local", EventID: uuid.NewString(), SiteID: site,
				URL: "https://site" + strconv.FormatInt(site, 10) + ".example/", CheckedAt: time.Now().UTC(), StatusCode: 200, DurationMS: 3}
			v, _ := json.Marshal(c)
			if p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
				Key: []byte(strconv.FormatInt(site, 10)), Value: v}, nil) == nil {
				mu.Lock()
				sent[c.EventID] = time.Now()
				mu.Unlock()
			}
		}
	}()
	return func() map[string]time.Time {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return sent
	}
}

// worstWait checks that every event sent is stored exactly once and returns
// the longest time an event sent after since waited to be stored.
func worstWait(t *testing.T, pool *pgxpool.Pool, sent map[string]time.Time, since time.Time) time.Duration {
	t.Helper()
	require.Eventually(t, func() bool { return count(t, pool, "SELECT count(*) FROM stats") >= len(sent) }, 90*time.Second, 100*time.Millisecond,
		"every event stored")
	require.Equal(t, len(sent), count(t, pool, "SELECT count(DISTINCT event_id) FROM stats"), "no event lost")
	require.Equal(t, len(sent), count(t, pool, "SELECT count(*) FROM stats"), "no event stored twice")
	rows, err := pool.Query(context.Background(), "SELECT event_id::text, inserted_at FROM stats")
	require.NoError(t, err)
	defer rows.Close()
	var worst time.Duration
	for rows.Next() {
		var id string
		var at time.Time
		require.NoError(t, rows.Scan(&id, &at))
		if s, ok := sent[id]; ok && s.After(since) && at.Sub(s) > worst {
			worst = at.Sub(s)
		}
	}
	require.NoError(t, rows.Err())
	return worst
}

// Under a steady stream: a sink killed with kill -9 and restarted with its
// -instance-id resumes at once (static membership), and with two replicas
// the survivor of a kill -9 takes the dead one's partitions within its
// session timeout; nothing is lost or stored twice either way.
func TestSinkFailoverUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name     string
		replicas int
	}{{"restart", 1}, {"takeover", 2}} {
		t.Run(tc.name, func(t *testing.T) {
			dbURL := dbtest.New(t)
			pool := dbtest.Pool(t, dbURL)
			topic, incidents := kafkatest.NewTopic(t, 6), kafkatest.NewTopic(t, 3)
			_, err := pool.Exec(context.Background(), `INSERT INTO sites (url, topic_name)
				SELECT 'https://site' || i || '.example/', $1 FROM generate_series(1, 30) i`, topic)
			require.NoError(t, err)
			env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
			args := func(id string) []string {
				return append(sinkArgs(topic, incidents), "-notify=false", "-instance-id", id+"-"+topic)
			}
			var sinks []*process
			for i := range tc.replicas {
				sinks = append(sinks, start(t, "sink", env, args("sink"+strconv.Itoa(i))...))
			}
			stop := make(chan struct{})
			sent := steadyChecks(t, topic, stop)
			require.Eventually(t, func() bool { return count(t, pool, "SELECT count(*) FROM stats") > 500 }, 60*time.Second,
				100*time.Millisecond, "the stream is being stored")

			killed := time.Now()
			sinks[0].kill9()
			if tc.replicas == 1 {
				sinks[0] = start(t, "sink", env, args("sink0")...)
			}
			// Run on for a while after the kill, then stop the stream.
			require.Eventually(t, func() bool { return time.Since(killed) > 15*time.Second }, time.Minute, 100*time.Millisecond)
			close(stop)
			worst := worstWait(t, pool, sent(), killed)
			t.Logf("%s: the longest an event sent after the kill -9 waited to be stored: %s", tc.name, worst.Round(time.Millisecond))
			// The old dynamic membership with librdkafka's 45 s session
			// timeout left a dead member's partitions unread for ~46 s.
			require.Less(t, worst, 20*time.Second)
			sinks[len(sinks)-1].stop(t, 20*time.Second) // the restarted one, or the survivor
		})
	}
}
