package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

type runner func(stdin string, args ...string) (code int, stdout, stderr string)

func newRunner(t *testing.T) (runner, *store.Store) {
	t.Helper()
	st := store.New(dbtest.Pool(t, dbtest.New(t)))
	return func(stdin string, args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Sites(context.Background(), args, Env{Open: func() (SiteStore, error) { return st, nil },
			Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut})
		return code, out.String(), errOut.String()
	}, st
}

func sites(t *testing.T, st *store.Store) []site.Site {
	t.Helper()
	out, err := st.Sites(context.Background(), false)
	require.NoError(t, err)
	return out
}

func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	run, st := newRunner(t)
	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"bad url":        {[]string{"add", "not a url"}, []string{`url "not a url": scheme must be http, https, tcp, tls, dns, grpc, grpcs, icmp or heartbeat`}},
		"bad regex":      {[]string{"add", "https://example.com", "--regex", "(a"}, []string{`match "(a": not a valid RE2 regular expression: missing closing )`}},
		"bad not-match":  {[]string{"add", "https://example.com", "--not-match", "a{2,1}"}, []string{`not-match "a{2,1}": not a valid RE2`}},
		"bad interval":   {[]string{"add", "https://example.com", "--interval", "often"}, []string{`interval "often": not a duration`}},
		"short interval": {[]string{"add", "https://example.com", "--interval", "10ms"}, []string{`interval "10ms": must be at least 1s`}},
		"bad timeout":    {[]string{"add", "https://example.com", "--timeout", "2m"}, []string{`timeout "2m0s": must not exceed the interval`}},
		"bad header":     {[]string{"add", "https://example.com", "--header", "NoColon"}, []string{`header "NoColon": want Name: value`}},
		"bad expect":     {[]string{"add", "https://example.com", "--expect", "2xx,99"}, []string{`expect "2xx,99"`}},
		"two problems":   {[]string{"add", "ftp://x", "--regex", "[", "--interval", "5s"}, []string{"nothing written:\n  url \"ftp://x\"", "\n  match \"[\""}},
		"both enabled":   {[]string{"add", "https://example.com", "--enabled", "--disabled"}, []string{"give one of them"}},
		"no url":         {[]string{"add", "--regex", "x"}, []string{"want exactly one URL"}},
		"unknown flag":   {[]string{"add", "https://example.com", "--regexp", "x"}, []string{"flag provided but not defined: -regexp"}},
		"remove bad id":  {[]string{"remove", "abc"}, []string{`ID "abc": want a positive integer`}},
		"update nothing": {[]string{"update", "1"}, []string{"nothing to change"}},
		"update bad":     {[]string{"update", "1", "--interval", "soon"}, []string{`interval "soon": not a duration`}},
		"unknown":        {[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		"zero threshold": {[]string{"add", "https://example.com", "--failure-threshold", "0"}, []string{`failure-threshold "0": must be positive`}},
		"zero interval":  {[]string{"add", "https://example.com", "--interval", "0s"}, []string{`interval "0s": must be positive`}},
		"zero timeout":   {[]string{"add", "https://example.com", "--timeout", "0s"}, []string{`timeout "0s": must be positive`}},
		"big regex":      {[]string{"add", "https://example.com", "--match", "[a-z]{1,200}q"}, []string{"compiles to 402 instructions"}},
		"huge import":    {[]string{"import", "-"}, []string{"larger than 4 MiB; split it"}},
		"bad region":     {[]string{"add", "https://example.com", "--regions", "eu-west,EU West"}, []string{`regions "EU West": want lower-case letters`}},
		"region twice":   {[]string{"add", "https://example.com", "--regions", "eu,eu"}, []string{`regions "eu": listed twice`}},
		"tcp no port":    {[]string{"add", "tcp://db.example.com"}, []string{`url "tcp://db.example.com": tcp:// needs a port`}},
		"send on http":   {[]string{"add", "https://example.com", "--send", "x"}, []string{`send "x": only tcp:// and tls:// sites`}},
		"send escape":    {[]string{"add", "tcp://a.example:1", "--send", `PING\q`}, []string{`send "PING\\q": unknown escape \q`}},
		"tcp header":     {[]string{"add", "tls://a.example:443", "--header", "X-A: b"}, []string{`header "X-A": only http(s) sites send headers`}},
	} {
		stdin := ""
		if name == "huge import" {
			stdin = "sites:\n" + strings.Repeat("  - url: https://example.com/\n", (MaxImportBytes/30)+1)
		}
		code, _, stderr := run(stdin, tc.args...)
		require.Equal(t, ExitUsage, code, name)
		for _, w := range tc.want {
			require.Contains(t, stderr, w, name)
		}
	}
	require.Empty(t, sites(t, st), "bad input writes nothing")
}

