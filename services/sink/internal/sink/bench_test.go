package sink

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	runtimemetrics "runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/services/sink/internal/maintain"
	"github.com/sitewatch/sitewatch/services/sink/internal/rollup"
	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

// benchSites is how many sites the preloaded checks are spread over.
const benchSites = 10_000

// BenchmarkSinkPreloaded measures the sink catching up on a backlog: the
// real loop, consumer and store drain SITEWATCH_SINK_BENCH_MESSAGES
// (default 500,000) check events preloaded on a 3-partition topic, 10,000
// sites checked every minute (1 % failing), into partitioned stats, the
// rollups and the sites' states. It reports rows/s, each part of the loop
// as a share of the wall time (sitewatch_sink_loop_seconds_total: Kafka,
// decoding, the database; collecting and writing overlap, so the shares add
// up to more than 100 %) and the database's time per row per step
// (sitewatch_sink_write_seconds_total: raw rows, rollups, state, commit).
// The rollups' folder runs beside the sink, and rows/s counts until the
// minutes ready are folded too. Each iteration starts from an empty
// database and a new consumer group;
// batches of 500 (the old default), 10,000 (the default) and 60,000 are
// compared, or the sizes listed in SITEWATCH_SINK_BENCH_BATCHES
// ("10000,30000"), each written by DefaultWriters writers
// (SITEWATCH_SINK_BENCH_WRITERS). It also reports the Go heap's peak while
// draining: what the batches in flight cost.
func BenchmarkSinkPreloaded(b *testing.B) {
	n := envInt(b, "SITEWATCH_SINK_BENCH_MESSAGES", 500_000)
	sizes := envInts(b, "SITEWATCH_SINK_BENCH_BATCHES", 500, 10000, 60000)
	writers := envInt(b, "SITEWATCH_SINK_BENCH_WRITERS", DefaultWriters)
	kcfg := kafkatest.Config(b)
	topic := kafkatest.NewTopic(b, 3)
	first := preload(b, kcfg, topic, n)
	for _, size := range sizes {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				drain(b, kcfg, topic, first, n, size, writers)
			}
		})
	}
}

// BenchmarkSinkOnACluster is BenchmarkSinkPreloaded's drain at the default
// batch size on the single broker and on the three-broker cluster
// (kafkatest.StartCluster: the topic replicated three times, two in sync),
// one after the other in one run.
func BenchmarkSinkOnACluster(b *testing.B) {
	n := envInt(b, "SITEWATCH_SINK_BENCH_MESSAGES", 500_000)
	for _, k := range kafkatest.SingleAndCluster(b) {
		topic := k.NewTopic(3)
		first := preload(b, k.Config, topic, n)
		b.Run(k.Name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				drain(b, k.Config, topic, first, n, DefaultBatchSize, DefaultWriters)
			}
		})
	}
}

// envInts reads the environment variable name as positive numbers
// separated by commas, or returns def when it is not set.
func envInts(b *testing.B, name string, def ...int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want positive numbers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}

// envInt is envInts for a variable holding one number.
func envInt(b *testing.B, name string, def int) int {
	v := envInts(b, name, def)
	if len(v) != 1 {
		b.Fatalf("%s=%q: want one positive number", name, os.Getenv(name))
	}
	return v[0]
}

