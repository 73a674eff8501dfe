package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// benchBinary builds a service without the race detector: a benchmark
// measures it.
func benchBinary(b *testing.B, name string) string {
	bin := filepath.Join(b.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/sitewatch/sitewatch/services/"+name).CombinedOutput(); err != nil {
		b.Fatalf("building %s: %v\n%s", name, err, out)
	}
	return bin
}

// BenchmarkNotifyLatency: 10,000 sites checked every 5 s by one monitor,
// the relay and the sink (real binaries, real PostgreSQL and Kafka); 1 % of
// the sites start failing at once. Reports, over their 100 incidents, the
// time from the commit of the check that tripped each (its outbox row) to
// the webhook receiver getting the notification: p50, p95 and max.
func BenchmarkNotifyLatency(b *testing.B) {
	const sites, failing = 10000, 100
	bins := map[string]string{}
	for _, s := range []string{"monitor", "relay", "sink"} {
		bins[s] = benchBinary(b, s)
	}
	var down atomic.Bool
	farm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n int
		if _, err := fmt.Sscanf(r.URL.Path, "/site/%d", &n); err == nil && n < failing && down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	b.Cleanup(farm.Close)
	var mu sync.Mutex
	received := map[string]time.Time{} // idempotency key → first arrival
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now()
		mu.Lock()
		if _, seen := received[r.Header.Get(notify.IdempotencyHeader)]; !seen {
			received[r.Header.Get(notify.IdempotencyHeader)] = now
		}
		mu.Unlock()
	}))
	b.Cleanup(hook.Close)

	dbURL := dbtest.New(b)
	pool := dbtest.Pool(b, dbURL)
	topic, incidents := kafkatest.NewTopic(b, 3), kafkatest.NewTopic(b, 3)
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "KAFKA_BROKERS="+kafkatest.Config(b).Brokers, "LOG_FORMAT=console",
		"LOG_LEVEL=warn", loopbackAllowed)
	runCLI := func(args ...string) {
		cmd := exec.Command(bins["monitor"], args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("monitor %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	runCLI("channels", "add", "oncall", "--webhook", hook.URL, "--default")
	var yaml strings.Builder
	yaml.WriteString("sites:\n")
	for i := range sites {
		fmt.Fprintf(&yaml, "  - url: %s/site/%d\n    interval: 5s\n    timeout: 2s\n    topic: %s\n", farm.URL, i, topic)
	}
	file := filepath.Join(b.TempDir(), "sites.yaml")
	if err := os.WriteFile(file, []byte(yaml.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	runCLI("sites", "import", file)

	startProc := func(name string, args ...string) {
		cmd := exec.Command(bins[name], args...)
		cmd.Env = env
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	startProc("monitor", "run", "-ops-addr", porttest.Addr(b), "-concurrency", "400")
	startProc("relay", "-ops-addr", porttest.Addr(b), "-topics", topic+","+incidents)
	startProc("sink", "-ops-addr", porttest.Addr(b), "-topic", topic, "-group-id", "bench-"+topic, "-incident-topic", incidents,
		"-notify-group-id", "bench-notify-"+topic)
	stored := func() int { return countB(b, pool, "SELECT count(*) FROM stats") }
	waitUntil(b, 3*time.Minute, "every site checked twice", func() bool { return stored() >= 2*sites })

	b.ResetTimer()
	down.Store(true)
	waitUntil(b, 2*time.Minute, "a notification for every failing site", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(received) >= failing
	})
	b.StopTimer()

	// The check that tripped each incident is the one whose time is the
	// incident's opening; its outbox row's created_at is its commit.
	rows, err := pool.Query(context.Background(), `
		SELECT ie.event_id::text, co.created_at
		FROM outbox ie
		JOIN incidents i ON i.id = (convert_from(ie.payload, 'UTF8')::jsonb->>'incident_id')::bigint
		JOIN stats s ON s.site_id = i.site_id AND s.checked_at = i.opened_at
		JOIN outbox co ON co.event_id = s.event_id
		WHERE ie.topic_name = $1 AND ie.headers->>'ce_type' = 'io.sitewatch.incident.opened'`, incidents)
	if err != nil {
		b.Fatal(err)
	}
	var lat []time.Duration
	for rows.Next() {
		var key string
		var committed time.Time
		if err := rows.Scan(&key, &committed); err != nil {
			b.Fatal(err)
		}
		mu.Lock()
		got, ok := received[key]
		mu.Unlock()
		if ok {
			lat = append(lat, got.Sub(committed))
		}
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	if len(lat) < failing {
		b.Fatalf("matched %d notifications to their tripping checks; want %d", len(lat), failing)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Milliseconds()) }
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.95), "p95-ms")
	b.ReportMetric(at(1), "max-ms")
	b.ReportMetric(float64(len(lat)), "notifications")
}

func countB(b *testing.B, pool *pgxpool.Pool, query string) int {
	var n int
	if err := pool.QueryRow(context.Background(), query).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
