package rollup

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/retry"
)

var (
	//go:embed lock.sql
	lockSQL string
	//go:embed lock_folder.sql
	lockFolderSQL string
	//go:embed lock_slots.sql
	lockSlotsSQL string
	//go:embed fold_state.sql
	foldStateSQL string
	//go:embed set_folded_to.sql
	setFoldedToSQL string
	//go:embed fold_sums.sql
	foldSumsSQL string
)

// When and how much Fold folds.
const (
	// FoldLag: the minutes this close to the newest one stored may still
	// get checks from partitions read a little behind the others; they are
	// left for a later fold (a check that comes after its minute was
	// folded is still counted once, by Apply, but at the price of the
	// three upserts folding saves).
	FoldLag = 5 * time.Minute
	// FoldMin: a fold waits until this much is ready, so a site's hour and
	// day rows are rewritten at most every FoldMin of checks, and readers
	// add at most about FoldMin+FoldLag of minutes themselves.
	FoldMin = 10 * time.Minute
	// FoldMax: the most one fold adds; writers of those minutes (late
	// ones, normally none) wait while it runs.
	FoldMax = 30 * time.Minute
	// FoldInterval: how often the sink looks for minutes ready to fold.
	FoldInterval = time.Minute
)

// Folded is what one Fold did.
type Folded struct {
	Started  bool      // folding started: the first minute it will fold is To
	From, To time.Time // the minutes folded, [From, To); both zero when none were
	Checks   int       // the checks folded
	Waiting  []string  // sink replicas of a version before folding, which keep it from starting
	FoldedTo time.Time // folded_to after the fold: the first minute not folded; zero while folding has not started
}

