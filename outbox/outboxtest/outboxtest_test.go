package outboxtest_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
)

// The suite passes on a table made with outbox.DDL, named with its schema.
func TestRunOnATableMadeWithTheDDL(t *testing.T) {
	url := outboxtest.Schema(t)
	pool := outboxtest.Pool(t, url)
	_, err := pool.Exec(context.Background(), outbox.DDL)
	require.NoError(t, err)
	var schema string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT current_schema()").Scan(&schema))
	outboxtest.Run(t, outboxtest.Config{DatabaseURL: url, Table: schema + ".outbox"})
}

// Check names every part of a broken table the relay needs.
func TestCheckNamesWhatIsWrong(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for name, tc := range map[string]struct {
		breakIt string
		want    []string
	}{
		"missing column":   {"ALTER TABLE outbox DROP COLUMN parked_at", []string{"column parked_at timestamp with time zone: missing"}},
		"wrong type":       {"ALTER TABLE outbox ALTER COLUMN attempts TYPE bigint", []string{"column attempts: want attempts integer NOT NULL DEFAULT 0, have attempts bigint NOT NULL DEFAULT 0"}},
		"nullable":         {"ALTER TABLE outbox ALTER COLUMN topic_name DROP NOT NULL", []string{"column topic_name: want topic_name text NOT NULL, have topic_name text"}},
		"no trigger":       {"DROP TRIGGER outbox_notify ON outbox", []string{"notify trigger calling outbox_notify()", "missing (the relay would only poll)"}},
		"no index":         {"ALTER TABLE outbox DROP CONSTRAINT outbox_pkey", []string{"index UNIQUE USING btree (id): missing"}},
		"no drop function": {"DROP FUNCTION outbox_drop(regclass)", []string{"function outbox_drop(part regclass): missing in the table's schema (the relay refuses the table)"}},
		"lane expression": {"ALTER TABLE outbox DROP COLUMN lane; ALTER TABLE outbox ADD COLUMN lane smallint NOT NULL GENERATED ALWAYS AS ((id % 32)::smallint) STORED",
			[]string{"column lane: want lane smallint NOT NULL GENERATED AS"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool := outboxtest.Pool(t, outboxtest.Schema(t))
			_, err := pool.Exec(ctx, outbox.DDL)
			require.NoError(t, err)
			require.NoError(t, outboxtest.Check(ctx, pool, "outbox"), "the DDL's own table passes")
			_, err = pool.Exec(ctx, tc.breakIt)
			require.NoError(t, err)
			err = outboxtest.Check(ctx, pool, "outbox")
			require.Error(t, err)
			require.Contains(t, err.Error(), "outbox table outbox cannot be served by the relay")
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

// A table of the earlier, unpartitioned layout still passes: the relay
// serves it. Diff says how to convert it; converted, it has the DDL's shape.
func TestTheEarlierLayoutPassesAndConverts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := outboxtest.Pool(t, outboxtest.Schema(t))
	_, err := pool.Exec(ctx, outboxtest.LegacyDDL)
	require.NoError(t, err)
	require.NoError(t, outboxtest.Check(ctx, pool, "outbox"))
	ref, err := outboxtest.ReferenceShape(ctx, pool)
	require.NoError(t, err)
	got, err := outboxtest.ReadShape(ctx, pool, "outbox")
	require.NoError(t, err)
	require.False(t, got.Partitioned)
	missing, extra := outboxtest.Diff(got, ref)
	require.Empty(t, missing)
	require.Contains(t, strings.Join(extra, "\n"), "CALL outbox_partition")

	_, err = pool.Exec(ctx, outbox.DDL) // applying the DDL again converts it
	require.NoError(t, err)
	got, err = outboxtest.ReadShape(ctx, pool, "outbox")
	require.NoError(t, err)
	require.True(t, got.Partitioned)
	missing, extra = outboxtest.Diff(got, ref)
	require.Empty(t, missing)
	require.Empty(t, extra)
}

// A partition function other than outbox.DDL's (a team's outbox.sql of an
// earlier sitewatch: outbox_drop before migration 00032) still lets the
// relay serve the table, and Diff says to apply outbox.sql again.
func TestAnEarlierPartitionFunctionIsNamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := outboxtest.Pool(t, outboxtest.Schema(t))
	_, err := pool.Exec(ctx, outbox.DDL)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "CREATE OR REPLACE FUNCTION outbox_drop(part regclass) RETURNS bigint LANGUAGE sql AS 'SELECT NULL::bigint'")
	require.NoError(t, err)
	require.NoError(t, outboxtest.Check(ctx, pool, "outbox"))
	missing, extra := diffOutbox(t, pool)
	require.Empty(t, missing)
	require.Equal(t, []string{"function outbox_drop(part regclass): not outbox.DDL's (of an earlier outbox.sql?): apply outbox.sql again"}, extra)
}

// A partition filled above half its page (an earlier outbox.sql's 80) is
// named: applying outbox.sql again sets every partition to 50.
func TestAFillfactorAboveHalfIsNamed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := outboxtest.Pool(t, outboxtest.Schema(t))
	_, err := pool.Exec(ctx, outbox.DDL)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `DO $$DECLARE p regclass; BEGIN
		FOR p IN SELECT part FROM outbox_partitions('outbox') LOOP
			EXECUTE format('ALTER TABLE %s SET (fillfactor = 80)', p);
		END LOOP; END$$`)
	require.NoError(t, err)
	missing, extra := diffOutbox(t, pool)
	require.Empty(t, missing)
	require.Len(t, extra, 1)
	require.Contains(t, extra[0], "storage parameter fillfactor=80: above 50")

	_, err = pool.Exec(ctx, outbox.DDL)
	require.NoError(t, err)
	missing, extra = diffOutbox(t, pool)
	require.Empty(t, missing)
	require.Empty(t, extra)
	var above int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM outbox_partitions('outbox') o JOIN pg_class c ON c.oid = o.part
		WHERE NOT 'fillfactor=50' = ANY(c.reloptions)`).Scan(&above))
	require.Zero(t, above, "every partition, the DEFAULT one too")
}

func TestExtraColumnsAreFine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := outboxtest.Pool(t, outboxtest.Schema(t))
	_, err := pool.Exec(ctx, outbox.DDL+"; ALTER TABLE outbox ADD COLUMN tenant text")
	require.NoError(t, err)
	require.NoError(t, outboxtest.Check(ctx, pool, "outbox"))
	missing, extra := diffOutbox(t, pool)
	require.Empty(t, missing)
	require.Equal(t, []string{"column tenant text"}, extra)
	require.ErrorContains(t, outboxtest.Check(ctx, pool, "nope"), "nope")
}

// A table whose "schema.table" is longer than a channel name may be still
// takes writes and notifies (on the hashed channel the relay listens to).
func TestRunOnATableWithALongName(t *testing.T) {
	url := outboxtest.Schema(t)
	pool := outboxtest.Pool(t, url)
	long := "outbox_of_a_team_whose_tables_have_long_descriptive_names" // "schema." + this > 63 bytes
	_, err := pool.Exec(context.Background(), regexp.MustCompile(`\boutbox\b`).ReplaceAllString(outbox.DDL, long))
	require.NoError(t, err)
	var schema string
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT current_schema()").Scan(&schema))
	outboxtest.Run(t, outboxtest.Config{DatabaseURL: url, Table: schema + "." + long})
}

// diffOutbox compares the table "outbox" of pool's schema with outbox.DDL.
func diffOutbox(t *testing.T, pool *pgxpool.Pool) (missing, extra []string) {
	t.Helper()
	ctx := context.Background()
	ref, err := outboxtest.ReferenceShape(ctx, pool)
	require.NoError(t, err)
	got, err := outboxtest.ReadShape(ctx, pool, "outbox")
	require.NoError(t, err)
	return outboxtest.Diff(got, ref)
}
