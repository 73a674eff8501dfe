package status

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
)

var (
	//go:embed page.sql
	pageSQL string
	//go:embed page_incidents.sql
	pageIncidentsSQL string
	//go:embed page_maintenance.sql
	pageMaintenanceSQL string
	//go:embed page_listed.sql
	pageListedSQL string
	//go:embed page_buckets.sql
	pageBucketsSQL string
	//go:embed page_unfolded.sql
	pageUnfoldedSQL string
)

// ErrNoPage is returned for a status page that does not exist.
var ErrNoPage = errors.New("no such status page")

// A public page's spans: its daily bars, its history and its hourly bars.
const (
	publicDays   = 90
	publicHours  = 24
	maxIncidents = 100
)

// PublicPage is a status page for the public: only what a customer should
// see of its sites (no URL unless the page asks, no error text, no
// region), read from the rollups, the incidents and the silences.
type PublicPage struct {
	Slug         string           `json:"slug"`
	Title        string           `json:"title"`
	Announcement string           `json:"announcement,omitempty"`
	Overall      Overall          `json:"overall"`
	Groups       []PublicGroup    `json:"groups"`
	Maintenance  []Maintenance    `json:"maintenance"`
	Incidents    []PublicIncident `json:"incidents"` // open ones first, then the last 90 days', newest first
	Generated    time.Time        `json:"generated_at"`
	announcement template.HTML
}

// Overall is a page's banner: the worst of its sites.
type Overall struct {
	Level string `json:"level"` // operational, degraded, partial_outage, major_outage, maintenance or unknown
	Text  string `json:"text"`
}

// PublicGroup is a heading of a page and its sites; Name "" for none.
type PublicGroup struct {
	Name  string       `json:"name,omitempty"`
	Sites []PublicSite `json:"sites"`
}

// PublicSite is one site of a public page.
type PublicSite struct {
	ID         int64    `json:"id"`
	Name       string   `json:"name"`
	URL        string   `json:"url,omitempty"` // only on a page that shows URLs
	Status     string   `json:"status"`        // operational, degraded, outage, maintenance, unknown or paused
	Uptime24h  *float64 `json:"uptime_24h"`
	Uptime7d   *float64 `json:"uptime_7d"`
	Uptime30d  *float64 `json:"uptime_30d"`
	Uptime90d  *float64 `json:"uptime_90d"`
	ResponseMS *float64 `json:"response_ms_24h"` // mean response time over 24 h
	Days       []Bar    `json:"days"`            // the last 90 days, oldest first
	Hours      []Bar    `json:"hours"`           // the last 24 hours, oldest first
}

// Bar is one day or hour of a site's bars.
type Bar struct {
	Start    time.Time `json:"start"`
	Checks   int64     `json:"checks"`
	Failures int64     `json:"failures"`
	Uptime   *float64  `json:"uptime"` // percent; null without checks
	MeanMS   float64   `json:"mean_ms,omitempty"`
}

// Maintenance is a maintenance window: a silence of the page's sites,
// with the operator's reason, ahead or running.
type Maintenance struct {
	Sites   []string  `json:"sites"`
	From    time.Time `json:"from"`
	Until   time.Time `json:"until"`
	Reason  string    `json:"reason,omitempty"`
	Active  bool      `json:"active"`
	siteIDs []int64
}

// PublicIncident is an outage of one of the page's sites.
type PublicIncident struct {
	ID       int64      `json:"id"`
	Site     string     `json:"site"`
	Started  time.Time  `json:"started_at"`
	Resolved *time.Time `json:"resolved_at"`
}

// Duration is how long the outage lasted, or has lasted so far.
func (i PublicIncident) Duration(now time.Time) time.Duration {
	end := now
	if i.Resolved != nil {
		end = *i.Resolved
	}
	return end.Sub(i.Started)
}

// publicStatus is what a site's state says to the public.
var publicStatus = map[string]string{
	"up": "operational", "degraded": "degraded", "down": "outage",
	"stale": "unknown", "unknown": "unknown", "paused": "paused",
}

