package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// channelsCLI runs the channels command against a fresh database.
func channelsCLI(t *testing.T) (func(args ...string) (int, string, string), *store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := dbtest.Pool(t, dbtest.New(t))
	st := store.New(pool)
	return func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Channels(context.Background(), args, func() (ChannelStore, error) { return st, nil }, &out, &errOut)
		return code, out.String(), errOut.String()
	}, st, pool
}

// requests is a real receiver answering status, which hands over each
// request it gets.
func requests(t *testing.T, status int) (*httptest.Server, <-chan *http.Request) {
	t.Helper()
	got := make(chan *http.Request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func TestChannelsAddListTestRemoveAndSitesUseThem(t *testing.T) {
	ctx := context.Background()
	run, st, _ := channelsCLI(t)
	var got []byte
	var signature string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		signature = r.Header.Get(notify.SignatureHeader)
	}))
	defer receiver.Close()

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

func TestChannelsUpdateShowImportExport(t *testing.T) {
	ctx := context.Background()
	run, st, pool := channelsCLI(t)
	secret := func(name string) string {
		chs, err := st.Channels(ctx, name)
		require.NoError(t, err)
		return chs[0].Secret
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
		return p
	}

	t.Setenv("SITEWATCH_CHANNEL_SECRET", "first-s3cret")
	code, _, stderr := run("add", "ops", "--webhook", "https://hooks.example.com/T0KEN")
	require.Equal(t, ExitOK, code, stderr)

	// update changes only what is given; the secret stays.
	code, out, stderr := run("update", "ops", "--webhook", "https://hooks.example.com/NEW-T0KEN", "--default")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "updated channel ops (webhook)")
	chs, err := st.Channels(ctx, "ops")
	require.NoError(t, err)
	require.Equal(t, "https://hooks.example.com/NEW-T0KEN", chs[0].URL)
	require.True(t, chs[0].IsDefault)
	require.Equal(t, "first-s3cret", chs[0].Secret)

	// A bad update is refused naming the field, and writes nothing.
	for _, bad := range [][]string{{"update", "ops", "--webhook", "ftp://x"}, {"update", "ops", "--from", "a@example.com"},
		{"update", "ops", "--secret-file", "/nonexistent"}, {"update", "ops"}} {
		code, _, stderr = run(bad...)
		require.Equal(t, ExitUsage, code, bad)
		require.NotContains(t, stderr, "T0KEN", "a webhook URL is a credential")
	}
	_, _, stderr = run("update", "ops", "--from", "a@example.com")
	require.Contains(t, stderr, "from, to: only for an email channel")
	require.Equal(t, "first-s3cret", secret("ops"))
	code, _, stderr = run("update", "nope", "--default")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "channel nope: not found")

	// A new kind replaces the old; the secret changes only when asked.
	code, _, stderr = run("update", "ops", "--email", "smtp://alerts@mail.example.com:587", "--from", "sw@example.com", "--to", "a@example.com, b@example.com",
		"--secret-file", write("smtp-password", "smtp-s3cret\n"))
	require.Equal(t, ExitOK, code, stderr)
	require.Equal(t, "smtp-s3cret", secret("ops"))
	code, out, stderr = run("show", "ops")
	require.Equal(t, ExitOK, code, stderr)
	for _, want := range []string{"kind:", "email", "smtp://alerts@mail.example.com:587", "a@example.com, b@example.com", "set (never shown)",
		"0 delivered, 0 pending, 0 failed"} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "s3cret")
	code, _, _ = run("update", "ops", "--no-secret")
	require.Equal(t, ExitOK, code)
	require.Empty(t, secret("ops"))

	// show counts deliveries and names the latest failure, escaped.
	_, err = pool.Exec(ctx, `INSERT INTO deliveries (event_id, channel_id, event_type, payload, status, last_error)
		SELECT gen_random_uuid(), id, 'io.sitewatch.incident.opened', '{}', s, e FROM channels,
		(VALUES ('delivered', NULL), ('failed', E'550 mailbox full\x1b[2J'), ('pending', NULL)) v(s, e) WHERE name = 'ops'`)
	require.NoError(t, err)
	_, out, _ = run("show", "ops")
	require.Contains(t, out, "1 delivered, 1 pending, 1 failed, 0 silenced")
	require.Contains(t, out, "550 mailbox full?[2J")

	// export: every channel, no secret, a private file.
	code, _, stderr = run("add", "slack", "--slack", "https://hooks.slack.example/services/T0KEN")
	require.Equal(t, ExitOK, code, stderr)
	exported := filepath.Join(dir, "channels.yaml")
	require.NoError(t, os.WriteFile(exported, nil, 0o644))
	code, _, stderr = run("export", exported)
	require.Equal(t, ExitOK, code, stderr)
	info, err := os.Stat(exported)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "an existing file is made private too")
	data, err := os.ReadFile(exported)
	require.NoError(t, err)
	require.NotContains(t, string(data), "s3cret")
	require.Contains(t, string(data), "slack: https://hooks.slack.example/services/T0KEN")
	require.Contains(t, string(data), "- a@example.com")

	// import of the export into an empty database gives the same channels.
	st2 := store.New(dbtest.Pool(t, dbtest.New(t)))
	var out2, err2 bytes.Buffer
	code = Channels(ctx, []string{"import", exported}, func() (ChannelStore, error) { return st2, nil }, &out2, &err2)
	require.Equal(t, ExitOK, code, err2.String())
	require.Contains(t, out2.String(), "imported 2 channels: 2 added, 0 replaced")
	before, err := st.Channels(ctx, "")
	require.NoError(t, err)
	after, err := st2.Channels(ctx, "")
	require.NoError(t, err)
	for i := range before {
		before[i].Secret = ""
	}
	require.Equal(t, before, after)

	// import replaces by name, keeps a secret unless the entry has a
	// secret-file (relative to the YAML's directory), and adds the rest.
	code, _, _ = run("update", "slack", "--secret-file", write("kept", "kept-s3cret"))
	require.Equal(t, ExitOK, code)
	write("hook-secret", "new-s3cret")
	code, out, stderr = run("import", write("in.yaml", `channels:
  - name: slack
    slack: https://hooks.slack.example/services/OTHER
  - name: ops
    webhook: https://hooks.example.com/x
    secret-file: hook-secret
  - name: pager
    webhook: https://pager.example.com/hook
    default: true
`))
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "imported 3 channels: 1 added, 2 replaced")
	require.Equal(t, "kept-s3cret", secret("slack"))
	require.Equal(t, "new-s3cret", secret("ops"))

	// A bad file names the channel and the field, and writes nothing.
	for text, want := range map[string]string{
		"channels:\n  - name: a\n    webhook: https://x.example/\n  - name: Bad\n    webhook: https://y.example/\n": `channel 2 (Bad): name "Bad"`,
		"channels:\n  - name: a\n    webhook: https://x.example/\n    slack: https://y.example/\n":                  "channel 1 (a): kind: give one of",
		"channels:\n  - name: a\n    webhook: https://x.example/\n  - name: a\n    slack: https://y.example/\n":     "channel 2 (a): name: also channel 1's",
		"channels:\n  - name: a\n    webhok: https://x.example/\n":                                                  "field webhok not found",
		"channels:\n  - name: a\n    email: smtp://h:25\n    from: x@example.com\n":                                 `channel 1 (a): e-mail URL: to ""`,
		"sites: []\n": "field sites not found",
	} {
		code, _, stderr = run("import", write("bad.yaml", text))
		require.Equal(t, ExitUsage, code, text)
		require.Contains(t, stderr, "nothing written", text)
		require.Contains(t, stderr, want, text)
	}
	all, err := st.Channels(ctx, "")
	require.NoError(t, err)
	require.Len(t, all, 3)
}

