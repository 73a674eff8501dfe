package status

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/sitewatch/sitewatch/platform/ops"
)

// PublicConfig is where the public status pages are served, without a
// token, and how hard one client may ask.
type PublicConfig struct {
	Addr string // host:port; "" serves no public pages
	// Rate is the requests per second one client may make, Burst how many
	// at once; beyond, 429 Too Many Requests.
	Rate  float64
	Burst int
	// ClientIPHeader names the header a trusted proxy or CDN in front puts
	// the client's address in (its last value counts); "" for the
	// connection's address.
	ClientIPHeader string
	// CacheFor is how long a rendered page is served again before it is
	// read anew, and what Cache-Control tells caches in front.
	CacheFor time.Duration
}

var headerName = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// Validate reports every setting that cannot work, each naming its flag.
func (c PublicConfig) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("public-addr: %q: want host:port", c.Addr))
	}
	if c.Rate <= 0 || c.Rate > 10000 {
		errs = append(errs, fmt.Errorf("public-rate-limit: %g: want more than 0 and at most 10000 requests per second per client", c.Rate))
	}
	if c.Burst < 1 || c.Burst > 10000 {
		errs = append(errs, fmt.Errorf("public-burst: %d: want 1..10000", c.Burst))
	}
	if c.ClientIPHeader != "" && !headerName.MatchString(c.ClientIPHeader) {
		errs = append(errs, fmt.Errorf("public-client-ip-header: %q: not a header name", c.ClientIPHeader))
	}
	if c.CacheFor < time.Second || c.CacheFor > 10*time.Minute {
		errs = append(errs, fmt.Errorf("public-cache: %s: want 1s..10m", c.CacheFor))
	}
	return errors.Join(errs...)
}

// PublicServer serves the public status pages, their Atom feeds, JSON and
// badges: only what a page names, to anyone, rate-limited per client.
type PublicServer struct {
	cfg     PublicConfig
	src     *Source
	logger  *zap.Logger
	mux     *http.ServeMux
	limits  *limiter
	cache   *renderCache
	badges  *Server // the badge handler, shared with the operator's page
	started time.Time
}

// NewPublic checks cfg and returns a PublicServer reading pool.
func NewPublic(cfg PublicConfig, pool *pgxpool.Pool, logger *zap.Logger) (*PublicServer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	src := &Source{pool: pool}
	s := &PublicServer{cfg: cfg, src: src, logger: logger, mux: http.NewServeMux(),
		limits: newLimiter(rate.Limit(cfg.Rate), cfg.Burst), cache: newRenderCache(cfg.CacheFor),
		badges: &Server{src: src, logger: logger, public: true}, started: time.Now()}
	s.mux.HandleFunc("GET /status/{slug}", s.page)
	s.mux.HandleFunc("GET /status/{slug}/feed.atom", s.feed)
	s.mux.HandleFunc("GET /api/status/{slug}", s.page)
	s.mux.HandleFunc("GET /badges/{id}/{badge}", s.badge)
	static, err := fs.Sub(web, "web/static")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such page: status pages are at /status/<slug>", http.StatusNotFound)
	})
	return s, nil
}

// Handler is the public listener's handler, the rate limit included.
func (s *PublicServer) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if wait, ok := s.limits.allow(s.clientIP(r)); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			http.Error(w, "too many requests", http.StatusTooManyRequests)
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

// Run serves until ctx ends. An address it cannot listen on is logged, and
// Run returns without serving.
func (s *PublicServer) Run(ctx context.Context) error {
	srv := &http.Server{Addr: s.cfg.Addr, Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	l, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		s.logger.Error("public status pages not served", zap.String("addr", s.cfg.Addr), zap.Error(err))
		return nil
	}
	s.logger.Info("public status pages listening", zap.String("addr", l.Addr().String()))
	return ops.Serve(ctx, srv, l, "public status pages")
}

