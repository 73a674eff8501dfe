package e2e

// A notifier killed with kill -9 while it delivers to PagerDuty: the
// trigger in flight is sent again with the same dedup_key, so PagerDuty
// folds it, and each incident is triggered once and resolved once.

import (
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

func TestNotifierKilledDuringAPagerDutyDelivery(t *testing.T) {
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic, incidents := kafkatest.NewTopic(t, 3), kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}
	srv, failing := switchableServer(t)
	failing.Store(true)

	// PagerDuty's Events API v2 as its documentation describes it: 202
	// Accepted; a receiver folds events by dedup_key (and action).
	const routingKey = "R0UTING-KEY-e2e"
	pd := newReceiver(t, http.StatusAccepted, func(req *http.Request, body []byte) notice {
		var ev struct {
			RoutingKey  string `json:"routing_key"`
			DedupKey    string `json:"dedup_key"`
			EventAction string `json:"event_action"`
		}
		_ = json.Unmarshal(body, &ev)
		return notice{ev.DedupKey, ev.EventAction, req.URL.Path == "/v2/enqueue" && ev.RoutingKey == routingKey}
	})
	inFlight, killed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	pd.hold = func() {
		once.Do(func() { close(inFlight) })
		<-killed
	}
	pd.up()
	code, out := run(t, append(env, "SITEWATCH_CHANNEL_SECRET="+routingKey), "monitor", "channels", "add", "pd",
		"--pagerduty", "http://"+pd.addr+"/v2/enqueue", "--default")
	require.Equal(t, 0, code, out)
	const sites = 3
	importSites(t, env, srv.URL, sites, "1s", "    topic: "+topic+"\n")

	monitor := startReplica(t, env, "eu-west")
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+incidents)
	sink := start(t, "sink", env, sinkArgs(topic, incidents)...)

	// The first trigger reaches PagerDuty; the notifier dies before the
	// answer, which comes only after it died.
	select {
	case <-inFlight:
	case <-time.After(90 * time.Second):
		t.Fatalf("no trigger reached PagerDuty: %s", state(t, pool))
	}
	sink.kill9()
	close(killed)
	sink = start(t, "sink", env, sinkArgs(topic, incidents)...)

	triggered := func() map[string]bool {
		out := map[string]bool{}
		for _, n := range pd.notices() {
			if n.typ == "trigger" {
				out[n.key] = true
			}
		}
		return out
	}
	require.Eventually(t, func() bool { return len(triggered()) == sites }, 60*time.Second, 100*time.Millisecond,
		"a trigger per incident: %s", state(t, pool))
	failing.Store(false)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.Equal(c, 2*sites, count(t, pool, "SELECT count(*) FROM deliveries WHERE status = 'delivered'"),
			"every trigger and resolve delivered: %s", state(t, pool))
	}, 90*time.Second, 100*time.Millisecond)

	// What PagerDuty keeps: per dedup_key one trigger, then one resolve.
	var keys []string
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT array_agg('sitewatch-incident-' || id ORDER BY id) FROM incidents").Scan(&keys))
	require.Len(t, keys, sites)
	seen := pd.notices()
	folded := map[notice]bool{}
	first := map[string]string{}
	for _, n := range seen {
		require.True(t, n.signed, "every event to /v2/enqueue with the routing key: %+v", n)
		folded[n] = true
		if first[n.key] == "" {
			first[n.key] = n.typ
		}
	}
	want := map[notice]bool{}
	for _, k := range keys {
		want[notice{k, "trigger", true}], want[notice{k, "resolve", true}] = true, true
		require.Equal(t, "trigger", first[k], "incident %s triggered before it is resolved", k)
	}
	require.Equal(t, want, folded, "one trigger and one resolve per incident, as PagerDuty folds them")
	require.Greater(t, len(seen), len(folded), "the trigger in flight when the notifier died came again, with the same dedup_key")
	require.Zero(t, count(t, pool, "SELECT count(*) FROM deliveries WHERE status <> 'delivered'"), "nothing failed or left pending")

	monitor.stop(t, 30*time.Second)
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)
}
