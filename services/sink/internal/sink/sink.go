// Package sink consumes check events from Kafka into the stats table.
//
// Offsets are stored only after the batch holding their messages is
// committed to PostgreSQL, and stats.event_id is unique, so a crash at any
// point re-delivers at most the batches in flight (one per writer, and the
// next one collected) and never makes a second row.
package sink

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/platform/retry"
	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

// DefaultWriters is how many transactions write at once unless configured:
// one per partition of the topic as the sink creates it by default.
const DefaultWriters = 3

// DefaultBatchSize is the most messages written per transaction unless
// configured (BenchmarkSinkPreloaded compares sizes).
const DefaultBatchSize = 10_000

// Config tunes batching.
type Config struct {
	BatchSize int
	Writers   int           // batches are written by this many transactions at once, each for its share of the partitions
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
	if c.Writers < 1 {
		errs = append(errs, fmt.Errorf("writers %d: want at least 1", c.Writers))
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
	dead     DeadLetters
	logger   *zap.Logger
	metrics  *metrics
	lastLoop atomic.Int64
}

// New checks cfg and returns a Sink that sends the messages it can never
// store to dead; its metrics are registered with reg.
func New(cfg Config, consumer Consumer, writer Writer, dead DeadLetters, logger *zap.Logger, reg prometheus.Registerer) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sink configuration: %w", err)
	}
	s := &Sink{cfg: cfg, consumer: consumer, writer: writer, dead: dead, logger: logger, metrics: newMetrics(reg)}
	s.lastLoop.Store(time.Now().UnixNano())
	return s, nil
}

// LastLoop is when the loop last finished a turn, for the liveness check.
func (s *Sink) LastLoop() time.Time { return time.Unix(0, s.lastLoop.Load()) }

// Run consumes until ctx ends; the batches in flight are written first.
//
// While batches are written, the next one is collected and decoded: the
// database, the sink's own CPU and Kafka then work at once instead of in
// turn. A batch is split among Writers writers by partition (partition
// modulo Writers), each writing its share in a transaction of its own; a
// partition always goes to the same writer, and a writer takes its next
// share only once the one before is written and its offsets stored, so each
// partition's offsets are stored in order. The sites' checks are keyed to
// partitions, so writers never wait for each other's rows.
//
// Each writer has one share waiting for it: a writer done early starts its
// next share at once instead of waiting for the collector to hand the
// others theirs and collect again (BenchmarkSinkPreloaded at 10,000: the
// writers were in the database 204 % of the time of 300 %, and 280 % with
// the share waiting; 27,035–31,632 → 34,791–35,783 rows/s). It costs one
// batch more in memory. A share not yet started when ctx ends is dropped
// unwritten, its offsets not stored: it comes again after the restart.
func (s *Sink) Run(ctx context.Context) error {
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	queues := make([]chan decoded, s.cfg.Writers)
	failed := make(chan error, len(queues))
	var wg sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan decoded, 1) // the writer's next share, waiting
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range queues[i] {
				if ctx.Err() != nil {
					continue // shutting down: not started, so not written
				}
				if err := s.write(ctx, d); err != nil {
					failed <- err
					stop()
					for range queues[i] { // the collector stops; let it hand over what it holds
					}
					return
				}
				s.lastLoop.Store(time.Now().UnixNano())
			}
		}()
	}
	s.collectAll(cctx, queues)
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	select {
	case err := <-failed:
		return err
	default:
		return nil
	}
}

