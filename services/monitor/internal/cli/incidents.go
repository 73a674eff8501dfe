package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// IncidentStore is what the incidents command needs.
type IncidentStore interface {
	Incidents(ctx context.Context, since time.Time, limit int) ([]store.Incident, error)
	Incident(ctx context.Context, id int64) (store.Incident, error)
}

// IncidentsUsage describes the incidents command.
const IncidentsUsage = `usage:
  monitor incidents list [--since 168h] [--limit 100]   open incidents and those opened since
  monitor incidents show ID                             one incident
`

// Incidents runs `incidents args...` and returns the process exit code.
// open is called once the arguments are known to be valid.
func Incidents(ctx context.Context, args []string, open func() (IncidentStore, error), stdout, stderr io.Writer) int {
	return command.Dispatch(ctx, "incidents", "", IncidentsUsage, map[string]command.Func{
		"list": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			fs := flag.NewFlagSet("incidents list", flag.ContinueOnError)
			fs.SetOutput(stderr)
			since := fs.Duration("since", 7*24*time.Hour, "also list incidents opened within this long")
			limit := fs.Int("limit", 100, "incidents listed at most")
			if err := fs.Parse(args); err != nil {
				return ExitUsage
			}
			if err := command.NoArgs(fs.Args()); err != nil || *since <= 0 || *limit < 1 {
				fmt.Fprintf(stderr, "incidents list: want --since > 0, --limit ≥ 1 and no arguments\n%s", IncidentsUsage)
				return ExitUsage
			}
			st, err := open()
			if err != nil {
				fmt.Fprintf(stderr, "incidents list: %v\n", err)
				return ExitError
			}
			list, err := st.Incidents(ctx, time.Now().Add(-*since), *limit)
			if err != nil {
				fmt.Fprintf(stderr, "incidents list: %v\n", err)
				return ExitError
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSITE\tKIND\tOPENED\tRESOLVED\tREGIONS\tCAUSE")
			for _, in := range list {
				fmt.Fprintf(tw, "%d\t%d %s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.SiteID, in.URL, in.Kind, stamp(&in.OpenedAt),
					resolved(in), strings.Join(in.Regions, ","), cause(in))
			}
			_ = tw.Flush()
			return ExitOK
		},
		"show": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) != 1 {
				fmt.Fprintf(stderr, "incidents show: want exactly one incident ID\n%s", IncidentsUsage)
				return ExitUsage
			}
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				fmt.Fprintf(stderr, "incidents show: ID %q: want a positive integer\n", args[0])
				return ExitUsage
			}
			st, err := open()
			if err == nil {
				var in store.Incident
				if in, err = st.Incident(ctx, id); err == nil {
					fmt.Fprintf(stdout, "incident %d: %s of site %d (%s)\nopened:   %s\nresolved: %s\nregions:  %s\ncause:    %s\n",
						in.ID, in.Kind, in.SiteID, in.URL, stamp(&in.OpenedAt), resolved(in), strings.Join(in.Regions, ", "), cause(in))
					return ExitOK
				}
			}
			fmt.Fprintf(stderr, "incidents show: %v\n", err)
			return ExitError
		},
	}, args, stdout, stderr)
}

func stamp(t *time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func resolved(in store.Incident) string {
	if in.ResolvedAt == nil {
		return "open"
	}
	return stamp(in.ResolvedAt) + " (" + in.Resolution + ")"
}

func cause(in store.Incident) string {
	c := in.ErrorClass
	if in.Error != "" {
		c += ": " + in.Error
	}
	return command.Escape(c)
}
