// Package notifier turns incident events into notifications. It runs in
// the sink process with a consumer group of its own on sitewatch.incidents:
// for each event it records one delivery row per channel of the site,
// commits, and only then stores the event's offset; deliveries are then
// made from those rows, each channel on its own with retries and backoff,
// so a receiver that is down holds back no other channel. Every delivery
// carries the event id as idempotency key: a receiver that dedupes sees
// each notification once, whatever crashed in between.
package notifier

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/platform/retry"
)

var (
	//go:embed record.sql
	recordSQL string
	//go:embed claim.sql
	claimSQL string
	//go:embed delivered.sql
	deliveredSQL string
	//go:embed retry.sql
	retrySQL string
	//go:embed silenced.sql
	silencedSQL string
)

// Config tunes the notifier.
type Config struct {
	MaxAttempts  int           // then a delivery is failed for good, with its reason
	RetryBackoff time.Duration // first wait after a failed attempt, doubling up to MaxBackoff
	MaxBackoff   time.Duration // longest wait between two attempts
	PollInterval time.Duration // how often due deliveries are looked for (new ones are sent at once)
	Batch        int           // deliveries claimed, and sent at once, per turn
}

// Validate reports every setting that cannot work; it does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("notify max attempts %d: want at least 1", c.MaxAttempts))
	}
	if c.RetryBackoff <= 0 || c.PollInterval <= 0 {
		errs = append(errs, fmt.Errorf("notify retry backoff %s and poll interval %s: want more than 0", c.RetryBackoff, c.PollInterval))
	}
	if c.MaxBackoff < c.RetryBackoff {
		errs = append(errs, fmt.Errorf("notify max backoff %s: want at least the retry backoff %s", c.MaxBackoff, c.RetryBackoff))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Errorf("notify batch %d: want at least 1", c.Batch))
	}
	return errors.Join(errs...)
}

// Consumer is the part of *kafka.Consumer the notifier uses.
type Consumer interface {
	Poll(timeoutMs int) kafka.Event
	StoreOffsets(offsets []kafka.TopicPartition) ([]kafka.TopicPartition, error)
}

// Notifier records and delivers notifications.
type Notifier struct {
	cfg       Config
	pool      *pgxpool.Pool
	client    *http.Client
	logger    *zap.Logger
	delivered *prometheus.CounterVec
	wake      chan struct{} // a delivery was recorded: look for due ones now
}

// New checks cfg and returns a Notifier; its metrics are registered with reg.
func New(cfg Config, pool *pgxpool.Pool, client *http.Client, logger *zap.Logger, reg prometheus.Registerer) (*Notifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Notifier{cfg: cfg, pool: pool, client: client, logger: logger, wake: make(chan struct{}, 1),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_notifier_deliveries_total",
			Help: "Delivery attempts by result: delivered, retry, failed (for good), skipped (not an incident event)."}, []string{"result"})}
	reg.MustRegister(n.delivered)
	return n, nil
}

// Consume records the deliveries of each incident event c yields, storing
// its offset once they are committed, until ctx ends.
func (n *Notifier) Consume(ctx context.Context, c Consumer) {
	policy := retry.Policy{Initial: 200 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2, AttemptTimeout: 30 * time.Second}
	for ctx.Err() == nil {
		var m *kafka.Message
		switch ev := c.Poll(200).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error != nil {
				n.logger.Warn("Kafka consumer error", zap.Error(ev.TopicPartition.Error))
				continue
			}
			m = ev
		case kafka.Error:
			n.logger.Warn("Kafka consumer error", zap.String("code", ev.Code().String()), zap.Error(ev))
			continue
		default:
			continue
		}
		err := retry.Do(ctx, policy, func(actx context.Context) error { return n.record(actx, m) },
			func(attempt int, err error, wait time.Duration) {
				n.logger.Warn("recording notifications failed; retrying", zap.Int("attempt", attempt), zap.Error(err))
			})
		if err != nil {
			return // shutting down: the offset is not stored, the event comes again
		}
		next := m.TopicPartition
		next.Offset++
		if _, err := c.StoreOffsets([]kafka.TopicPartition{next}); err != nil {
			n.logger.Info("storing the notifier's offset failed; the event will be recorded again, which is harmless", zap.Error(err))
		}
	}
}

