// Package config fills a service's flags from the environment, then from
// the command line, so the same binary is configured by env vars in a
// container and by flags at a terminal.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/platform/logging"
)

// shared names read without the service prefix, so one DATABASE_URL or
// KAFKA_BROKERS serves every service in a compose file.
var shared = map[string]bool{
	"database-url": true, "kafka-brokers": true, "log-level": true, "log-format": true,
	"kafka-security-protocol": true, "kafka-sasl-mechanism": true, "kafka-sasl-username": true,
	"kafka-sasl-password": true, "kafka-ca-file": true,
}

// EnvName is the variable that sets flag name for a service with prefix:
// "batch-size" with prefix "RELAY" is RELAY_BATCH_SIZE.
func EnvName(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Parse sets each flag of fs from PREFIX_NAME, or for shared settings from
// NAME (e.g. DATABASE_URL), then parses args, which win over the environment.
// A bad value names the variable or flag it came from.
func Parse(fs *flag.FlagSet, prefix string, args []string) error {
	return parse(fs, prefix, args, os.LookupEnv)
}

func parse(fs *flag.FlagSet, prefix string, args []string, lookup func(string) (string, bool)) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		names := []string{EnvName(prefix, f.Name)}
		if shared[f.Name] {
			names = append(names, strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")))
		}
		for _, env := range names {
			if v, ok := lookup(env); ok {
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
