package relay

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

func newRelay(t *testing.T, pool *pgxpool.Pool, p Producer, batch int) *Relay {
	t.Helper()
	st, err := store.New("outbox")
	require.NoError(t, err)
	return New(Config{BatchSize: batch, PollInterval: 50 * time.Millisecond, Source: "/test", DefaultType: "test.type"},
		pool, st, p, zaptest.NewLogger(t), prometheus.NewRegistry())
}

func newProducer(t *testing.T, messageTimeout time.Duration) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(kafkatest.Config(t).ConfigMap(kafka.ConfigMap{
		"enable.idempotence": true, "acks": "all", "linger.ms": 5,
		"message.timeout.ms": int(messageTimeout.Milliseconds()),
		"partitioner":        "murmur2_random",
	}))
	require.NoError(t, err)
	t.Cleanup(p.Close)
	go func() {
		for range p.Events() {
		}
	}()
	return p
}

func writeRows(t *testing.T, pool *pgxpool.Pool, msgs ...outbox.Message) {
	t.Helper()
	require.NoError(t, pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		return outbox.Write(context.Background(), tx, msgs...)
	}))
}

type rowState struct {
	EventID     string
	Published   bool
	PublishedAt *time.Time
	Attempts    int
	LastError   *string
}

func rowStates(t *testing.T, pool *pgxpool.Pool) []rowState {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		"SELECT event_id::text, published, published_at, attempts, last_error FROM outbox ORDER BY id")
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rowState])
	require.NoError(t, err)
	return out
}

func TestPublishesEveryRowOnceWithItsKeyAndHeaders(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	topic := kafkatest.NewTopic(t, 3)

	const n = 250
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: topic, Key: []byte("site-" + strconv.Itoa(i%7)),
			Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), Headers: map[string]string{"traceparent": "00-trace-" + strconv.Itoa(i)}}
	}
	writeRows(t, pool, msgs...)

	r := newRelay(t, pool, newProducer(t, 10*time.Second), 100)
	total := 0
	for {
		claimed, err := r.PublishBatch(ctx)
		require.NoError(t, err)
		if claimed == 0 {
			break
		}
		total += claimed
	}
	require.Equal(t, n, total)
	for _, s := range rowStates(t, pool) {
		require.True(t, s.Published, s.EventID)
		require.NotNil(t, s.PublishedAt)
		require.Equal(t, 1, s.Attempts)
		require.Nil(t, s.LastError)
	}

	// A second run finds nothing: no row is produced twice.
	claimed, err := r.PublishBatch(ctx)
	require.NoError(t, err)
	require.Zero(t, claimed)

	got := kafkatest.Consume(t, topic, n+1, 8*time.Second)
	require.Len(t, got, n, "every row exactly once, nothing more")
	states := rowStates(t, pool)
	byID := map[string]int{}
	for i, s := range states {
		byID[s.EventID] = i
	}
	lastPerKey := map[string]int{}
	for _, m := range got {
		h := map[string]string{}
		for _, kv := range m.Headers {
			h[kv.Key] = string(kv.Value)
		}
		i, ok := byID[h["ce_id"]]
		require.True(t, ok, "ce_id is the row's event id")
		require.Equal(t, msgs[i].Key, m.Key)
		require.Equal(t, msgs[i].Payload, m.Value)
		require.Equal(t, msgs[i].Headers["traceparent"], h["traceparent"])
		require.Equal(t, "1.0", h["ce_specversion"])
		require.Equal(t, "/test", h["ce_source"])
		require.Equal(t, "test.type", h["ce_type"])
		_, err := time.Parse(time.RFC3339Nano, h["ce_time"])
		require.NoError(t, err)
		// Within a partition, one key's messages arrive in outbox order.
		if prev, seen := lastPerKey[string(m.Key)]; seen {
			require.Greater(t, i, prev, "per-key order for key %s", m.Key)
		}
		lastPerKey[string(m.Key)] = i
	}
}

// fakeProducer acknowledges every message except those to refusedTopic.
type fakeProducer struct{ refusedTopic string }

func (f fakeProducer) Produce(m *kafka.Message, ch chan kafka.Event) error {
	if *m.TopicPartition.Topic == f.refusedTopic {
		m.TopicPartition.Error = kafka.NewError(kafka.ErrMsgSizeTooLarge, "Broker: Message size too large", false)
	}
	go func() { ch <- m }()
	return nil
}

func TestFlipsOnlyAcknowledgedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	writeRows(t, pool,
		outbox.Message{Topic: "ok", Payload: []byte("1")},
		outbox.Message{Topic: "refused", Payload: []byte("2")},
		outbox.Message{Topic: "ok", Payload: []byte("3")},
	)
	r := newRelay(t, pool, fakeProducer{refusedTopic: "refused"}, 10)
	claimed, err := r.PublishBatch(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, claimed)

	s := rowStates(t, pool)
	require.True(t, s[0].Published)
	require.True(t, s[2].Published)
	require.False(t, s[1].Published, "a refused row stays unpublished")
	require.Nil(t, s[1].PublishedAt)
	require.Equal(t, 1, s[1].Attempts)
	require.Contains(t, *s[1].LastError, "Message size too large")

	// It is retried on the next batch; the published rows are not.
	claimed, err = r.PublishBatch(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, claimed)
	require.Equal(t, 2, rowStates(t, pool)[1].Attempts)
}

func TestUnknownTopicStaysUnpublishedOnRealBroker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	topic := kafkatest.NewTopic(t, 1)
	writeRows(t, pool,
		outbox.Message{Topic: topic, Payload: []byte("ok")},
		outbox.Message{Topic: "test.does-not-exist." + topic, Payload: []byte("lost?")},
	)
	r := newRelay(t, pool, newProducer(t, 2*time.Second), 10)
	_, err := r.PublishBatch(ctx)
	require.NoError(t, err)

	s := rowStates(t, pool)
	require.True(t, s[0].Published)
	require.False(t, s[1].Published)
	require.NotNil(t, s[1].LastError)
	require.Len(t, kafkatest.Consume(t, topic, 2, 3*time.Second), 1)
}

func TestRunStopsAfterTheBatchInFlight(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, dbtest.New(t))
	topic := kafkatest.NewTopic(t, 1)
	r := newRelay(t, pool, newProducer(t, 10*time.Second), 50)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	writeRows(t, pool, outbox.Message{Topic: topic, Payload: []byte("a")}, outbox.Message{Topic: topic, Payload: []byte("b")})
	require.Eventually(t, func() bool {
		s := rowStates(t, pool)
		return s[0].Published && s[1].Published
	}, 10*time.Second, 20*time.Millisecond, "Run publishes rows written while it runs")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}
