// Package site is what the monitor checks: a site's settings and the rules
// they must follow before anything is written.
package site

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sitewatch/sitewatch/outbox"
	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/services/monitor/internal/condition"
)

// Defaults for fields a user leaves out.
const (
	DefaultInterval = time.Minute
	DefaultTimeout  = 10 * time.Second
	DefaultTopic    = "sitewatch.checks"
	DefaultMethod   = "GET"
	DefaultExpect   = "200-399"

	DefaultThreshold      = 2
	DefaultTLSWarningDays = 14

	// MaxRegexProgram and MaxSiteProgram bound the compiled size of one
	// regex and of all of a site's (see checkRegex).
	MaxRegexProgram = 200
	MaxSiteProgram  = 400

	MinInterval   = time.Second
	MaxInterval   = 24 * time.Hour
	maxURLLen     = 2048
	maxRegexLen   = 4096
	maxRegexes    = 32
	maxHeaders    = 64
	maxHeaderSize = 8192
	maxRegions    = 64
	maxName       = 100
	maxSend       = 4096
)

// Kinds of check, named by the URL's scheme.
const (
	KindHTTP = "http" // http:// and https://: a request, its status, body and timings
	KindTCP  = "tcp"  // tcp://host:port: a connection, optionally Send and regexes on the reply
	KindTLS  = "tls"  // tls://host:port: the same over TLS, and the certificate, version and cipher
	// grpc://host:port[/service], grpcs:// over TLS: the standard health check.
	KindGRPC  = "grpc"
	KindGRPCS = "grpcs"
	// icmp://host[?count=N]: N echo requests (DefaultICMPCount), loss and round trips.
	KindICMP = "icmp"
)

// DefaultICMPCount and MaxICMPCount are an icmp:// site's echo requests.
const (
	DefaultICMPCount = 3
	MaxICMPCount     = 20
)

// ICMPCount is the count of an icmp:// URL (DefaultICMPCount when it names
// none or a bad one, which Validate refuses).
func ICMPCount(u *url.URL) int {
	n, err := strconv.Atoi(u.Query().Get("count"))
	if err != nil || n < 1 || n > MaxICMPCount {
		return DefaultICMPCount
	}
	return n
}

// Site is one monitored URL.
type Site struct {
	ID           int64
	URL          string
	Name         string // shown instead of the URL (status page); optional
	Send         string // tcp and tls: written once connected; the regexes then match the reply
	Method       string
	Headers      map[string]string
	Expect       string   // expected status codes, e.g. "200-399" or "200,204,301-308"
	MustMatch    []string // RE2; every one must match the body
	MustNotMatch []string // RE2; none may match the body
	// Conditions on an HTTP response (package condition), each checked
	// once the status and the regexes passed.
	Conditions []string
	// DegradedAfter: a passing check slower than this marks the site
	// degraded rather than down (0: no limit).
	DegradedAfter time.Duration
	Interval      time.Duration
	Timeout       time.Duration
	Topic         string
	Regions       []string // the regions that check it; empty: every region
	// Incidents: a region says down after FailureThreshold failed checks
	// in a row and up after SuccessThreshold passing ones; the site is
	// down when Quorum regions agree (0: a majority); a TLS certificate
	// expiring within TLSWarningDays opens a warning (0: never; new sites
	// get DefaultTLSWarningDays from the CLI and site files).
	FailureThreshold int
	SuccessThreshold int
	Quorum           int
	TLSWarningDays   int
	Enabled          bool
	Updated          time.Time
	// PingToken is a heartbeat site's token, set only on the site
	// AddSites returns: the database keeps its hash alone.
	PingToken string
}

