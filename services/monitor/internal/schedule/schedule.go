// Package schedule runs every enabled site's check on its own interval, at
// a fixed rate, with a global limit on concurrent checks, and picks up site
// changes while running.
package schedule

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// SiteSource tells the scheduler which sites to check.
type SiteSource interface {
	// SiteChanges returns the ids of all enabled sites of scope and those
	// of its enabled sites changed since since (all of them when since is
	// zero), with the time to pass as since next time.
	SiteChanges(ctx context.Context, since time.Time, scope site.Scope) (site.Changes, error)
	// SitesByID returns the enabled sites of scope among ids.
	SitesByID(ctx context.Context, ids []int64, scope site.Scope) ([]site.Site, error)
}

// Owner says which sites this replica checks: its region's, in the shards
// it leases (see platform/lease).
type Owner interface {
	Scope() site.Scope
	// Changes receives a value when the scope changed: the scheduler then
	// reloads at once, so a shard taken over is checked without waiting
	// for the reload interval.
	Changes() <-chan struct{}
}

// Everything is the Owner of a lone replica: every shard, one region.
type Everything string

// Scope is every shard of the region.
func (e Everything) Scope() site.Scope {
	shards := make([]int16, site.Shards)
	for i := range shards {
		shards[i] = int16(i)
	}
	return site.Scope{Region: string(e), Shards: shards}
}

// Changes never fires: the scope never changes.
func (Everything) Changes() <-chan struct{} { return nil }

// Checker checks a site once.
type Checker interface {
	Check(ctx context.Context, t *probe.Target) probe.Result
}

// Config tunes the scheduler.
type Config struct {
	Concurrency    int           // checks running at once, across all sites
	ReloadInterval time.Duration // how often site changes are picked up
}

// Scheduler dispatches checks. Results go to the channel given to New,
// which Run closes when it returns.
type Scheduler struct {
	cfg     Config
	source  SiteSource
	owner   Owner
	region  string
	checker Checker
	out     chan<- probe.Result
	logger  *zap.Logger
	metrics *metrics

	entries map[int64]*entry
	queue   timeQueue
	gen     uint64
	asOf    time.Time // the last reload's snapshot; zero until one succeeded
	reloads int
}

type entry struct {
	target  *probe.Target
	gen     uint64 // queue items of older generations are stale
	running atomic.Bool
}

type job struct {
	e       *entry
	target  *probe.Target
	planned time.Time
}

// Validate reports every setting that cannot work; it does not change c.
func (c Config) Validate() error {
	var errs []error
	if c.Concurrency < 1 {
		errs = append(errs, fmt.Errorf("concurrency %d: want at least 1", c.Concurrency))
	}
	if c.ReloadInterval <= 0 {
		errs = append(errs, fmt.Errorf("reload interval %s: want more than 0", c.ReloadInterval))
	}
	return errors.Join(errs...)
}

// New checks cfg and returns a Scheduler checking the sites owner gives it
// and writing results to out.
func New(cfg Config, source SiteSource, owner Owner, checker Checker, out chan<- probe.Result, logger *zap.Logger, reg prometheus.Registerer) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scheduler configuration: %w", err)
	}
	return &Scheduler{cfg: cfg, source: source, owner: owner, region: owner.Scope().Region, checker: checker, out: out, logger: logger,
		metrics: newMetrics(reg), entries: map[int64]*entry{}}, nil
}

// Run schedules checks until ctx ends. Checks in flight then finish (each
// bounded by its site's timeout) and their results are sent before Run
// closes the result channel and returns.
func (s *Scheduler) Run(ctx context.Context) {
	jobs := make(chan job)
	var workers sync.WaitGroup
	for range s.cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			s.work(context.WithoutCancel(ctx), jobs)
		}()
	}
	defer func() {
		close(jobs)
		workers.Wait()
		close(s.out)
	}()

	s.reload(ctx)
	reload := time.NewTicker(s.cfg.ReloadInterval)
	defer reload.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if !s.dispatchDue(ctx, jobs) {
			return
		}
		wait := time.Hour
		if len(s.queue) > 0 {
			wait = time.Until(s.queue[0].at)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-reload.C:
			s.reload(ctx)
		case <-s.owner.Changes():
			s.reload(ctx)
		case <-timer.C:
		}
	}
}

// dispatchDue hands every due check to a worker, blocking while all are
// busy (the lag metric shows it). It returns false once ctx has ended.
func (s *Scheduler) dispatchDue(ctx context.Context, jobs chan<- job) bool {
	for len(s.queue) > 0 {
		now := time.Now()
		it := s.queue[0]
		if it.at.After(now) {
			return true
		}
		heap.Pop(&s.queue)
		e, ok := s.entries[it.id]
		if !ok || e.gen != it.gen {
			continue // removed or rescheduled since
		}
		// Fixed rate: the next run is planned from this one's planned
		// time, not from when it ran, so slow checks do not drift. Runs
		// missed while far behind are skipped, not fired in a burst.
		interval := e.target.Site.Interval
		next := it.at.Add(interval)
		for !next.After(now) {
			next = next.Add(interval)
			s.metrics.skipped.Inc()
		}
		heap.Push(&s.queue, item{at: next, id: it.id, gen: it.gen})
		if !e.running.CompareAndSwap(false, true) {
			s.metrics.skipped.Inc() // the previous check of this site is still running
			continue
		}
		select {
		case jobs <- job{e: e, target: e.target, planned: it.at}:
		case <-ctx.Done():
			e.running.Store(false)
			return false
		}
	}
	return true
}

