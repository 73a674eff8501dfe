// Package config fills a service's flags from the environment, then from
// the command line, so the same binary is configured by env vars in a
// container and by flags at a terminal.
package config

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/platform/logging"
	"github.com/sitewatch/sitewatch/platform/retry"
)

// shared names read without the service prefix, so one DATABASE_URL or
// KAFKA_BROKERS serves every service in a compose file.
var shared = map[string]bool{
	"database-url": true, "kafka-brokers": true, "log-level": true, "log-format": true,
	"kafka-security-protocol": true, "kafka-sasl-mechanism": true, "kafka-sasl-username": true,
	"kafka-sasl-password": true, "kafka-ca-file": true, "kafka-ca-pem": true,
	"kafka-cert-file": true, "kafka-key-file": true, "kafka-cert-pem": true, "kafka-key-pem": true,
	"kafka-key-password": true,
}

// EnvNames are the variables that set flag name for a service with prefix,
// in the order they are looked up: PREFIX_NAME, then NAME for the shared
// settings. Each may also be given as a file, NAME_FILE.
func EnvNames(prefix, name string) []string {
	names := []string{EnvName(prefix, name)}
	if shared[name] {
		names = append(names, strings.ToUpper(strings.ReplaceAll(name, "-", "_")))
	}
	return names
}

// EnvName is the variable that sets flag name for a service with prefix:
// "batch-size" with prefix "RELAY" is RELAY_BATCH_SIZE.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse sets each flag of fs from PREFIX_NAME, or for shared settings from
// NAME (e.g. DATABASE_URL), then parses args, which win over the environment.
// Every variable can also be given as a file: NAME_FILE names a file whose
// content (one trailing newline dropped) is the value, the container-secrets
// convention for passwords and URLs holding them. A bad value names the
// variable or flag it came from.
func Parse(fs *flag.FlagSet, prefix string, args []string) error {
	return parse(fs, prefix, args, withFiles(os.LookupEnv))
}

// maxSecretFile bounds a NAME_FILE: a secret, not a data file.
const maxSecretFile = 64 << 10