func TestAddListShowUpdateRemove(t *testing.T) {
	t.Parallel()
	run, st := newRunner(t)
	code, out, stderr := run("", "add", "https://example.com/health", "--name", " Shop health ", "--regex", "ok|healthy", "--interval", "30s",
		"--not-match", "error", "--header", "Authorization: Bearer x", "--expect", "200,204", "--method", "post")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "added site")
	code, _, stderr = run("", "add", "--interval=2s", "http://127.0.0.1:8080/", "--regions", "eu-west, us-east",
		"--failure-threshold", "3", "--quorum", "2", "--tls-warning-days", "0")
	require.Equal(t, ExitOK, code, stderr)

	all := sites(t, st)
	require.Len(t, all, 2)
	first := all[0]
	require.Equal(t, []string{"ok|healthy"}, first.MustMatch)
	require.Equal(t, []string{"error"}, first.MustNotMatch)
	require.Equal(t, map[string]string{"Authorization": "Bearer x"}, first.Headers)
	require.Equal(t, "200,204", first.Expect)
	require.Equal(t, "POST", first.Method)
	require.Equal(t, "Shop health", first.Name, "a display name, trimmed")
	code, _, stderr = run("", "add", "https://example.com/x", "--name", "bell\a")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "name")
	code, _, stderr = run("", "add", "https://example.com/x", "--name", strings.Repeat("n", 101))
	require.Equal(t, ExitUsage, code, "a name over 100 characters")
	require.Contains(t, stderr, "want at most 100 printable characters")
	require.Equal(t, 30*time.Second, first.Interval)
	require.Equal(t, 10*time.Second, first.Timeout)
	require.True(t, first.Enabled)
	require.Equal(t, 2*time.Second, all[1].Timeout, "timeout defaults to at most the interval")
	require.Equal(t, "200-399", all[1].Expect)
	require.Nil(t, first.Regions, "every region by default")
	require.Equal(t, []string{"eu-west", "us-east"}, all[1].Regions)
	require.Equal(t, []int{3, 2, 2, 0}, []int{all[1].FailureThreshold, all[1].SuccessThreshold, all[1].Quorum, all[1].TLSWarningDays})
	require.Equal(t, []int{2, 2, 0, 14}, []int{first.FailureThreshold, first.SuccessThreshold, first.Quorum, first.TLSWarningDays},
		"defaults: 2 and 2 checks, a majority, 14 days")

	code, out, _ = run("", "list")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "https://example.com/health")
	require.Contains(t, out, "+ok|healthy -error")
	require.Contains(t, out, "REGIONS")
	require.Contains(t, out, "eu-west,us-east")
	code, out, _ = run("", "show", "2")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "regions:\n      - eu-west\n      - us-east")

	code, out, _ = run("", "show", "1")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "# site 1")
	require.Contains(t, out, "interval: 30s")
	require.Contains(t, out, "Authorization: xxxxx", "show masks credentials")
	require.NotContains(t, out, "Bearer x")

	// update changes only the given fields and moves updated_at.
	code, out, stderr = run("", "update", "1", "--timeout", "5s", "--disabled", "--match", "up", "--match", "green")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "updated site 1")
	after, err := st.Site(context.Background(), 1)
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, after.Timeout)
	require.False(t, after.Enabled)
	require.Equal(t, []string{"up", "green"}, after.MustMatch)
	require.True(t, after.Updated.After(first.Updated), "updated_at moves so the monitor picks it up")
	first.Timeout, first.Enabled, first.MustMatch, first.Updated = after.Timeout, after.Enabled, after.MustMatch, after.Updated
	require.Equal(t, first, after, "nothing else changed")

	code, _, stderr = run("", "update", "1", "--interval", "3s")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, `timeout "5s": must not exceed the interval (3s)`, "an update must leave a valid site")
	require.Contains(t, stderr, "nothing written")
	code, _, _ = run("", "update", "1", "--match=", "--header=")
	require.Equal(t, ExitOK, code)
	after, err = st.Site(context.Background(), 1)
	require.NoError(t, err)
	require.Nil(t, after.MustMatch, "--match= clears")
	require.Nil(t, after.Headers, "--header= clears")
	require.Equal(t, []string{"error"}, after.MustNotMatch)

	code, _, stderr = run("", "update", "999999", "--interval", "5s")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "site 999999: not found")
	code, _, stderr = run("", "remove", "999999")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "site 999999: not found")
	code, _, _ = run("", "remove", "1")
	require.Equal(t, ExitOK, code)
	require.Len(t, sites(t, st), 1)
}

