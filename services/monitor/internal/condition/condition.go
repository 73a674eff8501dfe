// Package condition is the small language of an HTTP site's conditions on
// what comes back, checked after the status and the regexes:
//
//	$.status == "UP"                JSON body: a path, an operator, a JSON literal
//	$.items.length > 0              .length: of an array, a string or an object
//	$.checks[0].latency_ms < 300
//	$["odd key"].ok == true
//	$.error == null                 null: absent or null
//	header.Content-Type contains "json"
//
// Operators: == != < <= > >= contains (a substring of a string, an element
// of an array). Ordering compares numbers only. A condition is parsed once
// when the site is added, and evaluation is linear in the body (decoded
// once for all of a site's conditions) and in the path.
package condition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of a condition and of a site's.
const (
	MaxLen      = 512 // bytes of one condition
	MaxSegments = 32  // steps of one JSON path
	MaxPerSite  = 16
)

// Operators: at the first place one starts (outside quotes), the longest.
var operators = []string{"==", "!=", "<=", ">=", "<", ">", " contains "}

// Condition is a parsed condition.
type Condition struct {
	Text   string
	left   string    // the left-hand side as written
	header string    // header.Name: the header's canonical name; "" for a JSON path
	path   []segment // the JSON path's steps
	length bool      // the path ends in .length
	op     string
	want   any // the literal, as encoding/json decodes it (float64, string, bool, nil)
}

type segment struct {
	key   string
	index int // -1: key
}

// Parse parses one condition; its error says what is wrong and where.
func Parse(text string) (*Condition, error) {
	switch {
	case strings.TrimSpace(text) == "":
		return nil, errors.New("empty: want e.g. $.status == \"UP\"")
	case len(text) > MaxLen:
		return nil, fmt.Errorf("longer than %d bytes", MaxLen)
	case !utf8.ValidString(text):
		return nil, errors.New("not UTF-8")
	}
	c := &Condition{Text: text}
	lhs, rhs, op := "", "", ""
	in := false // inside a double-quoted string
scan:
	for i := 0; i < len(text); i++ {
		switch {
		case text[i] == '\\' && in:
			i++
			continue
		case text[i] == '"':
			in = !in
			continue
		case in:
			continue
		}
		for _, o := range operators { // longest first
			if strings.HasPrefix(text[i:], o) {
				lhs, rhs, op = strings.TrimSpace(text[:i]), strings.TrimSpace(text[i+len(o):]), strings.TrimSpace(o)
				break scan
			}
		}
	}
	if op == "" {
		return nil, errors.New("no operator: want one of ==, !=, <, <=, >, >=, contains between a value and a literal")
	}
	c.op, c.left = op, lhs
	switch {
	case strings.HasPrefix(lhs, "header."):
		name := strings.TrimPrefix(lhs, "header.")
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) }) {
			return nil, fmt.Errorf("header %q: not a header name", name)
		}
		c.header = http.CanonicalHeaderKey(name)
	case strings.HasPrefix(lhs, "$"):
		var err error
		if c.path, c.length, err = parsePath(lhs); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%q: want a JSON path ($.a.b[0]) or header.Name on the left", lhs)
	}
	if rhs == "" {
		return nil, errors.New("no value after " + op + ": want a JSON literal (\"text\", 42, true, false, null)")
	}
	dec := json.NewDecoder(strings.NewReader(rhs))
	if err := dec.Decode(&c.want); err != nil || dec.More() {
		return nil, fmt.Errorf("%s: want a JSON literal (\"text\", 42, true, false, null)", rhs)
	}
	switch c.want.(type) {
	case map[string]any, []any:
		return nil, fmt.Errorf("%s: want a string, number, true, false or null, not an object or array", rhs)
	}
	switch op {
	case "<", "<=", ">", ">=":
		if _, ok := c.want.(float64); !ok {
			return nil, fmt.Errorf("%s %s: ordering compares numbers; use == or contains for text", op, rhs)
		}
	case "contains":
		if c.want == nil {
			return nil, errors.New("contains null: want a string or a number")
		}
	}
	return c, nil
}

