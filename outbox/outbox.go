package outbox

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DDL creates the default outbox table (named "outbox"), partitioned by id
// ranges, with its first partitions, the functions that keep them
// (outbox_extend, outbox_drop; grant your relay's role EXECUTE on them) and
// its notify trigger; it is idempotent, and converts a table of the
// earlier, unpartitioned layout in place (CALL outbox_partition).
//
//go:embed outbox.sql
var DDL string

// Lanes is the number of lanes of an outbox table: a row's lane is a hash
// of its key (or its id, without a key) modulo Lanes, in the generated
// column lane, and the relay leases lanes to its replicas.
const Lanes = 64

//go:embed insert.sql
var insertSQL string

// Message is one record to publish.
type Message struct {
	// EventID identifies the message end to end (Kafka header ce_id, the
	// consumer's dedupe key). Left empty, Write assigns a time-ordered UUIDv7.
	EventID string
	// Topic is the Kafka topic the relay produces the message to.
	Topic string
	// Key is the Kafka message key; messages with the same key keep their order.
	Key []byte
	// Payload is the message value, passed through unchanged.
	Payload []byte
	// Headers are added to the Kafka message as written.
	Headers map[string]string
}

// ErrInvalidMessage is wrapped by every validation error Write returns.
var ErrInvalidMessage = errors.New("invalid outbox message")

// Execer is what Write needs of a transaction: pgx.Tx satisfies it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Writer writes messages to one outbox table.
type Writer struct {
	insert string
}

// NewWriter returns a Writer for the given table, optionally schema-qualified
// ("billing.outbox"). The name is quoted, so any identifier is safe.
func NewWriter(table string) (*Writer, error) {
	ident, err := QuoteTable(table)
	if err != nil {
		return nil, err
	}
	return &Writer{insert: strings.ReplaceAll(insertSQL, "{{table}}", ident)}, nil
}

var defaultWriter = must(NewWriter("outbox"))

// Write adds msgs to the table "outbox" within tx. See Writer.Write.
func Write(ctx context.Context, tx Execer, msgs ...Message) error {
	return defaultWriter.Write(ctx, tx, msgs...)
}

// Write validates msgs and inserts them in one statement within tx. Nothing
// is written if any message is invalid. Call it inside the transaction that
// makes the change the messages announce; the relay sees the rows only after
// that transaction commits.
func (w *Writer) Write(ctx context.Context, tx Execer, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, len(msgs))
	topics := make([]string, len(msgs))
	keys := make([][]byte, len(msgs))
	payloads := make([][]byte, len(msgs))
	headers := make([]string, len(msgs))
	for i, m := range msgs {
		if err := m.validate(); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if m.EventID == "" {
			id, err := uuid.NewV7()
			if err != nil {
				return fmt.Errorf("generating event id: %w", err)
			}
			m.EventID = id.String()
		}
		h := m.Headers
		if h == nil {
			h = map[string]string{}
		}
		hj, err := json.Marshal(h)
		if err != nil {
			return fmt.Errorf("message %d: encoding headers: %w", i, err)
		}
		ids[i], topics[i], keys[i], payloads[i], headers[i] = m.EventID, m.Topic, m.Key, m.Payload, string(hj)
		if payloads[i] == nil {
			payloads[i] = []byte{}
		}
	}
	if _, err := tx.Exec(ctx, w.insert, ids, topics, keys, payloads, headers); err != nil {
		return fmt.Errorf("inserting %d outbox rows: %w", len(msgs), err)
	}
	return nil
}

func (m Message) validate() error {
	if err := ValidateTopic(m.Topic); err != nil {
		return err
	}
	if m.EventID != "" {
		if _, err := uuid.Parse(m.EventID); err != nil {
			return fmt.Errorf("%w: event id %q is not a UUID", ErrInvalidMessage, m.EventID)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		if err := checkHeaderText(k); err != nil {
			return fmt.Errorf("%w: header name %q: %v", ErrInvalidMessage, k, err)
		}
		if err := checkHeaderText(m.Headers[k]); err != nil {
			return fmt.Errorf("%w: header %q: value %v", ErrInvalidMessage, k, err)
		}
	}
	return nil
}

// checkHeaderText refuses what the jsonb headers column cannot carry as
// written: invalid UTF-8 (JSON would turn it into U+FFFD, so the header
// would arrive changed) and NUL (jsonb refuses \u0000, failing the whole
// insert). Binary header values need an encoding such as base64.
func checkHeaderText(s string) error {
	switch {
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8 (headers are stored as JSON text; encode binary values, e.g. base64)")
	case strings.ContainsRune(s, 0):
		return errors.New("holds a NUL character, which PostgreSQL's jsonb cannot store")
	}
	return nil
}

// ValidateTopic reports whether name is a legal Kafka topic name.
func ValidateTopic(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: topic is empty", ErrInvalidMessage)
	case len(name) > 249:
		return fmt.Errorf("%w: topic %q is longer than 249 characters", ErrInvalidMessage, name)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic %q is not allowed", ErrInvalidMessage, name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("%w: topic %q may only hold ASCII letters, digits, '.', '_' and '-'", ErrInvalidMessage, name)
		}
	}
	return nil
}

// QuoteTable quotes a table name, optionally schema-qualified, for use in SQL.
func QuoteTable(table string) (string, error) {
	parts := strings.Split(table, ".")
	if table == "" || len(parts) > 2 {
		return "", fmt.Errorf("table name %q: want \"table\" or \"schema.table\"", table)
	}
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("table name %q: empty part", table)
		}
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
