// Package cli is the monitor's `sites` command: add, list and remove the
// sites the monitor checks. Every input is validated before anything is
// written, and errors name the field at fault.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1 // the command was fine but failed (database down, no such site)
	ExitUsage = 2 // the command or its input is wrong; nothing was written
)

// SiteStore is what the sites command needs.
type SiteStore interface {
	AddSite(ctx context.Context, s site.Site) (site.Site, error)
	Sites(ctx context.Context, enabledOnly bool) ([]site.Site, error)
	RemoveSite(ctx context.Context, id int64) error
}

// Usage describes the sites command.
const Usage = `usage:
  monitor sites add URL [--regex RE] [--interval DURATION] [--timeout DURATION] [--method METHOD] [--topic TOPIC] [--disabled]
  monitor sites list
  monitor sites remove ID
`

// Sites runs `sites args...` and returns the process exit code. open is
// called only once the input is known to be valid.
func Sites(ctx context.Context, args []string, open func() (SiteStore, error), stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, Usage)
		return ExitUsage
	}
	switch args[0] {
	case "add":
		return add(ctx, args[1:], open, stdout, stderr)
	case "list", "ls":
		return list(ctx, args[1:], open, stdout, stderr)
	case "remove", "rm":
		return remove(ctx, args[1:], open, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, Usage)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "sites: unknown command %q\n%s", args[0], Usage)
		return ExitUsage
	}
}

func add(ctx context.Context, args []string, open func() (SiteStore, error), stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sites add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	regex := fs.String("regex", "", "RE2 regular expression the body must match")
	interval := fs.String("interval", site.DefaultInterval.String(), "time between checks, e.g. 30s, 5m")
	timeout := fs.String("timeout", "", "time a check may take, body included (default 10s, at most the interval)")
	method := fs.String("method", site.DefaultMethod, "HTTP method")
	topic := fs.String("topic", site.DefaultTopic, "Kafka topic for this site's results")
	disabled := fs.Bool("disabled", false, "add the site without checking it yet")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return ExitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "sites add: want exactly one URL, got %d arguments\n%s", len(pos), Usage)
		return ExitUsage
	}
	s := site.Site{URL: pos[0], Regex: *regex, Method: strings.ToUpper(*method), Topic: *topic, Enabled: !*disabled}
	var errs []error
	if s.Interval, err = parseDuration("interval", *interval); err != nil {
		errs = append(errs, err)
	}
	if *timeout != "" {
		if s.Timeout, err = parseDuration("timeout", *timeout); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		s = s.WithDefaults()
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(stderr, "sites add: invalid site, nothing written:\n  %s\n",
			strings.ReplaceAll(errors.Join(errs...).Error(), "\n", "\n  "))
		return ExitUsage
	}
	st, err := open()
	if err != nil {
		fmt.Fprintf(stderr, "sites add: %v\n", err)
		return ExitError
	}
	added, err := st.AddSite(ctx, s)
	if err != nil {
		fmt.Fprintf(stderr, "sites add: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "added site %d: %s every %s\n", added.ID, added.URL, added.Interval)
	return ExitOK
}

func list(ctx context.Context, args []string, open func() (SiteStore, error), stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintf(stderr, "sites list: takes no arguments\n%s", Usage)
		return ExitUsage
	}
	st, err := open()
	if err != nil {
		fmt.Fprintf(stderr, "sites list: %v\n", err)
		return ExitError
	}
	sites, err := st.Sites(ctx, false)
	if err != nil {
		fmt.Fprintf(stderr, "sites list: %v\n", err)
		return ExitError
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURL\tMETHOD\tINTERVAL\tTIMEOUT\tREGEX\tTOPIC\tENABLED")
	for _, s := range sites {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%t\n", s.ID, s.URL, s.Method, s.Interval, s.Timeout,
			orDash(s.Regex), s.Topic, s.Enabled)
	}
	_ = tw.Flush()
	return ExitOK
}

func remove(ctx context.Context, args []string, open func() (SiteStore, error), stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintf(stderr, "sites remove: want exactly one site ID\n%s", Usage)
		return ExitUsage
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id <= 0 {
		fmt.Fprintf(stderr, "sites remove: ID %q: want a positive integer (see `monitor sites list`)\n", args[0])
		return ExitUsage
	}
	st, err := open()
	if err != nil {
		fmt.Fprintf(stderr, "sites remove: %v\n", err)
		return ExitError
	}
	if err := st.RemoveSite(ctx, id); err != nil {
		fmt.Fprintf(stderr, "sites remove: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "removed site %d\n", id)
	return ExitOK
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("add URL --regex R" as well as "add --regex R URL").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func parseDuration(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, &site.FieldError{Field: field, Value: v, Msg: "not a duration; use a number with a unit, e.g. 30s, 5m, 1h"}
	}
	return d, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
