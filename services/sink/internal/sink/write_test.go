package sink

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

type fakeConsumer struct{ stored []kafka.TopicPartition }

func (f *fakeConsumer) Poll(int) kafka.Event { return nil }
func (f *fakeConsumer) StoreOffsets(o []kafka.TopicPartition) ([]kafka.TopicPartition, error) {
	f.stored = append(f.stored, o...)
	return o, nil
}

// flakyWriter fails like an unreachable database, then like one refusing
// the data for the record with site id 2, then works.
type flakyWriter struct {
	down    int
	batches [][]store.Record
}

func (f *flakyWriter) Insert(_ context.Context, recs []store.Record) (int64, error) {
	if f.down > 0 {
		f.down--
		return 0, errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
	}
	for _, r := range recs {
		if r.SiteID == 2 {
			return 0, &pgconn.PgError{Code: "22021", Message: "invalid byte sequence for encoding \"UTF8\": 0x00"}
		}
	}
	f.batches = append(f.batches, recs)
	return int64(len(recs)), nil
}

func message(t *testing.T, offset int64, payload []byte) *kafka.Message {
	t.Helper()
	topic := "checks"
	return &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 1, Offset: kafka.Offset(offset)}, Value: payload}
}

func TestDatabaseDownIsRetriedAndRefusedRowsAreSkipped(t *testing.T) {
	c := &fakeConsumer{}
	w := &flakyWriter{down: 3}
	s := New(Config{BatchSize: 10, BatchWait: time.Millisecond, ShutdownGrace: time.Second}, c, w,
		zaptest.NewLogger(t), prometheus.NewRegistry())
	batch := []*kafka.Message{message(t, 10, event(t, 1, 200)), message(t, 11, event(t, 2, 200)), message(t, 12, event(t, 3, 200))}
	require.NoError(t, s.handle(context.Background(), batch))

	require.Zero(t, w.down, "retried through the outage")
	var stored []int64
	for _, b := range w.batches {
		for _, r := range b {
			stored = append(stored, r.SiteID)
		}
	}
	require.Equal(t, []int64{1, 3}, stored, "only the refused record is skipped")
	require.Len(t, c.stored, 1)
	require.EqualValues(t, 13, c.stored[0].Offset, "offsets stored after the write, past the batch")
}

func TestShutdownDuringOutageStoresNoOffsets(t *testing.T) {
	c := &fakeConsumer{}
	s := New(Config{BatchSize: 10, BatchWait: time.Millisecond, ShutdownGrace: 300 * time.Millisecond}, c,
		&flakyWriter{down: 1 << 30}, zaptest.NewLogger(t), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.handle(ctx, []*kafka.Message{message(t, 5, event(t, 1, 200))})
	require.ErrorContains(t, err, "offsets not stored")
	require.Empty(t, c.stored, "nothing acknowledged that was not written")
}
