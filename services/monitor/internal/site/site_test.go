package site

import (
	"errors"
	"net/url"
	"strings"
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
	require.Equal(t, "200-399", s.Expect)
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
		"no scheme":      {Site{URL: "example.com"}, "url", "scheme must be http, https, tcp, tls, dns, grpc, grpcs, icmp or heartbeat"},
		"ftp":            {Site{URL: "ftp://example.com"}, "url", "scheme must be http, https, tcp, tls, dns, grpc, grpcs, icmp or heartbeat"},
		"no host":        {Site{URL: "http://"}, "url", "has no host"},
		"bad port":       {Site{URL: "http://a:99999"}, "url", "port must be 1..65535"},
		"bad regex":      {Site{URL: "http://a", MustMatch: []string{"(unclosed"}}, "match", "missing closing )"},
		"perl regex":     {Site{URL: "http://a", MustMatch: []string{`(?<=x)y`}}, "match", "not a valid RE2"},
		"empty regex":    {Site{URL: "http://a", MustMatch: []string{""}}, "match", "must not be empty"},
		"bad not-match":  {Site{URL: "http://a", MustNotMatch: []string{"[z-a]"}}, "not-match", "invalid character class range"},
		"short interval": {Site{URL: "http://a", Interval: 10 * time.Millisecond}, "interval", "at least 1s"},
		"long interval":  {Site{URL: "http://a", Interval: 48 * time.Hour}, "interval", "at most 24h"},
		"timeout":        {Site{URL: "http://a", Interval: 5 * time.Second, Timeout: 6 * time.Second}, "timeout", "must not exceed the interval"},
		"neg timeout":    {Site{URL: "http://a", Timeout: -time.Second}, "timeout", "must be positive"},
		"topic":          {Site{URL: "http://a", Topic: "a/b"}, "topic", "may only hold"},
		"method":         {Site{URL: "http://a", Method: "FETCH"}, "method", "want one of"},
		"head and match": {Site{URL: "http://a", Method: "HEAD", MustMatch: []string{"ok"}}, "match", "HEAD response has no body"},
		"header name":    {Site{URL: "http://a", Headers: map[string]string{"Bad Name": "x"}}, "header", "not a valid header name"},
		"header value":   {Site{URL: "http://a", Headers: map[string]string{"X-A": "a\r\nInjected: 1"}}, "header", "line breaks"},
		"header control": {Site{URL: "http://a", Headers: map[string]string{"X-A": "a\x01b"}}, "header", "control characters"},
		"expect":         {Site{URL: "http://a", Expect: "200-99"}, "expect", "want status codes"},
		"expect class":   {Site{URL: "http://a", Expect: "7xx"}, "expect", "want status codes"},
		"tcp no port":    {Site{URL: "tcp://db.example.com"}, "url", "needs a port"},
		"tcp path":       {Site{URL: "tcp://db.example.com:5432/x"}, "url", "host:port only"},
		"tls query":      {Site{URL: "tls://db.example.com:443?a=1"}, "url", "host:port only"},
		"tcp method":     {Site{URL: "tcp://a:1", Method: "POST"}, "method", "only http(s) sites send a request"},
		"tcp header":     {Site{URL: "tcp://a:1", Headers: map[string]string{"X-A": "b"}}, "header", "only http(s) sites send headers"},
		"tls expect":     {Site{URL: "tls://a:1", Expect: "200"}, "expect", "only http(s) sites have a status code"},
		"http send":      {Site{URL: "http://a", Send: "PING"}, "send", "only tcp:// and tls:// sites"},
		"send size":      {Site{URL: "tcp://a:1", Send: strings.Repeat("x", 4097)}, "send", "longer than 4096 bytes"},
		"send NUL":       {Site{URL: "tcp://a:1", Send: "a\x00b"}, "send", "want text"},
		"dns no name":    {Site{URL: "dns://9.9.9.9/"}, "url", "want dns://[resolver]/name"},
		"dns bad name":   {Site{URL: "dns://9.9.9.9/a..b"}, "url", "not a domain name"},
		"dns type":       {Site{URL: "dns:///example.com?type=PTR"}, "url", `type "PTR": want one of A, AAAA`},
		"dns rcode":      {Site{URL: "dns:///example.com?rcode=OOPS"}, "url", `rcode "OOPS"`},
		"dns answer":     {Site{URL: "dns:///example.com?answer=not-an-ip"}, "url", `answer "not-an-ip": want an IPv4 address`},
		"dns mx answer":  {Site{URL: "dns:///example.com?type=MX&answer=mail.example.com"}, "url", `want "preference host"`},
		"dns param":      {Site{URL: "dns:///example.com?tyep=MX"}, "url", `unknown parameter "tyep"`},
		"dns twice":      {Site{URL: "dns:///example.com?type=A&type=MX"}, "url", "type given 2 times"},
		"dns nx answers": {Site{URL: "dns:///example.com?rcode=NXDOMAIN&answer=192.0.2.1"}, "url", "a response with answers is NOERROR"},
		"dns port":       {Site{URL: "dns://9.9.9.9:0/example.com"}, "url", "port must be 1..65535"},
		"dns match":      {Site{URL: "dns:///example.com", MustMatch: []string{"x"}}, "match", "give the answers in its URL"},
		"dns send":       {Site{URL: "dns:///example.com", Send: "x"}, "send", "only tcp:// and tls://"},
		"grpc no port":   {Site{URL: "grpc://api.example.com/svc"}, "url", "grpc:// needs a port"},
		"grpc service":   {Site{URL: "grpcs://api.example.com:443/a/b"}, "url", `service "a/b": want a gRPC service name`},
		"grpc query":     {Site{URL: "grpc://api.example.com:50051?x=1"}, "url", "no query or fragment"},
		"grpc match":     {Site{URL: "grpc://api.example.com:50051", MustMatch: []string{"ok"}}, "match", "passes when the service is SERVING"},
		"icmp port":      {Site{URL: "icmp://a.example:7"}, "url", "want icmp://host or icmp://host?count=N"},
		"icmp count":     {Site{URL: "icmp://a.example?count=21"}, "url", `count "21": want 1..20`},
		"icmp param":     {Site{URL: "icmp://a.example?size=9"}, "url", `query "size": want only count=N`},
		"icmp match":     {Site{URL: "icmp://a.example", MustMatch: []string{"x"}}, "match", "when an echo reply comes back"},
		"beat no name":   {Site{URL: "heartbeat://"}, "url", `name "": want 1 to 100 lower-case letters`},
		"beat name":      {Site{URL: "heartbeat://Nightly_Backup!"}, "url", `want 1 to 100 lower-case letters`},
		"beat path":      {Site{URL: "heartbeat://backup/daily"}, "url", "no port, path or credentials"},
		"beat grace":     {Site{URL: "heartbeat://backup?grace=soon"}, "url", `grace "soon": want a duration from 1s to 24h0m0s`},
		"beat grace big": {Site{URL: "heartbeat://backup?grace=48h"}, "url", `grace "48h"`},
		"beat param":     {Site{URL: "heartbeat://backup?graze=1m"}, "url", `query "graze": want only grace=D`},
		"beat match":     {Site{URL: "heartbeat://backup", MustMatch: []string{"ok"}}, "match", "it passes when one comes in time"},
		"beat regions":   {Site{URL: "heartbeat://backup", Regions: []string{"eu"}}, "regions", "the job reports in"},
		"beat quorum":    {Site{URL: "heartbeat://backup", Quorum: 1}, "quorum", "the job reports in"},
		"condition":      {Site{URL: "https://a.example", Conditions: []string{`$.status = "UP"`}}, "condition", "no operator"},
		"condition kind": {Site{URL: "tcp://a.example:1", Conditions: []string{`$.a == 1`}}, "condition", "only http(s) sites"},
		"condition HEAD": {Site{URL: "https://a.example", Method: "HEAD", Conditions: []string{`$.a == 1`}}, "condition", "no body for a JSON condition"},
		"conditions":     {Site{URL: "https://a.example", Conditions: strings.Split(strings.Repeat("$.a == 1,", 17)[:8*17+16], ",")}, "condition", "at most 16 conditions"},
		"degraded":       {Site{URL: "https://a.example", DegradedAfter: 10 * time.Second}, "degraded-after", "must be under the timeout"},
		"degraded beat":  {Site{URL: "heartbeat://a", DegradedAfter: time.Second}, "degraded-after", "no response time"},
		"beat headers":   {Site{URL: "heartbeat://backup", Headers: map[string]string{"A": "b"}}, "header", "only http(s) sites send headers"},
	} {
		err := tc.site.WithDefaults().Validate()
		var fe *FieldError
		require.True(t, errors.As(err, &fe), name)
		require.Equal(t, tc.field, fe.Field, name)
		require.Contains(t, fe.Error(), tc.msg, name)
	}
}

