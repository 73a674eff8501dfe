// Package heartbeat checks the jobs that report in: a heartbeat site's job
// calls the ping listener (POST /ping/<token>, /start, /fail, or its exit
// status), each ping is a check written to the outbox in the transaction
// that records it, and a deadline passed without a ping is a failed check
// that the replica leasing the site's shard writes at that moment.
package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/ops"
	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/record"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// Error classes of heartbeat checks.
const (
	ClassMissed    = "missed"     // no ping by the deadline (interval + grace, or grace after /start)
	ClassJobFailed = "job_failed" // the job reported a failure: /fail, or an exit status other than 0
)

// maxBody is what a ping's body may hold: read and dropped (curl --data-binary @log).
const maxBody = 100 << 10

// Store is what heartbeats need of the database.
type Store interface {
	Ping(ctx context.Context, token string, sig store.Signal, message store.BeatMessage) (bool, error)
	SweepHeartbeats(ctx context.Context, shards []int16, message store.BeatMessage) (int, error)
}

// Scoper says which shards this replica sweeps (schedule.Owner).
type Scoper interface{ Scope() site.Scope }

// Config tunes the heartbeats.
type Config struct {
	Addr          string        // the ping listener's address; "" serves none
	SweepInterval time.Duration // how often passed deadlines are looked for
	Timeout       time.Duration // deadline of one database transaction
}

// Validate reports every setting that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Addr != "" {
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("ping-addr: %q: want host:port or :port: %w", c.Addr, err))
		}
	}
	if c.SweepInterval < 100*time.Millisecond || c.SweepInterval > time.Minute {
		errs = append(errs, fmt.Errorf("heartbeat-sweep-interval: %s: want 100ms..1m", c.SweepInterval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("heartbeat timeout %s: want more than 0", c.Timeout))
	}
	return errors.Join(errs...)
}

// Heartbeats serves pings and sweeps deadlines.
type Heartbeats struct {
	cfg    Config
	st     Store
	owner  Scoper
	logger *zap.Logger
	pings  *prometheus.CounterVec
	missed prometheus.Counter
	errors prometheus.Counter
}

// New checks cfg and returns Heartbeats.
func New(cfg Config, st Store, owner Scoper, logger *zap.Logger, reg prometheus.Registerer) (*Heartbeats, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("heartbeat configuration: %w", err)
	}
	h := &Heartbeats{cfg: cfg, st: st, owner: owner, logger: logger,
		pings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_monitor_heartbeat_pings_total",
			Help: "Pings received, by signal (success, fail, start) or unknown (no enabled heartbeat site has the token)."}, []string{"signal"}),
		missed: prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_monitor_heartbeats_missed_total",
			Help: "Heartbeat deadlines passed without a ping, each written as a failed check."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_monitor_heartbeat_errors_total",
			Help: "Pings and sweeps that failed on the database (a ping answers 503 and the job may retry)."}),
	}
	reg.MustRegister(h.pings, h.missed, h.errors)
	return h, nil
}

// Handler serves the ping endpoints:
//
//	GET|HEAD|POST /ping/<token>           the job ran: a passing check
//	GET|HEAD|POST /ping/<token>/fail      the job failed: a failed check
//	GET|HEAD|POST /ping/<token>/start     a run starts: it must end (a ping or /fail) within the grace
//	GET|HEAD|POST /ping/<token>/<status>  the job's exit status: 0 passes, 1..255 fails
//
// They answer 200 "OK", 404 for a token no enabled heartbeat site has,
// and 503 when the database cannot record the ping (retry).
func (h *Heartbeats) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, method := range []string{"GET", "HEAD", "POST"} {
		mux.HandleFunc(method+" /ping/{token}", h.ping)
		mux.HandleFunc(method+" /ping/{token}/{signal}", h.ping)
	}
	return mux
}

func (h *Heartbeats) ping(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxBody))
	sig, name, ok := parseSignal(r.PathValue("signal"))
	if !ok {
		http.Error(w, "unknown signal: want /ping/<token>, /start, /fail or an exit status 0..255", http.StatusNotFound)
		return
	}
	token := r.PathValue("token")
	if !site.WellFormedPingToken(token) {
		h.pings.WithLabelValues("unknown").Inc()
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.Timeout)
	defer cancel()
	found, err := h.st.Ping(ctx, token, sig, h.message)
	switch {
	case err != nil:
		h.errors.Inc()
		h.logger.Warn("recording a ping failed", zap.String("signal", name), zap.Error(err))
		http.Error(w, "the ping could not be recorded: retry", http.StatusServiceUnavailable)
	case !found:
		h.pings.WithLabelValues("unknown").Inc()
		http.Error(w, "not found", http.StatusNotFound)
	default:
		h.pings.WithLabelValues(name).Inc()
		_, _ = io.WriteString(w, "OK\n")
	}
}

