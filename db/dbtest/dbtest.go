// Package dbtest gives each test its own migrated PostgreSQL schema on the
// database named by DATABASE_URL, so integration tests run in parallel
// without seeing each other's rows.
package dbtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
)

// AdminURL returns DATABASE_URL; see outboxtest.DatabaseURL.
func AdminURL(t testing.TB) string { return outboxtest.DatabaseURL(t) }

// NewSchema creates an empty schema, dropped when the test ends, and returns
// a database URL whose search_path points at it.
func NewSchema(t testing.TB) string { return outboxtest.Schema(t) }

// New returns the URL of a fresh schema holding sitewatch's migrated tables.
func New(t testing.TB) string {
	t.Helper()
	u := NewSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := db.Migrate(ctx, u, zap.NewNop()); err != nil {
		t.Fatalf("migrating test schema: %v", err)
	}
	return u
}

// Pool opens a connection pool closed when the test ends.
func Pool(t testing.TB, databaseURL string) *pgxpool.Pool { return outboxtest.Pool(t, databaseURL) }

// WithSearchPath returns databaseURL with its search_path set to schema.
func WithSearchPath(databaseURL, schema string) string {
	return outboxtest.WithSearchPath(databaseURL, schema)
}