func TestKind(t *testing.T) {
	for url, kind := range map[string]string{"http://a": KindHTTP, "https://a": KindHTTP, "tcp://a:1": KindTCP,
		"TLS://a:1": KindTLS, "tls://a:1": KindTLS, "dns:///a": KindDNS, "grpc://a:1": KindGRPC, "grpcs://a:1/s": KindGRPCS, "icmp://a": KindICMP,
		"heartbeat://a": KindHeartbeat, "nonsense": KindHTTP} {
		require.Equal(t, kind, Site{URL: url}.Kind(), url)
	}
	for _, s := range []Site{{URL: "tcp://db.example.com:5432"}, {URL: "tls://mail.example.com:465/", Send: "EHLO x\r\n", MustMatch: []string{"^220"}},
		{URL: "tcp://[2001:db8::1]:22", MustMatch: []string{"^SSH-2.0"}}, {URL: "dns:///example.com"},
		{URL: "dns://[2001:db8::53]:5353/_imap._tcp.Example.com?type=srv&answer=0+5+143+mail.example.com&answers=all&ad=1"},
		{URL: "grpc://api.internal:50051"}, {URL: "grpcs://api.example.com:443/my.pkg.Orders_v2"},
		{URL: "icmp://router.internal"}, {URL: "icmp://[2001:db8::1]?count=20"},
		{URL: "heartbeat://nightly-backup.db_1"}, {URL: "https://a.example/health", Method: "HEAD", Conditions: []string{`header.X == "y"`}},
		{URL: "https://a.example/health", Conditions: []string{`$.status == "UP"`, `$.items.length > 0`}, DegradedAfter: time.Second},
		{URL: "icmp://a.example", DegradedAfter: 500 * time.Millisecond}, {URL: "heartbeat://b?grace=90m", Interval: 24 * time.Hour}} {
		require.NoError(t, s.WithDefaults().Validate(), s.URL)
	}
}

