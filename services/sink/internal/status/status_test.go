package status

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

// fixture makes sites in every state, their checks stored by the sink's
// own store (so stats, rollups, states and incidents are the real thing):
// 1 down (two failed checks, a hostile error text), 2 up (three passing
// checks with phases), 3 paused, 4 never checked, and 55 more up-to-be
// sites never checked, for paging. With folding, the rollups were folded
// up to ten minutes ago, so the checks are in their minutes' rollups only
// (package rollup) and the pages must add those to the hours and days.
func fixture(t *testing.T, folding bool) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	if folding {
		_, err := pool.Exec(ctx, "UPDATE rollup_fold SET folded_to = date_trunc('minute', now()) - interval '10 minutes'")
		require.NoError(t, err)
	}
	_, err := pool.Exec(ctx, `INSERT INTO sites (url, enabled) VALUES
		('https://down.example/', true), ('https://up.example/', true), ('https://paused.example/', false), ('https://new.example/', true);
		UPDATE sites SET name = 'Shop <front>' WHERE id = 2;
		INSERT INTO sites (url) SELECT 'https://more' || i || '.example/' FROM generate_series(1, 55) i`)
	require.NoError(t, err)
	now := time.Now().UTC()
	expiry := now.Add(40 * 24 * time.Hour)
	var recs []store.Record
	for i := range 3 {
		at := now.Add(time.Duration(i-3) * time.Minute)
		recs = append(recs,
			store.Record{Check: checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "eu-west", EventID: uuid.NewString(), SiteID: 2,
				URL: "https://up.example/", CheckedAt: at, StatusCode: 200, DurationMS: 40 + float64(i), DNSMS: 5, ConnectMS: 10, TLSMS: 10,
				TTFBMS: 10, TransferMS: 5, TLSExpiry: &expiry}, Topic: "checks", Offset: int64(i)})
		if i < 2 {
			recs = append(recs, store.Record{Check: checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "eu-west",
				EventID: uuid.NewString(), SiteID: 1, URL: "https://down.example/", CheckedAt: at, StatusCode: 503, DurationMS: 80,
				ErrorClass: "http", Error: "status 503 <script>alert(1)</script>"}, Topic: "checks", Offset: int64(10 + i)})
		}
	}
	_, err = store.New(pool, checkevent.IncidentTopic, prometheus.NewRegistry()).Insert(ctx, recs)
	require.NoError(t, err)
	return pool
}

func get(t *testing.T, h http.Handler, path string, header ...string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	body, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(body)
}

func TestListShowsStatesWorstFirstAndEscapes(t *testing.T) {
	for _, folding := range []bool{false, true} {
		t.Run(fmt.Sprintf("folding=%v", folding), func(t *testing.T) { listShowsStatesWorstFirstAndEscapes(t, folding) })
	}
}

func listShowsStatesWorstFirstAndEscapes(t *testing.T, folding bool) {
	pool := fixture(t, folding)
	s, err := New(Config{Addr: "127.0.0.1:0"}, pool, zaptest.NewLogger(t))
	require.NoError(t, err)
	h := s.Handler()

	code, body := get(t, h, "/")
	require.Equal(t, http.StatusOK, code, body)
	var order []string
	for _, m := range regexp.MustCompile(`data-site="(\d+)"`).FindAllStringSubmatch(body, -1) {
		order = append(order, m[1])
	}
	require.Equal(t, []string{"1", "4"}, order[:2], "down first, then never checked")
	require.Contains(t, body, `<span class="state down">down</span>`)
	require.Contains(t, body, "status 503 &lt;script&gt;alert(1)&lt;/script&gt;", "an error text is escaped")
	require.NotContains(t, body, "<script>alert")
	require.Contains(t, body, `<meta http-equiv="refresh" content="30">`)
	require.Contains(t, body, "page 1 of 2")

	code, body = get(t, h, "/?page=2")
	require.Equal(t, http.StatusOK, code)
	order = order[:0]
	for _, m := range regexp.MustCompile(`data-site="(\d+)"`).FindAllStringSubmatch(body, -1) {
		order = append(order, m[1])
	}
	require.Len(t, order, 9, "59 sites, 50 a page")
	require.Equal(t, []string{"2", "3"}, order[7:], "then the sites that are up, paused ones last")

	require.Contains(t, body, "Shop &lt;front&gt;</a><br><small>https://up.example/</small>", "the display name, escaped, over the URL")

	code, body = get(t, h, "/api/sites?q=UP.EXAMPLE")
	require.Equal(t, http.StatusOK, code)
	var p Page
	require.NoError(t, json.Unmarshal([]byte(body), &p))
	require.Equal(t, 1, p.Total)
	up := p.Sites[0]
	require.Equal(t, "up", up.State)
	require.Equal(t, "Shop <front>", up.Name)
	_, body = get(t, h, "/api/sites?q=shop")
	var byName Page
	require.NoError(t, json.Unmarshal([]byte(body), &byName))
	require.Equal(t, 1, byName.Total, "the filter finds a site by its name too")
	require.InDelta(t, 100, *up.Uptime24h, 0.001)
	require.InDelta(t, 100, *up.Uptime30d, 0.001)
	require.InDelta(t, 42, *up.CurrentMS, 0.001)
	require.InDelta(t, 42, *up.P95MS, 42*0.2, "p95 from the histogram, within a bucket")
	require.Len(t, up.Spark, 24)
	require.NotNil(t, up.TLSExpiry)

	_, body = get(t, h, "/api/sites?q=down.example")
	require.NoError(t, json.Unmarshal([]byte(body), &p))
	require.Equal(t, "down", p.Sites[0].State)
	require.InDelta(t, 0, *p.Sites[0].Uptime24h, 0.001)
	require.Equal(t, "http", p.Sites[0].ErrorClass)
}

