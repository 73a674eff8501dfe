package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// Conditions on a JSON body and a header, and a response-time limit, go
// the whole way: a condition that does not hold is a failed check (class
// condition) that opens an incident, each condition's outcome is stored,
// and a slow passing check makes the site degraded, not down.
func TestConditionsEndToEnd(t *testing.T) {
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}

	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"UP","queue":{"depth":12},"replicas":[1,2,3]}`))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond) // slower than the site's limit
		_, _ = w.Write([]byte("ok"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	healthy, failing, slow := srv.URL+"/health", srv.URL+"/health?strict", srv.URL+"/slow"

	for _, args := range [][]string{
		{healthy, "--condition", `$.status == "UP"`, "--condition", `$.replicas.length >= 3`, "--condition", `header.Content-Type contains "json"`},
		{failing, "--condition", `$.queue.depth < 10`, "--failure-threshold", "1"},
		{slow, "--degraded-after", "50ms"},
	} {
		code, out := run(t, env, "monitor", append(append([]string{"sites", "add"}, args...), "--interval", "1s", "--topic", topic)...)
		require.Equal(t, 0, code, out)
	}
	code, out := run(t, env, "monitor", "sites", "add", srv.URL+"/x", "--condition", `$.status = "UP"`)
	require.Equal(t, 2, code, out)
	require.Contains(t, out, `condition "$.status = \"UP\"": no operator`)

	monitor := start(t, "monitor", env, "run", "-ops-addr", porttest.Addr(t), "-reload-interval", "500ms", "-allow-nets", "127.0.0.0/8")
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+checkevent.IncidentTopic)
	sink := start(t, "sink", env, "-ops-addr", porttest.Addr(t), "-topic", topic, "-group-id", "e2e-"+topic, "-batch-wait", "50ms")

	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND error_class IS NULL
				AND jsonb_array_length(conditions) = 3 AND NOT conditions @> '[{"passed": false}]'`, healthy) >= 2 &&
			count(t, pool, `SELECT count(*) FROM incidents WHERE url = $1 AND kind = 'down' AND error_class = 'condition'
				AND error = 'condition $.queue.depth < 10 failed: $.queue.depth is 12'`, failing) == 1 &&
			count(t, pool, `SELECT count(*) FROM site_state st JOIN sites s ON s.id = st.site_id WHERE s.url = $1 AND st.state = 'degraded'`, slow) == 1
	}, 30*time.Second, 200*time.Millisecond, "conditions hold, one fails and opens an incident, the slow site is degraded")
	var degraded string
	require.NoError(t, pool.QueryRow(ctx, `SELECT degraded FROM stats WHERE url = $1 AND degraded IS NOT NULL LIMIT 1`, slow).Scan(&degraded))
	require.Contains(t, degraded, "over the limit of 50ms")
	require.Zero(t, count(t, pool, `SELECT count(*) FROM incidents WHERE url = $1`, slow), "slow is not down")

	monitor.stop(t, 20*time.Second)
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)
}
