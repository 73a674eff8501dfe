package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

func TestChannelsAddListTestRemoveAndSitesUseThem(t *testing.T) {
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := store.New(pool)
	var got []byte
	var signature string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		signature = r.Header.Get(notify.SignatureHeader)
	}))
	defer receiver.Close()
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Channels(ctx, args, func() (ChannelStore, error) { return st, nil }, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	t.Setenv("SITEWATCH_CHANNEL_SECRET", "s3cret")
	code, out, stderr := run("add", "ops", "--webhook", receiver.URL+"/hooks/T0KEN", "--default")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "added channel ops (webhook)")
	for _, bad := range [][]string{{"add", "Ops", "--webhook", receiver.URL}, {"add", "x", "--webhook", "ftp://a"}, {"add", "y"},
		{"add", "z", "--webhook", receiver.URL, "--slack", receiver.URL}} {
		code, _, stderr = run(bad...)
		require.Equal(t, ExitUsage, code, bad)
		require.Contains(t, stderr, "nothing written", bad)
	}

	code, _, stderr = run("add", "mail", "--email", "smtp://alerts@mail.example.com:587", "--from", "sitewatch@example.com",
		"--to", "oncall@example.com")
	require.Equal(t, ExitOK, code, stderr)
	code, _, stderr = run("add", "mail2", "--email", "smtp://mail.example.com:587", "--from", "nobody", "--to", "x@example.com")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, `from "nobody"`)

	code, out, _ = run("list")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "ops")
	require.Contains(t, out, "mail  ")
	require.NotContains(t, out, "T0KEN", "an incoming webhook's URL is a credential: host only")
	require.NotContains(t, out, "s3cret")

	code, out, stderr = run("test", "ops")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "sent a test notification to ops")
	require.True(t, notify.Verify("s3cret", got, signature), "signed with the channel's secret")
	require.Contains(t, string(got), `"type":"io.sitewatch.incident.opened"`)

	// A site names its channels; an unknown one is an error.
	sites := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Sites(ctx, args, Env{Open: func() (SiteStore, error) { return st, nil }, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut})
		return code, out.String(), errOut.String()
	}
	code, _, stderr = sites("add", "https://example.com/", "--channel", "ops")
	require.Equal(t, ExitOK, code, stderr)
	code, out, _ = sites("show", "1")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "# channels: ops")
	code, _, stderr = sites("update", "1", "--channel", "nope")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "add them with monitor channels add")
	code, _, _ = sites("update", "1", "--channel=")
	require.Equal(t, ExitOK, code)
	_, out, _ = sites("show", "1")
	require.Contains(t, out, "# channels: (the default channels)")

	code, _, _ = run("remove", "ops")
	require.Equal(t, ExitOK, code)
	code, _, stderr = run("test", "ops")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "channel ops: not found")
}
