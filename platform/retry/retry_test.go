package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errDown = errors.New("database down")

func policy() Policy {
	return Policy{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, AttemptTimeout: time.Second, Grace: 200 * time.Millisecond}
}

func TestDoSucceedsAfterFailures(t *testing.T) {
	var attempts, retries int
	err := Do(context.Background(), policy(), func(context.Context) error {
		attempts++
		if attempts < 3 {
			return errDown
		}
		return nil
	}, func(attempt int, err error, wait time.Duration) {
		retries++
		assert.Equal(t, attempts, attempt)
		assert.ErrorIs(t, err, errDown)
		assert.Positive(t, wait)
	})
	require.NoError(t, err)
	assert.Equal(t, 3, attempts)
	assert.Equal(t, 2, retries)
}

// The bug this package was written for: once shutdown has begun during an
// outage, retries must keep their backoff and stop at the end of the grace
// period, not spin.
func TestDoDuringShutdownInAnOutageKeepsBackoffAndStopsAfterGrace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	attempts := 0
	start := time.Now()
	err := Do(ctx, policy(), func(actx context.Context) error {
		attempts++
		require.NoError(t, actx.Err(), "an attempt must not start on a cancelled context")
		return errDown
	}, nil)
	took := time.Since(start)
	require.ErrorIs(t, err, ErrBudgetSpent)
	require.ErrorIs(t, err, errDown)
	// Waits 10, 20, 40, 40, 40, 40... ms within 200 ms of grace: about 7
	// attempts. A loop that treats the closed ctx.Done() as "wake now"
	// makes thousands.
	assert.GreaterOrEqual(t, attempts, 2)
	assert.LessOrEqual(t, attempts, 10)
	assert.GreaterOrEqual(t, took, 200*time.Millisecond)
}

func TestDoShutdownDuringAWaitStartsTheGrace(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := policy()
	p.Initial, p.Max, p.Grace = time.Hour, time.Hour, 0
	attempts := 0
	err := Do(ctx, p, func(context.Context) error {
		attempts++
		return errDown
	}, func(int, error, time.Duration) { cancel() })
	require.ErrorIs(t, err, ErrBudgetSpent)
	assert.Equal(t, 1, attempts, "no grace: no attempt after shutdown, and the hour-long wait is cut short")
}

func TestDoPermanentErrorStopsAtOnce(t *testing.T) {
	bad := errors.New("constraint violated")
	attempts := 0
	err := Do(context.Background(), policy(), func(context.Context) error {
		attempts++
		return Permanent(bad)
	}, nil)
	assert.Equal(t, bad, err)
	assert.Equal(t, 1, attempts)
	assert.NoError(t, Permanent(nil))
}

func TestDoMaxAttempts(t *testing.T) {
	p := policy()
	p.MaxAttempts = 3
	attempts := 0
	err := Do(context.Background(), p, func(context.Context) error { attempts++; return errDown }, nil)
	require.ErrorIs(t, err, ErrBudgetSpent)
	assert.Equal(t, 3, attempts)
}

func TestDoAttemptHasItsOwnDeadline(t *testing.T) {
	p := policy()
	p.AttemptTimeout = 20 * time.Millisecond
	p.MaxAttempts = 1
	err := Do(context.Background(), p, func(actx context.Context) error {
		_, ok := actx.Deadline()
		assert.True(t, ok)
		<-actx.Done()
		return actx.Err()
	}, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestBackoffDoublesToMaxWithJitterAndResets(t *testing.T) {
	b := NewBackoff(Policy{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond})
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	ms := time.Millisecond
	assert.Equal(t, []time.Duration{100 * ms, 200 * ms, 400 * ms, 400 * ms, 400 * ms}, got)
	b.Reset()
	assert.Equal(t, 100*ms, b.Next())

	j := NewBackoff(Policy{Initial: 100 * ms, Max: 100 * ms, Jitter: 0.5})
	seen := map[time.Duration]bool{}
	for range 50 {
		d := j.Next()
		assert.GreaterOrEqual(t, d, 50*ms)
		assert.LessOrEqual(t, d, 150*ms)
		seen[d] = true
	}
	assert.Greater(t, len(seen), 1, "jitter spreads the waits")
}

func TestSleepStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.False(t, Sleep(ctx, time.Hour))
	assert.True(t, Sleep(context.Background(), time.Millisecond))
}

func TestPolicyValidate(t *testing.T) {
	require.NoError(t, policy().Validate())
	for name, mut := range map[string]func(*Policy){
		"initial":  func(p *Policy) { p.Initial = 0 },
		"max":      func(p *Policy) { p.Max = time.Millisecond },
		"jitter":   func(p *Policy) { p.Jitter = 2 },
		"timeout":  func(p *Policy) { p.AttemptTimeout = 0 },
		"grace":    func(p *Policy) { p.Grace = -1 },
		"attempts": func(p *Policy) { p.MaxAttempts = -1 },
	} {
		p := policy()
		mut(&p)
		assert.Error(t, p.Validate(), name)
	}
}
