package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

func target(t *testing.T, s site.Site) *Target {
	t.Helper()
	tg, err := Compile(s.WithDefaults())
	require.NoError(t, err)
	return tg
}

func TestCheck(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("status: healthy")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	mux.HandleFunc("/slow-headers", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/trickle", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for range 200 { // 10 s of one byte every 50 ms
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-time.After(50 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("a", 5000) + "needle"))
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/hop1", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/hop2", http.StatusFound) })
	mux.HandleFunc("/hop2", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusMovedPermanently) })
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "ua=%s token=%s host=%s", r.UserAgent(), r.Header.Get("X-Token"), r.Host)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	now := time.Now()
	ca := testCert(t, "test CA", true, now.Add(-time.Hour), now.Add(30*24*time.Hour), nil)
	serveTLS := func(cert tls.Certificate) string {
		s := httptest.NewUnstartedServer(mux)
		s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.StartTLS()
		t.Cleanup(s.Close)
		return s.URL
	}
	goodTLS := serveTLS(testCert(t, "good", false, now.Add(-time.Hour), now.Add(90*24*time.Hour), &ca))
	expiredTLS := serveTLS(testCert(t, "expired", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour), &ca))
	selfSigned := testCert(t, "self-signed", false, now.Add(-time.Hour), now.Add(10*24*time.Hour), nil)
	selfSignedTLS := serveTLS(selfSigned)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedURL := "http://" + closed.Addr().String() + "/"
	require.NoError(t, closed.Close())

	yes, no := true, false
	for name, tc := range map[string]struct {
		site      site.Site
		status    int
		matched   *bool
		class     string
		errText   string
		truncated bool
		check     func(t *testing.T, r Result)
	}{
		"match": {site: site.Site{URL: srv.URL + "/ok", MustMatch: []string{`healthy`, `^status`}}, status: 200, matched: &yes,
			check: func(t *testing.T, r Result) {
				require.Equal(t, []checkevent.RegexResult{{Pattern: "healthy", Match: true, Matched: true},
					{Pattern: "^status", Match: true, Matched: true}}, r.Regexes)
				require.EqualValues(t, len("status: healthy"), r.BodyBytes)
				require.Equal(t, "127.0.0.1", r.RemoteIP)
				require.Equal(t, srv.URL+"/ok", r.FinalURL)
				require.Positive(t, r.Phases.Connect)
				require.Positive(t, r.Phases.TTFB)
				require.Zero(t, r.Phases.TLS, "plain http")
				require.Zero(t, r.Phases.DNS, "an IP address needs no lookup")
			}},
		"no regex": {site: site.Site{URL: srv.URL + "/ok"}, status: 200,
			check: func(t *testing.T, r Result) { require.EqualValues(t, 15, r.BodyBytes, "counted though not kept") }},
		"no match": {site: site.Site{URL: srv.URL + "/ok", MustMatch: []string{`healthy`, `^down`}}, status: 200, matched: &no,
			class: ClassRegex, errText: `does not match "^down"`},
		"must not match": {site: site.Site{URL: srv.URL + "/ok", MustMatch: []string{"healthy"}, MustNotMatch: []string{"error", "health"}},
			status: 200, matched: &no, class: ClassRegex, errText: `matches must-not-match "health"`,
			check: func(t *testing.T, r Result) {
				require.Equal(t, []checkevent.RegexResult{{Pattern: "healthy", Match: true, Matched: true},
					{Pattern: "error", Matched: false}, {Pattern: "health", Matched: true}}, r.Regexes)
			}},
		"500":            {site: site.Site{URL: srv.URL + "/fail", MustMatch: []string{`boom`}}, status: 500, matched: &yes, class: ClassHTTPStatus, errText: "status 500 Internal Server Error: want 200-399"},
		"500 expected":   {site: site.Site{URL: srv.URL + "/fail", Expect: "500"}, status: 500},
		"200 unexpected": {site: site.Site{URL: srv.URL + "/ok", Expect: "204"}, status: 200, class: ClassHTTPStatus, errText: "want 204"},
		"refused":        {site: site.Site{URL: closedURL}, class: ClassConnect, errText: "refused"},
		"slow headers":   {site: site.Site{URL: srv.URL + "/slow-headers", Timeout: 300 * time.Millisecond}, class: ClassTimeout},
		"trickling body": {site: site.Site{URL: srv.URL + "/trickle", Timeout: 400 * time.Millisecond}, status: 200, class: ClassTimeout, errText: "reading body",
			check: func(t *testing.T, r Result) {
				require.Positive(t, r.BodyBytes)
				require.Less(t, r.BodyBytes, int64(200))
			}},
		"huge body": {site: site.Site{URL: srv.URL + "/huge", MustMatch: []string{"needle"}}, status: 200, matched: &no,
			class: ClassBodyTooLarge, truncated: true, errText: "larger than 1024 bytes",
			check: func(t *testing.T, r Result) { require.EqualValues(t, 1024, r.BodyBytes) }},
		"redirect loop": {site: site.Site{URL: srv.URL + "/loop"}, class: ClassRedirect, errText: "too many redirects",
			check: func(t *testing.T, r Result) { require.Equal(t, 10, r.Redirects) }},
		"redirects": {site: site.Site{URL: srv.URL + "/hop1", MustMatch: []string{"healthy"}}, status: 200, matched: &yes,
			check: func(t *testing.T, r Result) {
				require.Equal(t, 2, r.Redirects)
				require.Equal(t, srv.URL+"/ok", r.FinalURL)
			}},
		"headers": {site: site.Site{URL: srv.URL + "/echo", Headers: map[string]string{"X-Token": "s3cret", "Host": "example.test"},
			MustMatch: []string{"^ua=sitewatch-test token=s3cret host=example.test$"}}, status: 200, matched: &yes},
		"user agent header": {site: site.Site{URL: srv.URL + "/echo", Headers: map[string]string{"User-Agent": "custom"},
			MustMatch: []string{"^ua=custom "}}, status: 200, matched: &yes},
		"tls": {site: site.Site{URL: goodTLS + "/ok"}, status: 200,
			check: func(t *testing.T, r Result) {
				require.Positive(t, r.Phases.TLS)
				require.WithinDuration(t, now.Add(90*24*time.Hour), r.TLSExpiry, time.Second, "the leaf's expiry")
				require.WithinDuration(t, now.Add(30*24*time.Hour), r.TLSChainExpiry, time.Second, "the CA expires first")
				require.Equal(t, "TLS 1.3", r.TLSVersion, "an https check reports its handshake")
				require.NotEmpty(t, r.TLSCipher)
				require.False(t, *r.OCSPStapled)
			}},
		"self-signed": {site: site.Site{URL: selfSignedTLS + "/ok"}, class: ClassTLS, errText: "certificate signed by unknown authority",
			check: func(t *testing.T, r Result) {
				require.WithinDuration(t, selfSigned.Leaf.NotAfter, r.TLSExpiry, time.Second, "expiry read from the refused certificate")
			}},
		"expired": {site: site.Site{URL: expiredTLS + "/ok"}, class: ClassTLS, errText: "expired",
			check: func(t *testing.T, r Result) { require.True(t, r.TLSExpiry.Before(now), "%s", r.TLSExpiry) }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := tc.site
			s.ID, s.Interval = 1, time.Minute
			if s.Timeout == 0 {
				s.Timeout = 5 * time.Second
			}
			p := New(Config{MaxBodyBytes: 1024, UserAgent: "sitewatch-test", MaxRedirects: 10, RootCAs: roots})
			r := p.Check(context.Background(), target(t, s))
			require.Equal(t, tc.status, r.StatusCode)
			require.Equal(t, tc.matched, r.RegexMatched)
			require.Equal(t, tc.class, r.ErrorClass, r.Error)
			require.Contains(t, r.Error, tc.errText)
			require.Equal(t, tc.truncated, r.Truncated)
			require.Positive(t, r.Duration)
			require.False(t, r.CheckedAt.IsZero())
			if tc.class == ClassTimeout {
				require.Less(t, r.Duration, 2*time.Second, "the timeout bounds the check")
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func TestGuardRefusesPrivateAddressesAtDialTime(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("internal secrets"))
	}))
	t.Cleanup(srv.Close)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	guarded := New(Config{MaxBodyBytes: 1024, MaxRedirects: 10, Guard: NewGuard(nil)})
	allowed := New(Config{MaxBodyBytes: 1024, MaxRedirects: 10, Guard: NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})})
	open := New(Config{MaxBodyBytes: 1024, MaxRedirects: 10})
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/"} { // by address, and by a name resolving to it
		tg := target(t, site.Site{ID: 1, URL: u, Timeout: 5 * time.Second})
		r := guarded.Check(context.Background(), tg)
		require.Equal(t, ClassBlocked, r.ErrorClass, u)
		require.Contains(t, r.Error, "private or special-purpose address", u)
		require.Contains(t, r.Error, "MONITOR_ALLOW_NETS", u)
		require.Zero(t, r.StatusCode)

		r = allowed.Check(context.Background(), tg)
		require.Empty(t, r.ErrorClass, "an allow-listed net passes: %s", r.Error)
		r = open.Check(context.Background(), tg)
		require.Empty(t, r.ErrorClass, "without a guard anything goes: %s", r.Error)
		if strings.Contains(u, "localhost") {
			require.Positive(t, r.Phases.DNS, "a name is looked up")
		}
	}
}