// Fold adds the oldest 1-minute rollups not folded yet (up to FoldMax of
// them, once FoldMin are ready, ending on a multiple of FoldSlot) to their
// 1-hour and 1-day rollups and moves folded_to past them, in one
// transaction that holds the locks of their slots alone (see Apply): every
// writer that decided on those minutes has committed, and none decides on
// them until the fold commits, so each check is counted exactly once, by
// Apply or by Fold. Writers of other minutes do not wait. One fold runs at
// a time. now bounds which minutes are ready.
//
// Folding starts (folded_to is set for the first time) once no sink
// replica reports without folding (sink_replicas.folds): with the fold's
// lock alone, so no writer is deciding, at the first slot after the newest
// minute stored, since every check stored until then went to all three
// widths.
func Fold(ctx context.Context, pool *pgxpool.Pool, now time.Time) (Folded, error) {
	var res Folded
	tx, err := pool.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("starting a rollup fold: %w", err)
	}
	defer func() { // a no-op once committed
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if _, err := tx.Exec(ctx, lockFolderSQL); err != nil {
		return res, fmt.Errorf("taking the rollup folder's lock: %w", err)
	}
	foldedTo, newest, err := foldState(ctx, tx, now, &res)
	if err != nil {
		return res, err
	}
	if foldedTo == nil {
		if res.Waiting != nil {
			return res, nil
		}
		if _, err := tx.Exec(ctx, lockSQL); err != nil {
			return res, fmt.Errorf("taking the rollup fold's lock: %w", err)
		}
		if _, newest, err = foldState(ctx, tx, now, &res); err != nil { // the writers waited for may have stored newer minutes
			return res, err
		}
		start := now.Truncate(time.Minute).Add(time.Minute)
		if newest != nil && !newest.Before(start) {
			start = newest.Add(time.Minute)
		}
		if s := start.Truncate(FoldSlot); !s.Equal(start) {
			start = s.Add(FoldSlot)
		}
		if _, err := tx.Exec(ctx, setFoldedToSQL, start); err != nil {
			return res, fmt.Errorf("starting to fold rollups at %s: %w", start.Format(time.RFC3339), err)
		}
		if err := tx.Commit(ctx); err != nil {
			return res, fmt.Errorf("starting to fold rollups at %s: %w", start.Format(time.RFC3339), err)
		}
		res.Started, res.To, res.FoldedTo = true, start.UTC(), start.UTC()
		return res, nil
	}
	if newest == nil {
		return res, nil // nothing stored since the last fold
	}
	ready := newest.Add(time.Minute) // the newest minute is ready once over
	if now.Before(ready) {
		ready = now
	}
	ready = ready.Add(-FoldLag).Truncate(time.Minute)
	if ready.Sub(*foldedTo) < FoldMin {
		return res, nil
	}
	from, to := foldedTo.UTC(), ready.UTC()
	if to.Sub(from) > FoldMax {
		to = from.Add(FoldMax)
	}
	if to = to.Truncate(FoldSlot); !to.After(from) {
		return res, nil
	}
	if _, err := tx.Exec(ctx, lockSlotsSQL, slotOf(from), slotOf(to.Add(-time.Minute))); err != nil {
		return res, fmt.Errorf("taking the rollup fold's locks of %s..%s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	rows, checks, err := foldRows(ctx, tx, from, to)
	if err != nil {
		return res, err
	}
	if err := upsert(ctx, tx, rows, checks); err != nil {
		return res, err
	}
	if _, err := tx.Exec(ctx, setFoldedToSQL, to); err != nil {
		return res, fmt.Errorf("moving folded rollups to %s: %w", to.Format(time.RFC3339), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("committing the rollup fold of %s..%s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	res.From, res.To, res.Checks, res.FoldedTo = from, to, checks, to
	return res, nil
}

// foldState reads where folding stands: folded_to, the newest minute
// (fold_state.sql), and into res, the replicas that keep folding from
// starting.
func foldState(ctx context.Context, tx pgx.Tx, now time.Time, res *Folded) (foldedTo, newest *time.Time, err error) {
	if err := tx.QueryRow(ctx, foldStateSQL, now).Scan(&foldedTo, &newest, &res.Waiting); err != nil {
		return nil, nil, fmt.Errorf("reading how far rollups are folded: %w", err)
	}
	if len(res.Waiting) == 0 {
		res.Waiting = nil
	}
	if foldedTo != nil {
		res.FoldedTo = foldedTo.UTC()
	}
	return foldedTo, newest, nil
}

// foldRows reads the 1-minute rollups of the minutes [from, to), summed by
// the database per site, region and hour, and returns the 1-hour and
// 1-day rows they add up to, ordered by key, and how many checks they hold.
func foldRows(ctx context.Context, tx pgx.Tx, from, to time.Time) ([]Row, int, error) {
	byKey := map[Key]*Row{}
	checks := 0
	var (
		g     Row
		hour  time.Time
		ones  []int32   // the count index of each minute of one check
		hists [][]int32 // the histograms of the others
	)
	rows, _ := tx.Query(ctx, foldSumsSQL, from, to, int32(len(Bounds)+1)) // an error puts rows in an error state, which ForEachRow returns
	_, err := pgx.ForEachRow(rows, []any{&g.SiteID, &g.Region, &hour, &g.Checks, &g.Failures, &g.DurationSum, &g.PhaseChecks,
		&g.DNSSum, &g.ConnectSum, &g.TLSSum, &g.TTFBSum, &g.TransferSum, &ones, &hists}, func() error {
		checks += int(g.Checks)
		for _, w := range Widths[1:] {
			k := Key{Width: int32(w / time.Second), SiteID: g.SiteID, Region: g.Region, Start: hour.UTC().Truncate(w)}
			r := byKey[k]
			if r == nil {
				r = &Row{Key: k, Histogram: make([]int32, len(Bounds)+1)}
				byKey[k] = r
			}
			r.Checks += g.Checks
			r.Failures += g.Failures
			r.PhaseChecks += g.PhaseChecks
			r.DurationSum += g.DurationSum
			r.DNSSum += g.DNSSum
			r.ConnectSum += g.ConnectSum
			r.TLSSum += g.TLSSum
			r.TTFBSum += g.TTFBSum
			r.TransferSum += g.TransferSum
			for _, i := range ones {
				// A minute written by a sink that knows more bounds: what
				// this one does not know counts above every bound it knows.
				r.Histogram[min(i, int32(len(Bounds)))]++
			}
			for _, h := range hists {
				for i, n := range h {
					r.Histogram[i] += n
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("reading the minutes of %s..%s to fold: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	out := make([]Row, 0, len(byKey))
	for _, r := range byKey {
		out = append(out, *r)
	}
	sortRows(out)
	return out, checks, nil
}

// RunFolder folds every interval, as often in a row as there is something
// ready, until ctx ends; each Fold has timeout. A failed fold is logged and
// tried again at the next interval. It registers with reg
// sitewatch_sink_rollup_folded_to_seconds (the first minute not folded, as
// a Unix time; 0 until folding starts: time() minus it growing past
// FoldLag+FoldMin+FoldSlot, about 25 minutes, says folding is stuck) and
// sitewatch_sink_rollup_folded_checks_total.
func RunFolder(ctx context.Context, pool *pgxpool.Pool, interval, timeout time.Duration, logger *zap.Logger, reg prometheus.Registerer) {
	foldedTo := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sitewatch_sink_rollup_folded_to_seconds",
		Help: "The first minute not folded into the 1-hour and 1-day rollups yet, as a Unix time; 0 until folding starts. time() minus this growing past about 25 minutes: folding is stuck."})
	folded := prometheus.NewCounter(prometheus.CounterOpts{Name: "sitewatch_sink_rollup_folded_checks_total",
		Help: "Checks added to their 1-hour and 1-day rollups by folding their 1-minute ones."})
	reg.MustRegister(foldedTo, folded)
	waiting := ""
	for {
		for ctx.Err() == nil {
			fctx, cancel := context.WithTimeout(ctx, timeout)
			res, err := Fold(fctx, pool, time.Now())
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					logger.Warn("folding rollups failed; retrying at the next pass", zap.Duration("retry_in", interval), zap.Error(err))
				}
				break
			}
			if !res.FoldedTo.IsZero() {
				foldedTo.Set(float64(res.FoldedTo.Unix()))
			}
			folded.Add(float64(res.Checks))
			if w := strings.Join(res.Waiting, ","); w != waiting {
				waiting = w
				if w != "" {
					logger.Info("rollup folding waits for sink replicas of a version before it to stop", zap.Strings("replicas", res.Waiting))
				}
			}
			if res.Started {
				logger.Info("rollup folding started", zap.Time("first_minute", res.To))
				if res.To.After(time.Now().Add(time.Hour)) {
					logger.Warn("rollup folding starts after a check stored for a time far ahead (a clock ahead?); until then every check is added to all three widths",
						zap.Time("first_minute", res.To))
				}
				continue
			}
			if res.To.IsZero() {
				break
			}
			logger.Debug("rollups folded", zap.Time("from", res.From), zap.Time("to", res.To), zap.Int("checks", res.Checks))
		}
		if !retry.Sleep(ctx, interval) {
			return
		}
	}
}
