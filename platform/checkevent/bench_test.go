package checkevent

import "testing"

// BenchmarkDecode: one typical version-3 check, as the sink decodes each
// message it consumes.
func BenchmarkDecode(b *testing.B) {
	payload := []byte(`{"schema_version":3,"event_id":"0191c3a5-7b1e-7c3d-8e2f-123456789abc","site_id":7,"url":"https://example.com/health",` +
		`"checked_at":"2026-01-02T03:04:05.123456789Z","status_code":200,"duration_ms":112.53,"regex_matched":true,` +
		`"regexes":[{"pattern":"ok","match":true,"matched":true}],"dns_ms":1.2,"connect_ms":20.1,"tls_ms":30.7,"ttfb_ms":40.2,` +
		`"transfer_ms":2.5,"body_bytes":1234,"final_url":"https://example.com/health",` +
		`"tls_expiry":"2027-01-02T00:00:00Z","tls_chain_expiry":"2026-06-01T00:00:00Z","remote_ip":"192.0.2.1","region":"eu-west"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := Decode(payload); err != nil {
			b.Fatal(err)
		}
	}
}
