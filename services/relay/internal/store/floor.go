package store

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
)

// Floor is the lowest id a claim needs to look at: every row below it is
// published or parked. Claims scan the index of unpublished rows from its
// lowest id, and every row published since vacuum last passed leaves a
// dead entry there; on a busy outbox that is hundreds of thousands of
// entries each claim steps over (make soak: the claim's time per row grew
// by two thirds in ten million events). Starting at the floor skips them.
//
// Ids are handed out before their transactions commit, so a row committed
// late can carry an id below rows already published. The floor therefore
// rises in two steps. A refresh reads the lowest waiting id m together
// with its snapshot; m becomes the floor only at a later refresh whose
// snapshot shows every transaction that was running at the first one
// finished (their rows are visible by then, and the floor is the lower of
// m and what is waiting now). Ids handed out afterwards are higher than
// any seen at the first refresh. A row that still turns up below the floor
// lowers it at the next refresh, so it waits at most one refresh: a
// requeued row, or one whose id was drawn from the sequence long before
// its transaction wrote anything (a sequence cache, ids allocated ahead by
// the application).
type Floor struct {
	store  *Store
	active atomic.Int64
	gen    atomic.Uint64 // counts refreshes and lowerings

	mu       sync.Mutex
	cand     int64  // waiting to become the floor
	candXmax uint64 // ... once every transaction below this id has ended
	hasCand  bool
}

// NewFloor returns a floor of 0 (claims look at every row) for the
// store's table; Refresh raises it.
func (s *Store) NewFloor() *Floor { return &Floor{store: s} }

// Lower moves the floor down to id at once: a waiting row found below it.
func (f *Floor) Lower(id int64) {
	for {
		cur := f.active.Load()
		if id >= cur {
			return
		}
		if f.active.CompareAndSwap(cur, id) {
			f.gen.Add(1)
			return
		}
	}
}

// Gen changes with every refresh and lowering: a claim position worked
// out since the floor's last change (see relay's cursor) is still good
// while Gen stays the same.
func (f *Floor) Gen() uint64 { return f.gen.Load() }

// ID is the floor: claims need not look below it.
func (f *Floor) ID() int64 { return f.active.Load() }

// Refresh reads the table once and moves the floor: down at once to a
// waiting row found below it, up to the candidate of the previous refresh
// once the transactions running then have all ended. It returns the floor.
func (f *Floor) Refresh(ctx context.Context, db DB) (int64, error) {
	var lowest int64
	var xminText, xmaxText string
	// The single table's index of waiting rows finds rows below the
	// floor; a partitioned table has none, and its rows below the floor
	// are found by the partition checks, which call Lower.
	var err error
	if f.store.Partitioned() {
		err = db.QueryRow(ctx, f.store.q.floorPartitioned, f.ID()).Scan(&lowest, &xminText, &xmaxText)
	} else {
		err = db.QueryRow(ctx, f.store.q.floor).Scan(&lowest, &xminText, &xmaxText)
	}
	if err != nil {
		return f.ID(), fmt.Errorf("reading the outbox's lowest waiting id: %w", err)
	}
	xmin, err := strconv.ParseUint(xminText, 10, 64)
	if err != nil {
		return f.ID(), fmt.Errorf("reading the outbox's lowest waiting id: snapshot xmin %q: %w", xminText, err)
	}
	xmax, err := strconv.ParseUint(xmaxText, 10, 64)
	if err != nil {
		return f.ID(), fmt.Errorf("reading the outbox's lowest waiting id: snapshot xmax %q: %w", xmaxText, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	active := f.active.Load()
	if lowest < active {
		active = lowest
	}
	if f.hasCand && xmin >= f.candXmax {
		active = max(active, min(f.cand, lowest))
		f.hasCand = false
	}
	if !f.hasCand {
		f.cand, f.candXmax, f.hasCand = lowest, xmax, true
	}
	f.active.Store(active)
	f.gen.Add(1)
	return active, nil
}
