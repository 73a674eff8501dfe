package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// readUpTo tells whether a consumer has read, on every partition it is
// assigned, everything that was on the partition when it was last asked:
// a sink that has is not behind its topic by more than the time between
// two questions, so it may judge a site without checks stale. A sink
// catching up after a restart, or with no partitions, may not.
type readUpTo struct {
	ends map[partition]kafka.Offset // the partitions' ends at the last question
}

// partition names a partition by value (a kafka.TopicPartition holds its
// topic by pointer, which differs between two calls).
type partition struct {
	topic string
	id    int32
}

// check answers for c and remembers the partitions' ends for next time;
// behind is how many messages c has yet to read now.
func (r *readUpTo) check(ctx context.Context, c *kafka.Consumer) (ok bool, behind int64, err error) {
	prev := r.ends
	r.ends = nil
	assigned, err := c.Assignment()
	if err != nil {
		return false, 0, fmt.Errorf("reading the assignment: %w", err)
	}
	if len(assigned) == 0 {
		return false, 0, errors.New("no partitions assigned")
	}
	positions, err := c.Position(assigned)
	if err != nil {
		return false, 0, fmt.Errorf("reading positions: %w", err)
	}
	var unread []kafka.TopicPartition // nothing read since start: reading starts at the committed offset
	for _, p := range positions {
		if p.Offset < 0 {
			unread = append(unread, kafka.TopicPartition{Topic: p.Topic, Partition: p.Partition})
		}
	}
	committed := map[int32]kafka.Offset{}
	if len(unread) > 0 {
		timeout := 5 * time.Second
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		got, err := c.Committed(unread, int(timeout.Milliseconds()))
		if err != nil {
			return false, 0, fmt.Errorf("reading committed offsets: %w", err)
		}
		for _, p := range got {
			committed[p.Partition] = p.Offset
		}
	}
	ends := map[partition]kafka.Offset{}
	ok = prev != nil
	for _, p := range positions {
		low, high, err := c.GetWatermarkOffsets(*p.Topic, p.Partition)
		if err != nil || high < 0 {
			return false, 0, fmt.Errorf("partition %d: its end is not known yet", p.Partition)
		}
		at := p.Offset
		if at < 0 {
			at = committed[p.Partition]
		}
		if at < 0 { // no committed offset either: from the start (auto.offset.reset=earliest)
			at = kafka.Offset(low)
		}
		key := partition{*p.Topic, p.Partition}
		end, seen := prev[key]
		ok = ok && seen && at >= end
		ends[key] = kafka.Offset(high)
		behind += max(high-int64(at), 0)
	}
	r.ends = ends
	return ok, behind, nil
}
