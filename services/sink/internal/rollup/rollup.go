// Package rollup keeps the checks' aggregates per site and region in
// 1-minute, 1-hour and 1-day buckets (table rollups), in the transaction
// that stores the raw rows, so pages and queries over weeks read a few
// hundred rows instead of millions of checks.
//
// Every field is a sum (checks, failures, durations, phase times and a
// fixed-bucket histogram of the response time), so buckets merge by
// addition: across regions, across time, and across re-runs of the
// incremental upsert. Only checks stored for the first time may be applied,
// which is what keeps re-delivery from counting twice.
package rollup

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/services/sink/internal/pgerr"
)

var (
	//go:embed insert.sql
	insertSQL string
	//go:embed on_conflict.sql
	onConflictTemplate string
)

var (
	//go:embed lock_shared.sql
	lockSharedSQL string
	//go:embed folded_to.sql
	foldedToSQL string
	//go:embed lock_slots_shared.sql
	lockSlotsSharedSQL string
)

// upsertSQL adds a batch's buckets to the rollups, inserting those that do
// not exist; insertSQL alone inserts them all, failing on one that exists.
var upsertSQL = insertSQL + strings.ReplaceAll(onConflictTemplate, "{{histogram_sum}}",
	histogramSum("r.histogram", "excluded.histogram", len(Bounds)+1))

// histogramSum is the SQL expression of the element-wise sum of histograms
// a and b for the first n counts, followed by what a holds beyond them (a
// histogram written by a sink that knows more bounds keeps its tail).
func histogramSum(a, b string, n int) string {
	terms := make([]string, n)
	for i := range terms {
		terms[i] = fmt.Sprintf("coalesce(%[1]s[%[3]d], 0) + coalesce(%[2]s[%[3]d], 0)", a, b, i+1)
	}
	return fmt.Sprintf("ARRAY[%s] || %s[%d:]", strings.Join(terms, ", "), a, n+1)
}

// Widths are the bucket widths kept, narrowest first.
var Widths = []time.Duration{time.Minute, time.Hour, 24 * time.Hour}

// Bounds are the histogram's upper bounds in milliseconds: 2^(i/4) for
// i = 0..63, from 1 ms to about 55 s, each 19 % above the previous one, so
// a percentile read from the histogram is within 19 % of the exact one.
// A histogram has len(Bounds)+1 counts: the last counts durations above
// every bound. Bounds may only ever be appended to: stored histograms of
// the old length still add up (the missing counts are zeros).
var Bounds = func() []float64 {
	b := make([]float64, 64)
	for i := range b {
		b[i] = math.Pow(2, float64(i)/4)
	}
	return b
}()

// BucketOf is the index of the histogram count that ms falls in.
func BucketOf(ms float64) int {
	return sort.SearchFloat64s(Bounds, ms) // the first bound >= ms; len(Bounds) above all
}

// Percentile estimates the q-quantile (0 < q <= 1) in milliseconds of the
// durations counted in hist, interpolating linearly inside the bucket the
// rank falls in; durations above every bound are reported as the last
// bound. It returns NaN for an empty histogram.
func Percentile(hist []int64, q float64) float64 {
	var total int64
	for _, c := range hist {
		total += c
	}
	if total == 0 || q <= 0 || q > 1 {
		return math.NaN()
	}
	rank := q * float64(total) // the rank-th smallest duration, counting from 1
	var seen int64
	for i, c := range hist {
		if c == 0 || float64(seen+c) < rank {
			seen += c
			continue
		}
		if i >= len(Bounds) {
			return Bounds[len(Bounds)-1]
		}
		lo := 0.0
		if i > 0 {
			lo = Bounds[i-1]
		}
		return lo + (Bounds[i]-lo)*(rank-float64(seen))/float64(c)
	}
	return Bounds[len(Bounds)-1]
}

// Check is what a rollup takes from one stored check.
type Check struct {
	SiteID                                      int64
	Region                                      string // "" when the check carries none
	CheckedAt                                   time.Time
	Failed                                      bool
	DurationMS                                  float64
	Phases                                      bool // the check carries its phases (schema version 2 and later)
	DNSMS, ConnectMS, TLSMS, TTFBMS, TransferMS float64
}

// Key names one bucket of one site in one region.
type Key struct {
	Width  int32 // seconds
	SiteID int64
	Region string
	Start  time.Time
}

