package db_test

import (
	"database/sql"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/db/dbtest"
)

// migrator opens a new schema of its own and returns it with a goose
// provider of the embedded migrations, for a test that migrates it step by
// step.
func migrator(t *testing.T) (*sql.DB, *goose.Provider) {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbtest.NewSchema(t))
	require.NoError(t, err)
	sqlDB := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = sqlDB.Close() })
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, db.Migrations())
	require.NoError(t, err)
	return sqlDB, provider
}
