package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// BenchmarkEndToEndLatency: check events committed to the outbox at a
// steady 1,000/s (10 every 10 ms, written with the outbox package, for 100
// sites) go through the relay and sink binaries; reports the p50, p99 and
// max of stats.inserted_at − outbox.created_at, commit to stored row.
// SITEWATCH_BENCH_SECONDS sets how long events are written (default 10).
func BenchmarkEndToEndLatency(b *testing.B) {
	seconds := 10
	if v := os.Getenv("SITEWATCH_BENCH_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SITEWATCH_BENCH_SECONDS=%q: want a positive number of seconds", v)
		}
		seconds = n
	}
	const sites, perTick, tick = 100, 10, 10 * time.Millisecond
	ctx := context.Background()
	dbURL := dbtest.New(b)
	pool := dbtest.Pool(b, dbURL)
	topic, incidents := kafkatest.NewTopic(b, 3), kafkatest.NewTopic(b, 3)
	if _, err := pool.Exec(ctx, `INSERT INTO sites (url, topic_name) SELECT 'https://site' || i || '.example/', $1 FROM generate_series(1, $2) i`,
		topic, sites); err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "KAFKA_BROKERS="+kafkatest.Config(b).Brokers, "LOG_FORMAT=console", "LOG_LEVEL=warn")
	for _, p := range [][]string{
		{"relay", "-ops-addr", porttest.Addr(b), "-topics", topic + "," + incidents},
		{"sink", "-ops-addr", porttest.Addr(b), "-topic", topic, "-group-id", "bench-" + topic, "-incident-topic", incidents,
			"-notify=false", "-instance-id", "bench-" + topic},
	} {
		cmd := exec.Command(benchBinary(b, p[0]), p[1:]...)
		cmd.Env, cmd.Stderr = env, os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	write := func(n int) {
		msgs := make([]outbox.Message, n)
		for i := range msgs {
			site := int64(i%sites + 1)
			c := checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "local", EventID: uuid.NewString(), SiteID: site,
				URL: "https://site" + strconv.FormatInt(site, 10) + ".example/", CheckedAt: time.Now().UTC(), StatusCode: 200, DurationMS: 12.5}
			payload, err := json.Marshal(c)
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = outbox.Message{EventID: c.EventID, Topic: topic, Key: []byte(strconv.FormatInt(site, 10)), Payload: payload,
				Headers: map[string]string{"ce_type": checkevent.Type, "content-type": checkevent.ContentType}}
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return outbox.Write(ctx, tx, msgs...) }); err != nil {
			b.Fatal(err)
		}
	}
	// Warm-up: the sink has joined its group and stores what arrives.
	write(perTick)
	waitUntil(b, 2*time.Minute, "the pipeline stores a first batch", func() bool { return countB(b, pool, "SELECT count(*) FROM stats") == perTick })
	if _, err := pool.Exec(ctx, "TRUNCATE stats"); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	start := time.Now()
	ticker := time.NewTicker(tick)
	total := 0
	for time.Since(start) < time.Duration(seconds)*time.Second {
		<-ticker.C
		write(perTick)
		total += perTick
	}
	ticker.Stop()
	waitUntil(b, 2*time.Minute, "every event stored", func() bool { return countB(b, pool, "SELECT count(*) FROM stats") == total })
	b.StopTimer()

	var p50, p99, worst float64
	if err := pool.QueryRow(ctx, `
		SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), max(ms)
		FROM (SELECT extract(epoch FROM s.inserted_at - o.created_at) * 1000 AS ms
		      FROM stats s JOIN outbox o ON o.event_id = s.event_id) l`).Scan(&p50, &p99, &worst); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(worst, "max-ms")
	b.ReportMetric(float64(total)/float64(seconds), "events/s")
}
