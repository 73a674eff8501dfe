package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/services/monitor/internal/heartbeat"
	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
)

// maxRedirects is how many redirects a check follows.
const maxRedirects = 10

// Config is the monitor's configuration: flags, or MONITOR_* environment
// variables (DATABASE_URL and LOG_* are shared).
type Config struct {
	config.Service
	Region         string
	Rebalance      time.Duration
	DeadPeer       time.Duration
	Concurrency    int
	ReloadInterval time.Duration
	MaxBodyBytes   int64
	BlockPrivate   bool
	AllowNets      string
	UserAgent      string
	BatchSize      int
	FlushInterval  time.Duration
	PingAddr       string
	HeartbeatSweep time.Duration
}

func (c *Config) register(fs *flag.FlagSet) {
	c.Service.Register(fs, "sitewatch's database", ":9101")
	fs.StringVar(&c.Region, "region", checkevent.DefaultRegion, "region of this replica: replicas of one region share its sites; every region checks every site that names no regions")
	fs.DurationVar(&c.Rebalance, "rebalance-interval", time.Second, "how often the replicas of a region even out their shards of the sites")
	fs.DurationVar(&c.DeadPeer, "dead-peer", 6*time.Second, "about how long a replica whose host vanished keeps its sites (TCP keepalives on the lease connection)")
	fs.IntVar(&c.Concurrency, "concurrency", 200, "checks running at once, across all sites")
	fs.DurationVar(&c.ReloadInterval, "reload-interval", 5*time.Second, "how often site changes are picked up")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 1<<20, "body bytes read per check; the rest is not read and the result is marked truncated")
	fs.BoolVar(&c.BlockPrivate, "block-private", true, "refuse to connect to private and special-purpose addresses (loopback, link-local, shared, reserved...), checked when connecting, redirects included")
	fs.StringVar(&c.AllowNets, "allow-nets", "", "comma-separated CIDRs checks may connect to even when -block-private refuses them, e.g. 10.0.0.0/8 for internal targets")
	fs.StringVar(&c.UserAgent, "user-agent", "sitewatch/0.1 (+https://github.com/sitewatch/sitewatch)", "User-Agent header of checks")
	fs.IntVar(&c.BatchSize, "batch-size", 500, "results written per outbox transaction at most")
	fs.DurationVar(&c.FlushInterval, "flush-interval", 100*time.Millisecond, "the longest a result waits before it is written")
	fs.StringVar(&c.PingAddr, "ping-addr", "", "address of the ping listener that heartbeat sites' jobs call (POST /ping/<token>), e.g. :8081; empty serves none")
	fs.DurationVar(&c.HeartbeatSweep, "heartbeat-sweep-interval", time.Second, "how often heartbeat deadlines passed without a ping are written as failed checks")
}

// Validate reports every setting that cannot work, each naming its flag.
func (c Config) Validate() error {
	errs := []error{c.Service.Validate()}
	if err := checkevent.ValidateRegion(c.Region); err != nil {
		errs = append(errs, fmt.Errorf("region: %w", err))
	}
	if c.Rebalance < 100*time.Millisecond || c.Rebalance > time.Minute {
		errs = append(errs, fmt.Errorf("rebalance-interval: %s: want 100ms..1m", c.Rebalance))
	}
	if c.DeadPeer < 3*time.Second || c.DeadPeer > 10*time.Minute {
		errs = append(errs, fmt.Errorf("dead-peer: %s: want 3s..10m", c.DeadPeer))
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		errs = append(errs, fmt.Errorf("concurrency: %d: want 1..10000", c.Concurrency))
	}
	if c.ReloadInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("reload-interval: %s: want at least 100ms", c.ReloadInterval))
	}
	if _, err := probe.ParseNets(c.AllowNets); err != nil {
		errs = append(errs, fmt.Errorf("allow-nets: %w", err))
	}
	if c.MaxBodyBytes < 1 || c.MaxBodyBytes > 1<<30 {
		errs = append(errs, fmt.Errorf("max-body-bytes: %d: want 1..1073741824", c.MaxBodyBytes))
	}
	if c.UserAgent == "" || strings.ContainsFunc(c.UserAgent, unicode.IsControl) {
		errs = append(errs, fmt.Errorf("user-agent: %q: want a non-empty header value without control characters", c.UserAgent))
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("batch-size: %d: want 1..10000", c.BatchSize))
	}
	if c.FlushInterval < time.Millisecond || c.FlushInterval > 10*time.Second {
		errs = append(errs, fmt.Errorf("flush-interval: %s: want 1ms..10s", c.FlushInterval))
	}
	errs = append(errs, c.heartbeat().Validate())
	return errors.Join(errs...)
}

// parse fills c from the environment and args; it returns the arguments
// left after the flags.
func (c *Config) parse(name string, args []string) ([]string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.register(fs)
	if err := config.Parse(fs, "MONITOR", args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// heartbeat is the heartbeats' configuration.
func (c Config) heartbeat() heartbeat.Config {
	return heartbeat.Config{Addr: c.PingAddr, SweepInterval: c.HeartbeatSweep, Timeout: 10 * time.Second}
}

// guard is the probe's address guard, or nil with -block-private=false.
func (c Config) guard() *probe.Guard {
	if !c.BlockPrivate {
		return nil
	}
	nets, _ := probe.ParseNets(c.AllowNets) // checked by Validate
	return probe.NewGuard(nets)
}
