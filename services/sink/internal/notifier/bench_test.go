package notifier

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/notify"
)

// BenchmarkNotifier: b.N incident events of 100 sites, each recorded as a
// delivery to one webhook (a real HTTP receiver on loopback) and
// delivered, by one notifier against the real database. Reports the
// notifications/s it sustains: recording and delivering at once, and
// delivering alone (a backlog recorded while the receiver was down).
func BenchmarkNotifier(b *testing.B) {
	b.Run("record+deliver", func(b *testing.B) { benchNotifier(b, false) })
	b.Run("deliver-backlog", func(b *testing.B) { benchNotifier(b, true) })
}

func benchNotifier(b *testing.B, backlog bool) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pool := dbtest.Pool(b, dbtest.New(b))
	var got atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { got.Add(1) }))
	b.Cleanup(hook.Close)
	if _, err := pool.Exec(ctx, `INSERT INTO sites (url) SELECT 'https://site' || i || '.example/' FROM generate_series(1, 100) i`); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO channels (name, kind, url, is_default) VALUES ('ops', 'webhook', $1, true)`, hook.URL); err != nil {
		b.Fatal(err)
	}
	n, err := New(Config{MaxAttempts: 3, RetryBackoff: time.Second, MaxBackoff: time.Minute, PollInterval: time.Second, Batch: 50},
		pool, notify.Client(), zap.NewNop(), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]*kafka.Message, b.N)
	for i := range msgs {
		msgs[i] = message(b, int64(i%100+1), checkevent.IncidentOpenedType)
	}
	record := func() {
		for _, m := range msgs {
			if err := n.record(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	}
	if backlog {
		record()
	}
	done := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	go func() { n.Deliver(ctx); close(done) }()
	if !backlog {
		record()
	}
	for got.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "notifications/s")
	cancel()
	<-done
}
