package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
)

// A relay started before its table exists (the database not migrated yet,
// as when containers start together) waits, says why on /readyz, and
// starts publishing once the table is there.
func TestRelayWaitsForItsTableAtStartUp(t *testing.T) {
	url := dbtest.NewSchema(t) // empty: no outbox table yet
	cfg := kafkatest.Config(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ops := l.Addr().String()
	require.NoError(t, l.Close())
	p := startRelay(t, url, cfg.Brokers, "test.*", "-ops-addr", ops)

	readyz := func() (int, string) {
		resp, err := http.Get("http://" + ops + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	require.Eventually(t, func() bool {
		code, body := readyz()
		return code == http.StatusServiceUnavailable && strings.Contains(body, "waiting for source default")
	}, 20*time.Second, 100*time.Millisecond, "not ready, saying why")
	select {
	case <-p.done:
		t.Fatal("the relay exited instead of waiting")
	default:
	}

	require.NoError(t, db.Migrate(context.Background(), url, zap.NewNop()))
	require.Eventually(t, func() bool {
		code, _ := readyz()
		return code == http.StatusOK
	}, 30*time.Second, 100*time.Millisecond, "ready once the table exists")
	p.terminate(t)
}
