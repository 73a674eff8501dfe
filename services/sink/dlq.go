package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/config"
	"github.com/sitewatch/sitewatch/platform/kafkaclient"
	"github.com/sitewatch/sitewatch/services/sink/internal/sink"
)

const dlqUsage = `usage:
  sink dlq list [-topic T] [-limit N]         the dead letters of topic T (T.dlq), oldest first
  sink dlq replay [-topic T] OFFSET...|-all   send dead letters back to where they were read

A message the sink can never store (not a check event, or refused by the database) goes to
<topic>.dlq with its key, value and headers as they came, and headers dlq_reason,
dlq_reason_class (malformed or refused), dlq_source_topic, dlq_source_partition,
dlq_source_offset and dlq_at. Fix the cause (a sink upgrade, the database), then replay: the
messages go back to their source topic (without the dlq_ headers) and are read again; the sink
stores each event once however often it comes. The dead-letter topic itself is kept as it is
(Kafka's retention applies). Kafka settings as for sink run (-kafka-brokers, KAFKA_*).
`

// dlqTimeout bounds a dlq command.
const dlqTimeout = 2 * time.Minute

var dlqCommand = command.Group("sink dlq", dlqUsage, []string{"list", "replay"}, dlqSubcommand)

func dlqSubcommand(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "sink dlq %s: %v\n", sub, err)
		return code
	}
	var kcfg kafkaclient.Config
	fs := flag.NewFlagSet("sink dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	kcfg.RegisterFlags(fs)
	topic := fs.String("topic", "sitewatch.checks", "the topic whose dead letters these are")
	limit := fs.Int("limit", 100, "dead letters to list")
	all := fs.Bool("all", false, "replay every dead letter")
	if err := config.Parse(fs, "SINK", args); err != nil {
		return command.ExitUsage
	}
	var offsets []int64
	var err error
	switch {
	case sub == "list" && fs.NArg() > 0:
		err = command.NoArgs(fs.Args())
	case sub == "list" && *limit < 1:
		err = fmt.Errorf("limit: %d: want at least 1", *limit)
	case sub == "replay":
		offsets, err = offsetsOf(fs.Args())
		if err == nil && len(offsets) == 0 && !*all {
			err = errors.New("give the OFFSETs of the dead letters to replay (see sink dlq list), or -all")
		}
		if err == nil && len(offsets) > 0 && *all {
			err = errors.New("give OFFSETs or -all, not both")
		}
	}
	if err == nil {
		err = kcfg.Validate()
	}
	if err != nil {
		return fail(command.ExitUsage, err)
	}
	ctx, cancel := context.WithTimeout(ctx, dlqTimeout)
	defer cancel()
	letters, err := readDeadLetters(ctx, kcfg, *topic+sink.DLQSuffix)
	if err != nil {
		return fail(command.ExitError, err)
	}
	if sub == "list" {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "OFFSET\tAT\tCLASS\tFROM\tREASON\tVALUE")
		for _, m := range letters[max(0, len(letters)-*limit):] {
			h := headerMap(m.Headers)
			value := string(m.Value)
			if len(value) > 60 {
				value = value[:60] + "…"
			}
			fmt.Fprintf(tw, "%d@%d\t%s\t%s\t%s/%s@%s\t%s\t%s\n", m.TopicPartition.Offset, m.TopicPartition.Partition, h[sink.HeaderDeadAt],
				h[sink.HeaderReasonClass], command.Escape(h[sink.HeaderSourceTopic]), h[sink.HeaderSourcePartition], h[sink.HeaderSourceOffset],
				command.Escape(h[sink.HeaderReason]), command.Escape(value))
		}
		if err := tw.Flush(); err != nil {
			return fail(command.ExitError, err)
		}
		return command.ExitOK
	}
	var chosen []*kafka.Message
	for _, m := range letters {
		if *all || slices.Contains(offsets, int64(m.TopicPartition.Offset)) {
			chosen = append(chosen, m)
		}
	}
	if missing := len(offsets) - len(chosen); missing > 0 && !*all {
		return fail(command.ExitUsage, fmt.Errorf("%d of the offsets given are no dead letters of %s%s", missing, *topic, sink.DLQSuffix))
	}
	if err := replay(ctx, kcfg, chosen); err != nil {
		return fail(command.ExitError, err)
	}
	fmt.Fprintf(stdout, "replayed %d dead letters\n", len(chosen))
	return command.ExitOK
}

