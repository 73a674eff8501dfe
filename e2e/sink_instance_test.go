package e2e

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
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

// A sink started before its database waits for it, saying so in its log
// and on /readyz, and goes on once it answers; SIGTERM meanwhile is clean.
func TestSinkWaitsForItsDatabase(t *testing.T) {
	dbURL := dbtest.New(t)
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	real := u.Host
	// The database is reached through a port nothing listens on yet.
	addr := porttest.Addr(t)
	u.Host = addr
	topic, incidents := kafkatest.NewTopic(t, 3), kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + u.String(), "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
	ops := porttest.Addr(t)
	args := append(sinkArgs(topic, incidents), "-ops-addr", ops)
	sink := start(t, "sink", env, args...)
	require.Eventually(t, func() bool {
		code, checks := readiness(t, ops)
		return code == http.StatusServiceUnavailable && strings.Contains(checks["postgres"], "connection refused")
	}, 30*time.Second, 50*time.Millisecond, "/readyz says the database does not answer")
	require.Eventually(t, func() bool { return strings.Count(sink.out.String(), "waiting for the database") >= 2 },
		30*time.Second, 50*time.Millisecond, "the sink keeps waiting, saying so")
	require.NotContains(t, sink.out.String(), "sink starting")

	// The database comes: a proxy to the real one opens on that port.
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				d, err := net.Dial("tcp", real)
				if err != nil {
					return
				}
				defer func() { _ = d.Close() }()
				go func() { _, _ = io.Copy(d, c) }()
				_, _ = io.Copy(c, d)
			}()
		}
	}()
	require.Eventually(t, func() bool { code, _ := readiness(t, ops); return code == http.StatusOK }, 60*time.Second, 100*time.Millisecond,
		"ready once the database answers")
	require.Contains(t, sink.out.String(), "sink starting")
	sink.stop(t, 20*time.Second)
}