func (s *Scheduler) work(ctx context.Context, jobs <-chan job) {
	for j := range jobs {
		s.metrics.lag.Observe(time.Since(j.planned).Seconds())
		res := s.checker.Check(ctx, j.target)
		res.Planned, res.Region = j.planned, s.region
		j.e.running.Store(false)
		s.metrics.checks.WithLabelValues(res.ErrorClass).Inc()
		s.metrics.duration.Observe(res.Duration.Seconds())
		s.out <- res
	}
}

const (
	// fullReloadEvery is how many reloads pass between full ones.
	fullReloadEvery = 60
	// reloadTimeout bounds one reload's queries.
	reloadTimeout = 30 * time.Second
)

// reload brings the schedule in line with the enabled sites of the
// owner's scope: new sites start at their phase (FirstRun), changed sites take their new settings, and
// removed or disabled sites stop. After the first load it reads only the
// rows changed since the last reload plus the list of enabled ids, so with
// 10,000 sites a reload every few seconds stays cheap.
func (s *Scheduler) reload(ctx context.Context) {
	// Every fullReloadEvery-th reload reads every enabled site, so a change
	// whose transaction stayed open past the incremental margin is still
	// picked up, a few minutes late rather than never.
	since := s.asOf
	s.reloads++
	if s.reloads%fullReloadEvery == 0 {
		since = time.Time{}
	}
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	scope := s.owner.Scope()
	ch, err := s.source.SiteChanges(ctx, since, scope)
	if err == nil {
		err = s.fetchMissing(ctx, &ch, scope)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("reloading sites failed; keeping the current schedule", zap.Error(err))
		}
		return
	}
	s.asOf = ch.AsOf
	now := time.Now()
	for _, st := range ch.Changed {
		s.apply(st, now)
	}
	for id, e := range s.entries {
		if _, enabled := slices.BinarySearch(ch.Enabled, id); !enabled {
			s.logger.Info("unscheduling site", zap.Int64("site_id", id), zap.String("url", e.target.Site.URL))
			delete(s.entries, id)
		}
	}
	s.metrics.sites.Set(float64(len(s.entries)))
}

// fetchMissing adds to ch.Changed the enabled sites the scheduler does not
// know and ch does not hold, e.g. one whose transaction committed after a
// snapshot that its updated_at predates.
func (s *Scheduler) fetchMissing(ctx context.Context, ch *site.Changes, scope site.Scope) error {
	slices.Sort(ch.Enabled)
	changed := make(map[int64]bool, len(ch.Changed))
	for _, st := range ch.Changed {
		changed[st.ID] = true
	}
	var missing []int64
	for _, id := range ch.Enabled {
		if _, known := s.entries[id]; !known && !changed[id] {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	more, err := s.source.SitesByID(ctx, missing, scope)
	if err != nil {
		return err
	}
	ch.Changed = append(ch.Changed, more...)
	return nil
}

// apply schedules a new or changed site.
func (s *Scheduler) apply(st site.Site, now time.Time) {
	e, ok := s.entries[st.ID]
	if ok && e.target.Site.Updated.Equal(st.Updated) {
		return
	}
	t, err := probe.Compile(st)
	if err != nil { // validated on the way in; guard against hand-edited rows
		s.logger.Error("site is invalid; not checking it", zap.Int64("site_id", st.ID), zap.Error(err))
		delete(s.entries, st.ID)
		return
	}
	if !ok {
		e = &entry{}
		s.entries[st.ID] = e
		s.logger.Debug("scheduling site", zap.Int64("site_id", st.ID), zap.String("url", st.URL),
			zap.Duration("interval", st.Interval))
	} else {
		s.logger.Info("site changed", zap.Int64("site_id", st.ID), zap.String("url", st.URL))
	}
	intervalChanged := !ok || e.target.Site.Interval != st.Interval
	e.target = t
	if intervalChanged {
		s.gen++
		e.gen = s.gen
		heap.Push(&s.queue, item{at: FirstRun(st.ID, st.Interval, now), id: st.ID, gen: e.gen})
	}
}

// FirstRun is when a site newly scheduled at now is first checked: the
// next instant of its own phase, hash(id) within its interval counted from
// the Unix epoch. Every replica computes the same instants (their clocks
// kept in step by NTP, as a fleet's are), so a site that
// moves to another replica keeps its rhythm (no bunching, no gap), and
// sites added together spread over their interval.
func FirstRun(id int64, interval time.Duration, now time.Time) time.Time {
	h := fnv.New64a()
	_ = binary.Write(h, binary.LittleEndian, id)
	phase := time.Duration(h.Sum64() % uint64(interval))
	into := ((time.Duration(now.UnixNano())-phase)%interval + interval) % interval // time since the last instant
	return now.Add((interval - into) % interval)
}

type item struct {
	at  time.Time
	id  int64
	gen uint64
}

// timeQueue is a min-heap of planned checks.
type timeQueue []item

func (q timeQueue) Len() int           { return len(q) }
func (q timeQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q timeQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *timeQueue) Push(x any)        { *q = append(*q, x.(item)) }
func (q *timeQueue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
