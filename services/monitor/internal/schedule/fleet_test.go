package schedule

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

func TestFirstRunIsTheSitesOwnPhase(t *testing.T) {
	t.Parallel()
	const interval = time.Minute
	base := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	phases := map[time.Duration]bool{}
	for id := int64(1); id <= 200; id++ {
		first := FirstRun(id, interval, base)
		require.False(t, first.Before(base), "site %d", id)
		require.True(t, first.Before(base.Add(interval)), "site %d", id)
		// Another replica taking the site over later lands on the same
		// instants: its first run is a whole number of intervals later.
		later := base.Add(17*interval + 23*time.Second)
		other := FirstRun(id, interval, later)
		require.Zero(t, other.Sub(first)%interval, "site %d keeps its phase across a handover", id)
		require.False(t, other.Before(later))
		require.True(t, other.Before(later.Add(interval)))
		phases[first.Sub(base)] = true
	}
	require.Greater(t, len(phases), 150, "sites spread over their interval instead of bunching")
	at := FirstRun(7, interval, base)
	require.Equal(t, at, FirstRun(7, interval, at), "at its instant, a site runs now")
}

// scopedSource serves the sites of the shards in the scope it is asked for.
type scopedSource struct{ sites []site.Site }

func (f *scopedSource) inScope(s site.Site, scope site.Scope) bool {
	return slices.Contains(scope.Shards, int16(s.ID%site.Shards)) && s.CheckedIn(scope.Region)
}

func (f *scopedSource) SiteChanges(_ context.Context, since time.Time, scope site.Scope) (site.Changes, error) {
	ch := site.Changes{AsOf: time.Now()}
	for _, s := range f.sites {
		if f.inScope(s, scope) {
			ch.Enabled = append(ch.Enabled, s.ID)
			if s.Updated.After(since) {
				ch.Changed = append(ch.Changed, s)
			}
		}
	}
	return ch, nil
}

func (f *scopedSource) SitesByID(_ context.Context, ids []int64, scope site.Scope) ([]site.Site, error) {
	var out []site.Site
	for _, s := range f.sites {
		if slices.Contains(ids, s.ID) && f.inScope(s, scope) {
			out = append(out, s)
		}
	}
	return out, nil
}

type fakeOwner struct {
	mu      sync.Mutex
	scope   site.Scope
	changes chan struct{}
}

func (o *fakeOwner) Scope() site.Scope {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.scope
}

func (o *fakeOwner) Changes() <-chan struct{} { return o.changes }

func (o *fakeOwner) set(shards ...int16) {
	o.mu.Lock()
	o.scope.Shards = shards
	o.mu.Unlock()
	o.changes <- struct{}{}
}

func TestAScopeChangeIsPickedUpAtOnce(t *testing.T) {
	t.Parallel()
	now := time.Now()
	src := &scopedSource{sites: []site.Site{mk(1, 50*time.Millisecond, now), mk(2, 50*time.Millisecond, now),
		{ID: 3, URL: "http://x", Interval: 50 * time.Millisecond, Timeout: 50 * time.Millisecond, Updated: now, Regions: []string{"elsewhere"}}}}
	owner := &fakeOwner{scope: site.Scope{Region: "here", Shards: []int16{1, 3}}, changes: make(chan struct{})}
	out := make(chan probe.Result, 100)
	// The reload interval is an hour: only the owner's signal can bring
	// site 2 in, or take site 1 out.
	s, err := New(Config{Concurrency: 2, ReloadInterval: time.Hour}, src, owner, &fakeChecker{}, out, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	waitFor := func(id int64) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case r := <-out:
				require.NotEqual(t, int64(3), r.Site.ID, "site 3 is not checked in this region")
				require.Equal(t, "here", r.Region)
				if r.Site.ID == id {
					return
				}
			case <-timeout:
				t.Fatalf("site %d never checked", id)
			}
		}
	}
	waitFor(1)
	owner.set(1, 2, 3)
	waitFor(2)
	owner.set(2)
	// Drain what was in flight, then only site 2 comes.
	owner.set(2)
	for range 10 {
		waitFor(2)
	}
	seen := map[int64]int{}
	for range 10 {
		seen[(<-out).Site.ID]++
	}
	require.Equal(t, map[int64]int{2: 10}, seen, "a shard given up is no longer checked")
	cancel()
	<-done
}
