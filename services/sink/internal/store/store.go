// Package store writes check results into the stats table.
package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/platform/checkevent"
)

//go:embed insert_stats.sql
var insertStatsSQL string

// Record is a check plus where Kafka had it.
type Record struct {
	checkevent.Check
	Topic     string
	Partition int32
	Offset    int64
}

// Store writes to the stats table.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store using pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// row is one stats row; its JSON keys are the column names of
// insert_stats.sql, so the shape is written once (a test holds the two
// together). Nil pointers are NULL.
type row struct {
	EventID        string          `json:"event_id"`
	SiteID         int64           `json:"site_id"`
	URL            string          `json:"url"`
	CheckedAt      time.Time       `json:"checked_at"`
	StatusCode     *int            `json:"status_code"`
	DurationMS     float64         `json:"duration_ms"`
	Regex          *string         `json:"regex"`
	RegexMatched   *bool           `json:"regex_matched"`
	ErrorClass     *string         `json:"error_class"`
	Error          *string         `json:"error"`
	Topic          string          `json:"topic_name"`
	Partition      int32           `json:"kafka_partition"`
	Offset         int64           `json:"kafka_offset"`
	SchemaVersion  int             `json:"schema_version"`
	Regexes        json.RawMessage `json:"regexes"`
	DNSMS          *float64        `json:"dns_ms"`
	ConnectMS      *float64        `json:"connect_ms"`
	TLSMS          *float64        `json:"tls_ms"`
	TTFBMS         *float64        `json:"ttfb_ms"`
	TransferMS     *float64        `json:"transfer_ms"`
	BodyBytes      *int64          `json:"body_bytes"`
	Truncated      *bool           `json:"truncated"`
	Redirects      *int            `json:"redirects"`
	FinalURL       *string         `json:"final_url"`
	TLSExpiry      *time.Time      `json:"tls_expiry"`
	TLSChainExpiry *time.Time      `json:"tls_chain_expiry"`
	RemoteIP       *string         `json:"remote_ip"`
	Region         *string         `json:"region"`
}

// newRow is the stats row of r.
func newRow(r Record) (row, error) {
	out := row{EventID: r.EventID, SiteID: r.SiteID, URL: r.URL, CheckedAt: r.CheckedAt, DurationMS: r.DurationMS,
		Regex: nonEmpty(r.Regex), RegexMatched: r.RegexMatched, ErrorClass: nonEmpty(r.ErrorClass), Error: nonEmpty(r.Error),
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, SchemaVersion: r.SchemaVersion,
		FinalURL: nonEmpty(r.FinalURL), TLSExpiry: r.TLSExpiry, TLSChainExpiry: r.TLSChainExpiry, RemoteIP: nonEmpty(r.RemoteIP),
		Region: nonEmpty(r.Region)}
	if r.StatusCode != 0 {
		out.StatusCode = &r.StatusCode
	}
	if len(r.Regexes) > 0 {
		b, err := json.Marshal(r.Regexes)
		if err != nil {
			return row{}, fmt.Errorf("encoding regex results of event %s: %w", r.EventID, err)
		}
		out.Regexes = b
	}
	if r.SchemaVersion >= 2 { // version 1 had none of these: NULL, not 0
		out.DNSMS, out.ConnectMS, out.TLSMS, out.TTFBMS, out.TransferMS = &r.DNSMS, &r.ConnectMS, &r.TLSMS, &r.TTFBMS, &r.TransferMS
		out.BodyBytes, out.Truncated, out.Redirects = &r.BodyBytes, &r.Truncated, &r.Redirects
	}
	return out, nil
}

// Insert writes recs in one statement and returns how many rows were new;
// records whose event id is already stored are skipped.
func (s *Store) Insert(ctx context.Context, recs []Record) (int64, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	rows := make([]row, len(recs))
	for i, r := range recs {
		var err error
		if rows[i], err = newRow(r); err != nil {
			return 0, err
		}
	}
	batch, err := json.Marshal(rows)
	if err != nil {
		return 0, fmt.Errorf("encoding %d stats rows: %w", len(rows), err)
	}
	tag, err := s.pool.Exec(ctx, insertStatsSQL, batch)
	if err != nil {
		return 0, fmt.Errorf("inserting %d stats rows: %w", len(rows), err)
	}
	return tag.RowsAffected(), nil
}

// IsPermanent reports whether err is the database refusing the data itself
// (bad encoding, value out of range, constraint), which no retry can fix,
// as opposed to the database being unreachable or busy.
func IsPermanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	class := pgErr.Code[:2]
	return class == "22" || class == "23" // data exception, integrity constraint violation
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
