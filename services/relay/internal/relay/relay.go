// Package relay publishes the rows of one outbox table (a source) to
// Kafka. Workers claim batches of the lanes this replica leases, produce
// each row to its topic, wait for every delivery report, and flip
// `published` for the rows Kafka acknowledged, all in the claiming
// transaction. A crash before the commit re-publishes that batch: delivery
// is at least once, and consumers dedupe on ce_id.
package relay

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/services/relay/internal/lease"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

// Source is one outbox table and the topics its rows may go to.
type Source struct {
	Name        string
	DatabaseURL string
	Table       string
	Topics      []string // glob patterns (path.Match); a row for any other topic is parked
}

// Allows reports whether topic matches one of the source's patterns.
func (s Source) Allows(topic string) bool {
	for _, p := range s.Topics {
		if ok, _ := path.Match(p, topic); ok {
			return true
		}
	}
	return false
}

// Config tunes every source's loop.
type Config struct {
	BatchSize         int
	Workers           int           // concurrent batches per source, each on its own lanes
	PollInterval      time.Duration // fallback when no notification arrives
	Rebalance         time.Duration
	Retry             store.Retry
	Retention         time.Duration // published rows older than this are deleted; 0 keeps them
	RetentionInterval time.Duration
	RetentionBatch    int
	CESource          string // ce_source for rows whose writer set none
	CEType            string // ce_type for rows whose writer set none
}

// Producer is the part of *kafka.Producer the relay uses.
type Producer interface {
	Produce(msg *kafka.Message, deliveryChan chan kafka.Event) error
}

// Relay publishes one source.
type Relay struct {
	cfg      Config
	src      Source
	pool     *pgxpool.Pool
	store    *store.Store
	coord    *lease.Coordinator
	producer Producer
	logger   *zap.Logger
	metrics  *Metrics
	mu       sync.Mutex
	lastLoop time.Time
}

// New connects to the source's database and checks its table.
func New(ctx context.Context, cfg Config, src Source, producer Producer, logger *zap.Logger, m *Metrics) (*Relay, error) {
	logger = logger.With(zap.String("source", src.Name))
	st, err := store.New(src.Table)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	pcfg, err := pgxpool.ParseConfig(src.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("source %s: parsing database URL: %w", src.Name, err)
	}
	if pcfg.ConnConfig.RuntimeParams["application_name"] == "" {
		pcfg.ConnConfig.RuntimeParams["application_name"] = "sitewatch-relay"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("source %s: opening database pool: %w", src.Name, err)
	}
	info, err := st.Info(ctx, pool)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("source %s: %w", src.Name, err)
	}
	coord := lease.New(lease.Config{DatabaseURL: src.DatabaseURL, TableOID: info.OID, Channel: info.Channel,
		Rebalance: cfg.Rebalance}, logger)
	r := &Relay{cfg: cfg, src: src, pool: pool, store: st, coord: coord, producer: producer,
		logger: logger, metrics: m, lastLoop: time.Now()}
	m.add(r)
	return r, nil
}

// Close releases the database pool.
func (r *Relay) Close() { r.pool.Close() }

// Pool is the source's connection pool, for readiness checks.
func (r *Relay) Pool() *pgxpool.Pool { return r.pool }

// Name is the source's name.
func (r *Relay) Name() string { return r.src.Name }

// LastLoop is when a worker last finished a turn, for the liveness check.
func (r *Relay) LastLoop() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastLoop
}

func (r *Relay) touch() {
	r.mu.Lock()
	r.lastLoop = time.Now()
	r.mu.Unlock()
}

// Run publishes until ctx ends. Each worker finishes its batch in flight
// (produced, acknowledged, flipped, committed); then the lanes are given up.
func (r *Relay) Run(ctx context.Context) error {
	coordCtx, stopCoord := context.WithCancel(context.WithoutCancel(ctx))
	coordDone := make(chan struct{})
	wakes := make([]<-chan struct{}, r.cfg.Workers)
	for w := range wakes {
		wakes[w] = r.coord.Subscribe()
	}
	go func() {
		defer close(coordDone)
		_ = r.coord.Run(coordCtx)
	}()

	var wg sync.WaitGroup
	for w := range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ctx, w, wakes[w])
		}()
	}
	if r.cfg.Retention > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.retain(ctx)
		}()
	}
	wg.Wait()
	stopCoord()
	<-coordDone
	return nil
}

