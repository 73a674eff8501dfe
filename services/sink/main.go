// Command sink consumes sitewatch check events from Kafka into the stats
// table, one row per event however often Kafka delivers it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/platform/retry"
	"github.com/sitewatch/sitewatch/services/sink/internal/incident"
	"github.com/sitewatch/sitewatch/services/sink/internal/maintain"
	"github.com/sitewatch/sitewatch/services/sink/internal/notifier"
	"github.com/sitewatch/sitewatch/services/sink/internal/sink"
	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

const usage = `usage: sink [run] [flags]   consume check events into the stats table until SIGTERM
       sink deliveries list|retry   failed notifications, and sending them again (sink deliveries help)
       sink healthcheck             exit 0 if the running sink's /healthz answers 200

Flags and their SINK_* environment variables: sink run -h
`

func main() {
	command.Main("sink", "run", usage, map[string]command.Func{"run": runCommand, "deliveries": deliveriesCommand, "healthcheck": command.Healthcheck(":9103")})
}

func runCommand(ctx context.Context, args []string, _, stderr io.Writer) int {
	cfg, err := loadConfig(args)
	if code, done := command.ConfigError(stderr, "sink", err); done {
		return code
	}
	return command.Serve(ctx, "sink", cfg.LogLevel, cfg.LogFormat, stderr, func(ctx context.Context, logger *zap.Logger) error {
		return run(ctx, cfg, logger)
	})
}

func run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("opening database pool: %w", err)
	}
	defer pool.Close()

	// The ops endpoints answer while Kafka is awaited; a broker that refuses
	// us (credentials, TLS) is logged once, naming why, and is /readyz's reason.
	opsSrv := ops.New(cfg.OpsAddr, logger)
	opsSrv.AddReadiness("postgres", pool.Ping)
	kafkaHealth := kafkaclient.NewWatcher(cfg.Kafka, logger)
	var subscribed atomic.Pointer[kafka.Consumer]
	opsSrv.AddReadiness("kafka", kafkaHealth.Check(func(context.Context) error {
		c := subscribed.Load()
		if c == nil {
			return errors.New("creating the topics")
		}
		_, err := c.GetMetadata(&cfg.Topic, false, 2000)
		return err
	}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return opsSrv.Run(gctx) })
	fail := func(err error) error { // stops the ops server on the way out
		cancel()
		return errors.Join(err, g.Wait())
	}

	if cfg.CreateTopic {
		// The incidents the sink announces go out through the relay to a
		// topic the broker may not create by itself.
		for _, topic := range []string{cfg.Topic, cfg.IncidentTopic} {
			err := retry.Do(gctx, startupRetry, func(actx context.Context) error {
				return kafkaclient.EnsureTopic(actx, cfg.Kafka, topic, cfg.TopicPartitions)
			}, func(attempt int, err error, wait time.Duration) {
				if !kafkaHealth.Report(err) {
					logger.Warn("waiting for Kafka to create the topic", zap.String("topic", topic), zap.Int("attempt", attempt),
						zap.Duration("retry_in", wait), zap.Error(err))
				}
			})
			if err != nil {
				return fail(err)
			}
		}
	}
	consumer, err := kafka.NewConsumer(cfg.Kafka.ConfigMap(cfg.consumerConfig(cfg.GroupID)))
	if err != nil {
		return fail(fmt.Errorf("creating Kafka consumer: %w", err))
	}
	if err := consumer.Subscribe(cfg.Topic, nil); err != nil {
		_ = consumer.Close()
		return fail(fmt.Errorf("subscribing to %s: %w", cfg.Topic, err))
	}

	s, err := sink.New(sink.Config{BatchSize: cfg.BatchSize, BatchWait: cfg.BatchWait, ShutdownGrace: 30 * time.Second,
		WriteTimeout: 30 * time.Second}, watched{consumer, kafkaHealth}, store.New(pool, cfg.IncidentTopic), logger, opsSrv.Registry())
	if err != nil {
		_ = consumer.Close()
		return fail(err)
	}
	subscribed.Store(consumer)
	opsSrv.AddLiveness("loop", func(context.Context) error {
		if since := time.Since(s.LastLoop()); since > 2*time.Minute {
			return fmt.Errorf("%w: last turn %s ago", sink.ErrStalled, since.Round(time.Second))
		}
		return nil
	})

	logger.Info("sink starting", zap.String("topic", cfg.Topic), zap.String("group", cfg.GroupID), zap.String("instance", cfg.InstanceID),
		zap.String("kafka", cfg.Kafka.Brokers))
	g.Go(func() error { return s.Run(gctx) })
	g.Go(func() error {
		maintain.Run(gctx, pool, cfg.Maintain, logger.With(zap.String("component", "maintenance")))
		return nil
	})
	g.Go(func() error {
		sweepIncidents(gctx, pool, consumer, cfg.IncidentTopic, cfg.IncidentSweep, logger)
		return nil
	})
	var notifyConsumer *kafka.Consumer
	if cfg.Notify {
		if notifyConsumer, err = startNotifier(gctx, g, cfg, pool, kafkaHealth, logger, opsSrv.Registry()); err != nil {
			err = fail(err) // stops what runs already, then closes the consumer
			return errors.Join(err, consumer.Close())
		}
	}
	err = g.Wait()
	if notifyConsumer != nil {
		if cerr := notifyConsumer.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the notifier's Kafka consumer: %w", cerr))
		}
	}
	// Close commits the offsets stored so far and leaves the group at once,
	// so the partitions move to another sink without waiting for a timeout.
	if cerr := consumer.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing Kafka consumer: %w", cerr))
	}
	return err
}

