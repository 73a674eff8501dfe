package db_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// 00019's Down adds the 1-minute rollups not folded yet to their hours and
// days, which is what the sinks before folding read alone; the minutes
// folded already are not added again.
func TestMigration00019DownAddsTheMinutesNotFolded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sqlDB, provider := migrator(t)
	_, err := provider.UpTo(ctx, 19)
	require.NoError(t, err)

	// Folded up to 10:30. The hour 10:00 holds the folded minute 10:10 (2
	// checks); minutes 10:30 (1 check, histogram {0,1}) and 10:45 (3
	// checks, {1,1,1}) and 11:05 (1 check, {1}) are not folded yet; the day
	// holds 10:10 as well.
	_, err = sqlDB.ExecContext(ctx, `
		UPDATE rollup_fold SET folded_to = '2026-11-24 10:30:00+00';
		INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum, histogram,
			phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum) VALUES
		(60, 1, 'eu', '2026-11-24 10:10+00', 2, 1, 20, '{2}', 2, 2, 2, 2, 2, 2),
		(3600, 1, 'eu', '2026-11-24 10:00+00', 2, 1, 20, '{2}', 2, 2, 2, 2, 2, 2),
		(86400, 1, 'eu', '2026-11-24 00:00+00', 2, 1, 20, '{2}', 2, 2, 2, 2, 2, 2),
		(60, 1, 'eu', '2026-11-24 10:30+00', 1, 0, 5, '{0,1}', 1, 1, 1, 1, 1, 1),
		(60, 1, 'eu', '2026-11-24 10:45+00', 3, 3, 30, '{1,1,1}', 0, 0, 0, 0, 0, 0),
		(60, 1, 'eu', '2026-11-24 11:05+00', 1, 0, 7, '{1}', 1, 0.5, 0, 0, 0, 0)`)
	require.NoError(t, err)

	_, err = provider.DownTo(ctx, 18)
	require.NoError(t, err)
	bucket := func(width int, start string) (checks, failures int, duration, dns float64, hist string) {
		t.Helper()
		require.NoError(t, sqlDB.QueryRowContext(ctx, `SELECT checks, failures, duration_sum, dns_sum, array_to_string(histogram, ',') FROM rollups
			WHERE bucket_width = $1 AND bucket_start = $2`, width, start).Scan(&checks, &failures, &duration, &dns, &hist))
		return
	}
	checks, failures, duration, dns, hist := bucket(3600, "2026-11-24 10:00+00")
	require.Equal(t, []any{6, 4, 55.0, 3.0, "3,2,1"}, []any{checks, failures, duration, dns, hist}, "10:10 once, plus 10:30 and 10:45")
	checks, failures, duration, dns, hist = bucket(3600, "2026-11-24 11:00+00")
	require.Equal(t, []any{1, 0, 7.0, 0.5, "1"}, []any{checks, failures, duration, dns, hist}, "a new hour from 11:05")
	checks, failures, duration, dns, hist = bucket(86400, "2026-11-24 00:00+00")
	require.Equal(t, []any{7, 4, 62.0, 3.5, "4,2,1"}, []any{checks, failures, duration, dns, hist})

	_, err = provider.UpTo(ctx, 19)
	require.NoError(t, err)
	var foldedTo *string
	require.NoError(t, sqlDB.QueryRowContext(ctx, "SELECT folded_to::text FROM rollup_fold").Scan(&foldedTo))
	require.Nil(t, foldedTo, "up again: not folding until the sink starts it")
}
