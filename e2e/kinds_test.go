package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/platform/porttest"
	"github.com/sitewatch/sitewatch/platform/tlstest"
)

// serveLines answers PING with +PONG on every connection l accepts.
func serveLines(t *testing.T, l net.Listener) string {
	t.Helper()
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
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
	}()
	return l.Addr().String()
}

// serveDNS answers A queries for kinds.test. with 192.0.2.7 over UDP on
// 127.0.0.1, and NXDOMAIN for any other name.
func serveDNS(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		if q := req.Question[0]; q.Name == "kinds.test." && q.Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A: net.IPv4(192, 0, 2, 7)}}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// serveGRPCHealth serves the standard health service on 127.0.0.1: the
// service shop.Orders is SERVING.
func serveGRPCHealth(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus("shop.Orders", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

// tcp://, tls://, dns:// and grpc:// sites go the whole way: added with the CLI, checked by
// the monitor, published by the relay, stored by the sink with their kind
// and handshake, and a failing one opens an incident like any site.
func TestCheckKindsEndToEnd(t *testing.T) {
	ctx := context.Background()
	dbURL := dbtest.New(t)
	pool := dbtest.Pool(t, dbURL)
	topic := kafkatest.NewTopic(t, 3)
	env := []string{"DATABASE_URL=" + dbURL, "KAFKA_BROKERS=" + kafkatest.Config(t).Brokers, "LOG_FORMAT=console"}

	plain, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	pong := "tcp://" + serveLines(t, plain)
	// A TLS server whose certificate the monitor does not trust: the check
	// fails with class tls, and still reports the certificate's expiry.
	ca := tlstest.NewCA(t, "kinds-e2e")
	pair := ca.Server(t, "kinds-e2e-server", "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(pair.CertFile, pair.KeyFile)
	require.NoError(t, err)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	untrusted := "tls://" + serveLines(t, tls.NewListener(inner, &tls.Config{Certificates: []tls.Certificate{cert}}))

	resolver := serveDNS(t)
	answered := "dns://" + resolver + "/kinds.test?answer=192.0.2.7"
	missing := "dns://" + resolver + "/gone.test"
	orders := "grpc://" + serveGRPCHealth(t) + "/shop.Orders"

	code, out := run(t, env, "monitor", "sites", "add", pong, "--send", `PING\r\n`, "--match", `^\+PONG`, "--interval", "1s", "--topic", topic)
	require.Equal(t, 0, code, out)
	code, out = run(t, env, "monitor", "sites", "add", untrusted, "--interval", "1s", "--topic", topic)
	require.Equal(t, 0, code, out)
	for _, u := range []string{answered, missing, orders} {
		code, out = run(t, env, "monitor", "sites", "add", u, "--interval", "1s", "--topic", topic)
		require.Equal(t, 0, code, out)
	}

	monitor := start(t, "monitor", env, "run", "-ops-addr", porttest.Addr(t), "-reload-interval", "500ms", "-allow-nets", "127.0.0.0/8")
	relay := start(t, "relay", env, "-ops-addr", porttest.Addr(t), "-poll-interval", "50ms", "-topics", topic+","+checkevent.IncidentTopic)
	sink := start(t, "sink", env, "-ops-addr", porttest.Addr(t), "-topic", topic, "-group-id", "e2e-"+topic, "-batch-wait", "50ms")

	require.Eventually(t, func() bool {
		return count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND kind = 'tcp' AND error_class IS NULL AND regex_matched`, pong) >= 2 &&
			count(t, pool, `SELECT count(*) FROM incidents WHERE url = $1 AND kind = 'down'`, untrusted) == 1 &&
			count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND kind = 'dns' AND error_class IS NULL
				AND dns_rcode = 'NOERROR' AND dns_answers = '["192.0.2.7"]'`, answered) >= 2 &&
			count(t, pool, `SELECT count(*) FROM incidents WHERE url = $1 AND kind = 'down'`, missing) == 1 &&
			count(t, pool, `SELECT count(*) FROM stats WHERE url = $1 AND kind = 'grpc' AND error_class IS NULL`, orders) >= 2
	}, 30*time.Second, 200*time.Millisecond, "the tcp, dns and grpc sites' checks pass; the untrusted tls site and the missing name are down")
	var rcode, class2 string
	require.NoError(t, pool.QueryRow(ctx, `SELECT dns_rcode, error_class FROM stats WHERE url = $1 LIMIT 1`, missing).Scan(&rcode, &class2))
	require.Equal(t, "NXDOMAIN", rcode)
	require.Equal(t, "dns_rcode", class2)

	var kind, class, errText string
	var expiry time.Time
	var connectMS float64
	require.NoError(t, pool.QueryRow(ctx, `SELECT kind, error_class, error, tls_expiry, connect_ms FROM stats
		WHERE url = $1 ORDER BY checked_at DESC LIMIT 1`, untrusted).Scan(&kind, &class, &errText, &expiry, &connectMS))
	require.Equal(t, "tls", kind)
	require.Equal(t, "tls", class)
	require.Contains(t, errText, "certificate signed by unknown authority")
	require.True(t, expiry.After(time.Now()), "the refused certificate's expiry is stored: %s", expiry)
	require.Positive(t, connectMS)
	var version int
	require.NoError(t, pool.QueryRow(ctx, `SELECT schema_version FROM stats WHERE url = $1 LIMIT 1`, pong).Scan(&version))
	require.Equal(t, checkevent.SchemaVersion, version)

	monitor.stop(t, 20*time.Second)
	relay.stop(t, 20*time.Second)
	sink.stop(t, 20*time.Second)
}
