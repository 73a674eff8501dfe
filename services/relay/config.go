package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
)

// Config is the relay's configuration: flags, or RELAY_* environment
// variables (DATABASE_URL, KAFKA_BROKERS and LOG_* are shared).
type Config struct {
	DatabaseURL    string
	Table          string
	Kafka          kafkaclient.Config
	BatchSize      int
	PollInterval   time.Duration
	MessageTimeout time.Duration
	Source         string
	OpsAddr        string
	LogLevel       string
	LogFormat      string
}

func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL of the database holding the outbox table (env DATABASE_URL)")
	fs.StringVar(&c.Table, "table", "outbox", "outbox table, optionally schema-qualified")
	c.Kafka.RegisterFlags(fs)
	fs.IntVar(&c.BatchSize, "batch-size", 1000, "rows claimed and produced per transaction")
	fs.DurationVar(&c.PollInterval, "poll-interval", 200*time.Millisecond, "wait between polls when the outbox is drained")
	fs.DurationVar(&c.MessageTimeout, "message-timeout", 30*time.Second, "how long Kafka may take to acknowledge a message before it counts as failed")
	fs.StringVar(&c.Source, "source", "/sitewatch/relay", "CloudEvents ce_source for rows whose writer set none")
	fs.StringVar(&c.OpsAddr, "ops-addr", ":9102", "listen address of /healthz, /readyz and /metrics")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or console")
}

// Validate reports every setting that cannot work, each naming its flag.
func (c Config) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("database-url: required (env DATABASE_URL)"))
	} else if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		errs = append(errs, fmt.Errorf("database-url: %w", err))
	}
	if _, err := outbox.QuoteTable(c.Table); err != nil {
		errs = append(errs, fmt.Errorf("table: %w", err))
	}
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.BatchSize < 1 || c.BatchSize > 100000 {
		errs = append(errs, fmt.Errorf("batch-size: %d: want 1..100000", c.BatchSize))
	}
	if c.PollInterval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("poll-interval: %s: want at least 10ms", c.PollInterval))
	}
	if c.MessageTimeout < time.Second {
		errs = append(errs, fmt.Errorf("message-timeout: %s: want at least 1s", c.MessageTimeout))
	}
	if _, _, err := net.SplitHostPort(c.OpsAddr); err != nil {
		errs = append(errs, fmt.Errorf("ops-addr: %w", err))
	}
	return errors.Join(errs...)
}

func loadConfig(args []string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	c.register(fs)
	if err := config.Parse(fs, "RELAY", args); err != nil {
		return c, err
	}
	return c, c.Validate()
}
