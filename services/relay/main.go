// Command relay publishes the rows of transactional outbox tables to Kafka.
// It is generic: it knows outbox rows (topic, key, payload, headers), not
// what they mean, so other teams run it for their own tables.
//
//	relay [run] [flags]                     publish until SIGTERM
//	relay parked list [flags]               rows parked after Kafka refused them
//	relay parked requeue [flags] ID...|-all give parked rows a fresh set of attempts
//	relay status [flags]                    each source's table, its relays, what to fix
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/platform/retry"
	"github.com/sitewatch/sitewatch/services/relay/internal/relay"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

const usage = `usage:
  relay [run] [flags]                           publish until SIGTERM
  relay parked list [flags] [-source NAME] [-limit N]
  relay parked requeue [flags] [-source NAME] (ID... | -all)
  relay status [flags] [-source NAME]           each source's table (or NAME's): its layout, partitions and
                                                size, the relays leasing its lanes, and what to fix (exit 1 if anything)
  relay healthcheck [-ops-addr ADDR]            exit 0 if the running relay's /healthz answers 200

Flags and their RELAY_* environment variables: relay run -h
`

func main() {
	command.Main("relay", "run", usage, map[string]command.Func{"run": runCommand, "parked": parkedCommand,
		"status": statusCommand, "healthcheck": command.Healthcheck(":9102")})
}

func runCommand(ctx context.Context, args []string, _, stderr io.Writer) int {
	var cfg Config
	fs, err := cfg.parse("relay run", args)
	if err == nil {
		err = errors.Join(command.NoArgs(fs.Args()), cfg.Validate())
	}
	if code, done := command.ConfigError(stderr, "relay", err); done {
		return code
	}
	return command.Serve(ctx, "relay", cfg.LogLevel, cfg.LogFormat, stderr, func(ctx context.Context, logger *zap.Logger) error {
		return run(ctx, cfg, logger)
	})
}

func run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	relay.UseGCPercent()
	producer, err := kafka.NewProducer(cfg.Kafka.ConfigMap(kafka.ConfigMap{
		"enable.idempotence":        true, // no duplicates or reordering from librdkafka's own retries
		"acks":                      "all",
		"linger.ms":                 5,
		"message.timeout.ms":        int(cfg.MessageTimeout.Milliseconds()),
		"message.max.bytes":         int(cfg.MaxMessageBytes) + 64<<10, // room for headers and framing
		"partitioner":               "murmur2_random",                  // same key → same partition as Java clients
		"go.delivery.report.fields": "none",                            // the opaque row is all we need
		// An unknown topic fails its rows after this long instead of
		// holding the batch for the whole message timeout.
		"topic.metadata.propagation.max.ms": 5000,
	}))
	if err != nil {
		return fmt.Errorf("creating Kafka producer: %w", err)
	}
	defer producer.Close()
	// A broker that refuses us (credentials, TLS) is logged once, naming
	// why, and is /readyz's reason.
	kafkaHealth := kafkaclient.NewWatcher(cfg.Kafka, logger)
	go logKafkaEvents(producer.Events(), kafkaHealth, logger)

	opsSrv := ops.New(cfg.OpsAddr, logger)
	metrics := relay.NewMetrics(opsSrv.Registry())
	rcfg := relay.Config{
		BatchSize: cfg.BatchSize, Workers: cfg.Workers, PollInterval: cfg.PollInterval, Rebalance: cfg.Rebalance,
		Retry:     store.Retry{Backoff: cfg.RetryBackoff, MaxBackoff: cfg.RetryMaxBackoff, MaxAttempts: cfg.MaxAttempts},
		Retention: cfg.Retention, RetentionInterval: cfg.RetentionInterval, RetentionBatch: 1000,
		PartitionRows: cfg.PartitionRows,
		SQLTimeout:    sqlTimeout, DrainTimeout: cfg.DrainTimeout,
		MaxMessageBytes: cfg.MaxMessageBytes,
	}
	sources, err := cfg.loadSources()
	if err != nil {
		return err
	}
	for _, src := range sources { // the database is not needed to find these
		if err := errors.Join(rcfg.Validate(), src.Validate()); err != nil {
			return fmt.Errorf("source %s: %w", src.Name, err)
		}
	}
	// The ops endpoints answer while the sources' databases are awaited,
	// and /readyz says which one is awaited and why.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return opsSrv.Run(gctx) })
	var waiting atomic.Pointer[string]
	opsSrv.AddReadiness("sources", func(context.Context) error {
		if w := waiting.Load(); w != nil {
			return errors.New(*w)
		}
		return nil
	})
	var relays []*relay.Relay
	defer func() {
		for _, r := range relays {
			r.Close()
		}
	}()
	for _, src := range sources {
		var r *relay.Relay
		err := retry.Do(gctx, startupRetry, func(actx context.Context) error {
			if err := config.CheckSessions(actx, src.DatabaseURL); err != nil {
				return err
			}
			var err error
			r, err = relay.New(actx, rcfg, src, producer, logger, metrics)
			return err
		}, func(attempt int, err error, wait time.Duration) {
			reason := fmt.Sprintf("waiting for source %s: %v", src.Name, err)
			waiting.Store(&reason)
			logger.Warn("waiting for the source's database and table", zap.String("source", src.Name),
				zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
		})
		if err != nil { // a source that cannot work (or shutdown): the ops endpoints stop too
			stop()
			return errors.Join(fmt.Errorf("source %s: %w", src.Name, err), g.Wait())
		}
		relays = append(relays, r)
		opsSrv.AddReadiness("postgres:"+src.Name, r.Pool().Ping)
		logger.Info("relaying source", zap.String("source", src.Name), zap.String("table", src.Table),
			zap.Strings("topics", src.Topics))
		if slices.Contains(src.Topics, "*") {
			logger.Warn("this source may publish to every topic (topics \"*\"); list its topics on a shared deployment",
				zap.String("source", src.Name))
		}
	}
	waiting.Store(nil)
	opsSrv.AddReadiness("kafka", kafkaHealth.Check(func(context.Context) error {
		_, err := producer.GetMetadata(nil, false, 2000)
		return err
	}))
	// Reachable is not enough: too few replicas in sync for a write, or no
	// leader, and Kafka acknowledges nothing.
	opsSrv.AddReadiness("publishing", func(context.Context) error {
		var errs []error
		for _, r := range relays {
			if err := r.Publishing(5 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("source %s: %w", r.Name(), err))
			}
		}
		return errors.Join(errs...)
	})
	// A batch waiting for Kafka counts as a turn (see LastLoop).
	stallAfter := 2*sqlTimeout + cfg.PollInterval + time.Minute
	opsSrv.AddLiveness("loop", func(context.Context) error {
		for _, r := range relays {
			if since := time.Since(r.LastLoop()); since > stallAfter {
				return fmt.Errorf("source %s: loop stalled, last turn %s ago", r.Name(), since.Round(time.Second))
			}
		}
		return nil
	})

	logger.Info("relay starting", zap.String("kafka", cfg.Kafka.Brokers), zap.Int("sources", len(relays)),
		zap.Int("batch_size", cfg.BatchSize), zap.Int("workers", cfg.Workers))
	for _, r := range relays {
		g.Go(func() error { return r.Run(gctx) })
	}
	return g.Wait()
}

