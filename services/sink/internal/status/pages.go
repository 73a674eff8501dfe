package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// pageSize is how many sites a page of the list shows.
const pageSize = 50

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"pct": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return strconv.FormatFloat(*p, 'f', 2, 64) + " %"
	},
	"ms": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return strconv.FormatFloat(*p, 'f', 0, 64) + " ms"
	},
	"msf":      func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) + " ms" },
	"spark":    sparkPath,
	"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"day":      func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"uptimeOf": func(b Bucket) *float64 { return uptime([]Bucket{b}) },
	"add":      func(a, b int) int { return a + b },
	"query": func(q string, page int) string {
		return "?" + url.Values{"q": {q}, "page": {strconv.Itoa(page)}}.Encode()
	},
	"stacks":      stacks,
	"dayBars":     dayBars,
	"deref":       func(p *string) string { return deref(p) },
	"httpCode":    func(p *int32) string { return codeOf(p) },
	"lastPage":    func(p Page) int { return max(1, (p.Total+p.PageSize-1)/p.PageSize) },
	"hasErrors":   func(s Site) bool { return s.ErrorClass != "" },
	"statusWords": statusWords,
	"barsSVG":     barsSVG,
	"upct": func(p *float64) string {
		if p == nil {
			return "no data"
		}
		return pctText(*p)
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("Jan 2, 15:04 UTC") },
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":  func(s []string) string { return strings.Join(s, ", ") },
}).ParseFS(web, "web/*.html"))

func deref(p *string) string {
	if p == nil {
		return "—"
	}
	return *p
}

func codeOf(p *int32) string {
	if p == nil {
		return "—"
	}
	return strconv.Itoa(int(*p))
}

func (s *Server) routes() {
	s.mux.HandleFunc("GET /{$}", s.list)
	s.mux.HandleFunc("GET /sites/{id}", s.site)
	s.mux.HandleFunc("GET /api/sites", s.list)
	s.mux.HandleFunc("GET /api/sites/{id}", s.site)
	s.mux.HandleFunc("GET /badges/{id}/{badge}", s.badge)
	static, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	s.mux.Handle("GET /static/", http.FileServerFS(static))
}

func wantsJSON(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	page, err := strconv.Atoi(r.URL.Query().Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	if len(q) > 200 {
		q = q[:200]
	}
	p, err := s.src.Sites(r.Context(), q, page, pageSize)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "index.html", p)
}

func (s *Server) site(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		http.Error(w, "no such site", http.StatusNotFound)
		return
	}
	rng := r.URL.Query().Get("range")
	valid := false
	for _, x := range Ranges {
		valid = valid || x.Name == rng
	}
	if !valid {
		rng = "24h"
	}
	d, err := s.src.Site(r.Context(), id, rng)
	if errors.Is(err, ErrNoSite) {
		http.Error(w, "no such site", http.StatusNotFound)
		return
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "site.html", d)
}

// render writes v as JSON for /api/ and through template name otherwise.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, v any) {
	if wantsJSON(r) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			s.logger.Debug("writing a status response", zap.Error(err))
		}
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := templates.ExecuteTemplate(w, name, v); err != nil {
		s.logger.Warn("rendering the status page", zap.String("page", name), zap.Error(err))
	}
}

// fail logs err and shows the viewer a message that carries nothing of it
// (a database error may name hosts, users, queries).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.logger.Warn("status page", zap.String("path", r.URL.Path), zap.Error(err))
	http.Error(w, "the status page cannot read its data right now; see the sink's log", http.StatusServiceUnavailable)
}

// sparkPath is the SVG path of values in a 120×24 box.
func sparkPath(values []float64) string {
	top := 0.0
	for _, v := range values {
		top = math.Max(top, v)
	}
	if top == 0 {
		return ""
	}
	var b strings.Builder
	step := 120.0 / float64(max(len(values)-1, 1))
	pen := "M"
	for i, v := range values {
		if v == 0 {
			pen = "M" // a gap: no check that hour
			continue
		}
		fmt.Fprintf(&b, "%s%.1f %.1f ", pen, float64(i)*step, 23-22*v/top)
		pen = "L"
	}
	return strings.TrimSpace(b.String())
}

// Rect is one bar of a chart.
type Rect struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

// stacks draws d's series as bars stacked by phase in a 600×200 box whose
// width is d's range: a bucket sits where its time is.
func stacks(d Detail) []Rect {
	top := 0.0
	for _, b := range d.Series {
		top = math.Max(top, math.Max(b.MeanMS, b.DNSMS+b.ConnectMS+b.TLSMS+b.TTFBMS+b.TransferMS))
	}
	span := d.To.Sub(d.From)
	if top == 0 || span <= 0 {
		return nil
	}
	w := 600 * d.width.Seconds() / span.Seconds()
	var out []Rect
	for _, b := range d.Series {
		x := 600 * b.Start.Sub(d.From).Seconds() / span.Seconds()
		y := 200.0
		type phase struct {
			class string
			ms    float64
		}
		phases := []phase{{"dns", b.DNSMS}, {"connect", b.ConnectMS}, {"tls", b.TLSMS}, {"ttfb", b.TTFBMS}, {"transfer", b.TransferMS}}
		if b.DNSMS+b.ConnectMS+b.TLSMS+b.TTFBMS+b.TransferMS == 0 {
			phases = []phase{{"total", b.MeanMS}}
		}
		for _, p := range phases {
			h := 200 * p.ms / top
			y -= h
			out = append(out, Rect{X: x, Y: y, W: math.Max(w*0.9, 0.5), H: h, Class: p.class,
				Title: fmt.Sprintf("%s %s: %.1f ms", b.Start.UTC().Format("2006-01-02 15:04Z"), p.class, p.ms)})
		}
	}
	return out
}

// dayBars draws one bar per day of the last 30, coloured by uptime.
func dayBars(days []Bucket) []Rect {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	byDay := map[time.Time]Bucket{}
	for _, d := range days {
		byDay[d.Start.UTC()] = d
	}
	var out []Rect
	for i := range 30 {
		day := today.Add(time.Duration(i-29) * 24 * time.Hour)
		r := Rect{X: float64(i) * 20, Y: 0, W: 18, H: 30, Class: "none", Title: day.Format("2006-01-02") + ": no checks"}
		if b, ok := byDay[day]; ok && b.Checks > 0 {
			u := *uptime([]Bucket{b})
			r.Title = fmt.Sprintf("%s: %.2f %% up (%d checks)", day.Format("2006-01-02"), u, b.Checks)
			switch {
			case u >= 99.9:
				r.Class = "good"
			case u >= 99:
				r.Class = "fair"
			default:
				r.Class = "bad"
			}
		}
		out = append(out, r)
	}
	return out
}
