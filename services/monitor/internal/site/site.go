// Package site is what the monitor checks: a site's settings and the rules
// they must follow before anything is written.
package site

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sitewatch/sitewatch/outbox"
)

// Defaults for fields a user leaves out.
const (
	DefaultInterval = time.Minute
	DefaultTimeout  = 10 * time.Second
	DefaultTopic    = "sitewatch.checks"
	DefaultMethod   = "GET"

	MinInterval = time.Second
	MaxInterval = 24 * time.Hour
	maxURLLen   = 2048
	maxRegexLen = 4096
)

// Site is one monitored URL.
type Site struct {
	ID       int64
	URL      string
	Method   string
	Regex    string // RE2 syntax; empty means no body check
	Interval time.Duration
	Timeout  time.Duration
	Topic    string
	Enabled  bool
	Updated  time.Time
}

// WithDefaults fills the fields left at their zero value.
func (s Site) WithDefaults() Site {
	if s.Method == "" {
		s.Method = DefaultMethod
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
	return s
}

// FieldError names the field that is wrong and why.
type FieldError struct {
	Field string
	Value string
	Msg   string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Msg) }

var methods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// Validate returns every problem with s, each a *FieldError.
func (s Site) Validate() error {
	var errs []error
	bad := func(field, value, msg string) { errs = append(errs, &FieldError{field, value, msg}) }

	if err := checkURL(s.URL); err != "" {
		bad("url", s.URL, err)
	}
	if !slices.Contains(methods, s.Method) {
		bad("method", s.Method, "want one of "+strings.Join(methods, ", "))
	}
	if len(s.Regex) > maxRegexLen {
		bad("regex", s.Regex[:40]+"…", fmt.Sprintf("longer than %d bytes", maxRegexLen))
	} else if _, err := regexp.Compile(s.Regex); err != nil {
		bad("regex", s.Regex, "not a valid RE2 regular expression: "+strings.TrimPrefix(err.Error(), "error parsing regexp: "))
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
	return errors.Join(errs...)
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
	if u.Scheme != "http" && u.Scheme != "https" {
		return "scheme must be http or https"
	}
	if u.Hostname() == "" {
		return "has no host"
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 1 || n > 65535 {
			return "port must be 1..65535"
		}
	}
	return ""
}
