package db_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"
)

// 00029 makes the populated outbox partitioned in place and its Down makes
// it one table again: every row, flag, retry and parked row as it was,
// and ids go on from where they were.
func TestMigration00029PartitionsTheOutboxInPlaceAndBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sqlDB, provider := migrator(t)
	_, err := provider.UpTo(ctx, 28)
	require.NoError(t, err)
	_, err = sqlDB.ExecContext(ctx, `
		INSERT INTO outbox (event_id, topic_name, msg_key, payload) SELECT gen_random_uuid(), 't', convert_to(i::text, 'UTF8'), 'x'
		FROM generate_series(1, 10) i;
		UPDATE outbox SET published = true, published_at = now(), attempts = 1 WHERE id <= 5;
		UPDATE outbox SET attempts = 2, last_error = 'too large', next_attempt_at = now() + interval '1 hour' WHERE id = 6;
		UPDATE outbox SET attempts = 10, last_error = 'too large', parked_at = now() WHERE id = 7`)
	require.NoError(t, err)
	rows := func() []string {
		t.Helper()
		r, err := sqlDB.QueryContext(ctx, `SELECT format('%s %s %s %s %s %s %s %s %s', id, event_id, lane, published, published_at IS NOT NULL,
			attempts, last_error, next_attempt_at IS NOT NULL, parked_at IS NOT NULL) FROM outbox ORDER BY id`)
		require.NoError(t, err)
		defer r.Close()
		var out []string
		for r.Next() {
			var s string
			require.NoError(t, r.Scan(&s))
			out = append(out, s)
		}
		require.NoError(t, r.Err())
		return out
	}
	before := rows()
	require.Len(t, before, 10)

	_, err = provider.UpByOne(ctx)
	require.NoError(t, err)
	require.Equal(t, before, rows(), "up: every row as it was")
	require.Equal(t, "p", relkind(t, sqlDB, "outbox"))
	var first string
	require.NoError(t, sqlDB.QueryRowContext(ctx, "SELECT part::text FROM outbox_partitions('outbox') LIMIT 1").Scan(&first))
	require.Equal(t, "outbox_p0", first, "the table's heap is the first partition")
	var id int64
	require.NoError(t, sqlDB.QueryRowContext(ctx, "INSERT INTO outbox (event_id, topic_name, payload) VALUES (gen_random_uuid(), 't', 'y') RETURNING id").Scan(&id))
	require.EqualValues(t, 11, id, "ids go on")
	after := rows()

	_, err = provider.Down(ctx)
	require.NoError(t, err)
	require.Equal(t, after, rows(), "down: every row as it was")
	require.Equal(t, "r", relkind(t, sqlDB, "outbox"))
	require.NoError(t, sqlDB.QueryRowContext(ctx, "INSERT INTO outbox (event_id, topic_name, payload) VALUES (gen_random_uuid(), 't', 'z') RETURNING id").Scan(&id))
	require.EqualValues(t, 12, id, "ids go on")
}

func relkind(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	var k string
	require.NoError(t, db.QueryRowContext(context.Background(), "SELECT relkind::text FROM pg_class WHERE oid = $1::regclass", table).Scan(&k))
	return k
}
