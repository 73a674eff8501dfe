package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaultsAndErrors(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/db")
	c, err := loadConfig(nil)
	require.NoError(t, err)
	require.Equal(t, "sitewatch.checks", c.Topic)
	require.Equal(t, 14*24*time.Hour, c.Maintain.RawRetention)
	t.Setenv("SINK_RAW_RETENTION", "48h")
	c, err = loadConfig(nil)
	require.NoError(t, err)
	require.Equal(t, 48*time.Hour, c.Maintain.RawRetention, "SINK_RAW_RETENTION")
	_, err = loadConfig([]string{"-raw-retention=1h", "-rollup-1h-retention=0s"})
	require.ErrorContains(t, err, "raw-retention: 1h0m0s: want 24h")
	require.ErrorContains(t, err, "rollup-1h-retention: 0s")

	_, err = loadConfig([]string{"-topic=bad topic", "-batch-size=0", "-writers=0", "-group-id=", "-ops-addr=nope", "-notify-retry-backoff=0s"})
	require.ErrorContains(t, err, `topic: invalid outbox message: topic "bad topic"`)
	require.ErrorContains(t, err, "batch-size: 0")
	require.ErrorContains(t, err, "writers: 0: want 1..64")
	require.ErrorContains(t, err, "group-id: required")
	require.ErrorContains(t, err, "ops-addr:")
	require.ErrorContains(t, err, "notify-retry-backoff: 0s: want 10ms..1h")
	_, err = loadConfig([]string{"-notify-retry-backoff=2s", "-notify-max-backoff=1s", "-instance-id=a b", "-session-timeout=0s"})
	require.ErrorContains(t, err, `instance-id: "a b"`)
	require.ErrorContains(t, err, "session-timeout: 0s")
	require.ErrorContains(t, err, "notify-max-backoff: 1s: want notify-retry-backoff..24h")

	_, err = loadConfig([]string{"-topic-replication-factor=0", "-topic-min-insync-replicas=0"})
	require.ErrorContains(t, err, "topic-replication-factor: 0: want 1..32")
	require.ErrorContains(t, err, "topic-min-insync-replicas: 0")
	_, err = loadConfig([]string{"-topic-replication-factor=3", "-topic-min-insync-replicas=4"})
	require.ErrorContains(t, err, "topic-min-insync-replicas: 4: want 1..topic-replication-factor")
	require.Equal(t, 3, c.TopicReplicas, "three replicas unless told")
	require.Equal(t, 2, c.TopicMinInsync)

	// The public pages: off by default; each bad setting named when on.
	require.Empty(t, c.Public.Addr, "no public listener unless asked")
	t.Setenv("SINK_PUBLIC_ADDR", "0.0.0.0:8090")
	c, err = loadConfig(nil)
	require.NoError(t, err)
	require.Equal(t, "0.0.0.0:8090", c.Public.Addr, "SINK_PUBLIC_ADDR")
	_, err = loadConfig([]string{"-public-rate-limit=0", "-public-burst=0", "-public-client-ip-header=X Forwarded", "-public-cache=0s"})
	require.ErrorContains(t, err, "public-rate-limit: 0")
	require.ErrorContains(t, err, "public-burst: 0")
	require.ErrorContains(t, err, `public-client-ip-header: "X Forwarded"`)
	require.ErrorContains(t, err, "public-cache: 0s")
	_, err = loadConfig([]string{"-public-addr=nope"})
	require.ErrorContains(t, err, `public-addr: "nope"`)
}
