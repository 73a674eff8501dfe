package sink

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
	down     int
	attempts int
	batches  [][]store.Record
}

func (f *flakyWriter) Insert(ctx context.Context, recs []store.Record) (int64, error) {
	f.attempts++
	if _, ok := ctx.Deadline(); !ok {
		return 0, errors.New("an attempt without a deadline")
	}
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

// handle decodes one batch and writes it, as Run's collector and writers do.
func (s *Sink) handle(ctx context.Context, batch []*kafka.Message) error {
	return s.write(ctx, s.decode(batch))
}

func message(t *testing.T, offset int64, payload []byte) *kafka.Message {
	t.Helper()
	topic := "checks"
	return &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 1, Offset: kafka.Offset(offset)}, Value: payload}
}

func TestDatabaseDownIsRetriedAndRefusedRowsAreDeadLetters(t *testing.T) {
	c := &fakeConsumer{}
	w := &flakyWriter{down: 3}
	s := newSink(t, Config{BatchSize: 10, Writers: 1, BatchWait: time.Millisecond, ShutdownGrace: time.Second, WriteTimeout: time.Second}, c, w)
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
	dead := s.dead.(*buried).letters
	require.Len(t, dead, 1, "the refused one is a dead letter")
	require.Equal(t, "refused", dead[0].Class)
	require.EqualValues(t, 11, dead[0].Msg.TopicPartition.Offset)
	require.Contains(t, dead[0].Reason, "invalid byte sequence")
	require.Len(t, c.stored, 1)
	require.EqualValues(t, 13, c.stored[0].Offset, "offsets stored after the write, past the batch")
}

// buried records the dead letters it is given.
type buried struct{ letters []DeadLetter }

func (b *buried) Send(_ context.Context, letters []DeadLetter) error {
	b.letters = append(b.letters, letters...)
	return nil
}

