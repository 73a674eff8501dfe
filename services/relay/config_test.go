package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func loadConfig(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	var c Config
	if _, err := c.parse("relay", args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestConfigDefaultsAndErrors(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db")
	_, err := loadConfig(t)
	require.ErrorContains(t, err, "topics: at least one pattern required (RELAY_TOPICS", "no permissive default")
	t.Setenv("RELAY_TOPICS", "*")
	c, err := loadConfig(t)
	require.NoError(t, err)
	sources, err := c.loadSources()
	require.NoError(t, err)
	require.Len(t, sources, 1)
	require.Equal(t, "outbox", sources[0].Table)
	require.Equal(t, []string{"*"}, sources[0].Topics)

	t.Setenv("RELAY_BATCH_SIZE", "0")
	_, err = loadConfig(t, "-poll-interval=1ms", "-table=a.b.c", "-kafka-brokers=nohost", "-topics=[", "-max-attempts=0",
		"-message-timeout=500ms", "-drain-timeout=0s", "-partition-rows=10")
	require.ErrorContains(t, err, "batch-size: 0")
	require.ErrorContains(t, err, "partition-rows: 10: want at least 1000")
	require.ErrorContains(t, err, "message-timeout: 500ms")
	require.ErrorContains(t, err, "drain-timeout: 0s")
	require.ErrorContains(t, err, "poll-interval: 1ms")
	require.ErrorContains(t, err, "table: ")
	require.ErrorContains(t, err, `kafka-brokers: "nohost"`)
	require.ErrorContains(t, err, `topics: pattern "["`)
	require.ErrorContains(t, err, "max-attempts: 0")

	t.Setenv("RELAY_BATCH_SIZE", "ten")
	_, err = loadConfig(t)
	require.ErrorContains(t, err, "RELAY_BATCH_SIZE")
}

func TestSourcesFile(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "sources.yaml")
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	t.Setenv("BILLING_DB", "postgres://b:b@127.0.0.1:5432/billing")
	c, err := loadConfig(t, "-sources-file", write(`
sources:
  - name: sitewatch
    database_url: postgres://u:p@127.0.0.1:5432/db
    topics: ["sitewatch.*"]
  - name: billing
    database_url: ${BILLING_DB}
    table: billing.outbox
    topics: ["billing.invoices", "billing.payments.*"]
    ce_source: /billing
    ce_type: com.example.billing
    id_header: none
`), "-ce-type", "com.example.default")
	require.NoError(t, err)
	before := c
	sources, err := c.loadSources()
	require.NoError(t, err)
	require.Equal(t, before, c, "loading the sources does not change the config")
	require.Len(t, sources, 2)
	require.Equal(t, "outbox", sources[0].Table)
	require.Equal(t, "postgres://b:b@127.0.0.1:5432/billing", sources[1].DatabaseURL)
	require.True(t, sources[1].Allows("billing.payments.eu"))
	require.False(t, sources[1].Allows("sitewatch.checks"))
	// Header settings: the source's own, else the flags', else neutral defaults.
	require.Equal(t, "/relay/sitewatch", sources[0].CESource)
	require.Equal(t, "com.example.default", sources[0].CEType)
	require.Equal(t, "outbox_id", sources[0].IDHeader)
	require.Equal(t, "/billing", sources[1].CESource)
	require.Equal(t, "com.example.billing", sources[1].CEType)
	require.Empty(t, sources[1].IDHeader, `"none" sends no id header`)

	_, err = loadConfig(t, "-sources-file", write(`
sources:
  - name: a
    database_url: postgres://u:p@127.0.0.1/db
  - name: a
    database_url: ""
    topics: ["x"]
    tabel: typo
`))
	require.ErrorContains(t, err, "field tabel not found")

	_, err = loadConfig(t, "-sources-file", write(`
sources:
  - name: a
    database_url: postgres://u:p@127.0.0.1/db
  - name: a
    topics: ["x"]
`))
	require.ErrorContains(t, err, "sources[0].topics: at least one pattern required")
	require.ErrorContains(t, err, `sources[1].name: "a" used twice`)
	require.ErrorContains(t, err, "sources[1].database_url: required")

	_, err = loadConfig(t, "-sources-file", write(`
sources:
  - database_url: postgres://u:p@127.0.0.1/db
    topics: ["x"]
`))
	require.ErrorContains(t, err, "sources[0].name: required")

	_, err = loadConfig(t, "-sources-file", write("sources:\n"+strings.Repeat("# padding\n", 120000)))
	require.ErrorContains(t, err, "larger than 1024 KiB")

	_, err = loadConfig(t, "-sources-file", filepath.Join(dir, "missing.yaml"))
	require.ErrorContains(t, err, "sources-file: open")
}