func parsePath(p string) ([]segment, bool, error) {
	rest := strings.TrimPrefix(p, "$")
	var segs []segment
	for rest != "" {
		if len(segs) == MaxSegments {
			return nil, false, fmt.Errorf("%s: at most %d steps", p, MaxSegments)
		}
		switch rest[0] {
		case '.':
			rest = rest[1:]
			n := 0
			for n < len(rest) && (rest[n] == '_' || rest[n] == '-' || rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= 'A' && rest[n] <= 'Z' || n > 0 && rest[n] >= '0' && rest[n] <= '9') {
				n++
			}
			if n == 0 {
				return nil, false, fmt.Errorf("%s: want a name after '.' (letters, digits, '_', '-'), or [\"key\"]", p)
			}
			segs = append(segs, segment{key: rest[:n], index: -1})
			rest = rest[n:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if strings.HasPrefix(rest, `["`) {
				// A quoted key may hold ']': find the closing quote first.
				var key string
				dec := json.NewDecoder(strings.NewReader(rest[1:]))
				if err := dec.Decode(&key); err != nil {
					return nil, false, fmt.Errorf("%s: want [\"key\"] with a JSON string", p)
				}
				after := rest[1+int(dec.InputOffset()):]
				if !strings.HasPrefix(after, "]") {
					return nil, false, fmt.Errorf("%s: want ] after [\"%s\"", p, key)
				}
				segs = append(segs, segment{key: key, index: -1})
				rest = after[1:]
				continue
			}
			if end < 0 {
				return nil, false, fmt.Errorf("%s: '[' without ']'", p)
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 || n > 1<<20 {
				return nil, false, fmt.Errorf("%s: [%s]: want an index 0..1048576 or [\"key\"]", p, rest[1:end])
			}
			segs = append(segs, segment{index: n})
			rest = rest[end+1:]
		default:
			return nil, false, fmt.Errorf("%s: unexpected %q: want .name, [N] or [\"key\"] after $", p, rest[:1])
		}
	}
	if n := len(segs); n > 0 && segs[n-1].key == "length" && segs[n-1].index < 0 {
		return segs[:n-1], true, nil
	}
	return segs, false, nil
}

// NeedsJSON reports whether any of cs reads the body as JSON.
func NeedsJSON(cs []*Condition) bool {
	for _, c := range cs {
		if c.header == "" {
			return true
		}
	}
	return false
}

// Body is a response's body decoded once for all of a site's conditions.
type Body struct {
	value any
	err   error
}

// DecodeBody decodes body as JSON for Eval.
func DecodeBody(body []byte) Body {
	var b Body
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&b.value); err != nil {
		b.err = fmt.Errorf("the body is not JSON: %v", err)
	} else if dec.More() {
		b.err = errors.New("the body is not JSON: more after the first value")
	}
	return b
}

// Eval checks c against a response: whether it holds, and what the value
// was (for the result and the error).
func (c *Condition) Eval(body Body, header http.Header) (bool, string) {
	var got any
	present := true
	if c.header != "" {
		vs := header.Values(c.header)
		if len(vs) == 0 {
			got, present = nil, false
		} else {
			got = strings.Join(vs, ", ")
			if c.isOrdering() {
				f, err := strconv.ParseFloat(strings.TrimSpace(got.(string)), 64)
				if err != nil {
					return false, fmt.Sprintf("header %s is %s, not a number", c.header, quote(got))
				}
				got = f
			}
		}
	} else {
		if body.err != nil {
			return false, body.err.Error()
		}
		got, present = walk(body.value, c.path)
		if present && c.length {
			got, present = length(got)
		}
	}
	name := c.lhs()
	if !present && c.want == nil {
		return c.op == "==", name + " is absent"
	}
	if !present {
		return false, name + " is absent"
	}
	switch c.op {
	case "==":
		return equal(got, c.want), name + " is " + quote(got)
	case "!=":
		return !equal(got, c.want), name + " is " + quote(got)
	case "contains":
		return contains(got, c.want), name + " is " + quote(got)
	}
	f, ok := got.(float64)
	if !ok {
		return false, fmt.Sprintf("%s is %s, not a number", name, quote(got))
	}
	w := c.want.(float64)
	held := map[string]bool{"<": f < w, "<=": f <= w, ">": f > w, ">=": f >= w}[c.op]
	return held, name + " is " + quote(got)
}

func (c *Condition) isOrdering() bool { return c.op != "==" && c.op != "!=" && c.op != "contains" }

// lhs names the condition's left-hand side in results.
func (c *Condition) lhs() string {
	if c.header != "" {
		return "header " + c.header
	}
	return c.left
}

func walk(v any, path []segment) (any, bool) {
	for _, s := range path {
		switch t := v.(type) {
		case map[string]any:
			if s.index >= 0 {
				return nil, false
			}
			var ok bool
			if v, ok = t[s.key]; !ok {
				return nil, false
			}
		case []any:
			if s.index < 0 || s.index >= len(t) {
				return nil, false
			}
			v = t[s.index]
		default:
			return nil, false
		}
	}
	return v, true
}

// length is .length: a key of that name if the object has one, else the
// size of an array, string (in characters) or object.
func length(v any) (any, bool) {
	switch t := v.(type) {
	case map[string]any:
		if l, ok := t["length"]; ok {
			return l, true
		}
		return float64(len(t)), true
	case []any:
		return float64(len(t)), true
	case string:
		return float64(utf8.RuneCountInString(t)), true
	}
	return nil, false
}

func equal(got, want any) bool {
	if g, ok := got.(float64); ok {
		w, ok := want.(float64)
		return ok && (g == w || math.IsNaN(g) && math.IsNaN(w))
	}
	return reflect.DeepEqual(got, want)
}

func contains(got, want any) bool {
	switch t := got.(type) {
	case string:
		w, ok := want.(string)
		return ok && strings.Contains(t, w)
	case []any:
		for _, e := range t {
			if equal(e, want) {
				return true
			}
		}
	}
	return false
}

// quote renders a value as JSON, at most 100 bytes of it.
func quote(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	if len(b) > 100 {
		return string(b[:100]) + "…"
	}
	return string(b)
}
