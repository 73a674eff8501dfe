// Package logging builds the zap logger every service uses.
package logging

import (
	"errors"
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Validate reports a level or format New would refuse, naming the flag.
func Validate(level, format string) error {
	var errs []error
	if _, err := zapcore.ParseLevel(level); err != nil {
		errs = append(errs, fmt.Errorf("log-level: %q: want debug, info, warn or error", level))
	}
	if format != "json" && format != "console" {
		errs = append(errs, fmt.Errorf("log-format: %q: want json or console", format))
	}
	return errors.Join(errs...)
}

// New returns a logger writing one line per entry to stderr, as JSON
// (format "json", for containers) or human-readable text ("console").
func New(level, format string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	var cfg zap.Config
	switch format {
	case "json":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.DisableStacktrace = true
	default:
		return nil, fmt.Errorf("log format %q: want json or console", format)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Sampling = nil           // every line counts when diagnosing an outbox
	cfg.DisableStacktrace = true // errors say what failed; stack traces are noise in service logs
	logger, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("building logger: %w", err)
	}
	return logger, nil
}
