// Package sink consumes check events from Kafka into the stats table.
//
// Offsets are stored only after the batch holding their messages is
// committed to PostgreSQL, and stats.event_id is unique, so a crash at any
// point re-delivers at most one batch and never makes a second row.
package sink

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/retry"
	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

// Config tunes batching.
type Config struct {
	BatchSize int
	BatchWait time.Duration // the longest the first message of a batch waits while more keep arriving
	// ShutdownGrace bounds how long a batch may keep retrying a database
	// write after shutdown was asked for; its offsets are then not stored.
	ShutdownGrace time.Duration
	WriteTimeout  time.Duration // deadline of one attempt to write a batch
}

// Validate reports every setting that cannot work; it does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("batch size %d: want at least 1", c.BatchSize))
	}
	if c.BatchWait <= 0 {
		errs = append(errs, fmt.Errorf("batch wait %s: want more than 0", c.BatchWait))
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("shutdown grace %s: want 0 or more", c.ShutdownGrace))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("write timeout %s: want more than 0", c.WriteTimeout))
	}
	return errors.Join(errs...)
}

// writeRetry is how a batch is retried while the database is unreachable.
func (c Config) writeRetry() retry.Policy {
	return retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2,
		AttemptTimeout: c.WriteTimeout, Grace: c.ShutdownGrace}
}

// Consumer is the part of *kafka.Consumer the sink uses.
type Consumer interface {
	Poll(timeoutMs int) kafka.Event
	StoreOffsets(offsets []kafka.TopicPartition) ([]kafka.TopicPartition, error)
}

// Writer stores records and reports how many were new.
type Writer interface {
	Insert(ctx context.Context, recs []store.Record) (int64, error)
}

// Sink is the consume → batch → write → store-offsets loop.
type Sink struct {
	cfg      Config
	consumer Consumer
	writer   Writer
	logger   *zap.Logger
	metrics  *metrics
	lastLoop atomic.Int64
}

// New checks cfg and returns a Sink; its metrics are registered with reg.
func New(cfg Config, consumer Consumer, writer Writer, logger *zap.Logger, reg prometheus.Registerer) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink configuration: %w", err)
	}
	s := &Sink{cfg: cfg, consumer: consumer, writer: writer, logger: logger, metrics: newMetrics(reg)}
	s.lastLoop.Store(time.Now().UnixNano())
	return s, nil
}

// LastLoop is when the loop last finished a turn, for the liveness check.
func (s *Sink) LastLoop() time.Time { return time.Unix(0, s.lastLoop.Load()) }

// Run consumes until ctx ends; the batch in flight is written first.
func (s *Sink) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		batch := s.collect(ctx)
		s.lastLoop.Store(time.Now().UnixNano())
		if len(batch) == 0 {
			continue
		}
		if err := s.handle(ctx, batch); err != nil {
			return err
		}
		s.lastLoop.Store(time.Now().UnixNano())
	}
	return nil
}

// collect polls until it has a batch: once the first message is in, it
// takes what the consumer already has at hand (fetched, not yet polled)
// without waiting, and the batch is written as soon as nothing more is at
// hand, it holds BatchSize messages, or BatchWait has passed since its
// first one. A lone message is not kept waiting for company: under light
// load a check is stored as soon as it arrives; under heavy load batches
// fill up by themselves.
func (s *Sink) collect(ctx context.Context) []*kafka.Message {
	var batch []*kafka.Message
	var deadline time.Time
	for len(batch) < s.cfg.BatchSize && ctx.Err() == nil {
		wait := 100 // ms: idle, waiting for a first message
		if len(batch) > 0 {
			if !time.Now().Before(deadline) {
				break
			}
			wait = 0 // only what is at hand
		}
		switch ev := s.consumer.Poll(wait).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error != nil {
				s.logger.Warn("Kafka consumer error", zap.Error(ev.TopicPartition.Error))
				continue
			}
			if len(batch) == 0 {
				deadline = time.Now().Add(s.cfg.BatchWait)
			}
			batch = append(batch, ev)
		case kafka.Error:
			s.logger.Warn("Kafka consumer error", zap.String("code", ev.Code().String()), zap.Error(ev))
		case nil:
			if len(batch) > 0 {
				return batch // nothing more at hand
			}
		default:
			s.logger.Debug("Kafka event", zap.String("event", ev.String()))
		}
	}
	return batch
}