func (r *Relay) work(ctx context.Context, worker int, wake <-chan struct{}) {
	backoff := newBackoff(100*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		res, err := r.PublishBatch(context.WithoutCancel(ctx), worker)
		r.touch()
		var wait time.Duration
		switch {
		case err != nil:
			wait = backoff.next()
			r.logger.Warn("publishing outbox batch failed; retrying", zap.Int("worker", worker),
				zap.Error(err), zap.Duration("retry_in", wait))
		case res.Transient > 0:
			wait = backoff.next()
			r.logger.Warn("Kafka is not acknowledging; the rows stay pending and are retried",
				zap.Int("worker", worker), zap.Int("rows", res.Transient), zap.String("error", res.TransientErr),
				zap.Duration("retry_in", wait))
		case res.Claimed == r.cfg.BatchSize:
			backoff.reset()
			continue // more rows are likely waiting
		default:
			backoff.reset()
			wait = r.cfg.PollInterval
		}
		select {
		case <-ctx.Done():
		case <-wake:
			if err == nil && res.Transient == 0 {
				continue
			}
			// Backing off: a notification does not cut the wait short.
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		case <-time.After(wait):
		}
	}
}

// Result is what one batch did.
type Result struct {
	Claimed      int
	Published    int
	Failed       int // refused by Kafka for this row; retried after a backoff
	Parked       int
	Transient    int // not acknowledged because Kafka is unavailable; retried, not counted against the row
	TransientErr string
	Deferred     int // left for the next batch to keep their key's order
}

// PublishBatch runs one claim → produce → flip → commit cycle on the lanes
// of worker.
func (r *Relay) PublishBatch(ctx context.Context, worker int) (Result, error) {
	lanes, release := r.coord.Acquire(worker, r.cfg.Workers)
	defer release()
	if len(lanes) == 0 {
		return Result{}, nil
	}
	return r.publish(ctx, lanes)
}

