// Package status is sitewatch's status page, served by the sink, which owns
// the data: every site with its state, uptime and response times, worst
// first, and a page per site, read from the rollups (package rollup) and
// the latest checks, as HTML for people and JSON for scripts.
package status

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/ops"
)

//go:embed web
var web embed.FS

// Config is where the page is served and who may see it.
type Config struct {
	Addr  string // host:port; loopback unless Token is set
	Token string // bearer token, or basic-auth password (any user); required beyond loopback
}

// Validate reports every setting that cannot work; it does not change c.
func (c Config) Validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("http-addr: %q: want host:port", c.Addr)
	}
	if c.Token != "" && len(c.Token) < 16 {
		return errors.New("ui-token: shorter than 16 characters")
	}
	if c.Token == "" && !loopback(host) {
		return fmt.Errorf("ui-token: required when http-addr %q is not on loopback (the page shows every site and its errors)", c.Addr)
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Server serves the status page.
type Server struct {
	cfg    Config
	src    *Source
	logger *zap.Logger
	mux    *http.ServeMux
	public bool // serving the public: only the sites on a status page
}

// New checks cfg and returns a Server reading pool.
func New(cfg Config, pool *pgxpool.Pool, logger *zap.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, src: &Source{pool: pool}, logger: logger, mux: http.NewServeMux()}
	s.routes()
	return s, nil
}

// Handler is the page's handler, authentication included.
func (s *Server) Handler() http.Handler { return s.authenticate(s.mux) }

// Run serves until ctx ends. An address it cannot listen on is logged, and
// Run returns without serving.
func (s *Server) Run(ctx context.Context) error {
	srv := &http.Server{Addr: s.cfg.Addr, Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		// The sink's work goes on without its page: storing checks matters more.
		s.logger.Error("status page not served", zap.String("addr", s.cfg.Addr), zap.Error(err))
		return nil
	}
	s.logger.Info("status page listening", zap.String("addr", l.Addr().String()), zap.Bool("token", s.cfg.Token != ""))
	return ops.Serve(ctx, srv, l, "status page")
}

// authenticate lets a request through with the token as bearer or as the
// basic-auth password, or when no token is set (loopback only).
func (s *Server) authenticate(next http.Handler) http.Handler {
	if s.cfg.Token == "" {
		return next
	}
	want := []byte(s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := ""
		if _, pass, ok := r.BasicAuth(); ok {
			got = pass
		} else if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			got = b
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="sitewatch", charset="UTF-8"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
