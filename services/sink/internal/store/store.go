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

// Insert writes recs in one statement and returns how many rows were new;
// records whose event id is already stored are skipped.
func (s *Store) Insert(ctx context.Context, recs []Record) (int64, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	n := len(recs)
	var (
		ids        = make([]string, n)
		siteIDs    = make([]int64, n)
		urls       = make([]string, n)
		checkedAt  = make([]any, n)
		statuses   = make([]*int32, n)
		durations  = make([]float64, n)
		regexes    = make([]*string, n)
		matched    = make([]*bool, n)
		classes    = make([]*string, n)
		errTexts   = make([]*string, n)
		topics     = make([]string, n)
		partitions = make([]int32, n)
		offsets    = make([]int64, n)
		versions   = make([]int16, n)
		regexRes   = make([][]byte, n)
		dns        = make([]*float64, n)
		connect    = make([]*float64, n)
		tlsMS      = make([]*float64, n)
		ttfb       = make([]*float64, n)
		transfer   = make([]*float64, n)
		bodyBytes  = make([]*int64, n)
		truncated  = make([]*bool, n)
		redirects  = make([]*int32, n)
		finalURLs  = make([]*string, n)
		tlsExpiry  = make([]*time.Time, n)
		chainExp   = make([]*time.Time, n)
		remoteIPs  = make([]*string, n)
	)
	for i, r := range recs {
		ids[i], siteIDs[i], urls[i], checkedAt[i] = r.EventID, r.SiteID, r.URL, r.CheckedAt
		if r.StatusCode != 0 {
			code := int32(r.StatusCode)
			statuses[i] = &code
		}
		durations[i] = r.DurationMS
		regexes[i], matched[i] = nonEmpty(r.Regex), r.RegexMatched
		classes[i], errTexts[i] = nonEmpty(r.ErrorClass), nonEmpty(r.Error)
		topics[i], partitions[i], offsets[i] = r.Topic, r.Partition, r.Offset
		versions[i] = int16(r.SchemaVersion)
		if len(r.Regexes) > 0 {
			b, err := json.Marshal(r.Regexes)
			if err != nil {
				return 0, fmt.Errorf("encoding regex results of event %s: %w", r.EventID, err)
			}
			regexRes[i] = b
		}
		finalURLs[i], remoteIPs[i] = nonEmpty(r.FinalURL), nonEmpty(r.RemoteIP)
		tlsExpiry[i], chainExp[i] = r.TLSExpiry, r.TLSChainExpiry
		if r.SchemaVersion >= 2 { // version 1 had none of these: NULL, not 0
			dns[i], connect[i], tlsMS[i], ttfb[i], transfer[i] = &r.DNSMS, &r.ConnectMS, &r.TLSMS, &r.TTFBMS, &r.TransferMS
			redirectsN := int32(r.Redirects)
			bodyBytes[i], truncated[i], redirects[i] = &r.BodyBytes, &r.Truncated, &redirectsN
		}
	}
	tag, err := s.pool.Exec(ctx, insertStatsSQL, ids, siteIDs, urls, checkedAt, statuses, durations,
		regexes, matched, classes, errTexts, topics, partitions, offsets,
		versions, regexRes, dns, connect, tlsMS, ttfb, transfer,
		bodyBytes, truncated, redirects, finalURLs, tlsExpiry, chainExp, remoteIPs)
	if err != nil {
		return 0, fmt.Errorf("inserting %d stats rows: %w", n, err)
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
