package main

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
)

// Config is the sink's configuration: flags, or SINK_* environment
// variables (DATABASE_URL, KAFKA_BROKERS and LOG_* are shared).
type Config struct {
	config.Service
	Kafka           kafkaclient.Config
	Topic           string
	GroupID         string
	CreateTopic     bool
	TopicPartitions int
	IncidentSweep   time.Duration
	Notify          bool
	NotifyGroupID   string
	NotifyAttempts  int
	NotifyBackoff   time.Duration
	NotifyMaxWait   time.Duration
	BatchSize       int
	BatchWait       time.Duration
}

func (c *Config) register(fs *flag.FlagSet) {
	c.Service.Register(fs, "the database holding the stats table", ":9103")
	c.Kafka.RegisterFlags(fs)
	fs.StringVar(&c.Topic, "topic", "sitewatch.checks", "topic to consume")
	fs.StringVar(&c.GroupID, "group-id", "sitewatch-sink", "Kafka consumer group")
	fs.BoolVar(&c.CreateTopic, "create-topic", true, "create the topic at startup if it does not exist")
	fs.IntVar(&c.TopicPartitions, "topic-partitions", 3, "partitions of the topic (and of sitewatch.incidents) when the sink creates it")
	fs.BoolVar(&c.Notify, "notify", true, "run the notifier: deliver incident notifications to the sites' channels")
	fs.StringVar(&c.NotifyGroupID, "notify-group-id", "sitewatch-notifier", "Kafka consumer group of the notifier on sitewatch.incidents")
	fs.IntVar(&c.NotifyAttempts, "notify-max-attempts", 12, "delivery attempts per notification and channel before it is failed for good")
	fs.DurationVar(&c.NotifyBackoff, "notify-retry-backoff", time.Second, "wait after a failed delivery attempt, doubling each time")
	fs.DurationVar(&c.NotifyMaxWait, "notify-max-backoff", 10*time.Minute, "longest wait between two delivery attempts")
	fs.DurationVar(&c.IncidentSweep, "incident-sweep-interval", 5*time.Second, "how often sites no region checks any more open stale incidents, and removed or disabled sites' incidents are resolved")
	fs.IntVar(&c.BatchSize, "batch-size", 500, "messages written per database transaction")
	fs.DurationVar(&c.BatchWait, "batch-wait", 200*time.Millisecond, "longest a message waits for its batch to fill")
}

// Validate reports every setting that cannot work, each naming its flag.
func (c Config) Validate() error {
	errs := []error{c.Service.Validate()}
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := outbox.ValidateTopic(c.Topic); err != nil {
		errs = append(errs, fmt.Errorf("topic: %w", err))
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
	if c.GroupID == "" {
		errs = append(errs, errors.New("group-id: required"))
	}
	if c.IncidentSweep < 100*time.Millisecond || c.IncidentSweep > time.Hour {
		errs = append(errs, fmt.Errorf("incident-sweep-interval: %s: want 100ms..1h", c.IncidentSweep))
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
	return errors.Join(errs...)
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
