package main

import (
	"strings"
	"testing"

	"github.com/sitewatch/sitewatch/outbox"
)

// FuzzSourcesFile: a sources file never panics the relay; every problem
// names the file (and a bad field its path, sources[i].field); a file
// accepted gives sources that each pass relay.Source.Validate, with unique
// names, a quotable table, topic patterns, and the CloudEvents defaults
// filled in.
func FuzzSourcesFile(f *testing.F) {
	for _, seed := range []string{
		"sources:\n  - name: sitewatch\n    database_url: postgres://u:p@127.0.0.1:5432/db\n    topics: [\"sitewatch.*\"]\n",
		"sources:\n  - name: sitewatch\n    database_url: ${FUZZ_DB}\n    topics: [\"sitewatch.*\"]\n" +
			"  - name: billing\n    database_url: postgres://b@127.0.0.1/billing\n    table: billing.outbox\n" +
			"    topics: [\"billing.invoices\", \"billing.payments.*\"]\n    ce_source: /billing\n    ce_type: com.example\n    id_header: none\n",
		"sources:\n  - name: a\n    database_url: postgres://u@h/db\n    topics: [\"[\"]\n  - name: a\n    table: a.b.c\n",
		"sources:\n  - name: x\n    database_url: 'postgres://u@h:99999999/db'\n    topics: []\n    extra: 1\n",
		"sources: []\n",
		"sources:\n  - {name: x, database_url: \"host=h dbname=d\", topics: [\"*\"], table: \"\\\"quoted\\\".outbox\"}\n",
		"sources: [{name: &a x, database_url: *a}]\n",
		"- just\n- a list\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	c := Config{CEType: "outbox.message", IDHeader: "outbox_id"} // the flags' defaults
	const name = "fuzz.yaml"
	f.Setenv("FUZZ_DB", "postgres://u:p@127.0.0.1:5432/fuzz")
	f.Fuzz(func(t *testing.T, data []byte) {
		sources, err := c.parseSources(name, data)
		if err != nil {
			all := []error{err}
			if joined, ok := err.(interface{ Unwrap() []error }); ok {
				all = joined.Unwrap()
			}
			for _, e := range all {
				if !strings.HasPrefix(e.Error(), "sources-file "+name+": ") {
					t.Fatalf("problem %q does not name the file", e)
				}
				if strings.HasPrefix(e.Error(), "sources-file "+name+": sources[") &&
					!strings.Contains(e.Error(), "].") {
					t.Fatalf("problem %q names a source but not its field", e)
				}
			}
			return
		}
		if len(sources) == 0 {
			t.Fatal("accepted a file of no sources")
		}
		seen := map[string]bool{}
		for i, s := range sources {
			if err := s.Validate(); err != nil {
				t.Fatalf("source %d accepted but invalid: %v", i, err)
			}
			if seen[s.Name] {
				t.Fatalf("source name %q accepted twice", s.Name)
			}
			seen[s.Name] = true
			if _, err := outbox.QuoteTable(s.Table); err != nil {
				t.Fatalf("source %d: table %q: %v", i, s.Table, err)
			}
			if len(s.Topics) == 0 || s.CESource == "" || s.CEType == "" || s.IDHeader == "none" {
				t.Fatalf("source %d accepted incomplete: %+v", i, s)
			}
			s.Allows("sitewatch.checks") // a pattern that passed Validate never panics path.Match
		}
		if len(data) > maxSourcesFile {
			t.Fatalf("accepted a file of %d bytes, over the %d limit", len(data), maxSourcesFile)
		}
	})
}
