package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/services/sink/internal/maintain"
	"github.com/sitewatch/sitewatch/services/sink/internal/sink"
	"github.com/sitewatch/sitewatch/services/sink/internal/status"
)

// Config is the sink's configuration: flags, or SINK_* environment
// variables (DATABASE_URL, KAFKA_BROKERS and LOG_* are shared).
type Config struct {
	config.Service
	Kafka           kafkaclient.Config
	Status          status.Config
	Public          status.PublicConfig
	Topic           string
	IncidentTopic   string
	GroupID         string
	InstanceID      string
	SessionTimeout  time.Duration
	CreateTopic     bool
	TopicPartitions int
	TopicReplicas   int
	TopicMinInsync  int
	IncidentSweep   time.Duration
	Notify          bool
	NotifyGroupID   string
	NotifyAttempts  int
	NotifyBackoff   time.Duration
	NotifyMaxWait   time.Duration
	BatchSize       int
	BatchWait       time.Duration
	Writers         int
	Maintain        maintain.Config // retention and partitions (issue 9)
}

func (c *Config) register(fs *flag.FlagSet) {
	c.Service.Register(fs, "the database holding the stats table", ":9103")
	c.Kafka.RegisterFlags(fs)
	fs.StringVar(&c.Topic, "topic", "sitewatch.checks", "topic to consume")
	fs.StringVar(&c.IncidentTopic, "incident-topic", checkevent.IncidentTopic, "topic of the incident events the sink writes to the outbox and the notifier reads (the relay must allow it)")
	fs.StringVar(&c.GroupID, "group-id", "sitewatch-sink", "Kafka consumer group")
	fs.StringVar(&c.InstanceID, "instance-id", hostname(), "this replica's static member id in its consumer groups: one per replica, kept across restarts, so a restarted sink gets its partitions back at once (empty: dynamic membership)")
	fs.DurationVar(&c.SessionTimeout, "session-timeout", 6*time.Second, "a replica that stops heartbeating loses its partitions to the others after this (the broker allows 6s..5m by default)")
	fs.BoolVar(&c.CreateTopic, "create-topic", true, "create the topic at startup if it does not exist")
	fs.IntVar(&c.TopicPartitions, "topic-partitions", 3, "partitions of the topic (and of sitewatch.incidents) when the sink creates it")
	fs.IntVar(&c.TopicReplicas, "topic-replication-factor", 3, "replicas of the topics the sink creates, at most the cluster's brokers (a single broker: 1)")
	fs.IntVar(&c.TopicMinInsync, "topic-min-insync-replicas", 2, "min.insync.replicas of the topics the sink creates: replicas in sync a write needs, at most the replicas less one")
	fs.BoolVar(&c.Notify, "notify", true, "run the notifier: deliver incident notifications to the sites' channels")
	fs.StringVar(&c.NotifyGroupID, "notify-group-id", "sitewatch-notifier", "Kafka consumer group of the notifier on sitewatch.incidents")
	fs.IntVar(&c.NotifyAttempts, "notify-max-attempts", 12, "delivery attempts per notification and channel before it is failed for good")
	fs.DurationVar(&c.NotifyBackoff, "notify-retry-backoff", time.Second, "wait after a failed delivery attempt, doubling each time")
	fs.DurationVar(&c.NotifyMaxWait, "notify-max-backoff", 10*time.Minute, "longest wait between two delivery attempts")
	fs.DurationVar(&c.IncidentSweep, "incident-sweep-interval", 5*time.Second, "how often sites no region checks any more open stale incidents, and removed or disabled sites' incidents are resolved")
	fs.IntVar(&c.BatchSize, "batch-size", sink.DefaultBatchSize, "the most messages written per database transaction (a batch holds what is at hand, so it fills up only when the sink is behind)")
	fs.DurationVar(&c.BatchWait, "batch-wait", 200*time.Millisecond, "the longest the first message of a batch waits while more keep arriving (a batch is written as soon as nothing more is at hand)")
	fs.IntVar(&c.Writers, "writers", sink.DefaultWriters, "transactions writing at once, each for its share of the partitions this replica holds (partition modulo writers); more than those partitions adds nothing")
	c.Maintain.RegisterFlags(fs)
	fs.StringVar(&c.Status.Addr, "http-addr", "127.0.0.1:8080", "listen address of the status page (loopback unless -ui-token is set; empty: no status page)")
	fs.StringVar(&c.Status.Token, "ui-token", "", "bearer token, or basic-auth password, the status page requires (env SINK_UI_TOKEN or SINK_UI_TOKEN_FILE; required beyond loopback)")
	fs.StringVar(&c.Public.Addr, "public-addr", "", "listen address of the public status pages (monitor pages add), served without a token; empty: none")
	fs.Float64Var(&c.Public.Rate, "public-rate-limit", 10, "requests per second one client may make to the public pages")
	fs.IntVar(&c.Public.Burst, "public-burst", 40, "requests one client may make at once to the public pages")
	fs.StringVar(&c.Public.ClientIPHeader, "public-client-ip-header", "", "header a trusted proxy or CDN in front sets to the client's address (its last value counts), e.g. X-Forwarded-For; empty: the connection's")
	fs.DurationVar(&c.Public.CacheFor, "public-cache", 30*time.Second, "how long a public page is served as rendered, and may be cached in front (Cache-Control)")
}

