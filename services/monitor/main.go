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
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/platform/logging"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/services/monitor/internal/cli"
	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/record"
	"github.com/sitewatch/sitewatch/services/monitor/internal/schedule"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

const usage = `usage: monitor [run|migrate|sites] [flags]

  run       check the enabled sites until SIGTERM (the default)
  migrate   apply the database migrations and exit
  sites     add, update, list, show, remove, import and export sites (monitor sites help)

Flags and their MONITOR_* environment variables: monitor run -h
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return runCommand(ctx, args, stderr)
	case "migrate":
		return migrateCommand(ctx, args, stderr)
	case "sites":
		return sitesCommand(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "monitor: unknown command %q\n%s", cmd, usage)
		return 2
	}
}

func runCommand(ctx context.Context, args []string, stderr io.Writer) int {
	var cfg Config
	rest, err := cfg.parse("monitor run", args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("unexpected arguments %q", rest)
	}
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "monitor: invalid configuration:\n%v\n", err)
		return 2
	}
	logger, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(stderr, "monitor: %v\n", err)
		return 2
	}
	defer func() { _ = logger.Sync() }()
	if err := run(ctx, cfg, logger); err != nil && ctx.Err() == nil {
		logger.Error("monitor stopped", zap.Error(err))
		return 1
	}
	logger.Info("monitor stopped")
	return 0
}

func run(ctx context.Context, cfg Config, logger *zap.Logger) error {
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("opening database pool: %w", err)
	}
	defer pool.Close()
	st := store.New(pool)
	opsSrv := ops.New(cfg.OpsAddr, logger)
	opsSrv.AddReadiness("postgres", pool.Ping)

	results := make(chan probe.Result, 4*cfg.BatchSize)
	prober := probe.New(probe.Config{MaxBodyBytes: cfg.MaxBodyBytes, UserAgent: cfg.UserAgent,
		MaxRedirects: maxRedirects, BlockPrivate: cfg.BlockPrivate})
	sched := schedule.New(schedule.Config{Concurrency: cfg.Concurrency, ReloadInterval: cfg.ReloadInterval},
		st, prober, results, logger, opsSrv.Registry())
	rec := record.New(record.Config{BatchSize: cfg.BatchSize, FlushInterval: cfg.FlushInterval, ShutdownGrace: 30 * time.Second},
		st, logger, opsSrv.Registry())

	logger.Info("monitor starting", zap.Int("concurrency", cfg.Concurrency))
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		rec.Run(ctx, results) // ends when the scheduler closes results
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return opsSrv.Run(gctx) })
	g.Go(func() error { return sched.Run(gctx) })
	err = g.Wait()
	<-recorded // in-flight checks are written before we exit
	return err
}

func migrateCommand(ctx context.Context, args []string, stderr io.Writer) int {
	var cfg Config
	rest, err := cfg.parse("monitor migrate", args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && len(rest) > 0 {
		err = fmt.Errorf("unexpected arguments %q", rest)
	}
	if err == nil {
		err = validateDatabaseURL(cfg.DatabaseURL)
	}
	if err != nil {
		fmt.Fprintf(stderr, "monitor migrate: %v\n", err)
		return 2
	}
	logger, err := logging.New(cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(stderr, "monitor migrate: %v\n", err)
		return 2
	}
	defer func() { _ = logger.Sync() }()
	if err := db.Migrate(ctx, cfg.DatabaseURL, logger); err != nil {
		logger.Error("migration failed", zap.Error(err))
		return 1
	}
	return 0
}

func sitesCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	// The database URL comes from DATABASE_URL or a leading -database-url flag.
	var cfg Config
	fs := flag.NewFlagSet("monitor sites", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.DatabaseURL, "database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL (env DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		return cli.ExitUsage
	}
	var pool *pgxpool.Pool
	defer func() {
		if pool != nil {
			pool.Close()
		}
	}()
	open := func() (cli.SiteStore, error) {
		if err := validateDatabaseURL(cfg.DatabaseURL); err != nil {
			return nil, err
		}
		var err error
		pool, err = pgxpool.New(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("opening database pool: %w", err)
		}
		return store.New(pool), nil
	}
	return cli.Sites(ctx, fs.Args(), cli.Env{Open: open, Stdin: os.Stdin, Stdout: stdout, Stderr: stderr})
}
