package ops

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// Laps go to their own counters, and together they are the whole stretch.
func TestStopwatchLapsAddUpToTheWhole(t *testing.T) {
	steps := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "test_seconds_total"}, []string{"step"})
	start := time.Now()
	sw := StartStopwatch()
	time.Sleep(5 * time.Millisecond) // the work being timed
	sw.Lap(steps.WithLabelValues("a"))
	time.Sleep(5 * time.Millisecond)
	sw.Lap(steps.WithLabelValues("b"))
	whole := time.Since(start).Seconds()

	a, b := testutil.ToFloat64(steps.WithLabelValues("a")), testutil.ToFloat64(steps.WithLabelValues("b"))
	require.GreaterOrEqual(t, a, 0.005)
	require.GreaterOrEqual(t, b, 0.005)
	require.LessOrEqual(t, a+b, whole)
}
