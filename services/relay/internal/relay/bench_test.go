package relay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

// benchRows is how many outbox rows each measurement preloads
// (SITEWATCH_BENCH_ROWS overrides the 500,000 default).
func benchRows(b *testing.B) int { return benchInt(b, "SITEWATCH_BENCH_ROWS", 500_000) }

// benchInt is the whole number above zero in the environment variable
// name, or def if it is unset.
func benchInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	require.NoError(b, err, name)
	require.Positive(b, n, name)
	return n
}

// payload is a check-result-sized message (~250 bytes of JSON).
var payload = []byte(`{"schema_version":1,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":4242,` +
	`"url":"https://status.example.com/health","checked_at":"2026-11-24T01:02:03.456Z","status_code":200,` +
	`"duration_ms":123.4,"regex":"ok|healthy","regex_matched":true}`)

// preload writes n rows to table.
func preload(b *testing.B, pool *pgxpool.Pool, table, topic string, n int) {
	b.Helper()
	ctx := context.Background()
	w, err := outbox.NewWriter(table)
	require.NoError(b, err)
	const chunk = 10_000
	for done := 0; done < n; done += chunk {
		msgs := make([]outbox.Message, min(chunk, n-done))
		for i := range msgs {
			msgs[i] = outbox.Message{Topic: topic, Key: []byte(strconv.Itoa((done + i) % 1000)), Payload: payload,
				Headers: map[string]string{"ce_type": "io.sitewatch.check.completed"}}
		}
		require.NoError(b, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return w.Write(ctx, tx, msgs...) }))
	}
	_, err = pool.Exec(ctx, "VACUUM ANALYZE "+table)
	require.NoError(b, err)
}

// layouts are the two outbox layouts the relay serves: the partitioned one
// of outbox.sql (sitewatch's own since migration 00029) and the earlier
// single table.
var layouts = []string{"partitioned", "single-table"}

// layoutDB returns a new database (a schema of its own) and the table of
// the layout in it: sitewatch's outbox, or one of the earlier layout made
// from outboxtest.LegacyDDL in a schema beside it.
func layoutDB(b *testing.B, layout string) (url, table string) {
	b.Helper()
	url = dbtest.New(b)
	if layout == "partitioned" {
		return url, "outbox"
	}
	return url, outboxtest.SchemaWith(b, outboxtest.LegacyDDL) + ".outbox"
}

// benchConfig is the relay's configuration in the benchmarks: its default
// batch size and workers (SITEWATCH_BENCH_BATCH and SITEWATCH_BENCH_WORKERS
// override them).
func benchConfig(b *testing.B) Config {
	cfg := testConfig()
	cfg.BatchSize, cfg.Workers = benchInt(b, "SITEWATCH_BENCH_BATCH", DefaultBatchSize), benchInt(b, "SITEWATCH_BENCH_WORKERS", DefaultWorkers)
	cfg.PollInterval, cfg.Rebalance = 100*time.Millisecond, time.Second
	return cfg
}

func benchProducer(b *testing.B, kcfg kafkaclient.Config) *kafka.Producer {
	b.Helper()
	p, err := kafka.NewProducer(kcfg.ConfigMap(kafka.ConfigMap{
		"enable.idempotence": true, "acks": "all", "linger.ms": 5, "partitioner": "murmur2_random",
		"go.delivery.report.fields": "none", "message.timeout.ms": 0, // as the relay by default: wait
	}))
	require.NoError(b, err)
	b.Cleanup(p.Close)
	go func() {
		for range p.Events() {
		}
	}()
	return p
}

// ackProducer acknowledges every message at once: the relay with it is the
// database's claim-and-flip ceiling.
type ackProducer struct{}

func (ackProducer) Produce(m *kafka.Message, ch chan kafka.Event) error {
	ch <- m
	return nil
}

func (ackProducer) Purge(int) error { return nil }

// measured is one run: its rows (or messages) a second, and the CPU µs a
// row that each kind of process (cpuKinds) used meanwhile.
type measured struct {
	rate float64
	cpu  map[string]float64
}

// cpuPerRow is the CPU µs a row of every kind together.
func (m measured) cpuPerRow() float64 {
	var sum float64
	for _, us := range m.cpu {
		sum += us
	}
	return sum
}

// measure returns n over took as the rate and, from two readings of
// cpuSeconds around it, the CPU each kind used per row, which it prints
// after label.
func measure(label string, n int, took time.Duration, cpu0, cpu1 map[string]taskCPU) measured {
	m := measured{rate: float64(n) / took.Seconds(), cpu: map[string]float64{}}
	spent := cpuSpent(cpu0, cpu1)
	var used []string
	for _, kind := range cpuKinds {
		m.cpu[kind] = spent[kind] * 1e6 / float64(n)
		used = append(used, fmt.Sprintf("%s %.1f", kind, m.cpu[kind]))
	}
	busy := m.cpuPerRow() * m.rate / 1e6 / float64(runtime.NumCPU()) // CPU seconds a second, per core
	fmt.Printf("  %s: CPU µs per row: %s; %.1f in all, %.2f of the machine's %d cores\n", label,
		strings.Join(used, ", "), m.cpuPerRow(), busy, runtime.NumCPU())
	return m
}