func (r *Relay) publish(ctx context.Context, lanes []int16) (Result, error) {
	var res Result
	start := time.Now()
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("beginning outbox transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()

	rows, err := r.store.Claim(ctx, tx, lanes, r.cfg.BatchSize)
	if err != nil {
		return res, err
	}
	res.Claimed = len(rows)
	if len(rows) == 0 {
		return res, tx.Commit(ctx)
	}

	var sendable []store.Row
	var forbidden []int64
	for _, row := range rows {
		if r.src.Allows(row.Topic) {
			sendable = append(sendable, row)
		} else {
			forbidden = append(forbidden, row.ID)
		}
	}
	out := r.produce(sendable)

	if err := r.store.MarkPublished(ctx, tx, out.acked); err != nil {
		return res, err
	}
	parked, err := r.store.MarkFailed(ctx, tx, out.failedIDs, out.failedErrs, r.cfg.Retry)
	if err != nil {
		return res, err
	}
	if len(forbidden) > 0 {
		reason := fmt.Sprintf("topic not allowed for source %s (allowed: %s)", r.src.Name, strings.Join(r.src.Topics, ", "))
		if err := r.store.Park(ctx, tx, forbidden, reason); err != nil {
			return res, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("committing outbox batch: %w", err)
	}
	res.Published, res.Failed, res.Parked = len(out.acked), len(out.failedIDs), len(parked)+len(forbidden)
	res.Transient, res.TransientErr, res.Deferred = out.transient, out.transientErr, out.deferred
	r.metrics.observe(r.src.Name, res, len(forbidden), time.Since(start))
	if len(forbidden) > 0 {
		r.logger.Error("parked rows whose topic this source may not publish to",
			zap.Int("rows", len(forbidden)), zap.Int64("first_id", forbidden[0]), zap.Strings("allowed", r.src.Topics))
	}
	if len(out.failedIDs) > 0 {
		r.logger.Warn("Kafka refused outbox rows; retrying them after a backoff",
			zap.Int("rows", len(out.failedIDs)), zap.Int64("first_id", out.failedIDs[0]), zap.String("first_error", out.failedErrs[0]),
			zap.Int("parked", len(parked)))
	}
	return res, nil
}

type produced struct {
	deferred     int
	acked        []int64
	failedIDs    []int64
	failedErrs   []string
	transient    int
	transientErr string
}

// produce sends every row and waits for every delivery report. It does not
// give up early: each message ends in a report within message.timeout.ms.
func (r *Relay) produce(rows []store.Row) produced {
	var out produced
	reports := make(chan kafka.Event, len(rows))
	sent := 0
	fail := func(row *store.Row, err error) {
		if transient(err) {
			out.transient++
			out.transientErr = err.Error()
			return
		}
		out.failedIDs = append(out.failedIDs, row.ID)
		out.failedErrs = append(out.failedErrs, err.Error())
	}
	// Per-key order inside a batch: a row whose key has a retried row or a
	// row refused on the spot earlier in the batch waits for the next batch,
	// so it cannot reach Kafka before that row. (A first attempt the broker
	// rejects after the fact, e.g. over the topic's size limit, can still
	// let a later row of its key through first; see the README.)
	held := map[string]bool{}
	for i := range rows {
		row := &rows[i]
		if row.Key != nil && held[string(row.Key)] {
			out.deferred++
			continue
		}
		if err := r.producer.Produce(r.message(row, i), reports); err != nil {
			fail(row, err)
			if row.Key != nil {
				held[string(row.Key)] = true
			}
			continue
		}
		sent++
		if row.Attempts > 0 && row.Key != nil {
			held[string(row.Key)] = true
		}
	}
	for ; sent > 0; sent-- {
		m, ok := (<-reports).(*kafka.Message)
		if !ok {
			continue // only messages are sent on a delivery channel
		}
		row := &rows[m.Opaque.(int)]
		if err := m.TopicPartition.Error; err != nil {
			fail(row, err)
			continue
		}
		out.acked = append(out.acked, row.ID)
	}
	return out
}

// transient reports whether err says Kafka is unavailable rather than that
// it refuses this message; such rows are retried without using up attempts.
func transient(err error) bool {
	var kerr kafka.Error
	if !errors.As(err, &kerr) {
		return false
	}
	switch kerr.Code() {
	case kafka.ErrUnknownTopicOrPart, kafka.ErrUnknownTopic, kafka.ErrMsgSizeTooLarge, kafka.ErrInvalidMsgSize,
		kafka.ErrTopicAuthorizationFailed, kafka.ErrTopicException, kafka.ErrInvalidRecord, kafka.ErrPolicyViolation,
		kafka.ErrRecordListTooLarge, kafka.ErrInvalidMsg, kafka.ErrInvalidArg:
		return false
	case kafka.ErrMsgTimedOut, kafka.ErrTimedOut, kafka.ErrTransport, kafka.ErrAllBrokersDown, kafka.ErrQueueFull,
		kafka.ErrRequestTimedOut, kafka.ErrNotEnoughReplicas, kafka.ErrNotEnoughReplicasAfterAppend,
		kafka.ErrLeaderNotAvailable, kafka.ErrNotLeaderForPartition, kafka.ErrBrokerNotAvailable,
		kafka.ErrNetworkException, kafka.ErrDestroy:
		return true
	}
	return kerr.IsRetriable()
}

// message builds the Kafka message: key, value and headers as written, plus
// the CloudEvents binary-mode headers the writer did not set itself.
func (r *Relay) message(row *store.Row, index int) *kafka.Message {
	topic := row.Topic
	headers := make([]kafka.Header, 0, len(row.Headers)+6)
	for k, v := range row.Headers {
		headers = append(headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	add := func(k, v string) {
		if _, ok := row.Headers[k]; !ok && v != "" {
			headers = append(headers, kafka.Header{Key: k, Value: []byte(v)})
		}
	}
	add("ce_specversion", "1.0")
	add("ce_id", row.EventID)
	add("ce_source", r.cfg.CESource)
	add("ce_type", r.cfg.CEType)
	add("ce_time", row.CreatedAt.UTC().Format(time.RFC3339Nano))
	add("sitewatch_outbox_id", strconv.FormatInt(row.ID, 10))
	return &kafka.Message{
		TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key:            row.Key,
		Value:          row.Payload,
		Headers:        headers,
		Opaque:         index,
	}
}

// retain deletes published rows past the retention, a small batch at a
// time so neither locks nor WAL pile up, until none are left; then waits.
func (r *Relay) retain(ctx context.Context) {
	for {
		for ctx.Err() == nil {
			n, err := r.store.DeletePublished(ctx, r.pool, r.cfg.Retention, r.cfg.RetentionBatch)
			if err != nil {
				if ctx.Err() == nil {
					r.logger.Warn("deleting published rows failed", zap.Error(err))
				}
				break
			}
			r.metrics.deleted.WithLabelValues(r.src.Name).Add(float64(n))
			if n < int64(r.cfg.RetentionBatch) {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(r.cfg.RetentionInterval):
		}
	}
}

// Lanes is the number of lanes this replica leases.
func (r *Relay) Lanes() int { return r.coord.Owned() }

type backoff struct{ min, max, cur time.Duration }

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else if b.cur *= 2; b.cur > b.max {
		b.cur = b.max
	}
	return b.cur
}

func (b *backoff) reset() { b.cur = 0 }