// Row is one bucket's sums, as table rollups holds them.
type Row struct {
	Key
	Checks, Failures, PhaseChecks int32
	DurationSum                   float64
	// Histogram counts the checks by response-time bucket; for a bucket of
	// one check (most of a batch's) it is nil and One is the index of the
	// check's count, which saves allocating and sending 65 counts.
	Histogram                                        []int32
	One                                              int32
	DNSSum, ConnectSum, TLSSum, TTFBSum, TransferSum float64
}

// Aggregate sums checks into one row per bucket of every width, ordered
// by key so concurrent transactions lock rows in the same order (no
// deadlocks).
func Aggregate(checks []Check) []Row {
	return aggregate(checks, func(*Check) []time.Duration { return Widths })
}

// aggregate is Aggregate adding each check to the widths widths(c) lists
// (a subslice of Widths).
func aggregate(checks []Check, widths func(c *Check) []time.Duration) []Row {
	out := make([]Row, 0, len(checks)*len(Widths)) // never grown: the map's pointers stay valid
	rows := make(map[Key]*Row, len(checks)*len(Widths))
	for i := range checks {
		c := &checks[i]
		bucket := int32(BucketOf(c.DurationMS))
		for _, w := range widths(c) {
			k := Key{Width: int32(w / time.Second), SiteID: c.SiteID, Region: c.Region, Start: c.CheckedAt.UTC().Truncate(w)}
			r := rows[k]
			if r == nil {
				out = append(out, Row{Key: k, One: bucket})
				r = &out[len(out)-1]
				rows[k] = r
			} else {
				if r.Histogram == nil {
					r.Histogram = make([]int32, len(Bounds)+1)
					r.Histogram[r.One]++
				}
				r.Histogram[bucket]++
			}
			r.Checks++
			if c.Failed {
				r.Failures++
			}
			r.DurationSum += c.DurationMS
			if c.Phases {
				r.PhaseChecks++
				r.DNSSum += c.DNSMS
				r.ConnectSum += c.ConnectMS
				r.TLSSum += c.TLSMS
				r.TTFBSum += c.TTFBMS
				r.TransferSum += c.TransferMS
			}
		}
	}
	sortRows(out)
	return out
}

// sortRows orders rows by key: concurrent transactions then lock rows in
// the same order (no deadlocks).
func sortRows(out []Row) {
	slices.SortFunc(out, func(a, b Row) int {
		switch {
		case a.Width != b.Width:
			return int(a.Width - b.Width)
		case a.SiteID != b.SiteID:
			if a.SiteID < b.SiteID {
				return -1
			}
			return 1
		case a.Region != b.Region:
			if a.Region < b.Region {
				return -1
			}
			return 1
		}
		return a.Start.Compare(b.Start)
	})
}

// Apply adds checks to their buckets in tx: one statement for the batch.
// Call it only with checks stored for the first time, in the transaction
// that stores them. A check of a minute not folded yet goes to its minute's
// row alone (Fold adds it to its hour and day later); one of a minute
// already folded, or any while folding has not started, goes to all three
// widths.
//
// Locks, each held until commit: the fold's lock shared (only starting to
// fold takes it alone), then, shared, the lock of each FoldSlot of the
// checks not folded yet, which a fold of that slot takes alone: no fold of
// those minutes runs between deciding here and this transaction's commit,
// and a fold of other minutes does not wait for this writer. folded_to is
// read in a statement after the locks, so any fold waited for is seen.
//
// The 1-minute buckets that recent has not seen written are inserted as
// new rows and the others added to (Recent); with a nil recent, every
// bucket is added to.
func Apply(ctx context.Context, tx pgx.Tx, checks []Check, recent *Recent) error {
	if len(checks) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, lockSharedSQL); err != nil {
		return fmt.Errorf("taking the rollup fold's lock: %w", err)
	}
	foldedTo, err := readFoldedTo(ctx, tx)
	if err != nil || foldedTo == nil {
		if err == nil {
			err = write(ctx, tx, Aggregate(checks), len(checks), recent)
		}
		return err
	}
	// folded_to only moves on: a check before it now stays before it.
	var slots []int64
	for i := range checks {
		if m := checks[i].CheckedAt.Truncate(time.Minute); !m.Before(*foldedTo) {
			slots = append(slots, slotOf(m))
		}
	}
	if len(slots) > 0 {
		if _, err := tx.Exec(ctx, lockSlotsSharedSQL, slots); err != nil {
			return fmt.Errorf("taking the rollup fold's locks of %d minutes: %w", len(slots), err)
		}
		if foldedTo, err = readFoldedTo(ctx, tx); err != nil {
			return err
		}
	}
	rows := aggregate(checks, func(c *Check) []time.Duration {
		if !c.CheckedAt.Truncate(time.Minute).Before(*foldedTo) {
			return Widths[:1]
		}
		return Widths
	})
	return write(ctx, tx, rows, len(checks), recent)
}

