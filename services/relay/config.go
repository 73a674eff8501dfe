package main

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/services/relay/internal/relay"
)

// Config is the relay's configuration: flags, or RELAY_* environment
// variables (DATABASE_URL, KAFKA_BROKERS and LOG_* are shared).
type Config struct {
	config.Service
	Table             string
	Topics            string
	SourcesFile       string
	Kafka             kafkaclient.Config
	BatchSize         int
	Workers           int
	PollInterval      time.Duration
	Rebalance         time.Duration
	MessageTimeout    time.Duration
	DrainTimeout      time.Duration
	MaxMessageBytes   int64
	RetryBackoff      time.Duration
	RetryMaxBackoff   time.Duration
	MaxAttempts       int
	Retention         time.Duration
	RetentionInterval time.Duration
	PartitionRows     int64
	CESource          string
	CEType            string
	IDHeader          string
}

func (c *Config) register(fs *flag.FlagSet) {
	c.Service.Register(fs, "the database holding the outbox table", ":9102")
	fs.StringVar(&c.Table, "table", "outbox", "outbox table, optionally schema-qualified")
	fs.StringVar(&c.Topics, "topics", "", "comma-separated topic patterns (glob) this source may publish to, required; other rows are parked (\"*\": every topic, given on purpose)")
	fs.StringVar(&c.SourcesFile, "sources-file", "", "YAML file listing several sources (name, database_url, table, topics); replaces -database-url/-table/-topics")
	c.Kafka.RegisterFlags(fs)
	fs.IntVar(&c.BatchSize, "batch-size", relay.DefaultBatchSize, "rows claimed and produced per transaction")
	fs.IntVar(&c.Workers, "workers", relay.DefaultWorkers, "concurrent batches per source, each on its own lanes")
	fs.DurationVar(&c.PollInterval, "poll-interval", time.Second, "poll when no notification arrives (notifications wake the relay at once)")
	fs.DurationVar(&c.Rebalance, "rebalance-interval", time.Second, "how often replicas even out their lanes; a dead replica's lanes move within about this")
	fs.DurationVar(&c.MessageTimeout, "message-timeout", 0, "how long Kafka may take to acknowledge a row before it is sent again by a later batch; 0 waits as long as Kafka is down, which keeps each key's rows in order (with a timeout, a later row of the key can get through first)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", 5*time.Second, "on shutdown, how long the batch in flight still waits for Kafka; its unacknowledged rows then wait unflipped")
	fs.Int64Var(&c.MaxMessageBytes, "max-message-bytes", 1000000, "largest key + payload produced (the producer's message.max.bytes); a larger row is parked without being loaded")
	fs.DurationVar(&c.RetryBackoff, "retry-backoff", time.Second, "first wait before retrying a row Kafka refused; doubles per attempt")
	fs.DurationVar(&c.RetryMaxBackoff, "retry-max-backoff", 5*time.Minute, "longest wait between retries of a row")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 10, "attempts before a refused row is parked")
	fs.DurationVar(&c.Retention, "retention", 24*time.Hour, "keep published rows at least this long, then drop them with their partition (0 keeps them)")
	fs.DurationVar(&c.RetentionInterval, "retention-interval", time.Minute, "how often published rows are deleted from an outbox of the earlier, unpartitioned layout")
	fs.Int64Var(&c.PartitionRows, "partition-rows", relay.DefaultPartitionRows, "ids per partition the relay creates ahead of the writers (a partition is dropped once all of it is published and past -retention)")
	fs.StringVar(&c.CESource, "ce-source", "", "CloudEvents ce_source header of rows whose writer set none (default /relay/SOURCE-NAME)")
	fs.StringVar(&c.CEType, "ce-type", "outbox.message", "CloudEvents ce_type header of rows whose writer set none")
	fs.StringVar(&c.IDHeader, "id-header", "outbox_id", "header carrying the outbox row id (\"none\": no such header)")
}

// Validate reports every setting that cannot work, each naming its flag.
// It does not change c.
func (c Config) Validate() error {
	var errs []error
	if _, err := c.loadSources(); err != nil {
		errs = append(errs, err)
	}
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
	check(c.MessageTimeout == 0 || c.MessageTimeout >= time.Second, "message-timeout: %s: want 0 (wait) or at least 1s", c.MessageTimeout)
	check(c.DrainTimeout >= 100*time.Millisecond, "drain-timeout: %s: want at least 100ms", c.DrainTimeout)
	check(c.MaxMessageBytes >= 1000 && c.MaxMessageBytes <= 1000000000, "max-message-bytes: %d: want 1000..1000000000", c.MaxMessageBytes)
	check(c.RetryBackoff > 0, "retry-backoff: %s: want more than 0", c.RetryBackoff)
	check(c.RetryMaxBackoff >= c.RetryBackoff, "retry-max-backoff: %s: want at least retry-backoff (%s)", c.RetryMaxBackoff, c.RetryBackoff)
	check(c.MaxAttempts >= 1, "max-attempts: %d: want at least 1", c.MaxAttempts)
	check(c.Retention >= 0, "retention: %s: want 0 (keep) or more", c.Retention)
	check(c.RetentionInterval >= time.Second, "retention-interval: %s: want at least 1s", c.RetentionInterval)
	check(c.PartitionRows >= relay.MinPartitionRows, "partition-rows: %d: want at least %d", c.PartitionRows, relay.MinPartitionRows)
	// The database URLs are the sources' (checked above).
	errs = append(errs, c.Service.ValidateOps())
	return errors.Join(errs...)
}