func TestImportIsAllOrNothingAndExportRoundTrips(t *testing.T) {
	t.Parallel()
	run, st := newRunner(t)
	good := `sites:
  - url: https://example.com/
    match: [Example Domain]
    interval: 30s
  - url: https://api.example.com/health
    method: POST
    headers: {X-Probe: sitewatch}
    expect: 2xx
    not-match: ["error", "maintenance"]
    interval: 1m
    timeout: 5s
    topic: team-a.checks
    enabled: false
`
	for name, tc := range map[string]struct{ file, want string }{
		"bad regex": {strings.Replace(good, "maintenance", "(maintenance", 1),
			`site 2 (https://api.example.com/health):` + "\n" + `    not-match "(maintenance": not a valid RE2`},
		"bad interval": {strings.Replace(good, "interval: 30s", "interval: 30", 1), `site 1 (https://example.com/):` + "\n" + `    interval "30": not a duration`},
		"bad url":      {strings.Replace(good, "https://api.example.com/health", "api.example.com", 1), `site 2 (api.example.com):`},
		"unknown key":  {strings.Replace(good, "timeout:", "timout:", 1), "field timout not found"},
		"not yaml":     {"sites: [", "reading YAML"},
		"empty":        {"", "no sites"},
	} {
		code, _, stderr := run(tc.file, "import", "-")
		require.Equal(t, ExitUsage, code, name)
		require.Contains(t, stderr, tc.want, name)
	}
	require.Empty(t, sites(t, st), "a bad file writes nothing")

	path := filepath.Join(t.TempDir(), "sites.yaml")
	require.NoError(t, os.WriteFile(path, []byte(good), 0o600))
	code, out, stderr := run("", "import", path)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "imported 2 sites")
	imported := sites(t, st)
	require.Len(t, imported, 2)
	require.Equal(t, "POST", imported[1].Method)
	require.Equal(t, map[string]string{"X-Probe": "sitewatch"}, imported[1].Headers)
	require.Equal(t, []string{"error", "maintenance"}, imported[1].MustNotMatch)
	require.Equal(t, "team-a.checks", imported[1].Topic)
	require.False(t, imported[1].Enabled)
	require.True(t, imported[0].Enabled, "enabled by default")

	code, exported, _ := run("", "export")
	require.Equal(t, ExitOK, code)
	require.Contains(t, exported, "interval: 1m\n")
	file := filepath.Join(t.TempDir(), "sites.yaml")
	code, _, stderr = run("", "export", file)
	require.Equal(t, ExitOK, code, stderr)
	info, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "headers may hold credentials: the export is for its owner only")

	// What export writes, import reads back into the same sites.
	run2, st2 := newRunner(t)
	code, _, stderr = run2(exported, "import", "-")
	require.Equal(t, ExitOK, code, stderr)
	again := sites(t, st2)
	require.Len(t, again, 2)
	for i := range again {
		again[i].ID, again[i].Updated = imported[i].ID, imported[i].Updated
	}
	require.Equal(t, imported, again)
}

