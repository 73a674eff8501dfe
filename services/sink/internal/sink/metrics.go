package sink

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	consumed, stored, duplicates, malformed, writeErrors, newer prometheus.Counter
	batchSeconds                                                prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_sink_" + name, Help: help})
		reg.MustRegister(c)
		return c
	}
	m := &metrics{
		consumed:    counter("consumed_total", "Messages read from Kafka."),
		stored:      counter("stored_total", "New rows written to stats."),
		duplicates:  counter("duplicates_total", "Messages whose event id was already stored."),
		malformed:   counter("malformed_total", "Messages skipped because they can never be stored."),
		writeErrors: counter("write_errors_total", "Failed attempts to write a batch (retried)."),
		newer:       counter("newer_schema_total", "Messages of a newer schema version than this sink knows, stored with the fields it knows."),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sitewatch_sink_batch_duration_seconds",
			Help: "Time to decode and write a batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	reg.MustRegister(m.batchSeconds)
	return m
}