func TestSitePageDrawsItsChartAndKnowsNoStrangers(t *testing.T) {
	for _, folding := range []bool{false, true} {
		t.Run(fmt.Sprintf("folding=%v", folding), func(t *testing.T) { sitePageDrawsItsChartAndKnowsNoStrangers(t, folding) })
	}
}

func sitePageDrawsItsChartAndKnowsNoStrangers(t *testing.T, folding bool) {
	pool := fixture(t, folding)
	s, err := New(Config{Addr: "127.0.0.1:0"}, pool, zaptest.NewLogger(t))
	require.NoError(t, err)
	h := s.Handler()
	code, body := get(t, h, "/sites/2?range=1h")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `<rect class="ttfb"`, "stacked by phase")
	require.Contains(t, body, `<rect class="good"`, "today's uptime bar")
	require.Contains(t, body, `aria-current="page">1h</a>`)
	require.Contains(t, body, "eu-west")

	code, body = get(t, h, "/api/sites/2?range=7d")
	require.Equal(t, http.StatusOK, code)
	var d Detail
	require.NoError(t, json.Unmarshal([]byte(body), &d))
	require.Equal(t, "7d", d.Range)
	require.Equal(t, "1h0m0s", d.Width)
	require.NotEmpty(t, d.Series)
	var checks int64
	for _, b := range d.Series {
		checks += b.Checks
	}
	require.EqualValues(t, 3, checks, "every check in the hourly series")
	require.Len(t, d.Checks, 3)
	require.Equal(t, "up", d.Site.State)

	for _, path := range []string{"/sites/999", "/sites/x", "/api/sites/0", "/nope"} {
		code, _ = get(t, h, path)
		require.Equal(t, http.StatusNotFound, code, path)
	}
	code, body = get(t, h, "/static/style.css")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, ".state.down")
}

func TestTokenAndErrorsShownToViewers(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Addr: "0.0.0.0:8080"}, "ui-token: required when http-addr"},
		{Config{Addr: "127.0.0.1:8080", Token: "short"}, "ui-token: shorter than 16"},
		{Config{Addr: "nope"}, "http-addr"},
	} {
		require.ErrorContains(t, c.cfg.Validate(), c.want)
	}
	require.NoError(t, Config{Addr: "[::1]:8080"}.Validate())

	pool := fixture(t, false)
	const token = "a-token-of-24-characters"
	s, err := New(Config{Addr: "0.0.0.0:8080", Token: token}, pool, zaptest.NewLogger(t))
	require.NoError(t, err)
	h := s.Handler()
	for _, hdr := range [][]string{nil, {"Authorization", "Bearer wrong-token-wrong-token"}, {"Authorization", "Basic d3Jvbmc6d3Jvbmc="}} {
		code, _ := get(t, h, "/", hdr...)
		require.Equal(t, http.StatusUnauthorized, code, hdr)
	}
	code, _ := get(t, h, "/", "Authorization", "Bearer "+token)
	require.Equal(t, http.StatusOK, code)
	req := httptest.NewRequest(http.MethodGet, "/api/sites", nil)
	req.SetBasicAuth("anyone", token)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusOK, w.Code)

	// A database error reaches the log, not the viewer.
	pool.Close()
	code, body := get(t, h, "/", "Authorization", "Bearer "+token)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "cannot read its data right now")
	require.False(t, strings.Contains(body, "closed") || strings.Contains(body, "postgres"), body)
}