// Validate reports every setting that cannot work, each naming its flag.
func (c Config) Validate() error {
	errs := []error{c.Service.Validate(), c.Maintain.Validate()}
	if c.Status.Addr != "" {
		errs = append(errs, c.Status.Validate())
	}
	if c.Public.Addr != "" {
		errs = append(errs, c.Public.Validate())
	}
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := outbox.ValidateTopic(c.Topic); err != nil {
		errs = append(errs, fmt.Errorf("topic: %w", err))
	}
	if err := outbox.ValidateTopic(c.IncidentTopic); err != nil || c.IncidentTopic == c.Topic {
		errs = append(errs, fmt.Errorf("incident-topic: %q: want a valid topic other than -topic", c.IncidentTopic))
	}
	if c.NotifyGroupID == "" || c.NotifyGroupID == c.GroupID {
		errs = append(errs, fmt.Errorf("notify-group-id: %q: want a group of its own", c.NotifyGroupID))
	}
	if c.NotifyAttempts < 1 || c.NotifyAttempts > 100 {
		errs = append(errs, fmt.Errorf("notify-max-attempts: %d: want 1..100", c.NotifyAttempts))
	}
	if c.NotifyBackoff < 10*time.Millisecond || c.NotifyBackoff > time.Hour {
		errs = append(errs, fmt.Errorf("notify-retry-backoff: %s: want 10ms..1h", c.NotifyBackoff))
	}
	if c.NotifyMaxWait < c.NotifyBackoff || c.NotifyMaxWait > 24*time.Hour {
		errs = append(errs, fmt.Errorf("notify-max-backoff: %s: want notify-retry-backoff..24h", c.NotifyMaxWait))
	}
	if c.InstanceID != "" && !instanceID.MatchString(c.InstanceID) {
		errs = append(errs, fmt.Errorf("instance-id: %q: want at most 200 letters, digits and . _ -", c.InstanceID))
	}
	if c.SessionTimeout < time.Second || c.SessionTimeout > 30*time.Minute {
		errs = append(errs, fmt.Errorf("session-timeout: %s: want 1s..30m (and within the broker's group.min/max.session.timeout.ms)", c.SessionTimeout))
	}
	if c.GroupID == "" {
		errs = append(errs, errors.New("group-id: required"))
	}
	if c.IncidentSweep < 100*time.Millisecond || c.IncidentSweep > time.Hour {
		errs = append(errs, fmt.Errorf("incident-sweep-interval: %s: want 100ms..1h", c.IncidentSweep))
	}
	if c.TopicReplicas < 1 || c.TopicReplicas > 32 {
		errs = append(errs, fmt.Errorf("topic-replication-factor: %d: want 1..32", c.TopicReplicas))
	}
	if c.TopicMinInsync < 1 || c.TopicMinInsync > c.TopicReplicas {
		errs = append(errs, fmt.Errorf("topic-min-insync-replicas: %d: want 1..topic-replication-factor", c.TopicMinInsync))
	}
	if c.TopicPartitions < 1 || c.TopicPartitions > 10000 {
		errs = append(errs, fmt.Errorf("topic-partitions: %d: want 1..10000", c.TopicPartitions))
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("batch-size: %d: want 1..100000", c.BatchSize))
	}
	if c.BatchWait < time.Millisecond || c.BatchWait > time.Minute {
		errs = append(errs, fmt.Errorf("batch-wait: %s: want 1ms..1m", c.BatchWait))
	}
	if c.Writers < 1 || c.Writers > 64 {
		errs = append(errs, fmt.Errorf("writers: %d: want 1..64", c.Writers))
	}
	return errors.Join(errs...)
}

var instanceID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

// hostname is the default instance id: stable across a container's
// restarts (and a StatefulSet pod's), different between replicas.
func hostname() string {
	h, err := os.Hostname()
	if err != nil || !instanceID.MatchString(h) {
		return ""
	}
	return h
}

// consumerConfig is what the sink's two consumers (checks and notifier)
// share besides their groups: static membership and the session timeout.
func (c Config) consumerConfig(group string) kafka.ConfigMap {
	m := kafka.ConfigMap{
		"group.id":                 group,
		"auto.offset.reset":        "earliest", // a new group starts from the first message, not the next
		"enable.auto.commit":       true,       // commits only what we stored...
		"enable.auto.offset.store": false,      // ...and we store only after the database commit
		"auto.commit.interval.ms":  1000,
		"session.timeout.ms":       int(c.SessionTimeout.Milliseconds()),
		"heartbeat.interval.ms":    int(max(c.SessionTimeout/3, 100*time.Millisecond).Milliseconds()),
	}
	if c.InstanceID != "" {
		m["group.instance.id"] = c.InstanceID
	}
	return m
}

func loadConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("sink", flag.ContinueOnError)
	c.register(fs)
	if err := config.Parse(fs, "SINK", args); err != nil {
		return c, err
	}
	return c, errors.Join(command.NoArgs(fs.Args()), c.Validate())
}