// sweepIncidents resolves the incidents of removed or disabled sites every
// interval, and opens stale incidents while the consumer has read its
// partitions up to where they ended at the previous sweep (a sink catching
// up after a restart would find every site silent), until ctx ends.
func sweepIncidents(ctx context.Context, pool *pgxpool.Pool, consumer *kafka.Consumer, topic string, every time.Duration, logger *zap.Logger) {
	var read readUpTo
	judging := false
	for retry.Sleep(ctx, every) {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		caughtUp, behind, err := read.check(sctx, consumer)
		if caughtUp != judging {
			judging = caughtUp
			if caughtUp {
				logger.Info("read the checks topic up to its end at the last sweep: judging sites without checks stale")
			} else {
				logger.Info("behind the checks topic: no site is judged stale until the sink has caught up", zap.Int64("lag", behind), zap.Error(err))
			}
		}
		changes, err := incident.Sweep(sctx, pool, topic, time.Now(), caughtUp)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("incident sweep failed; retrying at the next one", zap.Error(err))
			}
			continue
		}
		for _, c := range changes {
			logger.Info("incident", zap.Int64("incident_id", c.IncidentID), zap.Int64("site_id", c.SiteID),
				zap.String("kind", c.Kind), zap.Bool("opened", c.Opened))
		}
	}
}

// startNotifier consumes sitewatch.incidents in a group of its own and
// delivers the notifications, in g.
func startNotifier(ctx context.Context, g *errgroup.Group, cfg Config, pool *pgxpool.Pool, health *kafkaclient.Watcher,
	logger *zap.Logger, reg prometheus.Registerer) (*kafka.Consumer, error) {
	logger = logger.With(zap.String("component", "notifier"))
	n, err := notifier.New(notifier.Config{MaxAttempts: cfg.NotifyAttempts, RetryBackoff: cfg.NotifyBackoff,
		MaxBackoff: cfg.NotifyMaxWait, PollInterval: time.Second, Batch: 50},
		pool, notify.Client(), logger, reg)
	if err != nil {
		return nil, err
	}
	// Offsets are stored once the deliveries are recorded.
	c, err := kafka.NewConsumer(cfg.Kafka.ConfigMap(cfg.consumerConfig(cfg.NotifyGroupID)))
	if err != nil {
		return nil, fmt.Errorf("creating the notifier's Kafka consumer: %w", err)
	}
	if err := c.Subscribe(cfg.IncidentTopic, nil); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("subscribing to %s: %w", cfg.IncidentTopic, err)
	}
	g.Go(func() error { n.Consume(ctx, watched{c, health}); return nil })
	g.Go(func() error { n.Deliver(ctx); return nil })
	return c, nil
}

// startupRetry waits for Kafka at start-up, until shutdown.
var startupRetry = retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2, AttemptTimeout: 30 * time.Second}

// watched is a consumer whose client errors go to a watcher, which logs
// each cause once, instead of to the loop that polls it.
type watched struct {
	*kafka.Consumer
	health *kafkaclient.Watcher
}

func (w watched) Poll(timeoutMs int) kafka.Event {
	ev := w.Consumer.Poll(timeoutMs)
	if e, ok := ev.(kafka.Error); ok {
		w.health.Observe(e)
		return nil
	}
	return ev
}
