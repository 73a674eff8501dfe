package relay

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
)

// soakEnv reads a positive setting of the soak from the environment.
func soakEnv(b *testing.B, name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(b, err, name)
		return d
	}
	return def
}

// soakSample is the outbox table as the soak saw it at one moment.
type soakSample struct {
	at          time.Duration
	published   int64
	rate        float64 // rows/s since the previous sample
	totalBytes  int64   // pg_total_relation_size
	live, dead  int64   // pg_stat_user_tables
	autovacuums int64
}

// BenchmarkSoak pushes SOAK_EVENTS events (make soak: 10,000,000), written
// with package outbox by a writer running alongside, through the relay to
// Kafka with retention on (SOAK_RETENTION, 30s), and reports the relay's
// throughput over the first tenth of the events, the first tenth begun
// after the retention period (before it nothing is deleted, so the start
// is faster than the steady state) and the last tenth, the time per row of
// each step (sitewatch_relay_step_seconds_total), and the outbox table's
// size and dead tuples over time: with the table's autovacuum settings
// (migration 00016, outbox.DDL) the size stays bounded. The writer
// keeps at most SOAK_BACKLOG (100,000) rows waiting, so the table holds the
// backlog plus the retention window, not the whole run.
//
// SOAK_AUTOVACUUM_DEFAULTS=1 resets the table's storage parameters first,
// for a comparison with PostgreSQL's defaults.
//
// Skipped unless SOAK_EVENTS is set: run it with `make soak`.
func BenchmarkSoak(b *testing.B) {
	total, err := strconv.ParseInt(os.Getenv("SOAK_EVENTS"), 10, 64)
	if err != nil || total <= 0 {
		b.Skip("SOAK_EVENTS is not set: run make soak")
	}
	backlog := int64(100_000)
	if v := os.Getenv("SOAK_BACKLOG"); v != "" {
		backlog, err = strconv.ParseInt(v, 10, 64)
		require.NoError(b, err, "SOAK_BACKLOG")
	}
	retention := soakEnv(b, "SOAK_RETENTION", 30*time.Second)
	every := soakEnv(b, "SOAK_SAMPLE", 10*time.Second)
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		dbURL := dbtest.New(b)
		pool := dbtest.Pool(b, dbURL)
		topic := kafkatest.NewTopic(b, 6)
		if os.Getenv("SOAK_AUTOVACUUM_DEFAULTS") != "" { // the comparison: PostgreSQL's defaults
			_, err := pool.Exec(ctx, `ALTER TABLE outbox RESET (fillfactor, autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
				autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold, autovacuum_analyze_scale_factor,
				autovacuum_analyze_threshold, autovacuum_vacuum_cost_delay, autovacuum_vacuum_cost_limit)`)
			require.NoError(b, err)
		}
		cfg := benchConfig()
		cfg.Retention, cfg.RetentionInterval, cfg.RetentionBatch = retention, time.Second, 1000
		m := NewMetrics(prometheus.NewRegistry())
		r, err := New(ctx, cfg, Source{Name: "soak", DatabaseURL: dbURL, Table: "outbox", Topics: []string{"*"}},
			benchProducer(b, kafkatest.Config(b)), zap.NewNop(), m)
		require.NoError(b, err)
		published := func() int64 { return int64(testutil.ToFloat64(m.published.WithLabelValues("soak"))) }

		relayDone := make(chan struct{})
		go func() { r.Run(ctx); close(relayDone) }()
		writerErr := make(chan error, 1)
		go func() {
			const chunk = 1000
			msgs := make([]outbox.Message, chunk)
			for written := int64(0); written < total; {
				for written-published() > backlog {
					if ctx.Err() != nil {
						writerErr <- ctx.Err()
						return
					}
					time.Sleep(10 * time.Millisecond) // the writer waits for the relay
				}
				n := min(chunk, total-written)
				for i := range n {
					msgs[i] = outbox.Message{Topic: topic, Key: []byte(strconv.FormatInt((written+i)%1000, 10)), Payload: payload,
						Headers: map[string]string{"ce_type": "io.sitewatch.check.completed"}}
				}
				wctx, wcancel := context.WithTimeout(ctx, time.Minute)
				err := pgx.BeginFunc(wctx, pool, func(tx pgx.Tx) error { return outbox.Write(wctx, tx, msgs[:n]...) })
				wcancel()
				if err != nil {
					writerErr <- fmt.Errorf("writing outbox rows: %w", err)
					return
				}
				written += n
			}
			writerErr <- nil
		}()

		sample := func(start time.Time, prev soakSample) soakSample {
			s := soakSample{at: time.Since(start), published: published()}
			if dt := (s.at - prev.at).Seconds(); dt > 0 {
				s.rate = float64(s.published-prev.published) / dt
			}
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			defer scancel()
			require.NoError(b, pool.QueryRow(sctx, `SELECT pg_total_relation_size('outbox'), n_live_tup, n_dead_tup, autovacuum_count
				FROM pg_stat_user_tables WHERE relid = 'outbox'::regclass`).Scan(&s.totalBytes, &s.live, &s.dead, &s.autovacuums))
			return s
		}
		start := time.Now()
		samples := []soakSample{{}}
		// The decile marks: when the published count passed each tenth.
		marks := make([]time.Duration, 11)
		steps := make([]map[string]float64, 11) // seconds by step at each mark
		stepSeconds := func() map[string]float64 {
			out := map[string]float64{}
			for _, step := range Steps {
				out[step] = testutil.ToFloat64(m.steps.WithLabelValues("soak", step))
			}
			return out
		}
		steps[0] = stepSeconds()
		next := 1
		tick := time.NewTicker(50 * time.Millisecond)
		lastSample := time.Now()
		var opts []string
		require.NoError(b, pool.QueryRow(ctx, "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = 'outbox'::regclass").Scan(&opts))
		fmt.Printf("soak: outbox storage parameters %v\n", opts)
		fmt.Printf("soak: %d events, retention %s, backlog at most %d\n%8s %12s %10s %10s %10s %10s %6s\n", total, retention, backlog,
			"t", "published", "rows/s", "size MB", "live", "dead", "avac")
		for next <= 10 {
			<-tick.C
			p := published()
			for next <= 10 && p >= total*int64(next)/10 {
				marks[next] = time.Since(start)
				steps[next] = stepSeconds()
				next++
			}
			if time.Since(lastSample) >= every || next > 10 {
				lastSample = time.Now()
				s := sample(start, samples[len(samples)-1])
				samples = append(samples, s)
				fmt.Printf("%8s %12d %10.0f %10.1f %10d %10d %6d\n", s.at.Round(time.Second), s.published, s.rate,
					float64(s.totalBytes)/(1<<20), s.live, s.dead, s.autovacuums)
			}
		}
		tick.Stop()
		require.NoError(b, <-writerErr)
		cancel()
		<-relayDone
		r.Close()

		tenth := float64(total) / 10
		first := tenth / marks[1].Seconds()
		last := tenth / (marks[10] - marks[9]).Seconds()
		// Retention deletes nothing for its first period: the steady state
		// starts with the first tenth begun after it.
		steady := 10
		for i := 1; i <= 10; i++ {
			if marks[i-1] >= retention {
				steady = i
				break
			}
		}
		steadyRate := tenth / (marks[steady] - marks[steady-1]).Seconds()
		var maxBytes, maxDead int64
		for _, s := range samples {
			maxBytes, maxDead = max(maxBytes, s.totalBytes), max(maxDead, s.dead)
		}
		final := samples[len(samples)-1]
		b.ReportMetric(first, "first-tenth-rows/s")
		b.ReportMetric(last, "last-tenth-rows/s")
		b.ReportMetric(last/first, "end/start")
		b.ReportMetric(steadyRate, "steady-start-rows/s")
		b.ReportMetric(last/steadyRate, "end/steady-start")
		b.ReportMetric(float64(maxBytes)/(1<<20), "max-MB")
		b.ReportMetric(float64(maxDead), "max-dead-tuples")
		// Where the time went: µs per published row by step, over the
		// first and the last tenth.
		perRow := func(from, to int) string {
			var parts []string
			for _, step := range Steps {
				parts = append(parts, fmt.Sprintf("%s %.1f", step, (steps[to][step]-steps[from][step])*1e6/tenth))
			}
			return strings.Join(parts, ", ")
		}
		fmt.Printf("soak: µs per row by step (summed over workers), first tenth: %s\n", perRow(0, 1))
		fmt.Printf("soak: µs per row by step (summed over workers), tenth %d (the first after retention began): %s\n", steady, perRow(steady-1, steady))
		fmt.Printf("soak: µs per row by step (summed over workers), last tenth:  %s\n", perRow(9, 10))
		for _, step := range []string{"claim", "flip", "commit"} {
			b.ReportMetric((steps[10][step]-steps[9][step])/(steps[steady][step]-steps[steady-1][step]), step+"-end/steady-start")
		}
		fmt.Printf("soak: relay %.0f rows/s over tenth %d, the first after retention began; the last tenth is %.2f of it\n",
			steadyRate, steady, last/steadyRate)
		fmt.Printf("soak: %d events in %s; relay %.0f rows/s over the first tenth, %.0f over the last (%.2f); outbox at most %.1f MB (%.1f MB at the end), at most %d dead tuples, %d autovacuums\n",
			total, marks[10].Round(time.Second), first, last, last/first, float64(maxBytes)/(1<<20), float64(final.totalBytes)/(1<<20), maxDead, final.autovacuums)
	}
}
