package ops

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stopwatch splits a stretch of work into consecutive laps and adds each
// lap's time to the counter of seconds it belongs to (one label of a
// *_seconds_total counter per step), so the steps add up to the whole.
type Stopwatch struct{ last time.Time }

// StartStopwatch starts the first lap now.
func StartStopwatch() Stopwatch { return Stopwatch{last: time.Now()} }

// Lap adds the time since the previous lap to c and starts the next one.
func (s *Stopwatch) Lap(c prometheus.Counter) {
	now := time.Now()
	c.Add(now.Sub(s.last).Seconds())
	s.last = now
}
