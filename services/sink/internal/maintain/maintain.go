// Package maintain keeps the sink's tables in shape while it runs: stats
// partitions created ahead and dropped whole once expired, and expired
// rollups deleted in small batches.
//
// Raw rows are partitioned because they are many (one per check) and expire
// together: dropping a day is instant and leaves no dead rows. Rollups are
// few (at most 1,440 + 24 + 1 rows per site, region and day) and kept for
// different times per width, so a batched DELETE is cheap enough and keeps
// one plain table.
package maintain

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/platform/retry"
)

var (
	//go:embed create_partition.sql
	createPartitionSQL string
	//go:embed drop_partitions.sql
	dropPartitionsSQL string
	//go:embed expire_rollups.sql
	expireRollupsSQL string
)

const day = 24 * time.Hour

// Config says how long data is kept and how often the loop runs.
type Config struct {
	RawRetention    time.Duration // stats rows; whole days are dropped
	PartitionsAhead int           // daily partitions made ahead of today
	Rollup1m        time.Duration
	Rollup1h        time.Duration
	Rollup1d        time.Duration
	Interval        time.Duration
	DeleteBatch     int
	Timeout         time.Duration // deadline of each database call
}

// RegisterFlags adds the maintenance flags to fs with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.RawRetention, "raw-retention", 14*day, "how long raw check rows (stats) are kept; expired days are dropped a partition at a time")
	fs.IntVar(&c.PartitionsAhead, "partitions-ahead", 3, "daily stats partitions created ahead of today")
	fs.DurationVar(&c.Rollup1m, "rollup-1m-retention", 2*day, "how long 1-minute rollups are kept")
	fs.DurationVar(&c.Rollup1h, "rollup-1h-retention", 90*day, "how long 1-hour rollups are kept")
	fs.DurationVar(&c.Rollup1d, "rollup-1d-retention", 730*day, "how long 1-day rollups are kept")
	fs.DurationVar(&c.Interval, "maintenance-interval", 10*time.Minute, "how often partitions are created and dropped and expired rollups deleted")
	fs.IntVar(&c.DeleteBatch, "rollup-delete-batch", 5000, "expired rollups deleted per statement")
	c.Timeout = time.Minute
}

// Validate reports every setting that cannot work, each naming its flag.
func (c Config) Validate() error {
	var errs []error
	if c.RawRetention < day || c.RawRetention > 100*365*day {
		errs = append(errs, fmt.Errorf("raw-retention: %s: want 24h..876000h (a day is the smallest unit dropped)", c.RawRetention))
	}
	if c.PartitionsAhead < 1 || c.PartitionsAhead > 60 {
		errs = append(errs, fmt.Errorf("partitions-ahead: %d: want 1..60", c.PartitionsAhead))
	}
	for _, r := range []struct {
		flag     string
		v, least time.Duration
	}{{"rollup-1m-retention", c.Rollup1m, time.Hour}, {"rollup-1h-retention", c.Rollup1h, day}, {"rollup-1d-retention", c.Rollup1d, 7 * day}} {
		if r.v < r.least || r.v > 100*365*day {
			errs = append(errs, fmt.Errorf("%s: %s: want %s..876000h", r.flag, r.v, r.least))
		}
	}
	if c.Interval < time.Second || c.Interval > day {
		errs = append(errs, fmt.Errorf("maintenance-interval: %s: want 1s..24h", c.Interval))
	}
	if c.DeleteBatch < 1 || c.DeleteBatch > 1000000 {
		errs = append(errs, fmt.Errorf("rollup-delete-batch: %d: want 1..1000000", c.DeleteBatch))
	}
	return errors.Join(errs...)
}

// Result is what one pass did.
type Result struct {
	Created []time.Time // days whose partition was made
	Dropped []string    // partitions dropped
	Expired int64       // rollup rows deleted
}

// Run maintains at once and then every c.Interval until ctx ends; a failed
// pass is logged and retried at the next.
func Run(ctx context.Context, pool *pgxpool.Pool, c Config, logger *zap.Logger) {
	for {
		res, err := Once(ctx, pool, c, time.Now())
		switch {
		case err != nil && ctx.Err() == nil:
			logger.Warn("maintenance failed; retrying at the next pass", zap.Duration("retry_in", c.Interval), zap.Error(err))
		case err == nil && (len(res.Created) > 0 || len(res.Dropped) > 0 || res.Expired > 0):
			logger.Info("maintenance", zap.Int("partitions_created", len(res.Created)), zap.Strings("partitions_dropped", res.Dropped),
				zap.Int64("rollups_expired", res.Expired))
		}
		if !retry.Sleep(ctx, c.Interval) {
			return
		}
	}
}

// Once makes the partitions of today and the c.PartitionsAhead days after
// it (UTC), drops the partitions wholly older than c.RawRetention, and
// deletes the rollups older than their width's retention.
func Once(ctx context.Context, pool *pgxpool.Pool, c Config, now time.Time) (Result, error) {
	var res Result
	today := now.UTC().Truncate(day)
	for i := 0; i <= c.PartitionsAhead; i++ {
		d := today.AddDate(0, 0, i)
		var made bool
		err := call(ctx, c.Timeout, func(ctx context.Context) error {
			return pool.QueryRow(ctx, createPartitionSQL, d).Scan(&made)
		})
		if err != nil {
			return res, fmt.Errorf("creating the stats partition of %s: %w", d.Format(time.DateOnly), err)
		}
		if made {
			res.Created = append(res.Created, d)
		}
	}
	// A day's partition goes once its last instant is older than the retention.
	before := now.Add(-c.RawRetention).UTC().Truncate(day)
	err := call(ctx, c.Timeout, func(ctx context.Context) error {
		rows, err := pool.Query(ctx, dropPartitionsSQL, before)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			res.Dropped = append(res.Dropped, name)
		}
		return rows.Err()
	})
	if err != nil {
		return res, fmt.Errorf("dropping the stats partitions before %s: %w", before.Format(time.DateOnly), err)
	}
	for _, w := range []struct {
		width     time.Duration
		retention time.Duration
	}{{time.Minute, c.Rollup1m}, {time.Hour, c.Rollup1h}, {day, c.Rollup1d}} {
		// A bucket goes once its end is older than the retention.
		cutoff := now.Add(-w.retention - w.width)
		for {
			var n int64
			err := call(ctx, c.Timeout, func(ctx context.Context) error {
				tag, err := pool.Exec(ctx, expireRollupsSQL, int32(w.width/time.Second), cutoff, c.DeleteBatch)
				n = tag.RowsAffected()
				return err
			})
			if err != nil {
				return res, fmt.Errorf("deleting %s rollups before %s: %w", w.width, cutoff.Format(time.RFC3339), err)
			}
			res.Expired += n
			if n < int64(c.DeleteBatch) {
				break
			}
		}
	}
	return res, nil
}

// call runs f with a deadline of its own.
func call(ctx context.Context, timeout time.Duration, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return f(ctx)
}
