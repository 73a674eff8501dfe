// Package probe checks one site once: it sends the request, times each
// phase, reads the body up to a cap, matches the regexes, and classifies
// any failure. A failed check is a Result too; nothing is dropped.
package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"syscall"
	"time"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/services/monitor/internal/condition"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// Error classes recorded with a failed check.
const (
	ClassDNS          = "dns"
	ClassConnect      = "connect"
	ClassBlocked      = "blocked" // the guard refused a private, loopback or link-local address
	ClassTLS          = "tls"
	ClassTimeout      = "timeout"
	ClassHTTP         = "http" // protocol error, e.g. a malformed response
	ClassRedirect     = "redirect"
	ClassHTTPStatus   = "http_status"
	ClassBodyTooLarge = "body_too_large"
	ClassRegex        = "regex"
	ClassCondition    = "condition" // a condition on the response did not hold
	ClassRead         = "read"
	ClassDNSRCode     = "dns_rcode"  // the response code is not the one expected
	ClassDNSAnswer    = "dns_answer" // no answer (or not every one) expected
	ClassDNSSEC       = "dnssec"     // the resolver did not validate the answer (no AD flag)
)

// Phases is where a check's time went, summed over redirects.
type Phases struct {
	DNS      time.Duration
	Connect  time.Duration
	TLS      time.Duration
	TTFB     time.Duration // request written to first response byte
	Transfer time.Duration // first response byte to body read
}

// Result is the outcome of one check.
type Result struct {
	Site           site.Site
	Planned        time.Time // when the scheduler meant to start it
	Region         string    // the region of the monitor that checked it
	CheckedAt      time.Time
	StatusCode     int
	Duration       time.Duration // request start to body read, or to failure
	Phases         Phases
	RegexMatched   *bool // nil when the site has no regexes or no body was read
	Regexes        []checkevent.RegexResult
	ErrorClass     string
	Error          string
	BodyBytes      int64
	Truncated      bool
	Redirects      int
	FinalURL       string
	TLSExpiry      time.Time // leaf certificate's NotAfter; zero without TLS
	TLSChainExpiry time.Time // earliest NotAfter in the chain
	TLSVersion     string    // of the handshake (tls, https), e.g. "TLS 1.3"
	TLSCipher      string
	OCSPStapled    *bool // nil without a handshake
	DNSRCode       string
	DNSAnswers     []string // of a dns check, as dig prints them
	ICMPSent       int      // echo requests of an icmp check, and their replies
	ICMPReceived   int
	RTTMin         time.Duration // the replies' round trips
	RTTAvg         time.Duration
	RTTMax         time.Duration
	RemoteIP       string
	Conditions     []checkevent.ConditionResult
	Degraded       string // why a passing check was too slow; "" when it was not
}

// Config tunes the prober.
type Config struct {
	MaxBodyBytes int64 // body bytes read at most; more is body_too_large
	UserAgent    string
	MaxRedirects int
	// Guard, if not nil, decides which addresses checks may connect to,
	// at dial time. Nil connects anywhere.
	Guard *Guard
	// RootCAs verifies servers' certificates; nil means the system's.
	RootCAs *x509.CertPool
}

// Prober runs checks. It is safe for concurrent use.
type Prober struct {
	cfg    Config
	client *http.Client
	dialer *net.Dialer // the client's, for tcp and tls checks: the guard sees every address
	bufs   sync.Pool
}

// New returns a Prober. Every check dials a fresh connection, so connect and
// TLS problems show up in every check instead of hiding behind a pool.
func New(cfg Config) *Prober {
	dialer := &net.Dialer{KeepAlive: -1}
	proxy := http.ProxyFromEnvironment
	if cfg.Guard != nil {
		dialer.Control = cfg.Guard.control
		proxy = nil // the guard must see the target's address, not a proxy's
	}
	transport := &http.Transport{
		Proxy:                  proxy,
		DialContext:            dialer.DialContext,
		DisableKeepAlives:      true,
		DisableCompression:     true, // body bytes and the cap are what the server sent
		ForceAttemptHTTP2:      true,
		MaxResponseHeaderBytes: 64 << 10,
		TLSClientConfig:        &tls.Config{RootCAs: cfg.RootCAs},
		// No per-phase timeouts: the per-check context bounds everything.
	}
	client := &http.Client{
		Transport: transport,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > cfg.MaxRedirects {
				return errTooManyRedirects
			}
			// A site's headers (tokens, cookies) go only where the site
			// said: not to another host, and not down from https to http.
			first := via[0]
			if req.URL.Host != first.URL.Host || req.URL.Scheme != first.URL.Scheme {
				for name := range first.Header {
					if name != "User-Agent" {
						req.Header.Del(name)
					}
				}
			}
			if tr, ok := req.Context().Value(tracerKey{}).(*tracer); ok {
				tr.setRedirects(len(via))
			}
			return nil
		},
	}
	return &Prober{cfg: cfg, client: client, dialer: dialer, bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }}}
}

