// Package probe checks one site once: it sends the request, reads the body
// up to a cap, matches the regular expression, and classifies any failure.
// A failed check is a Result too; nothing is dropped.
package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// Error classes recorded with a failed check.
const (
	ClassDNS          = "dns"
	ClassConnect      = "connect"
	ClassTLS          = "tls"
	ClassTimeout      = "timeout"
	ClassHTTP         = "http" // protocol error, e.g. a malformed response
	ClassHTTPStatus   = "http_status"
	ClassRegex        = "regex"
	ClassRedirect     = "redirect"
	ClassBodyTooLarge = "body_too_large"
	ClassRead         = "read"
)

// Result is the outcome of one check.
type Result struct {
	Site         site.Site
	CheckedAt    time.Time
	StatusCode   int
	Duration     time.Duration // request sent to body read, or to failure
	RegexMatched *bool         // nil when the site has no regex or no body was read
	ErrorClass   string
	Error        string
	BodyBytes    int64
	Truncated    bool
}

// Config tunes the prober.
type Config struct {
	MaxBodyBytes int64
	UserAgent    string
	MaxRedirects int
}

// Prober runs checks. It is safe for concurrent use.
type Prober struct {
	cfg    Config
	client *http.Client
}

// New returns a Prober. Every check dials a fresh connection, so connect and
// TLS problems show up in every check instead of hiding behind a pool.
func New(cfg Config) *Prober {
	transport := &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{KeepAlive: -1}).DialContext,
		DisableKeepAlives:      true,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    0, // the per-check context bounds everything
		ResponseHeaderTimeout:  0,
		MaxResponseHeaderBytes: 64 << 10,
	}
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects {
				return errTooManyRedirects
			}
			return nil
		},
	}
	return &Prober{cfg: cfg, client: client}
}

var errTooManyRedirects = errors.New("too many redirects")

// Check checks s once. re is s.Regex compiled (nil when s has none). The
// site's timeout covers everything: connect, headers and the body, so a
// server trickling bytes cannot hold a worker past it.
func (p *Prober) Check(ctx context.Context, s site.Site, re *regexp.Regexp) Result {
	res := Result{Site: s, CheckedAt: time.Now().UTC()}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, s.Method, s.URL, nil)
	if err != nil {
		res.Duration = time.Since(start)
		res.ErrorClass, res.Error = ClassHTTP, err.Error()
		return res
	}
	req.Header.Set("User-Agent", p.cfg.UserAgent)

	resp, err := p.client.Do(req)
	if err != nil {
		res.Duration = time.Since(start)
		res.ErrorClass, res.Error = classify(ctx, err), err.Error()
		return res
	}
	defer func() { _ = resp.Body.Close() }()
	res.StatusCode = resp.StatusCode

	body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxBodyBytes+1))
	res.Duration = time.Since(start)
	if int64(len(body)) > p.cfg.MaxBodyBytes {
		body, res.Truncated = body[:p.cfg.MaxBodyBytes], true
	}
	res.BodyBytes = int64(len(body))
	if err != nil {
		res.ErrorClass, res.Error = classify(ctx, err), "reading body: "+err.Error()
		if res.ErrorClass == ClassHTTP {
			res.ErrorClass = ClassRead
		}
		return res
	}

	if re != nil {
		matched := re.Match(body)
		res.RegexMatched = &matched
	}
	switch {
	case resp.StatusCode < 200 || resp.StatusCode > 399:
		res.ErrorClass = ClassHTTPStatus
		res.Error = fmt.Sprintf("status %d %s: want 200-399", resp.StatusCode, http.StatusText(resp.StatusCode))
	case res.RegexMatched != nil && !*res.RegexMatched:
		res.ErrorClass = ClassRegex
		res.Error = fmt.Sprintf("body does not match %q", s.Regex)
		if res.Truncated {
			res.Error += fmt.Sprintf(" (only the first %d bytes were read)", p.cfg.MaxBodyBytes)
		}
	}
	return res
}

// classify maps a transport error to an error class.
func classify(ctx context.Context, err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	var alertErr tls.AlertError
	switch {
	case errors.Is(err, errTooManyRedirects):
		return ClassRedirect
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return ClassTimeout
	case errors.As(err, &dnsErr):
		return ClassDNS
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr),
		errors.As(err, &invalidCert), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return ClassTLS
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ClassConnect
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return ClassTimeout
	}
	return ClassHTTP
}
