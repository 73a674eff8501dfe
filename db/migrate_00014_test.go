package db_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// 00014 moves the existing stats rows into daily partitions, keeping their
// ids, and Down puts them back into one unpartitioned table.
func TestMigration00014PartitionsExistingStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sqlDB, provider := migrator(t)

	_, err := provider.UpTo(ctx, 13)
	require.NoError(t, err)
	_, err = sqlDB.ExecContext(ctx, `INSERT INTO stats (event_id, site_id, url, checked_at, duration_ms, topic_name, kafka_partition, kafka_offset, region)
		VALUES ('00000000-0000-0000-0000-000000000001', 1, 'http://a', '2026-03-01 23:59:59+00', 5, 't', 0, 1, 'eu'),
		       ('00000000-0000-0000-0000-000000000002', 1, 'http://a', '2026-03-02 00:00:00+00', 6, 't', 0, 2, NULL),
		       ('00000000-0000-0000-0000-000000000003', 2, 'http://b', '2026-03-04 12:00:00+00', 7, 't', 0, 3, 'us')`)
	require.NoError(t, err)
	count := func(query string) (n int) {
		t.Helper()
		require.NoError(t, sqlDB.QueryRowContext(ctx, query).Scan(&n))
		return n
	}

	_, err = provider.UpTo(ctx, 14)
	require.NoError(t, err)
	require.Equal(t, 1, count("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'stats'::regclass"), "stats is partitioned")
	require.Equal(t, 3, count("SELECT count(*) FROM stats"))
	require.Equal(t, 0, count(`SELECT count(*) FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
		WHERE p.pronamespace = current_schema()::regnamespace AND p.proname LIKE 'stats_partition%' AND a.grantee = 0`),
		"PUBLIC may not create or drop partitions (the functions are SECURITY DEFINER)")
	// A partition for each day that had rows, each holding that day's rows.
	require.Equal(t, 1, count("SELECT count(*) FROM stats_20260301"))
	require.Equal(t, 1, count("SELECT count(*) FROM stats_20260302"))
	require.Equal(t, 1, count("SELECT count(*) FROM stats_20260304"))
	require.Equal(t, 0, count("SELECT count(*) FROM stats_default"))
	require.Equal(t, 3, count("SELECT max(id) FROM stats"), "ids are kept")
	require.Equal(t, 4, count(`INSERT INTO stats (event_id, site_id, url, checked_at, duration_ms, topic_name, kafka_partition, kafka_offset)
		VALUES (gen_random_uuid(), 3, 'http://c', '2031-01-01', 1, 't', 0, 4) RETURNING id`), "new ids follow the old ones")
	require.Equal(t, 1, count("SELECT count(*) FROM stats_default"), "a check outside every partition lands in the default one")

	_, err = provider.DownTo(ctx, 13)
	require.NoError(t, err)
	require.Equal(t, 0, count("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'stats'::regclass"))
	require.Equal(t, 4, count("SELECT count(*) FROM stats"))
	require.Equal(t, 1, count("SELECT count(*) FROM stats WHERE region = 'eu' AND checked_at = '2026-03-01 23:59:59+00'"))
	require.Equal(t, 5, count(`INSERT INTO stats (event_id, site_id, url, checked_at, duration_ms, topic_name, kafka_partition, kafka_offset)
		VALUES (gen_random_uuid(), 3, 'http://c', now(), 1, 't', 0, 5) RETURNING id`))
}
