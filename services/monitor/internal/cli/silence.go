package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// SilenceStore is what the silence command needs.
type SilenceStore interface {
	AddSilence(ctx context.Context, site int64, from, until time.Time, reason string) (int64, error)
	Silences(ctx context.Context) ([]store.Silence, error)
	RemoveSilence(ctx context.Context, id int64) error
}

// SilenceUsage describes the silence command.
const SilenceUsage = `usage:
  monitor silence add --site ID [--from 2026-12-01T04:00:00Z] (--until 2026-12-01T06:00:00Z | --for 2h) [--reason TEXT]
  monitor silence list
  monitor silence remove ID         end a silence now

During a silence (a maintenance window) incidents are still recorded; their notifications wait
until it ends, and one opened and resolved within it is never sent. A silence may start later
(--from; --for counts from it): public status pages announce it, with its reason, as maintenance
ahead and while it runs.
`

// Silence runs `silence args...` and returns the process exit code.
func Silence(ctx context.Context, args []string, open func() (SilenceStore, error), stdout, stderr io.Writer) int {
	run := func(cmd string, do func(SilenceStore) error) int {
		st, err := open()
		if err == nil {
			err = do(st)
		}
		if err != nil {
			fmt.Fprintf(stderr, "silence %s: %v\n", cmd, err)
			return ExitError
		}
		return ExitOK
	}
	usage := func(cmd string, err error) int {
		fmt.Fprintf(stderr, "silence %s: %v\n%s", cmd, err, SilenceUsage)
		return ExitUsage
	}
	return command.Dispatch(ctx, "silence", "", SilenceUsage, map[string]command.Func{
		"add": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			fs := flag.NewFlagSet("silence add", flag.ContinueOnError)
			fs.SetOutput(stderr)
			site := fs.Int64("site", 0, "ID of the site to silence")
			fromRaw := fs.String("from", "", "start of the silence, RFC 3339 (default: now)")
			untilRaw := fs.String("until", "", "end of the silence, RFC 3339 (2026-12-01T06:00:00Z)")
			forDur := fs.Duration("for", 0, "length of the silence from its start (2h)")
			reason := fs.String("reason", "", "why, for whoever looks (public status pages show it)")
			if err := fs.Parse(args); err != nil {
				return ExitUsage
			}
			var errs []error
			if *site <= 0 {
				errs = append(errs, fmt.Errorf("site %d: want a positive site ID", *site))
			}
			from := time.Now()
			if *fromRaw != "" {
				var err error
				if from, err = time.Parse(time.RFC3339, *fromRaw); err != nil {
					errs = append(errs, fmt.Errorf("from %q: want RFC 3339, e.g. 2026-12-01T04:00:00Z", *fromRaw))
				}
			}
			var until time.Time
			switch {
			case (*untilRaw == "") == (*forDur == 0):
				errs = append(errs, errors.New("give one of --until TIME or --for DURATION"))
			case *forDur < 0:
				errs = append(errs, fmt.Errorf("for %s: must be positive", *forDur))
			case *forDur > 0:
				until = from.Add(*forDur)
			default:
				var err error
				if until, err = time.Parse(time.RFC3339, *untilRaw); err != nil {
					errs = append(errs, fmt.Errorf("until %q: want RFC 3339, e.g. 2026-12-01T06:00:00Z", *untilRaw))
				} else if !until.After(time.Now()) {
					errs = append(errs, fmt.Errorf("until %q: is in the past", *untilRaw))
				} else if !until.After(from) {
					errs = append(errs, fmt.Errorf("until %q: is not after from %q", *untilRaw, *fromRaw))
				}
			}
			if err := errors.Join(append(errs, command.NoArgs(fs.Args()))...); err != nil {
				return usage("add", err)
			}
			return run("add", func(st SilenceStore) error {
				id, err := st.AddSilence(ctx, *site, from, until, *reason)
				if err == nil {
					fmt.Fprintf(stdout, "silence %d: site %d from %s until %s\n", id, *site, from.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339))
				}
				return err
			})
		},
		"list": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) > 0 {
				return usage("list", errors.New("takes no arguments"))
			}
			return run("list", func(st SilenceStore) error {
				list, err := st.Silences(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSITE\tFROM\tUNTIL\tREASON")
				for _, s := range list {
					fmt.Fprintf(tw, "%d\t%d %s\t%s\t%s\t%s\n", s.ID, s.SiteID, s.URL, stamp(&s.StartsAt), stamp(&s.Until), command.Escape(s.Reason))
				}
				return tw.Flush()
			})
		},
		"remove": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) != 1 {
				return usage("remove", errors.New("want exactly one silence ID"))
			}
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return usage("remove", fmt.Errorf("ID %q: want a positive integer", args[0]))
			}
			return run("remove", func(st SilenceStore) error {
				if err := st.RemoveSilence(ctx, id); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "removed silence %d\n", id)
				return nil
			})
		},
	}, args, stdout, stderr)
}
