package cli

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// FuzzReadSites: `sites import` never panics on a file; a refused file is a
// YAML error or names the site's position and, for each problem, the field
// (a *site.FieldError); an accepted file holds only valid sites, and
// exporting them and importing the export gives the same sites back.
func FuzzReadSites(f *testing.F) {
	for _, seed := range []string{
		"sites:\n  - url: https://example.com\n",
		`sites:
  - url: https://api.example.com/health
    method: POST
    headers: {Authorization: Bearer secret}
    expect: 2xx
    match: ['"status":"ok"']
    not-match: [maintenance]
    interval: 30s
    timeout: 5s
    regions: [eu-west, us-east]
    quorum: 2
    failure-threshold: 3
    success-threshold: 1
    tls-warning-days: 0
    enabled: false
  - url: http://b.example:8080/x?y=1
    topic: other.checks
    interval: 1h30m
`,
		"sites:\n  - url: example.com\n    match: ['(unclosed']\n    interval: 10ms\n",
		"sites:\n  - url: https://a\n  - url: https://b\n    interval: 1m\n    timeout: 2m\n",
		"sites:\n  - url: tcp://db.example:5432\n    send: \"PING\\r\\n\"\n    match: ['^\\+PONG']\n  - url: tls://mail.example:465\n",
		"sites:\n  - url: tcp://db.example:5432\n    method: POST\n    send: \"x\"\n  - url: https://a\n    send: y\n",
		"sites:\n  - url: https://a\n    interval: soon\n    timeout: -1s\n",
		"sites:\n  - url: https://a\n    unknown-key: 1\n",
		"sites:\n  - url: https://a\n    headers: {X-A: \"a\\x01b\"}\n",
		"sites:\n  - &s {url: https://a}\n  - *s\n",
		"sites: []\n",
		"not: a site file\n",
		"sites: {url: x}\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sites, err := readSites(bytes.NewReader(data))
		if err != nil {
			var inv *site.InvalidError
			if !errors.As(err, &inv) {
				if !strings.HasPrefix(err.Error(), "reading YAML: ") {
					t.Fatalf("refused without naming a site or the YAML: %v", err)
				}
				return
			}
			if inv.Index < 0 || !strings.HasPrefix(inv.Error(), "site ") {
				t.Fatalf("refused site has no position: %v", err)
			}
			all := []error{inv.Err}
			if joined, ok := inv.Err.(interface{ Unwrap() []error }); ok {
				all = joined.Unwrap()
			}
			for _, e := range all {
				var fe *site.FieldError
				if !errors.As(e, &fe) || fe.Field == "" {
					t.Fatalf("problem %q (%T) names no field", e, e)
				}
			}
			return
		}
		if len(sites) == 0 {
			t.Fatal("accepted a file of no sites")
		}
		for i, s := range sites {
			if err := s.Validate(); err != nil {
				t.Fatalf("site %d accepted but invalid: %v", i, err)
			}
		}
		var export bytes.Buffer
		if err := writeYAML("", &export, siteFileOf(sites)); err != nil {
			t.Fatalf("exporting accepted sites: %v", err)
		}
		again, err := readSites(bytes.NewReader(export.Bytes()))
		if err != nil {
			t.Fatalf("the export of accepted sites is refused: %v\n%s", err, export.String())
		}
		if len(again) != len(sites) {
			t.Fatalf("export round trip: %d sites, then %d", len(sites), len(again))
		}
		for i := range sites {
			if a, b := normal(sites[i]), normal(again[i]); !reflect.DeepEqual(a, b) {
				t.Fatalf("site %d changes through export and import:\n%#v\n%#v\n%s", i, a, b, export.String())
			}
		}
	})
}

// normal is s with empty lists and maps as nil: a site file writes
// neither, so they read back as nil.
func normal(s site.Site) site.Site {
	if len(s.Headers) == 0 {
		s.Headers = nil
	}
	for _, l := range []*[]string{&s.MustMatch, &s.MustNotMatch, &s.Regions} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	return s
}
