package status

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sitewatch/sitewatch/services/sink/internal/rollup"
)

var (
	//go:embed sites.sql
	sitesSQL string
	//go:embed latest.sql
	latestSQL string
	//go:embed buckets.sql
	bucketsSQL string
	//go:embed histograms.sql
	histogramsSQL string
	//go:embed checks.sql
	checksSQL string
	//go:embed regions.sql
	regionsSQL string
)

// queryTimeout bounds each page's queries together.
const queryTimeout = 10 * time.Second

// Source reads what the pages show: sites and their states, the latest
// checks, and the rollups for uptime, percentiles and charts.
type Source struct{ pool *pgxpool.Pool }

// Site is one row of the list.
type Site struct {
	ID          int64     `json:"id"`
	URL         string    `json:"url"`
	Name        string    `json:"name"`  // display name; "" for none
	State       string    `json:"state"` // down, stale, degraded, unknown, up or paused
	IntervalS   float64   `json:"interval_s"`
	Uptime24h   *float64  `json:"uptime_24h"` // percent; null without checks
	Uptime7d    *float64  `json:"uptime_7d"`
	Uptime30d   *float64  `json:"uptime_30d"`
	CurrentMS   *float64  `json:"current_ms"` // the latest check's response time
	P95MS       *float64  `json:"p95_ms_24h"` // from the 24 h histogram, within 19 %
	LastChecked *string   `json:"last_checked_at"`
	ErrorClass  string    `json:"error_class,omitempty"` // the latest check's, when it failed
	Error       string    `json:"error,omitempty"`
	TLSExpiry   *string   `json:"tls_expiry,omitempty"`
	Spark       []float64 `json:"sparkline_ms"` // hourly mean response time, last 24 h, oldest first (0: no check)
}

// Page is a page of the list.
type Page struct {
	Sites    []Site `json:"sites"`
	Total    int    `json:"total"`
	Page     int    `json:"page"`
	PageSize int    `json:"page_size"`
	Query    string `json:"q"`
}

// Bucket is one bucket of a site's chart.
type Bucket struct {
	Start      time.Time `json:"start"`
	Checks     int64     `json:"checks"`
	Failures   int64     `json:"failures"`
	MeanMS     float64   `json:"mean_ms"`
	DNSMS      float64   `json:"dns_ms"` // phase means, over checks that carried phases
	ConnectMS  float64   `json:"connect_ms"`
	TLSMS      float64   `json:"tls_ms"`
	TTFBMS     float64   `json:"ttfb_ms"`
	TransferMS float64   `json:"transfer_ms"`
}

// Check is one of a site's latest checks, with what its kind reports: a
// TLS handshake's version and cipher, a DNS query's response code and
// answers.
type Check struct {
	At         time.Time `json:"checked_at"`
	Region     string    `json:"region"`
	StatusCode *int32    `json:"status_code"`
	DurationMS float64   `json:"duration_ms"`
	ErrorClass string    `json:"error_class,omitempty"`
	Error      string    `json:"error,omitempty"`
	Kind       string    `json:"kind"` // http, tcp, tls, dns, grpc, icmp or heartbeat
	TLSVersion string    `json:"tls_version,omitempty"`
	TLSCipher  string    `json:"tls_cipher,omitempty"`
	DNSRCode   string    `json:"dns_rcode,omitempty"`
	DNSAnswers []string  `json:"dns_answers,omitempty"`
	ICMPSent   *int32    `json:"icmp_sent,omitempty"`
	ICMPRecv   *int32    `json:"icmp_received,omitempty"`
	RTTAvgMS   *float64  `json:"rtt_avg_ms,omitempty"`
	Degraded   string    `json:"degraded,omitempty"` // why a passing check was too slow
}

// Details is what the check's kind reports, in a line: the response code
// and answers of a DNS query, the version and cipher of a TLS handshake,
// the replies to echo requests, a heartbeat's ping and its run; and why it
// was too slow.
func (c Check) Details() string {
	var parts []string
	if c.Degraded != "" {
		parts = append(parts, "degraded: "+c.Degraded)
	}
	if c.Kind == "heartbeat" {
		// A heartbeat's check is a ping, a reported failure or a missed
		// deadline; its time is the run's, from /start.
		line := map[string]string{"": "ping", "job_failed": "the job reported a failure", "missed": "no ping in time"}[c.ErrorClass]
		if line == "" {
			line = c.ErrorClass
		}
		if c.DurationMS > 0 {
			line += fmt.Sprintf(" after a run of %s", (time.Duration(c.DurationMS * float64(time.Millisecond))).Round(time.Second))
		}
		parts = append(parts, line)
	}
	if c.DNSRCode != "" {
		parts = append(parts, strings.TrimSpace(c.DNSRCode+" "+strings.Join(c.DNSAnswers, ", ")))
	}
	if c.TLSVersion != "" {
		parts = append(parts, c.TLSVersion+" "+c.TLSCipher)
	}
	if c.ICMPSent != nil && c.ICMPRecv != nil {
		line := fmt.Sprintf("%d of %d echo replies", *c.ICMPRecv, *c.ICMPSent)
		if c.RTTAvgMS != nil {
			line += fmt.Sprintf(", %.2f ms on average", *c.RTTAvgMS)
		}
		parts = append(parts, line)
	}
	return strings.Join(parts, "; ")
}

