// Package command is how every sitewatch binary starts: subcommands chosen
// by the first argument, a context cancelled by SIGINT or SIGTERM, and the
// run-until-signal life of a service with its logger.
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/logging"
)

// Exit codes shared by every binary.
const (
	ExitOK    = 0
	ExitError = 1 // the command was fine but failed
	ExitUsage = 2 // the command line or configuration is wrong
)

// Func runs one subcommand with the arguments after its name and returns
// the process exit code.
type Func func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// Main runs the subcommand named by the first argument, or def when the
// first argument is a flag or missing, and exits with its code.
func Main(name, def, usage string, cmds map[string]Func) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := Dispatch(ctx, name, def, usage, cmds, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Dispatch is Main without the process: it returns the exit code. It also
// dispatches a group's subcommands ("monitor sites add", "relay parked
// list"): name is then the group's, and def "" means the group needs a
// subcommand.
func Dispatch(ctx context.Context, name, def, usage string, cmds map[string]Func, args []string, stdout, stderr io.Writer) int {
	cmd := def
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	if cmd == "" && len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		cmd = "help"
	}
	switch cmd {
	case "help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	case "":
		fmt.Fprintf(stderr, "%s: a subcommand is required\n%s", name, usage)
		return ExitUsage
	}
	f, ok := cmds[cmd]
	if !ok {
		fmt.Fprintf(stderr, "%s: unknown command %q\n%s", name, cmd, usage)
		return ExitUsage
	}
	return f(ctx, args, stdout, stderr)
}

// Serve runs a long-running service until ctx ends or run fails. A failure
// caused by the shutdown itself (ctx cancelled while starting) is a clean exit.
func Serve(ctx context.Context, name, logLevel, logFormat string, stderr io.Writer, run func(context.Context, *zap.Logger) error) int {
	logger, err := logging.New(logLevel, logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitUsage
	}
	defer func() { _ = logger.Sync() }()
	if err := run(ctx, logger); err != nil && ctx.Err() == nil {
		logger.Error(name+" stopped", zap.Error(err))
		return ExitError
	}
	logger.Info(name + " stopped")
	return ExitOK
}

// ConfigError reports the outcome of loading a command's configuration:
// done is false when err is nil and the command should go on; otherwise
// code is the exit code (0 for -h) and the error has been printed.
func ConfigError(stderr io.Writer, name string, err error) (code int, done bool) {
	switch {
	case err == nil:
		return ExitOK, false
	case errors.Is(err, flag.ErrHelp):
		return ExitOK, true
	default:
		fmt.Fprintf(stderr, "%s: invalid configuration:\n%v\n", name, err)
		return ExitUsage, true
	}
}

// Group is the Func of a command group whose subcommands, named subs,
// all run through one function that is told which one it is: `relay
// parked list|requeue`, `sink dlq list|replay`.
func Group(name, usage string, subs []string, run func(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) int) Func {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		cmds := make(map[string]Func, len(subs))
		for _, sub := range subs {
			cmds[sub] = func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
				return run(ctx, sub, args, stdout, stderr)
			}
		}
		return Dispatch(ctx, name, "", usage, cmds, args, stdout, stderr)
	}
}

// NoArgs is the error for positional arguments a command does not take.
func NoArgs(rest []string) error {
	if len(rest) > 0 {
		return fmt.Errorf("unexpected arguments %q", rest)
	}
	return nil
}

// Escape makes control characters visible for a terminal: a text from a
// remote server (an error, a URL) must not move the cursor or recolour the
// screen. C0 controls, DEL and C1 controls become '?'.
func Escape(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || (r >= 0x7f && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// IDs parses positional arguments that are row ids: positive integers.
func IDs(args []string) ([]int64, error) {
	ids := make([]int64, 0, len(args))
	for _, a := range args {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("ID %q: want a positive integer", a)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Healthcheck is the `healthcheck` subcommand of every binary: it asks the
// service's own /healthz (on -ops-addr, default defaultAddr; an empty host
// is 127.0.0.1) and exits 0 if it answers 200, 1 otherwise. Distroless
// images have no shell or curl, so a container health check runs this.
func Healthcheck(defaultAddr string) Func {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
		fs.SetOutput(stderr)
		addr := fs.String("ops-addr", defaultAddr, "ops address of the service to check")
		if err := fs.Parse(args); err != nil {
			return ExitUsage
		}
		host, port, err := net.SplitHostPort(*addr)
		if err != nil || fs.NArg() > 0 {
			fmt.Fprintf(stderr, "healthcheck: -ops-addr %q: want host:port and no arguments\n", *addr)
			return ExitUsage
		}
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
		if err != nil {
			fmt.Fprintf(stderr, "healthcheck: %v\n", err)
			return ExitError
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintf(stderr, "healthcheck: %v\n", err)
			return ExitError
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			fmt.Fprintf(stderr, "healthcheck: %s: %s\n", resp.Status, strings.TrimSpace(string(body)))
			return ExitError
		}
		fmt.Fprintln(stdout, "healthy")
		return ExitOK
	}
}