// clientIP is who a request counts against: the last address in
// ClientIPHeader when set (what the trusted proxy saw), else the peer's.
func (s *PublicServer) clientIP(r *http.Request) string {
	if s.cfg.ClientIPHeader != "" {
		if v := r.Header.Values(s.cfg.ClientIPHeader); len(v) > 0 {
			parts := strings.Split(v[len(v)-1], ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// page serves /status/{slug} as HTML and /api/status/{slug} as JSON.
func (s *PublicServer) page(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
	asJSON := strings.HasPrefix(r.URL.Path, "/api/")
	kind := map[bool]string{true: "json", false: "html"}[asJSON]
	s.serve(w, r, slug, kind+" "+slug, func(p PublicPage) (string, []byte, error) {
		if asJSON {
			b, err := json.Marshal(p)
			return "application/json", append(b, '\n'), err
		}
		var buf bytes.Buffer
		err := templates.ExecuteTemplate(&buf, "public.html", publicView{PublicPage: p, now: p.Generated})
		return "text/html; charset=utf-8", buf.Bytes(), err
	})
}

// feed serves a page's incidents as an Atom feed.
func (s *PublicServer) feed(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
	s.serve(w, r, slug, "atom "+slug, func(p PublicPage) (string, []byte, error) {
		b, err := atomFeed(p)
		return "application/atom+xml; charset=utf-8", b, err
	})
}

// badge serves a site's badges (Server.badge: only for a site on a page)
// and a page's, these rendered from the page and cached with it: a badge
// costs no more than the page.
func (s *PublicServer) badge(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("id")
	name, svg := strings.CutSuffix(r.PathValue("badge"), ".svg")
	kind := badgeKinds[name]
	if _, err := strconv.ParseInt(ref, 10, 64); err == nil || !svg || kind == nil {
		s.badges.badge(w, r)
		return
	}
	s.serve(w, r, ref, "badge "+name+" "+ref, func(p PublicPage) (string, []byte, error) {
		return "image/svg+xml", badgeSVG(kind(pageAsSite(p))), nil
	})
}

// serve answers with page slug rendered by render (cached under key), from the cache when it
// is fresh, with an ETag (304 when it matches), a Cache-Control a CDN
// follows and gzip when the client takes it.
func (s *PublicServer) serve(w http.ResponseWriter, r *http.Request, slug, key string, render func(PublicPage) (string, []byte, error)) {
	if !validSlug(slug) {
		http.Error(w, "no such status page", http.StatusNotFound)
		return
	}
	e, err := s.cache.get(key, func() (*rendered, error) {
		p, err := s.src.PublicPage(r.Context(), slug)
		if errors.Is(err, ErrNoPage) {
			return &rendered{status: http.StatusNotFound, contentType: "text/plain; charset=utf-8", body: []byte("no such status page\n")}, nil
		}
		if err != nil {
			return nil, err
		}
		ct, body, err := render(p)
		if err != nil {
			return nil, fmt.Errorf("rendering status page %s: %w", slug, err)
		}
		return newRendered(http.StatusOK, ct, body), nil
	})
	if err != nil {
		s.logger.Warn("public status page", zap.String("path", r.URL.Path), zap.Error(err))
		http.Error(w, "this status page cannot be shown right now", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	if e.status != http.StatusOK {
		h.Set("Content-Type", e.contentType)
		h.Set("Cache-Control", "public, max-age=10")
		w.WriteHeader(e.status)
		_, _ = w.Write(e.body)
		return
	}
	h.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(s.cfg.CacheFor.Seconds())))
	h.Set("ETag", e.etag)
	h.Set("Vary", "Accept-Encoding")
	if etagMatches(r.Header.Get("If-None-Match"), e.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", e.contentType)
	body := e.body
	if acceptsGzip(r) && e.gzipped != nil {
		h.Set("Content-Encoding", "gzip")
		body = e.gzipped
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func validSlug(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

// etagMatches says whether an If-None-Match header names etag.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// rendered is a response as the cache keeps it.
type rendered struct {
	status      int
	contentType string
	body        []byte
	gzipped     []byte // body, gzipped; nil when it does not pay
	etag        string
	at          time.Time
}

func newRendered(status int, contentType string, body []byte) *rendered {
	sum := sha256.Sum256(body)
	e := &rendered{status: status, contentType: contentType, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if len(body) > 1024 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		if _, err := zw.Write(body); err == nil && zw.Close() == nil {
			e.gzipped = buf.Bytes()
		}
	}
	return e
}

// renderCache keeps each rendered response for a while, and renders a
// missing one once however many ask for it at the same time.
type renderCache struct {
	ttl     time.Duration
	mu      sync.Mutex
	entries map[string]*rendered
	flight  singleflight.Group
}

// maxCached bounds the cache: past it, it is emptied (the pages are few,
// and a miss costs one render).
const maxCached = 1000

func newRenderCache(ttl time.Duration) *renderCache {
	return &renderCache{ttl: ttl, entries: map[string]*rendered{}}
}

func (c *renderCache) get(key string, render func() (*rendered, error)) (*rendered, error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && time.Since(e.at) < c.ttl {
		return e, nil
	}
	v, err, _ := c.flight.Do(key, func() (any, error) {
		e, err := render()
		if err != nil {
			return nil, err
		}
		e.at = time.Now()
		c.mu.Lock()
		if len(c.entries) >= maxCached {
			clear(c.entries)
		}
		c.entries[key] = e
		c.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*rendered), nil
}

// limiter is a token bucket per client, forgetting those idle a while.
type limiter struct {
	rate    rate.Limit
	burst   int
	mu      sync.Mutex
	clients map[string]*client
	swept   time.Time
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxClients bounds the limiter's memory: past it, idle clients are
// forgotten at once, and if none is idle every newcomer shares one bucket.
const maxClients = 100_000

func newLimiter(r rate.Limit, burst int) *limiter {
	return &limiter{rate: r, burst: burst, clients: map[string]*client{}, swept: time.Now()}
}

// allow takes a token of ip's bucket; without one, it says how long until
// the next.
func (l *limiter) allow(ip string) (time.Duration, bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute || len(l.clients) >= maxClients {
		for k, c := range l.clients {
			if now.Sub(c.seen) > 3*time.Minute {
				delete(l.clients, k)
			}
		}
		l.swept = now
		if len(l.clients) >= maxClients {
			ip = "overflow"
		}
	}
	c, ok := l.clients[ip]
	if !ok {
		c = &client{lim: rate.NewLimiter(l.rate, l.burst)}
		l.clients[ip] = c
	}
	c.seen = now
	res := c.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d, false
	}
	return 0, true
}

// atomFeed is a page's outages as an Atom feed (RFC 4287): one entry per
// outage, updated when it is resolved.
func atomFeed(p PublicPage) ([]byte, error) {
	type link struct {
		Href string `xml:"href,attr"`
		Rel  string `xml:"rel,attr,omitempty"`
		Type string `xml:"type,attr,omitempty"`
	}
	type text struct {
		Type string `xml:"type,attr,omitempty"`
		Body string `xml:",chardata"`
	}
	type entry struct {
		ID      string `xml:"id"`
		Title   string `xml:"title"`
		Updated string `xml:"updated"`
		Link    link   `xml:"link"`
		Summary text   `xml:"summary"`
	}
	type feed struct {
		XMLName xml.Name `xml:"http://www.w3.org/2005/Atom feed"`
		ID      string   `xml:"id"`
		Title   string   `xml:"title"`
		Updated string   `xml:"updated"`
		Author  struct {
			Name string `xml:"name"`
		} `xml:"author"`
		Links   []link  `xml:"link"`
		Entries []entry `xml:"entry"`
	}
	stamp := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	page := "/status/" + p.Slug
	f := feed{ID: feedID(p.Slug, 0), Title: p.Title + ": incidents", Updated: stamp(p.Generated),
		Links: []link{{Href: page + "/feed.atom", Rel: "self", Type: "application/atom+xml"}, {Href: page, Rel: "alternate", Type: "text/html"}}}
	f.Author.Name = p.Title
	var newest time.Time
	for _, i := range p.Incidents {
		updated, summary := i.Started, fmt.Sprintf("%s has been down since %s.", i.Site, stamp(i.Started))
		title := "Outage: " + i.Site
		if i.Resolved != nil {
			updated = *i.Resolved
			summary = fmt.Sprintf("%s was down from %s to %s (%s).", i.Site, stamp(i.Started), stamp(*i.Resolved), humanDuration(i.Duration(p.Generated)))
			title = "Resolved: " + title
		}
		if updated.After(newest) {
			newest = updated
		}
		f.Entries = append(f.Entries, entry{ID: feedID(p.Slug, i.ID), Title: title, Updated: stamp(updated),
			Link: link{Href: page + "#incident-" + strconv.FormatInt(i.ID, 10), Rel: "alternate"}, Summary: text{Type: "text", Body: summary}})
	}
	// The feed changes when an entry does, not at every read.
	f.Updated = stamp(p.Generated.Truncate(24 * time.Hour))
	if !newest.IsZero() {
		f.Updated = stamp(newest)
	}
	out, err := xml.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding the Atom feed: %w", err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

// feedNamespace makes the feeds' ids: stable UUIDs of a page and of each
// of its incidents.
var feedNamespace = uuid.MustParse("5c8f3e4a-6b1d-4f0e-9a57-2d3c1b7e8f90")

func feedID(slug string, incident int64) string {
	return "urn:uuid:" + uuid.NewSHA1(feedNamespace, []byte(slug+"/"+strconv.FormatInt(incident, 10))).String()
}
