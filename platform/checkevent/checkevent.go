// Package checkevent is the message contract between the monitor, which
// writes one event per check into the outbox, and the sink, which stores it.
package checkevent

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

const (
	// SchemaVersion is the payload version this code writes. Readers accept
	// any version up to it; fields are only ever added. Version 2 added the
	// phases, body, redirect, TLS and address fields and Regexes; version 3
	// the Region; version 4 the Kind and the TLS handshake's version, cipher
	// and OCSP stapling; version 5 the heartbeat kind, Conditions and
	// Degraded.
	SchemaVersion = 5
	// DefaultRegion is the region of a monitor that names none, and of
	// every check written before checks carried a region.
	DefaultRegion = "local"
	// Type is the CloudEvents type (header ce_type) of a check result.
	Type = "io.sitewatch.check.completed"
	// Source is the CloudEvents source (header ce_source) the monitor uses.
	Source = "/sitewatch/monitor"
	// ContentType is the payload's media type.
	ContentType = "application/json"
)

// Check is the result of one check of one site. A failed check is still a
// Check: StatusCode is 0 and ErrorClass says why.
type Check struct {
	SchemaVersion int       `json:"schema_version"`
	EventID       string    `json:"event_id"`
	SiteID        int64     `json:"site_id"`
	URL           string    `json:"url"`
	CheckedAt     time.Time `json:"checked_at"`
	StatusCode    int       `json:"status_code,omitempty"`
	DurationMS    float64   `json:"duration_ms"`
	// Regex is version 1's single must-match regex; version 2 writes Regexes.
	Regex string `json:"regex,omitempty"`
	// RegexMatched: every must-match regex matched and no must-not-match
	// one did; nil when the site has none or no body was read.
	RegexMatched *bool  `json:"regex_matched,omitempty"`
	ErrorClass   string `json:"error_class,omitempty"`
	Error        string `json:"error,omitempty"`

	// Version 2. Phases are summed over redirects; a phase that did not
	// happen (no DNS for an IP, no TLS for http) is 0.
	Regexes        []RegexResult `json:"regexes,omitempty"`
	DNSMS          float64       `json:"dns_ms,omitempty"`
	ConnectMS      float64       `json:"connect_ms,omitempty"`
	TLSMS          float64       `json:"tls_ms,omitempty"`
	TTFBMS         float64       `json:"ttfb_ms,omitempty"`     // request written to first response byte
	TransferMS     float64       `json:"transfer_ms,omitempty"` // first response byte to body read
	BodyBytes      int64         `json:"body_bytes,omitempty"`
	Truncated      bool          `json:"truncated,omitempty"`
	Redirects      int           `json:"redirects,omitempty"`
	FinalURL       string        `json:"final_url,omitempty"`
	TLSExpiry      *time.Time    `json:"tls_expiry,omitempty"`       // the leaf certificate's NotAfter
	TLSChainExpiry *time.Time    `json:"tls_chain_expiry,omitempty"` // the earliest NotAfter in the chain
	RemoteIP       string        `json:"remote_ip,omitempty"`

	// Version 3: the region of the monitor that made the check.
	Region string `json:"region,omitempty"`

	// Version 4. Kind is the kind of check, KindTCP, KindTLS, KindDNS, KindGRPC, KindICMP or (version 5) KindHeartbeat;
	// empty for HTTP (every check before version 4 was one). The TLS fields
	// describe the handshake of a tls or https check that made one; the DNS
	// ones a dns check's response: its code and the data of its answers of
	// the type asked, as dig prints them.
	Kind        string   `json:"kind,omitempty"`
	TLSVersion  string   `json:"tls_version,omitempty"` // e.g. "TLS 1.3"
	TLSCipher   string   `json:"tls_cipher,omitempty"`  // the cipher suite's IANA name
	OCSPStapled *bool    `json:"ocsp_stapled,omitempty"`
	DNSRCode    string   `json:"dns_rcode,omitempty"` // e.g. NOERROR, NXDOMAIN
	DNSAnswers  []string `json:"dns_answers,omitempty"`
	// An icmp check's echo requests, their replies, and the replies' round
	// trips (nil without a reply).
	ICMPSent     int      `json:"icmp_sent,omitempty"`
	ICMPReceived int      `json:"icmp_received,omitempty"`
	RTTMinMS     *float64 `json:"rtt_min_ms,omitempty"`
	RTTAvgMS     *float64 `json:"rtt_avg_ms,omitempty"`
	RTTMaxMS     *float64 `json:"rtt_max_ms,omitempty"`

	// Version 5. Conditions are an HTTP site's conditions on the response
	// and how each came out (checked once the status and regexes passed);
	// Degraded says why a passing check was too slow (its response time
	// over the site's limit): the site is degraded, not down.
	Conditions []ConditionResult `json:"conditions,omitempty"`
	Degraded   string            `json:"degraded,omitempty"`
}