var errTooManyRedirects = errors.New("too many redirects")

// Check checks t once, as its kind says: HTTP in checkHTTP, tcp and tls in
// checkStream, dns in checkDNS, grpc(s) in checkGRPC, icmp in checkICMP.
// The site's timeout covers everything: connect, headers and the body (the
// reply), so a server trickling bytes cannot hold a worker past it. A
// passing check slower than the site's DegradedAfter says so.
func (p *Prober) Check(ctx context.Context, t *Target) Result {
	res := p.check(ctx, t)
	if limit := t.Site.DegradedAfter; limit > 0 && res.ErrorClass == "" && res.Duration > limit {
		res.Degraded = fmt.Sprintf("response time %s over the limit of %s", res.Duration.Round(time.Millisecond), limit)
	}
	return res
}

func (p *Prober) check(ctx context.Context, t *Target) Result {
	s := t.Site
	res := Result{Site: s, CheckedAt: time.Now().UTC()}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()

	switch s.Kind() {
	case site.KindTCP, site.KindTLS:
		return p.checkStream(ctx, t, res)
	case site.KindDNS:
		return p.checkDNS(ctx, t, res)
	case site.KindGRPC, site.KindGRPCS:
		return p.checkGRPC(ctx, t, res)
	case site.KindICMP:
		return p.checkICMP(ctx, t, res)
	}

	start := time.Now()
	tr := &tracer{}
	ctx = context.WithValue(httptrace.WithClientTrace(ctx, tr.trace()), tracerKey{}, tr)
	req, err := NewRequest(ctx, s, p.cfg.UserAgent)
	if err != nil {
		res.Duration = time.Since(start)
		res.ErrorClass, res.Error = ClassHTTP, err.Error()
		return res
	}

	resp, err := p.client.Do(req)
	if err != nil {
		res.Duration = time.Since(start)
		tr.fill(&res, time.Now())
		res.ErrorClass, res.Error = classify(ctx, err), err.Error()
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			res.TLSExpiry, res.TLSChainExpiry = expiries(certErr.UnverifiedCertificates)
		}
		return res
	}
	defer func() { _ = resp.Body.Close() }()
	res.StatusCode = resp.StatusCode
	res.FinalURL = resp.Request.URL.String()
	if resp.TLS != nil {
		handshake(&res, *resp.TLS)
	}

	buf := p.bufs.Get().(*bytes.Buffer)
	defer p.putBuf(buf)
	buf.Reset()
	var sink io.Writer = buf
	if !t.keepsBody() {
		sink = io.Discard // nothing to match: count the bytes, keep none
	}
	n, err := io.Copy(sink, io.LimitReader(resp.Body, p.cfg.MaxBodyBytes+1))
	done := time.Now()
	res.Duration = done.Sub(start)
	tr.fill(&res, done)
	if n > p.cfg.MaxBodyBytes {
		n, res.Truncated = p.cfg.MaxBodyBytes, true
		if buf.Len() > int(n) {
			buf.Truncate(int(n))
		}
	}
	res.BodyBytes = n
	if err != nil {
		res.ErrorClass, res.Error = classify(ctx, err), "reading body: "+err.Error()
		if res.ErrorClass == ClassHTTP {
			res.ErrorClass = ClassRead
		}
		return res
	}

	failed := matchAll(t, buf.Bytes(), &res)
	switch {
	case !t.expect.Contains(resp.StatusCode):
		res.ErrorClass = ClassHTTPStatus
		res.Error = fmt.Sprintf("status %d %s: want %s", resp.StatusCode, http.StatusText(resp.StatusCode), s.WithDefaults().Expect)
	case res.Truncated:
		res.ErrorClass = ClassBodyTooLarge
		res.Error = fmt.Sprintf("body larger than %d bytes; only those were read", p.cfg.MaxBodyBytes)
	case failed != nil:
		res.ErrorClass = ClassRegex
		if failed.Match {
			res.Error = fmt.Sprintf("body does not match %q", failed.Pattern)
		} else {
			res.Error = fmt.Sprintf("body matches must-not-match %q", failed.Pattern)
		}
	default:
		if c := checkConditions(t, buf.Bytes(), resp.Header, &res); c != nil {
			res.ErrorClass = ClassCondition
			res.Error = fmt.Sprintf("condition %s failed: %s", c.Condition, c.Actual)
		}
	}
	return res
}