// preload produces n check events of benchSites sites, in time order,
// keyed by site as the relay does, with time-ordered event ids (UUIDv7) as
// the monitor makes them, and returns the minute of the first.
func preload(b *testing.B, kcfg kafkaclient.Config, topic string, n int) time.Time {
	b.Helper()
	p, err := kafka.NewProducer(kcfg.ConfigMap(kafka.ConfigMap{"acks": "all", "linger.ms": 20,
		"batch.size": 1 << 20, "queue.buffering.max.messages": 1_000_000, "compression.type": "lz4"}))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	start := time.Now().UTC().Add(-time.Duration(n/benchSites+1) * time.Minute).Truncate(time.Minute)
	done := make(chan error, 1)
	go func() {
		var first error
		for i := 0; i < n; i++ {
			m := (<-p.Events()).(*kafka.Message)
			if m.TopicPartition.Error != nil && first == nil {
				first = m.TopicPartition.Error
			}
		}
		done <- first
	}()
	expiry := start.AddDate(0, 3, 0)
	for i := 0; i < n; i++ {
		site := int64(i%benchSites + 1)
		id, err := uuid.NewV7() // time-ordered, as the monitor makes them (record.go)
		if err != nil {
			b.Fatal(err)
		}
		c := checkevent.Check{SchemaVersion: checkevent.SchemaVersion, EventID: id.String(), SiteID: site,
			URL: "https://site-" + strconv.FormatInt(site, 10) + ".example/", Region: "local",
			CheckedAt:  start.Add(time.Duration(i/benchSites)*time.Minute + time.Duration(site)*time.Millisecond),
			StatusCode: 200, DurationMS: 20 + float64(i%170), DNSMS: 1, ConnectMS: 3, TLSMS: 6, TTFBMS: 9, TransferMS: 1,
			BodyBytes: 5120, TLSExpiry: &expiry, RemoteIP: "192.0.2.1"}
		if i%100 == 0 {
			c.StatusCode, c.ErrorClass, c.Error = 503, "status", "status 503"
		}
		v, err := json.Marshal(c)
		if err != nil {
			b.Fatal(err)
		}
		msg := &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key: []byte(strconv.FormatInt(site, 10)), Value: v}
		for {
			err := p.Produce(msg, nil)
			if err == nil {
				break
			}
			if err.(kafka.Error).Code() != kafka.ErrQueueFull {
				b.Fatal(err)
			}
			p.Flush(100)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return start
}

// drain runs a sink with batches of size on an empty database until it
// stored all n events of topic, the first of them checked in the minute
// first, then folds their rollups, and reports what it measured.
func drain(b *testing.B, kcfg kafkaclient.Config, topic string, first time.Time, n, size, writers int) {
	b.StopTimer()
	ctx := context.Background()
	pool := dbtest.Pool(b, dbtest.New(b))
	if _, err := pool.Exec(ctx, `INSERT INTO sites (url) SELECT 'https://site-' || i || '.example/' FROM generate_series(1, $1) AS i`,
		benchSites); err != nil {
		b.Fatal(err)
	}
	// The daily partitions the sink's maintenance makes ahead, so the rows
	// go where a sink's would instead of into the default partition.
	var mc maintain.Config
	mc.RegisterFlags(flag.NewFlagSet("maintenance", flag.ContinueOnError))
	if _, err := maintain.Once(ctx, pool, mc, first); err != nil {
		b.Fatal(err)
	}
	// A sink catching up after an outage: its rollups were folded up to
	// the first check it has to read.
	if _, err := pool.Exec(ctx, `UPDATE rollup_fold SET folded_to = $1`, first); err != nil {
		b.Fatal(err)
	}
	c, err := kafka.NewConsumer(kcfg.ConfigMap(kafka.ConfigMap{"group.id": "bench-" + uuid.NewString(),
		"auto.offset.reset": "earliest", "enable.auto.commit": true, "enable.auto.offset.store": false}))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Subscribe(topic, nil); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := New(Config{BatchSize: size, Writers: writers, BatchWait: 200 * time.Millisecond, ShutdownGrace: time.Second, WriteTimeout: time.Minute},
		c, store.New(pool, checkevent.IncidentTopic, reg), nil, zap.NewNop(), reg)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	// The folder runs beside the writers, as in a sink catching up
	// (rollup.RunFolder folds again at once while minutes are ready).
	foldCtx, stopFolding := context.WithCancel(ctx)
	defer stopFolding()
	foldedWhileDraining := make(chan int, 1)
	go func() {
		folded := 0
		defer func() { foldedWhileDraining <- folded }()
		for foldCtx.Err() == nil {
			res, err := rollup.Fold(foldCtx, pool, time.Now())
			switch {
			case err != nil && foldCtx.Err() == nil:
				b.Error(err)
				return
			case err == nil && res.To.IsZero():
				time.Sleep(10 * time.Millisecond) // nothing ready yet
			}
			folded += res.Checks
		}
	}()
	// The clock starts with the first stored row: joining the group and
	// the first fetch are not the sink's throughput.
	for testutil.ToFloat64(s.metrics.stored) == 0 {
		time.Sleep(time.Millisecond)
	}
	b.StartTimer()
	started, before := time.Now(), s.partSeconds()
	heap := []runtimemetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peakHeap uint64 // what the batches in flight cost: the heap's peak while draining
	for testutil.ToFloat64(s.metrics.stored) < float64(n) {
		runtimemetrics.Read(heap)
		peakHeap = max(peakHeap, heap[0].Value.Uint64())
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(started)
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MB")
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	after := s.partSeconds()
	// Then the folds of the minutes left: everything is stored and folded
	// when they end. (A sink leaves the last few minutes for later, until
	// newer ones come: FoldLag, FoldSlot. A check of a minute well after
	// the last makes them ready here; it is one check more to fold.)
	stopFolding()
	folded := <-foldedWhileDraining
	tailStart := time.Now()
	marker := first.Add(time.Duration(n/benchSites)*time.Minute + rollup.FoldLag + rollup.FoldSlot + time.Minute)
	if _, err := pool.Exec(ctx, `INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum,
		histogram, phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum)
		VALUES (60, 1, 'local', $1, 1, 0, 1, '{1}', 0, 0, 0, 0, 0, 0)`, marker); err != nil {
		b.Fatal(err)
	}
	for {
		res, err := rollup.Fold(ctx, pool, marker.Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		if res.To.IsZero() {
			break
		}
		folded += res.Checks
	}
	tail := time.Since(tailStart)
	if folded == 0 {
		b.Fatal("nothing was folded")
	}
	b.ReportMetric(float64(n)/elapsed.Seconds(), "drain-rows/s")
	b.ReportMetric(tail.Seconds(), "fold-tail-s")
	var inHours, inDays int
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(checks) FILTER (WHERE bucket_width = 3600), 0), coalesce(sum(checks) FILTER (WHERE bucket_width = 86400), 0)
		FROM rollups WHERE bucket_start < $1`, first.Add(time.Duration(n/benchSites+1)*time.Minute)).Scan(&inHours, &inDays); err != nil {
		b.Fatal(err)
	}
	if inHours != n || inDays != n {
		b.Fatalf("%d checks in the 1-hour rollups and %d in the 1-day ones, of %d (%d by folding, the others by writers: they came late)", inHours, inDays, n, folded)
	}
	var strays int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM stats_default`).Scan(&strays); err != nil {
		b.Fatal(err)
	}
	if strays != 0 {
		b.Fatalf("%d checks went to the default partition: the benchmark measures the daily ones", strays)
	}
	b.ReportMetric(float64(n)/(elapsed+tail).Seconds(), "rows/s")
	for _, part := range LoopParts { // of the wall time: the collecting and the writing parts overlap
		b.ReportMetric(100*(after[part]-before[part])/elapsed.Seconds(), part+"-%")
	}
	steps := byLabel(b, reg, "sitewatch_sink_write_seconds_total", "step")
	for _, step := range store.Steps {
		b.ReportMetric(steps[step]*1e6/float64(n), step+"-µs/row")
	}
	if got := testutil.ToFloat64(s.metrics.stored); got != float64(n) {
		b.Fatalf("stored %v rows of %d", got, n)
	}
}

// byLabel is the counter name of reg by the value of its label.
func byLabel(b *testing.B, reg *prometheus.Registry, name, label string) map[string]float64 {
	b.Helper()
	families, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	if len(out) == 0 {
		b.Fatalf("no %s{%s} registered", name, label)
	}
	return out
}

// partSeconds is sitewatch_sink_loop_seconds_total by part.
func (s *Sink) partSeconds() map[string]float64 {
	out := map[string]float64{}
	for _, part := range LoopParts {
		out[part] = testutil.ToFloat64(s.metrics.seconds.WithLabelValues(part))
	}
	return out
}