// Kind is the kind of check the site's URL asks for: KindHTTP, KindTCP,
// KindTLS, KindDNS, KindGRPC, KindGRPCS, KindICMP or KindHeartbeat (KindHTTP for a URL that does not parse; Validate refuses it).
func (s Site) Kind() string {
	scheme, _, _ := strings.Cut(s.URL, "://")
	switch strings.ToLower(scheme) {
	case "tcp":
		return KindTCP
	case "tls":
		return KindTLS
	case "dns":
		return KindDNS
	case "grpc":
		return KindGRPC
	case "grpcs":
		return KindGRPCS
	case "icmp":
		return KindICMP
	case "heartbeat":
		return KindHeartbeat
	}
	return KindHTTP
}

// CheckedIn reports whether the monitors of region check s.
func (s Site) CheckedIn(region string) bool {
	return len(s.Regions) == 0 || slices.Contains(s.Regions, region)
}

// WithDefaults fills the fields left at their zero value.
func (s Site) WithDefaults() Site {
	if s.Method == "" {
		s.Method = DefaultMethod
	}
	if s.Expect == "" {
		s.Expect = DefaultExpect
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = min(DefaultTimeout, s.Interval)
	}
	if s.Topic == "" {
		s.Topic = DefaultTopic
	}
	threshold := DefaultThreshold
	if s.Kind() == KindHeartbeat {
		threshold = 1 // one missed or failed run is the job's failure
	}
	if s.FailureThreshold == 0 {
		s.FailureThreshold = threshold
	}
	if s.SuccessThreshold == 0 {
		s.SuccessThreshold = threshold
	}
	return s
}

// FieldError names the field that is wrong and why.
type FieldError struct {
	Field string
	Value string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Msg) }

// InvalidError is a site that failed validation: the Index-th (from 0) of
// several, or the only one when Index is -1. Err joins its *FieldError values.
type InvalidError struct {
	Index int
	URL   string
	Err   error
}

func (e *InvalidError) Error() string {
	if e.Index < 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("site %d (%s):\n  %s", e.Index+1, e.URL, strings.ReplaceAll(e.Err.Error(), "\n", "\n  "))
}

func (e *InvalidError) Unwrap() error { return e.Err }

