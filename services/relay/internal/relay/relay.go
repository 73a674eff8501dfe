// Package relay publishes outbox rows to Kafka: it claims a batch of
// unpublished rows, produces each to its topic, waits for every delivery
// report, and flips `published` for the rows Kafka acknowledged, all within
// the claiming transaction. A crash before the commit re-publishes the
// batch: delivery is at least once, and consumers dedupe on ce_id.
package relay

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

// Config tunes the loop.
type Config struct {
	BatchSize    int
	PollInterval time.Duration
	// Source is the CloudEvents ce_source given to rows whose writer set none.
	Source string
	// DefaultType is the ce_type given to rows whose writer set none.
	DefaultType string
}

// Producer is the part of *kafka.Producer the relay uses.
type Producer interface {
	Produce(msg *kafka.Message, deliveryChan chan kafka.Event) error
}

// Relay moves rows from one outbox table to Kafka.
type Relay struct {
	cfg      Config
	pool     *pgxpool.Pool
	store    *store.Store
	producer Producer
	logger   *zap.Logger
	metrics  *metrics
	lastLoop atomic.Int64 // unix nanos of the last completed loop turn
}

// New returns a Relay; register its metrics with reg.
func New(cfg Config, pool *pgxpool.Pool, st *store.Store, producer Producer, logger *zap.Logger, reg prometheus.Registerer) *Relay {
	r := &Relay{cfg: cfg, pool: pool, store: st, producer: producer, logger: logger, metrics: newMetrics(reg)}
	r.lastLoop.Store(time.Now().UnixNano())
	return r
}

// Run publishes until ctx ends. The batch in flight when ctx ends is
// finished (produced, acknowledged, flipped, committed) before Run returns.
func (r *Relay) Run(ctx context.Context) error {
	backoff := newBackoff(100*time.Millisecond, 10*time.Second)
	for ctx.Err() == nil {
		n, err := r.PublishBatch(context.WithoutCancel(ctx))
		r.lastLoop.Store(time.Now().UnixNano())
		var wait time.Duration
		switch {
		case err != nil:
			wait = backoff.next()
			r.logger.Warn("publishing outbox batch failed; retrying", zap.Error(err), zap.Duration("retry_in", wait))
		case n == r.cfg.BatchSize:
			backoff.reset()
			continue // more rows are likely waiting
		default:
			backoff.reset()
			wait = r.cfg.PollInterval
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	return nil
}

// LastLoop is when the loop last finished a turn, for the liveness check.
func (r *Relay) LastLoop() time.Time { return time.Unix(0, r.lastLoop.Load()) }

// PublishBatch runs one claim → produce → flip → commit cycle and returns
// how many rows it claimed.
func (r *Relay) PublishBatch(ctx context.Context) (int, error) {
	start := time.Now()
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("beginning outbox transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()

	rows, err := r.store.Claim(ctx, tx, r.cfg.BatchSize)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, tx.Commit(ctx)
	}

	acked, failedIDs, failedErrs := r.produce(rows)

	if err := r.store.MarkPublished(ctx, tx, acked); err != nil {
		return len(rows), err
	}
	if err := r.store.MarkFailed(ctx, tx, failedIDs, failedErrs); err != nil {
		return len(rows), err
	}
	if err := tx.Commit(ctx); err != nil {
		return len(rows), fmt.Errorf("committing outbox batch: %w", err)
	}
	r.metrics.published.Add(float64(len(acked)))
	r.metrics.failed.Add(float64(len(failedIDs)))
	r.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	if len(failedIDs) > 0 {
		r.logger.Warn("Kafka refused outbox rows; they stay unpublished and will be retried",
			zap.Int("failed", len(failedIDs)), zap.Int64("first_id", failedIDs[0]), zap.String("first_error", failedErrs[0]))
	}
	r.logger.Debug("outbox batch published", zap.Int("rows", len(rows)), zap.Int("acked", len(acked)),
		zap.Duration("took", time.Since(start)))
	return len(rows), nil
}

// produce sends every row and waits for every delivery report. It does not
// give up early: each message ends in a report within message.timeout.ms.
func (r *Relay) produce(rows []store.Row) (acked, failedIDs []int64, failedErrs []string) {
	reports := make(chan kafka.Event, len(rows))
	sent := 0
	for i := range rows {
		row := &rows[i]
		if err := r.producer.Produce(r.message(row, i), reports); err != nil {
			failedIDs = append(failedIDs, row.ID)
			failedErrs = append(failedErrs, fmt.Sprintf("producing: %v", err))
			continue
		}
		sent++
	}
	for ; sent > 0; sent-- {
		ev := <-reports
		m, ok := ev.(*kafka.Message)
		if !ok {
			// Only *kafka.Message is sent on a delivery channel; anything
			// else would be a library bug. Keep counting so we never hang.
			r.logger.Error("unexpected event on delivery channel", zap.String("event", ev.String()))
			continue
		}
		row := rows[m.Opaque.(int)]
		if err := m.TopicPartition.Error; err != nil {
			failedIDs = append(failedIDs, row.ID)
			failedErrs = append(failedErrs, err.Error())
			continue
		}
		acked = append(acked, row.ID)
	}
	return acked, failedIDs, failedErrs
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
	add("ce_source", r.cfg.Source)
	add("ce_type", r.cfg.DefaultType)
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

// Pending reports the unpublished rows and the age of the oldest.
func (r *Relay) Pending(ctx context.Context) (int64, time.Duration, error) {
	return r.store.Pending(ctx, r.pool)
}

// ErrStalled is returned by the liveness check when the loop stopped turning.
var ErrStalled = errors.New("relay loop stalled")

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
