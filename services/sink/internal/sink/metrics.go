package sink

import "github.com/prometheus/client_golang/prometheus"

// LoopParts are the parts of the loop sitewatch_sink_loop_seconds_total
// counts. The loop runs in two goroutines at once: one collects and
// decodes (idle, kafka taking messages, decode), the other writes (database,
// dead_letters, kafka storing offsets); each one's parts are all of its
// time except waiting for the other.
var LoopParts = []string{"idle", "kafka", "decode", "database", "dead_letters"}

// part is the counter of seconds of one of LoopParts.
func (m *metrics) part(name string) prometheus.Counter { return m.seconds.WithLabelValues(name) }

type metrics struct {
	consumed, stored, duplicates, malformed, writeErrors, newer prometheus.Counter
	deadLetters                                                 *prometheus.CounterVec
	seconds                                                     *prometheus.CounterVec // by part of the loop
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
		malformed:   counter("malformed_total", "Messages that can never be stored (sent to the dead-letter topic)."),
		writeErrors: counter("write_errors_total", "Failed attempts to write a batch (retried)."),
		newer:       counter("newer_schema_total", "Messages of a newer schema version than this sink knows, stored with the fields it knows."),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sitewatch_sink_batch_duration_seconds",
			Help: "Time to decode and write a batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	m.deadLetters = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_sink_dead_letters_total",
		Help: "Messages sent to the dead-letter topic <topic>.dlq, by reason: malformed (not a check event), refused (by the database)."},
		[]string{"reason"})
	m.seconds = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sitewatch_sink_loop_seconds_total",
		Help: "Time the sink's loop spent, by part: idle (waiting for a first message), kafka (taking messages at hand, storing offsets), " +
			"decode, database (writing batches, retries included; steps in sitewatch_sink_write_seconds_total), dead_letters. " +
			"The next batch is collected and decoded while one is written, so parts overlap."},
		[]string{"part"})
	for _, part := range LoopParts {
		m.seconds.WithLabelValues(part)
	}
	reg.MustRegister(m.batchSeconds, m.deadLetters, m.seconds)
	return m
}
