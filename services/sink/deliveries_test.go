package main

import (
	"bytes"
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
)

func TestDeliveriesListAndRetry(t *testing.T) {
	ctx := context.Background()
	url := dbtest.New(t)
	pool := dbtest.Pool(t, url)
	_, err := pool.Exec(ctx, `
		INSERT INTO channels (name, kind, url) VALUES ('ops', 'webhook', 'https://hooks.example.com/T0KEN'), ('mail', 'webhook', 'https://m.example.com/');
		INSERT INTO deliveries (event_id, channel_id, event_type, payload, status, attempts, last_error)
		SELECT gen_random_uuid(), c.id, 'io.sitewatch.incident.opened', '{"site_id": 7, "url": "https://example.com/"}', v.s, v.a, v.e
		FROM channels c, (VALUES ('failed', 12, E'503 Service Unavailable\x1b[31m'), ('delivered', 1, NULL)) v(s, a, e)`)
	require.NoError(t, err)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := deliveriesCommand(ctx, append([]string{args[0], "-database-url", url}, args[1:]...), &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, stderr := run("list", "-status", "failed", "-channel", "ops")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "opened  7 https://example.com/  failed  12")
	require.Contains(t, out, "503 Service Unavailable?[31m", "a receiver's text is escaped")
	require.NotContains(t, out, "T0KEN")
	require.Equal(t, 2, bytes.Count([]byte(out), []byte("\n")), "the header and ops' one failed delivery")
	_, out, _ = run("list")
	require.Equal(t, 5, bytes.Count([]byte(out), []byte("\n")))

	for _, bad := range [][]string{{"list", "-status", "lost"}, {"list", "-limit", "0"}, {"retry"}, {"retry", "x"}, {"retry", "-all", "3"}, {"list", "5"}} {
		code, _, _ = run(bad...)
		require.Equal(t, 2, code, bad)
	}

	var id int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT d.id FROM deliveries d JOIN channels c ON c.id = d.channel_id WHERE c.name = 'ops' AND status = 'failed'`).Scan(&id))
	var delivered int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT id FROM deliveries WHERE status = 'delivered' LIMIT 1`).Scan(&delivered))
	code, _, stderr = run("retry", "9999999")
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "1 of the IDs given are not failed deliveries")
	code, out, stderr = run("retry", "-channel", "ops", "-all")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "1 failed deliveries sent again")
	var status string
	var attempts int
	require.NoError(t, pool.QueryRow(ctx, `SELECT status, attempts FROM deliveries WHERE id = $1`, id).Scan(&status, &attempts))
	require.Equal(t, "pending", status)
	require.Zero(t, attempts)
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM deliveries WHERE status = 'failed'`).Scan(&attempts))
	require.Equal(t, 1, attempts, "the other channel's failure stays")

	code, _, _ = run("retry", strconv.FormatInt(delivered, 10))
	require.Equal(t, 1, code, "a delivered notification is not sent again")
}