// write adds rows, the buckets of checks checks: the 1-minute ones recent
// has not seen written are inserted, in a savepoint; should one exist
// after all (another sink wrote it before a rebalance, or this one before
// a restart), the savepoint is rolled back and they are added to as the
// others are. Two writers adding to the same buckets (only while a
// rebalance hands their partitions over) may then lock them in different
// orders: PostgreSQL ends one transaction as a deadlock, and the sink
// writes its batch again.
func write(ctx context.Context, tx pgx.Tx, rows []Row, checks int, recent *Recent) error {
	fresh, known := recent.split(rows)
	inserted := 0
	if len(fresh) > 0 {
		ok, err := insertNew(ctx, tx, fresh, checks)
		switch {
		case err != nil:
			return err
		case ok:
			inserted = len(fresh)
		default:
			recent.fellBack()
			known = append(known, fresh...)
			sortRows(known)
		}
	}
	if err := upsert(ctx, tx, known, checks); err != nil {
		return err
	}
	recent.add(rows, inserted)
	return nil
}

// insertNew inserts rows in a savepoint and reports false, the savepoint
// rolled back, if one of them exists.
func insertNew(ctx context.Context, tx pgx.Tx, rows []Row, checks int) (bool, error) {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("starting the savepoint of %d new rollup buckets: %w", len(rows), err)
	}
	_, err = sp.Exec(ctx, insertSQL, params(rows)...)
	if pgerr.IsUniqueViolation(err) {
		if err := sp.Rollback(ctx); err != nil {
			return false, fmt.Errorf("rolling back the insert of %d rollup buckets, one of which exists: %w", len(rows), err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("inserting %d checks' %d new rollup buckets: %w", checks, len(rows), err)
	}
	if err := sp.Commit(ctx); err != nil {
		return false, fmt.Errorf("releasing the savepoint of %d new rollup buckets: %w", len(rows), err)
	}
	return true, nil
}

// FoldSlot is the span of minutes that one lock guards against a writer
// and a fold working on the same minutes at once; folds end on its
// multiples.
const FoldSlot = 10 * time.Minute

// slotOf is the number of the FoldSlot that t falls in.
func slotOf(t time.Time) int64 {
	return t.Unix() / int64(FoldSlot/time.Second) // checks before 1970 share their slots with others: harmless
}

// readFoldedTo is rollup_fold.folded_to, nil while folding has not started.
func readFoldedTo(ctx context.Context, tx pgx.Tx) (*time.Time, error) {
	var foldedTo *time.Time
	if err := tx.QueryRow(ctx, foldedToSQL).Scan(&foldedTo); err != nil {
		return nil, fmt.Errorf("reading how far rollups are folded: %w", err)
	}
	return foldedTo, nil
}

// upsert adds rows, the buckets of checks checks, in one statement.
func upsert(ctx context.Context, tx pgx.Tx, rows []Row, checks int) error {
	if len(rows) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, upsertSQL, params(rows)...); err != nil {
		return fmt.Errorf("adding %d checks to %d rollup buckets: %w", checks, len(rows), err)
	}
	return nil
}

// params are insert.sql's parameters for rows: an array per column.
func params(rows []Row) []any {
	n := len(rows)
	width, checksN, failures, phaseChecks := make([]int32, n), make([]int32, n), make([]int32, n), make([]int32, n)
	site := make([]int64, n)
	region := make([]string, n)
	start := make([]time.Time, n)
	dur, dns, conn, tls, ttfb, transfer := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n),
		make([]float64, n), make([]float64, n)
	one, off := make([]int32, n), make([]int32, n) // a single check's count index, or -1 and where its histogram starts
	var hist []int32
	for i, r := range rows {
		width[i], site[i], region[i], start[i] = r.Width, r.SiteID, r.Region, r.Start
		checksN[i], failures[i], phaseChecks[i] = r.Checks, r.Failures, r.PhaseChecks
		dur[i], dns[i], conn[i], tls[i], ttfb[i], transfer[i] = r.DurationSum, r.DNSSum, r.ConnectSum, r.TLSSum, r.TTFBSum, r.TransferSum
		if r.Histogram == nil {
			one[i] = r.One
			continue
		}
		one[i], off[i] = -1, int32(len(hist))
		hist = append(hist, r.Histogram...)
	}
	return []any{width, site, region, start, checksN, failures, dur, phaseChecks,
		dns, conn, tls, ttfb, transfer, hist, one, off, int32(len(Bounds) + 1)}
}
