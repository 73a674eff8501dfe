package checkevent

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// viaEncodingJSON is what encoding/json makes of payload.
func viaEncodingJSON(payload []byte) (Check, error) {
	var c Check
	err := json.Unmarshal(payload, &c)
	return c, err
}

// monitorChecks are checks as the monitor writes them, with every field
// and the strings json.Marshal escapes: quotes in Go's error texts, & and
// < in URLs, non-ASCII, control characters.
func monitorChecks() []Check {
	yes, no := true, false
	rttMin, rttAvg, rttMax := 0.031, 1.5, 12.25
	expiry := time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)
	chain := time.Date(2026, 6, 1, 0, 0, 0, 0, time.FixedZone("", 2*3600))
	return []Check{
		{SchemaVersion: SchemaVersion, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789abc", SiteID: 7,
			URL: "https://example.com/health?a=1&b=<2>", CheckedAt: time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
			StatusCode: 200, DurationMS: 112.53, RegexMatched: &yes,
			Regexes: []RegexResult{{Pattern: `"ok"\s+\d`, Match: true, Matched: true}, {Pattern: "erreur fatale – ☠", Matched: false}},
			DNSMS:   1.25, ConnectMS: 2e-7, TLSMS: 3, TTFBMS: 4, TransferMS: 2.5, BodyBytes: 1 << 40, Truncated: true,
			Redirects: 2, FinalURL: "https://www.example.com/ünïcode", TLSExpiry: &expiry, TLSChainExpiry: &chain,
			RemoteIP: "2001:db8::1", Region: "eu-west", TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", OCSPStapled: &no},
		{SchemaVersion: SchemaVersion, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789abf", SiteID: 8, Kind: KindTLS,
			URL: "tls://db.example.com:5432", CheckedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DurationMS: 20,
			DNSMS: 1, ConnectMS: 2, TLSMS: 3, TTFBMS: 4, TransferMS: 1, BodyBytes: 12, TLSExpiry: &expiry, TLSChainExpiry: &chain,
			Regexes: []RegexResult{{Pattern: "^\\+OK", Match: true, Matched: true}}, RegexMatched: &yes,
			RemoteIP: "192.0.2.7", Region: "local", TLSVersion: "TLS 1.2", TLSCipher: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", OCSPStapled: &yes},
		{SchemaVersion: SchemaVersion, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789ac0", SiteID: 9, Kind: KindDNS,
			URL: "dns://9.9.9.9/example.com?type=TXT", CheckedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DurationMS: 3,
			DNSMS: 2.5, RemoteIP: "9.9.9.9", Region: "local", ErrorClass: "dns_answer", Error: "no answer matches",
			DNSRCode: "NOERROR", DNSAnswers: []string{"v=spf1 -all", "\"quoted\" ünïcode"}},
		{SchemaVersion: SchemaVersion, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789ac1", SiteID: 10, Kind: KindDNS,
			URL: "dns:///nope.example", CheckedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DurationMS: 3,
			Region: "local", DNSRCode: "NXDOMAIN", DNSAnswers: []string{}},
		{SchemaVersion: SchemaVersion, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789ac2", SiteID: 11, Kind: KindICMP,
			URL: "icmp://192.0.2.1?count=5", CheckedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DurationMS: 40,
			RemoteIP: "192.0.2.1", Region: "local", ICMPSent: 5, ICMPReceived: 4, RTTMinMS: &rttMin, RTTAvgMS: &rttAvg, RTTMaxMS: &rttMax},
		{SchemaVersion: SchemaVersion, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789abd", SiteID: 1 << 50,
			URL: "http://a", CheckedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -7*3600)),
			DurationMS: 30000, ErrorClass: "connect",
			Error:   "Get \"http://a\": dial tcp 127.0.0.1:1: connect: connection refused\n\ttab\u2028\x01 \\ /",
			Regexes: []RegexResult{}, RegexMatched: &no, Region: "local"},
		{SchemaVersion: 1, EventID: "0191c3a5-7b1e-7c3d-8e2f-123456789abe", SiteID: 3, URL: "http://b",
			CheckedAt: time.Date(2025, 12, 31, 23, 59, 59, 999, time.UTC), StatusCode: 503, DurationMS: 0.001,
			Regex: "ok", RegexMatched: &no},
	}
}

