// Package outboxtest is the conformance kit for an outbox table: run it in
// your own tests, against your own table, to prove the sitewatch relay can
// serve it — in the spirit of watermill's shared pub/sub test suite.
//
//	func TestOurOutbox(t *testing.T) {
//		outboxtest.Run(t, outboxtest.Config{
//			DatabaseURL: os.Getenv("DATABASE_URL"),
//			Table:       "billing.outbox",
//			Topic:       "billing.conformance",
//			// Optional: a relay running against the table (the binary or
//			// its container) and a way to read the topic back.
//			Published: func(ctx context.Context, ids []string) ([]outboxtest.Message, error) { ... },
//		})
//	}
//
// Run checks the table's columns, types, NOT NULLs, indexes and notify
// trigger against outbox.DDL (Check, usable on its own), then writes with
// the outbox package: a rolled-back write leaves nothing, a committed one
// is there with its lane, the trigger notifies the table's channel. Given
// Published, it also makes the round trip: written rows must come back from
// Kafka with their event id, key, payload and headers.
//
// The package also gives tests a schema of their own (Schema), which is how
// sitewatch's own tests use it.
package outboxtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/outbox"
)

// Message is a message as the relay published it.
type Message struct {
	EventID string // the ce_id header
	Key     []byte
	Payload []byte
	Headers map[string]string
}

// Config says which table to check and how to see what the relay published.
type Config struct {
	DatabaseURL string
	Table       string // "outbox" or "schema.outbox"
	Topic       string // topic of the messages Run writes (the relay must be allowed to publish to it)
	// Published, if set, returns the messages with these event ids (the
	// ce_id header) that a relay serving Table published to Topic, waiting
	// for them until ctx ends. Without it Run checks everything but the
	// round trip.
	Published func(ctx context.Context, eventIDs []string) ([]Message, error)
	// Timeout bounds each step (default 30 s).
	Timeout time.Duration
}

// Run runs the conformance suite as subtests of t.
func Run(t *testing.T, cfg Config) {
	t.Helper()
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Topic == "" {
		cfg.Topic = "outboxtest.conformance"
	}
	pool := Pool(t, cfg.DatabaseURL)
	w, err := outbox.NewWriter(cfg.Table)
	if err != nil {
		t.Fatalf("table %q: %v", cfg.Table, err)
	}
	ctxFor := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Timeout)
		t.Cleanup(cancel)
		return ctx
	}
	ident, _ := outbox.QuoteTable(cfg.Table)

	t.Run("shape", func(t *testing.T) {
		if err := Check(ctxFor(t), pool, cfg.Table); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("rolled back write leaves nothing", func(t *testing.T) {
		ctx := ctxFor(t)
		id := newEventID(t)
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(ctx, tx, outbox.Message{EventID: id, Topic: cfg.Topic, Payload: []byte("rolled back")}); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if n := countEvent(t, ctx, pool, ident, id); n != 0 {
			t.Fatalf("%d rows of a rolled-back write", n)
		}
	})

	t.Run("committed write is there with its lane", func(t *testing.T) {
		ctx := ctxFor(t)
		a, b, c := newEventID(t), newEventID(t), newEventID(t)
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return w.Write(ctx, tx, outbox.Message{EventID: a, Topic: cfg.Topic, Key: []byte("same"), Payload: []byte("1")},
				outbox.Message{EventID: b, Topic: cfg.Topic, Key: []byte("same"), Payload: []byte("2")},
				outbox.Message{EventID: c, Topic: cfg.Topic, Payload: []byte("3")})
		})
		if err != nil {
			t.Fatal(err)
		}
		lanes := map[string]int{}
		for _, id := range []string{a, b, c} {
			var lane int
			var published bool
			err := pool.QueryRow(ctx, "SELECT lane, published FROM "+ident+" WHERE event_id = $1", id).Scan(&lane, &published)
			if err != nil {
				t.Fatalf("reading the row of event %s: %v", id, err)
			}
			if lane < 0 || lane >= outbox.Lanes {
				t.Errorf("event %s: lane %d, want 0..%d", id, lane, outbox.Lanes-1)
			}
			lanes[id] = lane
		}
		if lanes[a] != lanes[b] {
			t.Errorf("two rows with one key are in lanes %d and %d: their order across relays is lost", lanes[a], lanes[b])
		}
	})

	t.Run("commit notifies the table's channel", func(t *testing.T) {
		ctx := ctxFor(t)
		conn, err := pgx.Connect(ctx, cfg.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close(context.Background()) }()
		var channel string
		if err := conn.QueryRow(ctx, channelSQL, ident).Scan(&channel); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
			t.Fatal(err)
		}
		err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return w.Write(ctx, tx, outbox.Message{Topic: cfg.Topic, Payload: []byte("notify")})
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WaitForNotification(ctx); err != nil {
			t.Fatalf("no notification on channel %q after a commit: %v", channel, err)
		}
	})

	if cfg.Published == nil {
		return
	}
	t.Run("round trip through the relay", func(t *testing.T) {
		ctx := ctxFor(t)
		want := []outbox.Message{
			{EventID: newEventID(t), Topic: cfg.Topic, Key: []byte("k1"), Payload: []byte(`{"n":1}`), Headers: map[string]string{"traceparent": "00-1"}},
			{EventID: newEventID(t), Topic: cfg.Topic, Key: []byte("k1"), Payload: []byte(`{"n":2}`)},
			{EventID: newEventID(t), Topic: cfg.Topic, Payload: []byte{0, 1, 2, 255}},
		}
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return w.Write(ctx, tx, want...) }); err != nil {
			t.Fatal(err)
		}
		got, err := cfg.Published(ctx, []string{want[0].EventID, want[1].EventID, want[2].EventID})
		if err != nil {
			t.Fatalf("reading what the relay published: %v", err)
		}
		byID := map[string]Message{}
		for _, m := range got {
			byID[m.EventID] = m
		}
		for i, w := range want {
			m, ok := byID[w.EventID]
			if !ok {
				t.Errorf("message %d (event %s) was not published", i, w.EventID)
				continue
			}
			if string(m.Key) != string(w.Key) || string(m.Payload) != string(w.Payload) {
				t.Errorf("message %d: key %q payload %q, want key %q payload %q", i, m.Key, m.Payload, w.Key, w.Payload)
			}
			for k, v := range w.Headers {
				if m.Headers[k] != v {
					t.Errorf("message %d: header %s = %q, want %q", i, k, m.Headers[k], v)
				}
			}
		}
		var pending int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+ident+" WHERE event_id = ANY($1::uuid[]) AND NOT published",
			[]string{want[0].EventID, want[1].EventID, want[2].EventID}).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending != 0 {
			t.Errorf("%d published rows not flipped to published", pending)
		}
	})
}

