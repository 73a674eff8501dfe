package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/services/relay/internal/relay"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

// ackAll acknowledges every message at once.
type ackAll struct{}

func (ackAll) Produce(m *kafka.Message, ch chan kafka.Event) error {
	ch <- m
	return nil
}

func (ackAll) Purge(int) error { return nil }

func TestStatusShowsTheTableItsRelaysAndWhatToFix(t *testing.T) {
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return outbox.Write(ctx, tx, outbox.Message{Topic: "a", Key: []byte("k"), Payload: []byte("1")},
			outbox.Message{Topic: "b", Payload: []byte("2")})
	}))
	_, err := pool.Exec(ctx, `UPDATE outbox SET parked_at = now(), last_error = 'too large' WHERE id = 1`)
	require.NoError(t, err)

	cmds := map[string]command.Func{"status": statusCommand}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := command.Dispatch(ctx, "relay", "run", usage, cmds, append([]string{"status"}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	t.Setenv("DATABASE_URL", dbURL)

	// sitewatch's own outbox, migrated: nothing to fix, no relay yet.
	code, out, stderr := run()
	require.Equal(t, command.ExitOK, code, "%s\n%s", out, stderr)
	require.Contains(t, out, ".outbox, partitioned by id ranges (outbox.sql), fillfactor 50")
	require.Regexp(t, `(?m)^outbox_p1 +1 to 1,000,000 +(not yet analyzed|[0-9,]+) +[0-9.]+ kB$`, out)
	require.Regexp(t, `(?m)^outbox_default +outside the ranges `, out)
	require.Contains(t, out, "relays: none holds a lane of this table now: its rows wait")
	require.Contains(t, out, "parked rows: 1 (relay parked list)")
	require.Contains(t, out, "nothing to fix")

	// A relay running: its lease connection, holding every lane.
	r, err := relay.New(ctx, relay.Config{BatchSize: 100, Workers: 2, PollInterval: time.Minute, Rebalance: 100 * time.Millisecond,
		SQLTimeout: 30 * time.Second, DrainTimeout: time.Second, MaxMessageBytes: 1000000,
		Retry:             store.Retry{Backoff: time.Hour, MaxBackoff: time.Hour, MaxAttempts: 3},
		RetentionInterval: time.Hour, RetentionBatch: 10, PartitionRows: relay.DefaultPartitionRows},
		relay.Source{Name: "default", DatabaseURL: dbURL, Table: "outbox", Topics: []string{"*"}}, ackAll{}, zaptest.NewLogger(t),
		relay.NewMetrics(prometheus.NewRegistry()))
	require.NoError(t, err)
	t.Cleanup(r.Close)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = r.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		_, out, _ = run()
		assert.Contains(c, out, "relays: 1, holding 64 of its 64 lanes")
	}, 15*time.Second, 50*time.Millisecond)
	require.Regexp(t, `(?m)^[0-9]+ +sitewatch-relay-lease +(local|[0-9a-f.:]+) +20[0-9-]+ [0-9:]+Z +64: 0-63$`, out)
	require.NotContains(t, out, "held by no relay")

	// The newest partition above 50: named, and the exit status says so.
	var newest string
	require.NoError(t, pool.QueryRow(ctx, `SELECT part::text FROM outbox_partitions('outbox')
		WHERE end_id IS NOT NULL ORDER BY first_id DESC LIMIT 1`).Scan(&newest))
	_, err = pool.Exec(ctx, "ALTER TABLE "+newest+" SET (fillfactor = 80)")
	require.NoError(t, err)
	code, out, stderr = run()
	require.Equal(t, command.ExitError, code)
	require.Contains(t, out, "to fix:\n  - the outbox table's newest partition, which the next ones copy, has a fillfactor of 80, above 50")
	require.Contains(t, stderr, "relay status: source default: the table has something to fix (listed above)")

	// Another team's table of the earlier layout: one table, and how to convert it.
	schema := outboxtest.SchemaWith(t, outboxtest.LegacyDDL)
	code, out, _ = run("-table", schema+".outbox")
	require.Equal(t, command.ExitError, code)
	require.Contains(t, out, "table "+schema+".outbox, one table, the earlier layout, fillfactor 80")
	require.Regexp(t, `(?m)^`+schema+`\.outbox +all +`, out)
	require.Contains(t, out, "relays: none holds a lane")
	require.Contains(t, out, "CALL outbox_partition(table)")

	// No such table: the error names it.
	code, _, stderr = run("-table", "nosuch.outbox")
	require.Equal(t, command.ExitError, code)
	require.Contains(t, stderr, `looking up outbox table "nosuch"."outbox"`)
	code, _, stderr = run("extra")
	require.Equal(t, command.ExitUsage, code)
	require.Contains(t, stderr, `unexpected arguments ["extra"]`)

	// Several sources: each is shown, one's failure does not hide the
	// others', and -source picks one.
	file := filepath.Join(t.TempDir(), "sources.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`sources:
  - name: gone
    database_url: `+dbURL+`
    table: nosuch.outbox
    topics: ["*"]
  - name: orders
    database_url: `+dbURL+`
    table: `+schema+`.outbox
    topics: ["*"]
`), 0o600))
	code, out, stderr = run("-sources-file", file)
	require.Equal(t, command.ExitError, code)
	require.Contains(t, stderr, `relay status: source gone: looking up outbox table "nosuch"."outbox"`)
	require.Contains(t, out, "source orders: table "+schema+".outbox, one table")
	code, out, stderr = run("-sources-file", file, "-source", "orders")
	require.Equal(t, command.ExitError, code, "the earlier layout is something to fix")
	require.NotContains(t, stderr, "source gone")
	require.Contains(t, out, "source orders:")
	code, _, stderr = run("-sources-file", file, "-source", "billing")
	require.Equal(t, command.ExitUsage, code)
	require.Contains(t, stderr, `source "billing": no such source`)
}

func TestRanges(t *testing.T) {
	require.Equal(t, "", ranges(nil))
	require.Equal(t, "7", ranges([]int{7}))
	require.Equal(t, "0-5, 9, 12-13", ranges([]int{0, 1, 2, 3, 4, 5, 9, 12, 13}))
	require.Equal(t, "1,000,000", thousands(1000000))
	require.Equal(t, "-9,223,372,036,854,775,808", thousands(-9223372036854775808))
	require.Equal(t, "999", thousands(999))
	require.Equal(t, "512 bytes", sizeText(512))
	require.Equal(t, "1.5 MB", sizeText(1536*1024))
}
