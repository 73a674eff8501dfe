package checkevent

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// decodeFast parses payload into a Check exactly as encoding/json would,
// for the JSON the monitor writes (json.Marshal's, with any whitespace),
// and reports false for anything else: a key it does not know or spelled
// in another case, a key given twice, null, a number encoding/json would
// refuse for its field, a surrogate escape, bytes that are not UTF-8,
// invalid JSON (returning a zero Check). Decode hands those to
// encoding/json, which decides. Each
// message the sink consumes is decoded here; with encoding/json alone,
// decoding took 46–49 % of the sink's collecting goroutine's time
// (BenchmarkSinkPreloaded: reflection, a validating pass before the
// decoding one, 18 allocations a check), and 14–15 % with this.
// FuzzFastDecodeMatchesEncodingJSON holds every Check it returns to
// encoding/json's.
func decodeFast(payload []byte) (Check, bool) {
	var c Check
	d := fastDecoder{b: payload}
	var seen uint64 // one bit per key: a key given twice is encoding/json's to handle
	ok := d.object(func(key []byte) bool {
		bit, ok := d.field(&c, key)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
	if d.space(); !ok || d.i != len(d.b) {
		return Check{}, false
	}
	return c, true
}

// fastDecoder reads b from i on; each method consumes what it reads.
type fastDecoder struct {
	b []byte
	i int
}

// field decodes the value of key into c and returns the key's bit; false
// for a key Check does not have under that exact name.
func (d *fastDecoder) field(c *Check, key []byte) (bit uint64, ok bool) {
	switch string(key) {
	case "schema_version":
		bit = 1 << 0
		c.SchemaVersion, ok = d.int()
	case "event_id":
		bit = 1 << 1
		c.EventID, ok = d.string()
	case "site_id":
		bit = 1 << 2
		var n int
		n, ok = d.int()
		c.SiteID = int64(n)
	case "url":
		bit = 1 << 3
		c.URL, ok = d.string()
	case "checked_at":
		bit = 1 << 4
		ok = d.time(&c.CheckedAt)
	case "status_code":
		bit = 1 << 5
		c.StatusCode, ok = d.int()
	case "duration_ms":
		bit = 1 << 6
		c.DurationMS, ok = d.float()
	case "regex":
		bit = 1 << 7
		c.Regex, ok = d.string()
	case "regex_matched":
		bit = 1 << 8
		var v bool
		v, ok = d.bool()
		c.RegexMatched = &v
	case "error_class":
		bit = 1 << 9
		c.ErrorClass, ok = d.string()
	case "error":
		bit = 1 << 10
		c.Error, ok = d.string()
	case "regexes":
		bit = 1 << 11
		c.Regexes, ok = d.regexes()
	case "dns_ms":
		bit = 1 << 12
		c.DNSMS, ok = d.float()
	case "connect_ms":
		bit = 1 << 13
		c.ConnectMS, ok = d.float()
	case "tls_ms":
		bit = 1 << 14
		c.TLSMS, ok = d.float()
	case "ttfb_ms":
		bit = 1 << 15
		c.TTFBMS, ok = d.float()
	case "transfer_ms":
		bit = 1 << 16
		c.TransferMS, ok = d.float()
	case "body_bytes":
		bit = 1 << 17
		var n int
		n, ok = d.int()
		c.BodyBytes = int64(n)
	case "truncated":
		bit = 1 << 18
		c.Truncated, ok = d.bool()
	case "redirects":
		bit = 1 << 19
		c.Redirects, ok = d.int()
	case "final_url":
		bit = 1 << 20
		c.FinalURL, ok = d.string()
	case "tls_expiry":
		bit = 1 << 21
		c.TLSExpiry = new(time.Time)
		ok = d.time(c.TLSExpiry)
	case "tls_chain_expiry":
		bit = 1 << 22
		c.TLSChainExpiry = new(time.Time)
		ok = d.time(c.TLSChainExpiry)
	case "remote_ip":
		bit = 1 << 23
		c.RemoteIP, ok = d.string()
	case "region":
		bit = 1 << 24
		c.Region, ok = d.string()
	case "kind":
		bit = 1 << 25
		c.Kind, ok = d.string()
	case "tls_version":
		bit = 1 << 26
		c.TLSVersion, ok = d.string()
	case "tls_cipher":
		bit = 1 << 27
		c.TLSCipher, ok = d.string()
	case "ocsp_stapled":
		bit = 1 << 28
		var v bool
		v, ok = d.bool()
		c.OCSPStapled = &v
	case "dns_rcode":
		bit = 1 << 29
		c.DNSRCode, ok = d.string()
	case "dns_answers":
		bit = 1 << 30
		c.DNSAnswers, ok = d.strings()
	case "icmp_sent":
		bit = 1 << 31
		c.ICMPSent, ok = d.int()
	case "icmp_received":
		bit = 1 << 32
		c.ICMPReceived, ok = d.int()
	case "rtt_min_ms":
		bit = 1 << 33
		c.RTTMinMS, ok = d.floatPtr()
	case "rtt_avg_ms":
		bit = 1 << 34
		c.RTTAvgMS, ok = d.floatPtr()
	case "rtt_max_ms":
		bit = 1 << 35
		c.RTTMaxMS, ok = d.floatPtr()
	case "degraded":
		bit = 1 << 36
		c.Degraded, ok = d.string()
	}
	// "conditions" (rare: sites with conditions) goes to encoding/json.
	return bit, ok
}

// floatPtr decodes a number into a new float64.
func (d *fastDecoder) floatPtr() (*float64, bool) {
	v, ok := d.float()
	return &v, ok
}

// strings decodes an array of strings; [] is an empty slice, not nil, as
// encoding/json makes it.
func (d *fastDecoder) strings() ([]string, bool) {
	d.space()
	if !d.take('[') {
		return nil, false
	}
	out := []string{}
	d.space()
	if d.take(']') {
		return out, true
	}
	for {
		d.space()
		s, ok := d.string()
		if !ok {
			return nil, false
		}
		out = append(out, s)
		d.space()
		if d.take(']') {
			return out, true
		}
		if !d.take(',') {
			return nil, false
		}
	}
}

// regexes decodes an array of regex results; [] is an empty slice, not
// nil, as encoding/json makes it.
func (d *fastDecoder) regexes() ([]RegexResult, bool) {
	d.space()
	if !d.take('[') {
		return nil, false
	}
	out := []RegexResult{}
	d.space()
	if d.take(']') {
		return out, true
	}
	for {
		var r RegexResult
		var seen [3]bool
		if !d.object(func(key []byte) bool {
			var ok bool
			switch k := string(key); {
			case k == "pattern" && !seen[0]:
				seen[0] = true
				r.Pattern, ok = d.string()
			case k == "match" && !seen[1]:
				seen[1] = true
				r.Match, ok = d.bool()
			case k == "matched" && !seen[2]:
				seen[2] = true
				r.Matched, ok = d.bool()
			}
			return ok
		}) {
			return nil, false
		}
		out = append(out, r)
		d.space()
		if d.take(']') {
			return out, true
		}
		if !d.take(',') {
			return nil, false
		}
	}
}

// object reads an object, calling value for each key with the decoder at
// the key's value; value reads it.
func (d *fastDecoder) object(value func(key []byte) bool) bool {
	d.space()
	if !d.take('{') {
		return false
	}
	d.space()
	if d.take('}') {
		return true
	}
	for {
		d.space()
		key, ok := d.plainString()
		if !ok {
			return false
		}
		d.space()
		if !d.take(':') || !value(key) {
			return false
		}
		d.space()
		if d.take('}') {
			return true
		}
		if !d.take(',') {
			return false
		}
	}
}

// space skips JSON's whitespace.
func (d *fastDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// take consumes c if it is next.
func (d *fastDecoder) take(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// plainString reads a string of printable ASCII without escapes (every key
// of a check), returning its bytes in place.
func (d *fastDecoder) plainString() ([]byte, bool) {
	if !d.take('"') {
		return nil, false
	}
	start := d.i
	for ; d.i < len(d.b); d.i++ {
		switch c := d.b[d.i]; {
		case c == '"':
			d.i++
			return d.b[start : d.i-1], true
		case c < 0x20 || c == '\\' || c >= utf8.RuneSelf:
			return nil, false
		}
	}
	return nil, false
}

// string reads a string value: UTF-8, with the escapes json.Marshal
// writes (\" \\ \n \u0026 ...); a surrogate escape is left to
// encoding/json (which pairs them, or writes U+FFFD).
func (d *fastDecoder) string() (string, bool) {
	d.space()
	if !d.take('"') {
		return "", false
	}
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(d.b[start : d.i-1]), true
		case c == '\\' || c >= utf8.RuneSelf:
			return d.unquote(start)
		case c < 0x20:
			return "", false
		}
		d.i++
	}
	return "", false
}

// unquote finishes string: its plain bytes so far are b[start:i].
func (d *fastDecoder) unquote(start int) (string, bool) {
	out := make([]byte, d.i-start, d.i-start+32)
	copy(out, d.b[start:d.i])
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return string(out), true
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			out = append(out, d.b[d.i:d.i+size]...)
			d.i += size
		case c != '\\':
			out = append(out, c)
			d.i++
		default:
			if d.i+1 >= len(d.b) {
				return "", false
			}
			esc := d.b[d.i+1]
			d.i += 2
			switch esc {
			case '"', '\\', '/':
				out = append(out, esc)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := d.hex4()
				if !ok || r >= 0xD800 && r < 0xE000 {
					return "", false
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", false
			}
		}
	}
	return "", false
}

// hex4 reads the four hex digits of a \u escape.
func (d *fastDecoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// number reads a number as JSON writes one and says whether it has a
// fraction or an exponent.
func (d *fastDecoder) number() (lit []byte, integer, ok bool) {
	d.space()
	start := d.i
	d.take('-')
	switch {
	case d.take('0'):
	case d.digits() == 0:
		return nil, false, false
	}
	integer = true
	if d.take('.') {
		integer = false
		if d.digits() == 0 {
			return nil, false, false
		}
	}
	if d.take('e') || d.take('E') {
		integer = false
		if !d.take('+') {
			d.take('-')
		}
		if d.digits() == 0 {
			return nil, false, false
		}
	}
	return d.b[start:d.i], integer, true
}

// digits consumes 0-9s and says how many.
func (d *fastDecoder) digits() int {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i - start
}

// int reads an integer; encoding/json refuses a fraction or an exponent
// for an int, and so does this (leaving the error to it).
func (d *fastDecoder) int() (int, bool) {
	lit, integer, ok := d.number()
	if !ok || !integer || len(lit) > 18 { // 18 digits never overflow
		return 0, false
	}
	neg := lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	n := 0
	for _, c := range lit {
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// float reads a number as encoding/json does for a float64: ParseFloat of
// the literal, refused when out of range.
func (d *fastDecoder) float() (float64, bool) {
	lit, _, ok := d.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	return f, err == nil
}

// bool reads true or false (null is encoding/json's to handle).
func (d *fastDecoder) bool() (bool, bool) {
	d.space()
	rest := d.b[d.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		d.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		d.i += 5
		return false, true
	}
	return false, false
}

// time reads a string of printable ASCII into t with time.Time's own
// UnmarshalJSON, given the literal with its quotes, as encoding/json gives
// it.
func (d *fastDecoder) time(t *time.Time) bool {
	d.space()
	start := d.i
	if _, ok := d.plainString(); !ok {
		return false
	}
	return t.UnmarshalJSON(d.b[start:d.i]) == nil
}