// The alerting tools' channels: added with their API's URL and their key
// as the secret, refused without the key they need, exported and imported
// by kind, and tested through `channels test` against a real receiver.
func TestAlertingToolChannels(t *testing.T) {
	ctx := context.Background()
	run, st, _ := channelsCLI(t)
	srv, got := requests(t, http.StatusAccepted)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "routing-key")
	require.NoError(t, os.WriteFile(keyFile, []byte("R0UTING\n"), 0o600))

	t.Setenv("SITEWATCH_CHANNEL_SECRET", "")
	code, _, stderr := run("add", "pd", "--pagerduty", srv.URL+"/v2/enqueue")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "a pagerduty channel needs the integration's routing key")
	code, _, stderr = run("add", "pd", "--pagerduty", srv.URL+"/v2/enqueue", "--webhook", srv.URL)
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "give one of webhook URL")

	code, out, stderr := run("add", "pd", "--pagerduty", srv.URL+"/v2/enqueue", "--secret-file", keyFile)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "added channel pd (pagerduty)")
	code, _, stderr = run("add", "og", "--opsgenie", srv.URL, "--secret-file", keyFile)
	require.Equal(t, ExitOK, code, stderr)
	code, _, stderr = run("add", "am", "--alertmanager", srv.URL)
	require.Equal(t, ExitOK, code, stderr, "Alertmanager needs no secret")
	code, _, stderr = run("update", "og", "--no-secret")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "a opsgenie channel needs the API key")

	for name, paths := range map[string][2]string{"pd": {"/v2/enqueue", "/v2/enqueue"}, "og": {"/v2/alerts", "/v2/alerts/sitewatch-incident-0/close"},
		"am": {"/api/v2/alerts", "/api/v2/alerts"}} {
		code, out, stderr = run("test", name)
		require.Equal(t, ExitOK, code, "%s: %s %s", name, out, stderr)
		require.Contains(t, out, "and resolved it", "the test's alert does not stay open")
		require.Equal(t, paths[0], (<-got).URL.Path, name)
		require.Equal(t, paths[1], (<-got).URL.Path, name)
	}

	code, out, stderr = run("export")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "pagerduty: "+srv.URL+"/v2/enqueue")
	require.Contains(t, out, "opsgenie: "+srv.URL)
	require.Contains(t, out, "alertmanager: "+srv.URL)
	require.NotContains(t, out, "R0UTING")
	file := filepath.Join(dir, "channels.yaml")
	require.NoError(t, os.WriteFile(file, []byte("channels:\n  - name: pd2\n    pagerduty: https://events.pagerduty.com/v2/enqueue\n    secret-file: routing-key\n"), 0o600))
	code, _, stderr = run("import", file)
	require.Equal(t, ExitOK, code, stderr)
	chs, err := st.Channels(ctx, "pd2")
	require.NoError(t, err)
	require.Equal(t, "R0UTING", chs[0].Secret)
	require.Equal(t, "pagerduty", chs[0].Kind)
}