// checkConditions evaluates t's conditions on a response, records each in
// res and returns the first that did not hold.
func checkConditions(t *Target, body []byte, header http.Header, res *Result) *checkevent.ConditionResult {
	if len(t.conditions) == 0 {
		return nil
	}
	var decoded condition.Body
	if condition.NeedsJSON(t.conditions) {
		decoded = condition.DecodeBody(body)
	}
	res.Conditions = make([]checkevent.ConditionResult, len(t.conditions))
	var failed *checkevent.ConditionResult
	for i, c := range t.conditions {
		ok, actual := c.Eval(decoded, header)
		res.Conditions[i] = checkevent.ConditionResult{Condition: c.Text, Passed: ok, Actual: actual}
		if !ok && failed == nil {
			failed = &res.Conditions[i]
		}
	}
	return failed
}

// NewRequest is the request a check of s sends: its method, URL and
// headers (a Host header sets the request's Host), with userAgent unless s
// sets a User-Agent.
func NewRequest(ctx context.Context, s site.Site, userAgent string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, s.Method, s.URL, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range s.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}
	return req, nil
}

func (p *Prober) putBuf(b *bytes.Buffer) {
	if int64(b.Cap()) <= p.cfg.MaxBodyBytes+bytes.MinRead {
		p.bufs.Put(b)
	}
}

// matchAll runs t's regexes over body, records each result in res, and
// returns the first that failed.
func matchAll(t *Target, body []byte, res *Result) *checkevent.RegexResult {
	if !t.hasRegexes() {
		return nil
	}
	res.Regexes = make([]checkevent.RegexResult, 0, len(t.mustMatch)+len(t.mustNotMatch))
	var failed *checkevent.RegexResult
	for i, re := range t.mustMatch {
		res.Regexes = append(res.Regexes, checkevent.RegexResult{Pattern: t.Site.MustMatch[i], Match: true, Matched: re.Match(body)})
	}
	for i, re := range t.mustNotMatch {
		res.Regexes = append(res.Regexes, checkevent.RegexResult{Pattern: t.Site.MustNotMatch[i], Matched: re.Match(body)})
	}
	for i := range res.Regexes {
		if r := &res.Regexes[i]; r.Match != r.Matched && failed == nil {
			failed = r
		}
	}
	ok := failed == nil
	res.RegexMatched = &ok
	return failed
}

// expiries returns the leaf's NotAfter and the earliest NotAfter of certs.
func expiries(certs []*x509.Certificate) (leaf, earliest time.Time) {
	for i, c := range certs {
		if i == 0 {
			leaf, earliest = c.NotAfter, c.NotAfter
		}
		if c.NotAfter.Before(earliest) {
			earliest = c.NotAfter
		}
	}
	return leaf.UTC(), earliest.UTC()
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
	case errors.Is(err, ErrBlocked):
		return ClassBlocked
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return ClassTimeout
	case errors.As(err, &dnsErr):
		return ClassDNS
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr),
		errors.As(err, &invalidCert), errors.As(err, &recordErr), errors.As(err, &alertErr):
		return ClassTLS
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return ClassConnect
	case errors.As(err, &opErr) && (opErr.Op == "read" || opErr.Op == "write"),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The connection failed or closed after it was made, e.g. reset
		// while waiting for the response: the network, not HTTP.
		return ClassRead
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return ClassTimeout
	}
	return ClassHTTP
}
