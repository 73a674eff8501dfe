// Command relay publishes the rows of a transactional outbox table to Kafka.
// It is generic: it knows outbox rows (topic, key, payload, headers), not
// what they mean, so other teams run it for their own tables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sitewatch/sitewatch/platform/logging"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/services/relay/internal/relay"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

func main() {
	cfg, err := loadConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	logger, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil {
		logger.Error("relay stopped", zap.Error(err))
		_ = logger.Sync()
		os.Exit(1)
	}
	logger.Info("relay stopped")
	_ = logger.Sync()
}

func run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("opening database pool: %w", err)
	}
	defer pool.Close()

	producer, err := kafka.NewProducer(cfg.Kafka.ConfigMap(kafka.ConfigMap{
		"enable.idempotence":        true, // no duplicates or reordering from librdkafka's own retries
		"acks":                      "all",
		"linger.ms":                 5,
		"message.timeout.ms":        int(cfg.MessageTimeout.Milliseconds()),
		"partitioner":               "murmur2_random", // same key → same partition as Java clients
		"go.delivery.report.fields": "none",           // the opaque row index is all we need
	}))
	if err != nil {
		return fmt.Errorf("creating Kafka producer: %w", err)
	}
	defer producer.Close()
	go logKafkaEvents(producer.Events(), logger)

	st, err := store.New(cfg.Table)
	if err != nil {
		return err
	}
	opsSrv := ops.New(cfg.OpsAddr, logger)
	r := relay.New(relay.Config{BatchSize: cfg.BatchSize, PollInterval: cfg.PollInterval,
		Source: cfg.Source, DefaultType: "io.sitewatch.outbox.message"}, pool, st, producer, logger, opsSrv.Registry())
	registerPendingGauges(opsSrv.Registry(), r)

	opsSrv.AddReadiness("postgres", pool.Ping)
	opsSrv.AddReadiness("kafka", func(ctx context.Context) error {
		_, err := producer.GetMetadata(nil, false, 2000)
		return err
	})
	stallAfter := cfg.MessageTimeout + cfg.PollInterval + time.Minute
	opsSrv.AddLiveness("loop", func(context.Context) error {
		if since := time.Since(r.LastLoop()); since > stallAfter {
			return fmt.Errorf("%w: last turn %s ago", relay.ErrStalled, since.Round(time.Second))
		}
		return nil
	})

	logger.Info("relay starting", zap.String("table", cfg.Table), zap.String("kafka", cfg.Kafka.Brokers),
		zap.Int("batch_size", cfg.BatchSize))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return opsSrv.Run(gctx) })
	g.Go(func() error { return r.Run(gctx) })
	err = g.Wait()
	// Anything still queued in librdkafka belongs to a committed batch only
	// if it was acknowledged; flush so the broker sees it before we exit.
	producer.Flush(5000)
	return err
}

func registerPendingGauges(reg prometheus.Registerer, r *relay.Relay) {
	pending := func() (int64, time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, age, err := r.Pending(ctx)
		if err != nil {
			return -1, -1
		}
		return n, age
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sitewatch_relay_pending_rows",
			Help: "Unpublished outbox rows (-1 when the database does not answer)."},
			func() float64 { n, _ := pending(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sitewatch_relay_oldest_pending_age_seconds",
			Help: "Age of the oldest unpublished outbox row (-1 when the database does not answer)."},
			func() float64 { _, age := pending(); return age.Seconds() }),
	)
}

// logKafkaEvents logs the producer's client-level events (broker down,
// authentication failures); per-message results arrive on delivery channels.
func logKafkaEvents(events chan kafka.Event, logger *zap.Logger) {
	for ev := range events {
		switch e := ev.(type) {
		case kafka.Error:
			logger.Warn("Kafka client error", zap.String("code", e.Code().String()), zap.Error(e))
		case *kafka.Message:
			// Only messages produced without a delivery channel end up here;
			// the relay always passes one.
		default:
			logger.Debug("Kafka event", zap.String("event", e.String()))
		}
	}
}
