package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"go.uber.org/zap"
)

//go:embed migrations/*.sql
var embedded embed.FS

// grantsSQL gives each service's role its privileges (see the file).
//
//go:embed grants.sql
var grantsSQL string

// Roles are the database roles of the services, one each, granted exactly
// what their service needs by every Migrate; the owner role that migrates
// owns the tables.
var Roles = []string{"sitewatch_monitor", "sitewatch_relay", "sitewatch_sink"}

// Migrations returns the embedded migration files.
func Migrations() fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}

// Migrate applies every pending migration to the database at databaseURL.
// A PostgreSQL advisory lock makes concurrent callers (several containers
// starting at once) safe: one migrates, the others wait and find nothing to do.
func Migrate(ctx context.Context, databaseURL string, logger *zap.Logger) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("parsing database URL: %w", err)
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer func() { _ = sqlDB.Close() }()
	return migrate(ctx, sqlDB, logger)
}

func migrate(ctx context.Context, sqlDB *sql.DB, logger *zap.Logger) error {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("creating migration lock: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, Migrations(),
		goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("creating migration provider: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	for _, r := range results {
		logger.Info("migration applied",
			zap.Int64("version", r.Source.Version),
			zap.String("file", r.Source.Path),
			zap.Duration("took", r.Duration))
	}
	version, err := provider.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	logger.Info("schema up to date", zap.Int64("version", version))
	if err := grant(ctx, sqlDB); err != nil {
		return fmt.Errorf("granting the services' roles their privileges: %w", err)
	}
	return nil
}

// grant applies grants.sql under a lock, so containers migrating at once do
// not update the same catalog rows together.
func grant(ctx context.Context, sqlDB *sql.DB) error {
	tx, err := sqlDB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtextextended('sitewatch grants', 0))"); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, grantsSQL); err != nil {
		return err
	}
	return tx.Commit()
}