func TestHeartbeatDefaults(t *testing.T) {
	s := Site{URL: "heartbeat://backup?grace=10m"}.WithDefaults()
	require.Equal(t, 1, s.FailureThreshold, "one missed run is the job's failure")
	require.Equal(t, 1, s.SuccessThreshold)
	u, err := url.Parse(s.URL)
	require.NoError(t, err)
	require.Equal(t, 10*time.Minute, Grace(u))
	u, err = url.Parse("heartbeat://backup")
	require.NoError(t, err)
	require.Equal(t, DefaultGrace, Grace(u))
	require.Equal(t, DefaultThreshold, Site{URL: "http://a"}.WithDefaults().FailureThreshold)

	token, hash, err := NewPingToken()
	require.NoError(t, err)
	require.True(t, WellFormedPingToken(token))
	require.Equal(t, hash, HashPingToken(token))
	other, _, err := NewPingToken()
	require.NoError(t, err)
	require.NotEqual(t, token, other)
	for _, bad := range []string{"", "short", token + "x", token[:len(token)-1] + "!"} {
		require.False(t, WellFormedPingToken(bad), bad)
	}
}

func TestStatusSet(t *testing.T) {
	for spec, tc := range map[string]struct{ in, out []int }{
		"200-399":         {in: []int{200, 301, 399}, out: []int{199, 400, 500}},
		"2xx, 301-308":    {in: []int{200, 299, 301, 308}, out: []int{300, 309, 404}},
		"200,204":         {in: []int{200, 204}, out: []int{201, 302}},
		"4XX":             {in: []int{404, 400}, out: []int{200, 500}},
		"500":             {in: []int{500}, out: []int{200}},
		"100-199,500-599": {in: []int{101, 503}, out: []int{200, 404}},
	} {
		set, err := ParseStatusSet(spec)
		require.NoError(t, err, spec)
		for _, c := range tc.in {
			require.True(t, set.Contains(c), "%s contains %d", spec, c)
		}
		for _, c := range tc.out {
			require.False(t, set.Contains(c), "%s does not contain %d", spec, c)
		}
	}
	for _, spec := range []string{"", "abc", "99", "600", "300-200", "2xx-3xx", "200,"} {
		_, err := ParseStatusSet(spec)
		require.Error(t, err, spec)
	}
}

