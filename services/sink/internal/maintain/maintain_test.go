package maintain

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db/dbtest"
)

func defaults(t *testing.T) Config {
	t.Helper()
	var c Config
	c.RegisterFlags(flag.NewFlagSet("test", flag.ContinueOnError))
	require.NoError(t, c.Validate())
	return c
}

func partitions(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'stats'::regclass ORDER BY 1`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

func insertCheck(t *testing.T, pool *pgxpool.Pool, at time.Time) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO stats (event_id, site_id, url, checked_at, duration_ms, topic_name, kafka_partition, kafka_offset)
		VALUES (gen_random_uuid(), 1, 'http://a', $1, 1, 't', 0, 0)`, at)
	require.NoError(t, err)
}

func count(t *testing.T, pool *pgxpool.Pool, query string, args ...any) (n int) {
	t.Helper()
	require.NoError(t, pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// Partitions are made ahead (taking over the default partition's rows for
// their day), dropped whole once expired, and expired rollups deleted.
func TestOnceCreatesDropsAndExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	c := defaults(t)
	c.PartitionsAhead = 2
	c.DeleteBatch = 3 // several batches
	now := time.Date(2026, 6, 15, 13, 0, 0, 0, time.UTC)

	// Checks that arrived before any partition: in the default partition.
	insertCheck(t, pool, now.Add(24*time.Hour))
	insertCheck(t, pool, now.AddDate(0, 0, -20))
	require.Equal(t, []string{"stats_default"}, partitions(t, pool))

	res, err := Once(ctx, pool, c, now.AddDate(0, 0, -20))
	require.NoError(t, err)
	require.Len(t, res.Created, 3)
	res, err = Once(ctx, pool, c, now)
	require.NoError(t, err)
	require.Len(t, res.Created, 3)
	require.Equal(t, []string{"stats_20260526", "stats_20260527", "stats_20260528"}, res.Dropped,
		"days wholly older than 14 days: 26..28 May; 1 June (14 d before 15 June 13:00 falls in it) stays")
	require.Equal(t, []string{"stats_20260615", "stats_20260616", "stats_20260617", "stats_default"}, partitions(t, pool))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM stats_20260616"), "the default partition's row moved into its day")
	require.Equal(t, 0, count(t, pool, "SELECT count(*) FROM stats_default"))
	require.Equal(t, 1, count(t, pool, "SELECT count(*) FROM stats"), "the expired check went with its partition")

	res, err = Once(ctx, pool, c, now)
	require.NoError(t, err)
	require.Empty(t, res.Created, "a second pass finds everything made")
	require.Empty(t, res.Dropped)

	// Rollups: 10 one-minute buckets either side of the 2-day cutoff, and
	// one 1-hour and one 1-day bucket well inside their retention.
	_, err = pool.Exec(ctx, `INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum,
		histogram, phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum)
		SELECT 60, 1, '', $1::timestamptz - interval '48 hours' + m * interval '1 minute', 1, 0, 1, '{1}'::int[], 0, 0, 0, 0, 0, 0
		FROM generate_series(-11, 8) AS m
		UNION ALL SELECT 3600, 1, '', $1::timestamptz - interval '89 days', 1, 0, 1, '{1}'::int[], 0, 0, 0, 0, 0, 0
		UNION ALL SELECT 86400, 1, '', $1::timestamptz - interval '700 days', 1, 0, 1, '{1}'::int[], 0, 0, 0, 0, 0, 0`, now)
	require.NoError(t, err)
	// Folding (package rollup) has reached only minute -5: the minutes
	// from it on are still added to their hours and days by readers, and
	// stay however old.
	_, err = pool.Exec(ctx, `UPDATE rollup_fold SET folded_to = $1::timestamptz - interval '48 hours 5 minutes'`, now)
	require.NoError(t, err)
	res, err = Once(ctx, pool, c, now)
	require.NoError(t, err)
	require.EqualValues(t, 6, res.Expired, "the 1-minute buckets ending before now-48h and folded: -11..-6")
	_, err = pool.Exec(ctx, `UPDATE rollup_fold SET folded_to = $1`, now)
	require.NoError(t, err)
	res, err = Once(ctx, pool, c, now)
	require.NoError(t, err)
	require.EqualValues(t, 4, res.Expired, "folded now: the rest of those ending before now-48h, -5..-2")
	require.Equal(t, 12, count(t, pool, "SELECT count(*) FROM rollups"))
	require.Equal(t, 0, count(t, pool, "SELECT count(*) FROM rollups WHERE bucket_width = 60 AND bucket_start + interval '1 minute' < $1::timestamptz - interval '48 hours'", now))
}

func TestValidateNamesTheFlag(t *testing.T) {
	t.Parallel()
	for flagName, mutate := range map[string]func(*Config){
		"raw-retention":        func(c *Config) { c.RawRetention = time.Hour },
		"partitions-ahead":     func(c *Config) { c.PartitionsAhead = 0 },
		"rollup-1m-retention":  func(c *Config) { c.Rollup1m = time.Minute },
		"rollup-1h-retention":  func(c *Config) { c.Rollup1h = time.Hour },
		"rollup-1d-retention":  func(c *Config) { c.Rollup1d = 0 },
		"maintenance-interval": func(c *Config) { c.Interval = 0 },
		"rollup-delete-batch":  func(c *Config) { c.DeleteBatch = 0 },
	} {
		c := defaults(t)
		mutate(&c)
		require.ErrorContains(t, c.Validate(), flagName+":")
	}
}
