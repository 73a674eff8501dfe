package store

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// The DEFAULT partition's rows are the ids no range takes: below the
// first range, in a gap outbox_extend left between two, or past the last.
func TestOutsideRangesIsWhatNoRangeTakes(t *testing.T) {
	dflt := Partition{Name: "outbox_default", First: math.MinInt64, End: math.MaxInt64, Default: true}
	for _, tc := range []struct {
		name  string
		parts []Partition
		want  string
	}{
		{"contiguous", []Partition{{First: 1, End: 1001}, {First: 1001, End: 2001}, dflt},
			"id < 1 OR id >= 2001"},
		{"a gap, listed out of order", []Partition{{First: 2051, End: 3051}, {First: 1, End: 1001}, {First: 1001, End: 2001}, dflt, {First: 3051, End: 4051}},
			"id < 1 OR id >= 2001 AND id < 2051 OR id >= 4051"},
		{"converted: the first partition from the lowest id", []Partition{{First: math.MinInt64, End: 2}, {First: 2, End: 1002}, dflt},
			"id >= 1002"},
		{"the DEFAULT partition alone", []Partition{dflt}, "true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, outsideRanges(tc.parts))
		})
	}
}
