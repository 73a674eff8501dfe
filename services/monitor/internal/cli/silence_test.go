package cli

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

func TestSilenceAddListRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := store.New(pool)
	_, err := pool.Exec(ctx, `INSERT INTO sites (url) VALUES ('https://a/')`)
	require.NoError(t, err)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Silence(ctx, args, func() (SilenceStore, error) { return st, nil }, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, stderr := run("add", "--site", "1", "--for", "2h", "--reason", "deploy")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "silence 1: site 1 from")
	// One announced ahead: it starts later, and --for counts from its start.
	code, out, stderr = run("add", "--site", "1", "--from", "2099-01-02T03:00:00Z", "--for", "2h", "--reason", "upgrade")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "from 2099-01-02T03:00:00Z until 2099-01-02T05:00:00Z")
	var starts time.Time
	require.NoError(t, pool.QueryRow(ctx, "SELECT starts_at FROM silences WHERE reason = 'upgrade'").Scan(&starts))
	require.True(t, starts.Equal(time.Date(2099, 1, 2, 3, 0, 0, 0, time.UTC)), "starts_at %s", starts)
	for args, want := range map[string][]string{
		"no site":  {"add", "--for", "1h"},
		"both":     {"add", "--site", "1", "--for", "1h", "--until", "2030-01-01T00:00:00Z"},
		"past":     {"add", "--site", "1", "--until", "2000-01-01T00:00:00Z"},
		"bad time": {"add", "--site", "1", "--until", "tomorrow"},
		"bad id":   {"remove", "x"},
		"negative": {"add", "--site", "1", "--for", "-1h"},
		"bad from": {"add", "--site", "1", "--from", "soon", "--for", "1h"},
		"backward": {"add", "--site", "1", "--from", "2099-01-02T03:00:00Z", "--until", "2099-01-01T00:00:00Z"},
	} {
		code, _, _ := run(want...)
		require.Equal(t, ExitUsage, code, args)
	}
	code, _, stderr = run("add", "--site", "99", "--for", "1h")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "site 99: not found")

	code, out, _ = run("list")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "1 https://a/")
	require.Contains(t, out, "deploy")
	code, _, _ = run("remove", "1")
	require.Equal(t, ExitOK, code)
	_, out, _ = run("list")
	require.NotContains(t, out, "deploy")
	require.Contains(t, out, "upgrade")
	code, _, stderr = run("remove", "1")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "silence 1: not found")
}
