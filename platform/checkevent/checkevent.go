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
	// any version up to it; fields are only ever added.
	SchemaVersion = 1
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
	Regex         string    `json:"regex,omitempty"`
	RegexMatched  *bool     `json:"regex_matched,omitempty"`
	ErrorClass    string    `json:"error_class,omitempty"`
	Error         string    `json:"error,omitempty"`
}

// ErrMalformed is wrapped by every Decode error: the message can never be
// stored, however often it is retried.
var ErrMalformed = errors.New("malformed check event")

// Decode parses and validates a payload.
func Decode(payload []byte) (Check, error) {
	var c Check
	if err := json.Unmarshal(payload, &c); err != nil {
		return Check{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := c.Validate(); err != nil {
		return Check{}, err
	}
	return c, nil
}

// Validate reports the first field that is missing or wrong.
func (c Check) Validate() error {
	switch {
	case c.SchemaVersion < 1 || c.SchemaVersion > SchemaVersion:
		return fmt.Errorf("%w: schema_version %d: want 1..%d", ErrMalformed, c.SchemaVersion, SchemaVersion)
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
	}
	if _, err := uuid.Parse(c.EventID); err != nil {
		return fmt.Errorf("%w: event_id %q: not a UUID", ErrMalformed, c.EventID)
	}
	return nil
}
