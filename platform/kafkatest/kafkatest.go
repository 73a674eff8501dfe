// Package kafkatest gives integration tests a real broker: the one named by
// KAFKA_BROKERS, which `make test` starts. Each test gets its own topic.
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sitewatch/sitewatch/platform/kafkaclient"
)

// Config returns connection settings for the test broker. Integration tests
// are skipped under -short; otherwise a missing KAFKA_BROKERS fails the test.
func Config(t testing.TB) kafkaclient.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	b := os.Getenv("KAFKA_BROKERS")
	if b == "" {
		t.Fatal("KAFKA_BROKERS is not set: run `make test`, which starts PostgreSQL and Kafka, or set it yourself")
	}
	return kafkaclient.Config{Brokers: b, SecurityProtocol: "plaintext"}
}

// NewTopic creates a uniquely named topic, deleted when the test ends.
func NewTopic(t testing.TB, partitions int) string {
	t.Helper()
	cfg := Config(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	topic := "test." + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafkaclient.EnsureTopic(ctx, cfg, topic, partitions); err != nil {
		t.Fatalf("creating test topic: %v", err)
	}
	t.Cleanup(func() {
		admin, err := kafka.NewAdminClient(cfg.ConfigMap(nil))
		if err != nil {
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = admin.DeleteTopics(ctx, []string{topic})
	})
	return topic
}

// Consume reads topic from the beginning until it has want messages or
// timeout passes, and returns what it read.
func Consume(t testing.TB, topic string, want int, timeout time.Duration) []*kafka.Message {
	t.Helper()
	return consume(t, Config(t), topic, func(got []*kafka.Message, _ time.Time) bool {
		return len(got) >= want
	}, timeout)
}

// ConsumeUntilIdle reads topic from the beginning, from the broker cfg
// names, until no message arrived for idle (or timeout passes).
func ConsumeUntilIdle(t testing.TB, cfg kafkaclient.Config, topic string, idle, timeout time.Duration) []*kafka.Message {
	t.Helper()
	return consume(t, cfg, topic, func(got []*kafka.Message, last time.Time) bool {
		return len(got) > 0 && time.Since(last) > idle
	}, timeout)
}

func consume(t testing.TB, cfg kafkaclient.Config, topic string, done func([]*kafka.Message, time.Time) bool, timeout time.Duration) []*kafka.Message {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	c, err := kafka.NewConsumer(cfg.ConfigMap(kafka.ConfigMap{
		"group.id":           "kafkatest-" + hex.EncodeToString(b),
		"auto.offset.reset":  "earliest",
		"enable.auto.commit": false,
	}))
	if err != nil {
		t.Fatalf("creating test consumer: %v", err)
	}
	defer func() { _ = c.Close() }()
	// Assigned partitions, not a group subscription: no group join to wait
	// for, which on a loaded broker can take longer than the test's timeout.
	md, err := c.GetMetadata(&topic, false, int(timeout.Milliseconds()))
	if err != nil {
		t.Fatalf("reading metadata of %s: %v", topic, err)
	}
	var parts []kafka.TopicPartition
	for _, p := range md.Topics[topic].Partitions {
		parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: kafka.OffsetBeginning})
	}
	if len(parts) == 0 {
		t.Fatalf("topic %s has no partitions", topic)
	}
	if err := c.Assign(parts); err != nil {
		t.Fatalf("assigning the partitions of %s: %v", topic, err)
	}
	var got []*kafka.Message
	last := time.Now()
	deadline := last.Add(timeout)
	for !done(got, last) && time.Now().Before(deadline) {
		m, err := c.ReadMessage(200 * time.Millisecond)
		if err != nil {
			continue // timeouts while waiting, and transient broker errors
		}
		got = append(got, m)
		last = time.Now()
	}
	return got
}