// The guard's decision for every special-purpose range, decided without
// sending traffic anywhere.
func TestGuardRefusesEverySpecialPurposeRange(t *testing.T) {
	g := NewGuard(nil)
	for addr, blocked := range map[string]bool{
		"0.0.0.0:80": true, "0.1.2.3:80": true, "10.1.2.3:80": true, "100.64.0.1:80": true, "100.127.255.254:80": true,
		"100.100.100.200:80": true, // a cloud metadata service in the shared range
		"127.0.0.1:80":       true, "127.9.9.9:80": true, "169.254.169.254:80": true, "172.16.0.1:80": true,
		"172.31.255.255:80": true, "192.0.0.8:80": true, "192.0.2.1:80": true, "192.88.99.1:80": true,
		"192.168.1.1:443": true, "198.18.0.1:80": true, "198.19.255.255:80": true, "198.51.100.7:80": true,
		"203.0.113.9:80": true, "224.0.0.1:80": true, "239.255.255.250:80": true, "240.0.0.1:80": true,
		"255.255.255.255:80": true,
		"[::]:80":            true, "[::1]:80": true, "[::ffff:127.0.0.1]:80": true, "[::ffff:10.0.0.1]:80": true,
		"[::127.0.0.1]:80": true, "[64:ff9b::7f00:1]:80": true, "[64:ff9b:1::a00:1]:80": true,
		"[2002:7f00:1::]:80": true, "[2001::1]:80": true, "[2001:db8::1]:80": true, "[100::1]:80": true,
		"[fc00::1]:80": true, "[fd00::1]:80": true, "[fe80::1]:80": true, "[fec0::1]:80": true, "[ff02::1]:80": true,
		"93.184.216.34:443": false, "8.8.8.8:53": false, "100.63.255.255:80": false, "100.128.0.0:80": false,
		"172.32.0.1:80": false, "198.20.0.1:80": false, "[::ffff:93.184.216.34]:443": false,
		"[2606:2800:220:1::]:443": false, "[2a00:1450:4001::1]:443": false,
	} {
		err := g.control("tcp", addr, nil)
		if blocked {
			require.ErrorIs(t, err, ErrBlocked, addr)
		} else {
			require.NoError(t, err, addr)
		}
	}
	require.ErrorIs(t, g.control("tcp", "example.com:80", nil), ErrBlocked, "only addresses are dialled")
}

