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
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/platform/retry"
	"github.com/sitewatch/sitewatch/services/sink/internal/incident"
	"github.com/sitewatch/sitewatch/services/sink/internal/maintain"
	"github.com/sitewatch/sitewatch/services/sink/internal/notifier"
	"github.com/sitewatch/sitewatch/services/sink/internal/rollup"
	"github.com/sitewatch/sitewatch/services/sink/internal/sink"
	"github.com/sitewatch/sitewatch/services/sink/internal/status"
	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

const usage = `usage: sink [run] [flags]   consume check events into the stats table until SIGTERM
       sink deliveries list|retry   failed notifications, and sending them again (sink deliveries help)
       sink dlq list|replay         messages the sink could never store, and sending them back (sink dlq help)
       sink healthcheck             exit 0 if the running sink's /healthz answers 200

Flags and their SINK_* environment variables: sink run -h
`

func main() {
	command.Main("sink", "run", usage, map[string]command.Func{"run": runCommand, "deliveries": deliveriesCommand, "dlq": dlqCommand, "healthcheck": command.Healthcheck(":9103")})
}

func runCommand(ctx context.Context, args []string, _, stderr io.Writer) int {
	cfg, err := loadConfig(args)
	if code, done := command.ConfigError(stderr, "sink", err); done {
		return code
	}
	return command.Serve(ctx, "sink", cfg.LogLevel, cfg.LogFormat, stderr, func(ctx context.Context, logger *zap.Logger) error {
		return runRejoining(ctx, cfg, logger, run)
	})
}

// fencings is how many times in fencingWindow a sink rejoins after its
// consumer group fenced its -instance-id before it takes it for another
// replica with the same one, and stops.
const (
	fencings      = 3
	fencingWindow = 10 * time.Minute
)

// runRejoining runs run, and runs it again when the consumer group fenced
// the sink's static member (-instance-id). Kafka fences a static member by
// its own id when a join's answer was lost, as when the group's
// coordinator fails over to another broker (apache/kafka#23542): the sink
// would otherwise stop for good on a broker's failure. Fenced again and
// again, it is most likely a second replica with the same -instance-id,
// and the sink stops, saying so. The fenced consumer cannot be closed
// (librdkafka waits for a group it is no longer in) and is left behind.
func runRejoining(ctx context.Context, cfg Config, logger *zap.Logger, run func(context.Context, Config, *zap.Logger) error) error {
	var recent []time.Time
	for {
		err := run(ctx, cfg, logger)
		var kerr kafka.Error
		if ctx.Err() != nil || !errors.As(err, &kerr) || kerr.Code() != kafka.ErrFencedInstanceID {
			return err
		}
		now := time.Now()
		recent = append(recent, now)
		for len(recent) > 0 && now.Sub(recent[0]) > fencingWindow {
			recent = recent[1:]
		}
		if len(recent) >= fencings {
			return fmt.Errorf("fenced %d times within %s: %w", len(recent), fencingWindow, err)
		}
		logger.Warn("the consumer group fenced this sink's -instance-id, as Kafka does after a coordinator failover; joining again",
			zap.String("instance", cfg.InstanceID), zap.Int("fenced_recently", len(recent)), zap.Error(err))
	}
}

