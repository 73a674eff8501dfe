package record

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

func TestMessageCarriesTheContract(t *testing.T) {
	no := false
	expiry := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	res := probe.Result{Site: site.Site{ID: 42, URL: "http://a/", MustMatch: []string{"ok"}, Topic: "checks"},
		CheckedAt: time.Now().UTC(), StatusCode: 200, Duration: 1500 * time.Microsecond,
		Phases:       probe.Phases{DNS: time.Millisecond, Connect: 2 * time.Millisecond, TLS: 3 * time.Millisecond, TTFB: 4 * time.Millisecond, Transfer: 250 * time.Microsecond},
		RegexMatched: &no, Regexes: []checkevent.RegexResult{{Pattern: "ok", Match: true}},
		ErrorClass: probe.ClassRegex, Error: "body does not match", BodyBytes: 77, Truncated: true, Redirects: 3,
		FinalURL: "http://a/final", TLSExpiry: expiry, RemoteIP: "127.0.0.1", Region: "eu-west"}
	m, err := Message(res)
	require.NoError(t, err)
	require.Equal(t, "checks", m.Topic)
	require.Equal(t, []byte("42"), m.Key)
	require.Equal(t, checkevent.Type, m.Headers["ce_type"])
	ev, err := checkevent.Decode(m.Payload)
	require.NoError(t, err)
	require.Equal(t, m.EventID, ev.EventID)
	require.Equal(t, 1.5, ev.DurationMS)
	require.Equal(t, &no, ev.RegexMatched)
	require.Equal(t, "regex", ev.ErrorClass)
	require.Equal(t, checkevent.SchemaVersion, ev.SchemaVersion)
	require.Equal(t, res.Regexes, ev.Regexes)
	require.Equal(t, []float64{1, 2, 3, 4, 0.25}, []float64{ev.DNSMS, ev.ConnectMS, ev.TLSMS, ev.TTFBMS, ev.TransferMS})
	require.EqualValues(t, 77, ev.BodyBytes)
	require.True(t, ev.Truncated)
	require.Equal(t, 3, ev.Redirects)
	require.Equal(t, "http://a/final", ev.FinalURL)
	require.Equal(t, &expiry, ev.TLSExpiry)
	require.Nil(t, ev.TLSChainExpiry, "zero time is left out")
	require.Equal(t, "127.0.0.1", ev.RemoteIP)
	require.Equal(t, "eu-west", ev.Region)

	res.Region = ""
	_, err = Message(res)
	require.ErrorContains(t, err, "region", "an event the sink would refuse never reaches the outbox")
}

// Each kind of check says so in its event (grpcs as grpc: its handshake
// fields tell TLS), with what the kind reports; HTTP names no kind.
func TestMessageCarriesTheKind(t *testing.T) {
	yes := true
	for url, kind := range map[string]string{"https://a/": "", "tcp://a:1": "tcp", "tls://a:1": "tls", "dns:///a": "dns",
		"grpc://a:1": "grpc", "grpcs://a:1/s": "grpc", "icmp://a": "icmp"} {
		res := probe.Result{Site: site.Site{ID: 1, URL: url, Topic: "checks"}, CheckedAt: time.Now().UTC(), Region: "local",
			TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", OCSPStapled: &yes, DNSRCode: "NOERROR", DNSAnswers: []string{"192.0.2.1"},
			ICMPSent: 3, ICMPReceived: 2, RTTMin: 200 * time.Nanosecond, RTTAvg: 1500 * time.Microsecond, RTTMax: 4 * time.Millisecond}
		m, err := Message(res)
		require.NoError(t, err, url)
		ev, err := checkevent.Decode(m.Payload)
		require.NoError(t, err, url)
		require.Equal(t, kind, ev.Kind, url)
		require.Equal(t, "TLS 1.3", ev.TLSVersion)
		require.Equal(t, &yes, ev.OCSPStapled)
		require.Equal(t, []string{"192.0.2.1"}, ev.DNSAnswers)
		require.Equal(t, 2, ev.ICMPReceived)
		require.Equal(t, []float64{0.001, 1.5, 4}, []float64{*ev.RTTMinMS, *ev.RTTAvgMS, *ev.RTTMaxMS}, "a sub-microsecond round trip is not 0")
	}
}

type flakyWriter struct {
	mu       sync.Mutex
	failures int
	attempts int
	batches  [][]outbox.Message
}

func (f *flakyWriter) WriteOutbox(ctx context.Context, msgs []outbox.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("an attempt without a deadline")
	}
	if f.failures > 0 {
		f.failures--
		return errors.New("connection refused")
	}
	f.batches = append(f.batches, msgs)
	return nil
}

// WriteOutboxAgain is WriteOutbox: a failed attempt here wrote nothing.
func (f *flakyWriter) WriteOutboxAgain(ctx context.Context, msgs []outbox.Message) error {
	return f.WriteOutbox(ctx, msgs)
}

// lostAnswer is the real store whose first write commits and is then
// reported failed, as when the connection or the primary goes at COMMIT
// (seen in the PostgreSQL failover test).
type lostAnswer struct {
	*store.Store
	lost atomic.Bool
}

func (l *lostAnswer) WriteOutbox(ctx context.Context, msgs []outbox.Message) error {
	if err := l.Store.WriteOutbox(ctx, msgs); err != nil {
		return err
	}
	if l.lost.CompareAndSwap(false, true) {
		return errors.New("unexpected EOF")
	}
	return nil
}