// noReply are the kinds with no body or reply for regexes, and what they
// check instead.
var noReply = map[string]string{
	KindDNS:       "a dns:// site has no body: give the answers in its URL (?answer=...)",
	KindICMP:      "an icmp:// check has no body: it passes when an echo reply comes back",
	KindGRPC:      "a gRPC health check has no body: it passes when the service is SERVING",
	KindGRPCS:     "a gRPC health check has no body: it passes when the service is SERVING",
	KindHeartbeat: "a heartbeat is a ping from the job: it passes when one comes in time",
}

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Validate returns every problem with s, each a *FieldError.
func (s Site) Validate() error {
	var errs []error
	bad := func(field, value, msg string) { errs = append(errs, &FieldError{field, value, msg}) }

	if err := checkURL(s.URL); err != "" {
		bad("url", s.URL, err)
	}
	if utf8.RuneCountInString(s.Name) > maxName || strings.IndexFunc(s.Name, unicode.IsControl) >= 0 || !utf8.ValidString(s.Name) {
		bad("name", s.Name, fmt.Sprintf("want at most %d printable characters", maxName))
	}
	if !slices.Contains(methods, s.Method) {
		bad("method", s.Method, "want one of "+strings.Join(methods, ", "))
	}
	if kind := s.Kind(); kind != KindHTTP {
		// What only HTTP has is refused rather than ignored.
		if msg, ok := noReply[kind]; ok && len(s.MustMatch)+len(s.MustNotMatch) > 0 {
			bad("match", abbreviate(append(s.MustMatch, s.MustNotMatch...)[0]), msg)
		}
		if s.Method != DefaultMethod {
			bad("method", s.Method, "only http(s) sites send a request; a "+kind+":// check connects")
		}
		if len(s.Headers) > 0 {
			bad("header", slices.Sorted(maps.Keys(s.Headers))[0], "only http(s) sites send headers")
		}
		if s.Expect != DefaultExpect {
			bad("expect", s.Expect, "only http(s) sites have a status code; match the reply with --match")
		}
	}
	if len(s.Conditions) > 0 && s.Kind() != KindHTTP {
		bad("condition", abbreviate(s.Conditions[0]), "only http(s) sites have a response to put conditions on")
	}
	if len(s.Conditions) > condition.MaxPerSite {
		bad("condition", fmt.Sprint(len(s.Conditions)), fmt.Sprintf("at most %d conditions", condition.MaxPerSite))
	}
	for _, c := range s.Conditions {
		if _, err := condition.Parse(c); err != nil {
			bad("condition", abbreviate(c), err.Error())
		}
	}
	if s.Method == "HEAD" && slices.ContainsFunc(s.Conditions, func(c string) bool { return strings.HasPrefix(strings.TrimSpace(c), "$") }) {
		bad("condition", s.Conditions[0], "a HEAD response has no body for a JSON condition; use GET")
	}
	switch {
	case s.DegradedAfter < 0:
		bad("degraded-after", s.DegradedAfter.String(), "must be positive, or 0 for no limit")
	case s.DegradedAfter > 0 && s.Kind() == KindHeartbeat:
		bad("degraded-after", s.DegradedAfter.String(), "a heartbeat's checks are the job's pings: it has no response time")
	case s.DegradedAfter > 0 && s.DegradedAfter >= s.Timeout && s.Timeout > 0:
		bad("degraded-after", s.DegradedAfter.String(), "must be under the timeout ("+s.Timeout.String()+"): a check that slow has failed")
	}
	if s.Kind() == KindHeartbeat {
		// The job pings whichever replica its request reaches: no region
		// checks it.
		if len(s.Regions) > 0 {
			bad("regions", s.Regions[0], "a heartbeat is not checked from regions: the job reports in")
		}
		if s.Quorum != 0 {
			bad("quorum", fmt.Sprint(s.Quorum), "a heartbeat is not checked from regions: the job reports in")
		}
	}
	if kind := s.Kind(); s.Send != "" && kind != KindTCP && kind != KindTLS {
		bad("send", abbreviate(s.Send), "only tcp:// and tls:// sites send data of their own")
	}
	switch {
	case len(s.Send) > maxSend:
		bad("send", abbreviate(s.Send), fmt.Sprintf("longer than %d bytes", maxSend))
	case !utf8.ValidString(s.Send) || strings.ContainsRune(s.Send, 0):
		bad("send", abbreviate(s.Send), "want text (UTF-8, no NUL)")
	}
	if len(s.Headers) > maxHeaders {
		bad("header", fmt.Sprint(len(s.Headers)), fmt.Sprintf("at most %d headers", maxHeaders))
	}
	for _, name := range slices.Sorted(maps.Keys(s.Headers)) {
		if msg := checkHeader(name, s.Headers[name]); msg != "" {
			bad("header", name, msg)
		}
	}
	if _, err := ParseStatusSet(s.Expect); err != nil {
		bad("expect", s.Expect, err.Error())
	}
	program := 0 // compiled instructions of all the site's regexes
	checkRegexes := func(field string, res []string) {
		if len(res) > maxRegexes {
			bad(field, fmt.Sprint(len(res)), fmt.Sprintf("at most %d regexes", maxRegexes))
		}
		for _, re := range res {
			msg, size := checkRegex(re)
			program += size
			if msg != "" {
				bad(field, abbreviate(re), msg)
			}
		}
	}
	checkRegexes("match", s.MustMatch)
	if s.Method == "HEAD" && len(s.MustMatch) > 0 {
		bad("match", s.MustMatch[0], "a HEAD response has no body to match; use GET")
	}
	checkRegexes("not-match", s.MustNotMatch)
	if program > MaxSiteProgram {
		bad("match", fmt.Sprint(program), fmt.Sprintf("the site's regexes compile to %d instructions in all; at most %d", program, MaxSiteProgram))
	}
	switch {
	case s.Interval < MinInterval:
		bad("interval", s.Interval.String(), "must be at least "+MinInterval.String())
	case s.Interval > MaxInterval:
		bad("interval", s.Interval.String(), "must be at most "+MaxInterval.String())
	}
	switch {
	case s.Timeout <= 0:
		bad("timeout", s.Timeout.String(), "must be positive")
	case s.Timeout > s.Interval && s.Interval >= MinInterval:
		bad("timeout", s.Timeout.String(), "must not exceed the interval ("+s.Interval.String()+"), or checks would overlap")
	}
	if err := outbox.ValidateTopic(s.Topic); err != nil {
		bad("topic", s.Topic, strings.TrimPrefix(err.Error(), outbox.ErrInvalidMessage.Error()+": "))
	}
	for _, n := range []struct {
		field     string
		v, lo, hi int
	}{{"failure-threshold", s.FailureThreshold, 1, 100}, {"success-threshold", s.SuccessThreshold, 1, 100},
		{"quorum", s.Quorum, 0, 64}, {"tls-warning-days", s.TLSWarningDays, 0, 365}} {
		if n.v < n.lo || n.v > n.hi {
			bad(n.field, fmt.Sprint(n.v), fmt.Sprintf("want %d..%d", n.lo, n.hi))
		}
	}
	if s.Quorum > 0 && len(s.Regions) > 0 && s.Quorum > len(s.Regions) {
		bad("quorum", fmt.Sprint(s.Quorum), fmt.Sprintf("more than the site's %d regions: it could never be down", len(s.Regions)))
	}
	if len(s.Regions) > maxRegions {
		bad("regions", fmt.Sprint(len(s.Regions)), fmt.Sprintf("at most %d regions", maxRegions))
	}
	for i, r := range s.Regions {
		if err := checkevent.ValidateRegion(r); err != nil {
			bad("regions", r, strings.TrimPrefix(err.Error(), fmt.Sprintf("%q: ", r)))
		} else if slices.Contains(s.Regions[:i], r) {
			bad("regions", r, "listed twice")
		}
	}
	return errors.Join(errs...)
}

