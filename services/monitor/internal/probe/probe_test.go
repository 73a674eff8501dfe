package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

func newProber() *Prober {
	return New(Config{MaxBodyBytes: 1024, UserAgent: "sitewatch-test", MaxRedirects: 10})
}

func check(t *testing.T, url, regex string, timeout time.Duration) Result {
	t.Helper()
	s := site.Site{ID: 1, URL: url, Regex: regex, Timeout: timeout, Interval: time.Minute}.WithDefaults()
	var re *regexp.Regexp
	if regex != "" {
		re = regexp.MustCompile(regex)
	}
	return newProber().Check(context.Background(), s, re)
}

func TestCheck(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("status: healthy")) })
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("a", 5000) + "needle"))
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/ua", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(r.UserAgent())) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	tlsSrv := httptest.NewTLSServer(mux)
	t.Cleanup(tlsSrv.Close)

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedURL := "http://" + closed.Addr().String() + "/"
	require.NoError(t, closed.Close())

	yes, no := true, false
	for name, tc := range map[string]struct {
		url, regex string
		timeout    time.Duration
		status     int
		matched    *bool
		class      string
		errText    string
		truncated  bool
	}{
		"match":       {url: srv.URL + "/ok", regex: `healthy`, status: 200, matched: &yes},
		"no regex":    {url: srv.URL + "/ok", status: 200},
		"no match":    {url: srv.URL + "/ok", regex: `^down`, status: 200, matched: &no, class: ClassRegex, errText: `does not match "^down"`},
		"500":         {url: srv.URL + "/fail", regex: `boom`, status: 500, matched: &yes, class: ClassHTTPStatus, errText: "status 500"},
		"refused":     {url: closedURL, class: ClassConnect, errText: "refused"},
		"timeout":     {url: srv.URL + "/slow", timeout: 200 * time.Millisecond, class: ClassTimeout},
		"truncated":   {url: srv.URL + "/huge", regex: "needle", status: 200, matched: &no, class: ClassRegex, truncated: true, errText: "first 1024 bytes"},
		"redirects":   {url: srv.URL + "/loop", class: ClassRedirect, errText: "too many redirects"},
		"self-signed": {url: tlsSrv.URL + "/ok", class: ClassTLS, errText: "certificate"},
		"user agent":  {url: srv.URL + "/ua", regex: "^sitewatch-test$", status: 200, matched: &yes},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			r := check(t, tc.url, tc.regex, timeout)
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
		})
	}
}

func TestClassifyDNS(t *testing.T) {
	err := &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}
	require.Equal(t, ClassDNS, classify(context.Background(), err))
}
