package db_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/db/dbtest"
)

func TestMigrateCreatesTablesAndIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := dbtest.NewSchema(t)

	require.NoError(t, db.Migrate(ctx, u, zap.NewNop()))
	require.NoError(t, db.Migrate(ctx, u, zap.NewNop()), "a second run must find nothing to do")

	conn, err := pgx.Connect(ctx, u)
	require.NoError(t, err)
	defer func() { _ = conn.Close(ctx) }()
	for _, table := range []string{"sites", "outbox", "stats"} {
		var n int
		require.NoError(t, conn.QueryRow(ctx,
			"SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
			table).Scan(&n))
		require.Equal(t, 1, n, "table %s", table)
	}
}

func TestMigrateRejectsBadURL(t *testing.T) {
	t.Parallel()
	err := db.Migrate(context.Background(), "postgres://%zz", zap.NewNop())
	require.ErrorContains(t, err, "parsing database URL")
}