// The chat and push services: added by their URL, exported and imported
// by kind, and tested through `channels test` against a real receiver.
func TestChatChannels(t *testing.T) {
	run, _, _ := channelsCLI(t)
	srv, got := requests(t, http.StatusNoContent)
	t.Setenv("SITEWATCH_CHANNEL_SECRET", "")
	for kind, path := range map[string]string{"discord": "/api/webhooks/1/T", "teams": "/workflows/1", "ntfy": "/sitewatch-alerts"} {
		code, out, stderr := run("add", kind, "--"+kind, srv.URL+path)
		require.Equal(t, ExitOK, code, stderr)
		require.Contains(t, out, "added channel "+kind+" ("+kind+")")
		code, out, stderr = run("test", kind)
		require.Equal(t, ExitOK, code, "%s %s", out, stderr)
		require.Equal(t, path, (<-got).URL.Path)
	}
	code, out, stderr := run("export")
	require.Equal(t, ExitOK, code, stderr)
	for _, kind := range []string{"discord", "teams", "ntfy"} {
		require.Contains(t, out, kind+": "+srv.URL)
	}
	code, _, stderr = run("add", "two", "--discord", srv.URL, "--ntfy", srv.URL)
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "give one of")
}

// A Telegram chat: the chat and the bot's token checked at add, the token
// never listed, shown or exported, the chat and a Bot API of one's own
// kept through update, export and import, and `channels test` sending one
// sendMessage to a real receiver.
func TestTelegramChannel(t *testing.T) {
	ctx := context.Background()
	run, st, _ := channelsCLI(t)
	srv, got := requests(t, http.StatusOK)
	dir := t.TempDir()
	const token = "123456789:AAE-test_token_0123456789abcdefghijkl"
	tokenFile := filepath.Join(dir, "bot-token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))
	badFile := filepath.Join(dir, "bad-token")
	require.NoError(t, os.WriteFile(badFile, []byte("hunter2\n"), 0o600))

	t.Setenv("SITEWATCH_CHANNEL_SECRET", "")
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"no token":  {[]string{"add", "tg", "--telegram", "-100123"}, "a telegram channel needs the bot's token"},
		"bad chat":  {[]string{"add", "tg", "--telegram", "my group", "--secret-file", tokenFile}, `telegram "my group": want a chat id`},
		"bad token": {[]string{"add", "tg", "--telegram", "-100123", "--secret-file", badFile}, "secret: not a Telegram bot token"},
		"bad api":   {[]string{"add", "tg", "--telegram", "-100123", "--telegram-api", "api.telegram.org", "--secret-file", tokenFile}, `telegram-api "api.telegram.org"`},
		"api alone": {[]string{"add", "tg", "--webhook", srv.URL, "--telegram-api", srv.URL}, "telegram-api: only for a telegram channel"},
	} {
		code, _, stderr := run(c.args...)
		require.Equal(t, ExitUsage, code, name)
		require.Contains(t, stderr, c.want, name)
		require.NotContains(t, stderr, "hunter2", name)
	}
	t.Setenv("SITEWATCH_CHANNEL_SECRET", "hunter2")
	code, _, stderr := run("add", "tg", "--telegram", "-100123")
	require.Equal(t, ExitUsage, code, "a token from the environment is checked too")
	require.Contains(t, stderr, "not a Telegram bot token")
	t.Setenv("SITEWATCH_CHANNEL_SECRET", "")

	code, out, stderr := run("add", "tg", "--telegram", "-100123", "--telegram-api", srv.URL, "--secret-file", tokenFile)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "added channel tg (telegram)")
	code, out, stderr = run("test", "tg")
	require.Equal(t, ExitOK, code, "%s %s", out, stderr)
	r := <-got
	require.Equal(t, "/bot"+token+"/sendMessage", r.URL.Path)
	require.Len(t, got, 0, "a chat gets one test message, nothing to resolve")

	for _, cmd := range [][]string{{"list"}, {"show", "tg"}, {"export"}} {
		code, out, _ = run(cmd...)
		require.Equal(t, ExitOK, code)
		require.NotContains(t, out, "AAE-test_token", cmd)
	}
	_, out, _ = run("show", "tg")
	require.Contains(t, out, "chat -100123")
	code, out, _ = run("export")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, `telegram: "-100123"`)
	require.Contains(t, out, "telegram-api: "+srv.URL)

	// update keeps what it is not given: the API, the token.
	code, _, stderr = run("update", "tg", "--telegram", "@sitewatch_alerts")
	require.Equal(t, ExitOK, code, stderr)
	chs, err := st.Channels(ctx, "tg")
	require.NoError(t, err)
	require.Equal(t, srv.URL+"?chat_id=%40sitewatch_alerts", chs[0].URL)
	require.Equal(t, token, chs[0].Secret)

	file := filepath.Join(dir, "channels.yaml")
	require.NoError(t, os.WriteFile(file, []byte("channels:\n  - name: tg2\n    telegram: \"-42\"\n    secret-file: bot-token\n"), 0o600))
	code, _, stderr = run("import", file)
	require.Equal(t, ExitOK, code, stderr)
	chs, err = st.Channels(ctx, "tg2")
	require.NoError(t, err)
	require.Equal(t, "telegram", chs[0].Kind)
	require.Equal(t, "https://api.telegram.org?chat_id=-42", chs[0].URL)
	require.Equal(t, token, chs[0].Secret)
}
