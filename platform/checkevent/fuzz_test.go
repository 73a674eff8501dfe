package checkevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"testing"
)

// fieldOf is what a Decode error of well-formed JSON must say: the field
// of the payload that is wrong.
var fieldOf = regexp.MustCompile(`^malformed check event: (schema_version|site_id|url|checked_at|status_code|duration_ms|phase timings|body_bytes|redirects|event_id|region|kind|icmp_received|round trips)[: ]`)

// FuzzDecode: the sink's decoder never panics on a Kafka message; what it
// refuses wraps ErrMalformed (so the sink skips it instead of retrying
// forever) and, when it is JSON of a check, names the field that is wrong; what it accepts is valid, has a region,
// and decodes to itself again once encoded (nothing is lost or changed by
// a re-delivery through the contract).
func FuzzDecode(f *testing.F) {
	for _, seed := range decodeSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := Decode(payload)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("refusal does not wrap ErrMalformed (the sink would retry it): %v", err)
			}
			if json.Unmarshal(payload, new(Check)) != nil {
				return // not JSON of a check: the parser's message is the reason
			}
			if !fieldOf.MatchString(err.Error()) {
				t.Fatalf("refusal names no field: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted but invalid: %v", err)
		}
		if ValidateRegion(c.Region) != nil {
			t.Fatalf("accepted with region %q", c.Region)
		}
		once, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		c2, err := Decode(once)
		if err != nil {
			t.Fatalf("re-encoded event is refused: %v\n%s", err, once)
		}
		twice, err := json.Marshal(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once, twice) {
			t.Fatalf("decoding changes an accepted event:\n%s\n%s", once, twice)
		}
	})
}

// decodeSeeds are the fuzzers' seeds: every version, the future, and what
// is refused.
var decodeSeeds = []string{
	`{"schema_version":3,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":7,"url":"https://example.com",` +
		`"checked_at":"2026-01-02T03:04:05Z","status_code":200,"duration_ms":12.5,"regex_matched":true,` +
		`"regexes":[{"pattern":"ok","match":true,"matched":true}],"dns_ms":1,"connect_ms":2,"tls_ms":3,"ttfb_ms":4,` +
		`"transfer_ms":2.5,"body_bytes":1234,"truncated":true,"redirects":2,"final_url":"https://www.example.com/",` +
		`"tls_expiry":"2027-01-02T00:00:00Z","tls_chain_expiry":"2026-06-01T00:00:00+02:00","remote_ip":"192.0.2.1","region":"eu-west"}`,
	`{"schema_version":1,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":1,"url":"http://a",` +
		`"checked_at":"2026-01-01T00:00:00Z","status_code":200,"duration_ms":3,"regex":"ok","regex_matched":false}`,
	`{"schema_version":2,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":1,"url":"http://a",` +
		`"checked_at":"2026-01-01T00:00:00.123456789-07:00","duration_ms":3,"error_class":"dns","error":"no such host"}`,
	`{"schema_version":9,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":1,"url":"http://a",` +
		`"checked_at":"2026-01-01T00:00:00Z","duration_ms":3,"region":"x","future":{"field":[1,2]}}`,
	`{"schema_version":3,"event_id":"not-a-uuid","site_id":1,"url":"http://a","checked_at":"2026-01-01T00:00:00Z","region":"local"}`,
	`{"schema_version":3,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":1,"url":"http://a","checked_at":"2026-01-01T00:00:00Z","region":"EU"}`,
	`{"schema_version":0}`, `{"schema_version":1,"site_id":-1}`, `{"site_id":"7"}`, `[]`, `null`, `{`, ``,
	`{"schema_version":3,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":1,"url":"http://a","checked_at":"2026-01-01T00:00:00Z","duration_ms":-1,"region":"a"}`,
}