// siteName is a site's name on a public page: its display name, or, as
// its URL is not for the public, "Service ID".
func siteName(s Site) string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("Service %d", s.ID)
}

// PublicPage reads status page slug (ErrNoPage if there is none).
func (s *Source) PublicPage(ctx context.Context, slug string) (PublicPage, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	p := PublicPage{Slug: slug, Generated: time.Now().UTC(), Groups: []PublicGroup{}, Maintenance: []Maintenance{}, Incidents: []PublicIncident{}}
	var showURLs bool
	var ids []int64
	var groups []string
	err := s.pool.QueryRow(ctx, pageSQL, slug).Scan(&p.Title, &p.Announcement, &showURLs, &ids, &groups)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNoPage
	}
	if err != nil {
		return p, fmt.Errorf("reading status page %s: %w", slug, err)
	}
	p.announcement = announcementHTML(p.Announcement)
	now := p.Generated
	today := now.Truncate(24 * time.Hour)
	hour := now.Truncate(time.Hour)
	// The page's reads are independent: run at once, each on a connection
	// of its own, they take about as long as the slowest.
	var (
		sites         map[int64]Site
		inMaintenance map[int64]bool
		incidents     []incidentRow
		days          = newBarRows(ids, today, 24*time.Hour, publicDays)
		hours         = newBarRows(ids, hour, time.Hour, publicHours)
		unfolded      []rollupRow
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { sites, err = s.sitesByID(gctx, ids); return err })
	g.Go(func() error { return s.readRollups(gctx, pageBucketsSQL, days.add, ids, int32(86400), days.first) })
	g.Go(func() error { return s.readRollups(gctx, pageBucketsSQL, hours.add, ids, int32(3600), hours.first) })
	g.Go(func() error {
		return s.readRollups(gctx, pageUnfoldedSQL, func(r rollupRow) { unfolded = append(unfolded, r) }, ids)
	})
	g.Go(func() (err error) { p.Maintenance, inMaintenance, err = s.maintenance(gctx, ids, now); return err })
	g.Go(func() (err error) {
		incidents, err = s.outages(gctx, ids, today.Add(-publicDays*24*time.Hour))
		return err
	})
	if err := g.Wait(); err != nil {
		return p, err
	}
	for _, r := range unfolded {
		days.add(r)
		hours.add(r)
	}
	p.Maintenance = named(p.Maintenance, sites)
	p.Incidents = outagesOf(incidents, sites)
	for i, id := range ids {
		st, ok := sites[id]
		if !ok {
			continue // removed since the page was read
		}
		ps := PublicSite{ID: id, Name: siteName(st), Status: publicStatus[st.State], Days: days.bars(id), Hours: hours.bars(id)}
		if showURLs {
			ps.URL = st.URL
		}
		if inMaintenance[id] && st.State != "paused" {
			ps.Status = "maintenance"
		}
		ps.Uptime24h, ps.Uptime7d, ps.Uptime30d, ps.Uptime90d = barsUptime(ps.Hours), barsUptime(ps.Days[publicDays-7:]),
			barsUptime(ps.Days[publicDays-30:]), barsUptime(ps.Days)
		var checks int64
		var sum float64
		for _, b := range ps.Hours {
			checks += b.Checks
			sum += b.MeanMS * float64(b.Checks)
		}
		if checks > 0 {
			mean := sum / float64(checks)
			ps.ResponseMS = &mean
		}
		if n := len(p.Groups); n == 0 || p.Groups[n-1].Name != groups[i] {
			p.Groups = append(p.Groups, PublicGroup{Name: groups[i]})
		}
		g := &p.Groups[len(p.Groups)-1]
		g.Sites = append(g.Sites, ps)
	}
	p.Overall = overall(p.Groups)
	return p, nil
}

