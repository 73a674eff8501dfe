package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/lease"
	"github.com/sitewatch/sitewatch/services/relay/internal/relay"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

// statusTimeout bounds relay status, connection included.
const statusTimeout = 30 * time.Second

// errToFix is status's answer when it names something to mend: the
// command exits 1, so that a deploy can be gated on it.
var errToFix = errors.New("the table has something to fix (listed above)")

// statusCommand runs `relay status`: a source's outbox table as the relay
// sees it (layout, partitions and their size, parked rows), which relays
// lease its lanes now, and what to fix.
func statusCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg Config
	fs := flag.NewFlagSet("relay status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg.register(fs)
	source := fs.String("source", "", "source name (every source if not given)")
	if err := configParse(fs, args); err != nil {
		return command.ExitUsage
	}
	if cfg.Topics == "" {
		cfg.Topics = "*" // the table is shown whatever its topics
	}
	srcs, err := cfg.loadSources()
	if err == nil {
		err = command.NoArgs(fs.Args())
	}
	if err == nil && *source != "" {
		var src relay.Source
		src, err = pickSource(srcs, *source)
		srcs = []relay.Source{src}
	}
	if err != nil {
		fmt.Fprintf(stderr, "relay status: %v\n", err)
		return command.ExitUsage
	}
	code := command.ExitOK
	for i, src := range srcs {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		// One source's failure does not hide the others'.
		if err := status(ctx, src, stdout); err != nil {
			fmt.Fprintf(stderr, "relay status: source %s: %v\n", src.Name, err)
			code = command.ExitError
		}
	}
	return code
}

// status prints src's table, its relays and what to fix; errToFix if
// there is something.
func status(ctx context.Context, src relay.Source, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	st, conn, info, err := openSource(ctx, src)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	sizes, err := st.Sizes(ctx, conn)
	if err != nil {
		return err
	}
	var parts []store.Partition
	if info.Partitioned {
		if parts, err = st.Partitions(ctx, conn); err != nil {
			return err
		}
	}
	members, err := lease.Members(ctx, conn, relay.LaneLease(src, info))
	if err != nil {
		return err
	}
	parked, err := st.ParkedCount(ctx, conn)
	if err != nil {
		return err
	}

	layout := "partitioned by id ranges (outbox.sql)"
	if !info.Partitioned {
		layout = "one table, the earlier layout"
	}
	fmt.Fprintf(stdout, "source %s: table %s.%s, %s, fillfactor %d\n\n", src.Name, command.Escape(info.Schema), command.Escape(info.Name), layout, info.Fillfactor)

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	if info.Partitioned {
		fmt.Fprintln(tw, "PARTITION\tIDS\tROWS (ESTIMATED)\tSIZE")
	} else {
		fmt.Fprintln(tw, "TABLE\tIDS\tROWS (ESTIMATED)\tSIZE")
	}
	var total int64
	row := func(name, ids string, size store.Size) {
		rows := "not yet analyzed"
		if size.Rows >= 0 {
			rows = thousands(size.Rows)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", command.Escape(name), ids, rows, sizeText(size.Bytes))
		total += size.Bytes
	}
	if info.Partitioned {
		for _, p := range parts {
			ids := "outside the ranges"
			switch {
			case !p.Default && p.First == math.MinInt64:
				ids = "up to " + thousands(p.End-1)
			case !p.Default:
				ids = thousands(p.First) + " to " + thousands(p.End-1)
			}
			row(p.Name, ids, sizes[p.Name])
		}
	} else {
		for name, size := range sizes { // the table itself
			row(name, "all", size)
		}
	}
	fmt.Fprintf(tw, "\t\tin all\t%s\n", sizeText(total))
	if err := tw.Flush(); err != nil {
		return err
	}

	held := 0
	for _, m := range members {
		held += len(m.Shards)
	}
	switch {
	case len(members) == 0:
		fmt.Fprintf(stdout, "\nrelays: none holds a lane of this table now: its rows wait\n")
	default:
		fmt.Fprintf(stdout, "\nrelays: %d, holding %d of its %d lanes\n", len(members), held, relay.Lanes)
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PID\tAPPLICATION\tCLIENT\tSINCE\tLANES")
		for _, m := range members {
			since := "?"
			if !m.Since.IsZero() {
				since = m.Since.UTC().Format("2006-01-02 15:04:05Z")
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d: %s\n", m.PID, command.Escape(orUnknown(m.Application)), command.Escape(orUnknown(m.Client)),
				since, len(m.Shards), ranges(m.Shards))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if held < relay.Lanes {
			fmt.Fprintf(stdout, "%d lanes held by no relay: their rows wait until a relay takes them (each rebalance)\n", relay.Lanes-held)
		}
	}
	fmt.Fprintf(stdout, "\nparked rows: %s", thousands(parked))
	if parked > 0 {
		fmt.Fprint(stdout, " (relay parked list)")
	}
	fmt.Fprintln(stdout)

	advice := relay.TableAdvice(info)
	if len(advice) == 0 {
		fmt.Fprintln(stdout, "\nnothing to fix")
		return nil
	}
	fmt.Fprintln(stdout, "\nto fix:")
	for _, a := range advice {
		fmt.Fprintf(stdout, "  - %s\n", a)
	}
	return errToFix
}

// orUnknown is s, or "?" for what pg_stat_activity hides from this role.
func orUnknown(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

// ranges writes sorted numbers as runs: 0-5, 9, 12-20.
func ranges(ns []int) string {
	var b strings.Builder
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(ns[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(ns[j]))
		}
		i = j + 1
	}
	return b.String()
}

// thousands writes n with commas between groups of three digits.
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "-" + s
	}
	return s
}

// sizeText writes a size in kB, MB or GB (powers of 1024, as PostgreSQL's
// pg_size_pretty).
func sizeText(n int64) string {
	units := []string{"bytes", "kB", "MB", "GB", "TB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}
