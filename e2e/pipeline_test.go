package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func TestPipelineEndToEnd(t *testing.T) {
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}

	mux := http.NewServeMux()
	mux.HandleFunc("/healthy", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "all systems healthy") })
	mux.HandleFunc("/degraded", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "degraded") })
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "healthy? no", http.StatusInternalServerError)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	unreachable := "http://" + closed.Addr().String() + "/"
	require.NoError(t, closed.Close())

	// Bad input: a clear error naming the field, exit code 2, nothing written.
	for _, args := range [][]string{
		{"sites", "add", "htp:/nope"},
		{"sites", "add", srv.URL, "--regex", "(unclosed"},
		{"sites", "add", srv.URL, "--interval", "0.5"},
	} {
		code, out := run(t, env, "monitor", args...)
		require.Equal(t, 2, code, out)
		require.Contains(t, out, "nothing written")
	}
	require.Zero(t, count(t, pool, "SELECT count(*) FROM sites"))

	urls := map[string]string{"healthy": srv.URL + "/healthy", "degraded": srv.URL + "/degraded",
		"broken": srv.URL + "/broken", "unreachable": unreachable}
	for _, name := range []string{"healthy", "degraded", "broken", "unreachable"} {
		code, out := run(t, env, "monitor", "sites", "add", urls[name], "--regex", "healthy",
			"--interval", "1s", "--topic", topic)
		require.Equal(t, 0, code, out)
	}
	code, out := run(t, env, "monitor", "sites", "list")
	require.Equal(t, 0, code, out)
	require.Equal(t, 5, strings.Count(out, "\n"), out)

	opsAddrs := map[string]string{"monitor": porttest.Addr(t), "relay": porttest.Addr(t), "sink": porttest.Addr(t)}
	monitor := start(t, "monitor", env, "run", "-ops-addr", opsAddrs["monitor"], "-reload-interval", "500ms")
	// The checks' topic, and the incidents the broken sites open.
	relay := start(t, "relay", env, "-ops-addr", opsAddrs["relay"], "-poll-interval", "50ms", "-topics", topic+","+checkevent.IncidentTopic)
	sink := start(t, "sink", env, "-ops-addr", opsAddrs["sink"], "-topic", topic, "-group-id", "e2e-"+topic, "-batch-wait", "50ms")

	// Within seconds every site has results in stats.
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(DISTINCT site_id) FROM stats WHERE checked_at > now() - interval '1 minute'") == 4 &&
			count(t, pool, "SELECT min(n) FROM (SELECT count(*) AS n FROM stats GROUP BY site_id) c") >= 2
	}, 30*time.Second, 200*time.Millisecond, "stats should hold at least two checks of each site")

	type row struct {
		status  *int
		matched *bool
		class   *string
		errText *string
	}
	latest := func(u string) row {
		var r row
		require.NoError(t, pool.QueryRow(ctx, `SELECT status_code, regex_matched, error_class, error FROM stats
			WHERE url = $1 ORDER BY checked_at DESC LIMIT 1`, u).Scan(&r.status, &r.matched, &r.class, &r.errText))
		return r
	}
	r := latest(urls["healthy"])
	require.Equal(t, 200, *r.status)
	require.True(t, *r.matched)
	require.Nil(t, r.class)

	r = latest(urls["degraded"])
	require.Equal(t, 200, *r.status)
	require.False(t, *r.matched)
	require.Equal(t, "regex", *r.class)

	r = latest(urls["broken"])
	require.Equal(t, 500, *r.status)
	require.True(t, *r.matched, "the 500 page says healthy? no")
	require.Equal(t, "http_status", *r.class)

	r = latest(urls["unreachable"])
	require.Nil(t, r.status)
	require.Nil(t, r.matched)
	require.Equal(t, "connect", *r.class)
	require.Contains(t, *r.errText, "connection refused")

	// The check's details reach stats, its region too.
	var (
		version, redirects                       int
		bodyBytes                                int64
		connectMS, ttfbMS                        float64
		remoteIP, finalURL, regexResults, region string
	)
	require.NoError(t, pool.QueryRow(ctx, `SELECT schema_version, body_bytes, redirects, connect_ms, ttfb_ms, remote_ip,
		final_url, regexes::text, region FROM stats WHERE url = $1 ORDER BY checked_at DESC LIMIT 1`, urls["healthy"]).Scan(
		&version, &bodyBytes, &redirects, &connectMS, &ttfbMS, &remoteIP, &finalURL, &regexResults, &region))
	require.Equal(t, checkevent.SchemaVersion, version)
	require.Equal(t, checkevent.DefaultRegion, region)
	require.EqualValues(t, len("all systems healthy"), bodyBytes)
	require.Zero(t, redirects)
	require.Positive(t, connectMS)
	require.Positive(t, ttfbMS)
	require.Equal(t, "127.0.0.1", remoteIP)
	require.Equal(t, urls["healthy"], finalURL)
	require.JSONEq(t, `[{"pattern":"healthy","match":true,"matched":true}]`, regexResults)

	// A change made with the CLI is picked up while the monitor runs.
	var degradedID int
	require.NoError(t, pool.QueryRow(ctx, "SELECT id FROM sites WHERE url = $1", urls["degraded"]).Scan(&degradedID))
	code, out = run(t, env, "monitor", "sites", "update", fmt.Sprint(degradedID), "--match", "degraded", "--not-match", "healthy")
	require.Equal(t, 0, code, out)
	changedAt := time.Now()
	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND checked_at > $2 AND regex_matched
			AND error_class IS NULL`, urls["degraded"], changedAt) > 0
	}, 15*time.Second, 200*time.Millisecond, "the updated site is checked with its new regexes")

	// The failing sites have incidents; the healthy one has none.
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM incidents WHERE kind = 'down' AND url = ANY($1)",
			[]string{urls["broken"], urls["unreachable"]}) == 2
	}, 30*time.Second, 200*time.Millisecond, "a down incident for each failing site")
	require.Zero(t, count(t, pool, "SELECT count(*) FROM incidents WHERE url = $1", urls["healthy"]))

	// Ops endpoints answer while running.
	for name, addr := range opsAddrs {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			resp, err := http.Get("http://" + addr + path)
			require.NoError(t, err, name+path)
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s%s: %s", name, path, body)
		}
	}

	// SIGTERM: the monitor writes its in-flight checks and exits; then the
	// relay and sink drain everything, and every outbox event is exactly
	// one stats row.
	monitor.stop(t, 20*time.Second)
	require.Eventually(t, func() bool {
		return count(t, pool, "SELECT count(*) FROM outbox WHERE NOT published") == 0 &&
			count(t, pool, "SELECT count(*) FROM outbox o WHERE topic_name = $1 AND NOT EXISTS (SELECT 1 FROM stats s WHERE s.event_id = o.event_id)", topic) == 0
	}, 30*time.Second, 200*time.Millisecond, "every outbox row published and stored")
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)

	outboxRows := count(t, pool, "SELECT count(*) FROM outbox WHERE topic_name = $1", topic)
	require.Equal(t, outboxRows, count(t, pool, "SELECT count(*) FROM stats"), "one stats row per outbox event")
	require.Zero(t, count(t, pool, "SELECT count(*) FROM stats s WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = s.event_id)"))
	t.Logf("%d checks went monitor → outbox → relay → Kafka → sink → stats", outboxRows)
	require.NotContains(t, fmt.Sprint(monitor.out.String()), "panic")
}
