package e2e

// Notifications with the real binaries: a notifier killed with kill -9
// while a receiver is down loses nothing and a receiver that dedupes on
// the idempotency key sees each notification once; a flapping site gives
// one notification per state change.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// switchableServer answers 200 "ok", or 503 while failing is set.
func switchableServer(t *testing.T) (*httptest.Server, *atomic.Bool) {
	failing := &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, failing
}

// hookReceiver is a receiver of notifications on a fixed address that can
// go down (its listener closed: connections refused) and come back: a
// webhook's, or with another read, an alerting tool's.
type hookReceiver struct {
	t    *testing.T
	addr string
	read func(*http.Request, []byte) notice // what a request says
	code int                                // the answer
	mu   sync.Mutex
	srv  *http.Server
	seen []notice // every request, duplicates included
	hold func()   // runs before a request is answered, when set
}

// notice is what a request said: the key a receiver dedupes on, the
// event's type or action, and whether it carried the channel's secret.
type notice struct {
	key, typ string
	signed   bool
}

// newHookReceiver is a webhook's receiver: the CloudEvent's type, the
// idempotency key, the signature checked with "hook-secret".
func newHookReceiver(t *testing.T) *hookReceiver {
	return newReceiver(t, http.StatusOK, func(req *http.Request, body []byte) notice {
		var ce struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(body, &ce)
		return notice{req.Header.Get(notify.IdempotencyHeader), ce.Type, notify.Verify("hook-secret", body, req.Header.Get(notify.SignatureHeader))}
	})
}

func newReceiver(t *testing.T, code int, read func(*http.Request, []byte) notice) *hookReceiver {
	r := &hookReceiver{t: t, addr: porttest.Addr(t), read: read, code: code}
	t.Cleanup(r.down)
	return r
}

func (r *hookReceiver) url() string { return "http://" + r.addr + "/hook" }

func (r *hookReceiver) up() {
	l, err := net.Listen("tcp", r.addr)
	require.NoError(r.t, err)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		n := r.read(req, body)
		r.mu.Lock()
		r.seen = append(r.seen, n)
		hold := r.hold
		r.mu.Unlock()
		if hold != nil {
			hold()
		}
		w.WriteHeader(r.code)
	})}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

func (r *hookReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

func (r *hookReceiver) notices() []notice {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notice(nil), r.seen...)
}

// deduped is what a receiver that dedupes on the idempotency key keeps.
func deduped(ns []notice) map[string]notice {
	out := map[string]notice{}
	for _, n := range ns {
		if _, ok := out[n.key]; !ok {
			out[n.key] = n
		}
	}
	return out
}

// incidentEvents are the ids and types of the incident events written to
// the outbox: what the receiver must get, each once.
func incidentEvents(t *testing.T, pool *pgxpool.Pool, topic string) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(),
		`SELECT convert_from(payload, 'UTF8')::jsonb->>'event_id', headers->>'ce_type' FROM outbox WHERE topic_name = $1`, topic)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, typ string
		require.NoError(t, rows.Scan(&id, &typ))
		out[id] = typ
	}
	require.NoError(t, rows.Err())
	return out
}

// state sums up the pipeline's tables for a failure message.
func state(t *testing.T, pool *pgxpool.Pool) string {
	return fmt.Sprintf("stats=%d (newest %s) incidents=%d open=%d deliveries=%d outbox=%d unpublished=%d",
		count(t, pool, "SELECT count(*) FROM stats"), text(t, pool, "SELECT coalesce(max(checked_at)::text, '') FROM stats"),
		count(t, pool, "SELECT count(*) FROM incidents"), count(t, pool, "SELECT count(*) FROM incidents WHERE resolved_at IS NULL"),
		count(t, pool, "SELECT count(*) FROM deliveries"), count(t, pool, "SELECT count(*) FROM outbox"),
		count(t, pool, "SELECT count(*) FROM outbox WHERE NOT published"))
}

func text(t *testing.T, pool *pgxpool.Pool, query string) string {
	var s string
	require.NoError(t, pool.QueryRow(context.Background(), query).Scan(&s))
	return s
}

// sinkArgs run a sink on the test's own topics and groups, retrying
// deliveries every 200 ms to 2 s.
func sinkArgs(topic, incidents string) []string {
	return []string{"-ops-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0", "-topic", topic, "-group-id", "e2e-" + topic, "-batch-wait", "50ms",
		"-incident-topic", incidents, "-notify-group-id", "e2e-notify-" + topic,
		"-notify-retry-backoff", "200ms", "-notify-max-backoff", "2s", "-notify-max-attempts", "100"}
}