// abbreviate keeps the first 40 bytes of a long value for an error message.
func abbreviate(v string) string {
	if len(v) > 40 {
		return v[:40] + "…"
	}
	return v
}

// checkRegex validates one regex and returns the size of its compiled
// program. Go's regexp runs in time linear in program size × input, and a
// match cannot be interrupted, so the size is bounded: a site's regexes
// against a 1 MiB body then take at most a few seconds of CPU.
func checkRegex(re string) (msg string, size int) {
	switch {
	case re == "":
		return "must not be empty", 0
	case len(re) > maxRegexLen:
		return fmt.Sprintf("longer than %d bytes", maxRegexLen), 0
	}
	parsed, err := syntax.Parse(re, syntax.Perl)
	if err == nil {
		_, err = regexp.Compile(re)
	}
	if err != nil {
		return "not a valid RE2 regular expression: " + strings.TrimPrefix(err.Error(), "error parsing regexp: "), 0
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return "not a valid RE2 regular expression: " + err.Error(), 0
	}
	if size = len(prog.Inst); size > MaxRegexProgram {
		return fmt.Sprintf("compiles to %d instructions, at most %d (matching time grows with them × the body size and cannot be cut short; "+
			"replace large counted repetitions such as {1,200} with + or *)", size, MaxRegexProgram), size
	}
	return "", size
}

func checkHeader(name, value string) string {
	switch {
	case name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) }):
		return "not a valid header name"
	case strings.ContainsAny(value, "\r\n\x00"):
		return "value must not contain line breaks"
	case strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
		// net/http refuses to send such a value: every check would fail.
		return "value must not contain control characters (tab aside)"
	case len(name)+len(value) > maxHeaderSize:
		return fmt.Sprintf("longer than %d bytes", maxHeaderSize)
	case http.CanonicalHeaderKey(name) == "Content-Length" || http.CanonicalHeaderKey(name) == "Transfer-Encoding":
		return "set by the monitor"
	}
	return ""
}

