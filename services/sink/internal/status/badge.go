package status

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Badge colours, as shields.io names them.
const (
	colorBrightGreen = "#4c1"
	colorGreen       = "#97ca00"
	colorYellow      = "#dfb317"
	colorOrange      = "#fe7d37"
	colorRed         = "#e05d44"
	colorGrey        = "#9f9f9f"
	colorBlue        = "#007ec6"
)

// badgeMaxAge is how long a badge may be cached: briefly, so it follows
// the site.
const badgeMaxAge = 60

// verdana11 is the advance width of ASCII characters in Verdana at 11 px,
// in 1/2048 em (the font's units), for a badge's text width; a character
// not listed counts as a wide one.
var verdana11 = map[rune]int{
	' ': 720, '%': 2200, '-': 862, '.': 745, ',': 745, ':': 889, '/': 1182, '(': 931, ')': 931, '+': 1716,
	'0': 1302, '1': 1302, '2': 1302, '3': 1302, '4': 1302, '5': 1302, '6': 1302, '7': 1302, '8': 1302, '9': 1302,
	'a': 1229, 'b': 1275, 'c': 1067, 'd': 1275, 'e': 1215, 'f': 720, 'g': 1275, 'h': 1296, 'i': 562, 'j': 695,
	'k': 1203, 'l': 562, 'm': 1991, 'n': 1296, 'o': 1248, 'p': 1275, 'q': 1275, 'r': 874, 's': 1067, 't': 807,
	'u': 1296, 'v': 1203, 'w': 1665, 'x': 1203, 'y': 1203, 'z': 1062,
	'A': 1401, 'B': 1405, 'C': 1430, 'D': 1577, 'E': 1294, 'F': 1178, 'G': 1589, 'H': 1540, 'I': 868, 'J': 924,
	'K': 1432, 'L': 1141, 'M': 1767, 'N': 1532, 'O': 1617, 'P': 1235, 'Q': 1617, 'R': 1430, 'S': 1403, 'T': 1264,
	'U': 1501, 'V': 1401, 'W': 2028, 'X': 1410, 'Y': 1260, 'Z': 1405,
}

// textWidth is s's width in Verdana 11 px, rounded up to a whole pixel.
func textWidth(s string) int {
	units := 0
	for _, r := range s {
		w, ok := verdana11[r]
		if !ok {
			w = 2048
		}
		units += w
	}
	return int(math.Ceil(float64(units) * 11 / 2048))
}

// badgeSVG is a flat, shields-style badge: label on grey, value on color.
func badgeSVG(label, value, color string) []byte {
	lw, vw := textWidth(label)+10, textWidth(value)+10
	w := lw + vw
	l, v := html.EscapeString(label), html.EscapeString(value)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="20" role="img" aria-label="%s: %s">`, w, l, v)
	fmt.Fprintf(&b, `<title>%s: %s</title>`, l, v)
	b.WriteString(`<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>`)
	fmt.Fprintf(&b, `<clipPath id="r"><rect width="%d" height="20" rx="3" fill="#fff"/></clipPath>`, w)
	fmt.Fprintf(&b, `<g clip-path="url(#r)"><rect width="%d" height="20" fill="#555"/><rect x="%d" width="%d" height="20" fill="%s"/><rect width="%d" height="20" fill="url(#s)"/></g>`,
		lw, lw, vw, color, w)
	b.WriteString(`<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">`)
	for _, t := range []struct {
		x    float64
		text string
	}{{float64(lw) / 2, l}, {float64(lw) + float64(vw)/2, v}} {
		fmt.Fprintf(&b, `<text x="%.1f" y="15" fill="#010101" fill-opacity=".3">%s</text><text x="%.1f" y="14">%s</text>`, t.x, t.text, t.x, t.text)
	}
	b.WriteString(`</g></svg>`)
	return []byte(b.String())
}

// badgeKinds are the badges of a site: label and how its value and
// colour come from the site's row of the list.
var badgeKinds = map[string]func(Site) (label, value, color string){
	"status":        statusBadge,
	"uptime-24h":    func(s Site) (string, string, string) { return uptimeBadge("uptime 24h", s.Uptime24h) },
	"uptime-7d":     func(s Site) (string, string, string) { return uptimeBadge("uptime 7d", s.Uptime7d) },
	"uptime-30d":    func(s Site) (string, string, string) { return uptimeBadge("uptime 30d", s.Uptime30d) },
	"response-time": responseBadge,
}

