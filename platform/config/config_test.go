package config

import (
	"flag"
	"io"
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
	require.NoError(t, parse(fs, "RELAY", []string{"-poll-interval=3s"}, lookup))
	require.Equal(t, 50, *n, "env sets the default")
	require.Equal(t, "from-shared", *u, "shared names need no prefix")
	require.Equal(t, 3*time.Second, *d, "flags win over env")

	env["RELAY_DATABASE_URL"] = "from-prefixed"
	fs, _, u, _ = newFlags()
	require.NoError(t, parse(fs, "RELAY", nil, lookup))
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
	err := parse(fs, "RELAY", nil, lookup)
	require.ErrorContains(t, err, `environment variable RELAY_BATCH_SIZE="lots"`)

	fs, _, _, _ = newFlags()
	err = parse(fs, "RELAY", []string{"-batch-size=x"}, func(string) (string, bool) { return "", false })
	require.ErrorContains(t, err, `invalid value "x" for flag -batch-size`)
}
