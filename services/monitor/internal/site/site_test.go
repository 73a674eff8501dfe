package site

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultsAreValid(t *testing.T) {
	s := Site{URL: "https://example.com/health"}.WithDefaults()
	require.NoError(t, s.Validate())
	require.Equal(t, time.Minute, s.Interval)
	require.Equal(t, 10*time.Second, s.Timeout)
	require.Equal(t, "GET", s.Method)
	require.Equal(t, "sitewatch.checks", s.Topic)

	short := Site{URL: "http://a", Interval: 2 * time.Second}.WithDefaults()
	require.Equal(t, 2*time.Second, short.Timeout, "timeout defaults to at most the interval")
}

func TestValidateNamesTheField(t *testing.T) {
	for name, tc := range map[string]struct {
		site  Site
		field string
		msg   string
	}{
		"empty url":      {Site{}, "url", "must not be empty"},
		"no scheme":      {Site{URL: "example.com"}, "url", "scheme must be http or https"},
		"ftp":            {Site{URL: "ftp://example.com"}, "url", "scheme must be http or https"},
		"no host":        {Site{URL: "http://"}, "url", "has no host"},
		"bad port":       {Site{URL: "http://a:99999"}, "url", "port must be 1..65535"},
		"bad regex":      {Site{URL: "http://a", Regex: "(unclosed"}, "regex", "missing closing )"},
		"perl regex":     {Site{URL: "http://a", Regex: `(?<=x)y`}, "regex", "not a valid RE2"},
		"short interval": {Site{URL: "http://a", Interval: 10 * time.Millisecond}, "interval", "at least 1s"},
		"long interval":  {Site{URL: "http://a", Interval: 48 * time.Hour}, "interval", "at most 24h"},
		"timeout":        {Site{URL: "http://a", Interval: 5 * time.Second, Timeout: 6 * time.Second}, "timeout", "must not exceed the interval"},
		"topic":          {Site{URL: "http://a", Topic: "a/b"}, "topic", "may only hold"},
		"method":         {Site{URL: "http://a", Method: "FETCH"}, "method", "want one of"},
	} {
		err := tc.site.WithDefaults().Validate()
		var fe *FieldError
		require.True(t, errors.As(err, &fe), name)
		require.Equal(t, tc.field, fe.Field, name)
		require.Contains(t, fe.Error(), tc.msg, name)
	}
}
