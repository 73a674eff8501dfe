-- +goose Up
-- Public status pages: what an operator publishes for customers, served
-- without a token on the sink's public listener. A page names its sites,
-- in groups, in order; everything else on it (states, uptime, incidents,
-- maintenance) is read from what the sink already keeps.
CREATE TABLE status_pages (
    slug         text        PRIMARY KEY CONSTRAINT status_pages_slug_valid CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    title        text        NOT NULL CONSTRAINT status_pages_title_valid CHECK (length(title) BETWEEN 1 AND 200 AND title !~ '[[:cntrl:]]'),
    -- Pinned on top: plain text or a small Markdown subset, escaped when shown.
    announcement text        NOT NULL DEFAULT '' CHECK (length(announcement) <= 4000),
    -- Whether the page shows its sites' URLs (never, unless asked).
    show_urls    boolean     NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- A page's sites: each in a group ('' for none), in order; groups appear
-- in the order of their first site.
CREATE TABLE status_page_sites (
    slug     text    NOT NULL REFERENCES status_pages (slug) ON DELETE CASCADE,
    site_id  bigint  NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    grp      text    NOT NULL DEFAULT '' CHECK (length(grp) <= 100 AND grp !~ '[[:cntrl:]]'),
    position integer NOT NULL,
    PRIMARY KEY (slug, site_id)
);
-- Whether a site is on any page (its public badges).
CREATE INDEX status_page_sites_site ON status_page_sites (site_id);

-- A page's outages of the last 90 days: by site, newest first.
CREATE INDEX incidents_site_opened ON incidents (site_id, opened_at DESC);

-- +goose Down
DROP INDEX incidents_site_opened;
DROP TABLE status_page_sites;
DROP TABLE status_pages;