func statusBadge(s Site) (string, string, string) {
	color := map[string]string{"up": colorBrightGreen, "degraded": colorYellow, "down": colorRed, "stale": colorOrange,
		"partial outage": colorOrange, "maintenance": colorBlue}[s.State]
	if color == "" {
		color = colorGrey // unknown, paused
	}
	return "status", s.State, color
}

func uptimeBadge(label string, pct *float64) (string, string, string) {
	if pct == nil {
		return label, "no checks", colorGrey
	}
	p := *pct
	value := strconv.FormatFloat(math.Floor(p*100)/100, 'f', -1, 64) + "%" // never rounded up to 100
	switch {
	case p >= 99.9:
		return label, value, colorBrightGreen
	case p >= 99:
		return label, value, colorGreen
	case p >= 95:
		return label, value, colorYellow
	}
	return label, value, colorRed
}

func responseBadge(s Site) (string, string, string) {
	if s.CurrentMS == nil {
		return "response time", "no checks", colorGrey
	}
	ms := *s.CurrentMS
	value := strconv.FormatFloat(math.Round(ms), 'f', 0, 64) + " ms"
	switch {
	case ms < 300:
		return "response time", value, colorBrightGreen
	case ms < 1000:
		return "response time", value, colorYellow
	}
	return "response time", value, colorRed
}

// badge serves GET /badges/{id}/{kind}.svg: a site's status, uptime over
// 24 h, 7 d or 30 d, or latest response time, or, for a status page's slug
// in place of the id, the page's (its banner, its sites' uptime together,
// their mean response time over 24 h); cached briefly, with an ETag so a
// cache asks again cheaply. On the public listener a site's badges are
// served only when it is on a status page.
func (s *Server) badge(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("id")
	name, svg := strings.CutSuffix(r.PathValue("badge"), ".svg")
	kind := badgeKinds[name]
	if !svg || kind == nil {
		http.Error(w, "no such badge: want /badges/<site id or page slug>/{status,uptime-24h,uptime-7d,uptime-30d,response-time}.svg", http.StatusNotFound)
		return
	}
	var label, value, color string
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil && id > 0 {
		site, err := s.src.Summary(r.Context(), id)
		if err == nil && s.public {
			var listed bool
			if listed, err = s.src.listed(r.Context(), id); err == nil && !listed {
				err = ErrNoSite
			}
		}
		if errors.Is(err, ErrNoSite) {
			http.Error(w, "no such site", http.StatusNotFound)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		label, value, color = kind(site)
	} else {
		p, err := s.pageBadgeSite(r, ref)
		if errors.Is(err, ErrNoPage) {
			http.Error(w, "no such site or status page", http.StatusNotFound)
			return
		}
		if err != nil {
			s.fail(w, r, err)
			return
		}
		label, value, color = kind(p)
	}
	body := badgeSVG(label, value, color)
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:8]) + `"`
	w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(badgeMaxAge))
	w.Header().Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(body)
}

// pageBadgeSite is status page slug as one site for its badges.
func (s *Server) pageBadgeSite(r *http.Request, slug string) (Site, error) {
	if !validSlug(slug) {
		return Site{}, ErrNoPage
	}
	p, err := s.src.PublicPage(r.Context(), slug)
	if err != nil {
		return Site{}, err
	}
	return pageAsSite(p), nil
}

// pageAsSite is a public page as one site for its badges: its banner as
// the state, its sites' checks together for the uptimes, and their mean
// response time over 24 h.
func pageAsSite(p PublicPage) Site {
	state := map[string]string{"operational": "up", "degraded": "degraded", "partial_outage": "partial outage",
		"major_outage": "down", "maintenance": "maintenance", "unknown": "unknown"}[p.Overall.Level]
	site := Site{Name: p.Title, State: state}
	var hours, week, month []Bar
	var checks int64
	var sum float64
	for _, g := range p.Groups {
		for _, ps := range g.Sites {
			hours = append(hours, ps.Hours...)
			week = append(week, ps.Days[publicDays-7:]...)
			month = append(month, ps.Days[publicDays-30:]...)
			for _, b := range ps.Hours {
				checks += b.Checks
				sum += b.MeanMS * float64(b.Checks)
			}
		}
	}
	site.Uptime24h, site.Uptime7d, site.Uptime30d = barsUptime(hours), barsUptime(week), barsUptime(month)
	if checks > 0 {
		mean := sum / float64(checks)
		site.CurrentMS = &mean
	}
	return site
}