// Region is a site's state in one region.
type Region struct {
	Region      string    `json:"region"`
	State       string    `json:"state"`
	LastChecked time.Time `json:"last_checked_at"`
	ErrorClass  string    `json:"error_class,omitempty"`
	Error       string    `json:"error,omitempty"`
}

// Detail is a site's page.
type Detail struct {
	Site    Site      `json:"site"`
	Range   string    `json:"range"`
	Width   string    `json:"bucket"`
	From    time.Time `json:"from"` // the chart's range: From to To
	To      time.Time `json:"to"`
	width   time.Duration
	Series  []Bucket `json:"series"`
	Days    []Bucket `json:"days"` // the last 30 days, for the uptime bar
	Checks  []Check  `json:"latest_checks"`
	Regions []Region `json:"regions"`
}

// Ranges are the chart ranges a site page offers, and the rollup width
// each reads.
var Ranges = []struct {
	Name  string
	Span  time.Duration
	Width time.Duration
}{
	{"1h", time.Hour, time.Minute},
	{"24h", 24 * time.Hour, time.Hour},
	{"7d", 7 * 24 * time.Hour, time.Hour},
	{"30d", 30 * 24 * time.Hour, 24 * time.Hour},
	{"90d", 90 * 24 * time.Hour, 24 * time.Hour},
}