// collectAll collects and decodes batches and hands each writer its share
// until ctx ends.
func (s *Sink) collectAll(ctx context.Context, queues []chan decoded) {
	for ctx.Err() == nil {
		batch := s.collect(ctx)
		s.lastLoop.Store(time.Now().UnixNano())
		if len(batch) == 0 {
			continue
		}
		for i, share := range s.decode(batch).split(len(queues)) {
			if len(share.batch) == 0 {
				continue
			}
			select {
			case queues[i] <- share:
			case <-ctx.Done():
				return
			}
		}
	}
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
	sw := ops.StartStopwatch()
	defer func() { sw.Lap(s.metrics.part("kafka")) }()
	for len(batch) < s.cfg.BatchSize && ctx.Err() == nil {
		wait := 100 // ms: idle, waiting for a first message
		if len(batch) > 0 {
			if !time.Now().Before(deadline) {
				break
			}
			wait = 0 // only what is at hand
		}
		ev := s.consumer.Poll(wait)
		if len(batch) == 0 {
			if _, ok := ev.(*kafka.Message); !ok {
				sw.Lap(s.metrics.part("idle"))
			}
		}
		switch ev := ev.(type) {
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

// decoded is a batch as Kafka had it, the records decoded from it, and the
// messages that are not check events.
type decoded struct {
	batch []*kafka.Message
	recs  []store.Record
	dead  []DeadLetter
}

// split divides d into n shares by partition (partition modulo n).
func (d decoded) split(n int) []decoded {
	if n == 1 {
		return []decoded{d}
	}
	sizes := make([]int, n) // records are large: each share's slice is allocated once
	for _, r := range d.recs {
		sizes[int(r.Partition)%n]++
	}
	shares := make([]decoded, n)
	for i := range shares {
		shares[i].recs = make([]store.Record, 0, sizes[i])
	}
	for _, m := range d.batch {
		i := int(m.TopicPartition.Partition) % n
		shares[i].batch = append(shares[i].batch, m)
	}
	for _, r := range d.recs {
		i := int(r.Partition) % n
		shares[i].recs = append(shares[i].recs, r)
	}
	for _, dl := range d.dead {
		i := int(dl.Msg.TopicPartition.Partition) % n
		shares[i].dead = append(shares[i].dead, dl)
	}
	return shares
}

// decode decodes a batch's messages.
func (s *Sink) decode(batch []*kafka.Message) decoded {
	sw := ops.StartStopwatch()
	defer sw.Lap(s.metrics.part("decode"))
	d := decoded{batch: batch, recs: make([]store.Record, 0, len(batch))}
	for _, m := range batch {
		c, err := checkevent.Decode(m.Value)
		if err != nil {
			// Never storable: to the dead-letter topic, not retried forever.
			d.dead = append(d.dead, DeadLetter{Msg: m, Class: "malformed", Reason: err.Error()})
			continue
		}
		if c.SchemaVersion > checkevent.SchemaVersion {
			s.metrics.newer.Inc() // stored with the fields we know; upgrade the sink to keep the rest
		}
		d.recs = append(d.recs, store.Record{Check: c, Topic: *m.TopicPartition.Topic,
			Partition: m.TopicPartition.Partition, Offset: int64(m.TopicPartition.Offset)})
	}
	return d
}

// write stores a decoded batch, sends its dead letters, and then stores
// its offsets.
func (s *Sink) write(ctx context.Context, d decoded) error {
	start := time.Now()
	sw := ops.StartStopwatch()
	batch, recs, dead := d.batch, d.recs, d.dead
	inserted, refused, err := s.insert(ctx, recs)
	sw.Lap(s.metrics.part("database"))
	if err != nil {
		return err
	}
	for _, r := range refused {
		for _, m := range batch {
			if *m.TopicPartition.Topic == r.rec.Topic && m.TopicPartition.Partition == r.rec.Partition && int64(m.TopicPartition.Offset) == r.rec.Offset {
				dead = append(dead, DeadLetter{Msg: m, Class: "refused", Reason: r.err.Error()})
			}
		}
	}
	err = s.bury(ctx, dead)
	sw.Lap(s.metrics.part("dead_letters"))
	if err != nil {
		return err
	}
	defer sw.Lap(s.metrics.part("kafka"))
	if _, err := s.consumer.StoreOffsets(nextOffsets(batch)); err != nil {
		// After a rebalance took a partition away its offsets cannot be
		// stored; the new owner re-reads those messages and the unique
		// event_id drops them.
		s.logger.Info("storing offsets failed; the messages will be re-delivered and deduplicated", zap.Error(err))
	}
	s.metrics.consumed.Add(float64(len(batch)))
	s.metrics.stored.Add(float64(inserted))
	s.metrics.duplicates.Add(float64(int64(len(recs)-len(refused)) - inserted))
	s.metrics.batchSeconds.Observe(time.Since(start).Seconds())
	s.logger.Debug("batch stored", zap.Int("messages", len(batch)), zap.Int64("inserted", inserted))
	return nil
}

// bury sends dead letters to the dead-letter topic, retrying while Kafka
// does not acknowledge them; the batch's offsets are stored only after.
func (s *Sink) bury(ctx context.Context, dead []DeadLetter) error {
	if len(dead) == 0 {
		return nil
	}
	err := retry.Do(ctx, s.cfg.writeRetry(), func(actx context.Context) error { return s.dead.Send(actx, dead) },
		func(attempt int, err error, wait time.Duration) {
			s.logger.Warn("sending dead letters failed; retrying", zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
		})
	if err != nil {
		return fmt.Errorf("giving up on %d dead letters at shutdown, offsets not stored: %w", len(dead), err)
	}
	for _, d := range dead {
		s.metrics.malformed.Inc()
		s.metrics.deadLetters.WithLabelValues(d.Class).Inc()
		s.logger.Error("sent a message that can never be stored to the dead-letter topic", zap.String("topic", *d.Msg.TopicPartition.Topic),
			zap.Int32("partition", d.Msg.TopicPartition.Partition), zap.Int64("offset", int64(d.Msg.TopicPartition.Offset)),
			zap.String("class", d.Class), zap.String("reason", d.Reason))
	}
	return nil
}

// refusal is a record the database refuses for good.
type refusal struct {
	rec store.Record
	err error
}

// insert stores recs, retrying while the database is unreachable. When the
// database refuses a batch for good, insert halves it and writes each half
// the same way, so only the rows refused on their own are refused (a bad
// row in a batch of n costs about 2·log2(n) more writes, not n); it
// returns them. After ctx ends it keeps trying for ShutdownGrace.
func (s *Sink) insert(ctx context.Context, recs []store.Record) (int64, []refusal, error) {
	if len(recs) == 0 {
		return 0, nil, nil
	}
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
		return n, nil, nil
	case !store.IsPermanent(err):
		return 0, nil, fmt.Errorf("giving up on a batch of %d at shutdown, offsets not stored: %w", len(recs), err)
	case len(recs) == 1:
		return 0, []refusal{{recs[0], err}}, nil
	}
	half := len(recs) / 2
	n1, refused1, err := s.insert(ctx, recs[:half])
	if err != nil {
		return 0, nil, err
	}
	n2, refused2, err := s.insert(ctx, recs[half:])
	if err != nil {
		return 0, nil, err
	}
	return n1 + n2, append(refused1, refused2...), nil
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