// handle decodes, writes and then stores the offsets of one batch.
func (s *Sink) handle(ctx context.Context, batch []*kafka.Message) error {
	start := time.Now()
	recs := make([]store.Record, 0, len(batch))
	for _, m := range batch {
		c, err := checkevent.Decode(m.Value)
		if err != nil {
			// A message that can never be stored is skipped, not retried
			// forever: its offset is stored with the batch.
			s.metrics.malformed.Inc()
			s.logger.Error("skipping malformed message", zap.String("topic", *m.TopicPartition.Topic),
				zap.Int32("partition", m.TopicPartition.Partition), zap.Int64("offset", int64(m.TopicPartition.Offset)),
				zap.Error(err))
			continue
		}
		if c.SchemaVersion > checkevent.SchemaVersion {
			s.metrics.newer.Inc() // stored with the fields we know; upgrade the sink to keep the rest
		}
		recs = append(recs, store.Record{Check: c, Topic: *m.TopicPartition.Topic,
			Partition: m.TopicPartition.Partition, Offset: int64(m.TopicPartition.Offset)})
	}
	inserted, err := s.write(ctx, recs)
	if err != nil {
		return err
	}
	if _, err := s.consumer.StoreOffsets(nextOffsets(batch)); err != nil {
		// After a rebalance took a partition away its offsets cannot be
		// stored; the new owner re-reads those messages and the unique
		// event_id drops them.
		s.logger.Info("storing offsets failed; the messages will be re-delivered and deduplicated", zap.Error(err))
	}
	s.metrics.consumed.Add(float64(len(batch)))
	s.metrics.stored.Add(float64(inserted))
	s.metrics.duplicates.Add(float64(int64(len(recs)) - inserted))
	s.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	s.logger.Debug("batch stored", zap.Int("messages", len(batch)), zap.Int64("inserted", inserted))
	return nil
}

// write stores recs, retrying while the database is unreachable. Rows the
// database refuses for good are written one by one so only they are lost,
// each logged. After ctx ends it keeps trying for ShutdownGrace.
func (s *Sink) write(ctx context.Context, recs []store.Record) (int64, error) {
	var n int64
	err := retry.Do(ctx, s.cfg.writeRetry(), func(actx context.Context) error {
		var err error
		n, err = s.writer.Insert(actx, recs)
		if err != nil && store.IsPermanent(err) {
			return retry.Permanent(err)
		}
		return err
	}, func(attempt int, err error, wait time.Duration) {
		s.metrics.writeErrors.Inc()
		s.logger.Warn("writing stats failed; retrying", zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
	})
	switch {
	case err == nil:
		return n, nil
	case store.IsPermanent(err):
		return s.writeEach(ctx, recs), nil
	default:
		return 0, fmt.Errorf("giving up on a batch of %d at shutdown, offsets not stored: %w", len(recs), err)
	}
}

func (s *Sink) writeEach(ctx context.Context, recs []store.Record) int64 {
	var total int64
	for _, r := range recs {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.WriteTimeout)
		n, err := s.writer.Insert(wctx, []store.Record{r})
		cancel()
		if err != nil {
			s.metrics.malformed.Inc()
			s.logger.Error("skipping message the database refuses", zap.String("event_id", r.EventID),
				zap.Int32("partition", r.Partition), zap.Int64("offset", r.Offset), zap.Error(err))
			continue
		}
		total += n
	}
	return total
}

// nextOffsets returns, per partition, the offset after the last message.
func nextOffsets(batch []*kafka.Message) []kafka.TopicPartition {
	type tp struct {
		topic     string
		partition int32
	}
	last := map[tp]kafka.Offset{}
	for _, m := range batch {
		k := tp{*m.TopicPartition.Topic, m.TopicPartition.Partition}
		if o, ok := last[k]; !ok || m.TopicPartition.Offset > o {
			last[k] = m.TopicPartition.Offset
		}
	}
	out := make([]kafka.TopicPartition, 0, len(last))
	for k, o := range last {
		topic := k.topic
		out = append(out, kafka.TopicPartition{Topic: &topic, Partition: k.partition, Offset: o + 1})
	}
	return out
}

// ErrStalled is returned by the liveness check when the loop stopped turning.
var ErrStalled = errors.New("sink loop stalled")
