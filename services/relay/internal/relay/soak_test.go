package relay

import (
	"context"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
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
	totalBytes  int64   // pg_total_relation_size, of every partition
	live, dead  int64   // pg_stat_user_tables, summed over the partitions
	autovacuums int64
	inDefault   int64 // live rows of the DEFAULT partition, as pg_stat_user_tables has them
}

// BenchmarkSoak pushes SOAK_EVENTS events (make soak: 30,000,000), written
// with package outbox by a writer running alongside, through the relay to
// Kafka with retention on (SOAK_RETENTION, 30s), and reports the relay's
// throughput over the first tenth of the events, the first tenth begun
// after the retention period (before it nothing is dropped, so the start
// is faster than the steady state) and the last tenth, the time per row of
// each step (sitewatch_relay_step_seconds_total), and the outbox table's
// size, live and dead tuples over time. The writer keeps at most
// SOAK_BACKLOG (100,000) rows waiting, so the table holds the backlog plus
// the retention window and the partitions not yet dropped, not the whole
// run. The size is also given per live row, against the bytes per row of
// the first rows written (before the relay starts), packed as at
// fillfactor 100: a table that keeps only live rows stays near 1 (near 2
// at fillfactor 50, which leaves half of each page for the flips).
//
// The table is sitewatch's (the migrations: partitioned, its partitions
// with migration 00016's autovacuum settings), its partitions remade of
// SOAK_PARTITION_ROWS ids (250,000) before the first row is written.
// SOAK_AUTOVACUUM_DEFAULTS=1 resets every partition's autovacuum settings
// first (the partitions the relay creates copy the newest's), for
// PostgreSQL's defaults;
// SOAK_SINGLE_TABLE=1 soaks a table of the earlier, unpartitioned layout.
// The relay runs as in the other benchmarks (benchConfig: the relay's
// default batch size and workers, or SITEWATCH_BENCH_BATCH and
// SITEWATCH_BENCH_WORKERS).
// SOAK_OUT names a file the samples are written to (tab-separated, with a
// first line naming the run): every such file in its directory is drawn
// into soak-outbox-size.svg there.
//
// SOAK_RATE paces the writer to that many rows/s (0, the default: as fast
// as the relay takes them). Flat out, the retention window holds however
// many rows the relay published in its last SOAK_RETENTION, so the table's
// size follows the machine's throughput; paced below the relay's rate, the
// window holds a steady number of rows and the size shows the layout alone.
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
	var pace float64
	if v := os.Getenv("SOAK_RATE"); v != "" {
		pace, err = strconv.ParseFloat(v, 64)
		require.NoError(b, err, "SOAK_RATE")
		require.GreaterOrEqual(b, pace, 0.0, "SOAK_RATE")
	}
	retention := soakEnv(b, "SOAK_RETENTION", 30*time.Second)
	every := soakEnv(b, "SOAK_SAMPLE", 10*time.Second)
	for range b.N {
		ctx, cancel := context.WithCancel(context.Background())
		layout := "partitioned"
		if os.Getenv("SOAK_SINGLE_TABLE") != "" {
			layout = "single-table"
		}
		dbURL, table := layoutDB(b, layout)
		pool := dbtest.Pool(b, dbURL)
		topic := kafkatest.NewTopic(b, 6)
		settings := "tuned autovacuum (migration 00016)"
		if os.Getenv("SOAK_AUTOVACUUM_DEFAULTS") != "" { // the comparison: PostgreSQL's defaults
			settings = "PostgreSQL's default autovacuum"
			_, err := pool.Exec(ctx, `DO $$ DECLARE t regclass; BEGIN
				FOR t IN SELECT oid FROM pg_class WHERE relkind = 'r'
					AND oid IN (SELECT relid FROM pg_partition_tree('`+table+`') UNION SELECT '`+table+`'::regclass) LOOP
					EXECUTE format('ALTER TABLE %s RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
						autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold, autovacuum_analyze_scale_factor,
						autovacuum_analyze_threshold, autovacuum_vacuum_cost_delay, autovacuum_vacuum_cost_limit)', t);
				END LOOP; END $$`)
			require.NoError(b, err)
		}
		writer, err := outbox.NewWriter(table)
		require.NoError(b, err)
		cfg := benchConfig(b)
		cfg.Retention, cfg.RetentionInterval, cfg.RetentionBatch = retention, time.Second, 1000
		cfg.PartitionRows = 250_000
		if v := os.Getenv("SOAK_PARTITION_ROWS"); v != "" {
			cfg.PartitionRows, err = strconv.ParseInt(v, 10, 64)
			require.NoError(b, err, "SOAK_PARTITION_ROWS")
		}
		if layout == "partitioned" && cfg.PartitionRows != DefaultPartitionRows {
			// The migration made its first partitions of a million ids:
			// the soak's size begins at the first row instead, with
			// partitions for the backlog written before the relay starts
			// (else it would go to the DEFAULT partition).
			_, err = pool.Exec(ctx, "SELECT outbox_drop(part) FROM outbox_partitions($1) WHERE end_id IS NOT NULL", table)
			require.NoError(b, err)
			_, err = pool.Exec(ctx, "SELECT outbox_extend($1, $2, $3)", table, cfg.PartitionRows, backlog/cfg.PartitionRows+2)
			require.NoError(b, err)
		}
		m := NewMetrics(prometheus.NewRegistry())
		r, err := New(ctx, cfg, Source{Name: "soak", DatabaseURL: dbURL, Table: table, Topics: []string{"*"}},
			benchProducer(b, kafkatest.Config(b)), soakLogger(), m)
		require.NoError(b, err)
		published := func() int64 { return int64(testutil.ToFloat64(m.published.WithLabelValues("soak"))) }
		measure := func(s *soakSample) {
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			defer scancel()
			require.NoError(b, pool.QueryRow(sctx, `SELECT sum(pg_total_relation_size(t.relid))::bigint, coalesce(sum(s.n_live_tup), 0)::bigint,
				coalesce(sum(s.n_dead_tup), 0)::bigint, coalesce(sum(s.autovacuum_count), 0)::bigint,
				coalesce(sum(s.n_live_tup) FILTER (WHERE t.bound = 'DEFAULT'), 0)::bigint
				FROM (SELECT c.oid AS relid, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_class c WHERE c.relkind = 'r'
					AND c.oid IN (SELECT relid FROM pg_partition_tree($1) UNION SELECT $1::regclass)) t
				LEFT JOIN pg_stat_user_tables s ON s.relid = t.relid`, table).
				Scan(&s.totalBytes, &s.live, &s.dead, &s.autovacuums, &s.inDefault))
		}

		writerErr := make(chan error, 1)
		written := int64(0)
		write := func(msgs []outbox.Message) error {
			for i := range msgs {
				msgs[i] = outbox.Message{Topic: topic, Key: []byte(strconv.FormatInt((written+int64(i))%1000, 10)), Payload: payload,
					Headers: map[string]string{"ce_type": "io.sitewatch.check.completed"}}
			}
			wctx, wcancel := context.WithTimeout(ctx, time.Minute)
			defer wcancel()
			if err := pgx.BeginFunc(wctx, pool, func(tx pgx.Tx) error { return writer.Write(wctx, tx, msgs...) }); err != nil {
				return fmt.Errorf("writing outbox rows: %w", err)
			}
			written += int64(len(msgs))
			return nil
		}
		// The bytes a row takes freshly written: the first backlog's.
		seed := make([]outbox.Message, 1000)
		for written < min(backlog, total) {
			require.NoError(b, write(seed[:min(int64(len(seed)), min(backlog, total)-written)]))
		}
		var fresh soakSample
		_, err = pool.Exec(ctx, "ANALYZE "+table)
		require.NoError(b, err)
		measure(&fresh)
		// Packed: the heap as it would be at fillfactor 100. The room a
		// lower fillfactor leaves in each page for the rows' flips is not
		// theirs: measured against the rows as written, a table at 50
		// would look half its size.
		var freshRows, freshHeap int64
		require.NoError(b, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+table+`),
			(SELECT sum(pg_relation_size(relid))::bigint FROM pg_partition_tree($1::regclass) WHERE isleaf)`, table).Scan(&freshRows, &freshHeap))
		shape, err := outboxtest.ReadShape(ctx, pool, table)
		require.NoError(b, err)
		packed := fresh.totalBytes - freshHeap + freshHeap*int64(shape.Fillfactor())/100
		bytesPerRow := float64(packed) / float64(freshRows)

		defer UseGCPercent()() // as the relay's process does
		relayDone := make(chan struct{})
		go func() { r.Run(ctx); close(relayDone) }()
		go func() {
			const chunk = 1000
			msgs := make([]outbox.Message, chunk)
			paceFrom, seeded := time.Now(), written
			for written < total {
				if pace > 0 { // at most pace rows/s since the relay started
					due := paceFrom.Add(time.Duration(float64(written-seeded) / pace * float64(time.Second)))
					select {
					case <-ctx.Done():
						writerErr <- ctx.Err()
						return
					case <-time.After(time.Until(due)):
					}
				}
				for written-published() > backlog {
					if ctx.Err() != nil {
						writerErr <- ctx.Err()
						return
					}
					time.Sleep(10 * time.Millisecond) // the writer waits for the relay
				}
				if err := write(msgs[:min(chunk, total-written)]); err != nil {
					writerErr <- err
					return
				}
			}
			writerErr <- nil
		}()

		sample := func(start time.Time, prev soakSample) soakSample {
			s := soakSample{at: time.Since(start), published: published()}
			if dt := (s.at - prev.at).Seconds(); dt > 0 {
				s.rate = float64(s.published-prev.published) / dt
			}
			measure(&s)
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
		fmt.Printf("soak: %s outbox, %s; storage parameters %v; %.0f bytes per row freshly written, %.0f packed (the heap at fillfactor 100)\n",
			layout, settings, shape.Options, float64(fresh.totalBytes)/float64(freshRows), bytesPerRow)
		fmt.Printf("soak: %d events, written at %s, retention %s, backlog at most %d, %d rows a partition\n%8s %12s %10s %10s %10s %10s %8s %6s %10s\n", total, paceName(pace), retention, backlog, cfg.PartitionRows,
			"t", "published", "rows/s", "size MB", "live", "dead", "per live", "avac", "in default")
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
				fmt.Printf("%8s %12d %10.0f %10.1f %10d %10d %8.2f %6d %10d\n", s.at.Round(time.Second), s.published, s.rate,
					float64(s.totalBytes)/(1<<20), s.live, s.dead, perLive(s, bytesPerRow), s.autovacuums, s.inDefault)
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
		// After the first tenth: how far the size strays (a partition is
		// dropped at a time, so it saws between two bounds), whether the
		// peaks grow (each tenth's largest size), and the most the table
		// takes per live row.
		var lo, hi int64
		var worstPerLive float64
		peaks := make([]int64, 11)
		for _, s := range samples {
			tenth := int(s.published * 10 / total)
			if tenth < 1 {
				continue
			}
			if lo == 0 || s.totalBytes < lo {
				lo = s.totalBytes
			}
			hi = max(hi, s.totalBytes)
			peaks[min(tenth, 10)-1] = max(peaks[min(tenth, 10)-1], s.totalBytes)
			worstPerLive = max(worstPerLive, perLive(s, bytesPerRow))
		}
		var peakLo, peakHi int64
		for _, p := range peaks[1:9] { // tenths 2 to 9, each sampled through
			if p > 0 && (peakLo == 0 || p < peakLo) {
				peakLo = p
			}
			peakHi = max(peakHi, p)
		}
		if lo > 0 && peakLo > 0 {
			b.ReportMetric(float64(hi)/float64(lo), "size-max/min-after-first-tenth")
			b.ReportMetric(float64(peakHi)/float64(peakLo), "tenths-peak-max/min")
			b.ReportMetric(worstPerLive, "max-size-per-live-row")
			fmt.Printf("soak: after the first tenth the size stayed within %.1f–%.1f MB (max/min %.2f); each tenth's peak within %.1f–%.1f MB (max/min %.2f); at most %.2fx the live rows' size\n",
				float64(lo)/(1<<20), float64(hi)/(1<<20), float64(hi)/float64(lo),
				float64(peakLo)/(1<<20), float64(peakHi)/(1<<20), float64(peakHi)/float64(peakLo), worstPerLive)
		}
		if out := os.Getenv("SOAK_OUT"); out != "" {
			name := fmt.Sprintf("%s, %s, %d events: relay %.0f rows/s steady", layout, settings, total, steadyRate)
			if pace > 0 {
				name = fmt.Sprintf("%s, %s, %d events written at %.0f rows/s, %d rows a partition", layout, settings, total, pace, cfg.PartitionRows)
			}
			require.NoError(b, writeSoakSamples(out, name, samples))
			require.NoError(b, drawSoakPlot(filepath.Dir(out)))
		}
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

// soakLogger prints the relay's warnings (a partition drop that failed,
// say) among the soak's samples.
func soakLogger() *zap.Logger {
	return zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.Lock(os.Stdout), zap.WarnLevel))
}

