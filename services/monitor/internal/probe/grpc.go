package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// ClassGRPC is a gRPC health check that did not say SERVING: the service
// is not serving or unknown, the server has no health service, or the call
// failed after the connection was made.
const ClassGRPC = "grpc"

// checkGRPC checks a grpc:// or grpcs:// site with the standard health
// check, grpc.health.v1.Health/Check, for the service its path names (none:
// the server as a whole). The connection is the prober's own (fresh, through
// the guard; its time is the connect phase); grpcs verifies the server's
// certificate for the host and records the handshake as a tls check does.
func (p *Prober) checkGRPC(ctx context.Context, t *Target, res Result) Result {
	s := t.Site
	start := time.Now()
	u, err := url.Parse(s.URL)
	if err != nil {
		return failed(res, start, ClassConnect, err) // validated on the way in: a row changed by hand
	}
	service := strings.TrimPrefix(u.Path, "/")

	var (
		mu      sync.Mutex
		dialErr error
		remote  string
	)
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		t0 := time.Now()
		conn, err := p.dialer.DialContext(ctx, "tcp", addr)
		mu.Lock()
		defer mu.Unlock()
		res.Phases.Connect += time.Since(t0)
		dialErr = err
		if conn != nil {
			remote = conn.RemoteAddr().String()
		}
		return conn, err
	}
	creds := insecure.NewCredentials()
	if s.Kind() == site.KindGRPCS {
		creds = credentials.NewTLS(&tls.Config{RootCAs: p.cfg.RootCAs, ServerName: u.Hostname()})
	}
	conn, err := grpc.NewClient("passthrough:///"+u.Host, grpc.WithContextDialer(dial),
		grpc.WithTransportCredentials(creds), grpc.WithUserAgent(p.cfg.UserAgent))
	if err != nil {
		return failed(res, start, ClassConnect, err)
	}
	defer func() { _ = conn.Close() }()

	var pr peer.Peer
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service},
		grpc.Peer(&pr))
	res.Duration = time.Since(start)
	mu.Lock()
	if host, _, err := net.SplitHostPort(remote); err == nil {
		res.RemoteIP = host
	}
	dialed := dialErr
	mu.Unlock()
	if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok {
		res.TLSExpiry, res.TLSChainExpiry = expiries(info.State.PeerCertificates)
		handshake(&res, info.State)
	}
	if err != nil {
		st := status.Convert(err)
		switch {
		case dialed != nil:
			return failed(res, start, classify(ctx, dialed), dialed)
		case st.Code() == codes.DeadlineExceeded || ctx.Err() != nil:
			return failed(res, start, ClassTimeout, fmt.Errorf("health check: %s", st.Message()))
		case st.Code() == codes.Unavailable && strings.Contains(st.Message(), "handshake"),
			st.Code() == codes.Unavailable && strings.Contains(st.Message(), "certificate"):
			return failed(res, start, ClassTLS, errors.New(st.Message()))
		case st.Code() == codes.Unimplemented:
			return failed(res, start, ClassGRPC, fmt.Errorf("the server has no health service (grpc.health.v1.Health): %s", st.Message()))
		case st.Code() == codes.NotFound:
			return failed(res, start, ClassGRPC, fmt.Errorf("health of service %q: unknown to the server", service))
		}
		return failed(res, start, ClassGRPC, fmt.Errorf("health check: %s: %s", st.Code(), st.Message()))
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		res.ErrorClass = ClassGRPC
		res.Error = fmt.Sprintf("health of %s: %s, want SERVING", serviceName(service), resp.GetStatus())
	}
	return res
}

func serviceName(service string) string {
	if service == "" {
		return "the server"
	}
	return fmt.Sprintf("service %q", service)
}
