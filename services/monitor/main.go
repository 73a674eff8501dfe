// Command monitor checks websites and writes every result into the outbox.
//
//	monitor [run]          check the enabled sites until SIGTERM
//	monitor migrate        apply the database migrations
//	monitor sites ...      add, update, list, show, remove, import and export sites
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/platform/retry"
	"github.com/sitewatch/sitewatch/services/monitor/internal/cli"
	"github.com/sitewatch/sitewatch/services/monitor/internal/fleet"
	"github.com/sitewatch/sitewatch/services/monitor/internal/heartbeat"
	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/record"
	"github.com/sitewatch/sitewatch/services/monitor/internal/schedule"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

const usage = `usage: monitor [run|migrate|sites] [flags]

  run       check the enabled sites until SIGTERM (the default)
  migrate   apply the database migrations and exit
  sites     add, update, list, show, remove, import and export sites (monitor sites help)
  incidents list and show open and recent incidents (monitor incidents help)
  channels  add, update, show, list, remove, test, import and export notification channels (monitor channels help)
  silence   add, list and remove maintenance windows of sites (monitor silence help)
  pages     add, update, list, show, remove, import and export public status pages (monitor pages help)
  healthcheck  exit 0 if the running monitor's /healthz answers 200 (for container health checks)

Flags and their MONITOR_* environment variables: monitor run -h
`

func main() {
	command.Main("monitor", "run", usage, map[string]command.Func{
		"run": runCommand, "migrate": migrateCommand, "sites": sitesCommand, "incidents": incidentsCommand, "channels": channelsCommand, "silence": silenceCommand,
		"pages":       pagesCommand,
		"healthcheck": command.Healthcheck(":9101"),
	})
}

func runCommand(ctx context.Context, args []string, _, stderr io.Writer) int {
	var cfg Config
	rest, err := cfg.parse("monitor run", args)
	if err == nil {
		err = errors.Join(command.NoArgs(rest), cfg.Validate())
	}
	if code, done := command.ConfigError(stderr, "monitor", err); done {
		return code
	}
	return command.Serve(ctx, "monitor", cfg.LogLevel, cfg.LogFormat, stderr, func(ctx context.Context, logger *zap.Logger) error {
		return run(ctx, cfg, logger)
	})
}

func run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	// The recorder's write, the schedule's reload and /readyz at once, and a spare.
	pool, err := config.OpenPool(ctx, cfg.DatabaseURL, "sitewatch-monitor", 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	st := store.New(pool)
	opsSrv := ops.New(cfg.OpsAddr, logger)
	opsSrv.AddReadiness("postgres", pool.Ping)
	// The ops endpoints answer while the database is awaited.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return opsSrv.Run(gctx) })
	fail := func(err error) error { // stops the ops server on the way out
		cancel()
		return errors.Join(err, g.Wait())
	}
	var joined atomic.Pointer[fleet.Member]
	opsSrv.AddReadiness("fleet", func(ctx context.Context) error {
		if m := joined.Load(); m != nil {
			return m.Ready(ctx)
		}
		return errors.New("not in the fleet yet: waiting for the database")
	})

	// Waits for the database: joining the fleet needs it.
	var member *fleet.Member
	err = retry.Do(gctx, startupRetry, func(actx context.Context) error {
		if err := config.CheckSessions(actx, cfg.DatabaseURL); err != nil {
			return err
		}
		var err error
		member, err = fleet.New(actx, fleet.Config{DatabaseURL: cfg.DatabaseURL, Region: cfg.Region,
			Rebalance: cfg.Rebalance, DeadPeer: cfg.DeadPeer}, st, logger, opsSrv.Registry())
		return err
	}, func(attempt int, err error, wait time.Duration) {
		logger.Warn("waiting for the database to join the fleet", zap.Int("attempt", attempt), zap.Error(err), zap.Duration("retry_in", wait))
	})
	if err != nil {
		return fail(fmt.Errorf("joining the fleet of region %s: %w", cfg.Region, err))
	}
	joined.Store(member)

	results := make(chan probe.Result, 4*cfg.BatchSize)
	prober := probe.New(probe.Config{MaxBodyBytes: cfg.MaxBodyBytes, UserAgent: cfg.UserAgent,
		MaxRedirects: maxRedirects, Guard: cfg.guard()})
	sched, err := schedule.New(schedule.Config{Concurrency: cfg.Concurrency, ReloadInterval: cfg.ReloadInterval},
		st, member, prober, results, logger, opsSrv.Registry())
	if err != nil {
		return fail(err)
	}
	rec, err := record.New(record.Config{BatchSize: cfg.BatchSize, FlushInterval: cfg.FlushInterval, ShutdownGrace: 30 * time.Second,
		WriteTimeout: 30 * time.Second}, st, logger, opsSrv.Registry())
	if err != nil {
		return fail(err)
	}

	beats, err := heartbeat.New(cfg.heartbeat(), st, member, logger, opsSrv.Registry())
	if err != nil {
		return fail(err)
	}

	// A recorder failing to write for minutes holds every check behind it.
	opsSrv.AddLiveness("recorder", func(context.Context) error { return rec.Stuck(5 * time.Minute) })
	logger.Info("monitor starting", zap.String("region", cfg.Region), zap.Int("concurrency", cfg.Concurrency))
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		rec.Run(ctx, results) // ends when the scheduler closes results
	}()
	g.Go(func() error { sched.Run(gctx); return nil })
	g.Go(func() error { return beats.Run(gctx) })
	// The lease outlives the scheduler: shards are given up only once
	// their checks have stopped.
	leaseCtx, stopLease := context.WithCancel(context.WithoutCancel(ctx))
	leaseDone := make(chan struct{})
	go func() { member.Run(leaseCtx); close(leaseDone) }()
	err = g.Wait()
	stopLease()
	<-leaseDone
	<-recorded // in-flight checks are written before we exit
	return err
}

