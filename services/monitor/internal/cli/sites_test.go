package cli

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

func TestSitesCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := store.New(dbtest.Pool(t, dbtest.New(t)))
	open := func() (SiteStore, error) { return st, nil }
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := Sites(ctx, args, open, &out, &errOut)
		return code, out.String(), errOut.String()
	}

	for name, tc := range map[string]struct {
		args []string
		want []string
	}{
		"bad url":        {[]string{"add", "not a url"}, []string{`url "not a url": scheme must be http or https`}},
		"bad regex":      {[]string{"add", "https://example.com", "--regex", "(a"}, []string{`regex "(a": not a valid RE2 regular expression: missing closing )`}},
		"bad interval":   {[]string{"add", "https://example.com", "--interval", "often"}, []string{`interval "often": not a duration`}},
		"short interval": {[]string{"add", "https://example.com", "--interval", "10ms"}, []string{`interval "10ms": must be at least 1s`}},
		"two problems":   {[]string{"add", "ftp://x", "--regex", "[", "--interval", "5s"}, []string{"url ", "regex "}},
		"no url":         {[]string{"add", "--regex", "x"}, []string{"want exactly one URL"}},
		"unknown flag":   {[]string{"add", "https://example.com", "--regexp", "x"}, []string{"flag provided but not defined: -regexp"}},
		"remove bad id":  {[]string{"remove", "abc"}, []string{`ID "abc": want a positive integer`}},
		"unknown":        {[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
	} {
		code, _, stderr := run(tc.args...)
		require.Equal(t, ExitUsage, code, name)
		for _, w := range tc.want {
			require.Contains(t, stderr, w, name)
		}
	}
	sites, err := st.Sites(ctx, false)
	require.NoError(t, err)
	require.Empty(t, sites, "bad input writes nothing")

	code, out, stderr := run("add", "https://example.com/health", "--regex", "ok|healthy", "--interval", "30s")
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, out, "added site")
	code, _, stderr = run("add", "--interval=2s", "http://127.0.0.1:8080/")
	require.Equal(t, ExitOK, code, stderr)

	sites, err = st.Sites(ctx, false)
	require.NoError(t, err)
	require.Len(t, sites, 2)
	require.Equal(t, "ok|healthy", sites[0].Regex)
	require.Equal(t, 30*time.Second, sites[0].Interval)
	require.Equal(t, 10*time.Second, sites[0].Timeout)
	require.Equal(t, 2*time.Second, sites[1].Timeout, "timeout defaults to at most the interval")

	code, out, _ = run("list")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "https://example.com/health")
	require.Contains(t, out, "ok|healthy")

	code, _, stderr = run("remove", "999999")
	require.Equal(t, ExitError, code)
	require.Contains(t, stderr, "site 999999: not found")

	code, _, _ = run("remove", "1")
	require.Equal(t, ExitOK, code)
	sites, err = st.Sites(ctx, false)
	require.NoError(t, err)
	require.Len(t, sites, 1)
}

func TestOpenFailureIsReported(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	code := Sites(context.Background(), []string{"list"},
		func() (SiteStore, error) { return nil, errors.New("database-url: required") }, &out, &errOut)
	require.Equal(t, ExitError, code)
	require.Contains(t, errOut.String(), "database-url: required")
}
