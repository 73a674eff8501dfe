package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

var (
	//go:embed save_page.sql
	savePageSQL string
	//go:embed clear_page_sites.sql
	clearPageSitesSQL string
	//go:embed set_page_sites.sql
	setPageSitesSQL string
	//go:embed missing_sites.sql
	missingSitesSQL string
	//go:embed list_pages.sql
	listPagesSQL string
	//go:embed lock_page.sql
	lockPageSQL string
	//go:embed remove_page.sql
	removePageSQL string
)

// Page is a public status page: its slug (the last part of its address),
// title, pinned announcement, and its sites in groups, in order.
type Page struct {
	Slug         string
	Title        string
	Announcement string // plain text or a small Markdown subset; "" for none
	ShowURLs     bool   // show the sites' URLs (never, unless asked)
	Groups       []PageGroup
	Updated      time.Time
}

// PageGroup is a heading of a page and its sites in order; Name "" is
// the sites under no heading.
type PageGroup struct {
	Name  string
	Sites []int64
}

// ErrPageExists is AddPage's error for a slug that is taken.
var ErrPageExists = errors.New("exists (change it with monitor pages update)")

// AddPage adds p.
func (st *Store) AddPage(ctx context.Context, p Page) error {
	return pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		isNew, err := savePage(ctx, tx, p)
		if err == nil && !isNew {
			err = fmt.Errorf("page %s: %w", p.Slug, ErrPageExists)
		}
		return err
	})
}

// Pages lists the pages, or the one of slug when it is not empty.
func (st *Store) Pages(ctx context.Context, slug string) ([]Page, error) {
	return pages(ctx, st.pool, slug)
}

// UpdatePage applies change to page slug and writes the result, in one
// transaction; an error from change writes nothing.
func (st *Store) UpdatePage(ctx context.Context, slug string, change func(*Page) error) (Page, error) {
	var p Page
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockPageSQL, slug); err != nil {
			return fmt.Errorf("locking page %s: %w", slug, err)
		}
		got, err := pages(ctx, tx, slug)
		if err != nil {
			return err
		}
		p = got[0]
		if err := change(&p); err != nil {
			return err
		}
		if p.Slug != slug {
			return fmt.Errorf("page %s: the slug cannot change (add a page, then remove this one)", slug)
		}
		_, err = savePage(ctx, tx, p)
		return err
	})
	return p, err
}

// ImportPages adds or replaces (by slug) every page, all or none.
func (st *Store) ImportPages(ctx context.Context, ps []Page) (added, replaced int, err error) {
	err = pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		added, replaced = 0, 0
		for _, p := range ps {
			isNew, err := savePage(ctx, tx, p)
			if err != nil {
				return err
			}
			if isNew {
				added++
			} else {
				replaced++
			}
		}
		return nil
	})
	return added, replaced, err
}

// RemovePage deletes page slug.
func (st *Store) RemovePage(ctx context.Context, slug string) error {
	tag, err := st.pool.Exec(ctx, removePageSQL, slug)
	if err != nil {
		return fmt.Errorf("removing page %s: %w", slug, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("page %s: %w", slug, ErrNotFound)
	}
	return nil
}

func pages(ctx context.Context, q querier, slug string) ([]Page, error) {
	var only *string
	if slug != "" {
		only = &slug
	}
	rows, err := q.Query(ctx, listPagesSQL, only)
	if err != nil {
		return nil, fmt.Errorf("listing status pages: %w", err)
	}
	var out []Page
	var p Page
	var sites []int64
	var groups []string
	_, err = pgx.ForEachRow(rows, []any{&p.Slug, &p.Title, &p.Announcement, &p.ShowURLs, &p.Updated, &sites, &groups}, func() error {
		page := p
		page.Groups = nil
		for i, id := range sites {
			if n := len(page.Groups); n == 0 || page.Groups[n-1].Name != groups[i] {
				page.Groups = append(page.Groups, PageGroup{Name: groups[i]})
			}
			g := &page.Groups[len(page.Groups)-1]
			g.Sites = append(g.Sites, id)
		}
		out = append(out, page)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing status pages: %w", err)
	}
	if slug != "" && len(out) == 0 {
		return nil, fmt.Errorf("page %s: %w", slug, ErrNotFound)
	}
	return out, nil
}

// savePage writes p and its sites in tx; it reports whether p is new. A
// site that does not exist is an error naming it.
func savePage(ctx context.Context, tx pgx.Tx, p Page) (isNew bool, err error) {
	var ids []int64
	var groups []string
	for _, g := range p.Groups {
		for _, id := range g.Sites {
			ids = append(ids, id)
			groups = append(groups, g.Name)
		}
	}
	var missing []int64
	if err := tx.QueryRow(ctx, missingSitesSQL, nonNil(ids)).Scan(&missing); err != nil {
		return false, fmt.Errorf("checking the sites of page %s: %w", p.Slug, err)
	}
	if len(missing) > 0 {
		return false, fmt.Errorf("page %s: sites %v: %w (monitor sites list shows them)", p.Slug, missing, ErrNotFound)
	}
	if err := tx.QueryRow(ctx, savePageSQL, p.Slug, p.Title, p.Announcement, p.ShowURLs).Scan(&isNew); err != nil {
		return false, fmt.Errorf("saving page %s: %w", p.Slug, err)
	}
	if _, err := tx.Exec(ctx, clearPageSitesSQL, p.Slug); err != nil {
		return false, fmt.Errorf("setting the sites of page %s: %w", p.Slug, err)
	}
	if _, err := tx.Exec(ctx, setPageSitesSQL, p.Slug, nonNil(ids), nonNil(groups)); err != nil {
		return false, fmt.Errorf("setting the sites of page %s: %w", p.Slug, err)
	}
	return isNew, nil
}