func run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	// The sink's writers, the notifier's recording and delivering, the
	// sweep and /readyz at once, and a spare.
	pool, err := config.OpenPool(ctx, cfg.DatabaseURL, "sitewatch-sink", cfg.Writers+5)
	if err != nil {
		return err
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
			return errors.New("not subscribed yet: waiting for the database, then for Kafka to create the topics")
		}
		_, err := c.GetMetadata(&cfg.Topic, false, 2000)
		return err
	}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fatal := &fatalError{cancel: cancel}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return opsSrv.Run(gctx) })
	fail := func(err error) error { // stops the ops server on the way out
		cancel()
		return errors.Join(err, g.Wait())
	}

	// Waits for the database and its migrated tables before reading anything:
	// one line per attempt, with the reason, and /readyz says it too.
	err = retry.Do(gctx, startupRetry, func(actx context.Context) error {
		if err := config.CheckSessions(actx, cfg.DatabaseURL); err != nil {
			return err
		}
		if _, err := pool.Exec(actx, "SELECT 1 FROM stats, incidents, deliveries, sink_replicas, rollup_fold LIMIT 0"); err != nil {
			return fmt.Errorf("reaching the database and its tables (run monitor migrate if they are missing): %w", err)
		}
		return nil
	}, func(attempt int, err error, wait time.Duration) {
		logger.Warn("waiting for the database", zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
	})
	if err != nil {
		return fail(err)
	}

	if cfg.CreateTopic {
		// The incidents the sink announces go out through the relay to a
		// topic the broker may not create by itself.
		for _, topic := range []string{cfg.Topic, cfg.Topic + sink.DLQSuffix, cfg.IncidentTopic} {
			err := retry.Do(gctx, startupRetry, func(actx context.Context) error {
				return kafkaclient.CreateTopic(actx, cfg.Kafka, topic,
					kafkaclient.Topic{Partitions: cfg.TopicPartitions, Replication: cfg.TopicReplicas, MinInsync: cfg.TopicMinInsync})
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
	// Messages that can never be stored go to <topic>.dlq, acknowledged
	// before their offsets are stored.
	deadLetters, err := kafka.NewProducer(cfg.Kafka.ConfigMap(kafka.ConfigMap{"enable.idempotence": true, "acks": "all",
		"linger.ms": 5}))
	if err != nil {
		return fail(fmt.Errorf("creating the dead-letter producer: %w", err))
	}
	defer deadLetters.Close()
	go logProducerEvents(deadLetters, kafkaHealth)
	consumer, err := kafka.NewConsumer(cfg.Kafka.ConfigMap(cfg.consumerConfig(cfg.GroupID)))
	if err != nil {
		return fail(fmt.Errorf("creating Kafka consumer: %w", err))
	}
	if err := consumer.Subscribe(cfg.Topic, nil); err != nil {
		_ = consumer.Close()
		return fail(fmt.Errorf("subscribing to %s: %w", cfg.Topic, err))
	}

	s, err := sink.New(sink.Config{BatchSize: cfg.BatchSize, Writers: cfg.Writers, BatchWait: cfg.BatchWait, ShutdownGrace: 30 * time.Second,
		WriteTimeout: 30 * time.Second}, watched{consumer, kafkaHealth, fatal.set}, store.New(pool, cfg.IncidentTopic, opsSrv.Registry()),
		sink.Producer{P: deadLetters}, logger, opsSrv.Registry())
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
	if cfg.Status.Addr != "" {
		page, err := status.New(cfg.Status, pool, logger.With(zap.String("component", "status")))
		if err != nil {
			return fail(err)
		}
		g.Go(func() error { return page.Run(gctx) })
	}
	if cfg.Public.Addr != "" {
		public, err := status.NewPublic(cfg.Public, pool, logger.With(zap.String("component", "public-pages")))
		if err != nil {
			return fail(err)
		}
		g.Go(func() error { return public.Run(gctx) })
	}
	openIncidents := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sitewatch_sink_open_incidents",
		Help: "Open incidents by kind (down, stale, warning), as of the last incident sweep."}, []string{"kind"})
	opsSrv.Registry().MustRegister(openIncidents)
	g.Go(func() error {
		maintain.Run(gctx, pool, cfg.Maintain, logger.With(zap.String("component", "maintenance")))
		return nil
	})
	g.Go(func() error {
		rollup.RunFolder(gctx, pool, rollup.FoldInterval, cfg.Maintain.Timeout, logger.With(zap.String("component", "rollup-fold")), opsSrv.Registry())
		return nil
	})
	g.Go(func() error {
		sweepIncidents(gctx, pool, consumer, replicaID(cfg.InstanceID), cfg.IncidentTopic, cfg.IncidentSweep, openIncidents, logger)
		return nil
	})
	var notifyConsumer *kafka.Consumer
	if cfg.Notify {
		if notifyConsumer, err = startNotifier(gctx, g, cfg, pool, kafkaHealth, fatal, logger, opsSrv.Registry()); err != nil {
			err = fail(err) // stops what runs already, then closes the consumer
			return errors.Join(err, consumer.Close())
		}
	}
	err = g.Wait()
	if fatal.err.Load() != nil {
		// Closing a consumer in a fatal state never returns (librdkafka
		// waits for a group it is no longer in): exit without it.
		return fatal.wrap(err, cfg.InstanceID)
	}
	if notifyConsumer != nil {
		if cerr := notifyConsumer.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the notifier's Kafka consumer: %w", cerr))
		}
	}
	// Close commits the offsets stored so far. A static member (-instance-id)
	// does not leave the group: its partitions wait -session-timeout for it
	// to come back (a restart) before they move to another replica.
	if cerr := consumer.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("closing Kafka consumer: %w", cerr))
	}
	return fatal.wrap(err, cfg.InstanceID)
}

