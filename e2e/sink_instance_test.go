package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
)

// Two sink replicas given the same -instance-id: the broker fences one of
// them, which stops, saying why, instead of sitting idle without
// partitions; the other goes on.
func TestASinkFencedByAReplicaWithItsInstanceIDStops(t *testing.T) {
	dbURL := dbtest.New(t)
	topic, incidents := kafkatest.NewTopic(t, 3), kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
	args := append(sinkArgs(topic, incidents), "-instance-id", "twin", "-notify=false")
	first := start(t, "sink", env, args...)
	require.Eventually(t, func() bool { return strings.Contains(first.out.String(), "sink starting") }, 60*time.Second, 50*time.Millisecond)
	second := start(t, "sink", env, args...)
	var fenced, survivor *process
	select {
	case err := <-first.done:
		fenced, survivor = first, second
		require.Error(t, err, "the fenced sink exits non-zero")
	case err := <-second.done:
		fenced, survivor = second, first
		require.Error(t, err, "the fenced sink exits non-zero")
	case <-time.After(60 * time.Second):
		t.Fatal("neither sink was fenced")
	}
	require.Contains(t, fenced.out.String(), `sink stopped`)
	require.Contains(t, fenced.out.String(), `another sink joined the consumer group with -instance-id \"twin\" (each replica needs its own)`)
	survivor.stop(t, 20*time.Second)
}
