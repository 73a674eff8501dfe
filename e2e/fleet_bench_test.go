package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/porttest"
)

// farmEnv makes the test binary serve as the benchmark's farm: a few HTTP
// servers in a process of their own, so their CPU is not the monitors'.
const farmEnv = "SITEWATCH_E2E_FARM"

func init() {
	if addrs := os.Getenv(farmEnv); addrs != "" {
		serveFarm(strings.Split(addrs, ","))
	}
}

func serveFarm(addrs []string) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "status: ok "+r.URL.Path)
	})
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		go func() { _ = http.Serve(l, handler) }()
	}
	select {} // until killed
}

// BenchmarkFleet: 20,000 sites at a 4 s interval (5,000 checks/s planned)
// on two monitor replicas of one region, the farm in its own process.
// Reports checks/s, p95 schedule lag, the time the survivor takes to own
// every site after the other is killed, and each replica's peak RSS.
// SITEWATCH_BENCH_SECONDS sets the measured time (default 15).
func BenchmarkFleet(b *testing.B) {
	measure := 15 * time.Second
	if v := os.Getenv("SITEWATCH_BENCH_SECONDS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SITEWATCH_BENCH_SECONDS=%q: want a positive number of seconds", v)
		}
		measure = time.Duration(n) * time.Second
	}
	const sites, interval = 20000, 4 * time.Second
	bin := benchBinary(b, "monitor")

	var farm []string
	for range 4 {
		farm = append(farm, porttest.Addr(b))
	}
	farmProc := exec.Command(os.Args[0], "-test.run=^$")
	farmProc.Env = append(os.Environ(), farmEnv+"="+strings.Join(farm, ","))
	if err := farmProc.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = farmProc.Process.Kill(); _ = farmProc.Wait() })

	dbURL := dbtest.New(b)
	var yaml strings.Builder
	yaml.WriteString("sites:\n")
	for i := range sites {
		fmt.Fprintf(&yaml, "  - url: http://%s/site/%d\n    interval: 4s\n    timeout: 2s\n    match: ['status: ok']\n", farm[i%len(farm)], i)
	}
	file := filepath.Join(b.TempDir(), "sites.yaml")
	if err := os.WriteFile(file, []byte(yaml.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_FORMAT=console", "LOG_LEVEL=warn", loopbackAllowed)
	imp := exec.Command(bin, "sites", "import", file)
	imp.Env = env
	if out, err := imp.CombinedOutput(); err != nil {
		b.Fatalf("importing sites: %v\n%s", err, out)
	}

	type proc struct {
		cmd *exec.Cmd
		ops string
	}
	start := func() proc {
		p := proc{ops: porttest.Addr(b)}
		p.cmd = exec.Command(bin, "run", "-ops-addr", p.ops, "-concurrency", "400")
		p.cmd.Env = env
		if err := p.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
		return p
	}
	replicas := []proc{start(), start()}
	owned := func(p proc) float64 { return scrape(b, p.ops)["sitewatch_monitor_sites"].sum }
	waitUntil(b, 60*time.Second, "the replicas share every site", func() bool {
		return owned(replicas[0]) > 0 && owned(replicas[0])+owned(replicas[1]) == sites
	})
	time.Sleep(2 * interval) // warm-up: every site checked at least once

	b.ResetTimer()
	before := []metrics{scrape(b, replicas[0].ops), scrape(b, replicas[1].ops)}
	time.Sleep(measure)
	after := []metrics{scrape(b, replicas[0].ops), scrape(b, replicas[1].ops)}
	b.StopTimer()

	var checks float64
	lag := map[float64]float64{}
	for i := range replicas {
		checks += after[i]["sitewatch_monitor_checks_total"].sum - before[i]["sitewatch_monitor_checks_total"].sum
		for le, n := range after[i]["sitewatch_monitor_schedule_lag_seconds"].buckets {
			lag[le] += n - before[i]["sitewatch_monitor_schedule_lag_seconds"].buckets[le]
		}
	}
	rss := []float64{peakRSS(b, replicas[0].cmd.Process.Pid), peakRSS(b, replicas[1].cmd.Process.Pid)}

	// Handover: kill -9 one replica; the survivor owns every site after.
	killed := time.Now()
	_ = replicas[1].cmd.Process.Signal(syscall.SIGKILL)
	waitUntil(b, 60*time.Second, "the survivor owns every site", func() bool { return owned(replicas[0]) == sites })
	handover := time.Since(killed)

	b.ReportMetric(checks/measure.Seconds(), "checks/s")
	b.ReportMetric(sites/interval.Seconds(), "planned/s")
	b.ReportMetric(1000*quantile(lag, 0.95), "p95-lag-ms(bucket)")
	b.ReportMetric(handover.Seconds(), "handover-s")
	b.ReportMetric(rss[0], "replica1-peak-RSS-MB")
	b.ReportMetric(rss[1], "replica2-peak-RSS-MB")
}

func waitUntil(b *testing.B, timeout time.Duration, what string, cond func() bool) {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// metric is a scraped counter or gauge (sum over its series) or histogram
// (cumulative count per upper bound, summed over its series).
type metric struct {
	sum     float64
	buckets map[float64]float64
}

type metrics map[string]metric

func scrape(b *testing.B, addr string) metrics {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return metrics{} // not up yet
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		b.Fatalf("parsing metrics of %s: %v", addr, err)
	}
	out := metrics{}
	for name, mf := range mfs {
		m := metric{buckets: map[float64]float64{}}
		for _, s := range mf.GetMetric() {
			m.sum += s.GetCounter().GetValue() + s.GetGauge().GetValue()
			for _, bk := range s.GetHistogram().GetBucket() {
				m.buckets[bk.GetUpperBound()] += float64(bk.GetCumulativeCount())
			}
		}
		out[name] = m
	}
	return out
}

// quantile is the upper bound of the bucket holding the q-quantile of a
// cumulative histogram.
func quantile(buckets map[float64]float64, q float64) float64 {
	bounds := make([]float64, 0, len(buckets))
	for le := range buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return 0
	}
	total := buckets[math.Inf(1)]
	for _, le := range bounds {
		if buckets[le] >= q*total {
			return le
		}
	}
	return bounds[len(bounds)-1]
}

// peakRSS is a process's VmHWM in MiB.
func peakRSS(b *testing.B, pid int) float64 {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
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
	b.Fatal("no VmHWM")
	return 0
}
