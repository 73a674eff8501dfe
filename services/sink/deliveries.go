package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/services/sink/internal/notifier"
)

const deliveriesUsage = `usage:
  sink deliveries list [-status failed|pending|delivered|silenced] [-channel NAME] [-limit N]
  sink deliveries retry ID...              send failed deliveries again, attempts counted afresh
  sink deliveries retry -all [-channel NAME]

A delivery is one incident notification to one channel. One that failed for good (after
-notify-max-attempts) keeps its reason; fix the receiver or the channel (monitor channels
update), then retry. The database is -database-url or DATABASE_URL (or DATABASE_URL_FILE).
`

// deliveriesTimeout bounds a deliveries command, connection included.
const deliveriesTimeout = 30 * time.Second

var deliveriesCommand = command.Group("sink deliveries", deliveriesUsage, []string{"list", "retry"}, deliveriesSubcommand)

func deliveriesSubcommand(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "sink deliveries %s: %v\n", sub, err)
		return code
	}
	var databaseURL string
	fs := flag.NewFlagSet("sink deliveries "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&databaseURL, "database-url", "", "PostgreSQL URL of the sink's database (env DATABASE_URL)")
	channel := fs.String("channel", "", "only this channel's deliveries")
	var status *string
	var limit, all = new(int), new(bool)
	if sub == "list" {
		status = fs.String("status", "", "only deliveries in this status: failed, pending, delivered or silenced")
		limit = fs.Int("limit", 100, "deliveries to list, newest first")
	} else {
		all = fs.Bool("all", false, "retry every failed delivery (of -channel, when given)")
	}
	if err := config.Parse(fs, "SINK", args); err != nil {
		return command.ExitUsage
	}
	ids, err := command.IDs(fs.Args())
	switch {
	case err != nil:
	case sub == "list" && fs.NArg() > 0:
		err = command.NoArgs(fs.Args())
	case sub == "list" && *limit < 1:
		err = fmt.Errorf("limit: %d: want at least 1", *limit)
	case sub == "list" && *status != "" && !strings.Contains(" failed pending delivered silenced ", " "+*status+" "):
		err = fmt.Errorf("status: %q: want failed, pending, delivered or silenced", *status)
	case sub == "retry" && len(ids) == 0 && !*all:
		err = errors.New("give the IDs of the deliveries to retry, or -all")
	case sub == "retry" && len(ids) > 0 && *all:
		err = errors.New("give IDs or -all, not both")
	}
	if err == nil {
		err = config.DatabaseURL(databaseURL)
	}
	if err != nil {
		return fail(command.ExitUsage, err)
	}
	ctx, cancel := context.WithTimeout(ctx, deliveriesTimeout)
	defer cancel()
	pool, err := config.OpenPool(ctx, databaseURL, "sitewatch-sink-cli", 1)
	if err != nil {
		return fail(command.ExitError, err)
	}
	defer pool.Close()
	if sub == "retry" {
		done, err := notifier.Requeue(ctx, pool, ids, *all, *channel)
		if err != nil {
			return fail(command.ExitError, err)
		}
		fmt.Fprintf(stdout, "%d failed deliveries sent again\n", len(done))
		if missing := len(ids) - len(done); missing > 0 {
			return fail(command.ExitError, fmt.Errorf("%d of the IDs given are not failed deliveries (see sink deliveries list -status failed)", missing))
		}
		return command.ExitOK
	}
	ds, err := notifier.List(ctx, pool, notifier.Filter{Status: *status, Channel: *channel, Limit: *limit})
	if err != nil {
		return fail(command.ExitError, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tCHANNEL\tEVENT\tSITE\tSTATUS\tATTEMPTS\tLAST ERROR")
	for _, d := range ds {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d %s\t%s\t%d\t%s\n", d.ID, d.CreatedAt.UTC().Format(time.RFC3339), d.Channel,
			strings.TrimPrefix(d.EventType, "io.sitewatch.incident."), d.SiteID, command.Escape(d.URL), d.Status, d.Attempts, command.Escape(d.LastError))
	}
	if err := tw.Flush(); err != nil {
		return fail(command.ExitError, err)
	}
	return command.ExitOK
}