func newEventID(t *testing.T) string {
	t.Helper()
	return uuid.NewString()
}

func countEvent(t *testing.T, ctx context.Context, pool *pgxpool.Pool, ident, id string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+ident+" WHERE event_id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// DatabaseURL returns DATABASE_URL. Integration tests are skipped under
// `go test -short`; otherwise a missing DATABASE_URL fails the test: a
// silently skipped integration test proves nothing.
func DatabaseURL(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	u := os.Getenv("DATABASE_URL")
	if u == "" {
		t.Fatal("DATABASE_URL is not set: run `make test`, which starts PostgreSQL and Kafka, or set it yourself")
	}
	return u
}

// Schema creates an empty schema on DATABASE_URL's database, dropped when
// the test ends, and returns a URL whose search_path points at it.
func Schema(t testing.TB) string {
	t.Helper()
	return WithSearchPath(DatabaseURL(t), SchemaWith(t, ""))
}

// SchemaWith creates a schema on DATABASE_URL's database, dropped (with
// all it holds) when the test ends, runs ddl with its search_path set to
// it, and returns its name: another team's table beside the test's own.
func SchemaWith(t testing.TB, ddl string) string {
	t.Helper()
	admin := DatabaseURL(t)
	schema := "t_" + randomHex(6)
	exec := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("connecting to %s: %w", redact(admin), err)
		}
		defer func() { _ = conn.Close(ctx) }()
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("creating schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		if err := exec("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Logf("dropping schema %s: %v", schema, err)
		}
	})
	if ddl != "" {
		if err := exec("SET search_path = " + schema + "; " + ddl); err != nil {
			t.Fatalf("creating the tables of schema %s: %v", schema, err)
		}
	}
	return schema
}

// Pool opens a connection pool closed when the test ends.
func Pool(t testing.TB, databaseURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), databaseURL)
	if err != nil {
		t.Fatalf("opening pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// WithSearchPath returns databaseURL with its search_path set to schema; it
// accepts both URL and keyword/value connection strings.
func WithSearchPath(databaseURL, schema string) string {
	if strings.HasPrefix(databaseURL, "postgres://") || strings.HasPrefix(databaseURL, "postgresql://") {
		u, err := url.Parse(databaseURL)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return databaseURL + " search_path=" + schema
}

func redact(databaseURL string) string {
	if u, err := url.Parse(databaseURL); err == nil && u.User != nil {
		return u.Redacted()
	}
	return "DATABASE_URL"
}
