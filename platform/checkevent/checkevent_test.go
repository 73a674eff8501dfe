package checkevent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	yes := true
	expiry := time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)
	chain := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	in := Check{SchemaVersion: SchemaVersion, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789abc", SiteID: 7,
		URL: "https://example.com", CheckedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		StatusCode: 200, DurationMS: 12.5, RegexMatched: &yes,
		Regexes: []RegexResult{{Pattern: "ok", Match: true, Matched: true}, {Pattern: "error", Matched: false}},
		DNSMS:   1, ConnectMS: 2, TLSMS: 3, TTFBMS: 4, TransferMS: 2.5, BodyBytes: 1234, Truncated: true,
		Redirects: 2, FinalURL: "https://www.example.com/", TLSExpiry: &expiry, TLSChainExpiry: &chain, RemoteIP: "192.0.2.1",
		Region: "eu-west"}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	out, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, in, out)
}

func TestVersion1IsStillAccepted(t *testing.T) {
	v1 := `{"schema_version":1,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":1,"url":"http://a",` +
		`"checked_at":"2026-01-01T00:00:00Z","status_code":200,"duration_ms":3,"regex":"ok","regex_matched":false}`
	c, err := Decode([]byte(v1))
	require.NoError(t, err)
	require.Equal(t, 1, c.SchemaVersion)
	require.Equal(t, "ok", c.Regex)
	require.Equal(t, DefaultRegion, c.Region, "checks from before regions come from the default region")
	require.Equal(t, []RegexResult{{Pattern: "ok", Match: true, Matched: false}}, c.Regexes,
		"a version 1 regex reads as one must-match regex")
}

func TestDecodeNamesTheBadField(t *testing.T) {
	valid := `"schema_version":3,"region":"us-east-1","event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":1,"url":"http://a","checked_at":"2026-01-01T00:00:00Z"`
	for payload, want := range map[string]string{
		`not json`:                                        "invalid character",
		`{"schema_version":9}`:                            "site_id 0",
		`{"schema_version":0}`:                            "want 1 or more",
		`{` + valid + `,"region":""}`:                     "region",
		`{` + valid + `,"region":"EU"}`:                   "region",
		`{` + valid + `,"site_id":0}`:                     "site_id 0",
		`{` + valid + `,"event_id":"x"}`:                  `event_id "x"`,
		`{` + valid + `,"url":""}`:                        "url: empty",
		`{` + valid + `,"status_code":-1}`:                "status_code -1",
		`{` + valid + `,"tls_ms":-1}`:                     "phase timings",
		`{` + valid + `,"body_bytes":-1}`:                 "body_bytes -1",
		`{` + valid + `,"redirects":-2}`:                  "redirects -2",
		`{` + valid + `,"kind":"ping"}`:                   `kind "ping"`,
		`{` + valid + `,"icmp_sent":1,"icmp_received":2}`: "icmp_received 2 of icmp_sent 1",
		`{` + valid + `,"rtt_avg_ms":-1}`:                 "round trips: negative",
		`{"schema_version":1,"site_id":1,"url":"u"}`:      "checked_at: missing",
	} {
		_, err := Decode([]byte(payload))
		require.ErrorIs(t, err, ErrMalformed, payload)
		require.ErrorContains(t, err, want, payload)
	}
	_, err := Decode([]byte(`{` + valid + `}`))
	require.NoError(t, err)
	// A kind from a newer monitor is read, not refused, as any newer field is.
	_, err = Decode([]byte(`{` + strings.Replace(valid, `"schema_version":3`, `"schema_version":99`, 1) + `,"kind":"ping"}`))
	require.NoError(t, err)
}

func TestVersion2ReadsAsTheDefaultRegion(t *testing.T) {
	c, err := Decode([]byte(`{"schema_version":2,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":1,"url":"http://a","checked_at":"2026-01-01T00:00:00Z"}`))
	require.NoError(t, err)
	require.Equal(t, DefaultRegion, c.Region)
}

func TestValidateRegion(t *testing.T) {
	for _, ok := range []string{"local", "eu-west", "us-east-1", "a", "9z"} {
		require.NoError(t, ValidateRegion(ok), ok)
	}
	for _, bad := range []string{"", "-eu", "EU", "eu_west", "eu west", string(make([]byte, 64))} {
		require.Error(t, ValidateRegion(bad), bad)
	}
}

// A newer writer's event is read with the fields this code knows.
func TestNewerVersionsAreReadNotRefused(t *testing.T) {
	c, err := Decode([]byte(`{"schema_version":99,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":4,"url":"http://a",` +
		`"checked_at":"2026-01-01T00:00:00Z","status_code":204,"region":"eu-west","field_from_the_future":{"x":1}}`))
	require.NoError(t, err)
	require.Equal(t, 99, c.SchemaVersion)
	require.Equal(t, 204, c.StatusCode)
	require.Equal(t, "eu-west", c.Region)
}
