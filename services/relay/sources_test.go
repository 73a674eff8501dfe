package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
)

func TestOneProcessServesSeveralSources(t *testing.T) {
	ctx := context.Background()
	cfg := kafkatest.Config(t)
	orders, audits := kafkatest.NewTopic(t, 1), kafkatest.NewTopic(t, 1)

	// Two teams, two outboxes (here: two schemas of one database; the
	// second with a table name of its own, created from outbox.DDL).
	shopURL, billingURL := dbtest.New(t), dbtest.NewSchema(t)
	shop, billing := dbtest.Pool(t, shopURL), dbtest.Pool(t, billingURL)
	_, err := billing.Exec(ctx, outbox.DDL+"; ALTER TABLE outbox RENAME TO events")
	require.NoError(t, err)
	billingWriter, err := outbox.NewWriter("events")
	require.NoError(t, err)

	write := func(pool *pgxpool.Pool, w *outbox.Writer, msgs ...outbox.Message) {
		require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return w.Write(ctx, tx, msgs...) }))
	}
	shopWriter, err := outbox.NewWriter("outbox")
	require.NoError(t, err)
	write(shop, shopWriter, outbox.Message{Topic: orders, Payload: []byte("order-1")},
		outbox.Message{Topic: audits, Payload: []byte("not the shop's topic")})
	write(billing, billingWriter, outbox.Message{Topic: audits, Payload: []byte("invoice-1")})

	file := filepath.Join(t.TempDir(), "sources.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
sources:
  - name: shop
    database_url: ${SHOP_DB}
    topics: ["`+orders+`"]
  - name: billing
    database_url: ${BILLING_DB}
    table: events
    topics: ["test.*"]
`), 0o600))
	t.Setenv("SHOP_DB", shopURL)
	t.Setenv("BILLING_DB", billingURL)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	opsAddr := l.Addr().String()
	require.NoError(t, l.Close())
	p := startRelay(t, "", cfg.Brokers, "*", "-sources-file", file, "-ops-addr", opsAddr)

	require.Eventually(t, func() bool {
		var a, b int
		require.NoError(t, shop.QueryRow(ctx, "SELECT count(*) FROM outbox WHERE published OR parked_at IS NOT NULL").Scan(&a))
		require.NoError(t, billing.QueryRow(ctx, "SELECT count(*) FROM events WHERE published").Scan(&b))
		return a == 2 && b == 1
	}, 20*time.Second, 100*time.Millisecond)

	var reason string
	require.NoError(t, shop.QueryRow(ctx, "SELECT last_error FROM outbox WHERE parked_at IS NOT NULL").Scan(&reason))
	require.Contains(t, reason, "topic not allowed for source shop")
	require.Len(t, kafkatest.Consume(t, orders, 2, 3*time.Second), 1)
	got := kafkatest.Consume(t, audits, 2, 3*time.Second)
	require.Len(t, got, 1, "only billing's row reached the audits topic")
	require.Equal(t, "invoice-1", string(got[0].Value))

	resp, err := http.Get("http://" + opsAddr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{
		`sitewatch_relay_parked_rows{source="shop"} 1`,
		`sitewatch_relay_pending_rows{source="billing"} 0`,
		`sitewatch_relay_lanes_owned{source="billing"} 64`,
		`sitewatch_relay_published_total{source="shop"} 1`,
		`sitewatch_relay_parked_total{reason="topic_not_allowed",source="shop"} 1`,
	} {
		require.Contains(t, string(body), want)
	}
	p.terminate(t)
}
