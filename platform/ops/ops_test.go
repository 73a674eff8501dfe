package ops

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Body)
	return rec.Code, string(body)
}

func TestEndpoints(t *testing.T) {
	s := New("127.0.0.1:0", zap.NewNop())
	ready := errors.New("database: connection refused")
	s.AddReadiness("database", func(context.Context) error { return ready })
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_test_total", Help: "t"})
	s.Registry().MustRegister(c)
	c.Add(3)
	h := s.Handler()

	code, _ := get(t, h, "/healthz")
	require.Equal(t, http.StatusOK, code)

	code, body := get(t, h, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "connection refused")

	ready = nil
	code, body = get(t, h, "/readyz")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"database":"ok"`)

	code, body = get(t, h, "/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "sitewatch_test_total 3")
	require.Contains(t, body, "go_goroutines")
}

func TestRunStopsWithContext(t *testing.T) {
	s := New("127.0.0.1:0", zap.NewNop())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	cancel()
	require.NoError(t, <-done)

	err := New("256.0.0.1:1", zap.NewNop()).Run(context.Background())
	require.ErrorContains(t, err, "listening for ops endpoints")
}

func TestReadinessReasonsAreRedacted(t *testing.T) {
	s := New("127.0.0.1:0", zap.NewNop())
	s.AddReadiness("postgres", func(context.Context) error {
		return errors.New(`connecting to postgres://sitewatch:s3cret@db:5432/x failed; password=hunter2 token: abc "secret=x y"`)
	})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	body := rec.Body.String()
	for _, secret := range []string{"s3cret", "hunter2", "abc"} {
		require.NotContains(t, body, secret)
	}
	require.Contains(t, body, "postgres://sitewatch:xxxxx@db:5432/x", "the reason stays readable")
	require.Equal(t, "user:xxxxx@h", Redact("user:xxxxx@h"))
}
