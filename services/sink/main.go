// Command sink consumes sitewatch check events from Kafka into the stats
// table, one row per event however often Kafka delivers it.
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
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/logging"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/services/sink/internal/sink"
	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

func main() {
	cfg, err := loadConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sink: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	logger, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sink: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, logger); err != nil && ctx.Err() == nil {
		logger.Error("sink stopped", zap.Error(err))
		_ = logger.Sync()
		os.Exit(1)
	}
	logger.Info("sink stopped")
	_ = logger.Sync()
}

func run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("opening database pool: %w", err)
	}
	defer pool.Close()

	if cfg.CreateTopic {
		if err := kafkaclient.EnsureTopic(ctx, cfg.Kafka, cfg.Topic, cfg.TopicPartitions); err != nil {
			return err
		}
	}
	consumer, err := kafka.NewConsumer(cfg.Kafka.ConfigMap(kafka.ConfigMap{
		"group.id":                 cfg.GroupID,
		"auto.offset.reset":        "earliest", // a new group starts from the first check, not the next
		"enable.auto.commit":       true,       // commits only what we stored...
		"enable.auto.offset.store": false,      // ...and we store only after the database commit
		"auto.commit.interval.ms":  1000,
	}))
	if err != nil {
		return fmt.Errorf("creating Kafka consumer: %w", err)
	}
	if err := consumer.Subscribe(cfg.Topic, nil); err != nil {
		_ = consumer.Close()
		return fmt.Errorf("subscribing to %s: %w", cfg.Topic, err)
	}

	opsSrv := ops.New(cfg.OpsAddr, logger)
	s := sink.New(sink.Config{BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, ShutdownGrace: 30 * time.Second},
		consumer, store.New(pool), logger, opsSrv.Registry())
	opsSrv.AddReadiness("postgres", pool.Ping)
	opsSrv.AddReadiness("kafka", func(context.Context) error {
		_, err := consumer.GetMetadata(&cfg.Topic, false, 2000)
		return err
	})
	opsSrv.AddLiveness("loop", func(context.Context) error {
		if since := time.Since(s.LastLoop()); since > 2*time.Minute {
			return fmt.Errorf("%w: last turn %s ago", sink.ErrStalled, since.Round(time.Second))
		}
		return nil
	})

	logger.Info("sink starting", zap.String("topic", cfg.Topic), zap.String("group", cfg.GroupID),
		zap.String("kafka", cfg.Kafka.Brokers))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return opsSrv.Run(gctx) })
	g.Go(func() error { return s.Run(gctx) })
	err = g.Wait()
	// Close commits the offsets stored so far and leaves the group at once,
	// so the partitions move to another sink without waiting for a timeout.
	if cerr := consumer.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing Kafka consumer: %w", cerr))
	}
	return err
}
