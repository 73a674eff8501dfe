package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/platform/kafkatest"
	"github.com/sitewatch/sitewatch/services/sink/internal/sink"
)

func TestDLQListAndReplay(t *testing.T) {
	ctx := context.Background()
	cfg := kafkatest.Config(t)
	topic := kafkatest.NewTopic(t, 1)
	require.NoError(t, kafkaclient.EnsureTopic(ctx, cfg, topic+sink.DLQSuffix, 1))
	p, err := kafka.NewProducer(cfg.ConfigMap(kafka.ConfigMap{"acks": "all"}))
	require.NoError(t, err)
	defer p.Close()
	letter := func(offset int64, value, reason string) sink.DeadLetter {
		return sink.DeadLetter{Class: "malformed", Reason: reason, Msg: &kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: 0, Offset: kafka.Offset(offset)},
			Key:            []byte("7"), Value: []byte(value), Headers: []kafka.Header{{Key: "ce_type", Value: []byte("io.sitewatch.check")}}}}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, sink.Producer{P: p}.Send(sctx, []sink.DeadLetter{
		letter(41, "not json", "decoding: invalid character 'o' in literal null\x1b[2J"),
		letter(42, `{"schema_version":1}`, "event_id: missing"),
	}))
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := dlqCommand(ctx, append([]string{args[0], "-kafka-brokers", cfg.Brokers, "-topic", topic}, args[1:]...), &out, &errOut)
		return code, out.String(), errOut.String()
	}

	code, out, stderr := run("list")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "0@0")
	require.Contains(t, out, "malformed  "+topic+"/0@41")
	require.Contains(t, out, "literal null?[2J", "reasons are escaped")
	require.Contains(t, out, `{"schema_version":1}`)

	for _, bad := range [][]string{{"replay"}, {"replay", "x"}, {"replay", "-all", "1"}, {"replay", "7"}, {"list", "-limit", "0"}} {
		code, _, _ = run(bad...)
		require.Equal(t, 2, code, bad)
	}

	code, out, stderr = run("replay", "1")
	require.Equal(t, 0, code, stderr)
	require.Contains(t, out, "replayed 1 dead letters")
	back := kafkatest.Consume(t, topic, 1, 30*time.Second)
	require.Equal(t, `{"schema_version":1}`, string(back[0].Value))
	require.Equal(t, "7", string(back[0].Key))
	require.Equal(t, []kafka.Header{{Key: "ce_type", Value: []byte("io.sitewatch.check")}}, back[0].Headers, "the original headers, without dlq_ ones")
}
