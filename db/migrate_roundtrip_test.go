package db_test

import (
	"context"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/db"
	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
)

// objects lists what the schema holds besides goose's version table:
// relations, their storage parameters (sorted: setting one again moves it
// to the end of the list), columns, constraints, triggers, functions and
// types.
func objects(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `
		SELECT c.relkind::text || ' ' || c.relname FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relname NOT LIKE 'goose_db_version%'
		UNION ALL
		SELECT 'options ' || c.relname || ' ' || (SELECT array_agg(o ORDER BY o) FROM unnest(c.reloptions) AS o)::text FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.reloptions IS NOT NULL
		UNION ALL
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name NOT LIKE 'goose_db_version%'
		UNION ALL
		SELECT 'constraint ' || conname FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND conname NOT LIKE 'goose_db_version%'
		UNION ALL
		SELECT 'trigger ' || tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
		UNION ALL
		SELECT 'f ' || p.proname FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace
		UNION ALL
		SELECT 't ' || y.typname FROM pg_type y
		WHERE y.typnamespace = current_schema()::regnamespace AND y.typtype IN ('e', 'd', 'c') AND y.typrelid = 0
		ORDER BY 1`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

// Every migration goes up, all the way down, and up again one at a time,
// as goose's own integration tests do: every Down section is run and
// undoes its Up.
func TestEveryMigrationUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := dbtest.NewSchema(t)
	cfg, err := pgx.ParseConfig(u)
	require.NoError(t, err)
	sqlDB := stdlib.OpenDB(*cfg)
	t.Cleanup(func() { _ = sqlDB.Close() })
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(ctx) })
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, db.Migrations())
	require.NoError(t, err)
	sources := provider.ListSources()
	require.NotEmpty(t, sources)

	// Up one at a time, recording what each version leaves.
	after := map[int64][]string{0: objects(t, conn)}
	for _, s := range sources {
		_, err := provider.UpByOne(ctx)
		require.NoError(t, err, "up to %d", s.Version)
		after[s.Version] = objects(t, conn)
	}
	full := objects(t, conn)
	// Down one at a time: each step leaves what the previous Up left.
	for i := len(sources) - 1; i >= 0; i-- {
		_, err := provider.Down(ctx)
		require.NoError(t, err, "down from %d", sources[i].Version)
		prev := int64(0)
		if i > 0 {
			prev = sources[i-1].Version
		}
		require.Equal(t, after[prev], objects(t, conn), "down from %d leaves what up to %d left", sources[i].Version, prev)
	}
	require.Empty(t, objects(t, conn), "all the way down: nothing of sitewatch is left")
	// And up again.
	_, err = provider.Up(ctx)
	require.NoError(t, err)
	require.Equal(t, full, objects(t, conn), "up again: the same schema")
}

// The migrated outbox table and outbox.DDL are the same table: columns,
// types, NOT NULLs, defaults, the lane expression, indexes, trigger and
// layout.
func TestMigratedOutboxIsTheDDLsOutbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	ref, err := outboxtest.ReferenceShape(ctx, pool)
	require.NoError(t, err)
	got, err := outboxtest.ReadShape(ctx, pool, "outbox")
	require.NoError(t, err)
	missing, extra := outboxtest.Diff(got, ref)
	require.Empty(t, missing, "the migrations lack what outbox.DDL has")
	require.Empty(t, extra, "the migrations have what outbox.DDL lacks")
	require.Len(t, got.Columns, len(ref.Columns))
	require.True(t, ref.Partitioned, "outbox.DDL partitions the table")
	require.True(t, got.Partitioned, "migration 00029 partitions the table")
	// Room for the publish flip in each page: in outbox.DDL's partitions,
	// and in the migrated ones, which also keep 00016's autovacuum settings.
	require.Equal(t, []string{"fillfactor=50"}, ref.Options)
	require.Contains(t, got.Options, "fillfactor=50")
}

// The migrations carry outbox.DDL's partition functions as they are: the
// newest migration that makes each one (00029 all four, 00031
// outbox_extend, 00032 outbox_drop) has it exactly as outbox.sql has it today, so the relay
// calls the same functions on sitewatch's outbox as on another team's. A
// change to them in outbox.sql needs a migration too.
func TestMigrationsHaveTheDDLsPartitionFunctions(t *testing.T) {
	files, err := fs.Glob(db.Migrations(), "*.sql")
	require.NoError(t, err)
	sort.Strings(files)
	functions := regexp.MustCompile(`(?ms)^CREATE OR REPLACE (?:FUNCTION|PROCEDURE) (outbox_(?:partitions|extend|drop|partition))\(.*?^\$\$;$`).FindAllStringSubmatch(outbox.DDL, -1)
	var names []string
	for _, f := range functions {
		names = append(names, f[1])
		newest, body := "", ""
		for _, file := range files {
			raw, err := fs.ReadFile(db.Migrations(), file)
			require.NoError(t, err)
			up, _, _ := strings.Cut(string(raw), "-- +goose Down")
			up = strings.ReplaceAll(strings.ReplaceAll(up, "-- +goose StatementBegin\n", ""), "-- +goose StatementEnd\n", "")
			if regexp.MustCompile(`(?m)^CREATE OR REPLACE (?:FUNCTION|PROCEDURE) ` + f[1] + `\(`).MatchString(up) {
				newest, body = file, up
			}
		}
		require.NotEmpty(t, newest, "a migration makes %s", f[1])
		require.True(t, strings.Contains(body, f[0]), "migration %s, the newest to make %s, has it as outbox.DDL has it", newest, f[1])
	}
	require.ElementsMatch(t, []string{"outbox_partitions", "outbox_extend", "outbox_drop", "outbox_partition"}, names)
}
