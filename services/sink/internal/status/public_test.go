package status

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/services/sink/internal/rollup"
)

// Things of the operator's that no public page may show.
var private = []string{"hidden.internal", "Hidden Internal", "api.example", "web.example", "noname.example", "batch.example",
	"secret-internal-error", "eu-west", "stale-only"}

// publicFixture: page "shop" names API (up, an outage an hour long two
// days ago, a bad day in its bars) and Web (down, an error text) under
// "Core", then a site with no name, and Batch (up, in a maintenance
// window now); API has a window scheduled for later. Site 3 is not on
// the page.
func publicFixture(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	hist := make([]int32, len(rollup.Bounds)+1)
	hist[rollup.BucketOf(40)] = 60
	for _, q := range []string{
		`INSERT INTO sites (url, name) VALUES ('https://api.example/', 'API'), ('https://web.example/', 'Web'),
		     ('https://hidden.internal/', 'Hidden Internal'), ('https://noname.example/', ''), ('https://batch.example/', 'Batch')`,
		`INSERT INTO site_region_state (site_id, region, state, last_checked_at) VALUES (1, 'eu-west', 'up', now()),
		     (2, 'eu-west', 'down', now()), (3, 'eu-west', 'down', now()), (5, 'eu-west', 'up', now())`,
		`INSERT INTO site_state (site_id, state, since) VALUES (1, 'up', now()), (2, 'down', now()), (3, 'down', now()), (5, 'up', now())`,
		`INSERT INTO incidents (site_id, url, kind, opened_at, resolved_at, error_class, error, regions) VALUES
		     (1, 'https://api.example/', 'down', now() - interval '2 days', now() - interval '2 days' + interval '65 minutes', 'http', 'secret-internal-error 1', '{eu-west}'),
		     (2, 'https://web.example/', 'down', now() - interval '20 minutes', NULL, 'http', 'secret-internal-error 2', '{eu-west}'),
		     (3, 'https://hidden.internal/', 'down', now() - interval '1 hour', NULL, 'http', 'secret-internal-error 3', '{eu-west}'),
		     (4, 'https://noname.example/', 'stale', now() - interval '3 days', now() - interval '3 days' + interval '5 minutes', NULL, 'stale-only', '{}'),
		     (1, 'https://api.example/', 'down', now() - interval '120 days', now() - interval '119 days', 'http', 'too old', '{eu-west}')`,
		`INSERT INTO silences (site_id, starts_at, until, reason) VALUES
		     (5, now() - interval '10 minutes', now() + interval '1 hour', 'Database upgrade'),
		     (1, now() + interval '2 days', now() + interval '2 days 2 hours', 'Network work <b>'),
		     (3, now() - interval '10 minutes', now() + interval '1 hour', 'stale-only')`,
		`INSERT INTO status_pages (slug, title, announcement) VALUES ('shop', 'Example Shop', 'Payments are **slow** <script>alert(1)</script>. See [the blog](https://blog.example/x).')`,
		`INSERT INTO status_page_sites (slug, site_id, grp, position) VALUES ('shop', 1, 'Core', 1), ('shop', 2, 'Core', 2), ('shop', 4, '', 3), ('shop', 5, '', 4)`,
	} {
		_, err := pool.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	// 90 days and 24 hours of API's checks, one bad day among them; a
	// day of Web's.
	_, err := pool.Exec(ctx, `
		INSERT INTO rollups (bucket_width, site_id, region, bucket_start, checks, failures, duration_sum, histogram,
		                     phase_checks, dns_sum, connect_sum, tls_sum, ttfb_sum, transfer_sum)
		SELECT w, s, 'eu-west', b, 60, CASE WHEN w = 86400 AND b = date_trunc('day', now()) - interval '2 days' THEN 6 ELSE 0 END,
		       2400, $1, 0, 0, 0, 0, 0, 0
		FROM (VALUES (1), (2)) AS sites(s),
		     LATERAL (SELECT 3600 AS w, g AS b FROM generate_series(date_trunc('hour', now()) - interval '23 hours', date_trunc('hour', now()), interval '1 hour') g
		              UNION ALL
		              SELECT 86400, g FROM generate_series(date_trunc('day', now()) - CASE s WHEN 1 THEN interval '89 days' ELSE interval '0 days' END,
		                                                   date_trunc('day', now()), interval '1 day') g) t`, hist)
	require.NoError(t, err)
	return pool
}

func publicServer(t testing.TB, pool *pgxpool.Pool, cfg PublicConfig) http.Handler {
	t.Helper()
	if cfg.Addr == "" {
		cfg = PublicConfig{Addr: "127.0.0.1:0", Rate: 1000, Burst: 1000, CacheFor: 30 * time.Second}
	}
	s, err := NewPublic(cfg, pool, zaptest.NewLogger(t))
	require.NoError(t, err)
	return s.Handler()
}

func TestPublicPageShowsOnlyWhatTheCustomersShouldSee(t *testing.T) {
	t.Parallel()
	pool := publicFixture(t)
	h := publicServer(t, pool, PublicConfig{})

	code, body := get(t, h, "/status/shop")
	require.Equal(t, http.StatusOK, code, body)
	for _, p := range private {
		require.NotContains(t, body, p, "nothing private on a public page")
	}
	require.Contains(t, body, "<title>Example Shop</title>")
	require.Contains(t, body, `<p class="overall">Partial outage</p>`, "one of four monitored sites down")
	require.Contains(t, body, "<h2>Core</h2>", "the group's heading")
	order := regexp.MustCompile(`data-site="(\d+)"`).FindAllStringSubmatch(body, -1)
	require.Len(t, order, 4)
	require.Equal(t, []string{"1", "2", "4", "5"}, []string{order[0][1], order[1][1], order[2][1], order[3][1]}, "the page's order")
	require.Contains(t, body, "<h3>Service 4</h3>", "a site with no name is not shown by its URL")
	require.Regexp(t, `<h3>Web</h3>\s*<span class="status outage">Outage</span>`, body)
	require.Regexp(t, `<h3>Batch</h3>\s*<span class="status maintenance">Under maintenance</span>`, body)
	require.Regexp(t, `<h3>Service 4</h3>\s*<span class="status unknown">No data</span>`, body)

	// The announcement: its Markdown rendered, its HTML escaped.
	require.Contains(t, body, "Payments are <strong>slow</strong> &lt;script&gt;alert(1)&lt;/script&gt;.")
	require.Contains(t, body, `<a href="https://blog.example/x" rel="nofollow noopener noreferrer">the blog</a>`)

	// Maintenance: the one running and the one ahead, with their reasons.
	require.Regexp(t, `(?s)<li class="active">\s*<strong>In progress</strong>.*Batch. Database upgrade`, body)
	require.Regexp(t, `(?s)<li class="scheduled">\s*<strong>Scheduled</strong>.*API. Network work &lt;b&gt;`, body)

	// Incidents: the open outage, then the resolved one with its length;
	// no stale incident, none older than 90 days.
	require.Regexp(t, `(?s)Outage of Web</h3>.*ongoing for 20 min.*Resolved: Outage of API</h3>.*lasted 1 h 5 min`, body)
	require.Equal(t, 2, strings.Count(body, `<article class="incident`))

	// 90 daily bars and 24 hourly ones per site; API's bad day.
	require.Equal(t, 4*(90+24), strings.Count(body, "<rect "))
	api := body[strings.Index(body, `id="site-1"`):strings.Index(body, `id="site-2"`)]
	require.Equal(t, 1, strings.Count(api, `class="bad"`), "API's day at 90 %")
	require.Equal(t, 113, strings.Count(api, `class="good"`))
	require.Contains(t, api, "Uptime over the last 90 days: 89 at 99.9 % or more, 1 below 99 %")
	web := body[strings.Index(body, `id="site-2"`):strings.Index(body, `id="site-4"`)]
	require.Contains(t, web, "89 without checks", "days before a site's first check are grey")
	require.Contains(t, api, "99.888 % uptime over 90 days", "5,394 of 5,400 checks, never rounded up")

	// The JSON has the same, and nothing private either.
	code, js := get(t, h, "/api/status/shop")
	require.Equal(t, http.StatusOK, code)
	for _, p := range private {
		require.NotContains(t, js, p)
	}
	var page PublicPage
	require.NoError(t, json.Unmarshal([]byte(js), &page))
	require.Equal(t, "partial_outage", page.Overall.Level)
	require.Len(t, page.Groups, 2)
	require.Len(t, page.Groups[0].Sites[0].Days, 90)
	require.Empty(t, page.Groups[0].Sites[0].URL)

	code, _ = get(t, h, "/status/nope")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get(t, h, "/status/..%2Fetc")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get(t, h, "/")
	require.Equal(t, http.StatusNotFound, code, "no index of the pages")
	code, _ = get(t, h, "/api/sites")
	require.Equal(t, http.StatusNotFound, code, "the operator's API is not on the public listener")
	code, _ = get(t, h, "/sites/3")
	require.Equal(t, http.StatusNotFound, code)

	// A page that asks shows its sites' URLs.
	_, err := pool.Exec(context.Background(), "UPDATE status_pages SET show_urls = true")
	require.NoError(t, err)
	_, body = get(t, publicServer(t, pool, PublicConfig{}), "/status/shop")
	require.Contains(t, body, `<p class="url">https://api.example/</p>`)
	require.NotContains(t, body, "hidden.internal")
}

func TestPublicPageIsCheapToServe(t *testing.T) {
	t.Parallel()
	pool := publicFixture(t)
	h := publicServer(t, pool, PublicConfig{})

	req := httptest.NewRequest(http.MethodGet, "/status/shop", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)
	etag := w.Header().Get("ETag")
	require.Regexp(t, `^"[0-9a-f]{24}"$`, etag)
	require.Equal(t, "public, max-age=30", w.Header().Get("Cache-Control"), "a CDN may keep it")
	require.Contains(t, w.Header().Get("Content-Security-Policy"), "default-src 'none'")

	code, _ := get(t, h, "/status/shop", "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, code, "an unchanged page is not sent again")
	code, _ = get(t, h, "/status/shop", "If-None-Match", `"other"`)
	require.Equal(t, http.StatusOK, code)

	req = httptest.NewRequest(http.MethodGet, "/status/shop", nil)
	req.Header.Set("Accept-Encoding", "br, gzip")
	w = httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, "gzip", w.Header().Get("Content-Encoding"))
	zr, err := gzip.NewReader(w.Body)
	require.NoError(t, err)
	plain, err := io.ReadAll(zr)
	require.NoError(t, err)
	require.Contains(t, string(plain), "Example Shop")

	// Served from its cache: a page removed still shows until it expires;
	// a new server reads anew.
	_, err = pool.Exec(context.Background(), "DELETE FROM status_pages")
	require.NoError(t, err)
	code, _ = get(t, h, "/status/shop")
	require.Equal(t, http.StatusOK, code, "the rendered page is kept for public-cache")
	code, _ = get(t, publicServer(t, pool, PublicConfig{}), "/status/shop")
	require.Equal(t, http.StatusNotFound, code)
}

func TestPublicPagesAreRateLimitedPerClient(t *testing.T) {
	t.Parallel()
	pool := publicFixture(t)
	h := publicServer(t, pool, PublicConfig{Addr: "127.0.0.1:0", Rate: 0.01, Burst: 3, CacheFor: time.Minute, ClientIPHeader: "X-Forwarded-For"})
	from := func(ip string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/status/shop", nil)
		req.Header.Set("X-Forwarded-For", "10.9.9.9, "+ip) // the last is what the trusted proxy saw
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w
	}
	for range 3 {
		require.Equal(t, http.StatusOK, from("192.0.2.1").Code)
	}
	w := from("192.0.2.1")
	require.Equal(t, http.StatusTooManyRequests, w.Code, "the fourth request of the burst")
	require.NotEmpty(t, w.Header().Get("Retry-After"))
	require.Equal(t, http.StatusOK, from("192.0.2.2").Code, "another client has its own budget")
}

func TestPublicFeedListsThePagesOutages(t *testing.T) {
	t.Parallel()
	h := publicServer(t, publicFixture(t), PublicConfig{})
	code, body := get(t, h, "/status/shop/feed.atom")
	require.Equal(t, http.StatusOK, code, body)
	for _, p := range private {
		require.NotContains(t, body, p)
	}
	var feed struct {
		XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
		ID      string   `xml:"id"`
		Title   string   `xml:"title"`
		Updated string   `xml:"updated"`
		Entries []struct {
			ID      string `xml:"id"`
			Title   string `xml:"title"`
			Updated string `xml:"updated"`
			Summary string `xml:"summary"`
			Link    struct {
				Href string `xml:"href,attr"`
			} `xml:"link"`
		} `xml:"entry"`
	}
	require.NoError(t, xml.Unmarshal([]byte(body), &feed))
	require.Equal(t, "Example Shop: incidents", feed.Title)
	require.Regexp(t, `^urn:uuid:[0-9a-f-]{36}$`, feed.ID)
	require.Len(t, feed.Entries, 2)
	require.Equal(t, "Outage: Web", feed.Entries[0].Title)
	require.Equal(t, "Resolved: Outage: API", feed.Entries[1].Title)
	require.Contains(t, feed.Entries[1].Summary, "(1 h 5 min)")
	require.Regexp(t, `^/status/shop#incident-\d+$`, feed.Entries[0].Link.Href)
	_, err := time.Parse(time.RFC3339, feed.Entries[0].Updated)
	require.NoError(t, err)
	require.Equal(t, feed.Entries[0].Updated, feed.Updated, "the feed is as new as its newest entry")
	_, again := get(t, publicServer(t, publicFixture(t), PublicConfig{}), "/status/shop/feed.atom")
	require.Contains(t, again, feed.ID, "a page's feed keeps its id")
}

func TestBadgesOfPagesAndOfTheSitesOnThem(t *testing.T) {
	t.Parallel()
	pool := publicFixture(t)
	public := publicServer(t, pool, PublicConfig{})
	code, svg := get(t, public, "/badges/1/status.svg")
	require.Equal(t, http.StatusOK, code, "a site on a page")
	require.Contains(t, svg, "status: up")
	code, _ = get(t, public, "/badges/3/status.svg")
	require.Equal(t, http.StatusNotFound, code, "a site on no page has no public badge")
	code, svg = get(t, public, "/badges/shop/status.svg")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, svg, "status: partial outage")
	code, svg = get(t, public, "/badges/shop/uptime-24h.svg")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, svg, "uptime 24h: 100%", "API's and Web's hours, all up")
	code, _ = get(t, public, "/badges/nope/status.svg")
	require.Equal(t, http.StatusNotFound, code)

	operator, err := New(Config{Addr: "127.0.0.1:0"}, pool, zaptest.NewLogger(t))
	require.NoError(t, err)
	code, svg = get(t, operator.Handler(), "/badges/3/status.svg")
	require.Equal(t, http.StatusOK, code, "the operator's listener serves every site's")
	require.Contains(t, svg, "status: down")
	code, _ = get(t, operator.Handler(), "/badges/shop/response-time.svg")
	require.Equal(t, http.StatusOK, code, "and the pages'")
}

