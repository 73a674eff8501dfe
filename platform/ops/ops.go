// Package ops serves the endpoints every long-running sitewatch service
// exposes: /healthz (the process is alive and its loop makes progress),
// /readyz (its dependencies answer) and /metrics (Prometheus).
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Check reports a problem as an error; it must return promptly once ctx ends.
type Check func(ctx context.Context) error

// Server is the ops HTTP server. Register checks before calling Run.
type Server struct {
	addr     string
	logger   *zap.Logger
	registry *prometheus.Registry

	mu        sync.Mutex
	liveness  map[string]Check
	readiness map[string]Check
}

// New returns a server that will listen on addr with a fresh metrics
// registry holding the Go runtime and process collectors.
func New(addr string, logger *zap.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Server{addr: addr, logger: logger, registry: reg,
		liveness: map[string]Check{}, readiness: map[string]Check{}}
}

// Registry is where the service registers its metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// AddLiveness adds a check to /healthz. Keep these to the process itself
// (a stalled loop); a dependency that is down is a readiness problem.
func (s *Server) AddLiveness(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.liveness[name] = c
}

// AddReadiness adds a check to /readyz.
func (s *Server) AddReadiness(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readiness[name] = c
}

// Handler returns the ops endpoints as one handler.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { s.serveChecks(w, r, s.liveness) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { s.serveChecks(w, r, s.readiness) })
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	return mux
}

// Run listens and serves until ctx ends, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listening for ops endpoints on %s: %w", s.addr, err)
	}
	s.logger.Info("ops endpoints listening", zap.String("addr", ln.Addr().String()))
	return Serve(ctx, &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}, ln, "ops endpoints")
}

// Serve serves srv on ln until ctx ends, then shuts it down gracefully,
// letting requests in flight finish for up to 5 s. what names the server
// in errors.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, what string) error {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving %s: %w", what, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down %s: %w", what, err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving %s: %w", what, err)
	}
	return nil
}

func (s *Server) serveChecks(w http.ResponseWriter, r *http.Request, checks map[string]Check) {
	s.mu.Lock()
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	s.mu.Unlock()
	sort.Strings(names)

	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	result := map[string]string{}
	status := http.StatusOK
	for _, n := range names {
		s.mu.Lock()
		c := checks[n]
		s.mu.Unlock()
		if err := c(ctx); err != nil {
			result[n] = Redact(err.Error())
			status = http.StatusServiceUnavailable
			continue
		}
		result[n] = "ok"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": http.StatusText(status), "checks": result})
}

var (
	urlPassword = regexp.MustCompile(`(://[^:/@\s]*):[^@\s]*@`)
	kvPassword  = regexp.MustCompile(`(?i)\b(password|passwd|pwd|secret|token|sasl\.password)(\s*[=:]\s*)('[^']*'|"[^"]*"|\S+)`)
)

// Redact masks what looks like a credential in s: the password of a URL
// (scheme://user:password@host) and password=/secret=/token= values.
// /readyz answers anyone who can reach it, so its reasons go through it.
func Redact(s string) string {
	s = urlPassword.ReplaceAllString(s, "$1:xxxxx@")
	return kvPassword.ReplaceAllString(s, "$1$2xxxxx")
}
