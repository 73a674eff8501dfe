package schedule

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	checks   *prometheus.CounterVec
	lag      prometheus.Histogram
	duration prometheus.Histogram
	skipped  prometheus.Counter
	sites    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_monitor_checks_total",
			Help: "Checks run, by error class (empty when the check passed)."}, []string{"error_class"}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sitewatch_monitor_schedule_lag_seconds",
			Help: "Delay between a check's planned and actual start.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sitewatch_monitor_check_duration_seconds",
			Help: "Time a check took, body included.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_monitor_skipped_checks_total",
			Help: "Planned checks not run because the previous one was still running or the scheduler was behind."}),
		sites: prometheus.NewGauge(prometheus.GaugeOpts{Name: "sitewatch_monitor_sites",
			Help: "Enabled sites being scheduled."}),
	}
	reg.MustRegister(m.checks, m.lag, m.duration, m.skipped, m.sites)
	return m
}
