package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaultsAndErrors(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db")
	c, err := loadConfig(nil)
	require.NoError(t, err)
	require.Equal(t, "outbox", c.Table)
	require.Equal(t, 1000, c.BatchSize)

	t.Setenv("RELAY_BATCH_SIZE", "0")
	_, err = loadConfig([]string{"-poll-interval=1ms", "-table=a.b.c", "-kafka-brokers=nohost"})
	require.ErrorContains(t, err, "batch-size: 0")
	require.ErrorContains(t, err, "poll-interval: 1ms")
	require.ErrorContains(t, err, "table: ")
	require.ErrorContains(t, err, `kafka-brokers: "nohost"`)

	t.Setenv("RELAY_BATCH_SIZE", "ten")
	_, err = loadConfig(nil)
	require.ErrorContains(t, err, "RELAY_BATCH_SIZE")
}
