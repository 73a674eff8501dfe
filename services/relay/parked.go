package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/services/relay/internal/relay"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

func configParse(fs *flag.FlagSet, args []string) error { return config.Parse(fs, "RELAY", args) }

func pickSource(srcs []relay.Source, name string) (relay.Source, error) {
	if name == "" {
		if len(srcs) == 1 {
			return srcs[0], nil
		}
		names := make([]string, len(srcs))
		for i, s := range srcs {
			names[i] = s.Name
		}
		return relay.Source{}, fmt.Errorf("source: required with several sources (%s)", strings.Join(names, ", "))
	}
	for _, s := range srcs {
		if s.Name == name {
			return s, nil
		}
	}
	return relay.Source{}, fmt.Errorf("source %q: no such source", name)
}

// parkedTimeout bounds a parked list or requeue, connection included.
const parkedTimeout = 30 * time.Second

// parked lists or requeues the parked rows of src.
func parked(ctx context.Context, sub string, src relay.Source, ids []int64, all bool, limit int, stdout io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, parkedTimeout)
	defer cancel()
	st, conn, _, err := openSource(ctx, src)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if sub == "requeue" {
		n, err := st.Requeue(ctx, conn, ids, all)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "requeued %d parked rows of source %s\n", n, src.Name)
		return nil
	}
	rows, err := st.Parked(ctx, conn, limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tEVENT ID\tTOPIC\tKEY\tATTEMPTS\tPARKED AT\tLAST ERROR")
	for _, r := range rows {
		// Keys and errors are other teams' bytes and Kafka's words: escaped.
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.EventID, command.Escape(r.Topic), command.Escape(r.Key), r.Attempts,
			r.ParkedAt.UTC().Format("2006-01-02 15:04:05"), command.Escape(r.LastError))
	}
	return tw.Flush()
}

// openSource connects to src's database and resolves its table and layout,
// for the commands that read or change it once: the caller closes conn.
func openSource(ctx context.Context, src relay.Source) (*store.Store, *pgx.Conn, store.TableInfo, error) {
	st, err := store.New(src.Table)
	if err != nil {
		return nil, nil, store.TableInfo{}, err
	}
	conn, err := pgx.Connect(ctx, src.DatabaseURL)
	if err != nil {
		return nil, nil, store.TableInfo{}, fmt.Errorf("connecting to source %s: %w", src.Name, err)
	}
	info, err := st.Info(ctx, conn)
	if err != nil {
		_ = conn.Close(context.Background())
		return nil, nil, store.TableInfo{}, err
	}
	return st, conn, info, nil
}