// Every check the monitor writes takes the fast path, and comes out as
// encoding/json makes it: a fast path that gave up on them would cost the
// sink its speed, silently.
func TestTheMonitorsEventsTakeTheFastPath(t *testing.T) {
	for i, c := range monitorChecks() {
		payload, err := json.Marshal(c)
		require.NoError(t, err)
		want, err := viaEncodingJSON(payload)
		require.NoError(t, err)
		// As written, and re-indented (whitespace anywhere JSON allows it).
		var indented bytes.Buffer
		require.NoError(t, json.Indent(&indented, payload, " \r", "\t"))
		for _, p := range [][]byte{payload, []byte(" \n" + indented.String() + "\t ")} {
			got, ok := decodeFast(p)
			require.True(t, ok, "check %d: the fast path gave up on %s", i, p)
			require.Equal(t, want, got, "check %d", i)
			require.True(t, reflect.DeepEqual(want, got), "check %d", i)
		}
	}
}

// What the fast path does not take, encoding/json decides, and Decode
// gives its answer: the same check, or its error.
func TestTheFastPathLeavesTheRestToEncodingJSON(t *testing.T) {
	const head = `{"schema_version":3,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","url":"http://a","checked_at":"2026-01-01T00:00:00Z","region":"local",`
	for name, payload := range map[string]string{
		"a key twice":              head + `"site_id":1,"site_id":2}`,
		"a key in another case":    head + `"Site_ID":5}`,
		"an unknown key":           head + `"site_id":1,"future":{"a":[1,"x",null]}}`,
		"an escaped key":           head + `"site\u005fid":4}`,
		"null":                     head + `"site_id":1,"tls_expiry":null,"regex_matched":null}`,
		"an exponent for an int":   head + `"site_id":1e2}`,
		"a fraction for an int":    head + `"site_id":1.0}`,
		"an int too large":         head + `"site_id":99999999999999999999}`,
		"a float too large":        head + `"site_id":1,"duration_ms":1e999}`,
		"a surrogate pair":         head + `"site_id":1,"error":"\ud83d\ude00"}`,
		"a lone surrogate":         head + `"site_id":1,"error":"\ud83d"}`,
		"bytes that are not UTF-8": head + `"site_id":1,"error":"\xff"}`,
		"a string for a number":    head + `"site_id":"1"}`,
		"a number for a string":    head + `"site_id":1,"error":1}`,
		"an escaped time":          head + `"site_id":1,"tls_expiry":"2027-01-01T00:00:00\u005a"}`,
		"a bad time":               head + `"site_id":1,"tls_expiry":"tomorrow"}`,
		"a duplicate regex key":    head + `"site_id":1,"regexes":[{"pattern":"a","pattern":"b"}]}`,
		"trailing data":            head + `"site_id":1} {}`,
		"a trailing comma":         head + `"site_id":1,}`,
		"a leading zero":           head + `"site_id":01}`,
		"a bad escape":             head + `"site_id":1,"error":"\x"}`,
		"a control character":      head + "\"site_id\":1,\"error\":\"a\tb\"}",
		"not an object":            `[1]`,
		"cut short":                head + `"site_id":1`,
	} {
		payload := []byte(strings.ReplaceAll(payload, `\xff`, "\xff"))
		_, ok := decodeFast(payload)
		require.False(t, ok, "%s: the fast path took %s", name, payload)
		got, gotErr := Decode(payload)
		want, wantErr := viaEncodingJSON(payload)
		if wantErr != nil {
			require.ErrorIs(t, gotErr, ErrMalformed, name)
			require.ErrorContains(t, gotErr, wantErr.Error(), name)
			continue
		}
		require.NoError(t, want.Validate(), name)
		require.NoError(t, gotErr, name)
		require.Equal(t, want.SiteID, got.SiteID, name)
		require.Equal(t, want.Error, got.Error, name)
	}
}

// FuzzFastDecodeMatchesEncodingJSON: whatever the fast path takes,
// encoding/json takes too and makes the same Check of.
func FuzzFastDecodeMatchesEncodingJSON(f *testing.F) {
	for _, c := range monitorChecks() {
		payload, err := json.Marshal(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(payload)
	}
	for _, seed := range decodeSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		got, ok := decodeFast(payload)
		if !ok {
			return
		}
		want, err := viaEncodingJSON(payload)
		if err != nil {
			t.Fatalf("the fast path took what encoding/json refuses (%v): %q", err, payload)
		}
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("the fast path and encoding/json differ on %q:\n%#v\n%#v", payload, got, want)
		}
	})
}

// Decode takes the fast path: it allocates less for a check than
// encoding/json alone does.
func TestDecodeTakesTheFastPath(t *testing.T) {
	payload, err := json.Marshal(monitorChecks()[0])
	require.NoError(t, err)
	fast := testing.AllocsPerRun(100, func() {
		if _, err := Decode(payload); err != nil {
			t.Fatal(err)
		}
	})
	slow := testing.AllocsPerRun(100, func() {
		if _, err := viaEncodingJSON(payload); err != nil {
			t.Fatal(err)
		}
	})
	require.Less(t, fast, slow, "allocations of a Decode (%v) against encoding/json's (%v)", fast, slow)
}
