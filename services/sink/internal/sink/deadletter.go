package sink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// DLQSuffix makes a topic's dead-letter topic: sitewatch.checks.dlq.
const DLQSuffix = ".dlq"

// Headers a dead letter carries besides the original message's.
const (
	HeaderReason          = "dlq_reason"           // why it can never be stored
	HeaderReasonClass     = "dlq_reason_class"     // malformed or refused
	HeaderSourceTopic     = "dlq_source_topic"     // where it was read
	HeaderSourcePartition = "dlq_source_partition" //
	HeaderSourceOffset    = "dlq_source_offset"    //
	HeaderDeadAt          = "dlq_at"               // when it was sent here, RFC 3339
)

// DeadLetter is a message that can never be stored, and why.
type DeadLetter struct {
	Msg    *kafka.Message
	Class  string // malformed (not a check event) or refused (by the database)
	Reason string
}

// DeadLetters sends dead letters to their topics' dead-letter topics and
// returns once Kafka acknowledged every one.
type DeadLetters interface {
	Send(ctx context.Context, letters []DeadLetter) error
}

// Producer sends dead letters with a Kafka producer.
type Producer struct{ P *kafka.Producer }

// Letter is the Kafka message a dead letter becomes: the original key,
// value and headers, and headers saying why and where from.
func Letter(d DeadLetter, at time.Time) *kafka.Message {
	src := d.Msg.TopicPartition
	topic := *src.Topic + DLQSuffix
	headers := append([]kafka.Header(nil), d.Msg.Headers...)
	headers = append(headers,
		kafka.Header{Key: HeaderReason, Value: []byte(d.Reason)},
		kafka.Header{Key: HeaderReasonClass, Value: []byte(d.Class)},
		kafka.Header{Key: HeaderSourceTopic, Value: []byte(*src.Topic)},
		kafka.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(src.Partition)))},
		kafka.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(int64(src.Offset), 10))},
		kafka.Header{Key: HeaderDeadAt, Value: []byte(at.UTC().Format(time.RFC3339Nano))})
	return &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
		Key: d.Msg.Key, Value: d.Msg.Value, Headers: headers}
}

// Send produces every letter and waits for Kafka's acknowledgements, or
// ctx's end.
func (p Producer) Send(ctx context.Context, letters []DeadLetter) error {
	done := make(chan kafka.Event, len(letters))
	now := time.Now()
	for _, d := range letters {
		if err := p.P.Produce(Letter(d, now), done); err != nil {
			return fmt.Errorf("producing a dead letter: %w", err)
		}
	}
	var errs []error
	for range letters {
		select {
		case ev := <-done:
			if m, ok := ev.(*kafka.Message); ok && m.TopicPartition.Error != nil {
				errs = append(errs, m.TopicPartition.Error)
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for Kafka to acknowledge dead letters: %w", ctx.Err())
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("producing dead letters: %w", err)
	}
	return nil
}