func TestGuardAllowList(t *testing.T) {
	nets, err := ParseNets(" 10.20.0.0/16, fd00::/8 ,")
	require.NoError(t, err)
	g := NewGuard(nets)
	require.NoError(t, g.Allowed(netip.MustParseAddr("10.20.3.4")))
	require.NoError(t, g.Allowed(netip.MustParseAddr("fd12::1")))
	require.ErrorIs(t, g.Allowed(netip.MustParseAddr("10.21.0.1")), ErrBlocked)
	require.ErrorIs(t, g.Allowed(netip.MustParseAddr("127.0.0.1")), ErrBlocked)
	_, err = ParseNets("10.0.0.0/33")
	require.ErrorContains(t, err, `"10.0.0.0/33": want a CIDR`)
	none, err := ParseNets("")
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestClassifyDNS(t *testing.T) {
	err := &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}
	require.Equal(t, ClassDNS, classify(context.Background(), err))
}

func TestCompileRefusesBadRegex(t *testing.T) {
	_, err := Compile(site.Site{URL: "http://a", MustNotMatch: []string{"(x"}})
	require.ErrorContains(t, err, "must-not-match regex")
}

// A server that resets the connection instead of answering is a network
// failure, not an HTTP one; so is one that closes it without a word.
func TestResetOrCloseBeforeTheResponseIsARead(t *testing.T) {
	t.Parallel()
	for name, reset := range map[string]bool{"reset": true, "closed": false} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 4096)
				_, _ = c.Read(buf) // the request, then no response
				if reset {
					_ = c.(*net.TCPConn).SetLinger(0) // RST instead of FIN
				}
				_ = c.Close()
			}
		}()
		p := New(Config{MaxBodyBytes: 1024, MaxRedirects: 10})
		r := p.Check(context.Background(), target(t, site.Site{ID: 1, URL: "http://" + l.Addr().String() + "/", Timeout: 5 * time.Second}))
		require.Equal(t, ClassRead, r.ErrorClass, "%s: %s", name, r.Error)
	}
}