func TestOpenFailureIsReported(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := Sites(context.Background(), []string{"list"}, Env{
		Open:   func() (SiteStore, error) { return nil, errors.New("database-url: required") },
		Stdout: &out, Stderr: &errOut})
	require.Equal(t, ExitError, code)
	require.Contains(t, errOut.String(), "database-url: required")
}

// tcp:// and tls:// sites: added with --send's escapes, listed without an
// HTTP method or status, and exported and imported with their send text.
func TestStreamSites(t *testing.T) {
	t.Parallel()
	run, st := newRunner(t)
	code, _, stderr := run("", "add", "tcp://redis.example.com:6379", "--send", `PING\r\n`, "--match", `^\+PONG`, "--interval", "10s")
	require.Equal(t, ExitOK, code, stderr)
	code, _, stderr = run("", "add", "tls://mail.example.com:465", "--match", "^220 ")
	require.Equal(t, ExitOK, code, stderr)
	all := sites(t, st)
	require.Len(t, all, 2)
	require.Equal(t, "PING\r\n", all[0].Send, "the escapes are the bytes they name")
	require.Equal(t, site.KindTCP, all[0].Kind())
	require.Equal(t, site.KindTLS, all[1].Kind())

	code, out, _ := run("", "list")
	require.Equal(t, ExitOK, code)
	require.Regexp(t, `tcp://redis.example.com:6379\s+-\s+10s\s+10s\s+-\s+\+\^\\\+PONG`, out)

	code, exported, stderr := run("", "export", "-")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, exported, `send: "PING\r\n"`)
	require.NotContains(t, exported, "method:", "no HTTP method for tcp and tls sites")

	run2, st2 := newRunner(t)
	code, _, stderr = run2(exported, "import", "-")
	require.Equal(t, ExitOK, code, stderr)
	again := sites(t, st2)
	require.Len(t, again, 2)
	for i := range all {
		again[i].ID, again[i].Updated = all[i].ID, all[i].Updated
		require.Equal(t, all[i], again[i])
	}
}

