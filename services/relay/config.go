package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/services/relay/internal/relay"
)

// Config is the relay's configuration: flags, or RELAY_* environment
// variables (DATABASE_URL, KAFKA_BROKERS and LOG_* are shared).
type Config struct {
	DatabaseURL       string
	Table             string
	Topics            string
	SourcesFile       string
	Kafka             kafkaclient.Config
	BatchSize         int
	Workers           int
	PollInterval      time.Duration
	Rebalance         time.Duration
	MessageTimeout    time.Duration
	RetryBackoff      time.Duration
	RetryMaxBackoff   time.Duration
	MaxAttempts       int
	Retention         time.Duration
	RetentionInterval time.Duration
	CESource          string
	OpsAddr           string
	LogLevel          string
	LogFormat         string

	sources []relay.Source
}

func (c *Config) register(fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL of the database holding the outbox table (env DATABASE_URL)")
	fs.StringVar(&c.Table, "table", "outbox", "outbox table, optionally schema-qualified")
	fs.StringVar(&c.Topics, "topics", "*", "comma-separated topic patterns (glob) this source may publish to; other rows are parked")
	fs.StringVar(&c.SourcesFile, "sources-file", "", "YAML file listing several sources (name, database_url, table, topics); replaces -database-url/-table/-topics")
	c.Kafka.RegisterFlags(fs)
	fs.IntVar(&c.BatchSize, "batch-size", 1000, "rows claimed and produced per transaction")
	fs.IntVar(&c.Workers, "workers", 4, "concurrent batches per source, each on its own lanes")
	fs.DurationVar(&c.PollInterval, "poll-interval", time.Second, "poll when no notification arrives (notifications wake the relay at once)")
	fs.DurationVar(&c.Rebalance, "rebalance-interval", time.Second, "how often replicas even out their lanes; a dead replica's lanes move within about this")
	fs.DurationVar(&c.MessageTimeout, "message-timeout", 30*time.Second, "how long Kafka may take to acknowledge a message")
	fs.DurationVar(&c.RetryBackoff, "retry-backoff", time.Second, "first wait before retrying a row Kafka refused; doubles per attempt")
	fs.DurationVar(&c.RetryMaxBackoff, "retry-max-backoff", 5*time.Minute, "longest wait between retries of a row")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 10, "attempts before a refused row is parked")
	fs.DurationVar(&c.Retention, "retention", 24*time.Hour, "delete published rows older than this (0 keeps them)")
	fs.DurationVar(&c.RetentionInterval, "retention-interval", time.Minute, "how often published rows are deleted")
	fs.StringVar(&c.CESource, "ce-source", "/sitewatch/relay", "CloudEvents ce_source for rows whose writer set none")
	fs.StringVar(&c.OpsAddr, "ops-addr", ":9102", "listen address of /healthz, /readyz and /metrics")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json or console")
}

// Validate reports every setting that cannot work, each naming its flag.
func (c *Config) Validate() error {
	var errs []error
	sources, err := c.loadSources()
	if err != nil {
		errs = append(errs, err)
	}
	c.sources = sources
	if err := c.Kafka.Validate(); err != nil {
		errs = append(errs, err)
	}
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.BatchSize >= 1 && c.BatchSize <= 100000, "batch-size: %d: want 1..100000", c.BatchSize)
	check(c.Workers >= 1 && c.Workers <= 64, "workers: %d: want 1..64", c.Workers)
	check(c.PollInterval >= 10*time.Millisecond, "poll-interval: %s: want at least 10ms", c.PollInterval)
	check(c.Rebalance >= 100*time.Millisecond, "rebalance-interval: %s: want at least 100ms", c.Rebalance)
	check(c.MessageTimeout >= time.Second, "message-timeout: %s: want at least 1s", c.MessageTimeout)
	check(c.RetryBackoff > 0, "retry-backoff: %s: want more than 0", c.RetryBackoff)
	check(c.RetryMaxBackoff >= c.RetryBackoff, "retry-max-backoff: %s: want at least retry-backoff (%s)", c.RetryMaxBackoff, c.RetryBackoff)
	check(c.MaxAttempts >= 1, "max-attempts: %d: want at least 1", c.MaxAttempts)
	check(c.Retention >= 0, "retention: %s: want 0 (keep) or more", c.Retention)
	check(c.RetentionInterval >= time.Second, "retention-interval: %s: want at least 1s", c.RetentionInterval)
	if _, _, err := net.SplitHostPort(c.OpsAddr); err != nil {
		errs = append(errs, fmt.Errorf("ops-addr: %w", err))
	}
	return errors.Join(errs...)
}

// sourcesFile is the YAML layout of -sources-file.
type sourcesFile struct {
	Sources []struct {
		Name        string   `yaml:"name"`
		DatabaseURL string   `yaml:"database_url"`
		Table       string   `yaml:"table"`
		Topics      []string `yaml:"topics"`
	} `yaml:"sources"`
}

func (c *Config) loadSources() ([]relay.Source, error) {
	if c.SourcesFile == "" {
		src := relay.Source{Name: "default", DatabaseURL: c.DatabaseURL, Table: c.Table, Topics: splitList(c.Topics)}
		if err := validateSource(src, "database-url", "table", "topics"); err != nil {
			return nil, err
		}
		return []relay.Source{src}, nil
	}
	f, err := os.Open(c.SourcesFile)
	if err != nil {
		return nil, fmt.Errorf("sources-file: %w", err)
	}
	defer func() { _ = f.Close() }()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var file sourcesFile
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("sources-file %s: %w", c.SourcesFile, err)
	}
	if len(file.Sources) == 0 {
		return nil, fmt.Errorf("sources-file %s: no sources", c.SourcesFile)
	}
	var errs []error
	var out []relay.Source
	seen := map[string]bool{}
	for i, s := range file.Sources {
		src := relay.Source{Name: s.Name, DatabaseURL: os.ExpandEnv(s.DatabaseURL), Table: s.Table, Topics: s.Topics}
		if src.Table == "" {
			src.Table = "outbox"
		}
		at := fmt.Sprintf("sources-file %s: sources[%d]", c.SourcesFile, i)
		switch {
		case src.Name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", at))
		case seen[src.Name]:
			errs = append(errs, fmt.Errorf("%s.name: %q used twice", at, src.Name))
		}
		seen[src.Name] = true
		if err := validateSource(src, at+".database_url", at+".table", at+".topics"); err != nil {
			errs = append(errs, err)
		}
		out = append(out, src)
	}
	return out, errors.Join(errs...)
}

func validateSource(s relay.Source, urlField, tableField, topicsField string) error {
	var errs []error
	if err := config.DatabaseURLField(urlField, s.DatabaseURL); err != nil {
		errs = append(errs, err)
	}
	if _, err := outbox.QuoteTable(s.Table); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", tableField, err))
	}
	if len(s.Topics) == 0 {
		errs = append(errs, fmt.Errorf("%s: at least one pattern required (\"*\" allows every topic)", topicsField))
	}
	for _, p := range s.Topics {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("%s: pattern %q: %w", topicsField, p, err))
		}
	}
	return errors.Join(errs...)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parse fills c from the environment and args and returns what is left.
func (c *Config) parse(name string, args []string) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.register(fs)
	return fs, config.Parse(fs, "RELAY", args)
}
