package site_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/services/monitor/internal/probe"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// fields are the names a *site.FieldError may give: the flags of
// `sites add` and the keys of a site file.
var fields = map[string]bool{"url": true, "method": true, "header": true, "expect": true, "match": true,
	"not-match": true, "interval": true, "timeout": true, "topic": true, "failure-threshold": true,
	"success-threshold": true, "quorum": true, "tls-warning-days": true, "regions": true, "name": true, "send": true}

// credentialNames are some query parameters that carry secrets.
var credentialNames = map[string]bool{"password": true, "token": true, "access_token": true, "api_key": true,
	"secret": true, "signature": true}

var errNoDial = errors.New("fuzz: no dialling")

// offline is net/http's client with every connection refused before it is
// made: a request it refuses for itself (a header value, a Host) fails with
// another error than errNoDial.
var offline = &http.Transport{Proxy: nil,
	DialContext: func(context.Context, string, string) (net.Conn, error) { return nil, errNoDial }}

// FuzzValidate: Validate never panics and gives the same answer twice; a
// refused site says which field is wrong, each problem a *site.FieldError
// whose message starts with its field; an accepted site can be checked:
// it compiles for the prober, its expected codes are HTTP codes, its topic
// is one the outbox takes, and net/http sends its request (no header or
// host that every check would then fail on).
func FuzzValidate(f *testing.F) {
	type seed struct {
		url, method, hname, hvalue, expect, match, notMatch string
		interval, timeout                                   int64 // milliseconds; 0: default
		topic, region                                       string
		quorum                                              int
	}
	for _, s := range []seed{
		{"https://example.com/health", "GET", "", "", "", "Example Domain", "", 30000, 5000, "", "", 0},
		{"https://api.example.com/health", "POST", "Authorization", "Bearer secret", "2xx", `"status":"ok"`, "maintenance", 30000, 5000, "", "eu-west", 1},
		{"http://a:8080/x?y=1", "HEAD", "Host", "internal.example", "200,204,301-308", "", "", 1000, 1000, "sitewatch.checks", "", 0},
		{"example.com", "GET", "", "", "", "(unclosed", "", 10, 0, "", "", 0},
		{"ftp://example.com", "FETCH", "Bad Name", "x", "7xx", "", "[z-a]", 48 * 3600 * 1000, -1, "a/b", "EU", 3},
		{"http://user:pw@a/", "GET", "X-A", "a\r\nInjected: 1", "200-99", "a{1,1000}", "", 0, 0, "", "", 0},
		{"http://a/?token=x", "GET", "Content-Length", "1", "", "", "", 0, 0, "", "-x", 0},
		{"http://a:99999", "GET", "", "", "", "", "", 0, 0, "", "", 0},
		// Found by the request property: a control character in a header
		// value passed Validate, and net/http refused every check's request.
		{"http://a", "GET", "X-Ctl", "a\x01b", "", "", "", 0, 0, "", "", 0},
		{"http://a", "GET", "X-Del", "a\x7f", "", "", "", 0, 0, "", "", 0},
		// A credential after a ';' escaped the check: URL.Query drops that pair.
		{"http://a/?x=1;token=secret", "GET", "", "", "", "", "", 0, 0, "", "", 0},
		{"http://a/?x=1&%54oken=secret", "GET", "", "", "", "", "", 0, 0, "", "", 0},
		{"http://a", "GET", "Host", "bad host/x", "", "", "", 0, 0, "", "", 0},
		{"http://[::1]:80/", "OPTIONS", "X-Tab", "a\tb", "1xx,5xx", "", "", 86400000, 10000, "", "local", 0},
		{"tcp://db.example.com:5432", "GET", "", "", "", "^\\+PONG", "", 0, 0, "", "", 0},
		{"tls://[2001:db8::1]:443/", "GET", "", "", "", "", "", 0, 0, "", "", 0},
		{"tcp://a", "GET", "", "", "", "", "", 0, 0, "", "", 0},
		{"tls://a:1/x?y", "POST", "X-A", "b", "200", "", "", 0, 0, "", "", 0},
	} {
		f.Add(s.url, s.method, s.hname, s.hvalue, s.expect, s.match, s.notMatch, s.interval, s.timeout, s.topic, s.region, s.quorum)
	}
	f.Fuzz(func(t *testing.T, rawURL, method, hname, hvalue, expect, match, notMatch string,
		intervalMS, timeoutMS int64, topic, region string, quorum int) {
		s := site.Site{URL: rawURL, Method: method, Expect: expect, Topic: topic, Quorum: quorum,
			Interval: time.Duration(intervalMS) * time.Millisecond, Timeout: time.Duration(timeoutMS) * time.Millisecond,
			TLSWarningDays: site.DefaultTLSWarningDays, Enabled: true}
		if hname != "" || hvalue != "" {
			s.Headers = map[string]string{hname: hvalue}
		}
		if match != "" {
			s.MustMatch = []string{match}
		}
		if notMatch != "" {
			s.MustNotMatch = []string{notMatch}
		}
		if region != "" {
			s.Regions = []string{region}
		}
		s = s.WithDefaults()

		err := s.Validate()
		if again := s.Validate(); (err == nil) != (again == nil) || err != nil && err.Error() != again.Error() {
			t.Fatalf("Validate answered %v, then %v", err, again)
		}
		if err != nil {
			checkFieldErrors(t, err)
			return
		}

		if _, err := probe.Compile(s); err != nil {
			t.Fatalf("accepted site does not compile for the prober: %v", err)
		}
		set, err := site.ParseStatusSet(s.Expect)
		if err != nil {
			t.Fatalf("accepted expect %q does not parse: %v", s.Expect, err)
		}
		if set.Contains(99) || set.Contains(600) {
			t.Fatalf("accepted expect %q holds codes outside 100..599", s.Expect)
		}
		if err := outbox.ValidateTopic(s.Topic); err != nil {
			t.Fatalf("accepted topic %q is refused by the outbox: %v", s.Topic, err)
		}
		if s.Interval < site.MinInterval || s.Interval > site.MaxInterval || s.Timeout <= 0 || s.Timeout > s.Interval {
			t.Fatalf("accepted interval %s / timeout %s", s.Interval, s.Timeout)
		}
		for _, re := range append(append([]string(nil), s.MustMatch...), s.MustNotMatch...) {
			if _, err := regexp.Compile(re); err != nil {
				t.Fatalf("accepted regex %q does not compile: %v", re, err)
			}
		}

		if s.Kind() != site.KindHTTP {
			// tcp:// and tls://: a host and a port to dial, nothing else.
			u, err := url.Parse(s.URL)
			if err != nil || u.Hostname() == "" || u.Port() == "" || u.RawQuery != "" || len(s.Headers) > 0 {
				t.Fatalf("accepted %s URL %q: %v", s.Kind(), s.URL, err)
			}
			if _, _, err := net.SplitHostPort(net.JoinHostPort(u.Hostname(), u.Port())); err != nil {
				t.Fatalf("accepted %s URL %q gives no address to dial: %v", s.Kind(), s.URL, err)
			}
			return
		}
		req, err := probe.NewRequest(context.Background(), s, "sitewatch-fuzz")
		if err != nil {
			t.Fatalf("accepted site makes no request: %v", err)
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" || req.URL.Hostname() == "" {
			t.Fatalf("accepted URL %q: scheme %q, host %q", s.URL, req.URL.Scheme, req.URL.Hostname())
		}
		// No credential in the query, however the server splits it (Go's
		// URL.Query drops a pair holding ';', which other servers split on).
		for pair := range strings.FieldsFuncSeq(req.URL.RawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
			name, _, _ := strings.Cut(pair, "=")
			if n, err := url.QueryUnescape(name); err == nil {
				name = n
			}
			if credentialNames[strings.ToLower(name)] {
				t.Fatalf("accepted URL %q carries query parameter %q, a credential", s.URL, name)
			}
		}
		if resp, err := offline.RoundTrip(req); !errors.Is(err, errNoDial) {
			if resp != nil {
				_ = resp.Body.Close()
			}
			t.Fatalf("net/http refuses the request of an accepted site (every check would fail): %v", err)
		}
	})
}

// checkFieldErrors asserts that every problem in err is a *site.FieldError
// naming a known field.
func checkFieldErrors(t *testing.T, err error) {
	t.Helper()
	all := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		all = joined.Unwrap()
	}
	for _, e := range all {
		var fe *site.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("problem %q (%T) names no field", e, e)
		}
		if !fields[fe.Field] {
			t.Fatalf("problem %q names unknown field %q", e, fe.Field)
		}
		if fe.Msg == "" || !strings.HasPrefix(fe.Error(), fe.Field+" ") {
			t.Fatalf("problem %q does not start with its field %q or says nothing", fe.Error(), fe.Field)
		}
	}
}
