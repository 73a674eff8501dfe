package notifier

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/notify"
)

type receiver struct {
	*httptest.Server
	up   atomic.Bool
	mu   sync.Mutex
	got  []*http.Request
	body [][]byte
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.up.Store(true)
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !r.up.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got, r.body = append(r.got, req), append(r.body, b)
		r.mu.Unlock()
	}))
	t.Cleanup(r.Close)
	return r
}

func message(t testing.TB, site int64, typ string) *kafka.Message {
	t.Helper()
	b, err := json.Marshal(checkevent.Incident{SchemaVersion: 1, EventID: uuid.NewString(), IncidentID: 1, SiteID: site,
		URL: "https://a/", Kind: checkevent.KindDown, State: "opened", OpenedAt: time.Now(), ErrorClass: "connect", Regions: []string{"eu-west"}})
	require.NoError(t, err)
	topic := checkevent.IncidentTopic
	return &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic}, Value: b, Headers: []kafka.Header{{Key: "ce_type", Value: []byte(typ)}}}
}

func TestDeliveriesAreSignedRetriedAndIndependentPerChannel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	good, flaky := newReceiver(t), newReceiver(t)
	flaky.up.Store(false)
	var site int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO sites (url) VALUES ('https://a/') RETURNING id`).Scan(&site))
	_, err := pool.Exec(ctx, `INSERT INTO channels (name, kind, url, secret) VALUES ('ops', 'webhook', $1, 's3cret'), ('team', 'webhook', $2, 'other')`,
		good.URL, flaky.URL)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO site_channels SELECT $1, id FROM channels`, site)
	require.NoError(t, err)
	n, err := New(Config{MaxAttempts: 3, RetryBackoff: time.Millisecond, MaxBackoff: time.Second, PollInterval: time.Millisecond, Batch: 10},
		pool, notify.Client(), zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)

	m := message(t, site, checkevent.IncidentOpenedType)
	require.NoError(t, n.record(ctx, m))
	require.NoError(t, n.record(ctx, m), "a re-delivered event records nothing new")
	sent, err := n.deliverOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 2, sent)

	// The good channel got it, signed, with the event id as idempotency key,
	// although the other channel's receiver is down.
	require.Len(t, good.got, 1)
	var in checkevent.Incident
	require.NoError(t, json.Unmarshal(m.Value, &in))
	require.Equal(t, in.EventID, good.got[0].Header.Get(notify.IdempotencyHeader))
	require.True(t, notify.Verify("s3cret", good.body[0], good.got[0].Header.Get(notify.SignatureHeader)), "a valid signature")
	require.False(t, notify.Verify("wrong", good.body[0], good.got[0].Header.Get(notify.SignatureHeader)))
	var ce map[string]any
	require.NoError(t, json.Unmarshal(good.body[0], &ce))
	require.Equal(t, checkevent.IncidentOpenedType, ce["type"])

	// The flaky one is retried after its backoff, then delivered.
	var status string
	var attempts int
	require.NoError(t, pool.QueryRow(ctx, "SELECT status, attempts FROM deliveries d JOIN channels c ON c.id = d.channel_id WHERE c.name = 'team'").Scan(&status, &attempts))
	require.Equal(t, "pending", status)
	require.Equal(t, 1, attempts)
	flaky.up.Store(true)
	require.Eventually(t, func() bool {
		_, err := n.deliverOnce(ctx)
		require.NoError(t, err)
		flaky.mu.Lock()
		defer flaky.mu.Unlock()
		return len(flaky.got) == 1
	}, 10*time.Second, 10*time.Millisecond)
	require.Len(t, good.got, 1, "delivered once per channel")
	require.Equal(t, 0, count(t, pool, "SELECT count(*) FROM deliveries WHERE status <> 'delivered'"))
}

