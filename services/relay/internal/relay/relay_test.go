package relay

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

var allLanes = func() []int16 {
	l := make([]int16, Lanes)
	for i := range l {
		l[i] = int16(i)
	}
	return l
}()

func testConfig() Config {
	return Config{BatchSize: 100, Workers: 2, PollInterval: time.Minute, Rebalance: 200 * time.Millisecond,
		SQLTimeout: 30 * time.Second, DrainTimeout: time.Second, MaxMessageBytes: 1000000, Retry: store.Retry{Backoff: time.Hour, MaxBackoff: time.Hour, MaxAttempts: 3},
		RetentionInterval: time.Hour, RetentionBatch: 10, PartitionRows: DefaultPartitionRows}
}

func newRelay(t *testing.T, dbURL string, p Producer, cfg Config, topics ...string) *Relay {
	t.Helper()
	if len(topics) == 0 {
		topics = []string{"*"}
	}
	r, err := New(context.Background(), cfg, Source{Name: "test", DatabaseURL: dbURL, Table: "outbox", Topics: topics,
		CESource: "/test", CEType: "test.type", IDHeader: "outbox_id"},
		p, zaptest.NewLogger(t), NewMetrics(prometheus.NewRegistry()))
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

func newProducer(t *testing.T, messageTimeout time.Duration) *kafka.Producer {
	t.Helper()
	p, err := kafka.NewProducer(kafkatest.Config(t).ConfigMap(kafka.ConfigMap{
		"enable.idempotence": true, "acks": "all", "linger.ms": 5,
		"message.timeout.ms":                int(messageTimeout.Milliseconds()),
		"topic.metadata.propagation.max.ms": 2000,
		"partitioner":                       "murmur2_random",
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
	Parked      bool
	Retrying    bool
}

func rowStates(t *testing.T, pool *pgxpool.Pool) []rowState {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT event_id::text, published, published_at, attempts, last_error,
		parked_at IS NOT NULL, coalesce(next_attempt_at > now(), false) FROM outbox ORDER BY id`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[rowState])
	require.NoError(t, err)
	return out
}

func drain(t *testing.T, r *Relay) int {
	t.Helper()
	total := 0
	for {
		res, err := r.publish(context.Background(), allLanes)
		require.NoError(t, err)
		if res.Claimed == 0 {
			return total
		}
		total += res.Published
	}
}

func headerMap(m *kafka.Message) map[string]string {
	h := map[string]string{}
	for _, kv := range m.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

func TestPublishesEveryRowOnceWithItsKeyAndHeaders(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 3)

	const n = 250
	msgs := make([]outbox.Message, n)
	for i := range msgs {
		msgs[i] = outbox.Message{Topic: topic, Key: []byte("site-" + strconv.Itoa(i%7)),
			Payload: []byte(fmt.Sprintf(`{"n":%d}`, i)), Headers: map[string]string{"traceparent": "00-trace-" + strconv.Itoa(i)}}
	}
	writeRows(t, pool, msgs...)

	r := newRelay(t, dbURL, newProducer(t, 10*time.Second), testConfig())
	require.Equal(t, n, drain(t, r))
	for _, s := range rowStates(t, pool) {
		require.True(t, s.Published, s.EventID)
		require.NotNil(t, s.PublishedAt)
		require.Equal(t, 1, s.Attempts)
		require.Nil(t, s.LastError)
	}
	require.Zero(t, drain(t, r), "a second run publishes nothing")

	got := kafkatest.Consume(t, topic, n+1, 8*time.Second)
	require.Len(t, got, n, "every row exactly once, nothing more")
	byID := map[string]int{}
	for i, s := range rowStates(t, pool) {
		byID[s.EventID] = i
	}
	lastPerKey := map[string]int{}
	for _, m := range got {
		h := headerMap(m)
		i, ok := byID[h["ce_id"]]
		require.True(t, ok, "ce_id is the row's event id")
		require.Equal(t, msgs[i].Key, m.Key)
		require.Equal(t, msgs[i].Payload, m.Value)
		require.Equal(t, msgs[i].Headers["traceparent"], h["traceparent"])
		require.Equal(t, "1.0", h["ce_specversion"])
		require.Equal(t, "/test", h["ce_source"])
		require.Equal(t, "test.type", h["ce_type"])
		require.NotEmpty(t, h["outbox_id"])
		require.NotContains(t, h, "sitewatch_outbox_id", "the relay is generic: no sitewatch header")
		_, err := time.Parse(time.RFC3339Nano, h["ce_time"])
		require.NoError(t, err)
		if prev, seen := lastPerKey[string(m.Key)]; seen {
			require.Greater(t, i, prev, "per-key order for key %s", m.Key)
		}
		lastPerKey[string(m.Key)] = i
	}
}

// fakeProducer acknowledges every message except those to refusedTopic,
// which fail with refuseWith.
type fakeProducer struct {
	mu           sync.Mutex
	refusedTopic string
	refuseWith   kafka.ErrorCode
	fatal        bool
	produced     []string // topics, in order
}

func (f *fakeProducer) Produce(m *kafka.Message, ch chan kafka.Event) error {
	f.mu.Lock()
	f.produced = append(f.produced, *m.TopicPartition.Topic)
	f.mu.Unlock()
	if *m.TopicPartition.Topic == f.refusedTopic {
		m.TopicPartition.Error = kafka.NewError(f.refuseWith, "refused: "+f.refuseWith.String(), f.fatal)
	}
	go func() { ch <- m }()
	return nil
}

func (f *fakeProducer) Purge(int) error { return nil }

func TestRefusedRowsBackOffBlockTheirKeyAndAreParkedAfterTheLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	writeRows(t, pool,
		outbox.Message{Topic: "ok", Key: []byte("a"), Payload: []byte("1")},
		outbox.Message{Topic: "refused", Key: []byte("b"), Payload: []byte("2")},
		outbox.Message{Topic: "ok", Key: []byte("b"), Payload: []byte("3")}, // same key, behind the refused row
		outbox.Message{Topic: "ok", Key: []byte("c"), Payload: []byte("4")},
	)
	cfg := testConfig()
	cfg.Retry = store.Retry{Backoff: 50 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, MaxAttempts: 3}
	fp := &fakeProducer{refusedTopic: "refused", refuseWith: kafka.ErrMsgSizeTooLarge}
	r := newRelay(t, dbURL, fp, cfg)

	res, err := r.publish(ctx, allLanes)
	require.NoError(t, err)
	require.Equal(t, Result{Claimed: 4, Published: 3, Failed: 1}, res)
	s := rowStates(t, pool)
	require.True(t, s[0].Published)
	require.False(t, s[1].Published, "a refused row stays unpublished")
	require.True(t, s[1].Retrying)
	require.Equal(t, 1, s[1].Attempts)
	require.Contains(t, *s[1].LastError, "refused: Broker: Message size too large")

	// While the refused row waits out its backoff, a new row with its key
	// must wait too; other keys flow.
	writeRows(t, pool, outbox.Message{Topic: "ok", Key: []byte("b"), Payload: []byte("5")},
		outbox.Message{Topic: "ok", Key: []byte("d"), Payload: []byte("6")})
	res, err = r.publish(ctx, allLanes)
	require.NoError(t, err)
	require.Equal(t, 1, res.Claimed, "only key d is publishable")
	require.False(t, rowStates(t, pool)[4].Published)

	// Attempts 2 and 3, then parked; once parked it no longer blocks key b.
	for attempt := 2; attempt <= 3; attempt++ {
		waitOutBackoff(t, pool)
		res, err = r.publish(ctx, allLanes)
		require.NoError(t, err)
		s = rowStates(t, pool)
		require.Equal(t, attempt, s[1].Attempts)
		require.Equal(t, 1, res.Deferred, "the row behind a retried row of its key waits for the next batch")
		require.False(t, s[4].Published)
	}
	s = rowStates(t, pool)
	require.True(t, s[1].Parked)
	require.Equal(t, 3, s[1].Attempts)
	require.Equal(t, 1, res.Parked)
	res, err = r.publish(ctx, allLanes)
	require.NoError(t, err)
	require.Equal(t, Result{Claimed: 1, Published: 1}, res, "key b flows again")
	require.True(t, rowStates(t, pool)[4].Published)

	// Requeued, it is tried again.
	n, err := r.store.Requeue(ctx, pool, nil, true)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	res, err = r.publish(ctx, allLanes)
	require.NoError(t, err)
	require.Equal(t, 1, res.Failed)
}

// waitOutBackoff lets time pass for the rows waiting out a retry backoff.
func waitOutBackoff(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(context.Background(), "UPDATE outbox SET next_attempt_at = now() WHERE next_attempt_at > now()")
	require.NoError(t, err)
}

func TestKafkaUnavailableDoesNotUseUpAttempts(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	writeRows(t, pool, outbox.Message{Topic: "down", Payload: []byte("1")})
	fp := &fakeProducer{refusedTopic: "down", refuseWith: kafka.ErrNotEnoughReplicas}
	r := newRelay(t, dbURL, fp, testConfig())
	for range 5 {
		res, err := r.publish(context.Background(), allLanes)
		require.NoError(t, err)
		require.Equal(t, 1, res.Transient)
	}
	s := rowStates(t, pool)[0]
	require.False(t, s.Published)
	require.Zero(t, s.Attempts)
	require.False(t, s.Parked)

	// /readyz says why: nothing acknowledged, and Kafka's reason.
	err := r.Publishing(0)
	require.ErrorContains(t, err, "no row acknowledged by Kafka for")
	require.ErrorContains(t, err, "Not enough in-sync replicas")
	require.NoError(t, r.Publishing(time.Hour), "not for a moment's refusal")
	fp.refusedTopic = ""
	res, err := r.publish(context.Background(), allLanes)
	require.NoError(t, err)
	require.Equal(t, 1, res.Published)
	require.NoError(t, r.Publishing(0), "a row through clears it")
}

// holdingProducer acknowledges every message but those for topic "down",
// which it holds, as a broker does with too few replicas in sync, until
// Purge hands them back as purged.
type holdingProducer struct {
	mu     sync.Mutex
	held   []*kafka.Message
	ch     chan kafka.Event
	holds  chan struct{} // a message held
	purges int
}

func (h *holdingProducer) Produce(m *kafka.Message, ch chan kafka.Event) error {
	if *m.TopicPartition.Topic != "down" {
		go func() { ch <- m }()
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held, h.ch = append(h.held, m), ch
	select {
	case h.holds <- struct{}{}:
	default:
	}
	return nil
}

func (h *holdingProducer) Purge(int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.purges++
	for _, m := range h.held {
		m.TopicPartition.Error = kafka.NewError(kafka.ErrPurgeInflight, "Local: Purged in flight", false)
		go func() { h.ch <- m }()
	}
	h.held = nil
	return nil
}

// With no message timeout a batch waits for Kafka as long as it takes:
// /readyz says so once no row has been acknowledged for a while, /healthz
// does not take the wait for a stall, and at shutdown the batch waits
// DrainTimeout more, flips what Kafka acknowledged and leaves the rest
// unflipped.
func TestABatchWaitsForKafkaThenItsRowsArePurgedAtShutdown(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	writeRows(t, pool,
		outbox.Message{Topic: "up", Key: []byte("a"), Payload: []byte("1")},
		outbox.Message{Topic: "down", Key: []byte("b"), Payload: []byte("2")},
		outbox.Message{Topic: "down", Key: []byte("b"), Payload: []byte("3")})
	hp := &holdingProducer{holds: make(chan struct{}, 1)}
	cfg := testConfig()
	cfg.DrainTimeout = 200 * time.Millisecond
	r := newRelay(t, dbURL, hp, cfg)
	r.mu.Lock()
	r.lastLoop = time.Now().Add(-time.Hour)
	r.mu.Unlock()

	ctx, shutdown := context.WithCancel(context.Background())
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := r.publish(ctx, allLanes)
		done <- outcome{res, err}
	}()
	<-hp.holds
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		err := r.Publishing(0)
		if assert.Error(c, err) {
			assert.Contains(c, err.Error(), "no row acknowledged by Kafka for")
			assert.Contains(c, err.Error(), "1 batches wait for Kafka's delivery reports")
		}
	}, 10*time.Second, 10*time.Millisecond, "the acknowledged row came before the wait")
	require.NoError(t, r.Publishing(time.Hour), "not for a moment's wait")
	require.WithinDuration(t, time.Now(), r.LastLoop(), time.Minute, "waiting for Kafka is not a stalled loop")
	select {
	case o := <-done:
		t.Fatalf("the batch ended while Kafka held its rows: %+v", o)
	default:
	}

	shutdown()
	o := <-done
	require.NoError(t, o.err)
	require.Equal(t, 1, o.res.Published)
	require.Equal(t, 2, o.res.Transient)
	require.Equal(t, 1, hp.purges, "purged once DrainTimeout was over")
	states := rowStates(t, pool)
	require.True(t, states[0].Published)
	for _, s := range states[1:] {
		require.False(t, s.Published)
		require.Zero(t, s.Attempts, "a purge is not the row's fault")
	}
	require.Less(t, r.LastLoop(), time.Now().Add(-time.Minute), "no batch waits any more")
}

func TestTopicOutsideTheSourcePatternsIsNeverProduced(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	writeRows(t, pool, outbox.Message{Topic: "sitewatch.checks", Payload: []byte("1")},
		outbox.Message{Topic: "payments.refunds", Payload: []byte("2")})
	fp := &fakeProducer{}
	r := newRelay(t, dbURL, fp, testConfig(), "sitewatch.*")
	res, err := r.publish(context.Background(), allLanes)
	require.NoError(t, err)
	require.Equal(t, Result{Claimed: 2, Published: 1, Parked: 1}, res)
	require.Equal(t, []string{"sitewatch.checks"}, fp.produced)
	s := rowStates(t, pool)[1]
	require.True(t, s.Parked)
	require.Contains(t, *s.LastError, "topic not allowed for source test (allowed: sitewatch.*)")
	require.Zero(t, drain(t, r), "a parked row is not claimed again")
}

func TestUnknownTopicStaysUnpublishedOnRealBroker(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 1)
	writeRows(t, pool,
		outbox.Message{Topic: topic, Payload: []byte("ok")},
		outbox.Message{Topic: "test.does-not-exist." + topic, Payload: []byte("lost?")},
	)
	// No message timeout, as the relay by default: the unknown topic still
	// fails its row, once the metadata has had time to propagate.
	r := newRelay(t, dbURL, newProducer(t, 0), testConfig())
	res, err := r.publish(context.Background(), allLanes)
	require.NoError(t, err)
	require.Equal(t, 1, res.Published)
	require.Equal(t, 1, res.Failed)

	s := rowStates(t, pool)
	require.True(t, s[0].Published)
	require.False(t, s[1].Published)
	require.Contains(t, *s[1].LastError, "Unknown topic")
	require.Len(t, kafkatest.Consume(t, topic, 2, 3*time.Second), 1)
}

func TestOutOfOrderCommitsMissNoRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	fp := &fakeProducer{}
	r := newRelay(t, dbURL, fp, testConfig())

	// The earlier transaction takes the lower ids but commits last.
	early, err := pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, outbox.Write(ctx, early, outbox.Message{Topic: "t", Payload: []byte("early-1")},
		outbox.Message{Topic: "t", Payload: []byte("early-2")}))
	writeRows(t, pool, outbox.Message{Topic: "t", Payload: []byte("late")})
	require.Equal(t, 1, drain(t, r), "the committed later row is published")

	require.NoError(t, early.Commit(ctx))
	require.Equal(t, 2, drain(t, r), "the earlier ids committed afterwards are not skipped")
	for _, s := range rowStates(t, pool) {
		require.True(t, s.Published)
	}
}

// On a table of the earlier layout, whose index of waiting rows finds a
// row below the floor at the next refresh (a partitioned table's are
// found by the partition checks: TestPartitionsAreKeptAheadCheckedAndDropped).
func TestClaimsStartAtAFloorThatWaitsForTransactionsInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := legacyDB(t)
	pool := dbtest.Pool(t, dbURL)
	r := newRelay(t, dbURL, &fakeProducer{}, testConfig())
	refresh := func() int64 {
		t.Helper()
		id, err := r.floor.Refresh(ctx, pool)
		require.NoError(t, err)
		require.Equal(t, id, r.floor.ID())
		return id
	}
	// The floor rises once every transaction running at the refresh before
	// has ended, in the whole cluster: other tests' transactions may hold
	// it back for a while.
	risesTo := func(want int64, msg string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); refresh() != want; time.Sleep(10 * time.Millisecond) {
			require.True(t, time.Now().Before(deadline), "%s: the floor is %d, want %d", msg, r.floor.ID(), want)
		}
	}

	writeRows(t, pool, outbox.Message{Topic: "t"}, outbox.Message{Topic: "t"}, outbox.Message{Topic: "t"}) // ids 1..3
	require.Equal(t, 3, drain(t, r))
	require.Zero(t, refresh(), "a first refresh only proposes a floor")
	risesTo(4, "past the published rows")

	_, err := pool.Exec(ctx, "UPDATE outbox SET published = false, published_at = NULL WHERE id = 2")
	require.NoError(t, err)
	require.Zero(t, drain(t, r), "claims start at the floor")
	require.EqualValues(t, 2, refresh(), "a waiting row below the floor lowers it at once")
	require.Equal(t, 1, drain(t, r))
	risesTo(4, "past the row published again")

	// A transaction takes id 4 and commits after id 5 is published.
	early, err := pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = early.Rollback(ctx) }()
	require.NoError(t, outbox.Write(ctx, early, outbox.Message{Topic: "t", Payload: []byte("early")}))
	writeRows(t, pool, outbox.Message{Topic: "t", Payload: []byte("late")})
	require.Equal(t, 1, drain(t, r))
	for range 3 {
		require.EqualValues(t, 4, refresh(), "the floor stays below the ids of a transaction still running")
	}
	require.NoError(t, early.Commit(ctx))
	require.Equal(t, 1, drain(t, r), "the row committed late is claimed at once")
	risesTo(6, "once the transaction ended")
	for _, s := range rowStates(t, pool) {
		require.True(t, s.Published)
	}
}

// On a table of the earlier layout, whose retention deletes rows (a
// partitioned table's drops partitions: TestPartitionsAreKeptAheadCheckedAndDropped).
func TestRunWakesOnNotifyRetainsAndStopsAfterTheBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := legacyDB(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 1)
	cfg := testConfig()
	cfg.PollInterval = time.Minute // only a notification can wake it in time
	cfg.Retention, cfg.RetentionInterval = time.Hour, 100*time.Millisecond
	r := newRelay(t, dbURL, newProducer(t, 10*time.Second), cfg)

	// Published long ago (deleted), published recently (kept), pending (kept).
	writeRows(t, pool, outbox.Message{Topic: topic, Payload: []byte("old")}, outbox.Message{Topic: topic, Payload: []byte("recent")})
	_, err := pool.Exec(ctx, `UPDATE outbox SET published = true, published_at = now() - interval '2 hours' WHERE id = 1;
		UPDATE outbox SET published = true, published_at = now() - interval '10 minutes' WHERE id = 2`)
	require.NoError(t, err)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(runCtx); close(done) }()
	require.Eventually(t, func() bool {
		st, err := r.Stats(ctx)
		require.NoError(t, err)
		return st.Lanes == Lanes && st.WaitingWorkers == cfg.Workers && st.Pending == 0
	}, 10*time.Second, 20*time.Millisecond, "a single replica leases every lane; its workers, idle, wait for a minute-long poll")
	// From here only a notification can wake a worker in time.
	writeRows(t, pool, outbox.Message{Topic: topic, Payload: []byte("a")}, outbox.Message{Topic: topic, Payload: []byte("b")})
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE published AND id > 2").Scan(&n))
		return n == 2
	}, 5*time.Second, 20*time.Millisecond, "rows written while Run runs are published without waiting for the poll")
	// Another test's transaction anywhere in the cluster can hold the floor
	// back a while (see TestClaimsStartAtAFloorThatWaitsForTransactionsInFlight).
	require.Eventually(t, func() bool { return r.floor.ID() == 5 }, 30*time.Second, 20*time.Millisecond,
		"Run keeps the claims' floor: past the published rows")
	require.Eventually(t, func() bool {
		var ids []int64
		rows, err := pool.Query(ctx, "SELECT id FROM outbox ORDER BY id")
		require.NoError(t, err)
		ids, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		return len(ids) == 3 && ids[0] == 2
	}, 5*time.Second, 50*time.Millisecond, "retention deletes only the row published before the cutoff")

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	require.Zero(t, r.Lanes(), "lanes are given up on the way out")
}

func TestNewRefusesAConfigThatCannotWork(t *testing.T) {
	t.Parallel()
	src := Source{Name: "test", DatabaseURL: "postgres://u@127.0.0.1:1/db", Table: "outbox", Topics: []string{"*"}}
	for name, mut := range map[string]func(*Config){
		"workers 0":          func(c *Config) { c.Workers = 0 }, // panicked in the lane split before
		"workers > lanes":    func(c *Config) { c.Workers = Lanes + 1 },
		"batch size 0":       func(c *Config) { c.BatchSize = 0 },
		"poll interval 0":    func(c *Config) { c.PollInterval = 0 },
		"rebalance 0":        func(c *Config) { c.Rebalance = 0 },
		"SQL timeout 0":      func(c *Config) { c.SQLTimeout = 0 },
		"drain timeout 0":    func(c *Config) { c.DrainTimeout = 0 },
		"retry backoff 0":    func(c *Config) { c.Retry.Backoff = 0 },
		"retry max < min":    func(c *Config) { c.Retry.MaxBackoff = time.Second },
		"max attempts 0":     func(c *Config) { c.Retry.MaxAttempts = 0 },
		"retention < 0":      func(c *Config) { c.Retention = -time.Second },
		"retention batch 0":  func(c *Config) { c.Retention, c.RetentionBatch = time.Hour, 0 },
		"retention interval": func(c *Config) { c.Retention, c.RetentionInterval = time.Hour, 0 },
	} {
		cfg := testConfig()
		mut(&cfg)
		before := cfg
		_, err := New(context.Background(), cfg, src, &fakeProducer{}, zaptest.NewLogger(t), NewMetrics(prometheus.NewRegistry()))
		require.ErrorContains(t, err, "relay configuration", name)
		require.Equal(t, before, cfg, "validating does not change the config")
	}
	for name, mut := range map[string]func(*Source){
		"name":     func(s *Source) { s.Name = "" },
		"database": func(s *Source) { s.DatabaseURL = "" },
		"table":    func(s *Source) { s.Table = "a.b.c" },
		"topics":   func(s *Source) { s.Topics = nil },
		"pattern":  func(s *Source) { s.Topics = []string{"["} },
	} {
		bad := src
		mut(&bad)
		_, err := New(context.Background(), testConfig(), bad, &fakeProducer{}, zaptest.NewLogger(t), NewMetrics(prometheus.NewRegistry()))
		var fe FieldError
		require.ErrorAs(t, err, &fe, name)
	}
}

func TestStatsCountPendingAndParkedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	writeRows(t, pool, outbox.Message{Topic: "a", Payload: []byte("1")}, outbox.Message{Topic: "b", Payload: []byte("2")},
		outbox.Message{Topic: "a", Payload: []byte("3")})
	r := newRelay(t, dbURL, &fakeProducer{}, testConfig(), "a")
	st, err := r.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, Stats{Pending: 3, OldestPending: st.OldestPending}, st)
	require.Positive(t, st.OldestPending)

	require.Equal(t, 2, drain(t, r))
	st, err = r.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, Stats{Parked: 1}, st, "b is parked: not this source's topic")
}

// A row that can never be produced is parked at once with the reason, and
// its payload is not even loaded when it is too large; the rest flow.
func TestRowsThatCanNeverBeProducedAreParked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	// Another team's table, laxer than the DDL: topic_name may be NULL.
	_, err := pool.Exec(ctx, "ALTER TABLE outbox ALTER COLUMN topic_name DROP NOT NULL")
	require.NoError(t, err)
	writeRows(t, pool, outbox.Message{Topic: "t", Key: []byte("k"), Payload: make([]byte, 5000)},
		outbox.Message{Topic: "t", Key: []byte("k"), Payload: []byte("small")},
		outbox.Message{Topic: "t", Payload: []byte("no topic")})
	_, err = pool.Exec(ctx, "UPDATE outbox SET topic_name = NULL WHERE id = 3")
	require.NoError(t, err)
	cfg := testConfig()
	cfg.MaxMessageBytes = 1000
	fp := &fakeProducer{}
	r := newRelay(t, dbURL, fp, cfg)
	res, err := r.publish(ctx, allLanes)
	require.NoError(t, err, "a NULL in a required column does not stall the lane")
	require.Equal(t, Result{Claimed: 3, Published: 1, Parked: 2}, res)
	require.Equal(t, []string{"t"}, fp.produced)
	s := rowStates(t, pool)
	require.True(t, s[0].Parked)
	require.Contains(t, *s[0].LastError, "message of 5001 bytes (key and payload) is larger than the 1000 bytes Kafka accepts")
	require.True(t, s[1].Published)
	require.True(t, s[2].Parked)
	require.Contains(t, *s[2].LastError, "topic_name is NULL")
	require.Zero(t, drain(t, r))
}

// A fatal producer error stops the relay with it; the row is not the
// row's fault and stays pending, its attempts untouched.
func TestFatalProducerErrorStopsTheRelay(t *testing.T) {
	t.Parallel()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	writeRows(t, pool, outbox.Message{Topic: "doomed", Payload: []byte("1")})
	cfg := testConfig()
	cfg.PollInterval = 20 * time.Millisecond
	r := newRelay(t, dbURL, &fakeProducer{refusedTopic: "doomed", refuseWith: kafka.ErrFatal, fatal: true}, cfg)
	done := make(chan error, 1)
	go func() { done <- r.Run(context.Background()) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, ErrFatal)
	case <-time.After(30 * time.Second):
		t.Fatal("the relay did not stop on a fatal producer error")
	}
	s := rowStates(t, pool)[0]
	require.False(t, s.Published)
	require.False(t, s.Parked, "not parked: the producer failed, not the row")
	require.Zero(t, s.Attempts)
}

// gateProducer acknowledges each message once open is closed.
type gateProducer struct {
	open     chan struct{}
	produced atomic.Int64
}

func (g *gateProducer) Produce(m *kafka.Message, ch chan kafka.Event) error {
	g.produced.Add(1)
	go func() { <-g.open; ch <- m }()
	return nil
}

func (g *gateProducer) Purge(int) error { return nil }

// Should two relays ever hold a lane at once (a lease lost mid-batch), the
// second's batch waits at the lanes' locks for the first's to end, then
// sees its rows flipped: none is produced twice, none out of order.
func TestASecondRelayOnALaneWaitsForTheFirstsBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.New(t)
	pool := dbtest.Pool(t, url)
	var msgs []outbox.Message
	for i := range 10 {
		msgs = append(msgs, outbox.Message{Topic: "t", Key: []byte(strconv.Itoa(i % 3)), Payload: []byte(`{}`)})
	}
	writeRows(t, pool, msgs...)
	first, second := &gateProducer{open: make(chan struct{})}, &gateProducer{open: make(chan struct{})}
	close(second.open)
	a, b := newRelay(t, url, first, testConfig()), newRelay(t, url, second, testConfig())
	release := sync.OnceFunc(func() { close(first.open) })
	t.Cleanup(release) // before the relays close, should the test fail with the batch waiting

	type result struct {
		res Result
		err error
	}
	publish := func(r *Relay) chan result {
		done := make(chan result, 1)
		go func() {
			res, err := r.publish(ctx, allLanes)
			done <- result{res, err}
		}()
		return done
	}
	aDone := publish(a)
	require.Eventually(t, func() bool { return first.produced.Load() == 10 }, 10*time.Second, 10*time.Millisecond,
		"the first relay's batch is produced and waits for Kafka")
	bDone := publish(b)
	require.Eventually(t, func() bool {
		var waiting int
		assert.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'`).Scan(&waiting))
		return waiting == 1
	}, 10*time.Second, 10*time.Millisecond, "the second relay's claim waits for the lanes' locks")
	require.Zero(t, second.produced.Load())

	release()
	ra := <-aDone
	require.NoError(t, ra.err)
	require.Equal(t, 10, ra.res.Published)
	rb := <-bDone
	require.NoError(t, rb.err)
	require.Zero(t, rb.res.Claimed, "the second relay sees the first's rows flipped")
	require.Zero(t, second.produced.Load())
}