// parseSignal reads the last path segment of a ping: none (success),
// start, fail or an exit status.
func parseSignal(s string) (store.Signal, string, bool) {
	switch s {
	case "":
		return store.Signal{ExitStatus: -1}, "success", true
	case "start":
		return store.Signal{Start: true, ExitStatus: -1}, "start", true
	case "fail":
		return store.Signal{Failed: true, ExitStatus: -1}, "fail", true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != s {
		return store.Signal{}, "", false
	}
	if n == 0 {
		return store.Signal{ExitStatus: 0}, "success", true
	}
	return store.Signal{Failed: true, ExitStatus: n}, "fail", true
}

// message is the outbox message of a beat; a beat that cannot be written
// is dropped and logged.
func (h *Heartbeats) message(b store.Beat) (outbox.Message, bool) {
	m, err := record.Message(Result(b))
	if err != nil {
		h.logger.Error("dropping a heartbeat check that cannot be written", zap.Int64("site_id", b.Site.ID), zap.Error(err))
		return outbox.Message{}, false
	}
	return m, true
}

// Result is the check of a beat: its run time (from the /start it ends)
// as the duration, and what went wrong, if anything.
func Result(b store.Beat) probe.Result {
	r := probe.Result{Site: b.Site, Region: site.HeartbeatRegion, Planned: b.At, CheckedAt: b.At}
	if b.Started != nil && b.At.After(*b.Started) {
		r.Duration = b.At.Sub(*b.Started)
	}
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	switch {
	case b.Missed && b.Started != nil:
		r.ErrorClass = ClassMissed
		r.Error = fmt.Sprintf("the run started at %s did not end by %s", at(*b.Started), at(b.Deadline))
	case b.Missed && b.LastPing != nil:
		r.ErrorClass = ClassMissed
		r.Error = fmt.Sprintf("no ping since %s (due by %s)", at(*b.LastPing), at(b.Deadline))
	case b.Missed:
		r.ErrorClass = ClassMissed
		r.Error = fmt.Sprintf("no ping yet (due by %s)", at(b.Deadline))
	case b.Signal.Failed && b.Signal.ExitStatus > 0:
		r.ErrorClass = ClassJobFailed
		r.Error = fmt.Sprintf("the job exited with status %d", b.Signal.ExitStatus)
	case b.Signal.Failed:
		r.ErrorClass = ClassJobFailed
		r.Error = "the job reported a failure"
	}
	return r
}

// Run sweeps passed deadlines every SweepInterval and, with an address,
// serves the ping listener, until ctx ends. A sweep that fails is logged
// and tried again at the next tick.
func (h *Heartbeats) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	if h.cfg.Addr != "" {
		ln, err := net.Listen("tcp", h.cfg.Addr)
		if err != nil {
			return fmt.Errorf("listening for pings on %s: %w", h.cfg.Addr, err)
		}
		h.logger.Info("ping listener listening", zap.String("addr", ln.Addr().String()))
		srv := &http.Server{Handler: h.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: h.cfg.Timeout + 5*time.Second, IdleTimeout: time.Minute, ErrorLog: zap.NewStdLog(h.logger)}
		go func() { errc <- ops.Serve(ctx, srv, ln, "pings") }()
	} else {
		close(errc)
	}
	tick := time.NewTicker(h.cfg.SweepInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			if errc == nil {
				return nil
			}
			return <-errc // the listener's shutdown
		case err := <-errc:
			if err != nil {
				return err
			}
			errc = nil
		case <-tick.C:
			h.Sweep(ctx)
		}
	}
}

// Sweep writes the checks of the deadlines passed in this replica's shards.
func (h *Heartbeats) Sweep(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	n, err := h.st.SweepHeartbeats(ctx, h.owner.Scope().Shards, h.message)
	if err != nil {
		if ctx.Err() == nil {
			h.errors.Inc()
			h.logger.Warn("sweeping heartbeat deadlines failed; trying again", zap.Error(err))
		}
		return
	}
	h.missed.Add(float64(n))
}