func newSink(t *testing.T, cfg Config, c Consumer, w Writer) *Sink {
	t.Helper()
	s, err := New(cfg, c, w, &buried{}, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	return s
}

func TestShutdownDuringOutageStoresNoOffsetsAndDoesNotSpin(t *testing.T) {
	c := &fakeConsumer{}
	w := &flakyWriter{down: 1 << 30}
	s := newSink(t, Config{BatchSize: 10, Writers: 1, BatchWait: time.Millisecond, ShutdownGrace: 500 * time.Millisecond, WriteTimeout: time.Second}, c, w)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.handle(ctx, []*kafka.Message{message(t, 5, event(t, 1, 200))})
	require.ErrorContains(t, err, "offsets not stored")
	require.Empty(t, c.stored, "nothing acknowledged that was not written")
	// Backoff 100, 200, 400 ms within the 500 ms grace: a handful of
	// attempts. The old loop, woken by the closed ctx.Done() at once,
	// retried (and logged) thousands of times.
	require.GreaterOrEqual(t, w.attempts, 2)
	require.LessOrEqual(t, w.attempts, 6, "attempts during a shutdown in an outage")
}

func TestNewRefusesABadConfig(t *testing.T) {
	good := Config{BatchSize: 10, Writers: 1, BatchWait: time.Millisecond, ShutdownGrace: time.Second, WriteTimeout: time.Second}
	for name, mut := range map[string]func(*Config){
		"batch size":    func(c *Config) { c.BatchSize = 0 },
		"batch wait":    func(c *Config) { c.BatchWait = 0 },
		"grace":         func(c *Config) { c.ShutdownGrace = -time.Second },
		"write timeout": func(c *Config) { c.WriteTimeout = 0 },
		"writers":       func(c *Config) { c.Writers = 0 },
	} {
		cfg := good
		mut(&cfg)
		before := cfg
		_, err := New(cfg, &fakeConsumer{}, &flakyWriter{}, &buried{}, zaptest.NewLogger(t), prometheus.NewRegistry())
		require.ErrorContains(t, err, "sink configuration", name)
		require.ErrorContains(t, err, name, name)
		require.Equal(t, before, cfg)
	}
}

// queueConsumer hands out its messages, then nothing, and counts polls.
type queueConsumer struct {
	fakeConsumer
	queue []*kafka.Message
	polls int
}

func (q *queueConsumer) Poll(int) kafka.Event {
	q.polls++
	if len(q.queue) == 0 {
		return nil
	}
	m := q.queue[0]
	q.queue = q.queue[1:]
	return m
}

// The messages at hand make a batch at once: no wait for company.
func TestABatchIsWhatIsAtHandNotWhatATimerCollects(t *testing.T) {
	c := &queueConsumer{}
	for i := range 3 {
		c.queue = append(c.queue, message(t, int64(i), nil))
	}
	s := newSink(t, Config{BatchSize: 100, Writers: 1, BatchWait: time.Hour, ShutdownGrace: time.Second, WriteTimeout: time.Second}, c, &flakyWriter{})
	done := make(chan []*kafka.Message)
	go func() { done <- s.collect(context.Background()) }()
	select {
	case batch := <-done:
		require.Len(t, batch, 3)
		require.Equal(t, 4, c.polls, "three messages and one empty poll")
	case <-time.After(10 * time.Second):
		t.Fatal("the batch waited for more than what was at hand")
	}
	// A full batch is cut at BatchSize even with more at hand.
	for i := range 5 {
		c.queue = append(c.queue, message(t, int64(10+i), nil))
	}
	s.cfg.BatchSize = 2
	require.Len(t, s.collect(context.Background()), 2)
}

// failingDead is a Kafka that does not acknowledge dead letters.
type failingDead struct{ attempts int }

func (f *failingDead) Send(context.Context, []DeadLetter) error {
	f.attempts++
	return errors.New("Local: Message timed out")
}

// A dead letter Kafka does not take holds the batch's offsets back: at
// shutdown they are not stored, and the batch comes again.
func TestUnacknowledgedDeadLettersStoreNoOffsets(t *testing.T) {
	c := &fakeConsumer{}
	dead := &failingDead{}
	s, err := New(Config{BatchSize: 10, Writers: 1, BatchWait: time.Millisecond, ShutdownGrace: 300 * time.Millisecond, WriteTimeout: time.Second},
		c, &flakyWriter{}, dead, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = s.handle(ctx, []*kafka.Message{message(t, 5, []byte("not json")), message(t, 6, event(t, 1, 200))})
	require.ErrorContains(t, err, "dead letters")
	require.Empty(t, c.stored)
	require.GreaterOrEqual(t, dead.attempts, 2, "retried within the grace")
}

// A batch with refused rows is halved until they are alone: every other
// row is stored, and it takes a few dozen writes, not one per row.
func TestRefusedRowsAreFoundByHalving(t *testing.T) {
	c := &fakeConsumer{}
	w := &flakyWriter{}
	s := newSink(t, Config{BatchSize: 1000, Writers: 1, BatchWait: time.Millisecond, ShutdownGrace: time.Second, WriteTimeout: time.Second}, c, w)
	batch := make([]*kafka.Message, 1000)
	for i := range batch {
		site := int64(i + 3)
		if i == 17 || i == 640 {
			site = 2 // refused
		}
		batch[i] = message(t, int64(i), event(t, site, 200))
	}
	require.NoError(t, s.handle(context.Background(), batch))
	stored := 0
	for _, b := range w.batches {
		stored += len(b)
	}
	require.Equal(t, 998, stored)
	dead := s.dead.(*buried).letters
	require.Len(t, dead, 2)
	require.EqualValues(t, 17, dead[0].Msg.TopicPartition.Offset)
	require.EqualValues(t, 640, dead[1].Msg.TopicPartition.Offset)
	require.Less(t, w.attempts, 50, "halving, not one write per row")
}

// channelConsumer hands out the messages sent to it, one per poll, and
// records the offsets stored; safe for the loop's two goroutines.
type channelConsumer struct {
	msgs   chan *kafka.Message
	polled atomic.Int32
	mu     sync.Mutex
	stored []kafka.TopicPartition
}

func (c *channelConsumer) Poll(timeoutMs int) kafka.Event {
	select { // what is at hand first
	case m := <-c.msgs:
		c.polled.Add(1)
		return m
	default:
	}
	select {
	case m := <-c.msgs:
		c.polled.Add(1)
		return m
	case <-time.After(time.Duration(timeoutMs) * time.Millisecond):
		return nil
	}
}

func (c *channelConsumer) StoreOffsets(o []kafka.TopicPartition) ([]kafka.TopicPartition, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stored = append(c.stored, o...)
	return o, nil
}

// storedOffsets returns the offsets stored so far.
func (c *channelConsumer) storedOffsets() []kafka.TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]kafka.TopicPartition(nil), c.stored...)
}

// waitStored waits until n offsets are stored and returns them.
func (c *channelConsumer) waitStored(t *testing.T, n int) []kafka.TopicPartition {
	t.Helper()
	require.Eventually(t, func() bool { return len(c.storedOffsets()) == n }, 10*time.Second, time.Millisecond)
	return c.storedOffsets()
}

// gatedWriter holds each write until it is let through.
type gatedWriter struct {
	entered chan []store.Record
	gate    chan struct{}
}

func (g *gatedWriter) Insert(_ context.Context, recs []store.Record) (int64, error) {
	g.entered <- recs
	<-g.gate
	return int64(len(recs)), nil
}