// paceName says how fast the soak's writer writes.
func paceName(pace float64) string {
	if pace == 0 {
		return "the relay's pace"
	}
	return fmt.Sprintf("%.0f rows/s", pace)
}

// perLive is the table's size over what its live rows take freshly written
// and packed (bytesPerRow).
func perLive(s soakSample, bytesPerRow float64) float64 {
	if s.live == 0 {
		return 0
	}
	return float64(s.totalBytes) / (float64(s.live) * bytesPerRow)
}

// writeSoakSamples writes a run's samples to path: its name on the first
// line, then published events and size in bytes, tab-separated.
func writeSoakSamples(path, name string, samples []soakSample) error {
	var sb strings.Builder
	sb.WriteString("# " + name + "\n")
	for _, s := range samples {
		fmt.Fprintf(&sb, "%d\t%d\n", s.published, s.totalBytes)
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// niceStep is the least of 1, 2 or 5 times a power of ten that is at
// least d: an axis's tick spacing, so that ticks fall on round numbers.
func niceStep(d float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(d)))
	for _, m := range []float64{1, 2, 5} {
		if m*p >= d {
			return m * p
		}
	}
	return 10 * p
}

// drawSoakPlot draws every run's samples in dir (*.tsv, as
// writeSoakSamples writes them) as one line each, the outbox's size over
// the events published, into dir/soak-outbox-size.svg.
func drawSoakPlot(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.tsv"))
	if err != nil {
		return err
	}
	type run struct {
		name string
		x, y []float64
	}
	var runs []run
	var maxX, maxY float64
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var r run
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			if name, ok := strings.CutPrefix(line, "# "); ok {
				r.name = name
				continue
			}
			var x, y float64
			if _, err := fmt.Sscanf(line, "%g\t%g", &x, &y); err != nil {
				return fmt.Errorf("%s: %q: %w", f, line, err)
			}
			r.x, r.y = append(r.x, x/1e6), append(r.y, y/(1<<20))
			maxX, maxY = max(maxX, x/1e6), max(maxY, y/(1<<20))
		}
		runs = append(runs, r)
	}
	if len(runs) == 0 || maxX == 0 || maxY == 0 {
		return fmt.Errorf("no samples in %s", dir)
	}
	const w, h, left, right, top, bottom = 900.0, 420.0, 70.0, 20.0, 20.0, 60.0
	stepX, stepY := niceStep(maxX/6), niceStep(maxY*1.05/8)
	maxX, maxY = math.Ceil(maxX/stepX)*stepX, math.Ceil(maxY*1.05/stepY)*stepY
	px := func(x float64) float64 { return left + x/maxX*(w-left-right) }
	py := func(y float64) float64 { return h - bottom - y/maxY*(h-top-bottom) }
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h+20*float64(len(runs)))
	fmt.Fprintf(&sb, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for y := 0.0; y <= maxY+stepY/2; y += stepY {
		fmt.Fprintf(&sb, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end">%g</text>`+"\n",
			left, w-right, py(y), py(y), left-6, py(y)+4, y)
	}
	for x := 0.0; x <= maxX+stepX/2; x += stepX {
		fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle">%g</text>`+"\n", px(x), h-bottom+16, x)
	}
	fmt.Fprintf(&sb, `<text x="%.1f" y="%.1f" text-anchor="middle">events published (millions)</text>`+"\n", (left+w-right)/2, h-bottom+36)
	fmt.Fprintf(&sb, `<text transform="translate(16 %.1f) rotate(-90)" text-anchor="middle">outbox size (MB)</text>`+"\n", (top+h-bottom)/2)
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}
	for i, r := range runs {
		var pts []string
		for j := range r.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(r.x[j]), py(r.y[j])))
		}
		c := colors[i%len(colors)]
		fmt.Fprintf(&sb, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		ly := h + 20*float64(i) - 4
		fmt.Fprintf(&sb, `<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			left, left+24, ly-4, ly-4, c, left+30, ly, html.EscapeString(r.name))
	}
	sb.WriteString("</svg>\n")
	return os.WriteFile(filepath.Join(dir, "soak-outbox-size.svg"), []byte(sb.String()), 0o644)
}
