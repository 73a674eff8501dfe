package probe

import (
	"fmt"
	"regexp"

	"github.com/sitewatch/sitewatch/services/monitor/internal/condition"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// Target is a site made ready to check: its regexes compiled and its
// expected status codes parsed, once, not at every check.
type Target struct {
	Site         site.Site
	mustMatch    []*regexp.Regexp
	mustNotMatch []*regexp.Regexp
	expect       site.StatusSet
	dns          site.DNSQuery // dns:// sites: the query and what it expects
	conditions   []*condition.Condition
}

// Compile prepares s for checking. Sites are validated on the way into the
// database, so an error here means a row was changed by hand.
func Compile(s site.Site) (*Target, error) {
	t := &Target{Site: s}
	var err error
	if t.expect, err = site.ParseStatusSet(s.WithDefaults().Expect); err != nil {
		return nil, fmt.Errorf("expected status %q: %w", s.Expect, err)
	}
	if t.mustMatch, err = compileAll(s.MustMatch); err != nil {
		return nil, fmt.Errorf("must-match regex: %w", err)
	}
	if t.mustNotMatch, err = compileAll(s.MustNotMatch); err != nil {
		return nil, fmt.Errorf("must-not-match regex: %w", err)
	}
	for _, text := range s.Conditions {
		c, err := condition.Parse(text)
		if err != nil {
			return nil, fmt.Errorf("condition %q: %w", text, err)
		}
		t.conditions = append(t.conditions, c)
	}
	if s.Kind() == site.KindDNS {
		if t.dns, err = site.ParseDNS(s.URL); err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
	}
	return t, nil
}

func compileAll(patterns []string) ([]*regexp.Regexp, error) {
	out := make([]*regexp.Regexp, len(patterns))
	for i, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return nil, err
		}
		out[i] = re
	}
	return out, nil
}

func (t *Target) hasRegexes() bool { return len(t.mustMatch)+len(t.mustNotMatch) > 0 }

// keepsBody reports whether a check must keep the body: for regexes, or
// for conditions on the JSON in it.
func (t *Target) keepsBody() bool { return t.hasRegexes() || condition.NeedsJSON(t.conditions) }