func TestAReceiverDownForGoodFailsWithTheReason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	down := newReceiver(t)
	down.up.Store(false)
	var site int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO sites (url) VALUES ('https://a/') RETURNING id`).Scan(&site))
	_, err := pool.Exec(ctx, `INSERT INTO channels (name, kind, url, is_default) VALUES ('all', 'slack', $1, true)`, down.URL)
	require.NoError(t, err)
	n, err := New(Config{MaxAttempts: 2, RetryBackoff: time.Millisecond, MaxBackoff: time.Second, PollInterval: time.Millisecond, Batch: 10},
		pool, notify.Client(), zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, n.record(ctx, message(t, site, checkevent.IncidentOpenedType)), "a site naming no channels uses the default ones")
	require.Eventually(t, func() bool {
		_, err := n.deliverOnce(ctx)
		require.NoError(t, err)
		return count(t, pool, "SELECT count(*) FROM deliveries WHERE status = 'failed'") == 1
	}, 10*time.Second, 10*time.Millisecond)
	var reason string
	require.NoError(t, pool.QueryRow(ctx, "SELECT last_error FROM deliveries").Scan(&reason))
	require.Contains(t, reason, "503 Service Unavailable: down for maintenance")
	require.NoError(t, n.record(ctx, &kafka.Message{Value: []byte("not an incident")}), "a bad message is skipped, not retried")
}

func count(t *testing.T, pool *pgxpool.Pool, q string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), q).Scan(&n))
	return n
}

// A site's notifications reach a channel in order: the resolved one waits
// for the opened one, even when both are due together.
func TestASitesNotificationsArriveInOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	r := newReceiver(t)
	var site int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO sites (url) VALUES ('https://a/') RETURNING id`).Scan(&site))
	_, err := pool.Exec(ctx, `INSERT INTO channels (name, kind, url, is_default) VALUES ('all', 'webhook', $1, true)`, r.URL)
	require.NoError(t, err)
	n, err := New(Config{MaxAttempts: 3, RetryBackoff: time.Millisecond, MaxBackoff: time.Second, PollInterval: time.Millisecond, Batch: 10},
		pool, notify.Client(), zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	require.NoError(t, n.record(ctx, message(t, site, checkevent.IncidentOpenedType)))
	require.NoError(t, n.record(ctx, message(t, site, checkevent.IncidentResolvedType)))
	sent, err := n.deliverOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, sent, "only the oldest of the site's pending notifications")
	sent, err = n.deliverOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, sent)
	require.Len(t, r.body, 2)
	require.Contains(t, string(r.body[0]), checkevent.IncidentOpenedType)
	require.Contains(t, string(r.body[1]), checkevent.IncidentResolvedType)
}

// During a silence nothing is sent; once it ends, an incident still open is
// notified, and one opened and resolved within it never is.
func TestSilences(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	r := newReceiver(t)
	var site int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO sites (url) VALUES ('https://a/') RETURNING id`).Scan(&site))
	_, err := pool.Exec(ctx, `INSERT INTO channels (name, kind, url, is_default) VALUES ('all', 'webhook', $1, true)`, r.URL)
	require.NoError(t, err)
	var silence int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO silences (site_id, starts_at, until) VALUES ($1, now() - interval '1 minute', now() + interval '1 hour') RETURNING id`, site).Scan(&silence))
	n, err := New(Config{MaxAttempts: 3, RetryBackoff: time.Millisecond, MaxBackoff: time.Second, PollInterval: time.Millisecond, Batch: 10},
		pool, notify.Client(), zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)

	incident := func(resolved bool) (int64, *kafka.Message) {
		var id int64
		require.NoError(t, pool.QueryRow(ctx, `INSERT INTO incidents (site_id, url, kind, opened_at, resolved_at)
			VALUES ($1, 'https://a/', 'down', now() - interval '30 seconds', CASE WHEN $2 THEN now() - interval '10 seconds' END)
			RETURNING id`, site, resolved).Scan(&id))
		m := message(t, site, checkevent.IncidentOpenedType)
		var in checkevent.Incident
		require.NoError(t, json.Unmarshal(m.Value, &in))
		in.IncidentID = id
		m.Value, err = json.Marshal(in)
		require.NoError(t, err)
		return id, m
	}
	_, stillOpen := incident(false)
	_, over := incident(true)
	require.NoError(t, n.record(ctx, stillOpen))
	require.NoError(t, n.record(ctx, over))
	sent, err := n.deliverOnce(ctx)
	require.NoError(t, err)
	require.Zero(t, sent, "nothing is sent during the silence")

	_, err = pool.Exec(ctx, `UPDATE silences SET until = now() - interval '1 second' WHERE id = $1`, silence)
	require.NoError(t, err)
	sent, err = n.deliverOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, sent, "the incident still open when the silence ended is notified")
	require.Len(t, r.body, 1)
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM deliveries WHERE status = 'silenced'"),
		"the one opened and resolved within the silence never is")
}

// A recorded delivery is sent at once, not at the next poll: the
// deliverer is woken.
func TestARecordedDeliveryIsSentWithoutWaitingForThePoll(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := dbtest.Pool(t, dbtest.New(t))
	hook := newReceiver(t)
	var site int64
	require.NoError(t, pool.QueryRow(ctx, `INSERT INTO sites (url) VALUES ('https://a/') RETURNING id`).Scan(&site))
	_, err := pool.Exec(ctx, `INSERT INTO channels (name, kind, url, is_default) VALUES ('ops', 'webhook', $1, true)`, hook.URL)
	require.NoError(t, err)
	n, err := New(Config{MaxAttempts: 3, RetryBackoff: time.Millisecond, MaxBackoff: time.Second, PollInterval: time.Hour, Batch: 10},
		pool, notify.Client(), zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	got := func() int {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return len(hook.got)
	}
	require.NoError(t, n.record(ctx, message(t, site, checkevent.IncidentOpenedType)))
	done := make(chan struct{})
	go func() { n.Deliver(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// Deliver's first turn sends the first one, then waits its hour...
	require.Eventually(t, func() bool { return got() == 1 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, n.record(ctx, message(t, site, checkevent.IncidentResolvedType)))
	// ...and is woken by the delivery just recorded.
	require.Eventually(t, func() bool { return got() == 2 }, 10*time.Second, 5*time.Millisecond)
}
