package schedule

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// fakeChecker records how many checks run at once, overall and per site.
// With a gate, the checks of the sites hang selects wait for a token from
// the gate (or for their context to end).
type fakeChecker struct {
	gate    chan struct{}
	hang    func(id int64) bool
	started chan int64 // receives the site of every check that starts, if not nil

	mu          sync.Mutex
	running     int
	peak        int
	perSite     map[int64]int
	peakPerSite int
}

func (f *fakeChecker) Check(ctx context.Context, t *probe.Target) probe.Result {
	f.mu.Lock()
	if f.perSite == nil {
		f.perSite = map[int64]int{}
	}
	f.running++
	f.perSite[t.Site.ID]++
	f.peak = max(f.peak, f.running)
	f.peakPerSite = max(f.peakPerSite, f.perSite[t.Site.ID])
	f.mu.Unlock()
	if f.started != nil {
		f.started <- t.Site.ID
	}
	if f.gate != nil && (f.hang == nil || f.hang(t.Site.ID)) {
		select {
		case <-f.gate:
		case <-ctx.Done():
		}
	}
	f.mu.Lock()
	f.running--
	f.perSite[t.Site.ID]--
	f.mu.Unlock()
	return probe.Result{Site: t.Site, CheckedAt: time.Now()}
}

func mk(id int64, interval time.Duration, updated time.Time) site.Site {
	return site.Site{ID: id, URL: "http://x", Interval: interval, Timeout: interval, Updated: updated}
}

// collect runs the scheduler until done, called after every result with
// the results per site so far, returns true; then stops it.
func collect(t *testing.T, cfg Config, src SiteSource, chk Checker, done func(counts map[int64]int) bool) map[int64]int {
	t.Helper()
	out := make(chan probe.Result, 1000)
	s, err := New(cfg, src, Everything("local"), chk, out, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { s.Run(ctx); close(stopped) }()
	counts := map[int64]int{}
	timeout := time.After(20 * time.Second)
	for !done(counts) {
		select {
		case r := <-out:
			require.Equal(t, "local", r.Region, "results carry the replica's region")
			counts[r.Site.ID]++
		case <-timeout:
			t.Fatalf("condition not reached; results so far %v", counts)
		}
	}
	cancel()
	<-stopped
	return counts
}

func TestEachSiteOnItsOwnInterval(t *testing.T) {
	t.Parallel()
	now := time.Now()
	src := &fakeSource{}
	src.set(mk(1, 50*time.Millisecond, now), mk(2, 200*time.Millisecond, now))
	counts := collect(t, Config{Concurrency: 4, ReloadInterval: time.Hour}, src, &fakeChecker{},
		func(c map[int64]int) bool { return c[1] == 40 })
	// Fixed rate: 40 checks at 50 ms take 2 s, in which the 200 ms site
	// is checked 10 times (give or take its phase).
	require.InDelta(t, 10, counts[2], 2)
}

// runScheduler runs a scheduler until the test ends.
func runScheduler(t *testing.T, cfg Config, src SiteSource, chk Checker, out chan probe.Result) *Scheduler {
	t.Helper()
	s, err := New(cfg, src, Everything("local"), chk, out, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { s.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return s
}

func TestASitesChecksNeverOverlap(t *testing.T) {
	t.Parallel()
	now := time.Now()
	src := &fakeSource{}
	src.set(mk(1, 10*time.Millisecond, now), mk(2, 10*time.Millisecond, now), mk(3, 10*time.Millisecond, now))
	// Site 1's check hangs; the others pass at once, so workers are free
	// while site 1 is due again and again.
	chk := &fakeChecker{gate: make(chan struct{}), hang: func(id int64) bool { return id == 1 }}
	out := make(chan probe.Result, 10000)
	s := runScheduler(t, Config{Concurrency: 4, ReloadInterval: time.Hour}, src, chk, out)
	var once sync.Once
	release := func() { once.Do(func() { close(chk.gate) }) }
	t.Cleanup(release) // runs first: the hanging check ends, then the scheduler stops
	require.Eventually(t, func() bool { return testutil.ToFloat64(s.metrics.skipped) >= 30 }, 10*time.Second, time.Millisecond,
		"site 1 comes due many times while its check hangs")
	chk.mu.Lock()
	require.Equal(t, 1, chk.peakPerSite, "a site's checks never overlap")
	chk.mu.Unlock()
	release()
	seen := map[int64]bool{}
	for len(seen) < 3 {
		seen[(<-out).Site.ID] = true
	}
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	now := time.Now()
	src := &fakeSource{}
	var sites []site.Site
	for i := range 20 {
		sites = append(sites, mk(int64(i+1), time.Second, now))
	}
	src.set(sites...)
	chk := &fakeChecker{gate: make(chan struct{}), started: make(chan int64, 100)}
	out := make(chan probe.Result, 1000)
	runScheduler(t, Config{Concurrency: 5, ReloadInterval: time.Hour}, src, chk, out)
	t.Cleanup(func() { close(chk.gate) }) // runs first: the hanging checks end, then the scheduler stops
	for range 5 {
		<-chk.started
	}
	// Let one check finish at a time: each time exactly one more starts.
	for range 15 {
		chk.gate <- struct{}{}
		<-chk.started
		chk.mu.Lock()
		require.LessOrEqual(t, chk.running, 5)
		chk.mu.Unlock()
	}
	chk.mu.Lock()
	defer chk.mu.Unlock()
	require.Equal(t, 5, chk.peak, "the workers stay busy, never more than Concurrency at once")
}

func TestPicksUpChangesWithoutRestart(t *testing.T) {
	t.Parallel()
	now := time.Now()
	src := &fakeSource{}
	src.set(mk(1, 20*time.Millisecond, now))
	var atChange int
	counts := collect(t, Config{Concurrency: 4, ReloadInterval: 10 * time.Millisecond}, src, &fakeChecker{}, func(c map[int64]int) bool {
		if c[1] == 5 && atChange == 0 {
			atChange = c[1]
			src.set(mk(2, 20*time.Millisecond, now)) // site 1 removed or disabled, site 2 added
		}
		return c[2] == 10
	})
	require.Equal(t, 10, counts[2], "site 2 started without a restart")
	require.LessOrEqual(t, counts[1], atChange+2, "site 1 stopped at the next reload")
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
	s, err := New(Config{Concurrency: 1, ReloadInterval: time.Hour}, src, Everything("local"), chk, out, zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
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
	s, err := New(Config{Concurrency: 1, ReloadInterval: time.Hour}, src, Everything("local"), &fakeChecker{}, make(chan probe.Result, 1),
		zaptest.NewLogger(t), prometheus.NewRegistry())
	require.NoError(t, err)
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

func TestNewRefusesABadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"concurrency":     {Concurrency: 0, ReloadInterval: time.Second},
		"reload interval": {Concurrency: 1, ReloadInterval: 0},
	} {
		_, err := New(cfg, &fakeSource{}, Everything("local"), &fakeChecker{}, make(chan probe.Result), zaptest.NewLogger(t), prometheus.NewRegistry())
		require.ErrorContains(t, err, name)
	}
}
