package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	bbconfig "github.com/prometheus/blackbox_exporter/config"
	bbprober "github.com/prometheus/blackbox_exporter/prober"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	yaml "gopkg.in/yaml.v3"

	"github.com/sitewatch/sitewatch/platform/tlstest"
	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// servers are one of each kind's server on loopback.
type servers struct {
	http, tcp, tls, dns, grpc string // host:port
	roots                     *x509.CertPool
	caFile                    string
}

func listen(b *testing.B) net.Listener {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}

// servePong answers PING with +PONG on each connection.
func servePong(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer func() { _ = c.Close() }()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.TrimSpace(line) == "PING" {
					_, _ = io.WriteString(c, "+PONG\r\n")
				}
			}
		}()
	}
}

func start(b *testing.B) servers {
	b.Helper()
	var s servers
	hl := listen(b)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })}
	go func() { _ = hs.Serve(hl) }()
	s.http = hl.Addr().String()

	tl := listen(b)
	go servePong(tl)
	s.tcp = tl.Addr().String()

	ca := tlstest.NewCA(b, "bench")
	pair := ca.Server(b, "bench-server", "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
	if err != nil {
		b.Fatal(err)
	}
	sl := tls.NewListener(listen(b), &tls.Config{Certificates: []tls.Certificate{cert}})
	go servePong(sl)
	s.tls = sl.Addr().String()
	s.roots = x509.NewCertPool()
	s.roots.AppendCertsFromPEM([]byte(ca.CertPEM))
	s.caFile = ca.CertFile

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ds := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
			A: net.IPv4(192, 0, 2, 7)}}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = ds.ActivateAndServe() }()
	b.Cleanup(func() { _ = ds.Shutdown() })
	s.dns = pc.LocalAddr().String()

	gl := listen(b)
	gs := grpc.NewServer()
	hsrv := health.NewServer()
	hsrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(gs, hsrv)
	go func() { _ = gs.Serve(gl) }()
	b.Cleanup(gs.Stop)
	s.grpc = gl.Addr().String()
	return s
}

// blackboxModules is blackbox_exporter's configuration of the same checks,
// as its users write it.
const blackboxModules = `
modules:
  http:
    prober: http
    timeout: 5s
    http: {preferred_ip_protocol: ip4, valid_status_codes: [200], fail_if_body_not_matches_regexp: ["ok"]}
  tcp:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      query_response: [{send: "PING"}, {expect: "^\\+PONG"}]
  tls:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config: {ca_file: CAFILE}
  dns:
    prober: dns
    timeout: 5s
    dns: {preferred_ip_protocol: ip4, transport_protocol: udp, query_name: bench.test, query_type: A, valid_rcodes: [NOERROR]}
  grpc:
    prober: grpc
    timeout: 5s
    grpc: {preferred_ip_protocol: ip4}
  icmp:
    prober: icmp
    timeout: 5s
    icmp: {preferred_ip_protocol: ip4}
`

// cpu is the process's CPU time so far (user + system).
func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs check b.N times, 16 at a time, and reports checks per
// second, CPU per check and the share of failed checks; a failed check
// fails the benchmark unless lossy (ICMP: raw sockets each receive every
// reply, and a burst of them overflows the sockets' buffers, for both
// probers alike).
func measure(b *testing.B, lossy bool, check func() bool) {
	b.Helper()
	if !check() {
		b.Fatal("the check fails before the benchmark starts")
	}
	b.SetParallelism(8) // 8 × GOMAXPROCS checks at once, as a monitor's concurrency
	b.ReportAllocs()
	b.ResetTimer()
	var failed atomic.Int64
	startCPU, start := cpu(), time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !check() {
				failed.Add(1)
			}
		}
	})
	elapsed, used := time.Since(start), cpu()-startCPU
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "checks/s")
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/check")
	b.ReportMetric(float64(failed.Load())/float64(b.N), "failed/check")
	if failed.Load() > 0 && !lossy {
		b.Errorf("%d of %d checks failed", failed.Load(), b.N)
	}
}

// BenchmarkKinds checks each kind with sitewatch's prober and with
// blackbox_exporter's, against the same server on loopback:
//
//	make bench  (or: go test -run '^$' -bench Kinds ./services/monitor/bench)
func BenchmarkKinds(b *testing.B) {
	s := start(b)
	var cfg bbconfig.Config
	if err := yaml.Unmarshal([]byte(strings.ReplaceAll(blackboxModules, "CAFILE", s.caFile)), &cfg); err != nil {
		b.Fatal(err)
	}
	p := probe.New(probe.Config{MaxBodyBytes: 1 << 20, UserAgent: "sitewatch-bench", MaxRedirects: 10, RootCAs: s.roots})
	logger := slog.New(slog.DiscardHandler)
	for _, k := range []struct {
		kind, target string
		site         site.Site
		prober       bbprober.ProbeFn
	}{
		{kind: "http", site: site.Site{URL: "http://" + s.http + "/", MustMatch: []string{"ok"}}, target: "http://" + s.http + "/", prober: bbprober.ProbeHTTP},
		{kind: "tcp", site: site.Site{URL: "tcp://" + s.tcp, Send: "PING\r\n", MustMatch: []string{`^\+PONG`}}, target: s.tcp, prober: bbprober.ProbeTCP},
		{kind: "tls", site: site.Site{URL: "tls://" + s.tls}, target: s.tls, prober: bbprober.ProbeTCP},
		{kind: "dns", site: site.Site{URL: "dns://" + s.dns + "/bench.test"}, target: s.dns, prober: bbprober.ProbeDNS},
		{kind: "grpc", site: site.Site{URL: "grpc://" + s.grpc}, target: s.grpc, prober: bbprober.ProbeGRPC},
		{kind: "icmp", site: site.Site{URL: "icmp://127.0.0.1?count=1"}, target: "127.0.0.1", prober: bbprober.ProbeICMP},
	} {
		target, err := probe.Compile(k.site.WithDefaults())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(k.kind+"/sitewatch", func(b *testing.B) {
			measure(b, k.kind == "icmp", func() bool {
				res := p.Check(context.Background(), target)
				return res.ErrorClass == ""
			})
		})
		module := cfg.Modules[k.kind]
		b.Run(k.kind+"/blackbox_exporter", func(b *testing.B) {
			measure(b, k.kind == "icmp", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), module.Timeout)
				defer cancel()
				// A registry per probe, as blackbox_exporter's /probe handler makes one.
				return k.prober(ctx, k.target, module, prometheus.NewRegistry(), logger)
			})
		})
	}
}
