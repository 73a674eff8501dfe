package checkevent

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	yes := true
	in := Check{SchemaVersion: SchemaVersion, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789abc", SiteID: 7,
		URL: "https://example.com", CheckedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		StatusCode: 200, DurationMS: 12.5, Regex: "ok", RegexMatched: &yes}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	out, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, in, out)
}

func TestDecodeNamesTheBadField(t *testing.T) {
	valid := `"schema_version":1,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":1,"url":"http://a","checked_at":"2026-01-01T00:00:00Z"`
	for payload, want := range map[string]string{
		`not json`:                                   "invalid character",
		`{"schema_version":9}`:                       "schema_version 9",
		`{` + valid + `,"site_id":0}`:                "site_id 0",
		`{` + valid + `,"event_id":"x"}`:             `event_id "x"`,
		`{` + valid + `,"url":""}`:                   "url: empty",
		`{` + valid + `,"status_code":-1}`:           "status_code -1",
		`{"schema_version":1,"site_id":1,"url":"u"}`: "checked_at: missing",
	} {
		_, err := Decode([]byte(payload))
		require.ErrorIs(t, err, ErrMalformed, payload)
		require.ErrorContains(t, err, want, payload)
	}
	_, err := Decode([]byte(`{` + valid + `}`))
	require.NoError(t, err)
}