// A redirect to another host does not carry the site's headers along.
func TestSiteHeadersStayWithTheSitesHost(t *testing.T) {
	t.Parallel()
	got := make(chan http.Header, 2)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	t.Cleanup(other.Close)
	// Same server, another host name: 127.0.0.1 and localhost.
	_, port, err := net.SplitHostPort(other.Listener.Addr().String())
	require.NoError(t, err)
	site1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/same" {
			http.Redirect(w, r, "/landed", http.StatusFound)
			return
		}
		if r.URL.Path == "/landed" {
			got <- r.Header.Clone()
			return
		}
		http.Redirect(w, r, "http://localhost:"+port+"/", http.StatusFound)
	}))
	t.Cleanup(site1.Close)
	p := New(Config{MaxBodyBytes: 1024, MaxRedirects: 10, UserAgent: "sitewatch-test"})
	headers := map[string]string{"X-Api-Key": "secret-key", "Cookie": "session=1"}

	r := p.Check(context.Background(), target(t, site.Site{ID: 1, URL: site1.URL + "/away", Headers: headers, Timeout: 5 * time.Second}))
	require.Empty(t, r.ErrorClass, r.Error)
	h := <-got
	require.Empty(t, h.Get("X-Api-Key"), "not sent to another host")
	require.Empty(t, h.Get("Cookie"))
	require.Equal(t, "sitewatch-test", h.Get("User-Agent"))

	r = p.Check(context.Background(), target(t, site.Site{ID: 1, URL: site1.URL + "/same", Headers: headers, Timeout: 5 * time.Second}))
	require.Empty(t, r.ErrorClass, r.Error)
	h = <-got
	require.Equal(t, "secret-key", h.Get("X-Api-Key"), "kept within the site's own host")
}
