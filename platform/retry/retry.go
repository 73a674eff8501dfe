// Package retry is the one way sitewatch retries: exponential backoff with
// jitter, a sleep that ends on cancel, a deadline per attempt and a bounded
// budget once shutdown has begun.
//
// The services retry work that must not be lost (a batch of check results,
// a batch of stats rows) through a database outage. When shutdown starts
// in the middle of such an outage the work gets a grace period, not an
// endless loop and not a tight one: waits keep their backoff, and the last
// wait is cut short at the end of the grace period.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Policy says how an operation is retried.
type Policy struct {
	// Initial is the first wait; each further wait doubles, up to Max.
	Initial time.Duration
	Max     time.Duration
	// Jitter spreads each wait by up to ±Jitter of itself (0..1), so
	// replicas that failed together do not retry together.
	Jitter float64
	// AttemptTimeout is the deadline of each attempt. Attempts run on a
	// context that is not cancelled by shutdown, so the batch in flight
	// can finish; this bounds how long one attempt may take.
	AttemptTimeout time.Duration
	// Grace is how long attempts go on after ctx has ended (0: no attempt
	// starts after that).
	Grace time.Duration
	// MaxAttempts stops after that many attempts (0: no limit but Grace).
	MaxAttempts int
}

// Validate reports a policy that cannot work.
func (p Policy) Validate() error {
	switch {
	case p.Initial <= 0:
		return fmt.Errorf("retry initial wait %s: want more than 0", p.Initial)
	case p.Max < p.Initial:
		return fmt.Errorf("retry max wait %s: want at least the initial wait %s", p.Max, p.Initial)
	case p.Jitter < 0 || p.Jitter > 1:
		return fmt.Errorf("retry jitter %g: want 0..1", p.Jitter)
	case p.AttemptTimeout <= 0:
		return fmt.Errorf("retry attempt timeout %s: want more than 0", p.AttemptTimeout)
	case p.Grace < 0:
		return fmt.Errorf("retry grace %s: want 0 or more", p.Grace)
	case p.MaxAttempts < 0:
		return fmt.Errorf("retry max attempts %d: want 0 (no limit) or more", p.MaxAttempts)
	}
	return nil
}

// ErrBudgetSpent is wrapped by the error Do returns when it gave up: the
// grace period after shutdown or MaxAttempts ran out.
var ErrBudgetSpent = errors.New("retry budget spent")

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: Do returns it (unwrapped) at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Do runs op until it succeeds, returns an error marked Permanent, or the
// budget is spent. Each attempt gets a context that ends after
// AttemptTimeout but not when ctx ends. onRetry, if not nil, is called
// before each wait with the attempt that failed, its error and the wait.
func Do(ctx context.Context, p Policy, op func(ctx context.Context) error, onRetry func(attempt int, err error, wait time.Duration)) error {
	b := NewBackoff(p)
	var graceEnd time.Time // set when ctx ends: no attempt starts after it
	startGrace := func() {
		if graceEnd.IsZero() {
			graceEnd = time.Now().Add(p.Grace)
		}
	}
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.AttemptTimeout)
		err := op(actx)
		cancel()
		if err == nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return perm.err
		}
		if p.MaxAttempts > 0 && attempt >= p.MaxAttempts {
			return fmt.Errorf("%w after %d attempts: %w", ErrBudgetSpent, attempt, err)
		}
		spent := fmt.Errorf("%w: shutting down after %d attempts: %w", ErrBudgetSpent, attempt, err)
		wait := b.Next()
		if ctx.Err() != nil {
			startGrace()
			left := time.Until(graceEnd)
			if left <= 0 {
				return spent
			}
			wait = min(wait, left) // the last attempt comes at the end of the grace period
		}
		if onRetry != nil {
			onRetry(attempt, err, wait)
		}
		waitEnd := time.Now().Add(wait)
		if Sleep(ctx, wait) {
			continue
		}
		// Shutdown began during the wait: the grace period starts now and
		// the wait goes on, cut short at its end.
		startGrace()
		if p.Grace == 0 {
			return spent
		}
		time.Sleep(time.Until(minTime(waitEnd, graceEnd)))
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Backoff hands out the waits of a Policy: Initial, doubling up to Max,
// each with jitter. It is not safe for concurrent use.
type Backoff struct {
	p   Policy
	cur time.Duration
}

// NewBackoff returns a Backoff at its first wait.
func NewBackoff(p Policy) *Backoff { return &Backoff{p: p} }

// Next returns the next wait.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.p.Initial
	} else {
		b.cur = min(2*b.cur, b.p.Max)
	}
	if b.p.Jitter == 0 {
		return b.cur
	}
	spread := b.p.Jitter * float64(b.cur)
	return max(time.Duration(float64(b.cur)+(2*rand.Float64()-1)*spread), time.Millisecond)
}

// Reset makes the next wait the first again, after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits for d or until ctx ends; it reports whether it waited the
// whole time.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