// record writes the deliveries of one event.
func (n *Notifier) record(ctx context.Context, m *kafka.Message) error {
	var eventType string
	for _, h := range m.Headers {
		if h.Key == "ce_type" {
			eventType = string(h.Value)
		}
	}
	var in checkevent.Incident
	if err := json.Unmarshal(m.Value, &in); err != nil || in.EventID == "" || in.SiteID <= 0 ||
		(eventType != checkevent.IncidentOpenedType && eventType != checkevent.IncidentResolvedType) {
		n.delivered.WithLabelValues("skipped").Inc()
		n.logger.Error("skipping a message that is not an incident event", zap.Int32("partition", m.TopicPartition.Partition),
			zap.Int64("offset", int64(m.TopicPartition.Offset)))
		return nil
	}
	if _, err := n.pool.Exec(ctx, recordSQL, in.EventID, eventType, m.Value, in.SiteID); err != nil {
		return fmt.Errorf("recording the deliveries of event %s: %w", in.EventID, err)
	}
	select {
	case n.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
	return nil
}

// Deliver sends due deliveries until ctx ends.
func (n *Notifier) Deliver(ctx context.Context) {
	for {
		sent, err := n.deliverOnce(ctx)
		if err != nil && ctx.Err() == nil {
			n.logger.Warn("delivering notifications failed; retrying", zap.Error(err))
		}
		if sent < n.cfg.Batch && !n.idle(ctx) {
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// idle waits for the poll interval, or less when a delivery is recorded;
// false when ctx ended.
func (n *Notifier) idle(ctx context.Context) bool {
	t := time.NewTimer(n.cfg.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-n.wake:
	}
	return true
}

type due struct {
	id                 int64
	eventID, eventType string
	payload            string
	attempts           int
	ch                 notify.Channel
	err                error
}

// deliverOnce claims due deliveries, sends them all at once (each with its
// own deadline, so a slow receiver delays no other), and records the
// outcomes. It returns how many it claimed.
func (n *Notifier) deliverOnce(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	tx, err := n.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("beginning delivery transaction: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, silencedSQL); err != nil {
		return 0, fmt.Errorf("dropping silenced notifications: %w", err)
	}
	rows, err := tx.Query(ctx, claimSQL, n.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("claiming deliveries: %w", err)
	}
	batch, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*due, error) {
		d := &due{}
		return d, r.Scan(&d.id, &d.eventID, &d.eventType, &d.payload, &d.attempts, &d.ch.Name, &d.ch.Kind, &d.ch.URL, &d.ch.Secret)
	})
	if err != nil {
		return 0, fmt.Errorf("claiming deliveries: %w", err)
	}
	var wg sync.WaitGroup
	for _, d := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.err = notify.Send(ctx, n.client, d.ch, d.eventID, d.eventType, []byte(d.payload))
		}()
	}
	wg.Wait()
	for _, d := range batch {
		if d.err == nil {
			if _, err := tx.Exec(ctx, deliveredSQL, d.id); err != nil {
				return 0, fmt.Errorf("recording delivery %d: %w", d.id, err)
			}
			n.delivered.WithLabelValues("delivered").Inc()
			continue
		}
		var status string
		if err := tx.QueryRow(ctx, retrySQL, d.id, d.err.Error(), n.cfg.RetryBackoff.Seconds(), n.cfg.MaxAttempts, n.cfg.MaxBackoff.Seconds()).Scan(&status); err != nil {
			return 0, fmt.Errorf("recording delivery %d: %w", d.id, err)
		}
		result := "retry"
		if status == "failed" {
			result = "failed"
			n.logger.Error("giving up on a notification", zap.Int64("delivery", d.id), zap.String("channel", d.ch.Name), zap.Error(d.err))
		} else {
			n.logger.Warn("notification not delivered; retrying later", zap.Int64("delivery", d.id), zap.String("channel", d.ch.Name),
				zap.Int("attempt", d.attempts+1), zap.Error(d.err))
		}
		n.delivered.WithLabelValues(result).Inc()
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("committing deliveries: %w", err)
	}
	return len(batch), nil
}