// A regex whose program is large enough to hold a worker for seconds on a
// big body is refused, alone or with the site's others.
func TestRegexProgramSizeIsBounded(t *testing.T) {
	s := Site{URL: "http://a", Method: "GET", Expect: "200", Interval: time.Minute, Timeout: time.Second, Topic: "t"}.WithDefaults()
	ok := s
	ok.MustMatch = []string{`"status":\s*"(ok|healthy|up)"`, `Example Domain`}
	require.NoError(t, ok.Validate())

	big := s
	big.MustMatch = []string{`[a-z]{1,200}q`} // 402 instructions: 3 s on 1 MiB
	err := big.Validate()
	require.ErrorContains(t, err, `match "[a-z]{1,200}q": compiles to 402 instructions, at most 200`)

	many := s
	for range 3 {
		many.MustNotMatch = append(many.MustNotMatch, `(\w+\s*){1,20}zzz`) // about 150 each
	}
	err = many.Validate()
	require.ErrorContains(t, err, "the site's regexes compile to")
	require.ErrorContains(t, err, "at most 400")
}

func TestCredentialsInURLsAreRefused(t *testing.T) {
	base := Site{Method: "GET", Expect: "200", Interval: time.Minute, Timeout: time.Second, Topic: "t"}.WithDefaults()
	for url, want := range map[string]string{
		"https://user:pass@example.com/":            "must not hold credentials",
		"https://user@example.com/":                 "must not hold credentials",
		"https://example.com/health?token=abc":      `query parameter "token" looks like a credential`,
		"https://example.com/?API_KEY=1&page=2":     `query parameter "API_KEY"`,
		"https://example.com/?X-Amz-Signature=abcd": `"X-Amz-Signature"`,
		"https://example.com/?q=1;token=abc":        `query parameter "token"`, // URL.Query drops this pair
		"https://example.com/?%74oken=abc":          `query parameter "token"`,
	} {
		s := base
		s.URL = url
		require.ErrorContains(t, s.Validate(), want, url)
	}
	ok := base
	ok.URL = "https://example.com/search?q=status&page=2"
	require.NoError(t, ok.Validate())
}

func TestIncidentSettingsAreChecked(t *testing.T) {
	s := Site{URL: "https://a", Regions: []string{"eu", "us"}}.WithDefaults()
	require.Equal(t, DefaultThreshold, s.FailureThreshold)
	require.NoError(t, s.Validate())
	s.Quorum, s.FailureThreshold, s.TLSWarningDays = 3, 101, 400
	err := s.Validate()
	require.ErrorContains(t, err, `quorum "3": more than the site's 2 regions`)
	require.ErrorContains(t, err, `failure-threshold "101": want 1..100`)
	require.ErrorContains(t, err, `tls-warning-days "400": want 0..365`)
}

func TestParseDNS(t *testing.T) {
	q, err := ParseDNS("dns://9.9.9.9/Example.COM?type=mx&answer=10+Mail.Example.com&answer=20+b.example.com.&answers=all&ad=1")
	require.NoError(t, err)
	require.Equal(t, DNSQuery{Resolver: "9.9.9.9:53", Name: "example.com.", Type: "MX", RCode: "NOERROR",
		Answers: []string{"10 mail.example.com.", "20 b.example.com."}, All: true, AD: true}, q)
	q, err = ParseDNS("dns:///nope.example.com?rcode=nxdomain")
	require.NoError(t, err)
	require.Equal(t, DNSQuery{Name: "nope.example.com.", Type: "A", RCode: "NXDOMAIN"}, q, "the system's resolver")
	q, err = ParseDNS("dns://resolver.internal:5353/example.com?type=AAAA&answer=2001:DB8:0::1")
	require.NoError(t, err)
	require.Equal(t, "resolver.internal:5353", q.Resolver)
	require.Equal(t, []string{"2001:db8::1"}, q.Answers, "addresses compared in canonical form")
}