// cliTimeout bounds a sites command, an import of thousands of sites included.
const cliTimeout = 2 * time.Minute

// startupRetry waits for the database at start-up, until shutdown.
var startupRetry = retry.Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2, AttemptTimeout: 10 * time.Second}

func migrateCommand(ctx context.Context, args []string, _, stderr io.Writer) int {
	var cfg Config
	rest, err := cfg.parse("monitor migrate", args)
	if err == nil {
		err = errors.Join(command.NoArgs(rest), config.DatabaseURL(cfg.DatabaseURL))
	}
	if code, done := command.ConfigError(stderr, "monitor migrate", err); done {
		return code
	}
	return command.Serve(ctx, "migrate", cfg.LogLevel, cfg.LogFormat, stderr, func(ctx context.Context, logger *zap.Logger) error {
		return db.Migrate(ctx, cfg.DatabaseURL, logger)
	})
}

func sitesCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var pingURL string
	return withStore(ctx, "monitor sites", args, stderr, func(ctx context.Context, rest []string, open func() (*store.Store, error)) int {
		if err := checkPingURL(pingURL); err != nil {
			fmt.Fprintf(stderr, "monitor sites: %v\n", err)
			return cli.ExitUsage
		}
		return cli.Sites(ctx, rest, cli.Env{Open: func() (cli.SiteStore, error) { return open() }, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr,
			PingURL: pingURL})
	}, func(fs *flag.FlagSet) {
		fs.StringVar(&pingURL, "ping-url", "", "the monitors' ping listener as heartbeat jobs reach it, e.g. https://ping.example.com: printed with new ping tokens (env MONITOR_PING_URL)")
	})
}

// checkPingURL checks -ping-url: empty, or an http(s) URL of a host with at
// most a path.
func checkPingURL(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("ping-url: %w", err)
	}
	if (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.RawQuery != "" || p.Fragment != "" || p.User != nil {
		return fmt.Errorf("ping-url: %q: want http(s)://HOST[:PORT][/PATH], without credentials, query or fragment", u)
	}
	return nil
}

func incidentsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return withStore(ctx, "monitor incidents", args, stderr, func(ctx context.Context, rest []string, open func() (*store.Store, error)) int {
		return cli.Incidents(ctx, rest, func() (cli.IncidentStore, error) { return open() }, stdout, stderr)
	})
}

func channelsCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return withStore(ctx, "monitor channels", args, stderr, func(ctx context.Context, rest []string, open func() (*store.Store, error)) int {
		return cli.Channels(ctx, rest, func() (cli.ChannelStore, error) { return open() }, stdout, stderr)
	})
}

func pagesCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return withStore(ctx, "monitor pages", args, stderr, func(ctx context.Context, rest []string, open func() (*store.Store, error)) int {
		return cli.Pages(ctx, rest, func() (cli.PageStore, error) { return open() }, stdout, stderr)
	})
}

func silenceCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return withStore(ctx, "monitor silence", args, stderr, func(ctx context.Context, rest []string, open func() (*store.Store, error)) int {
		return cli.Silence(ctx, rest, func() (cli.SilenceStore, error) { return open() }, stdout, stderr)
	})
}

// withStore runs a CLI command group: -database-url (or DATABASE_URL,
// DATABASE_URL_FILE) and the group's own flags before the subcommand, a
// deadline, and a store opened only once the subcommand's input is known
// to be valid.
func withStore(ctx context.Context, name string, args []string, stderr io.Writer,
	run func(ctx context.Context, rest []string, open func() (*store.Store, error)) int, flags ...func(*flag.FlagSet)) int {
	var databaseURL string
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&databaseURL, "database-url", "", "PostgreSQL URL of sitewatch's database (env DATABASE_URL)")
	for _, register := range flags {
		register(fs)
	}
	if err := config.Parse(fs, "MONITOR", args); err != nil {
		return cli.ExitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	var pool *pgxpool.Pool
	defer func() {
		if pool != nil {
			pool.Close()
		}
	}()
	return run(ctx, fs.Args(), func() (*store.Store, error) {
		if err := config.DatabaseURL(databaseURL); err != nil {
			return nil, err
		}
		var err error
		if pool, err = config.OpenPool(ctx, databaseURL, "sitewatch-monitor-cli", 2); err != nil {
			return nil, err
		}
		return store.New(pool), nil
	})
}
