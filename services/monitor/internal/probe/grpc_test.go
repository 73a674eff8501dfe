package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// grpcServer serves the standard health service (unless noHealth) on
// 127.0.0.1, over TLS when cert is given: the server as a whole and
// svc.up are SERVING, svc.down NOT_SERVING.
func grpcServer(t *testing.T, cert *tls.Certificate, noHealth bool) string {
	t.Helper()
	var opts []grpc.ServerOption
	if cert != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{*cert}})))
	}
	srv := grpc.NewServer(opts...)
	if !noHealth {
		h := health.NewServer()
		h.SetServingStatus("svc.up", healthpb.HealthCheckResponse_SERVING)
		h.SetServingStatus("svc.down", healthpb.HealthCheckResponse_NOT_SERVING)
		healthpb.RegisterHealthServer(srv, h)
	}
	l := listen(t)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return l.Addr().String()
}

func TestGRPCChecks(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ca := testCert(t, "grpc-test CA", true, now.Add(-time.Hour), now.Add(90*24*time.Hour), nil)
	leaf := testCert(t, "127.0.0.1", false, now.Add(-time.Hour), now.Add(30*24*time.Hour), &ca)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)

	plain := grpcServer(t, nil, false)
	secure := grpcServer(t, &leaf, false)
	bare := grpcServer(t, nil, true)
	silent := lineServer(t, listen(t), func(c net.Conn) { _, _ = c.Read(make([]byte, 1<<16)); time.Sleep(5 * time.Second) })
	closed := listen(t)
	refused := closed.Addr().String()
	require.NoError(t, closed.Close())

	allow := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	p := New(Config{MaxBodyBytes: 1024, Guard: allow, RootCAs: roots, UserAgent: "sitewatch-test"})
	for name, tc := range map[string]struct {
		url     string
		prober  *Prober
		class   string
		errText string
		check   func(t *testing.T, r Result)
	}{
		"server serving": {url: "grpc://" + plain, check: func(t *testing.T, r Result) {
			require.Equal(t, "127.0.0.1", r.RemoteIP)
			require.Positive(t, r.Phases.Connect)
			require.Nil(t, r.OCSPStapled, "no TLS")
		}},
		"service serving":     {url: "grpc://" + plain + "/svc.up"},
		"service not serving": {url: "grpc://" + plain + "/svc.down", class: ClassGRPC, errText: `health of service "svc.down": NOT_SERVING, want SERVING`},
		"service unknown":     {url: "grpc://" + plain + "/svc.nope", class: ClassGRPC, errText: "unknown to the server"},
		"no health service":   {url: "grpc://" + bare, class: ClassGRPC, errText: "no health service"},
		"refused":             {url: "grpc://" + refused, class: ClassConnect, errText: "connection refused"},
		"not gRPC":            {url: "grpc://" + silent, class: ClassTimeout},
		"blocked":             {url: "grpc://" + plain, prober: New(Config{MaxBodyBytes: 1024, Guard: NewGuard(nil)}), class: ClassBlocked},
		"grpcs": {url: "grpcs://" + secure + "/svc.up", check: func(t *testing.T, r Result) {
			require.Equal(t, "TLS 1.3", r.TLSVersion)
			require.WithinDuration(t, leaf.Leaf.NotAfter, r.TLSExpiry, time.Second)
		}},
		"grpcs untrusted": {url: "grpcs://" + secure, prober: New(Config{MaxBodyBytes: 1024, Guard: allow}), class: ClassTLS, errText: "certificate"},
		"grpcs to plain":  {url: "grpcs://" + plain, class: ClassTLS},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			prober := tc.prober
			if prober == nil {
				prober = p
			}
			r := prober.Check(context.Background(), target(t, site.Site{URL: tc.url, Timeout: time.Second}))
			require.Equal(t, tc.class, r.ErrorClass, "error: %s", r.Error)
			require.Contains(t, r.Error, tc.errText)
			require.Positive(t, r.Duration)
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}