func TestNotifierKilledDuringAReceiverOutageLosesNothing(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic, incidents := kafkatest.NewTopic(t, 3), kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
	srv, failing := switchableServer(t)
	hook := newHookReceiver(t) // down: nothing listens
	code, out := run(t, append(env, "SITEWATCH_CHANNEL_SECRET=hook-secret"), "monitor", "channels", "add", "oncall", "--webhook", hook.url(), "--default")
	require.Equal(t, 0, code, out)
	const sites = 5
	importSites(t, env, srv.URL, sites, "1s", "    topic: "+topic+"\n")
	failing.Store(true)

	monitor := startReplica(t, env, "eu-west")
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+incidents)
	sink := start(t, "sink", env, sinkArgs(topic, incidents)...)
	outage := time.Now()

	// Every site down; the notifier recorded the notifications and keeps
	// trying the receiver, which refuses connections.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, sites, count(t, pool, "SELECT count(*) FROM deliveries WHERE attempts >= 2 AND status = 'pending'"),
			"the opened notifications recorded and retried: %s", state(t, pool))
	}, 60*time.Second, 100*time.Millisecond)
	sink.kill9()
	sink = start(t, "sink", env, sinkArgs(topic, incidents)...)
	failing.Store(false)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, 2*sites, count(t, pool, "SELECT count(*) FROM deliveries"), "the resolved notifications recorded too: %s", state(t, pool))
	}, 60*time.Second, 100*time.Millisecond)
	require.Zero(t, len(hook.notices()))

	// The receiver comes back after 20 s; the notifier is killed again
	// while its first deliveries are in flight, answered only after it died.
	time.Sleep(time.Until(outage.Add(20 * time.Second))) // the outage itself, not a wait for an event
	inFlight, killed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hook.mu.Lock()
	hook.hold = func() {
		once.Do(func() { close(inFlight) })
		<-killed
	}
	hook.mu.Unlock()
	hook.up()
	<-inFlight
	sink.kill9()
	close(killed)
	sink = start(t, "sink", env, sinkArgs(topic, incidents)...)

	want := incidentEvents(t, pool, incidents)
	require.Len(t, want, 2*sites)
	require.Eventually(t, func() bool { return len(deduped(hook.notices())) == 2*sites }, 60*time.Second, 100*time.Millisecond,
		"every notification delivered")
	allDelivered := func() bool {
		return count(t, pool, "SELECT count(*) FROM deliveries WHERE status = 'delivered'") == 2*sites
	}
	require.Eventually(t, allDelivered, 30*time.Second, 100*time.Millisecond, "every delivery recorded as delivered")
	got := deduped(hook.notices())
	for key, typ := range want {
		require.Contains(t, got, key)
		require.Equal(t, typ, got[key].typ)
		require.True(t, got[key].signed)
	}
	require.Greater(t, len(hook.notices()), len(got),
		"the deliveries in flight when the notifier died came again, with the same idempotency key")
	require.Zero(t, count(t, pool, "SELECT count(*) FROM deliveries WHERE status <> 'delivered'"), "nothing failed or left pending")

	monitor.stop(t, 30*time.Second)
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)
}

func TestAFlappingSiteNotifiesOncePerStateChange(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic, incidents := kafkatest.NewTopic(t, 3), kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
	// /flap fails every other check for its first 6, then passes; with
	// thresholds of 1 each is a state change. /jitter fails every other
	// check for ever: with thresholds of 2 it never changes state.
	var flapHits, jitterHits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := jitterHits.Add(1)
		if r.URL.Path == "/flap" {
			jitterHits.Add(-1)
			n = flapHits.Add(1)
			if n > 6 {
				n = 0
			}
		}
		if n%2 == 1 {
			http.Error(w, "flap", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	hook := newHookReceiver(t)
	hook.up()
	code, out := run(t, append(env, "SITEWATCH_CHANNEL_SECRET=hook-secret"), "monitor", "channels", "add", "oncall", "--webhook", hook.url(), "--default")
	require.Equal(t, 0, code, out)
	for path, threshold := range map[string]string{"/flap": "1", "/jitter": "2"} {
		code, out = run(t, env, "monitor", "sites", "add", srv.URL+path, "--interval", "1s", "--timeout", "1s", "--topic", topic,
			"--failure-threshold", threshold, "--success-threshold", threshold)
		require.Equal(t, 0, code, out)
	}
	monitor := startReplica(t, env, "eu-west")
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+incidents)
	sink := start(t, "sink", env, sinkArgs(topic, incidents)...)

	// Three times down and up again, then steady.
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM incidents WHERE resolved_at IS NOT NULL") == 3
	}, 60*time.Second, 100*time.Millisecond, "three incidents opened and resolved")
	require.Eventually(t, func() bool { return len(hook.notices()) >= 6 }, 30*time.Second, 100*time.Millisecond)
	// Six more checks of /jitter (three failed) and two of the steady /flap since.
	jitter, flap := jitterHits.Load(), flapHits.Load()
	require.Eventually(t, func() bool { return jitterHits.Load() >= jitter+6 && flapHits.Load() >= flap+2 }, 30*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return count(t, pool, "SELECT count(*) FROM stats") >= int(jitter+flap)+8 },
		30*time.Second, 100*time.Millisecond, "those checks stored")

	require.Equal(t, 3, count(t, pool, "SELECT count(*) FROM incidents"), "the jittering site opened none")
	want := incidentEvents(t, pool, incidents)
	require.Len(t, want, 6, "one opened and one resolved event per incident")
	ns := hook.notices()
	require.Len(t, ns, 6, "one notification per state change: %v", ns)
	got := deduped(ns)
	var types []string
	for _, n := range ns {
		require.Contains(t, want, n.key)
		types = append(types, strings.TrimPrefix(n.typ, "io.sitewatch.incident."))
	}
	require.Len(t, got, 6)
	require.Equal(t, "opened resolved opened resolved opened resolved", strings.Join(types, " "), "in order")
	require.Equal(t, 6, count(t, pool, "SELECT count(*) FROM deliveries WHERE status = 'delivered'"))

	monitor.stop(t, 30*time.Second)
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)
}
