package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

func event(t *testing.T, siteID int64, status int) []byte {
	t.Helper()
	yes := true
	b, err := json.Marshal(checkevent.Check{SchemaVersion: 1, EventID: uuid.NewString(), SiteID: siteID,
		URL: fmt.Sprintf("http://site-%d", siteID), CheckedAt: time.Now().UTC(), StatusCode: status,
		DurationMS: 1.5, Regex: "ok", RegexMatched: &yes})
	require.NoError(t, err)
	return b
}

func produce(t *testing.T, topic string, values ...[]byte) {
	t.Helper()
	p, err := kafka.NewProducer(kafkatest.Config(t).ConfigMap(kafka.ConfigMap{"acks": "all"}))
	require.NoError(t, err)
	defer p.Close()
	reports := make(chan kafka.Event, len(values))
	for _, v := range values {
		require.NoError(t, p.Produce(&kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 0}, Value: v}, reports))
	}
	for range values {
		m := (<-reports).(*kafka.Message)
		require.NoError(t, m.TopicPartition.Error)
	}
}

func newConsumer(t *testing.T, topic, group string) *kafka.Consumer {
	t.Helper()
	c, err := kafka.NewConsumer(kafkatest.Config(t).ConfigMap(kafka.ConfigMap{
		"group.id": group, "auto.offset.reset": "earliest",
		"enable.auto.commit": true, "enable.auto.offset.store": false, "auto.commit.interval.ms": 200,
	}))
	require.NoError(t, err)
	require.NoError(t, c.Subscribe(topic, nil))
	return c
}

// runSink runs a sink until stop returns true, then closes its consumer
// (which commits the stored offsets).
func runSink(t *testing.T, pool *pgxpool.Pool, topic, group string, stop func() bool) *Sink {
	t.Helper()
	c := newConsumer(t, topic, group)
	producer, err := kafka.NewProducer(kafkatest.Config(t).ConfigMap(kafka.ConfigMap{"acks": "all", "enable.idempotence": true}))
	require.NoError(t, err)
	t.Cleanup(producer.Close)
	s, err := New(Config{BatchSize: 100, Writers: 1, BatchWait: 50 * time.Millisecond, ShutdownGrace: time.Second, WriteTimeout: 10 * time.Second},
		c, store.New(pool, checkevent.IncidentTopic, prometheus.NewRegistry()), Producer{producer}, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, stop, 20*time.Second, 50*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	require.NoError(t, c.Close())
	return s
}

func count(t *testing.T, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), query).Scan(&n))
	return n
}

func TestSameMessageTwiceMakesOneRowAndMalformedIsADeadLetter(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.New(t))
	topic := kafkatest.NewTopic(t, 1)
	require.NoError(t, kafkaclient.EnsureTopic(context.Background(), kafkatest.Config(t), topic+DLQSuffix, 1))
	group := "test-" + uuid.NewString()

	dup := event(t, 1, 200)
	future := []byte(`{"schema_version":99,"event_id":"` + uuid.NewString() + `","site_id":9,"url":"http://site-9",` +
		`"checked_at":"2026-01-01T00:00:00Z","status_code":200,"duration_ms":2,"region":"eu-west","new_field":true}`)
	produce(t, topic, dup, []byte("not json"), dup, event(t, 2, 500), []byte(`{"schema_version":1}`), future, event(t, 3, 0))

	// The last message, site 3, is stored only after everything before it.
	first := runSink(t, pool, topic, group, func() bool {
		return count(t, pool, "SELECT count(*) FROM stats WHERE site_id = 3") == 1
	})
	require.Equal(t, 4, count(t, pool, "SELECT count(*) FROM stats"), "one row per event, malformed skipped")
	// The two that can never be stored are on the dead-letter topic, as
	// they came, with why and where from.
	dead := kafkatest.Consume(t, topic+DLQSuffix, 2, 30*time.Second)
	require.Equal(t, "not json", string(dead[0].Value))
	require.Equal(t, `{"schema_version":1}`, string(dead[1].Value))
	headers := map[string]string{}
	for _, h := range dead[0].Headers {
		headers[h.Key] = string(h.Value)
	}
	require.Equal(t, "malformed", headers[HeaderReasonClass])
	require.Equal(t, topic, headers[HeaderSourceTopic])
	require.Equal(t, "0", headers[HeaderSourcePartition])
	require.Equal(t, "1", headers[HeaderSourceOffset])
	require.NotEmpty(t, headers[HeaderReason])
	require.Equal(t, 2.0, testutil.ToFloat64(first.metrics.deadLetters.WithLabelValues("malformed")))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM stats WHERE site_id = 9 AND schema_version = 99 AND region = 'eu-west'"),
		"a newer version is stored with the fields the sink knows, not dropped")
	require.Equal(t, 1.0, testutil.ToFloat64(first.metrics.newer))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM stats WHERE site_id = 1"))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM stats WHERE site_id = 2 AND status_code = 500 AND regex_matched"))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM stats WHERE site_id = 3 AND status_code IS NULL"))

	// Offsets were committed after the rows: a restarted sink in the same
	// group reads only what is new, and the dedupe key holds across runs.
	produce(t, topic, dup, event(t, 4, 200))
	second := runSink(t, pool, topic, group, func() bool {
		return count(t, pool, "SELECT count(*) FROM stats WHERE site_id = 4") == 1
	})
	require.Equal(t, 5, count(t, pool, "SELECT count(*) FROM stats"))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM stats WHERE site_id = 1"))
	require.Equal(t, 2.0, testutil.ToFloat64(second.metrics.consumed), "the restarted sink read only the 2 new messages")
	require.Equal(t, 1.0, testutil.ToFloat64(second.metrics.duplicates))
	require.Equal(t, 8, count(t, pool, "SELECT kafka_offset FROM stats WHERE site_id = 4"))
}