func TestOverallBanner(t *testing.T) {
	site := func(states ...string) []PublicGroup {
		g := PublicGroup{}
		for _, s := range states {
			g.Sites = append(g.Sites, PublicSite{Status: s})
		}
		return []PublicGroup{g}
	}
	for want, states := range map[string][]string{
		"operational":    {"operational", "operational", "paused"},
		"degraded":       {"operational", "degraded", "maintenance"},
		"partial_outage": {"operational", "outage", "operational", "degraded"},
		"major_outage":   {"outage", "outage", "operational"},
		"maintenance":    {"maintenance", "operational"},
		"unknown":        {"unknown", "paused"},
	} {
		require.Equal(t, want, overall(site(states...)).Level, "%v", states)
	}
	require.Equal(t, "unknown", overall(nil).Level, "a page of no sites")
}

func TestAnnouncementMarkdown(t *testing.T) {
	for in, want := range map[string]string{
		"plain <b>text</b> & more":        "<p>plain &lt;b&gt;text&lt;/b&gt; &amp; more</p>",
		"**bold** and *it* and `co<de>`":  "<p><strong>bold</strong> and <em>it</em> and <code>co&lt;de&gt;</code></p>",
		"one\ntwo\n\nthree":               "<p>one<br>two</p><p>three</p>",
		"- a\n- **b**":                    "<ul><li>a</li><li><strong>b</strong></li></ul>",
		"[x](https://e.example/a?b=1&c)":  `<p><a href="https://e.example/a?b=1&amp;c" rel="nofollow noopener noreferrer">x</a></p>`,
		"[x](javascript:alert(1))":        "<p>[x](javascript:alert(1))</p>",
		`[x](https://e.example/" onx="y)`: `<p>[x](https://e.example/&#34; onx=&#34;y)</p>`,
		"2 * 3 * 4, a ** b":               "<p>2 * 3 * 4, a ** b</p>",
		"unclosed `code and *star":        "<p>unclosed `code and *star</p>",
	} {
		require.Equal(t, want, string(announcementHTML(in)), in)
	}
}

// allowedMarkup is every tag and attribute announcementHTML may write.
var allowedMarkup = regexp.MustCompile(`^<(/?(p|br|ul|li|strong|em|code|a)|a href="https?://[^"<>]*" rel="nofollow noopener noreferrer")>$`)

func FuzzAnnouncementMarkdown(f *testing.F) {
	for _, s := range []string{"**a**", "[x](https://a.example/)", "- a\n- b", "`<script>`", "*[**](http://x)*", "<img src=x onerror=alert(1)>"} {
		f.Add(s)
	}
	tag := regexp.MustCompile(`<[^>]*>?`)
	f.Fuzz(func(t *testing.T, in string) {
		out := string(announcementHTML(in))
		for _, m := range tag.FindAllString(out, -1) {
			if !allowedMarkup.MatchString(m) {
				t.Fatalf("markup %q in the rendering of %q: %s", m, in, out)
			}
		}
	})
}
