package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/record"
	"github.com/sitewatch/sitewatch/services/monitor/internal/schedule"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// BenchmarkFarm runs the real scheduler, probe and recorder (writing to the
// real outbox table) against 10,000 sites served by a farm of local HTTP
// servers, and reports the checks per second sustained, the lag between a
// check's planned and actual start, and the process's peak RSS (the farm's
// servers run in this process too, so that is an upper bound).
//
// SITEWATCH_BENCH_SECONDS sets how long each case measures (default 12).
func BenchmarkFarm(b *testing.B) {
	measure := 12 * time.Second
	if v := os.Getenv("SITEWATCH_BENCH_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SITEWATCH_BENCH_SECONDS=%q: want a positive number of seconds", v)
		}
		measure = time.Duration(n) * time.Second
	}
	for _, interval := range []time.Duration{10 * time.Second, 5 * time.Second, 2 * time.Second} {
		b.Run(fmt.Sprintf("sites=10000/interval=%s", interval), func(b *testing.B) {
			runFarm(b, 10000, interval, measure)
		})
	}
}

func runFarm(b *testing.B, n int, interval, measure time.Duration) {
	const warmup = 2 * time.Second
	ctx := context.Background()
	pool := dbtest.Pool(b, dbtest.New(b))
	st := store.New(pool)

	// The farm: a few servers, so accept loops are not the bottleneck.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("status: ok " + r.URL.Path))
	})
	var farm []string
	for range 4 {
		srv := httptest.NewServer(handler)
		b.Cleanup(srv.Close)
		farm = append(farm, srv.URL)
	}
	sites := make([]site.Site, n)
	for i := range sites {
		sites[i] = site.Site{URL: fmt.Sprintf("%s/site/%d", farm[i%len(farm)], i), MustMatch: []string{`status: ok`},
			MustNotMatch: []string{`error`}, Interval: interval, Timeout: 2 * time.Second, Topic: "bench.checks", Enabled: true}
	}
	_, err := st.AddSites(ctx, sites)
	if err != nil {
		b.Fatal(err)
	}
	resetPeakRSS(b)

	reg := prometheus.NewRegistry()
	logger := zap.NewNop()
	cfg := Config{Concurrency: 200, ReloadInterval: 5 * time.Second, MaxBodyBytes: 1 << 20, BatchSize: 500,
		FlushInterval: 100 * time.Millisecond}
	prober := probe.New(probe.Config{MaxBodyBytes: cfg.MaxBodyBytes, UserAgent: "sitewatch-bench", MaxRedirects: maxRedirects})
	checked := make(chan probe.Result, 4*cfg.BatchSize)
	toRecord := make(chan probe.Result, 4*cfg.BatchSize)
	sched, err := schedule.New(schedule.Config{Concurrency: cfg.Concurrency, ReloadInterval: cfg.ReloadInterval},
		st, schedule.Everything(checkevent.DefaultRegion), prober, checked, logger, reg)
	if err != nil {
		b.Fatal(err)
	}
	rec, err := record.New(record.Config{BatchSize: cfg.BatchSize, FlushInterval: cfg.FlushInterval, ShutdownGrace: 10 * time.Second,
		WriteTimeout: 30 * time.Second}, st, logger, reg)
	if err != nil {
		b.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	start := time.Now()
	from, to := start.Add(warmup), start.Add(warmup+measure)
	var lags []float64 // ms, of checks started inside the window
	failed := 0
	teed := make(chan struct{})
	go func() { // between scheduler and recorder: measure, pass on
		defer close(teed)
		defer close(toRecord)
		for r := range checked {
			if !r.CheckedAt.Before(from) && r.CheckedAt.Before(to) {
				lags = append(lags, float64(r.CheckedAt.Sub(r.Planned).Microseconds())/1000)
				if r.ErrorClass != "" {
					failed++
				}
			}
			toRecord <- r
		}
	}()
	recorded := make(chan struct{})
	go func() { rec.Run(runCtx, toRecord); close(recorded) }()
	schedDone := make(chan struct{})
	go func() { sched.Run(runCtx); close(schedDone) }()

	b.ResetTimer()
	time.Sleep(time.Until(from))
	cpuFrom := cpuTime(b)
	time.Sleep(time.Until(to))
	cpuUsed := cpuTime(b) - cpuFrom
	stop()
	<-schedDone
	<-teed
	<-recorded
	b.StopTimer()

	if failed > 0 {
		b.Errorf("%d checks failed; the farm should answer every one", failed)
	}
	slices.Sort(lags)
	pct := func(p float64) float64 {
		if len(lags) == 0 {
			return 0
		}
		return lags[min(len(lags)-1, int(p*float64(len(lags))))]
	}
	written := gauge(b, reg, "sitewatch_monitor_results_written_total")
	b.ReportMetric(float64(len(lags))/measure.Seconds(), "checks/s")
	b.ReportMetric(float64(n)/interval.Seconds(), "planned/s")
	b.ReportMetric(pct(0.95), "p95-lag-ms")
	b.ReportMetric(pct(0.99), "p99-lag-ms")
	b.ReportMetric(gauge(b, reg, "sitewatch_monitor_skipped_checks_total"), "skipped")
	b.ReportMetric(written/time.Since(start).Seconds(), "outbox-rows/s")
	b.ReportMetric(peakRSSMB(b), "peak-RSS-MB")
	// CPU time of the whole process (monitor and farm) per check: unlike
	// checks/s it does not depend on what else runs on the machine.
	b.ReportMetric(float64(cpuUsed.Microseconds())/float64(max(1, len(lags))), "cpu-us/check")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// gauge reads the value of a counter or gauge without labels from reg.
func gauge(b *testing.B, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	b.Fatalf("metric %s not found", name)
	return 0
}

// resetPeakRSS resets VmHWM (Linux: writing 5 to clear_refs), so each case
// reports its own peak.
func resetPeakRSS(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS, it covers the whole process: %v", err)
	}
}

// peakRSSMB is VmHWM from /proc/self/status, in MiB.
func peakRSSMB(b *testing.B) float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
