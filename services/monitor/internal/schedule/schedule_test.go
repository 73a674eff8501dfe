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

// fakeSource serves sites as the store does: changed means Updated after
// since; it counts the sites it hands out.
type fakeSource struct {
	mu     sync.Mutex
	sites  []site.Site
	served int
	byID   int
}

func (f *fakeSource) SiteChanges(_ context.Context, since time.Time, _ site.Scope) (site.Changes, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := site.Changes{AsOf: time.Now()}
	for _, s := range f.sites {
		ch.Enabled = append(ch.Enabled, s.ID)
		if s.Updated.After(since) {
			ch.Changed = append(ch.Changed, s)
		}
	}
	f.served += len(ch.Changed)
	return ch, nil
}

func (f *fakeSource) SitesByID(_ context.Context, ids []int64, _ site.Scope) ([]site.Site, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []site.Site
	for _, s := range f.sites {
		if slices.Contains(ids, s.ID) {
			out = append(out, s)
		}
	}
	f.byID += len(out)
	return out, nil
}

func (f *fakeSource) set(sites ...site.Site) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sites = sites
}

type fakeChecker struct {
	delay   time.Duration
	mu      sync.Mutex
	running int
	peak    int
}

func (f *fakeChecker) Check(_ context.Context, t *probe.Target) probe.Result {
	f.mu.Lock()
	f.running++
	f.peak = max(f.peak, f.running)
	f.mu.Unlock()
	time.Sleep(f.delay)
	f.mu.Lock()
	f.running--
	f.mu.Unlock()
	return probe.Result{Site: t.Site, CheckedAt: time.Now()}
}

func mk(id int64, interval time.Duration, updated time.Time) site.Site {
	return site.Site{ID: id, URL: "http://x", Interval: interval, Timeout: interval, Updated: updated}
}

// collect runs the scheduler for d and counts results per site.
func collect(t *testing.T, cfg Config, src SiteSource, chk Checker, d time.Duration, during func()) map[int64]int {
	t.Helper()
	out := make(chan probe.Result, 1000)
	s := New(cfg, src, Everything("local"), chk, out, zaptest.NewLogger(t), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	if during != nil {
		during()
	}
	time.Sleep(d)
	cancel()
	require.NoError(t, <-done)
	counts := map[int64]int{}
	for r := range out { // Run closed it
		counts[r.Site.ID]++
	}
	return counts
}

func TestEachSiteOnItsOwnInterval(t *testing.T) {
	t.Parallel()
	now := time.Now()
	src := &fakeSource{}
	src.set(mk(1, 100*time.Millisecond, now), mk(2, 400*time.Millisecond, now))
	counts := collect(t, Config{Concurrency: 4, ReloadInterval: time.Hour}, src, &fakeChecker{}, 2*time.Second, nil)
	// Random first delay within one interval, then fixed rate.
	require.InDelta(t, 20, counts[1], 3)
	require.InDelta(t, 5, counts[2], 1)
}

func TestConcurrencyLimitAndNoOverlap(t *testing.T) {
	t.Parallel()
	now := time.Now()
	src := &fakeSource{}
	var sites []site.Site
	for i := range 20 {
		sites = append(sites, mk(int64(i+1), 100*time.Millisecond, now))
	}
	src.set(sites...)
	chk := &fakeChecker{delay: 250 * time.Millisecond} // slower than the interval
	counts := collect(t, Config{Concurrency: 5, ReloadInterval: time.Hour}, src, chk, time.Second, nil)
	require.LessOrEqual(t, chk.peak, 5)
	total := 0
	for id, n := range counts {
		require.LessOrEqual(t, n, 5, "site %d: a site's checks never overlap", id)
		total += n
	}
	require.GreaterOrEqual(t, total, 15, "the workers stay busy")
}

func TestPicksUpChangesWithoutRestart(t *testing.T) {
	t.Parallel()
	now := time.Now()
	src := &fakeSource{}
	src.set(mk(1, 100*time.Millisecond, now))
	counts := collect(t, Config{Concurrency: 4, ReloadInterval: 50 * time.Millisecond}, src, &fakeChecker{}, time.Second, func() {
		time.Sleep(500 * time.Millisecond)
		src.set(mk(2, 100*time.Millisecond, now)) // site 1 removed or disabled, site 2 added
	})
	require.InDelta(t, 5, counts[1], 2, "site 1 ran until it was removed")
	require.InDelta(t, 9, counts[2], 3, "site 2 started without a restart and ran for the last second")
}

func TestReloadReadsOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	old := time.Now().Add(-time.Hour)
	src := &fakeSource{}
	var sites []site.Site
	for i := range 100 {
		sites = append(sites, mk(int64(i+1), time.Hour, old))
	}
	src.set(sites...)
	chk := &fakeChecker{}
	out := make(chan probe.Result, 100)
	s := New(Config{Concurrency: 1, ReloadInterval: time.Hour}, src, Everything("local"), chk, out, zaptest.NewLogger(t), prometheus.NewRegistry())
	ctx := context.Background()

	s.reload(ctx)
	require.Len(t, s.entries, 100)
	require.Equal(t, 100, src.served, "the first load reads every site")

	s.reload(ctx)
	require.Equal(t, 100, src.served, "nothing changed: no site rows read")

	// Site 1 changed (new URL, same interval), site 2 was disabled, site 3
	// removed, site 101 added, and site 102 added by a transaction that
	// committed after the snapshot its updated_at predates.
	changed := mk(1, time.Hour, time.Now())
	changed.URL = "http://changed"
	sites = append([]site.Site{changed}, sites[3:]...)
	sites = append(sites, mk(101, time.Hour, time.Now()), mk(102, time.Hour, old))
	src.set(sites...)
	s.reload(ctx)
	require.Equal(t, 102, src.served, "only the two changed rows were read")
	require.Equal(t, 1, src.byID, "the late one was fetched by id")
	require.Len(t, s.entries, 100, "100 - 2 gone + 2 new")
	require.Equal(t, "http://changed", s.entries[1].target.Site.URL)
	require.NotContains(t, s.entries, int64(2))
	require.NotContains(t, s.entries, int64(3))
	require.Contains(t, s.entries, int64(101))
	require.Contains(t, s.entries, int64(102))
}

func TestFullReloadCatchesAChangeTheIncrementalOnesMissed(t *testing.T) {
	t.Parallel()
	old := time.Now().Add(-time.Hour)
	src := &fakeSource{}
	src.set(mk(1, time.Minute, old))
	s := New(Config{Concurrency: 1, ReloadInterval: time.Hour}, src, Everything("local"), &fakeChecker{}, make(chan probe.Result, 1),
		zaptest.NewLogger(t), prometheus.NewRegistry())
	ctx := context.Background()
	s.reload(ctx)
	require.Equal(t, time.Minute, s.entries[1].target.Site.Interval)

	// Committed late with an updated_at older than the last snapshot, as a
	// long transaction would: incremental reloads cannot see it...
	src.set(mk(1, 2*time.Minute, old.Add(time.Second)))
	for range fullReloadEvery - 2 {
		s.reload(ctx)
	}
	require.Equal(t, time.Minute, s.entries[1].target.Site.Interval)
	// ...the next full reload does.
	s.reload(ctx)
	require.Equal(t, 2*time.Minute, s.entries[1].target.Site.Interval)
}
