package e2e

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// A heartbeat site goes the whole way with two monitor replicas: pings to
// either are passing checks, a run's /start to /ping measures it, silence
// past interval + grace is one failed check per interval (never one per
// replica) that opens an incident, /fail is a failed check, and a ping
// resolves the incident.
func TestHeartbeatEndToEnd(t *testing.T) {
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}

	const url = "heartbeat://e2e-backup?grace=1s"
	code, out := run(t, env, "monitor", "sites", "add", url, "--interval", "2s", "--topic", topic)
	require.Equal(t, 0, code, out)
	m := regexp.MustCompile(`ping token (\S+)`).FindStringSubmatch(out)
	require.Len(t, m, 2, out)
	token := m[1]

	pingA, pingB := porttest.Addr(t), porttest.Addr(t)
	monitors := []*process{
		start(t, "monitor", env, "run", "-ops-addr", porttest.Addr(t), "-ping-addr", pingA, "-heartbeat-sweep-interval", "200ms"),
		start(t, "monitor", env, "run", "-ops-addr", porttest.Addr(t), "-ping-addr", pingB, "-heartbeat-sweep-interval", "200ms"),
	}
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+checkevent.IncidentTopic)
	sink := start(t, "sink", env, "-ops-addr", porttest.Addr(t), "-topic", topic, "-group-id", "e2e-"+topic, "-batch-wait", "50ms")

	ping := func(addr, path string) int {
		t.Helper()
		var resp *http.Response
		require.Eventually(t, func() bool {
			var err error
			resp, err = http.Post("http://"+addr+path, "text/plain", nil)
			return err == nil
		}, 30*time.Second, 50*time.Millisecond, "the ping listener answers")
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusNotFound, ping(pingA, "/ping/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), "an unknown token")
	require.Equal(t, http.StatusOK, ping(pingA, "/ping/"+token))
	require.Equal(t, http.StatusOK, ping(pingB, "/ping/"+token+"/start"))
	require.Equal(t, http.StatusOK, ping(pingB, "/ping/"+token+"/0"))
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND kind = 'heartbeat' AND error_class IS NULL
			AND region = 'heartbeat'`, url) == 2
	}, 30*time.Second, 100*time.Millisecond, "each ping, to either replica, is one passing check")
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND duration_ms > 0`, url),
		"the run from /start to its ping is timed")

	// Silence: past interval + grace, failed checks, one per interval, and
	// an incident (one missed run is the job's failure).
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM incidents WHERE url = $1 AND kind = 'down' AND resolved_at IS NULL`, url) == 1 &&
			count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND error_class = 'missed'`, url) >= 3
	}, 60*time.Second, 100*time.Millisecond, "missed deadlines are failed checks and open an incident")
	var closest float64
	require.NoError(t, pool.QueryRow(ctx, `SELECT min(gap) FROM (SELECT extract(epoch FROM checked_at - lag(checked_at) OVER (ORDER BY checked_at)) AS gap
		FROM stats WHERE url = $1 AND error_class = 'missed') g`, url).Scan(&closest))
	require.Greater(t, closest, 1.5, "one missed check per interval, not one per replica")

	// A reported failure, then a ping: the incident is resolved.
	require.Equal(t, http.StatusOK, ping(pingA, "/ping/"+token+"/fail"))
	require.Equal(t, http.StatusOK, ping(pingB, "/ping/"+token))
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND error_class = 'job_failed'`, url) == 1 &&
			count(t, pool, `SELECT count(*) FROM incidents WHERE url = $1 AND resolved_at IS NOT NULL`, url) == 1
	}, 30*time.Second, 100*time.Millisecond, "/fail is a failed check; a ping resolves the incident")

	for _, p := range monitors {
		p.stop(t, 20*time.Second)
	}
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM outbox o WHERE o.topic_name = $1
			AND NOT EXISTS (SELECT 1 FROM stats s WHERE s.event_id = o.event_id)`, topic) == 0
	}, 30*time.Second, 100*time.Millisecond, "every check the monitors wrote is stored")
	require.Zero(t, count(t, pool, "SELECT count(*) FROM (SELECT event_id FROM stats GROUP BY event_id HAVING count(*) > 1) d"))
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)
}
