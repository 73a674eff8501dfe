// Package store is the monitor's SQL: the sites it checks, and the outbox
// rows announcing each check.
package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

var (
	//go:embed insert_site.sql
	insertSiteSQL string
	//go:embed list_sites.sql
	listSitesSQL string
	//go:embed delete_site.sql
	deleteSiteSQL string
)

// ErrNotFound is returned for a site id that does not exist.
var ErrNotFound = errors.New("not found")

// Store reads and writes the monitor's tables.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store using pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// AddSite validates s and inserts it, returning it with its id.
func (st *Store) AddSite(ctx context.Context, s site.Site) (site.Site, error) {
	s = s.WithDefaults()
	if err := s.Validate(); err != nil {
		return site.Site{}, err
	}
	err := st.pool.QueryRow(ctx, insertSiteSQL, s.URL, s.Method, s.Regex,
		s.Interval.Milliseconds(), s.Timeout.Milliseconds(), s.Topic, s.Enabled).Scan(&s.ID, &s.Updated)
	if err != nil {
		return site.Site{}, fmt.Errorf("adding site: %w", err)
	}
	return s, nil
}

// Sites lists the sites, only the enabled ones if enabledOnly.
func (st *Store) Sites(ctx context.Context, enabledOnly bool) ([]site.Site, error) {
	rows, err := st.pool.Query(ctx, listSitesSQL, enabledOnly)
	if err != nil {
		return nil, fmt.Errorf("listing sites: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (site.Site, error) {
		var s site.Site
		var intervalMS, timeoutMS int64
		err := row.Scan(&s.ID, &s.URL, &s.Method, &s.Regex, &intervalMS, &timeoutMS, &s.Topic, &s.Enabled, &s.Updated)
		s.Interval, s.Timeout = time.Duration(intervalMS)*time.Millisecond, time.Duration(timeoutMS)*time.Millisecond
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing sites: %w", err)
	}
	return out, nil
}

// RemoveSite deletes the site with id.
func (st *Store) RemoveSite(ctx context.Context, id int64) error {
	tag, err := st.pool.Exec(ctx, deleteSiteSQL, id)
	if err != nil {
		return fmt.Errorf("removing site %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("site %d: %w", id, ErrNotFound)
	}
	return nil
}

// WriteOutbox writes msgs in one transaction.
func (st *Store) WriteOutbox(ctx context.Context, msgs []outbox.Message) error {
	return pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		return outbox.Write(ctx, tx, msgs...)
	})
}
