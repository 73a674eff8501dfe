package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

func TestConditionsAndTheDegradedLimit(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"UP","items":[1,2],"latency_ms":412}`))
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>ok</html>")) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // the slowness under test
		_, _ = w.Write([]byte("ok"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p := New(Config{MaxBodyBytes: 1 << 20, UserAgent: "test", MaxRedirects: 3})
	check := func(s site.Site) Result {
		tg, err := Compile(s.WithDefaults())
		require.NoError(t, err)
		return p.Check(context.Background(), tg)
	}

	r := check(site.Site{URL: srv.URL + "/health", Conditions: []string{`$.status == "UP"`, `$.items.length > 0`, `header.Content-Type contains "json"`}})
	require.Empty(t, r.ErrorClass, r.Error)
	require.Equal(t, []checkevent.ConditionResult{{Condition: `$.status == "UP"`, Passed: true, Actual: `$.status is "UP"`},
		{Condition: `$.items.length > 0`, Passed: true, Actual: `$.items.length is 2`},
		{Condition: `header.Content-Type contains "json"`, Passed: true, Actual: `header Content-Type is "application/json"`}}, r.Conditions)

	r = check(site.Site{URL: srv.URL + "/health", Conditions: []string{`$.latency_ms < 300`, `$.status == "UP"`}})
	require.Equal(t, ClassCondition, r.ErrorClass)
	require.Equal(t, `condition $.latency_ms < 300 failed: $.latency_ms is 412`, r.Error)
	require.Len(t, r.Conditions, 2, "every condition is reported")
	require.True(t, r.Conditions[1].Passed)

	r = check(site.Site{URL: srv.URL + "/page", Conditions: []string{`$.status == "UP"`}})
	require.Equal(t, ClassCondition, r.ErrorClass)
	require.Contains(t, r.Error, "the body is not JSON")

	// The status comes first: a failed status is not also a failed condition.
	r = check(site.Site{URL: srv.URL + "/missing", Conditions: []string{`$.status == "UP"`}})
	require.Equal(t, ClassHTTPStatus, r.ErrorClass)
	require.Empty(t, r.Conditions)

	// Slower than the limit: passing, but degraded.
	r = check(site.Site{URL: srv.URL + "/slow", DegradedAfter: 100 * time.Millisecond, Timeout: 5 * time.Second, Interval: time.Minute})
	require.Empty(t, r.ErrorClass, r.Error)
	require.Contains(t, r.Degraded, "over the limit of 100ms")
	r = check(site.Site{URL: srv.URL + "/page", DegradedAfter: 5 * time.Second, Timeout: 10 * time.Second, Interval: time.Minute})
	require.Empty(t, r.Degraded, "fast enough")
	r = check(site.Site{URL: srv.URL + "/missing", DegradedAfter: time.Nanosecond, Timeout: 10 * time.Second, Interval: time.Minute})
	require.Empty(t, r.Degraded, "a failed check is failed, not degraded")
}
