package relay

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/services/relay/internal/store"
)

// captureExec is a transaction that keeps the headers column Write sends.
type captureExec struct{ headers []string }

func (c *captureExec) Exec(_ context.Context, _ string, args ...any) (pgconn.CommandTag, error) {
	c.headers = args[4].([]string)
	return pgconn.CommandTag{}, nil
}

var fuzzSource = Source{Name: "fuzz", CESource: "/relay/fuzz", CEType: "outbox.message", IDHeader: "outbox_id"}

// kafkaHeaders checks the headers of the message the relay builds for row:
// no key twice, the row's headers as written, and each CloudEvents header
// the row lacks added once.
func kafkaHeaders(t *testing.T, row *store.Row) map[string]string {
	t.Helper()
	r := &Relay{src: fuzzSource}
	var buf []byte
	m := r.message(row, &buf)
	got := map[string]string{}
	for _, h := range m.Headers {
		if _, dup := got[h.Key]; dup {
			t.Fatalf("header %q twice in the Kafka message: %v", h.Key, m.Headers)
		}
		got[h.Key] = string(h.Value)
	}
	for k, v := range row.Headers {
		if got[k] != v {
			t.Fatalf("header %q: row has %q, Kafka message %q", k, v, got[k])
		}
	}
	for k, v := range map[string]string{"ce_specversion": "1.0", "ce_id": row.EventID, "ce_source": fuzzSource.CESource,
		"ce_type": fuzzSource.CEType, "outbox_id": strconv.FormatInt(row.ID, 10)} {
		if _, set := row.Headers[k]; !set && got[k] != v {
			t.Fatalf("header %q: want %q added, got %q", k, v, got[k])
		}
	}
	return got
}

// FuzzHeaders: a message's headers travel from outbox.Write through the
// headers column to the Kafka message unchanged, or Write refuses them
// (ErrInvalidMessage, naming the header). Between the two lies PostgreSQL's
// jsonb, which cannot store \u0000: Write must never send it one.
func FuzzHeaders(f *testing.F) {
	f.Add("traceparent", "00-abc", "content-type", "application/json")
	f.Add("ce_type", "com.example.order", "ce_id", "mine")
	f.Add("outbox_id", "7", "", "")
	f.Add("<a&b>", "\"quoted\"\\ \u2028 é 😀", "k", "line\nbreak\ttab")
	// Found by this target: invalid UTF-8 was replaced by U+FFFD on the
	// way (headers arrived changed), and a NUL made PostgreSQL refuse the
	// whole insert with a jsonb error instead of Write naming the header.
	f.Add("k", "bad \xff utf-8", "k2", "v")
	f.Add("nul\x00key", "v", "k", "nul \x00 value")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		in := map[string]string{k1: v1, k2: v2}
		var tx captureExec
		w, err := outbox.NewWriter("outbox")
		if err != nil {
			t.Fatal(err)
		}
		err = w.Write(context.Background(), &tx, outbox.Message{Topic: "t", Headers: in})
		if err != nil {
			if !errors.Is(err, outbox.ErrInvalidMessage) || !strings.Contains(err.Error(), "header") {
				t.Fatalf("refusal is not an invalid message naming the header: %v", err)
			}
			return
		}
		if len(tx.headers) != 1 {
			t.Fatalf("Write sent %d header values for one message", len(tx.headers))
		}
		column := tx.headers[0]
		if strings.Contains(column, `\u0000`) {
			t.Fatalf("Write sent jsonb a \\u0000, which PostgreSQL refuses: %s", column)
		}
		if !json.Valid([]byte(column)) {
			t.Fatalf("Write sent invalid JSON: %s", column)
		}
		row := &store.Row{ID: 42, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789abc", Topic: "t",
			Headers: store.DecodeHeaders([]byte(column)), CreatedAt: time.Now()}
		if _, bad := row.Headers[store.InvalidHeaders]; bad && in[store.InvalidHeaders] == "" {
			t.Fatalf("the relay cannot read the headers Write stored: %s", row.Headers[store.InvalidHeaders])
		}
		if len(row.Headers) != len(in) {
			t.Fatalf("headers %q arrive as %q", in, row.Headers)
		}
		for k, v := range in {
			if got, ok := row.Headers[k]; !ok || got != v {
				t.Fatalf("header %q = %q arrives as %q (present %v)", k, v, got, ok)
			}
		}
		kafkaHeaders(t, row)
	})
}

// FuzzDecodeHeaders: whatever a headers column holds (other writers than
// outbox.Write exist), the relay builds a message and does not stall: a
// JSON object of strings is sent as written, anything else as the one
// header outbox_invalid_headers saying why.
func FuzzDecodeHeaders(f *testing.F) {
	for _, seed := range []string{`{}`, `{"a":"b","ce_id":"x"}`, `{"a":1}`, `{"a":null}`, `null`, `[]`, `"s"`,
		`{"a":"b","a":"c"}`, `{"\u00e9":"\ud83d\ude00"}`, `{`, ``,
		// jsonb's own form, which the relay reads without encoding/json,
		// and what lies near it.
		`{"ce_type": "io.sitewatch.check.completed", "traceparent": "00-abc"}`, " {\t\"a\" :\r\n\"b\" } ",
		`{"a": "b",}`, `{"a": "b"} x`, `{"a": "b" "c": "d"}`, `{"a" "b"}`, `{"a": "b\"c"}`, "{\"a\": \"\xff\"}",
		"{\"a\": \"tab\there\"}", `{"é": "😀"}`, `{,}`, `{"a": "b"`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h := store.DecodeHeaders(raw)
		var want map[string]string
		if err := json.Unmarshal(raw, &want); err != nil {
			if len(h) != 1 || h[store.InvalidHeaders] == "" {
				t.Fatalf("headers %q that are no JSON object of strings decode to %q", raw, h)
			}
		} else if !maps.Equal(h, want) {
			t.Fatalf("headers %q decode to %q, want %q", raw, h, want)
		}
		got := kafkaHeaders(t, &store.Row{ID: 1, EventID: "e", Topic: "t", Headers: h, CreatedAt: time.Now()})
		if len(got) < len(h) {
			t.Fatalf("Kafka message has %d headers, the row %d", len(got), len(h))
		}
	})
}

// BenchmarkDecodeHeaders: reading a row's headers column, as jsonb prints
// it, is done for every row the relay claims.
func BenchmarkDecodeHeaders(b *testing.B) {
	raw := []byte(`{"ce_type": "io.sitewatch.check.completed", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`)
	b.ReportAllocs()
	for b.Loop() {
		if h := store.DecodeHeaders(raw); len(h) != 2 {
			b.Fatal(h)
		}
	}
}