// benchSource is the source the benchmarks relay: no ce_source or id
// header set, as in the code before issue 22's benchmark (bench-before.sh
// compares the two).
func benchSource(dbURL, table string) Source {
	return Source{Name: "bench", DatabaseURL: dbURL, Table: table, Topics: []string{"*"}}
}

// runUntilDrained runs a relay on a preloaded table until it has published
// all n rows.
func runUntilDrained(b *testing.B, dbURL, table string, p Producer, n int) measured {
	b.Helper()
	m := NewMetrics(prometheus.NewRegistry())
	r, err := New(context.Background(), benchConfig(b), benchSource(dbURL, table), p, zap.NewNop(), m)
	require.NoError(b, err)
	defer r.Close()
	defer UseGCPercent()() // as the relay's process does
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	cpu0 := cpuSeconds()
	start := time.Now()
	go func() { r.Run(ctx); close(done) }()
	// The relay's own count: a query would compete with it for the database.
	for testutil.ToFloat64(m.published.WithLabelValues("bench")) < float64(n) {
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	cpu1 := cpuSeconds() // before the relay's connections close, and their backends with them
	cancel()
	<-done
	var steps []string
	for _, step := range Steps[:4] {
		steps = append(steps, fmt.Sprintf("%s %.1f", step, testutil.ToFloat64(m.steps.WithLabelValues("bench", step))*1e6/float64(n)))
	}
	fmt.Printf("  %s: µs per row by step, summed over workers: %s\n", table, strings.Join(steps, ", "))
	return measure(table, n, took, cpu0, cpu1)
}

// cpuKinds are the kinds of process cpuSeconds tells apart.
var cpuKinds = []string{"postgres", "broker", "relay", "kernel", "other"}

// taskCPU is a thread's kind (see cpuKinds) and the CPU seconds it used.
type taskCPU struct {
	kind    string
	seconds float64
}

// cpuSeconds returns the CPU time (user and system) each thread running
// now has used, from /proc (Linux; empty elsewhere), by its
// /proc/PID/task/TID path. Its kind tells PostgreSQL's backends, the Kafka
// broker, this process (the relay and librdkafka's threads), the kernel's
// threads (writeback, softirqs) and the rest apart. The database, the
// broker and the relay share this machine's cores: where the time goes
// tells what bounds the relay's rows/s.
func cpuSeconds() map[string]taskCPU {
	out := map[string]taskCPU{}
	tasks, _ := filepath.Glob("/proc/[0-9]*/task/[0-9]*/stat")
	self := strconv.Itoa(os.Getpid())
	kinds := map[string]string{} // by pid
	for _, path := range tasks {
		pid := strings.Split(path, "/")[2]
		kind, ok := kinds[pid]
		if !ok {
			kind = processKind(pid, self)
			kinds[pid] = kind
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			continue // the task ended meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		out[path] = taskCPU{kind: kind, seconds: (utime + stime) / 100} // USER_HZ, 100 on Linux
	}
	return out
}

// cpuSpent is the CPU time used between two readings of cpuSeconds, by
// kind: each thread's growth, all of it for a thread started meanwhile. A
// thread that ended meanwhile (a kernel worker, say) is left out, its time
// lost: subtracting its first reading from nothing made a kind's sum
// negative.
func cpuSpent(before, after map[string]taskCPU) map[string]float64 {
	out := map[string]float64{}
	for path, t := range after {
		out[t.kind] += t.seconds - before[path].seconds
	}
	return out
}

// processKind is which of cpuKinds process pid is.
func processKind(pid, self string) string {
	if pid == self {
		return "relay"
	}
	comm, _ := os.ReadFile("/proc/" + pid + "/comm")
	stat, _ := os.ReadFile("/proc/" + pid + "/stat")
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	switch name := strings.TrimSpace(string(comm)); {
	case name == "postgres":
		return "postgres"
	case name == "java":
		return "broker"
	case pid == "2" || len(f) > 1 && f[1] == "2": // kthreadd and its children
		return "kernel"
	}
	return "other"
}

// produceRaw is librdkafka alone: n messages as the relay builds them of
// rows like preload's, produced as fast as librdkafka takes them, until
// all are acked. Their building is left out (1,000 are built first and
// produced in turn: librdkafka copies each), as the database's ceiling
// has it already, and so is the producer's start.
func produceRaw(b *testing.B, topic string, n int) measured {
	b.Helper()
	p := benchProducer(b, kafkatest.Config(b))
	builder := &Relay{src: benchSource("", "outbox")}
	msgs := make([]*kafka.Message, 1000)
	for i := range msgs {
		row := &store.Row{ID: int64(i + 1), EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789abc", Topic: topic,
			Key: []byte(strconv.Itoa(i)), Payload: payload, CreatedAt: time.Now(),
			Headers: map[string]string{"ce_type": "io.sitewatch.check.completed"}}
		buf := make([]byte, 0, messageHeaderBytes)
		msgs[i] = builder.message(row, &buf)
	}
	reports := make(chan kafka.Event, 10_000)
	// Once, unmeasured: the producer's connections and the topic's
	// metadata, which the relay's runs have before theirs.
	for _, m := range msgs {
		require.NoError(b, p.Produce(m, reports))
	}
	for range msgs {
		require.NoError(b, (<-reports).(*kafka.Message).TopicPartition.Error)
	}
	acked := make(chan int)
	cpu0 := cpuSeconds()
	start := time.Now()
	go func() {
		ok := 0
		for range n {
			if m := (<-reports).(*kafka.Message); m.TopicPartition.Error == nil {
				ok++
			}
		}
		acked <- ok
	}()
	for i := range n {
		for {
			err := p.Produce(msgs[i%len(msgs)], reports)
			if err == nil {
				break
			}
			time.Sleep(time.Millisecond) // local queue full: wait for acks
		}
	}
	ok := <-acked
	took := time.Since(start)
	cpu1 := cpuSeconds()
	require.Equal(b, n, ok)
	return measure("librdkafka alone", n, took, cpu0, cpu1)
}

// BenchmarkRelayThroughput preloads the outbox and measures rows/s until
// every row is acknowledged and flipped, beside the two ceilings: the
// database's claim-and-flip rate alone and librdkafka's produce rate
// alone; for the partitioned layout and, in the same run, the earlier
// single table. Run it with `make bench` (or go test -run '^$' -bench
// Relay ./internal/relay).
func BenchmarkRelayThroughput(b *testing.B) {
	n := benchRows(b)
	for range b.N {
		topic := kafkatest.NewTopic(b, 6)
		kafkaAlone := produceRaw(b, topic, n)
		b.ReportMetric(kafkaAlone.rate, "kafka-ceiling-rows/s")
		fmt.Printf("librdkafka alone: %d messages: %.0f a second\n", n, kafkaAlone.rate)
		rates := map[string]float64{}
		for _, layout := range layouts {
			dbOnly, table := layoutDB(b, layout)
			preload(b, dbtest.Pool(b, dbOnly), table, topic, n)
			dbCeiling := runUntilDrained(b, dbOnly, table, ackProducer{}, n)

			full, table := layoutDB(b, layout)
			preload(b, dbtest.Pool(b, full), table, topic, n)
			relay := runUntilDrained(b, full, table, benchProducer(b, kafkatest.Config(b)), n)
			rates[layout] = relay.rate

			// On cores the database, the relay and the broker share, a
			// row costs at least the CPU of the database's ceiling and
			// of Kafka alone together; all the cores at that cost is the
			// most the relay can reach.
			reachable := float64(runtime.NumCPU()) * 1e6 / (dbCeiling.cpuPerRow() + kafkaAlone.cpuPerRow())
			b.ReportMetric(relay.rate, layout+"-rows/s")
			b.ReportMetric(dbCeiling.rate, layout+"-db-ceiling-rows/s")
			b.ReportMetric(relay.rate/dbCeiling.rate, layout+"-of-db-ceiling")
			b.ReportMetric(reachable/dbCeiling.rate, layout+"-reachable-of-db-ceiling")
			fmt.Printf("relay, %s: %d rows: %.0f rows/s; ceilings: database claim-and-flip %.0f rows/s, librdkafka produce %.0f rows/s; relay = %.2f of the database's, %.2f of the lower\n",
				layout, n, relay.rate, dbCeiling.rate, kafkaAlone.rate, relay.rate/dbCeiling.rate, relay.rate/min(dbCeiling.rate, kafkaAlone.rate))
			fmt.Printf("relay, %s: at most %.0f rows/s (%.2f of the database's ceiling) on %d cores busy with the database's ceiling's %.1f CPU µs a row and Kafka alone's %.1f\n",
				layout, reachable, reachable/dbCeiling.rate, runtime.NumCPU(), dbCeiling.cpuPerRow(), kafkaAlone.cpuPerRow())
		}
		b.ReportMetric(rates["partitioned"]/rates["single-table"], "partitioned/single-table")
		fmt.Printf("relay: the partitioned layout publishes %.2fx the single table's rows/s\n", rates["partitioned"]/rates["single-table"])
	}
}

// BenchmarkRelayOnACluster measures the relay's rows/s as
// BenchmarkRelayThroughput does, on the single broker and on the
// three-broker cluster (kafkatest.StartCluster: the topic replicated three
// times, two in sync, acks=all), one after the other in one run.
func BenchmarkRelayOnACluster(b *testing.B) {
	n := benchRows(b)
	for _, k := range kafkatest.SingleAndCluster(b) {
		b.Run(k.Name, func(b *testing.B) {
			for range b.N {
				topic := k.NewTopic(6)
				url := dbtest.New(b)
				preload(b, dbtest.Pool(b, url), "outbox", topic, n)
				relay := runUntilDrained(b, url, "outbox", benchProducer(b, k.Config), n)
				b.ReportMetric(relay.rate, "rows/s")
				fmt.Printf("relay on %s: %d rows: %.0f rows/s\n", k.Name, n, relay.rate)
			}
		})
	}
}