// ConditionResult is one condition of a check: whether it held, and the
// value it found (as JSON, cut at 100 bytes) or why there was none.
type ConditionResult struct {
	Condition string `json:"condition"`
	Passed    bool   `json:"passed"`
	Actual    string `json:"actual,omitempty"`
}

// Kinds of check besides HTTP (Check.Kind).
const (
	KindTCP  = "tcp"
	KindTLS  = "tls"
	KindDNS  = "dns"
	KindGRPC = "grpc"
	KindICMP = "icmp"
	// KindHeartbeat (version 5): a job's ping, or its deadline passed
	// without one.
	KindHeartbeat = "heartbeat"
)

// RegexResult is one regex of a check: a must-match (Match true) or a
// must-not-match one, and whether it matched the body.
type RegexResult struct {
	Pattern string `json:"pattern"`
	Match   bool   `json:"match"`
	Matched bool   `json:"matched"`
}

// ErrMalformed is wrapped by every Decode error: the message can never be
// stored, however often it is retried.
var ErrMalformed = errors.New("malformed check event")

// Decode parses and validates a payload: as encoding/json would, faster
// for the JSON the monitor writes (decodeFast).
func Decode(payload []byte) (Check, error) {
	c, ok := decodeFast(payload)
	if !ok {
		if err := json.Unmarshal(payload, &c); err != nil {
			return Check{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	}
	if err := c.Validate(); err != nil {
		return Check{}, err
	}
	if c.SchemaVersion < 3 {
		c.Region = DefaultRegion
	}
	if c.SchemaVersion == 1 && c.Regex != "" && c.RegexMatched != nil {
		c.Regexes = []RegexResult{{Pattern: c.Regex, Match: true, Matched: *c.RegexMatched}}
	}
	return c, nil
}

// Validate reports the first field that is missing or wrong.
func (c Check) Validate() error {
	switch {
	case c.SchemaVersion < 1:
		// A newer version than this code knows is read, not refused:
		// fields are only ever added, so upgrading the writer before the
		// reader loses nothing.
		return fmt.Errorf("%w: schema_version %d: want 1 or more", ErrMalformed, c.SchemaVersion)
	case c.SiteID <= 0:
		return fmt.Errorf("%w: site_id %d: want a positive id", ErrMalformed, c.SiteID)
	case c.URL == "":
		return fmt.Errorf("%w: url: empty", ErrMalformed)
	case c.CheckedAt.IsZero():
		return fmt.Errorf("%w: checked_at: missing", ErrMalformed)
	case c.StatusCode < 0 || c.StatusCode > 999:
		return fmt.Errorf("%w: status_code %d: out of range", ErrMalformed, c.StatusCode)
	case c.DurationMS < 0:
		return fmt.Errorf("%w: duration_ms %v: negative", ErrMalformed, c.DurationMS)
	case min(c.DNSMS, c.ConnectMS, c.TLSMS, c.TTFBMS, c.TransferMS) < 0:
		return fmt.Errorf("%w: phase timings: negative", ErrMalformed)
	case c.BodyBytes < 0:
		return fmt.Errorf("%w: body_bytes %d: negative", ErrMalformed, c.BodyBytes)
	case c.Redirects < 0:
		return fmt.Errorf("%w: redirects %d: negative", ErrMalformed, c.Redirects)
	case negative(c.RTTMinMS) || negative(c.RTTAvgMS) || negative(c.RTTMaxMS):
		return fmt.Errorf("%w: round trips: negative", ErrMalformed)
	case c.ICMPSent < 0 || c.ICMPReceived < 0 || c.ICMPReceived > c.ICMPSent:
		return fmt.Errorf("%w: icmp_received %d of icmp_sent %d: want 0..sent", ErrMalformed, c.ICMPReceived, c.ICMPSent)
	}
	if _, err := uuid.Parse(c.EventID); err != nil {
		return fmt.Errorf("%w: event_id %q: not a UUID", ErrMalformed, c.EventID)
	}
	switch c.Kind {
	case "", KindTCP, KindTLS, KindDNS, KindGRPC, KindICMP, KindHeartbeat:
	default:
		// An older sink stores what it knows; this one says what it got.
		if c.SchemaVersion <= SchemaVersion {
			return fmt.Errorf("%w: kind %q: want tcp, tls, dns, grpc, icmp, heartbeat or none (http)", ErrMalformed, c.Kind)
		}
	}
	if c.SchemaVersion >= 3 {
		if err := ValidateRegion(c.Region); err != nil {
			return fmt.Errorf("%w: region: %w", ErrMalformed, err)
		}
	}
	return nil
}

func negative(v *float64) bool { return v != nil && *v < 0 }

// ValidateRegion reports whether name can name a region: 1 to 63
// lower-case letters, digits and '-', starting with a letter or digit
// (eu-west, us-east-1, local).
func ValidateRegion(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%q: want 1 to 63 characters", name)
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' && i > 0) {
			return fmt.Errorf("%q: want lower-case letters, digits and '-' (not first)", name)
		}
	}
	return nil
}
