package status

import (
	"context"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest"

	"github.com/sitewatch/sitewatch/db/dbtest"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/services/sink/internal/store"
)

// Badges say a site's status, uptime and response time as shields-style
// SVG, sized to their text, cached briefly and revalidated by ETag.
func TestBadges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.New(t))
	_, err := pool.Exec(ctx, `INSERT INTO sites (url) VALUES ('https://shop.example.com/'), ('https://never.example.com/')`)
	require.NoError(t, err)
	now := time.Now().UTC()
	var recs []store.Record
	for i := range 4 {
		c := checkevent.Check{SchemaVersion: checkevent.SchemaVersion, Region: "local", EventID: uuid.NewString(), SiteID: 1,
			URL: "https://shop.example.com/", CheckedAt: now.Add(-time.Duration(4-i) * time.Minute), DurationMS: 123.4, StatusCode: 200}
		if i == 0 {
			c.StatusCode, c.ErrorClass, c.Error = 0, "connect", "refused" // one of four failed: 75 %
		}
		recs = append(recs, store.Record{Check: c, Topic: "checks", Offset: int64(i)})
	}
	_, err = store.New(pool, checkevent.IncidentTopic, prometheus.NewRegistry()).Insert(ctx, recs)
	require.NoError(t, err)
	s, err := New(Config{Addr: "127.0.0.1:0"}, pool, zaptest.NewLogger(t))
	require.NoError(t, err)
	h := s.Handler()

	type svg struct {
		Width int    `xml:"width,attr"`
		Label string `xml:"aria-label,attr"`
		Rects []struct {
			Fill string `xml:"fill,attr"`
		} `xml:"g>rect"`
	}
	badge := func(path string) (svg, http.Header) {
		t.Helper()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		require.Equal(t, "image/svg+xml", w.Header().Get("Content-Type"))
		var b svg
		require.NoError(t, xml.Unmarshal(w.Body.Bytes(), &b), "well-formed SVG: %s", w.Body.String())
		return b, w.Header()
	}

	b, header := badge("/badges/1/status.svg")
	require.Equal(t, "status: up", b.Label)
	require.Equal(t, colorBrightGreen, b.Rects[1].Fill)
	require.Equal(t, textWidth("status")+10+textWidth("up")+10, b.Width, "sized to its text")
	require.Equal(t, "max-age=60", header.Get("Cache-Control"))

	b, _ = badge("/badges/1/uptime-24h.svg")
	require.Equal(t, "uptime 24h: 75%", b.Label)
	require.Equal(t, colorRed, b.Rects[1].Fill)
	b, _ = badge("/badges/1/response-time.svg")
	require.Equal(t, "response time: 123 ms", b.Label)
	require.Equal(t, colorBrightGreen, b.Rects[1].Fill)
	b, _ = badge("/badges/2/uptime-30d.svg")
	require.Equal(t, "uptime 30d: no checks", b.Label)
	require.Equal(t, colorGrey, b.Rects[1].Fill)
	b, _ = badge("/badges/2/status.svg")
	require.Equal(t, "status: unknown", b.Label)

	// Revalidation: the same badge, the same ETag, and 304 for it.
	req := httptest.NewRequest(http.MethodGet, "/badges/1/status.svg", nil)
	req.Header.Set("If-None-Match", header.Get("ETag"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, http.StatusNotModified, w.Code)

	for _, path := range []string{"/badges/1/status", "/badges/1/uptime-1y.svg", "/badges/x/status.svg", "/badges/99/status.svg"} {
		code, _ := get(t, h, path)
		require.Equal(t, http.StatusNotFound, code, path)
	}
}

func TestBadgeTextWidthAndColours(t *testing.T) {
	require.Equal(t, 7, textWidth("0"), "a digit is 1302/2048 of 11 px")
	require.Greater(t, textWidth("mmmm"), textWidth("iiii"), "proportional, not monospaced")
	require.InDelta(t, textWidth("ab")+textWidth("cd"), textWidth("abcd"), 1, "additive but for rounding up")
	for pct, want := range map[float64]string{100: "100%", 99.95: "99.95%", 99.999: "99.99%"} {
		_, v, _ := uptimeBadge("uptime", &pct)
		require.Equal(t, want, v, strconv.FormatFloat(pct, 'f', -1, 64))
	}
	for pct, color := range map[float64]string{99.9: colorBrightGreen, 99.5: colorGreen, 96: colorYellow, 90: colorRed} {
		_, _, c := uptimeBadge("uptime", &pct)
		require.Equal(t, color, c)
	}
	// Text is escaped: a value can never break out of the SVG.
	require.Regexp(t, regexp.MustCompile(`&lt;script&gt;`), string(badgeSVG("a", "<script>", colorRed)))
}