func TestARetryAfterACommitWhoseAnswerWasLostWritesEachResultOnce(t *testing.T) {
	pool := dbtest.Pool(t, dbtest.New(t))
	w := &lostAnswer{Store: store.New(pool)}
	r := newRecorder(t, Config{BatchSize: 10, FlushInterval: time.Hour, ShutdownGrace: 2 * time.Second, WriteTimeout: 5 * time.Second}, w)
	in := make(chan probe.Result, 25)
	for i := range 25 {
		in <- result(i + 1)
	}
	close(in)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // writes get the shutdown grace: a retry that cannot succeed gives up, counted as lost
	r.Run(ctx, in)
	require.True(t, w.lost.Load())
	require.Zero(t, testutil.ToFloat64(r.lost), "the batch written again is found written, not refused for ever")
	var rows, ids int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*), count(DISTINCT event_id) FROM outbox").Scan(&rows, &ids))
	require.Equal(t, 25, rows)
	require.Equal(t, 25, ids)
}

func TestRecorderBatchesAndRetriesWithoutLosingResults(t *testing.T) {
	w := &flakyWriter{failures: 2}
	r := newRecorder(t, Config{BatchSize: 10, FlushInterval: 20 * time.Millisecond, ShutdownGrace: time.Second, WriteTimeout: time.Second}, w)
	in := make(chan probe.Result)
	done := make(chan struct{})
	go func() { r.Run(context.Background(), in); close(done) }()
	for i := range 25 {
		in <- result(i + 1)
	}
	close(in)
	<-done
	total := 0
	for _, b := range w.batches {
		require.LessOrEqual(t, len(b), 10)
		total += len(b)
	}
	require.Equal(t, 25, total, "every result written despite two failed transactions")
	require.LessOrEqual(t, len(w.batches), 4, "grouped into few transactions")
}

func result(id int) probe.Result {
	return probe.Result{Site: site.Site{ID: int64(id), URL: "http://a", Topic: "t"}, CheckedAt: time.Now(), Region: "local"}
}

func newRecorder(t *testing.T, cfg Config, w OutboxWriter) *Recorder {
	t.Helper()
	r, err := New(cfg, w, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	return r
}

func TestShutdownInAnOutageRetriesWithBackoffThenCountsTheLoss(t *testing.T) {
	w := &flakyWriter{failures: 1 << 30}
	reg := prometheus.NewRegistry()
	r, err := New(Config{BatchSize: 10, FlushInterval: time.Hour, ShutdownGrace: 500 * time.Millisecond, WriteTimeout: time.Second},
		w, zaptest.NewLogger(t), reg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // shutdown has begun; the database is down
	in := make(chan probe.Result, 3)
	in <- result(1)
	in <- result(2)
	close(in)
	r.Run(ctx, in)
	require.GreaterOrEqual(t, w.attempts, 2)
	require.LessOrEqual(t, w.attempts, 6, "backoff within the grace period, no tight loop")
	require.Equal(t, 2.0, testutil.ToFloat64(r.lost), "the lost results are counted")
}

func TestNewRefusesABadConfig(t *testing.T) {
	good := Config{BatchSize: 10, FlushInterval: time.Millisecond, ShutdownGrace: time.Second, WriteTimeout: time.Second}
	for name, mut := range map[string]func(*Config){
		"batch size":     func(c *Config) { c.BatchSize = 0 },
		"flush interval": func(c *Config) { c.FlushInterval = 0 },
		"shutdown grace": func(c *Config) { c.ShutdownGrace = -1 },
		"write timeout":  func(c *Config) { c.WriteTimeout = 0 },
	} {
		cfg := good
		mut(&cfg)
		before := cfg
		_, err := New(cfg, &flakyWriter{}, zaptest.NewLogger(t), prometheus.NewRegistry())
		require.ErrorContains(t, err, name)
		require.Equal(t, before, cfg)
	}
}

// A result whose topic the outbox refuses is dropped and counted; the
// others of its batch are written.
func TestOneBadResultDoesNotHoldBackTheOthers(t *testing.T) {
	w := &flakyWriter{}
	r := newRecorder(t, Config{BatchSize: 10, FlushInterval: time.Hour, ShutdownGrace: time.Second, WriteTimeout: time.Second}, w)
	in := make(chan probe.Result, 3)
	bad := result(2)
	bad.Site.Topic = "no spaces allowed"
	in <- result(1)
	in <- bad
	in <- result(3)
	close(in)
	r.Run(context.Background(), in)
	require.Len(t, w.batches, 1)
	require.Len(t, w.batches[0], 2, "the two good results are written")
	require.Equal(t, 1.0, testutil.ToFloat64(r.dropped))
}

func TestStuckRecorderIsReported(t *testing.T) {
	w := &flakyWriter{failures: 2}
	r := newRecorder(t, Config{BatchSize: 1, FlushInterval: time.Hour, ShutdownGrace: time.Second, WriteTimeout: time.Second}, w)
	require.NoError(t, r.Stuck(0))
	in := make(chan probe.Result, 1)
	in <- result(1)
	close(in)
	// While the write fails it is stuck; once written it is not.
	r.failingSince.Store(time.Now().Add(-time.Hour).UnixNano())
	require.ErrorContains(t, r.Stuck(time.Minute), "writing check results has failed for")
	r.Run(context.Background(), in)
	require.NoError(t, r.Stuck(0), "a successful write clears it")
}