// The next batch is collected and decoded while one is written, and the
// offsets are still stored in order.
func TestNextBatchIsCollectedWhileOneIsWritten(t *testing.T) {
	c := &channelConsumer{msgs: make(chan *kafka.Message, 2)}
	w := &gatedWriter{entered: make(chan []store.Record), gate: make(chan struct{})}
	s := newSink(t, Config{BatchSize: 1, Writers: 1, BatchWait: time.Millisecond, ShutdownGrace: time.Second, WriteTimeout: time.Second}, c, w)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	c.msgs <- message(t, 1, event(t, 1, 200))
	first := <-w.entered
	require.EqualValues(t, 1, first[0].Offset)
	c.msgs <- message(t, 2, event(t, 2, 200))
	require.Eventually(t, func() bool { return c.polled.Load() == 2 }, 10*time.Second, time.Millisecond,
		"the second batch is taken while the first is still being written")
	require.Eventually(t, func() bool { return testutil.ToFloat64(s.metrics.part("decode")) > 0 && len(c.msgs) == 0 },
		10*time.Second, time.Millisecond)
	require.Empty(t, c.storedOffsets(), "no offset is stored before its batch is written")

	w.gate <- struct{}{}
	second := <-w.entered
	require.EqualValues(t, 2, second[0].Offset)
	w.gate <- struct{}{}
	stored := c.waitStored(t, 2)
	require.EqualValues(t, 2, stored[0].Offset, "the first batch's next offset first")
	require.EqualValues(t, 3, stored[1].Offset)
	cancel()
	require.NoError(t, <-done)
}

// A batch is split among the writers by partition, and the shares are
// written at once, each in its own transaction.
func TestWritersWriteTheirPartitionsAtOnce(t *testing.T) {
	c := &channelConsumer{msgs: make(chan *kafka.Message, 6)}
	w := &gatedWriter{entered: make(chan []store.Record), gate: make(chan struct{})}
	s := newSink(t, Config{BatchSize: 100, Writers: 2, BatchWait: time.Hour, ShutdownGrace: time.Second, WriteTimeout: time.Second}, c, w)
	for i, partition := range []int32{0, 1, 2, 0, 1, 2} {
		m := message(t, int64(10+i), event(t, int64(i+1), 200))
		m.TopicPartition.Partition = partition
		c.msgs <- m
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	shares := map[int32][]int64{} // first partition of a share: its offsets
	// Both enter before either is let through.
	for range 2 {
		var recs []store.Record
		select {
		case recs = <-w.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the second share waited for the first to be written")
		}
		for _, r := range recs {
			shares[recs[0].Partition] = append(shares[recs[0].Partition], r.Offset)
			require.Equal(t, recs[0].Partition%2, r.Partition%2, "a share holds the partitions of one writer")
		}
	}
	require.Equal(t, map[int32][]int64{0: {10, 12, 13, 15}, 1: {11, 14}}, shares)
	w.gate <- struct{}{}
	w.gate <- struct{}{}
	next := map[int32]kafka.Offset{}
	for _, tp := range c.waitStored(t, 3) {
		next[tp.Partition] = tp.Offset
	}
	require.Equal(t, map[int32]kafka.Offset{0: 14, 1: 15, 2: 16}, next, "each partition's offsets, once its share is written")
	cancel()
	require.NoError(t, <-done)
}

// slowPartitionWriter holds the writes of partition 0 until they are let
// through and writes the others at once, recording every write's offsets.
type slowPartitionWriter struct {
	gate    chan struct{}
	mu      sync.Mutex
	written map[int32][]int64
}

func (w *slowPartitionWriter) Insert(_ context.Context, recs []store.Record) (int64, error) {
	if recs[0].Partition == 0 {
		<-w.gate
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range recs {
		w.written[r.Partition] = append(w.written[r.Partition], r.Offset)
	}
	return int64(len(recs)), nil
}

func (w *slowPartitionWriter) offsets(partition int32) []int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.written[partition]...)
}

// A writer done with its share starts its next one while another writer is
// still busy: each writer has a share waiting for it, so the collector does
// not stop at the slow writer's door. At shutdown, the share that waited
// and was never started is not written, nor are its offsets stored.
func TestAFastWriterDoesNotWaitForASlowOne(t *testing.T) {
	c := &channelConsumer{msgs: make(chan *kafka.Message, 6)}
	w := &slowPartitionWriter{gate: make(chan struct{}), written: map[int32][]int64{}}
	s := newSink(t, Config{BatchSize: 2, Writers: 2, BatchWait: time.Hour, ShutdownGrace: time.Second, WriteTimeout: time.Second}, c, w)
	for i := range 6 { // three batches, each one message of partition 0 and one of partition 1
		m := message(t, int64(i+1), event(t, int64(i+1), 200))
		m.TopicPartition.Partition = int32(i % 2)
		c.msgs <- m
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	require.Eventually(t, func() bool { return len(w.offsets(1)) == 2 }, 10*time.Second, time.Millisecond,
		"partition 1's writer wrote the second batch's share while partition 0's writer was still on the first")
	require.Equal(t, []int64{2, 4}, w.offsets(1))
	cancel()
	close(w.gate) // the first share of partition 0 ends; the second was waiting, never started
	require.NoError(t, <-done)
	require.Equal(t, []int64{1}, w.offsets(0), "the waiting share is dropped at shutdown")
	next := map[int32]kafka.Offset{}
	for _, tp := range c.storedOffsets() {
		next[tp.Partition] = max(next[tp.Partition], tp.Offset)
	}
	require.Equal(t, map[int32]kafka.Offset{0: 2, 1: 5}, next, "offsets only for what was written")
}