// sourcesFile is the YAML layout of -sources-file.
type sourcesFile struct {
	Sources []struct {
		Name        string   `yaml:"name"`
		DatabaseURL string   `yaml:"database_url"`
		Table       string   `yaml:"table"`
		Topics      []string `yaml:"topics"`
		CESource    string   `yaml:"ce_source"`
		CEType      string   `yaml:"ce_type"`
		IDHeader    string   `yaml:"id_header"`
	} `yaml:"sources"`
}

// headers fills a source's header settings: its own, else the flags',
// else the defaults.
func (c Config) headers(src *relay.Source, ceSource, ceType, idHeader string) {
	src.CESource = cmp.Or(ceSource, c.CESource, "/relay/"+src.Name)
	src.CEType = cmp.Or(ceType, c.CEType)
	src.IDHeader = cmp.Or(idHeader, c.IDHeader)
	if src.IDHeader == "none" {
		src.IDHeader = ""
	}
}

// maxSourcesFile bounds the sources file; a few hundred sources fit.
const maxSourcesFile = 1 << 20

// loadSources returns the sources of -sources-file, or the one source of
// -database-url, -table and -topics.
func (c Config) loadSources() ([]relay.Source, error) {
	if c.SourcesFile == "" {
		src := relay.Source{Name: "default", DatabaseURL: c.DatabaseURL, Table: c.Table, Topics: splitList(c.Topics)}
		c.headers(&src, "", "", "")
		flagOf := func(field string) string { return strings.ReplaceAll(field, "_", "-") }
		if err := validateSource(src, flagOf); err != nil {
			return nil, err
		}
		return []relay.Source{src}, nil
	}
	f, err := os.Open(c.SourcesFile)
	if err != nil {
		return nil, fmt.Errorf("sources-file: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxSourcesFile+1))
	if err != nil {
		return nil, fmt.Errorf("sources-file %s: %w", c.SourcesFile, err)
	}
	return c.parseSources(c.SourcesFile, data)
}

// parseSources returns the sources of a sources file named name holding
// data. Every error names the file, and a bad field its path in it
// (sources[1].topics).
func (c Config) parseSources(name string, data []byte) ([]relay.Source, error) {
	if len(data) > maxSourcesFile {
		return nil, fmt.Errorf("sources-file %s: larger than %d KiB", name, maxSourcesFile>>10)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var file sourcesFile
	if err := dec.Decode(&file); err != nil {
		return nil, fmt.Errorf("sources-file %s: %w", name, err)
	}
	if len(file.Sources) == 0 {
		return nil, fmt.Errorf("sources-file %s: no sources", name)
	}
	var errs []error
	var out []relay.Source
	seen := map[string]bool{}
	for i, s := range file.Sources {
		src := relay.Source{Name: s.Name, DatabaseURL: os.ExpandEnv(s.DatabaseURL), Table: s.Table, Topics: s.Topics}
		c.headers(&src, s.CESource, s.CEType, s.IDHeader)
		if src.Table == "" {
			src.Table = "outbox"
		}
		at := fmt.Sprintf("sources-file %s: sources[%d]", name, i)
		if src.Name != "" && seen[src.Name] {
			errs = append(errs, fmt.Errorf("%s.name: %q used twice", at, src.Name))
		}
		seen[src.Name] = true
		if err := validateSource(src, func(field string) string { return at + "." + field }); err != nil {
			errs = append(errs, err)
		}
		out = append(out, src)
	}
	return out, errors.Join(errs...)
}

// validateSource checks src with relay.Source.Validate and names each bad
// field as the user wrote it: rename maps a field of a sources file
// (database_url, table, topics, name) to a flag or a path in the file.
func validateSource(src relay.Source, rename func(field string) string) error {
	err := src.Validate()
	if err == nil {
		return nil
	}
	all := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		all = joined.Unwrap()
	}
	var out []error
	for _, e := range all {
		var fe relay.FieldError
		if !errors.As(e, &fe) {
			out = append(out, e)
			continue
		}
		field := rename(fe.Field)
		if fe.Field == "database_url" {
			// The shared check says which variable sets it.
			if derr := config.DatabaseURLField(field, src.DatabaseURL); derr != nil {
				out = append(out, derr)
				continue
			}
		}
		out = append(out, fmt.Errorf("%s: %w", field, fe.Err))
	}
	return errors.Join(out...)
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
