package outbox_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/outbox/outboxtest"
)

func TestWriteInsertsRowsInTheCallersTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := outboxtest.Pool(t, outboxtest.Schema(t))
	_, err := pool.Exec(ctx, outbox.DDL)
	require.NoError(t, err)

	// Rolled back: nothing is left behind.
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, outbox.Write(ctx, tx, outbox.Message{Topic: "orders", Payload: []byte("x")}))
	require.NoError(t, tx.Rollback(ctx))

	// Committed: both rows, with fields as written.
	tx, err = pool.Begin(ctx)
	require.NoError(t, err)
	require.NoError(t, outbox.Write(ctx, tx,
		outbox.Message{Topic: "orders", Key: []byte("k1"), Payload: []byte(`{"a":1}`), Headers: map[string]string{"traceparent": "00-abc"}},
		outbox.Message{EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789abc", Topic: "orders.v2"},
	))
	require.NoError(t, tx.Commit(ctx))

	rows, err := pool.Query(ctx, "SELECT event_id::text, topic_name, msg_key, payload, headers->>'traceparent', published FROM outbox ORDER BY id")
	require.NoError(t, err)
	type row struct {
		ID, Topic    string
		Key, Payload []byte
		Trace        *string
		Published    bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Len(t, got[0].ID, 36, "an event id is generated")
	require.Equal(t, "orders", got[0].Topic)
	require.Equal(t, []byte("k1"), got[0].Key)
	require.Equal(t, []byte(`{"a":1}`), got[0].Payload)
	require.Equal(t, "00-abc", *got[0].Trace)
	require.False(t, got[0].Published)
	require.Equal(t, "0191c3a5-7b1e-7c3d-8e2f-123456789abc", got[1].ID)
	require.Nil(t, got[1].Key)
	require.Equal(t, []byte{}, got[1].Payload)
}

func TestWriteRejectsInvalidMessagesAndWritesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := outboxtest.Pool(t, outboxtest.Schema(t))
	_, err := pool.Exec(ctx, outbox.DDL)
	require.NoError(t, err)

	for name, tc := range map[string]struct {
		msg  outbox.Message
		want string
	}{
		"empty topic":  {outbox.Message{}, "topic is empty"},
		"bad topic":    {outbox.Message{Topic: "a b"}, `topic "a b" may only hold`},
		"bad event id": {outbox.Message{Topic: "t", EventID: "nope"}, `event id "nope" is not a UUID`},
	} {
		tx, err := pool.Begin(ctx)
		require.NoError(t, err)
		err = outbox.Write(ctx, tx, outbox.Message{Topic: "good"}, tc.msg)
		require.ErrorIs(t, err, outbox.ErrInvalidMessage, name)
		require.ErrorContains(t, err, tc.want, name)
		require.NoError(t, tx.Commit(ctx))
	}
	var n int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n))
	require.Zero(t, n, "a batch with one invalid message writes nothing")
}

func TestNewWriterQuotesTableNames(t *testing.T) {
	t.Parallel()
	_, err := outbox.NewWriter("a.b.c")
	require.ErrorContains(t, err, `want "table" or "schema.table"`)
	_, err = outbox.NewWriter("")
	require.Error(t, err)
	w, err := outbox.NewWriter(`odd"name`)
	require.NoError(t, err)
	require.NotNil(t, w)
}

// The lane column and Lanes agree: every row lands in 0..Lanes-1, all
// lanes are used, and one key always lands in one lane.
func TestLanesMatchTheDDL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := outboxtest.Pool(t, outboxtest.Schema(t))
	_, err := pool.Exec(ctx, outbox.DDL)
	require.NoError(t, err)
	var msgs []outbox.Message
	for i := range 40 * outbox.Lanes {
		m := outbox.Message{Topic: "t"}
		if i%2 == 0 {
			m.Key = []byte(fmt.Sprintf("key-%d", i%(10*outbox.Lanes)))
		}
		msgs = append(msgs, m)
	}
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return outbox.Write(ctx, tx, msgs...) }))
	var lo, hi, distinct, keysInTwoLanes int
	require.NoError(t, pool.QueryRow(ctx, `SELECT min(lane), max(lane), count(DISTINCT lane),
		(SELECT count(*) FROM (SELECT msg_key FROM outbox WHERE msg_key IS NOT NULL GROUP BY msg_key HAVING count(DISTINCT lane) > 1) k)
		FROM outbox`).Scan(&lo, &hi, &distinct, &keysInTwoLanes))
	require.Equal(t, 0, lo)
	require.Equal(t, outbox.Lanes-1, hi)
	require.Equal(t, outbox.Lanes, distinct)
	require.Zero(t, keysInTwoLanes)
}

// failExec is a transaction no statement may reach.
type failExec struct{ t *testing.T }

func (f failExec) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	f.t.Fatal("Write sent a statement for an invalid message")
	return pgconn.CommandTag{}, nil
}

// Headers are stored as jsonb text: what it cannot carry as written is
// refused before anything is sent, naming the header (found by the relay's
// FuzzHeaders: invalid UTF-8 arrived as U+FFFD, a NUL failed the insert).
func TestWriteRefusesHeadersJSONBCannotCarry(t *testing.T) {
	for name, h := range map[string]map[string]string{
		"invalid UTF-8 value": {"trace": "a\xffb"},
		"invalid UTF-8 name":  {"tr\xfface": "x"},
		"NUL value":           {"trace": "a\x00b"},
		"NUL name":            {"tr\x00ace": "x"},
	} {
		err := outbox.Write(context.Background(), failExec{t}, outbox.Message{Topic: "orders", Headers: h})
		require.ErrorIs(t, err, outbox.ErrInvalidMessage, name)
		require.ErrorContains(t, err, "header", name)
	}
}