// sitesByID reads the sites ids with their states.
func (s *Source) sitesByID(ctx context.Context, ids []int64) (map[int64]Site, error) {
	out := make(map[int64]Site, len(ids))
	rows, err := s.pool.Query(ctx, sitesSQL, "", max(len(ids), 1), 0, ids)
	if err != nil {
		return nil, fmt.Errorf("reading a status page's sites: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st Site
		var intervalMS int64
		var total int
		if err := rows.Scan(&st.ID, &st.URL, &st.Name, &intervalMS, &st.State, &total); err != nil {
			return nil, fmt.Errorf("reading a status page's sites: %w", err)
		}
		out[st.ID] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading a status page's sites: %w", err)
	}
	return out, nil
}

// maintenance reads the windows of the sites ids not over yet, one per
// start, end and reason with the sites it covers (by id until named), and
// which sites are in one now.
func (s *Source) maintenance(ctx context.Context, ids []int64, now time.Time) ([]Maintenance, map[int64]bool, error) {
	rows, err := s.pool.Query(ctx, pageMaintenanceSQL, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("reading maintenance windows: %w", err)
	}
	defer rows.Close()
	out, active := []Maintenance{}, map[int64]bool{}
	for rows.Next() {
		var id int64
		var m Maintenance
		if err := rows.Scan(&id, &m.From, &m.Until, &m.Reason); err != nil {
			return nil, nil, fmt.Errorf("reading maintenance windows: %w", err)
		}
		m.Active = !m.From.After(now)
		if m.Active {
			active[id] = true
		}
		if n := len(out); n > 0 && out[n-1].From.Equal(m.From) && out[n-1].Until.Equal(m.Until) && out[n-1].Reason == m.Reason {
			out[n-1].siteIDs = append(out[n-1].siteIDs, id)
			continue
		}
		m.siteIDs = []int64{id}
		out = append(out, m)
	}
	return out, active, rows.Err()
}

// named gives the windows their sites' names, leaving out sites removed
// since the page was read, and windows left with none.
func named(ms []Maintenance, sites map[int64]Site) []Maintenance {
	out := []Maintenance{}
	for _, m := range ms {
		m.Sites = nil
		for _, id := range m.siteIDs {
			if st, ok := sites[id]; ok {
				m.Sites = append(m.Sites, siteName(st))
			}
		}
		if len(m.Sites) > 0 {
			out = append(out, m)
		}
	}
	return out
}

// incidentRow is an outage as read, its site by id.
type incidentRow struct {
	PublicIncident
	siteID int64
}

// outages reads the open outages of the sites ids and those since.
func (s *Source) outages(ctx context.Context, ids []int64, since time.Time) ([]incidentRow, error) {
	rows, err := s.pool.Query(ctx, pageIncidentsSQL, ids, since, maxIncidents)
	if err != nil {
		return nil, fmt.Errorf("reading a status page's incidents: %w", err)
	}
	defer rows.Close()
	var out []incidentRow
	for rows.Next() {
		var i incidentRow
		if err := rows.Scan(&i.ID, &i.siteID, &i.Started, &i.Resolved); err != nil {
			return nil, fmt.Errorf("reading a status page's incidents: %w", err)
		}
		out = append(out, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading a status page's incidents: %w", err)
	}
	return out, nil
}

// outagesOf names the outages' sites, the open ones first, then the rest
// newest first, leaving out sites removed since the page was read.
func outagesOf(rows []incidentRow, sites map[int64]Site) []PublicIncident {
	var open, past []PublicIncident
	for _, r := range rows {
		st, ok := sites[r.siteID]
		if !ok {
			continue
		}
		i := r.PublicIncident
		i.Site = siteName(st)
		if i.Resolved == nil {
			open = append(open, i)
		} else {
			past = append(past, i)
		}
	}
	return append(append([]PublicIncident{}, open...), past...)
}

// rollupRow is a row of page_buckets.sql or page_unfolded.sql: one
// region's checks of a site in a bucket.
type rollupRow struct {
	site     int64
	start    time.Time
	checks   int64
	failures int64
	durSum   float64
}

// readRollups runs query with args and gives each row to add.
func (s *Source) readRollups(ctx context.Context, query string, add func(rollupRow), args ...any) error {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("reading rollups: %w", err)
	}
	defer rows.Close()
	var r rollupRow
	_, err = pgx.ForEachRow(rows, []any{&r.site, &r.start, &r.checks, &r.failures, &r.durSum}, func() error {
		add(r)
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading rollups: %w", err)
	}
	return nil
}

// barRows are the bars of a page's sites of one width: n of them each,
// the last starting at last.
type barRows struct {
	first  time.Time
	width  time.Duration
	n      int
	bySite map[int64][]Bar
	sums   map[int64][]float64 // summed response times, per bar
}

func newBarRows(ids []int64, last time.Time, width time.Duration, n int) *barRows {
	b := &barRows{first: last.Add(-time.Duration(n-1) * width), width: width, n: n,
		bySite: make(map[int64][]Bar, len(ids)), sums: make(map[int64][]float64, len(ids))}
	for _, id := range ids {
		bars := make([]Bar, n)
		for i := range bars {
			bars[i].Start = b.first.Add(time.Duration(i) * width)
		}
		b.bySite[id], b.sums[id] = bars, make([]float64, n)
	}
	return b
}

// add counts r in the bar its time falls in; a row outside the bars, or
// of a site not on the page, counts nowhere.
func (b *barRows) add(r rollupRow) {
	bars := b.bySite[r.site]
	i := int(r.start.Sub(b.first) / b.width)
	if bars == nil || r.start.Before(b.first) || i >= b.n {
		return
	}
	bars[i].Checks += r.checks
	bars[i].Failures += r.failures
	b.sums[r.site][i] += r.durSum
}

// bars are site id's bars, their uptime and mean response time set.
func (b *barRows) bars(id int64) []Bar {
	bars := b.bySite[id]
	for i := range bars {
		if bars[i].Checks > 0 {
			bars[i].Uptime = uptime([]Bucket{{Checks: bars[i].Checks, Failures: bars[i].Failures}})
			bars[i].MeanMS = b.sums[id][i] / float64(bars[i].Checks)
		}
	}
	return bars
}

// barsUptime is the percentage of passing checks over bars; nil without
// checks.
func barsUptime(bars []Bar) *float64 {
	var checks, failures int64
	for _, b := range bars {
		checks += b.Checks
		failures += b.Failures
	}
	return uptime([]Bucket{{Checks: checks, Failures: failures}})
}

// overall is a page's banner: a major outage when more than half of its
// monitored sites are down, a partial one when any is, then degraded,
// then maintenance; unknown when none of them has been checked.
func overall(groups []PublicGroup) Overall {
	count := map[string]int{}
	n := 0
	for _, g := range groups {
		for _, s := range g.Sites {
			if s.Status != "paused" {
				count[s.Status]++
				n++
			}
		}
	}
	switch {
	case n == 0 || count["unknown"] == n:
		return Overall{"unknown", "Status unknown"}
	case 2*count["outage"] > n:
		return Overall{"major_outage", "Major outage"}
	case count["outage"] > 0:
		return Overall{"partial_outage", "Partial outage"}
	case count["degraded"] > 0:
		return Overall{"degraded", "Degraded performance"}
	case count["maintenance"] > 0:
		return Overall{"maintenance", "Maintenance in progress"}
	}
	return Overall{"operational", "All systems operational"}
}

// listed says whether site id is on a status page.
func (s *Source) listed(ctx context.Context, id int64) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var ok bool
	if err := s.pool.QueryRow(ctx, pageListedSQL, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("checking whether site %d is on a status page: %w", id, err)
	}
	return ok, nil
}

// statusWords is a public status in words.
func statusWords(status string) string {
	return map[string]string{"operational": "Operational", "degraded": "Degraded performance", "outage": "Outage",
		"maintenance": "Under maintenance", "unknown": "No data", "paused": "Not monitored"}[status]
}

// humanDuration is d as people read it: "3 min", "1 h 20 min", "2 d 4 h".
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 24*time.Hour:
		return strings.TrimSuffix(fmt.Sprintf("%d h %d min", int(d/time.Hour), int(d%time.Hour/time.Minute)), " 0 min")
	}
	return strings.TrimSuffix(fmt.Sprintf("%d d %d h", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)), " 0 h")
}
