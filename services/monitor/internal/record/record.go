// Package record turns check results into outbox messages and writes them,
// many results per transaction under load, so thousands of checks a second
// do not need thousands of commits.
package record

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/retry"
	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// OutboxWriter writes messages in one transaction.
type OutboxWriter interface {
	WriteOutbox(ctx context.Context, msgs []outbox.Message) error
	// WriteOutboxAgain writes those of msgs not in the outbox yet: after
	// an attempt that failed, which may have committed all the same.
	WriteOutboxAgain(ctx context.Context, msgs []outbox.Message) error
}

// Config tunes batching.
type Config struct {
	BatchSize     int
	FlushInterval time.Duration // the longest a result waits for its batch
	ShutdownGrace time.Duration // how long to keep retrying after shutdown
	WriteTimeout  time.Duration // deadline of one outbox transaction
}

// Validate reports every setting that cannot work; it does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 {
		errs = append(errs, fmt.Errorf("batch size %d: want at least 1", c.BatchSize))
	}
	if c.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("flush interval %s: want more than 0", c.FlushInterval))
	}
	if c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("shutdown grace %s: want 0 or more", c.ShutdownGrace))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("write timeout %s: want more than 0", c.WriteTimeout))
	}
	return errors.Join(errs...)
}

// Recorder writes results to the outbox.
type Recorder struct {
	cfg     Config
	w       OutboxWriter
	logger  *zap.Logger
	written prometheus.Counter
	errors  prometheus.Counter
	lost    prometheus.Counter
	dropped prometheus.Counter

	failingSince atomic.Int64 // unix nanoseconds of the first failed attempt of the write in progress; 0 when none
}

// New checks cfg and returns a Recorder.
func New(cfg Config, w OutboxWriter, logger *zap.Logger, reg prometheus.Registerer) (*Recorder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("recorder configuration: %w", err)
	}
	r := &Recorder{cfg: cfg, w: w, logger: logger,
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_monitor_results_written_total",
			Help: "Check results written to the outbox."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_monitor_outbox_write_errors_total",
			Help: "Failed outbox transactions (retried)."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_monitor_results_lost_total",
			Help: "Results given up on because the database stayed down through shutdown."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_monitor_results_dropped_total",
			Help: "Results that could never be written (e.g. a topic the outbox refuses), dropped so the others go on."}),
	}
	reg.MustRegister(r.written, r.errors, r.lost, r.dropped)
	return r, nil
}

// Run writes results from in until in is closed. While the database is
// down it retries with backoff; the full channel then slows the checks down
// rather than dropping results. Once ctx has ended it retries for at most
// ShutdownGrace.
func (r *Recorder) Run(ctx context.Context, in <-chan probe.Result) {
	batch := make([]probe.Result, 0, r.cfg.BatchSize)
	flush := time.NewTimer(time.Hour)
	defer flush.Stop()
	for {
		select {
		case res, ok := <-in:
			if !ok {
				r.write(ctx, batch)
				return
			}
			if len(batch) == 0 {
				flush.Reset(r.cfg.FlushInterval)
			}
			batch = append(batch, res)
			if len(batch) < r.cfg.BatchSize {
				continue
			}
		case <-flush.C:
		}
		r.write(ctx, batch)
		batch = batch[:0]
	}
}

func (r *Recorder) write(ctx context.Context, results []probe.Result) {
	if len(results) == 0 {
		return
	}
	msgs := make([]outbox.Message, 0, len(results))
	for _, res := range results {
		m, err := Message(res)
		if err != nil {
			// One bad result (a topic the outbox refuses, a row edited by
			// hand) is dropped and counted; it never holds back the others.
			r.dropped.Inc()
			r.logger.Error("dropping a check result that cannot be written", zap.Int64("site_id", res.Site.ID), zap.Error(err))
			continue
		}
		msgs = append(msgs, m)
	}
	if len(msgs) == 0 {
		return
	}
	policy := retry.Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2,
		AttemptTimeout: r.cfg.WriteTimeout, Grace: r.cfg.ShutdownGrace}
	attempt := 0
	err := retry.Do(ctx, policy, func(actx context.Context) error {
		if attempt++; attempt > 1 {
			return r.w.WriteOutboxAgain(actx, msgs)
		}
		return r.w.WriteOutbox(actx, msgs)
	}, func(attempt int, err error, wait time.Duration) {
		r.failingSince.CompareAndSwap(0, time.Now().UnixNano())
		r.errors.Inc()
		r.logger.Warn("writing check results to the outbox failed; retrying",
			zap.Int("results", len(msgs)), zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
	})
	if err != nil {
		r.errors.Inc()
		r.lost.Add(float64(len(msgs)))
		r.logger.Error("giving up on check results at shutdown", zap.Int("results", len(msgs)), zap.Error(err))
		return
	}
	r.failingSince.Store(0)
	r.written.Add(float64(len(msgs)))
}

