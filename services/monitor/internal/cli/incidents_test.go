package cli

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

func TestIncidentsListAndShow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	_, err := pool.Exec(ctx, `INSERT INTO incidents (site_id, url, kind, opened_at, error_class, error, regions)
		VALUES (7, 'https://a/', 'down', now() - interval '1 minute', 'connect', E'refused\x1b[2J', '{eu-west,us-east}');
		INSERT INTO incidents (site_id, url, kind, opened_at, resolved_at, resolution)
		VALUES (8, 'https://b/', 'stale', now() - interval '30 days', now() - interval '29 days', 'checks_resumed')`)
	require.NoError(t, err)
	st := store.New(pool)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Incidents(ctx, args, func() (IncidentStore, error) { return st, nil }, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, stderr := run("list")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "7 https://a/")
	require.Contains(t, out, "eu-west,us-east")
	require.Contains(t, out, "connect: refused?[2J", "control characters from a remote error are escaped")
	require.NotContains(t, out, "https://b/", "resolved a month ago: not recent")
	code, out, _ = run("list", "--since", "1000h")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "checks_resumed")

	code, out, _ = run("show", "1")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "incident 1: down of site 7")
	require.Contains(t, out, "resolved: open")
	code, _, stderr = run("show", "99")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "incident 99: not found")
	code, _, stderr = run("show", "x")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, `ID "x": want a positive integer`)
	code, _, _ = run()
	require.Equal(t, ExitUsage, code)
}
