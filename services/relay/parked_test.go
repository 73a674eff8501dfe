package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/command"
)

func TestParkedListAndRequeue(t *testing.T) {
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		return outbox.Write(ctx, tx, outbox.Message{Topic: "a", Key: []byte("k"), Payload: []byte("1")},
			outbox.Message{Topic: "b", Payload: []byte("2")}, outbox.Message{Topic: "c", Payload: []byte("3")})
	}))
	_, err := pool.Exec(ctx, `UPDATE outbox SET parked_at = now(), attempts = 10, last_error = 'Broker: Message size too large' WHERE id <= 2`)
	require.NoError(t, err)

	cmds := map[string]command.Func{"parked": parkedCommand}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := command.Dispatch(ctx, "relay", "run", usage, cmds, append([]string{"parked"}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	t.Setenv("DATABASE_URL", dbURL)

	code, out, stderr := run("list")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "Message size too large")
	require.Equal(t, 3, bytes.Count([]byte(out), []byte("\n")), "a header and the two parked rows:\n%s", out)

	code, _, stderr = run("requeue")
	require.Equal(t, command.ExitUsage, code)
	require.Contains(t, stderr, "give the IDs of the rows to requeue, or -all")
	code, _, stderr = run("requeue", "x1")
	require.Equal(t, command.ExitUsage, code)
	require.Contains(t, stderr, `ID "x1": want a positive integer`)
	code, _, stderr = run("list", "-source", "billing")
	require.Equal(t, command.ExitUsage, code)
	require.Contains(t, stderr, `source "billing": no such source`)

	var event string
	require.NoError(t, pool.QueryRow(ctx, "SELECT event_id::text FROM outbox WHERE id = 1").Scan(&event))
	code, out, stderr = run("requeue", "1")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "requeued 1 parked rows")
	// The outbox is partitioned: the row is written again, above every
	// other, so that claims from the floor find it and its partition can go.
	var parked, attempts int
	var id int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL), id, attempts
		FROM outbox WHERE event_id = $1 AND parked_at IS NULL AND NOT published`, event).Scan(&parked, &id, &attempts))
	require.Equal(t, 1, parked)
	require.Greater(t, id, int64(3), "written again with a new id")
	require.Zero(t, attempts, "a requeued row gets a fresh set of attempts")

	code, _, stderr = run()
	require.Equal(t, command.ExitUsage, code)
	require.Contains(t, stderr, "relay parked: a subcommand is required")
	code, _, stderr = run("purge")
	require.Equal(t, command.ExitUsage, code)
	require.Contains(t, stderr, `relay parked: unknown command "purge"`)

	code, out, _ = run("requeue", "-all")
	require.Equal(t, 0, code)
	require.Contains(t, out, "requeued 1 parked rows")
}