// sqlTimeout bounds a batch's claim, and its flip and commit.
const sqlTimeout = 30 * time.Second

// startupRetry waits for a source's database (and its migrated table) at
// start-up, until shutdown.
var startupRetry = retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2, AttemptTimeout: 15 * time.Second}

var parkedCommand = command.Group("relay parked", usage, []string{"list", "requeue"}, parkedSubcommand)

// parkedSubcommand runs `relay parked list|requeue args...`.
func parkedSubcommand(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) int {
	var cfg Config
	fs := flag.NewFlagSet("relay parked "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs)
	source := fs.String("source", "", "source name (required with several sources)")
	limit := fs.Int("limit", 100, "rows to list")
	all := fs.Bool("all", false, "requeue every parked row")
	if err := configParse(fs, args); err != nil {
		return command.ExitUsage
	}
	if cfg.Topics == "" {
		cfg.Topics = "*" // parked rows are listed and requeued whatever their topic
	}
	srcs, err := cfg.loadSources()
	if err != nil {
		fmt.Fprintf(stderr, "relay parked %s: %v\n", sub, err)
		return command.ExitUsage
	}
	src, err := pickSource(srcs, *source)
	if err != nil {
		fmt.Fprintf(stderr, "relay parked %s: %v\n", sub, err)
		return command.ExitUsage
	}
	ids, err := command.IDs(fs.Args())
	if err == nil && sub == "requeue" && len(ids) == 0 && !*all {
		err = errors.New("give the IDs of the rows to requeue, or -all")
	}
	if err == nil && sub == "list" && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err != nil {
		fmt.Fprintf(stderr, "relay parked %s: %v\n", sub, err)
		return command.ExitUsage
	}
	if err := parked(ctx, sub, src, ids, *all, *limit, stdout); err != nil {
		fmt.Fprintf(stderr, "relay parked %s: %v\n", sub, err)
		return command.ExitError
	}
	return command.ExitOK
}

// logKafkaEvents logs the producer's client-level events (broker down,
// authentication failures); per-message results arrive on delivery channels.
func logKafkaEvents(events chan kafka.Event, health *kafkaclient.Watcher, logger *zap.Logger) {
	for ev := range events {
		switch e := ev.(type) {
		case kafka.Error:
			health.Observe(e)
		case *kafka.Message:
			// Only messages produced without a delivery channel end up here.
		default:
			logger.Debug("Kafka event", zap.String("event", e.String()))
		}
	}
}
