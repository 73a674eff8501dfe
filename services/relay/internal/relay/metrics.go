package relay

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the relay's Prometheus metrics, labelled by source.
type Metrics struct {
	published, failed, transient, deleted *prometheus.CounterVec
	parked, partitions                    *prometheus.CounterVec
	batchSeconds                          *prometheus.HistogramVec
	steps                                 *prometheus.CounterVec // seconds by source and step

	mu      sync.Mutex
	sources []source
}

// source is what the metrics read of a Relay.
type source interface {
	Name() string
	Stats(ctx context.Context) (Stats, error)
}

// NewMetrics registers the relay's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	src := []string{"source"}
	m := &Metrics{
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_relay_published_total",
			Help: "Outbox rows Kafka acknowledged and the relay flipped."}, src),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_relay_failed_total",
			Help: "Produce attempts Kafka refused for the row itself; the row is retried after a backoff."}, src),
		transient: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_relay_transient_errors_total",
			Help: "Rows not acknowledged because Kafka was unavailable; retried without using up attempts."}, src),
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_relay_deleted_total",
			Help: "Published rows deleted after the retention period."}, src),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_relay_parked_total",
			Help: "Rows parked: attempts used up, a topic the source may not publish to, or a row that can never be produced (NULLs, too large)."}, []string{"source", "reason"}),
		partitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_relay_partitions_total",
			Help: "Partitions of a partitioned outbox the relay created ahead of the writers, and dropped once published and past the retention."}, []string{"source", "action"}),
		batchSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sitewatch_relay_batch_duration_seconds",
			Help: "Time from claiming a batch to committing it.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, src),
	}
	m.steps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_relay_step_seconds_total",
		Help: "Time spent by step, summed over the workers: claim (selecting and locking a batch), produce (until Kafka acknowledged it), " +
			"flip (marking rows published, failed or parked), commit; retention (deleting published rows)."}, []string{"source", "step"})
	reg.MustRegister(m.published, m.failed, m.transient, m.deleted, m.parked, m.partitions, m.batchSeconds, m.steps, m)
	return m
}

func (m *Metrics) add(r source) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sources = append(m.sources, r)
}

// Steps are the parts of the relay's work sitewatch_relay_step_seconds_total counts.
var Steps = []string{"claim", "produce", "flip", "commit", "retention"}

// step is the counter of seconds of one of Steps for source.
func (m *Metrics) step(source, name string) prometheus.Counter {
	return m.steps.WithLabelValues(source, name)
}

func (m *Metrics) observePartitions(source string, created, dropped int) {
	m.partitions.WithLabelValues(source, "created").Add(float64(created))
	m.partitions.WithLabelValues(source, "dropped").Add(float64(dropped))
}

func (m *Metrics) observeDeleted(source string, n int64) {
	m.deleted.WithLabelValues(source).Add(float64(n))
}

func (m *Metrics) observe(source string, res Result, parked map[string]int, took time.Duration) {
	m.published.WithLabelValues(source).Add(float64(res.Published))
	m.failed.WithLabelValues(source).Add(float64(res.Failed))
	m.transient.WithLabelValues(source).Add(float64(res.Transient))
	for reason, n := range parked {
		if n > 0 {
			m.parked.WithLabelValues(source, reason).Add(float64(n))
		}
	}
	m.batchSeconds.WithLabelValues(source).Observe(took.Seconds())
}

var (
	pendingDesc = prometheus.NewDesc("sitewatch_relay_pending_rows",
		"Rows waiting to be published (retrying ones included, parked ones not).", []string{"source"}, nil)
	ageDesc = prometheus.NewDesc("sitewatch_relay_oldest_pending_age_seconds",
		"Age of the oldest row waiting to be published.", []string{"source"}, nil)
	parkedDesc = prometheus.NewDesc("sitewatch_relay_parked_rows",
		"Rows parked until someone requeues them (relay parked list).", []string{"source"}, nil)
	lanesDesc = prometheus.NewDesc("sitewatch_relay_lanes_owned",
		"Lanes of the source this replica leases.", []string{"source"}, nil)
	upDesc = prometheus.NewDesc("sitewatch_relay_source_up",
		"1 if the source's database answered the last scrape.", []string{"source"}, nil)
)

// Describe implements prometheus.Collector for the per-source gauges.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pendingDesc, ageDesc, parkedDesc, lanesDesc, upDesc} {
		ch <- d
	}
}

// Collect queries each source's table at scrape time.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	sources := append([]source(nil), m.sources...)
	m.mu.Unlock()
	for _, r := range sources {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := r.Stats(ctx)
		cancel()
		name := r.Name()
		ch <- prometheus.MustNewConstMetric(lanesDesc, prometheus.GaugeValue, float64(st.Lanes), name)
		if err != nil {
			ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0, name)
			continue
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1, name)
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(st.Pending), name)
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, st.OldestPending.Seconds(), name)
		ch <- prometheus.MustNewConstMetric(parkedDesc, prometheus.GaugeValue, float64(st.Parked), name)
	}
}
