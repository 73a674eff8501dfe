package rollup

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// RecentMinutes is how many minutes a Recent remembers the buckets of: the
// newest it saw written. A sink writes about two at a time (the current
// one and the one before); the others leave room for a monitor whose clock
// is off, whose far-off minutes would otherwise push out the present.
const RecentMinutes = 8

// Recent remembers the 1-minute buckets this sink wrote lately, so that
// Apply can insert the others as new rows. Adding to a bucket that may
// exist takes INSERT ... ON CONFLICT, whose speculative insertion costs
// about a quarter more per row than a plain insert (2 µs of 7.5, 10,000
// buckets in a scratch table), and at a check a minute nearly every
// bucket a batch writes is new. A bucket Recent has not seen may still
// exist (another sink wrote it before a rebalance, or this one before a
// restart): the insert then fails, and its batch adds to them all
// instead; remembering too much only costs speed. Safe for concurrent use.
type Recent struct {
	minNew  int // the fewest new buckets inserted apart (MinNewBuckets)
	mu      sync.Mutex
	minutes map[int64]map[siteRegion]struct{} // by the bucket's unix minute

	inserted, fallbacks atomic.Int64
}

type siteRegion struct {
	site   int64
	region string
}

// MinNewBuckets is the fewest new 1-minute buckets a batch inserts apart;
// fewer are added to with the others. The savepoint and the second
// statement cost a few round trips, and the plain insert saves 2 µs a
// row: it pays in the large batches of a busy sink, not in the few checks
// at a time of one that keeps up (where it lengthened the end-to-end
// latency, BenchmarkEndToEndLatency).
const MinNewBuckets = 100

// NewRecent returns a Recent that remembers nothing yet.
func NewRecent() *Recent { return newRecent(MinNewBuckets) }

// newRecent is NewRecent inserting minNew or more new buckets apart.
func newRecent(minNew int) *Recent {
	return &Recent{minNew: minNew, minutes: map[int64]map[siteRegion]struct{}{}}
}

// Inserted is how many buckets were inserted as new rows.
func (r *Recent) Inserted() int64 { return r.inserted.Load() }

// Fallbacks is how many batches met a bucket that existed after all.
func (r *Recent) Fallbacks() int64 { return r.fallbacks.Load() }

// split divides rows, in key order, into the 1-minute buckets r has not
// seen written and the others, each still in key order; fewer than minNew
// new ones go with the others. A nil r has seen them all.
func (r *Recent) split(rows []Row) (fresh, known []Row) {
	if r == nil {
		return nil, rows
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, row := range rows {
		if row.Width == minuteWidth {
			if _, ok := r.minutes[row.Start.Unix()/60][siteRegion{row.SiteID, row.Region}]; !ok {
				fresh = append(fresh, row)
				continue
			}
		}
		known = append(known, row)
	}
	if len(fresh) < r.minNew {
		return nil, rows
	}
	return fresh, known
}

// add remembers the 1-minute buckets of rows as written, keeping those of
// the RecentMinutes newest minutes only.
func (r *Recent) add(rows []Row, inserted int) {
	if r == nil {
		return
	}
	r.inserted.Add(int64(inserted))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, row := range rows {
		if row.Width != minuteWidth {
			continue
		}
		m := row.Start.Unix() / 60
		seen := r.minutes[m]
		if seen == nil {
			seen = map[siteRegion]struct{}{}
			r.minutes[m] = seen
		}
		seen[siteRegion{row.SiteID, row.Region}] = struct{}{}
	}
	if len(r.minutes) > RecentMinutes {
		minutes := slices.Sorted(maps.Keys(r.minutes))
		for _, m := range minutes[:len(minutes)-RecentMinutes] {
			delete(r.minutes, m)
		}
	}
}

// fellBack counts a batch that met a bucket that existed.
func (r *Recent) fellBack() {
	if r != nil {
		r.fallbacks.Add(1)
	}
}

// minuteWidth is the width, in seconds, of the buckets Recent remembers.
var minuteWidth = int32(time.Minute / time.Second)