// credentialParams are query parameters that carry secrets by convention.
var credentialParams = map[string]bool{
	"password": true, "passwd": true, "pwd": true, "secret": true, "client_secret": true, "token": true,
	"access_token": true, "id_token": true, "api_key": true, "apikey": true, "api-key": true, "auth": true,
	"authorization": true, "sig": true, "signature": true, "x-amz-signature": true, "x-amz-credential": true,
}

func checkURL(raw string) string {
	if raw == "" {
		return "must not be empty"
	}
	if len(raw) > maxURLLen {
		return fmt.Sprintf("longer than %d bytes", maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "not a URL: " + err.Error()
	}
	switch u.Scheme {
	case "http", "https":
	case "dns":
		if _, err := ParseDNS(raw); err != nil {
			return err.Error()
		}
		return "" // dns:///name: the host, the resolver, may be empty
	case "icmp":
		if u.Port() != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" || u.Opaque != "" {
			return "want icmp://host or icmp://host?count=N (no port or path)"
		}
		for key, vs := range u.Query() {
			if key != "count" || len(vs) != 1 {
				return fmt.Sprintf("query %q: want only count=N, once", key)
			}
			if n, err := strconv.Atoi(vs[0]); err != nil || n < 1 || n > MaxICMPCount {
				return fmt.Sprintf("count %q: want 1..%d echo requests", vs[0], MaxICMPCount)
			}
		}
	case "heartbeat":
		return checkHeartbeatURL(u)
	case "grpc", "grpcs":
		switch service := strings.TrimPrefix(u.Path, "/"); {
		case u.Port() == "":
			return u.Scheme + ":// needs a port, e.g. " + u.Scheme + "://api.example.com:443/my.pkg.Service"
		case u.RawQuery != "", u.Fragment != "", u.Opaque != "":
			return u.Scheme + ":// takes host:port and a service name only (no query or fragment)"
		case strings.ContainsFunc(service, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r))
		}):
			return fmt.Sprintf("service %q: want a gRPC service name such as my.pkg.Service (letters, digits, '.', '_', '-')", service)
		}
	case "tcp", "tls":
		// host:port and nothing else: a path or query would be ignored.
		switch {
		case u.Port() == "":
			return u.Scheme + ":// needs a port, e.g. " + u.Scheme + "://db.example.com:5432"
		case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "", u.Opaque != "":
			return u.Scheme + ":// takes host:port only (no path, query or fragment)"
		}
	default:
		return "scheme must be http, https, tcp, tls, dns, grpc, grpcs, icmp or heartbeat"
	}
	if u.Hostname() == "" {
		return "has no host"
	}
	// A URL travels to Kafka, stats, logs and sites list: no credentials in it.
	if u.User != nil {
		return "must not hold credentials (user:password@); send them in a header, e.g. --header 'Authorization: Basic ...'"
	}
	// Split on ';' too: URL.Query drops a pair holding one, and some
	// servers take it for a separator.
	for pair := range strings.FieldsFuncSeq(u.RawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		name, _, _ := strings.Cut(pair, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if credentialParams[strings.ToLower(name)] {
			return fmt.Sprintf("query parameter %q looks like a credential; send it in a header instead (--header)", name)
		}
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return "port must be 1..65535"
		}
	}
	return ""
}

// Shards is the number of shards the sites are split into: a site's shard
// is its id modulo Shards (the generated column sites.shard).
const Shards = 256

// Scope is the part of the sites one monitor replica checks: the sites its
// region checks, in the shards it leases.
type Scope struct {
	Region string
	Shards []int16
}

// Changes is what changed in the sites table since a given time, as seen
// by one snapshot taken at AsOf.
type Changes struct {
	AsOf    time.Time
	Enabled []int64 // the id of every enabled site
	Changed []Site  // enabled sites changed since the given time
}
