package heartbeat

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// fakeStore records the signals it is given for the one token it knows.
type fakeStore struct {
	token   string
	signals []store.Signal
	err     error
}

func (f *fakeStore) Ping(_ context.Context, token string, sig store.Signal, _ store.BeatMessage) (bool, error) {
	if f.err != nil {
		return false, f.err
	}
	if token != f.token {
		return false, nil
	}
	f.signals = append(f.signals, sig)
	return true, nil
}

func (f *fakeStore) SweepHeartbeats(context.Context, []int16, store.BeatMessage) (int, error) {
	return 0, nil
}

type everything struct{}

func (everything) Scope() site.Scope { return site.Scope{} }

func TestPingEndpoints(t *testing.T) {
	token, _, err := site.NewPingToken()
	require.NoError(t, err)
	fs := &fakeStore{token: token}
	h, err := New(Config{SweepInterval: time.Second, Timeout: time.Second}, fs, everything{}, zap.NewNop(), prometheus.NewRegistry())
	require.NoError(t, err)
	do := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("job output")))
		return rec.Code, rec.Body.String()
	}
	for path, want := range map[string]store.Signal{
		"/ping/" + token:            {ExitStatus: -1},
		"/ping/" + token + "/start": {Start: true, ExitStatus: -1},
		"/ping/" + token + "/fail":  {Failed: true, ExitStatus: -1},
		"/ping/" + token + "/0":     {ExitStatus: 0},
		"/ping/" + token + "/255":   {Failed: true, ExitStatus: 255},
	} {
		fs.signals = nil
		code, body := do("POST", path)
		require.Equal(t, http.StatusOK, code, path)
		require.Equal(t, "OK\n", body)
		require.Equal(t, []store.Signal{want}, fs.signals, path)
	}
	fs.signals = nil
	for _, m := range []string{"GET", "HEAD"} {
		code, _ := do(m, "/ping/"+token)
		require.Equal(t, http.StatusOK, code, m)
	}
	for _, path := range []string{"/ping/" + token + "/256", "/ping/" + token + "/007", "/ping/" + token + "/-1", "/ping/" + token + "/done",
		"/ping/not-a-token", "/ping/" + strings.Repeat("A", 32)} {
		code, _ := do("POST", path)
		require.Equal(t, http.StatusNotFound, code, path)
	}
	require.Len(t, fs.signals, 2, "only the GET and HEAD pings reached the store")
	code, _ := do("DELETE", "/ping/"+token)
	require.Equal(t, http.StatusMethodNotAllowed, code)

	fs.err = errors.New("database down")
	code, body := do("POST", "/ping/"+token)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "retry")
}

func TestResultSaysWhatHappened(t *testing.T) {
	at := time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC)
	started, last := at.Add(-90*time.Second), at.Add(-time.Hour)
	s := site.Site{ID: 7, URL: "heartbeat://backup", Topic: "sitewatch.checks"}
	for name, tc := range map[string]struct {
		beat     store.Beat
		class    string
		msg      string
		duration time.Duration
	}{
		"ping":           {store.Beat{Site: s, At: at, Signal: store.Signal{ExitStatus: -1}}, "", "", 0},
		"timed run":      {store.Beat{Site: s, At: at, Started: &started, Signal: store.Signal{ExitStatus: 0}}, "", "", 90 * time.Second},
		"exit status":    {store.Beat{Site: s, At: at, Signal: store.Signal{Failed: true, ExitStatus: 2}}, ClassJobFailed, "exited with status 2", 0},
		"fail":           {store.Beat{Site: s, At: at, Signal: store.Signal{Failed: true, ExitStatus: -1}}, ClassJobFailed, "reported a failure", 0},
		"never pinged":   {store.Beat{Site: s, At: at, Missed: true, Deadline: at}, ClassMissed, "no ping yet (due by 2026-12-04T03:00:00Z)", 0},
		"silent":         {store.Beat{Site: s, At: at, Missed: true, Deadline: at, LastPing: &last}, ClassMissed, "no ping since 2026-12-04T02:00:00Z", 0},
		"run never ends": {store.Beat{Site: s, At: at, Missed: true, Deadline: at, Started: &started}, ClassMissed, "the run started at 2026-12-04T02:58:30Z did not end", 90 * time.Second},
	} {
		r := Result(tc.beat)
		require.Equal(t, tc.class, r.ErrorClass, name)
		require.Contains(t, r.Error, tc.msg, name)
		require.Equal(t, tc.duration, r.Duration, name)
		require.Equal(t, site.HeartbeatRegion, r.Region, name)
		require.Equal(t, at, r.CheckedAt, name)
	}
}

func TestConfigNamesTheFlag(t *testing.T) {
	err := Config{Addr: "nonsense", SweepInterval: time.Hour, Timeout: time.Second}.Validate()
	require.ErrorContains(t, err, "ping-addr")
	require.ErrorContains(t, err, "heartbeat-sweep-interval")
}