func TestHeartbeatSitesPrintTheirTokenOnceAndRotateIt(t *testing.T) {
	t.Parallel()
	run, st := newRunner(t)
	code, out, stderr := run("", "add", "heartbeat://nightly-backup?grace=30m", "--interval", "24h")
	require.Equal(t, ExitOK, code, stderr)
	token := regexp.MustCompile(`ping token (\S+)`).FindStringSubmatch(out)
	require.Len(t, token, 2, out)
	require.True(t, site.WellFormedPingToken(token[1]), out)
	require.Contains(t, out, "http://MONITOR:PING_PORT/ping/"+token[1], "a placeholder without -ping-url")
	require.Contains(t, out, "give -ping-url or MONITOR_PING_URL")
	id := sites(t, st)[0].ID

	// With the listener's address, the job's command is ready to paste.
	var withURL bytes.Buffer
	code = Sites(context.Background(), []string{"ping-token", fmt.Sprint(id)}, Env{Open: func() (SiteStore, error) { return st, nil },
		Stdin: strings.NewReader(""), Stdout: &withURL, Stderr: io.Discard, PingURL: "https://ping.example.com/"})
	require.Equal(t, ExitOK, code)
	token = regexp.MustCompile(`new ping token (\S+)`).FindStringSubmatch(withURL.String())
	require.Len(t, token, 2, withURL.String())
	require.Contains(t, withURL.String(), "-X POST https://ping.example.com/ping/"+token[1]+"\n")

	// The token is not shown again: neither by show nor export.
	for _, args := range [][]string{{"show", fmt.Sprint(id)}, {"export"}, {"list"}} {
		code, out, stderr = run("", args...)
		require.Equal(t, ExitOK, code, stderr)
		require.NotContains(t, out, token[1], args)
	}

	code, out, stderr = run("", "ping-token", fmt.Sprint(id))
	require.Equal(t, ExitOK, code, stderr)
	rotated := regexp.MustCompile(`new ping token (\S+)`).FindStringSubmatch(out)
	require.Len(t, rotated, 2, out)
	require.NotEqual(t, token[1], rotated[1])

	code, _, stderr = run("", "add", "https://example.com/")
	require.Equal(t, ExitOK, code, stderr)
	code, _, stderr = run("", "ping-token", fmt.Sprint(sites(t, st)[1].ID))
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "only heartbeat:// sites have a ping token")
	code, _, stderr = run("", "add", "heartbeat://x", "--regions", "eu")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "the job reports in")

	// --kind heartbeat names one by its name alone.
	code, out, stderr = run("", "add", "weekly-digest", "--kind", "heartbeat", "--interval", "24h")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "heartbeat://weekly-digest")
	require.Regexp(t, `ping token \S+`, out)
	code, _, stderr = run("", "add", "https://example.com/", "--kind", "heartbeat")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "--kind heartbeat with a http:// URL")
	code, _, stderr = run("", "add", "x", "--kind", "tcp")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, `--kind "tcp": want heartbeat`)

	// An imported heartbeat gets its token too.
	code, out, stderr = run("sites:\n  - url: heartbeat://weekly-report\n    interval: 24h\n", "import", "-")
	require.Equal(t, ExitOK, code, stderr)
	require.Regexp(t, `\(heartbeat://weekly-report\): ping token \S+`, out)
}

func TestConditionsAndDegradedAfterThroughFlagsAndFiles(t *testing.T) {
	t.Parallel()
	run, st := newRunner(t)
	code, _, stderr := run("", "add", "https://example.com/health", "--condition", `$.status == "UP"`, "--condition", `header.X-Env == "prod"`,
		"--degraded-after", "800ms")
	require.Equal(t, ExitOK, code, stderr)
	s := sites(t, st)[0]
	require.Equal(t, []string{`$.status == "UP"`, `header.X-Env == "prod"`}, s.Conditions)
	require.Equal(t, 800*time.Millisecond, s.DegradedAfter)

	code, _, stderr = run("", "update", fmt.Sprint(s.ID), "--condition=", "--degraded-after", "0")
	require.Equal(t, ExitOK, code, stderr)
	s = sites(t, st)[0]
	require.Empty(t, s.Conditions)
	require.Zero(t, s.DegradedAfter)

	for args, msg := range map[string][]string{
		`condition "$.a === 1"`:                           {"--condition", `$.a === 1`},
		`degraded-after "soon": not a duration`:           {"--degraded-after", "soon"},
		`degraded-after "20s": must be under the timeout`: {"--degraded-after", "20s"},
	} {
		code, _, stderr = run("", append([]string{"add", "https://example.com/x"}, msg...)...)
		require.Equal(t, ExitUsage, code, args)
		require.Contains(t, stderr, args)
	}

	yaml := "sites:\n  - url: https://api.example.com/\n    conditions: ['$.items.length > 0']\n    degraded-after: 1.5s\n"
	code, _, stderr = run(yaml, "import", "-")
	require.Equal(t, ExitOK, code, stderr)
	code, out, stderr := run("", "export")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "conditions:\n")
	require.Contains(t, out, "$.items.length > 0")
	require.Contains(t, out, "degraded-after: 1.5s")
}