// sweepIncidents resolves the incidents of removed or disabled sites every
// interval, and opens stale incidents while the consumer has read its
// partitions up to where they ended at the previous sweep (a sink catching
// up after a restart would find every site silent), until ctx ends.
func sweepIncidents(ctx context.Context, pool *pgxpool.Pool, consumer *kafka.Consumer, instance, topic string, every time.Duration,
	open *prometheus.GaugeVec, logger *zap.Logger) {
	logger = logger.With(zap.String("replica", instance))
	defer func() {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := incident.Leave(lctx, pool, instance); err != nil {
			logger.Warn("could not remove this replica's progress; the others ignore it after a while", zap.Error(err))
		}
	}()
	var read readUpTo
	judging := ""
	// Reports older than three sweeps are a replica that stopped.
	fresh := 3 * every
	for retry.Sleep(ctx, every) {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		caughtUp, behind, err := read.check(sctx, consumer)
		logger.Debug("incident sweep", zap.Bool("caught_up", caughtUp), zap.Int64("behind", behind), zap.NamedError("lag_error", err))
		all, lagging, jerr := incident.Judge(sctx, pool, instance, caughtUp, behind, fresh)
		if jerr != nil && ctx.Err() == nil {
			logger.Warn("sharing this replica's progress failed: no site is judged stale", zap.Error(jerr))
		}
		now := "judging"
		switch {
		case !caughtUp:
			now = "behind"
		case jerr != nil || !all:
			now = "others behind"
		}
		if now != judging {
			judging = now
			switch now {
			case "judging":
				logger.Info("every sink replica has read its partitions up to their ends: judging sites without checks stale")
			case "behind":
				logger.Info("behind the checks topic: no site is judged stale until the sink has caught up", zap.Int64("lag", behind), zap.Error(err))
			default:
				logger.Info("another sink replica is behind its partitions: no site is judged stale until it has caught up",
					zap.Strings("lagging", lagging))
			}
		}
		changes, err := incident.Sweep(sctx, pool, topic, time.Now(), all)
		if err == nil {
			var counts map[string]int64
			if counts, err = incident.OpenCounts(sctx, pool); err == nil {
				for kind, n := range counts {
					open.WithLabelValues(kind).Set(float64(n))
				}
			}
		}
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

// replicaID is how this replica reports its progress to the others: its
// instance id, or without one a random id of this process.
func replicaID(instance string) string {
	if instance != "" {
		return instance
	}
	return "sink-" + uuid.NewString()
}

// startNotifier consumes sitewatch.incidents in a group of its own and
// delivers the notifications, in g.
func startNotifier(ctx context.Context, g *errgroup.Group, cfg Config, pool *pgxpool.Pool, health *kafkaclient.Watcher,
	fatal *fatalError, logger *zap.Logger, reg prometheus.Registerer) (*kafka.Consumer, error) {
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
	g.Go(func() error { n.Consume(ctx, watched{c, health, fatal.set}); return nil })
	g.Go(func() error { n.Deliver(ctx); return nil })
	return c, nil
}

// logProducerEvents hands the dead-letter producer's client errors to the
// watcher (which logs each cause once) until the producer is closed;
// delivery reports go to the channel of each Send.
func logProducerEvents(p *kafka.Producer, health *kafkaclient.Watcher) {
	for ev := range p.Events() {
		if e, ok := ev.(kafka.Error); ok {
			health.Observe(e)
		}
	}
}

// startupRetry waits for Kafka at start-up, until shutdown.
var startupRetry = retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2, AttemptTimeout: 30 * time.Second}

// watched is a consumer whose client errors go to a watcher, which logs
// each cause once, instead of to the loop that polls it.
// A fatal one (the consumer cannot go on, e.g. fenced by another member
// with its -instance-id) goes to fatal, which stops the sink.
type watched struct {
	*kafka.Consumer
	health *kafkaclient.Watcher
	fatal  func(kafka.Error)
}

func (w watched) Poll(timeoutMs int) kafka.Event {
	ev := w.Consumer.Poll(timeoutMs)
	if e, ok := ev.(kafka.Error); ok {
		// librdkafka marks a fencing as fatal in the text only.
		if e.IsFatal() || e.Code() == kafka.ErrFatal || e.Code() == kafka.ErrFencedInstanceID {
			w.fatal(e)
		}
		w.health.Observe(e)
		return nil
	}
	return ev
}

// fatalError keeps the first fatal consumer error and stops the sink.
type fatalError struct {
	err    atomic.Pointer[kafka.Error]
	cancel context.CancelFunc
}

func (f *fatalError) set(e kafka.Error) {
	f.err.CompareAndSwap(nil, &e)
	f.cancel()
}

// wrap adds the fatal error, if any, to err, with what it most likely means.
func (f *fatalError) wrap(err error, instanceID string) error {
	e := f.err.Load()
	if e == nil {
		return err
	}
	fatal := fmt.Errorf("the Kafka consumer failed for good: %w", *e)
	if e.Code() == kafka.ErrFencedInstanceID {
		fatal = fmt.Errorf("another sink joined the consumer group with -instance-id %q (each replica needs its own): %w", instanceID, *e)
	}
	return errors.Join(fatal, err)
}
