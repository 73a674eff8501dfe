package condition

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const health = `{"status":"UP","latency_ms":212.5,"items":[{"id":1},{"id":2}],"name":"shop","meta":{"length":9},
	"odd key]":{"ok":true},"error":null,"tags":["eu","blue"],"empty":{}}`

func TestEval(t *testing.T) {
	body := DecodeBody([]byte(health))
	header := http.Header{"Content-Type": {"application/json; charset=utf-8"}, "X-Queue-Depth": {"17"}}
	for text, want := range map[string]bool{
		`$.status == "UP"`:                    true,
		`$.status != "UP"`:                    false,
		`$.status=="DOWN"`:                    false,
		`$.latency_ms < 300`:                  true,
		`$.latency_ms >= 212.5`:               true,
		`$.latency_ms > 212.5`:                false,
		`$.items.length > 0`:                  true,
		`$.items.length == 2`:                 true,
		`$.items[1].id == 2`:                  true,
		`$.items[2].id == 3`:                  false,
		`$.name.length == 4`:                  true,
		`$.meta.length == 9`:                  true, // the object's own key wins
		`$.empty.length == 0`:                 true,
		`$["odd key]"].ok == true`:            true,
		`$.error == null`:                     true,
		`$.missing == null`:                   true,
		`$.missing != null`:                   false,
		`$.error != null`:                     false,
		`$.missing == 1`:                      false,
		`$.tags contains "blue"`:              true,
		`$.tags contains "red"`:               false,
		`$.name contains "ho"`:                true,
		`$.status < 3`:                        false,
		`header.content-type contains "json"`: true,
		`header.X-Queue-Depth < 100`:          true,
		`header.X-Missing == null`:            true,
		`header.X-Missing == "x"`:             false,
		`$.status == "a == b"`:                false,
		`$["a==b"] == null`:                   true,
		`$ != null`:                           true,
		`$.items[0] == 1`:                     false,
	} {
		c, err := Parse(text)
		require.NoError(t, err, text)
		got, actual := c.Eval(body, header)
		require.Equal(t, want, got, "%s: %s", text, actual)
	}

	c, err := Parse(`$.status == "UP"`)
	require.NoError(t, err)
	ok, actual := c.Eval(DecodeBody([]byte(`{"status":"DOWN"}`)), nil)
	require.False(t, ok)
	require.Equal(t, `$.status is "DOWN"`, actual)
	ok, actual = c.Eval(DecodeBody([]byte(`<html>`)), nil)
	require.False(t, ok)
	require.Contains(t, actual, "the body is not JSON")
	ok, actual = c.Eval(DecodeBody([]byte(`{} {}`)), nil)
	require.False(t, ok)
	require.Contains(t, actual, "more after the first value")
	c, err = Parse(`$.name < 5`)
	require.NoError(t, err)
	_, actual = c.Eval(body, nil)
	require.Equal(t, `$.name is "shop", not a number`, actual)
	c, err = Parse(`header.Content-Type > 1`)
	require.NoError(t, err)
	_, actual = c.Eval(body, header)
	require.Contains(t, actual, "not a number")
	ok, actual = mustParse(t, `$.items == 1`).Eval(DecodeBody([]byte(`{"items":"`+strings.Repeat("x", 500)+`"}`)), nil)
	require.False(t, ok)
	require.Less(t, len(actual), 140, "a long value is cut short")
}

func mustParse(t *testing.T, text string) *Condition {
	t.Helper()
	c, err := Parse(text)
	require.NoError(t, err)
	return c
}

func TestParseSaysWhatIsWrong(t *testing.T) {
	for text, msg := range map[string]string{
		``:                                       "empty",
		`$.status`:                               "no operator",
		`$.status ==`:                            "no value after ==",
		`$.status == UP`:                         "want a JSON literal",
		`$.status == "UP" "x"`:                   "want a JSON literal",
		`$.a == {"b":1}`:                         "not an object or array",
		`$.a < "x"`:                              "ordering compares numbers",
		`$.a contains null`:                      "contains null",
		`status == 200`:                          "want a JSON path ($.a.b[0]) or header.Name",
		`$.a..b == 1`:                            "want a name after '.'",
		`$.a[x] == 1`:                            "want an index",
		`$.a[-1] == 1`:                           "want an index",
		`$.a[1 == 1`:                             "without",
		`$["a" == 1`:                             `want ] after ["a"`,
		`$a == 1`:                                "unexpected \"a\"",
		`header. == "x"`:                         "not a header name",
		`header.a b == "x"`:                      "not a header name",
		strings.Repeat("x", 600):                 "longer than 512 bytes",
		`$` + strings.Repeat(".a", 33) + ` == 1`: "at most 32 steps",
		"$.a == \"\xff\"":                        "not UTF-8",
	} {
		_, err := Parse(text)
		require.Error(t, err, text)
		require.Contains(t, err.Error(), msg, text)
	}
}

func TestNeedsJSON(t *testing.T) {
	require.False(t, NeedsJSON([]*Condition{mustParse(t, `header.A == "b"`)}))
	require.True(t, NeedsJSON([]*Condition{mustParse(t, `header.A == "b"`), mustParse(t, `$.a == 1`)}))
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`$.status == "UP"`, `$.items.length > 0`, `$["k"][0] != null`, `header.X contains "y"`} {
		f.Add(s, health)
	}
	f.Fuzz(func(t *testing.T, text, body string) {
		c, err := Parse(text)
		if err != nil {
			return
		}
		c.Eval(DecodeBody([]byte(body)), http.Header{"X": {body}})
	})
}