// withFiles makes lookup also answer NAME from the file NAME_FILE names.
func withFiles(lookup func(string) (string, bool)) func(string) (string, bool, error) {
	return func(name string) (string, bool, error) {
		v, ok := lookup(name)
		path, fromFile := lookup(name + "_FILE")
		switch {
		case ok && fromFile:
			return "", false, fmt.Errorf("environment variables %s and %s_FILE: set one, not both", name, name)
		case !fromFile:
			return v, ok, nil
		}
		f, err := os.Open(path)
		if err != nil {
			return "", false, fmt.Errorf("environment variable %s_FILE: %w", name, err)
		}
		defer func() { _ = f.Close() }()
		b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
		if err != nil {
			return "", false, fmt.Errorf("environment variable %s_FILE: reading %s: %w", name, path, err)
		}
		if len(b) > maxSecretFile {
			return "", false, fmt.Errorf("environment variable %s_FILE: %s is larger than %d KiB", name, path, maxSecretFile>>10)
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r"), true, nil
	}
}

func parse(fs *flag.FlagSet, prefix string, args []string, lookup func(string) (string, bool, error)) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		for _, env := range EnvNames(prefix, f.Name) {
			v, ok, lookErr := lookup(env)
			if lookErr != nil {
				err = lookErr
				return
			}
			if ok {
				if setErr := fs.Set(f.Name, v); setErr != nil {
					err = fmt.Errorf("environment variable %s=%q: %w", env, v, setErr)
				}
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return fs.Parse(args)
}

// Service is what every long-running service is configured with besides
// its own settings: its database, its ops endpoints and its logging. A
// service's Config embeds it.
type Service struct {
	DatabaseURL string
	OpsAddr     string
	LogLevel    string
	LogFormat   string
}

// Register adds -database-url, -ops-addr, -log-level and -log-format to fs;
// database says what the database holds, opsAddr is the default address.
func (s *Service) Register(fs *flag.FlagSet, database, opsAddr string) {
	fs.StringVar(&s.DatabaseURL, "database-url", "", "PostgreSQL URL of "+database+" (env DATABASE_URL)")
	fs.StringVar(&s.OpsAddr, "ops-addr", opsAddr, "listen address of /healthz, /readyz and /metrics")
	fs.StringVar(&s.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&s.LogFormat, "log-format", "json", "json or console")
}

// Validate reports every shared setting that cannot work, each naming its flag.
func (s Service) Validate() error {
	return errors.Join(DatabaseURL(s.DatabaseURL), s.ValidateOps())
}

// ValidateOps is Validate for a service whose databases are configured
// elsewhere (the relay's sources file): the ops address and the logging.
func (s Service) ValidateOps() error {
	var errs []error
	if _, _, err := net.SplitHostPort(s.OpsAddr); err != nil {
		errs = append(errs, fmt.Errorf("ops-addr: %w", err))
	}
	if err := logging.Validate(s.LogLevel, s.LogFormat); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DatabaseURL checks a required PostgreSQL URL given by flag database-url.
func DatabaseURL(u string) error { return DatabaseURLField("database-url", u) }

// DatabaseURLField checks a required PostgreSQL URL; errors name field.
func DatabaseURLField(field, u string) error {
	if u == "" {
		return fmt.Errorf("%s: required (env DATABASE_URL)", field)
	}
	if _, err := pgx.ParseConfig(u); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

// sessionSQL sets up each connection of a pool (see OpenPool).
//
//go:embed session.sql
var sessionSQL string

// Setting is a PostgreSQL setting each session of a pool gets (OpenPool).
type Setting struct{ Name, Value string }

// noJIT is every pool's: no JIT compiling. The services' statements take
// well under a millisecond, and one whose estimated cost passes
// jit_above_cost (the relay's claim over a partitioned outbox, whose
// never-analyzed partitions the planner takes for full ones) spent 1.5 s
// compiling for 0.3 ms of work, on every run of its generic plan.
var noJIT = Setting{"jit", "off"}

// OpenPool opens a connection pool to databaseURL for a service: named
// app in pg_stat_activity, and with room for conns connections at once (the
// service's concurrent users of the pool) unless the URL sets
// pool_max_conns itself. Each session gets noJIT and settings (session.sql),
// but for those the URL sets itself. Connecting is lazy: a database that is
// down fails the first query, not this.
func OpenPool(ctx context.Context, databaseURL, app string, conns int, settings ...Setting) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing the database URL: %w", err)
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = app
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = int32(max(conns, 1))
	}
	var names, values []string
	for _, s := range append([]Setting{noJIT}, settings...) {
		if _, set := cfg.ConnConfig.RuntimeParams[s.Name]; !set {
			names, values = append(names, s.Name), append(values, s.Value)
		}
	}
	if len(names) > 0 {
		cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
			if _, err := conn.Exec(ctx, sessionSQL, names, values); err != nil {
				return fmt.Errorf("setting up the session (%s): %w", strings.Join(names, ", "), err)
			}
			return nil
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("opening database pool: %w", err)
	}
	return pool, nil
}

// ErrSharedSessions says a connection pooler in transaction or statement
// mode stands between sitewatch and PostgreSQL.
var ErrSharedSessions = errors.New("the database connections share server sessions: a pooler in front of PostgreSQL runs in transaction or statement mode " +
	"(PgBouncer: pool_mode = transaction); sitewatch's leases are session advisory locks, and it listens for notifications: set pool_mode = session")

// CheckSessions reports whether each connection to databaseURL is a
// PostgreSQL session of its own, as the services' leases (session
// advisory locks), LISTEN and prepared statements need. Behind a pooler in
// transaction mode a connection's statements go to whichever server
// session is free, and it fails with ErrSharedSessions, marked
// retry.Permanent: waiting does not mend it.
//
// It asks two connections at once for their backend's pid, then the first
// again: own sessions answer two pids, the first one twice; a transaction
// pooler hands the first connection's idle server session to the second,
// or, rotating, another one back to the first.
func CheckSessions(ctx context.Context, databaseURL string) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("parsing the database URL: %w", err)
	}
	// An unnamed statement, sent in one round trip: a transaction pooler
	// loses named ones between round trips, and the check would fail with
	// that instead. (Not the simple protocol: pgx needs client_encoding
	// UTF8 for it, and a server may default to another.)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "sitewatch-session-check"
	}
	var conns [2]*pgx.Conn
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		for _, c := range conns {
			if c != nil {
				_ = c.Close(cctx) // a read-only check's connection
			}
		}
	}()
	for i := range conns {
		if conns[i], err = pgx.ConnectConfig(ctx, cfg); err != nil {
			return fmt.Errorf("connecting to check the database sessions: %w", err)
		}
	}
	var pids [3]int32
	for i, c := range []*pgx.Conn{conns[0], conns[1], conns[0]} {
		if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pids[i]); err != nil {
			return fmt.Errorf("checking the database sessions: %w", err)
		}
	}
	if pids[0] == pids[1] || pids[0] != pids[2] {
		return retry.Permanent(fmt.Errorf("%w (two connections answered from backends %d, %d, then %d)", ErrSharedSessions, pids[0], pids[1], pids[2]))
	}
	return nil
}
