package relay

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
)

// The conformance kit other teams run, run here with the real relay and
// the real broker on a table made with outbox.DDL under another team's
// schema-qualified name: the round trip included.
func TestConformanceKitWithTheRealRelay(t *testing.T) {
	url := outboxtest.Schema(t)
	pool := outboxtest.Pool(t, url)
	_, err := pool.Exec(context.Background(), outbox.DDL)
	require.NoError(t, err)
	var schema string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT current_schema()").Scan(&schema))
	topic := kafkatest.NewTopic(t, 2)

	r, err := New(context.Background(), testConfig(), Source{Name: "billing", DatabaseURL: url, Table: schema + ".outbox",
		Topics: []string{topic}, CEType: "com.example.billing", IDHeader: "outbox_id"},
		newProducer(t, 10*time.Second), zaptest.NewLogger(t), NewMetrics(prometheus.NewRegistry()))
	require.NoError(t, err)
	t.Cleanup(r.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	outboxtest.Run(t, outboxtest.Config{DatabaseURL: url, Table: schema + ".outbox", Topic: topic,
		Published: func(ctx context.Context, ids []string) ([]outboxtest.Message, error) {
			var out []outboxtest.Message
			for ctx.Err() == nil && len(out) < len(ids) {
				out = out[:0]
				for _, m := range kafkatest.ConsumeUntilIdle(t, kafkatest.Config(t), topic, time.Second, 10*time.Second) {
					if h := headerMap(m); slices.Contains(ids, h["ce_id"]) {
						out = append(out, outboxtest.Message{EventID: h["ce_id"], Key: m.Key, Payload: m.Value, Headers: h})
					}
				}
			}
			return out, ctx.Err()
		}})
}
