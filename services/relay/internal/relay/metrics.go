package relay

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	published    prometheus.Counter
	failed       prometheus.Counter
	batchSeconds prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_relay_published_total", Help: "Outbox rows Kafka acknowledged and the relay flipped."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sitewatch_relay_failed_total", Help: "Produce attempts Kafka refused; the rows stay unpublished."}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sitewatch_relay_batch_duration_seconds", Help: "Time from claiming a batch to committing it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	reg.MustRegister(m.published, m.failed, m.batchSeconds)
	return m
}
