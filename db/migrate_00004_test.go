package db_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// 00004 turns a site's single regex into its must-match list and back.
func TestMigration00004KeepsRegexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sqlDB, provider := migrator(t)

	_, err := provider.UpTo(ctx, 3)
	require.NoError(t, err)
	_, err = sqlDB.ExecContext(ctx, "INSERT INTO sites (url, regex) VALUES ('http://a', 'ok|up'), ('http://b', NULL)")
	require.NoError(t, err)

	_, err = provider.UpTo(ctx, 4)
	require.NoError(t, err)
	var a, b string
	require.NoError(t, sqlDB.QueryRowContext(ctx, "SELECT must_match::text FROM sites WHERE url = 'http://a'").Scan(&a))
	require.NoError(t, sqlDB.QueryRowContext(ctx, "SELECT must_match::text FROM sites WHERE url = 'http://b'").Scan(&b))
	require.Equal(t, `{ok|up}`, a)
	require.Equal(t, `{}`, b)

	_, err = provider.DownTo(ctx, 3)
	require.NoError(t, err)
	var regex *string
	require.NoError(t, sqlDB.QueryRowContext(ctx, "SELECT regex FROM sites WHERE url = 'http://a'").Scan(&regex))
	require.Equal(t, "ok|up", *regex)
	require.NoError(t, sqlDB.QueryRowContext(ctx, "SELECT regex FROM sites WHERE url = 'http://b'").Scan(&regex))
	require.Nil(t, regex)
}