// Stuck says the recorder has been failing to write for longer than
// after, for the liveness check: its results pile up and the checks slow
// down behind them.
func (r *Recorder) Stuck(after time.Duration) error {
	since := r.failingSince.Load()
	if since == 0 {
		return nil
	}
	if d := time.Since(time.Unix(0, since)); d > after {
		return fmt.Errorf("writing check results has failed for %s", d.Round(time.Second))
	}
	return nil
}

// Message is the outbox message for one result: keyed by site id so one
// site's checks stay in order on one partition, with the CloudEvents
// headers that describe it.
func Message(res probe.Result) (outbox.Message, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return outbox.Message{}, fmt.Errorf("generating event id: %w", err)
	}
	ev := checkevent.Check{
		SchemaVersion:  checkevent.SchemaVersion,
		EventID:        id.String(),
		SiteID:         res.Site.ID,
		URL:            res.Site.URL,
		CheckedAt:      res.CheckedAt,
		StatusCode:     res.StatusCode,
		DurationMS:     ms(res.Duration),
		RegexMatched:   res.RegexMatched,
		Regexes:        res.Regexes,
		ErrorClass:     res.ErrorClass,
		Error:          res.Error,
		DNSMS:          ms(res.Phases.DNS),
		ConnectMS:      ms(res.Phases.Connect),
		TLSMS:          ms(res.Phases.TLS),
		TTFBMS:         ms(res.Phases.TTFB),
		TransferMS:     ms(res.Phases.Transfer),
		BodyBytes:      res.BodyBytes,
		Truncated:      res.Truncated,
		Redirects:      res.Redirects,
		FinalURL:       res.FinalURL,
		TLSExpiry:      timeOrNil(res.TLSExpiry),
		TLSChainExpiry: timeOrNil(res.TLSChainExpiry),
		RemoteIP:       res.RemoteIP,
		Region:         res.Region,
		TLSVersion:     res.TLSVersion,
		TLSCipher:      res.TLSCipher,
		OCSPStapled:    res.OCSPStapled,
		DNSRCode:       res.DNSRCode,
		DNSAnswers:     res.DNSAnswers,
		ICMPSent:       res.ICMPSent,
		ICMPReceived:   res.ICMPReceived,
		Conditions:     res.Conditions,
		Degraded:       res.Degraded,
	}
	if res.ICMPReceived > 0 {
		ev.RTTMinMS, ev.RTTAvgMS, ev.RTTMaxMS = msOf(res.RTTMin), msOf(res.RTTAvg), msOf(res.RTTMax)
	}
	switch kind := res.Site.Kind(); kind {
	case site.KindHTTP:
	case site.KindGRPCS:
		ev.Kind = checkevent.KindGRPC // over TLS: the handshake's fields say so
	default:
		ev.Kind = kind
	}
	if err := ev.Validate(); err != nil {
		return outbox.Message{}, fmt.Errorf("check event of site %d: %w", res.Site.ID, err)
	}
	if err := outbox.ValidateTopic(res.Site.Topic); err != nil {
		return outbox.Message{}, fmt.Errorf("site %d: %w", res.Site.ID, err)
	}
	payload, err := json.Marshal(ev)
	if err != nil {
		return outbox.Message{}, fmt.Errorf("encoding check event: %w", err)
	}
	return outbox.Message{
		EventID: ev.EventID,
		Topic:   res.Site.Topic,
		Key:     []byte(strconv.FormatInt(res.Site.ID, 10)),
		Payload: payload,
		Headers: map[string]string{
			"ce_type":      checkevent.Type,
			"ce_source":    checkevent.Source,
			"content-type": checkevent.ContentType,
		},
	}, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// msOf is d in milliseconds, never 0 for a positive d (a round trip on
// loopback can take less than a microsecond).
func msOf(d time.Duration) *float64 {
	v := max(ms(d), 0.001)
	return &v
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