// A site's page and its API show what each kind of check reports: a DNS
// query's response code and answers, a TLS handshake's version and cipher,
// a heartbeat's ping and run, a check too slow.
func TestSitePageShowsWhatEachKindReports(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	_, err := pool.Exec(ctx, `INSERT INTO sites (url) VALUES ('dns://192.0.2.53/example.com'), ('tls://example.com:465'), ('icmp://192.0.2.1'),
		('heartbeat://backup'), ('https://slow.example.com/')`)
	require.NoError(t, err)
	now := time.Now().UTC()
	yes, rtt := true, 1.25
	recs := []store.Record{
		{Check: checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "local", EventID: uuid.NewString(), SiteID: 1,
			URL: "dns://192.0.2.53/example.com", CheckedAt: now.Add(-time.Minute), DurationMS: 3, Kind: checkevent.KindDNS,
			DNSRCode: "NOERROR", DNSAnswers: []string{"192.0.2.1", "192.0.2.2"}}, Topic: "checks", Offset: 1},
		{Check: checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "local", EventID: uuid.NewString(), SiteID: 2,
			URL: "tls://example.com:465", CheckedAt: now.Add(-time.Minute), DurationMS: 30, Kind: checkevent.KindTLS,
			TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_256_GCM_SHA384", OCSPStapled: &yes}, Topic: "checks", Offset: 2},
		{Check: checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "local", EventID: uuid.NewString(), SiteID: 3,
			URL: "icmp://192.0.2.1", CheckedAt: now.Add(-time.Minute), DurationMS: 30, Kind: checkevent.KindICMP,
			ICMPSent: 3, ICMPReceived: 2, RTTAvgMS: &rtt}, Topic: "checks", Offset: 3},
		{Check: checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "heartbeat", EventID: uuid.NewString(), SiteID: 4,
			URL: "heartbeat://backup", CheckedAt: now.Add(-time.Minute), DurationMS: 95_000, Kind: checkevent.KindHeartbeat},
			Topic: "checks", Offset: 4},
		{Check: checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "heartbeat", EventID: uuid.NewString(), SiteID: 4,
			URL: "heartbeat://backup", CheckedAt: now.Add(-2 * time.Minute), Kind: checkevent.KindHeartbeat, ErrorClass: "missed",
			Error: "no ping since 2026-12-04T00:00:00Z"}, Topic: "checks", Offset: 5},
		{Check: checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "local", EventID: uuid.NewString(), SiteID: 5,
			URL: "https://slow.example.com/", CheckedAt: now.Add(-time.Minute), DurationMS: 950, StatusCode: 200,
			Degraded:   "response time 950ms over the limit of 800ms",
			Conditions: []checkevent.ConditionResult{{Condition: `$.ok == true`, Passed: true, Actual: "$.ok is true"}}}, Topic: "checks", Offset: 6},
	}
	_, err = store.New(pool, checkevent.IncidentTopic, prometheus.NewRegistry()).Insert(ctx, recs)
	require.NoError(t, err)
	s, err := New(Config{Addr: "127.0.0.1:0"}, pool, zaptest.NewLogger(t))
	require.NoError(t, err)
	h := s.Handler()

	code, body := get(t, h, "/api/sites/1")
	require.Equal(t, http.StatusOK, code, body)
	var d Detail
	require.NoError(t, json.Unmarshal([]byte(body), &d))
	require.Len(t, d.Checks, 1)
	require.Equal(t, "dns", d.Checks[0].Kind)
	require.Equal(t, []string{"192.0.2.1", "192.0.2.2"}, d.Checks[0].DNSAnswers)
	code, body = get(t, h, "/sites/1")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "<td>NOERROR 192.0.2.1, 192.0.2.2</td>")

	code, body = get(t, h, "/sites/2")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "<td>TLS 1.3 TLS_AES_256_GCM_SHA384</td>")

	code, body = get(t, h, "/sites/3")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "<td>2 of 3 echo replies, 1.25 ms on average</td>")

	code, body = get(t, h, "/sites/4")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "<td>ping after a run of 1m35s</td>")
	require.Contains(t, body, "<td>no ping in time</td>")

	code, body = get(t, h, "/sites/5")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, "<td>degraded: response time 950ms over the limit of 800ms</td>")
	var stored []byte
	require.NoError(t, pool.QueryRow(ctx, "SELECT conditions FROM stats WHERE site_id = 5").Scan(&stored))
	require.JSONEq(t, `[{"condition":"$.ok == true","passed":true,"actual":"$.ok is true"}]`, string(stored))
}
