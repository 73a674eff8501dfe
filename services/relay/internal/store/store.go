// Package store is the relay's SQL against one outbox table. It knows the
// outbox columns and nothing about what the messages mean.
package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sitewatch/sitewatch/outbox"
)

var (
	//go:embed claim.sql
	claimSQL string
	//go:embed mark_published.sql
	markPublishedSQL string
	//go:embed mark_failed.sql
	markFailedSQL string
	//go:embed pending.sql
	pendingSQL string
)

// Row is one outbox row claimed for publishing.
type Row struct {
	ID        int64
	EventID   string
	Topic     string
	Key       []byte
	Payload   []byte
	Headers   map[string]string
	CreatedAt time.Time
}

// Store runs the relay's queries against one table.
type Store struct {
	claim, markPublished, markFailed, pending string
}

// New returns a Store for table ("outbox" or "schema.outbox").
func New(table string) (*Store, error) {
	ident, err := outbox.QuoteTable(table)
	if err != nil {
		return nil, err
	}
	sub := func(q string) string { return strings.ReplaceAll(q, "{{table}}", ident) }
	return &Store{claim: sub(claimSQL), markPublished: sub(markPublishedSQL),
		markFailed: sub(markFailedSQL), pending: sub(pendingSQL)}, nil
}

// Claim locks up to limit unpublished rows, oldest first, until tx ends.
func (s *Store) Claim(ctx context.Context, tx pgx.Tx, limit int) ([]Row, error) {
	rows, err := tx.Query(ctx, s.claim, limit)
	if err != nil {
		return nil, fmt.Errorf("claiming outbox batch: %w", err)
	}
	var out []Row
	for rows.Next() {
		var r Row
		var headers []byte
		if err := rows.Scan(&r.ID, &r.EventID, &r.Topic, &r.Key, &r.Payload, &headers, &r.CreatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading outbox row: %w", err)
		}
		if err := json.Unmarshal(headers, &r.Headers); err != nil {
			// Headers that are not a JSON object of strings cannot be sent
			// as written; say so on the row instead of stalling the batch.
			r.Headers = map[string]string{"sitewatch-invalid-headers": err.Error()}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claiming outbox batch: %w", err)
	}
	return out, nil
}

// MarkPublished flips the rows Kafka acknowledged.
func (s *Store) MarkPublished(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, s.markPublished, ids); err != nil {
		return fmt.Errorf("marking %d outbox rows published: %w", len(ids), err)
	}
	return nil
}

// MarkFailed records the error of each row Kafka refused; the rows stay
// unpublished and are tried again.
func (s *Store) MarkFailed(ctx context.Context, tx pgx.Tx, ids []int64, errs []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, s.markFailed, ids, errs); err != nil {
		return fmt.Errorf("recording %d failed outbox rows: %w", len(ids), err)
	}
	return nil
}

// Querier is what Pending needs: a pool or a connection.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Pending returns the number of unpublished rows and the age of the oldest.
func (s *Store) Pending(ctx context.Context, q Querier) (int64, time.Duration, error) {
	var n int64
	var age float64
	if err := q.QueryRow(ctx, s.pending).Scan(&n, &age); err != nil {
		return 0, 0, fmt.Errorf("counting pending outbox rows: %w", err)
	}
	return n, time.Duration(age * float64(time.Second)), nil
}