// Sites returns page (from 1) of size sites whose URL contains q.
func (s *Source) Sites(ctx context.Context, q string, page, size int) (Page, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	out := Page{Page: page, PageSize: size, Query: q, Sites: []Site{}}
	rows, err := s.pool.Query(ctx, sitesSQL, q, size, (page-1)*size, nil)
	if err != nil {
		return out, fmt.Errorf("listing sites: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var st Site
		var intervalMS int64
		if err := rows.Scan(&st.ID, &st.URL, &st.Name, &intervalMS, &st.State, &out.Total); err != nil {
			rows.Close()
			return out, fmt.Errorf("listing sites: %w", err)
		}
		st.IntervalS = float64(intervalMS) / 1000
		out.Sites = append(out.Sites, st)
		ids = append(ids, st.ID)
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("listing sites: %w", err)
	}
	if len(ids) == 0 {
		return out, nil
	}
	byID := map[int64]*Site{}
	for i := range out.Sites {
		byID[out.Sites[i].ID] = &out.Sites[i]
	}
	if err := s.fillLatest(ctx, ids, byID); err != nil {
		return out, err
	}
	if err := s.fillRollups(ctx, ids, byID); err != nil {
		return out, err
	}
	return out, nil
}

func (s *Source) fillLatest(ctx context.Context, ids []int64, byID map[int64]*Site) error {
	rows, err := s.pool.Query(ctx, latestSQL, ids)
	if err != nil {
		return fmt.Errorf("reading the latest checks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var at time.Time
		var ms float64
		var code *int32
		var class, text string
		var tlsExpiry *time.Time
		if err := rows.Scan(&id, &at, &ms, &code, &class, &text, &tlsExpiry); err != nil {
			return fmt.Errorf("reading the latest checks: %w", err)
		}
		st := byID[id]
		st.CurrentMS = &ms
		stamp := at.UTC().Format(time.RFC3339)
		st.LastChecked = &stamp
		st.ErrorClass, st.Error = class, text
		if tlsExpiry != nil {
			e := tlsExpiry.UTC().Format(time.RFC3339)
			st.TLSExpiry = &e
		}
	}
	return rows.Err()
}

// fillRollups sets the uptimes, the 24 h p95 and the sparkline.
func (s *Source) fillRollups(ctx context.Context, ids []int64, byID map[int64]*Site) error {
	now := time.Now().UTC()
	dayAgo := now.Truncate(time.Hour).Add(-23 * time.Hour)
	hours, err := s.buckets(ctx, ids, time.Hour, now.Truncate(time.Hour).Add(-7*24*time.Hour+time.Hour))
	if err != nil {
		return err
	}
	days, err := s.buckets(ctx, ids, 24*time.Hour, now.Truncate(24*time.Hour).Add(-29*24*time.Hour))
	if err != nil {
		return err
	}
	for id, st := range byID {
		st.Uptime7d = uptime(hours[id])
		st.Uptime30d = uptime(days[id])
		var day []Bucket
		st.Spark = make([]float64, 24)
		for _, b := range hours[id] {
			if !b.Start.Before(dayAgo) {
				day = append(day, b)
				st.Spark[int(b.Start.Sub(dayAgo)/time.Hour)] = b.MeanMS
			}
		}
		st.Uptime24h = uptime(day)
	}
	rows, err := s.pool.Query(ctx, histogramsSQL, ids, dayAgo)
	if err != nil {
		return fmt.Errorf("reading response-time histograms: %w", err)
	}
	defer rows.Close()
	hist := map[int64][]int64{}
	for rows.Next() {
		var id int64
		var h []int64
		if err := rows.Scan(&id, &h); err != nil {
			return fmt.Errorf("reading response-time histograms: %w", err)
		}
		sum := hist[id]
		for len(sum) < len(h) {
			sum = append(sum, 0)
		}
		for i, n := range h {
			sum[i] += n
		}
		hist[id] = sum
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading response-time histograms: %w", err)
	}
	for id, h := range hist {
		p := rollup.Percentile(h, 0.95)
		byID[id].P95MS = &p
	}
	return nil
}

// buckets reads the rollups of width of the sites since, per site.
func (s *Source) buckets(ctx context.Context, ids []int64, width time.Duration, since time.Time) (map[int64][]Bucket, error) {
	rows, err := s.pool.Query(ctx, bucketsSQL, ids, int32(width/time.Second), since)
	if err != nil {
		return nil, fmt.Errorf("reading rollups: %w", err)
	}
	defer rows.Close()
	out := map[int64][]Bucket{}
	for rows.Next() {
		var id, phaseChecks int64
		var b Bucket
		var durSum, dns, conn, tls, ttfb, transfer float64
		if err := rows.Scan(&id, &b.Start, &b.Checks, &b.Failures, &durSum, &phaseChecks, &dns, &conn, &tls, &ttfb, &transfer); err != nil {
			return nil, fmt.Errorf("reading rollups: %w", err)
		}
		if b.Checks > 0 {
			b.MeanMS = durSum / float64(b.Checks)
		}
		if phaseChecks > 0 {
			n := float64(phaseChecks)
			b.DNSMS, b.ConnectMS, b.TLSMS, b.TTFBMS, b.TransferMS = dns/n, conn/n, tls/n, ttfb/n, transfer/n
		}
		out[id] = append(out[id], b)
	}
	return out, rows.Err()
}

func uptime(bs []Bucket) *float64 {
	var checks, failures int64
	for _, b := range bs {
		checks += b.Checks
		failures += b.Failures
	}
	if checks == 0 {
		return nil
	}
	u := 100 * float64(checks-failures) / float64(checks)
	return &u
}

// Summary is site id's row of the list: its state, uptimes and latest
// check (ErrNoSite if there is none).
func (s *Source) Summary(ctx context.Context, id int64) (Site, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	return s.summary(ctx, id)
}

func (s *Source) summary(ctx context.Context, id int64) (Site, error) {
	var st Site
	var intervalMS int64
	var total int
	err := s.pool.QueryRow(ctx, sitesSQL, "", 1, 0, []int64{id}).Scan(&st.ID, &st.URL, &st.Name, &intervalMS, &st.State, &total)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, ErrNoSite
	}
	if err != nil {
		return st, fmt.Errorf("reading site %d: %w", id, err)
	}
	st.IntervalS = float64(intervalMS) / 1000
	byID := map[int64]*Site{id: &st}
	if err := s.fillLatest(ctx, []int64{id}, byID); err != nil {
		return st, err
	}
	if err := s.fillRollups(ctx, []int64{id}, byID); err != nil {
		return st, err
	}
	return st, nil
}

// ErrNoSite is returned for a site id that does not exist.
var ErrNoSite = errors.New("no such site")

// Site returns site id's page for the range named rng (one of Ranges).
func (s *Source) Site(ctx context.Context, id int64, rng string) (Detail, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	d := Detail{Range: rng}
	var err error
	if d.Site, err = s.summary(ctx, id); err != nil {
		return d, err
	}
	now := time.Now().UTC()
	for _, r := range Ranges {
		if r.Name != rng {
			continue
		}
		d.Width, d.width = r.Width.String(), r.Width
		d.From, d.To = now.Add(-r.Span).Truncate(r.Width), now.Truncate(r.Width).Add(r.Width)
		series, err := s.buckets(ctx, []int64{id}, r.Width, d.From)
		if err != nil {
			return d, err
		}
		d.Series = series[id]
	}
	days, err := s.buckets(ctx, []int64{id}, 24*time.Hour, now.Truncate(24*time.Hour).Add(-29*24*time.Hour))
	if err != nil {
		return d, err
	}
	d.Days = days[id]
	rows, err := s.pool.Query(ctx, checksSQL, id, 20)
	if err != nil {
		return d, fmt.Errorf("reading the latest checks of site %d: %w", id, err)
	}
	d.Checks, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Check])
	if err != nil {
		return d, fmt.Errorf("reading the latest checks of site %d: %w", id, err)
	}
	rows, err = s.pool.Query(ctx, regionsSQL, id)
	if err != nil {
		return d, fmt.Errorf("reading the regions of site %d: %w", id, err)
	}
	d.Regions, err = pgx.CollectRows(rows, pgx.RowToStructByPos[Region])
	if err != nil {
		return d, fmt.Errorf("reading the regions of site %d: %w", id, err)
	}
	return d, nil
}

// RangeNames are the names of Ranges, for the page's links.
func (Detail) RangeNames() []string {
	out := make([]string, len(Ranges))
	for i, r := range Ranges {
		out[i] = r.Name
	}
	return out
}
