package config

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func newFlags() (*flag.FlagSet, *int, *string, *time.Duration) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	n := fs.Int("batch-size", 10, "")
	u := fs.String("database-url", "default", "")
	d := fs.Duration("poll-interval", time.Second, "")
	return fs, n, u, d
}

func TestParseOrder(t *testing.T) {
	env := map[string]string{"RELAY_BATCH_SIZE": "50", "DATABASE_URL": "from-shared", "RELAY_POLL_INTERVAL": "2s"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	fs, n, u, d := newFlags()
	require.NoError(t, parse(fs, "RELAY", []string{"-poll-interval=3s"}, withFiles(lookup)))
	require.Equal(t, 50, *n, "env sets the default")
	require.Equal(t, "from-shared", *u, "shared names need no prefix")
	require.Equal(t, 3*time.Second, *d, "flags win over env")

	env["RELAY_DATABASE_URL"] = "from-prefixed"
	fs, _, u, _ = newFlags()
	require.NoError(t, parse(fs, "RELAY", nil, withFiles(lookup)))
	require.Equal(t, "from-prefixed", *u, "the prefixed name wins over the shared one")
}

func TestParseNamesTheBadVariable(t *testing.T) {
	lookup := func(k string) (string, bool) {
		if k == "RELAY_BATCH_SIZE" {
			return "lots", true
		}
		return "", false
	}
	fs, _, _, _ := newFlags()
	err := parse(fs, "RELAY", nil, withFiles(lookup))
	require.ErrorContains(t, err, `environment variable RELAY_BATCH_SIZE="lots"`)

	fs, _, _, _ = newFlags()
	err = parse(fs, "RELAY", []string{"-batch-size=x"}, withFiles(func(string) (string, bool) { return "", false }))
	require.ErrorContains(t, err, `invalid value "x" for flag -batch-size`)
}

func TestServiceSettings(t *testing.T) {
	fs := flag.NewFlagSet("svc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var s Service
	s.Register(fs, "the stats table", ":9999")
	require.NoError(t, parse(fs, "SVC", []string{"-log-format=console"}, withFiles(func(k string) (string, bool) {
		if k == "DATABASE_URL" {
			return "postgres://u@127.0.0.1:5432/db", true
		}
		return "", false
	})))
	require.Equal(t, Service{DatabaseURL: "postgres://u@127.0.0.1:5432/db", OpsAddr: ":9999", LogLevel: "info", LogFormat: "console"}, s)
	require.NoError(t, s.Validate())

	bad := Service{OpsAddr: "nope", LogLevel: "loud", LogFormat: "xml"}
	err := bad.Validate()
	for _, want := range []string{"database-url: required", "ops-addr: ", `log-level: "loud"`, `log-format: "xml"`} {
		require.ErrorContains(t, err, want)
	}
}

// Any variable can come from a file: the container-secrets convention.
func TestValuesFromFiles(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "db-url")
	require.NoError(t, os.WriteFile(secret, []byte("postgres://u:s3cret@127.0.0.1:5432/db\n"), 0o600))
	env := map[string]string{"DATABASE_URL_FILE": secret, "RELAY_BATCH_SIZE_FILE": filepath.Join(dir, "missing")}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	fs, _, _, _ := newFlags()
	err := parse(fs, "RELAY", nil, withFiles(lookup))
	require.ErrorContains(t, err, "RELAY_BATCH_SIZE_FILE")
	delete(env, "RELAY_BATCH_SIZE_FILE")
	fs, _, u, _ := newFlags()
	require.NoError(t, parse(fs, "RELAY", nil, withFiles(lookup)))
	require.Equal(t, "postgres://u:s3cret@127.0.0.1:5432/db", *u, "the file's content, its newline dropped")

	env["DATABASE_URL"] = "postgres://other"
	fs, _, _, _ = newFlags()
	err = parse(fs, "RELAY", nil, withFiles(lookup))
	require.ErrorContains(t, err, "DATABASE_URL and DATABASE_URL_FILE: set one, not both")
	require.NotContains(t, err.Error(), "s3cret")
}

func TestOpenPoolSizesThePoolForItsUsers(t *testing.T) {
	ctx := context.Background()
	pool, err := OpenPool(ctx, "postgres://u:p@127.0.0.1:1/db", "sitewatch-x", 7)
	require.NoError(t, err)
	require.EqualValues(t, 7, pool.Config().MaxConns)
	require.Equal(t, "sitewatch-x", pool.Config().ConnConfig.RuntimeParams["application_name"])
	pool.Close()
	pool, err = OpenPool(ctx, "postgres://u:p@127.0.0.1:1/db?pool_max_conns=20&application_name=mine", "sitewatch-x", 7)
	require.NoError(t, err)
	require.EqualValues(t, 20, pool.Config().MaxConns, "the URL's own setting wins")
	require.Equal(t, "mine", pool.Config().ConnConfig.RuntimeParams["application_name"])
	pool.Close()
	_, err = OpenPool(ctx, "postgres://u:p@127.0.0.1:1/db?pool_max_conns=x", "a", 1)
	require.ErrorContains(t, err, "parsing the database URL")
}