// offsetsOf parses OFFSET arguments: offsets in the dead-letter topic.
func offsetsOf(args []string) ([]int64, error) {
	out := make([]int64, 0, len(args))
	for _, a := range args {
		o, err := strconv.ParseInt(strings.SplitN(a, "@", 2)[0], 10, 64)
		if err != nil || o < 0 {
			return nil, fmt.Errorf("OFFSET %q: want a number from sink dlq list", a)
		}
		out = append(out, o)
	}
	return out, nil
}

func headerMap(hs []kafka.Header) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		out[h.Key] = string(h.Value)
	}
	return out
}

// readDeadLetters reads the dead-letter topic from its start to its end
// as it is now, without joining a group or committing anything.
func readDeadLetters(ctx context.Context, kcfg kafkaclient.Config, topic string) ([]*kafka.Message, error) {
	c, err := kafka.NewConsumer(kcfg.ConfigMap(kafka.ConfigMap{"group.id": "sitewatch-dlq-reader", "enable.auto.commit": false}))
	if err != nil {
		return nil, fmt.Errorf("creating Kafka consumer: %w", err)
	}
	defer func() { _ = c.Close() }()
	timeoutMs := func() int { d, _ := ctx.Deadline(); return int(max(time.Until(d), time.Millisecond).Milliseconds()) }
	md, err := c.GetMetadata(&topic, false, timeoutMs())
	if err != nil {
		return nil, fmt.Errorf("reading the metadata of %s: %w", topic, err)
	}
	t, ok := md.Topics[topic]
	if !ok || t.Error.Code() != kafka.ErrNoError {
		return nil, fmt.Errorf("topic %s: %v (the sink creates it at start-up)", topic, t.Error)
	}
	var parts []kafka.TopicPartition
	end := map[int32]int64{}
	for _, p := range t.Partitions {
		low, high, err := c.QueryWatermarkOffsets(topic, p.ID, timeoutMs())
		if err != nil {
			return nil, fmt.Errorf("reading the offsets of %s/%d: %w", topic, p.ID, err)
		}
		if high > low {
			parts = append(parts, kafka.TopicPartition{Topic: &topic, Partition: p.ID, Offset: kafka.Offset(low)})
			end[p.ID] = high
		}
	}
	if len(parts) == 0 {
		return nil, nil
	}
	if err := c.Assign(parts); err != nil {
		return nil, fmt.Errorf("assigning %s: %w", topic, err)
	}
	var out []*kafka.Message
	for len(end) > 0 {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("reading %s: %w", topic, ctx.Err())
		}
		switch ev := c.Poll(200).(type) {
		case *kafka.Message:
			out = append(out, ev)
			if int64(ev.TopicPartition.Offset)+1 >= end[ev.TopicPartition.Partition] {
				delete(end, ev.TopicPartition.Partition)
			}
		case kafka.Error:
			if ev.IsFatal() {
				return nil, fmt.Errorf("reading %s: %w", topic, ev)
			}
		}
	}
	slices.SortFunc(out, func(a, b *kafka.Message) int {
		return a.Timestamp.Compare(b.Timestamp)
	})
	return out, nil
}

// replay produces dead letters back to their source topics, as they came.
func replay(ctx context.Context, kcfg kafkaclient.Config, letters []*kafka.Message) error {
	if len(letters) == 0 {
		return nil
	}
	p, err := kafka.NewProducer(kcfg.ConfigMap(kafka.ConfigMap{"enable.idempotence": true, "acks": "all"}))
	if err != nil {
		return fmt.Errorf("creating Kafka producer: %w", err)
	}
	defer p.Close()
	done := make(chan kafka.Event, len(letters))
	for _, m := range letters {
		h := headerMap(m.Headers)
		src := h[sink.HeaderSourceTopic]
		if src == "" {
			return fmt.Errorf("dead letter %d has no %s header", m.TopicPartition.Offset, sink.HeaderSourceTopic)
		}
		var headers []kafka.Header
		for _, hd := range m.Headers {
			if !strings.HasPrefix(hd.Key, "dlq_") {
				headers = append(headers, hd)
			}
		}
		if err := p.Produce(&kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &src, Partition: kafka.PartitionAny},
			Key: m.Key, Value: m.Value, Headers: headers}, done); err != nil {
			return fmt.Errorf("producing to %s: %w", src, err)
		}
	}
	for range letters {
		select {
		case ev := <-done:
			if m, ok := ev.(*kafka.Message); ok && m.TopicPartition.Error != nil {
				return fmt.Errorf("producing to %s: %w", *m.TopicPartition.Topic, m.TopicPartition.Error)
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for Kafka to acknowledge the replay: %w", ctx.Err())
		}
	}
	return nil
}
