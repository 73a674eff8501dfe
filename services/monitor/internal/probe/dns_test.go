package probe

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// dnsServer is an authoritative-looking server on 127.0.0.1, over UDP and
// TCP on one port, for the zone the tests query.
func dnsServer(t *testing.T) string {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	udp, err := net.ListenPacket("udp", tcp.Addr().String())
	require.NoError(t, err)
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		require.NoError(t, err)
		return r
	}
	zone := map[string][]dns.RR{}
	for _, s := range []string{
		"example.test. 60 IN A 192.0.2.1", "example.test. 60 IN A 192.0.2.2",
		"example.test. 60 IN AAAA 2001:db8::1",
		"example.test. 60 IN MX 10 Mail.Example.Test.",
		`example.test. 60 IN TXT "v=spf1 " "-all"`,
		"www.example.test. 60 IN CNAME example.test.",
		"example.test. 60 IN NS ns1.example.test.",
		"example.test. 60 IN SOA ns1.example.test. hostmaster.example.test. 2026120301 7200 900 1209600 60",
		"_imap._tcp.example.test. 60 IN SRV 0 5 143 mail.example.test.",
		"signed.test. 60 IN A 192.0.2.9",
	} {
		r := rr(s)
		key := r.Header().Name + "/" + dns.TypeToString[r.Header().Rrtype]
		zone[key] = append(zone[key], r)
	}
	for i := range 60 { // more than a UDP answer holds
		zone["big.test./TXT"] = append(zone["big.test./TXT"], rr(`big.test. 60 IN TXT "`+strings.Repeat("x", 60)+`-`+string(rune('a'+i%26))+`"`))
	}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		q := req.Question[0]
		if q.Name == "slow.test." {
			return // never answers: the check's timeout
		}
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		m.Answer = zone[strings.ToLower(q.Name)+"/"+dns.TypeToString[q.Qtype]]
		if len(m.Answer) == 0 && !strings.HasSuffix(q.Name, "example.test.") && q.Name != "signed.test." && q.Name != "big.test." {
			m.Rcode = dns.RcodeNameError
		}
		if o := req.IsEdns0(); o != nil && o.Do() && q.Name == "signed.test." {
			m.AuthenticatedData = true // as a validating resolver says so
		}
		if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
			m.Truncate(512)
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*dns.Server{{Listener: tcp, Handler: handler}, {PacketConn: udp, Handler: handler}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return tcp.Addr().String()
}

func TestDNSChecks(t *testing.T) {
	t.Parallel()
	addr := dnsServer(t)
	allow := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	p := New(Config{MaxBodyBytes: 1024, Guard: allow})
	for name, tc := range map[string]struct {
		query   string
		class   string
		errText string
		rcode   string
		answers []string
	}{
		"A any":           {query: "/example.test", rcode: "NOERROR", answers: []string{"192.0.2.1", "192.0.2.2"}},
		"A expected":      {query: "/example.test?answer=192.0.2.2&answer=198.51.100.1", answers: []string{"192.0.2.1", "192.0.2.2"}},
		"A all":           {query: "/example.test?answer=192.0.2.2&answer=198.51.100.1&answers=all", class: ClassDNSAnswer, errText: `["198.51.100.1"] not among`},
		"A none expected": {query: "/example.test?answer=198.51.100.1", class: ClassDNSAnswer, errText: "none of"},
		"AAAA":            {query: "/example.test?type=aaaa&answer=2001:db8:0::1", answers: []string{"2001:db8::1"}},
		"MX":              {query: "/example.test?type=MX&answer=10+mail.example.test", answers: []string{"10 mail.example.test."}},
		"TXT":             {query: "/example.test?type=TXT&answer=v%3Dspf1+-all", answers: []string{"v=spf1 -all"}},
		"CNAME":           {query: "/www.example.test?type=CNAME&answer=example.test", answers: []string{"example.test."}},
		"NS":              {query: "/example.test?type=NS", answers: []string{"ns1.example.test."}},
		"SOA":             {query: "/example.test?type=SOA", answers: []string{"ns1.example.test. hostmaster.example.test. 2026120301 7200 900 1209600 60"}},
		"SRV":             {query: "/_imap._tcp.example.test?type=SRV&answer=0+5+143+mail.example.test.", answers: []string{"0 5 143 mail.example.test."}},
		"NODATA":          {query: "/www.example.test?type=MX", class: ClassDNSAnswer, errText: "no MX record"},
		"NXDOMAIN":        {query: "/nope.test", class: ClassDNSRCode, errText: "rcode NXDOMAIN, want NOERROR", rcode: "NXDOMAIN"},
		"NXDOMAIN wanted": {query: "/nope.test?rcode=nxdomain", rcode: "NXDOMAIN"},
		"truncated → TCP": {query: "/big.test?type=TXT&answer=" + strings.Repeat("x", 60) + "-z"},
		"DNSSEC":          {query: "/signed.test?ad=1", answers: []string{"192.0.2.9"}},
		"no DNSSEC":       {query: "/example.test?ad=1", class: ClassDNSSEC, errText: "no AD flag"},
		"timeout":         {query: "/slow.test", class: ClassTimeout},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := p.Check(context.Background(), target(t, site.Site{URL: "dns://" + addr + tc.query, Timeout: 500 * time.Millisecond}))
			require.Equal(t, tc.class, r.ErrorClass, "error: %s", r.Error)
			require.Contains(t, r.Error, tc.errText)
			if tc.rcode != "" {
				require.Equal(t, tc.rcode, r.DNSRCode)
			}
			if tc.answers != nil {
				require.ElementsMatch(t, tc.answers, r.DNSAnswers)
			}
			if tc.class != ClassTimeout {
				require.Positive(t, r.Phases.DNS)
				require.Equal(t, "127.0.0.1", r.RemoteIP)
			}
		})
	}
	t.Run("truncated answers are all read", func(t *testing.T) {
		r := p.Check(context.Background(), target(t, site.Site{URL: "dns://" + addr + "/big.test?type=TXT", Timeout: time.Second}))
		require.Empty(t, r.ErrorClass, r.Error)
		require.Len(t, r.DNSAnswers, 60, "over TCP after the truncated UDP answer")
	})
	t.Run("the guard applies to the resolver", func(t *testing.T) {
		guarded := New(Config{MaxBodyBytes: 1024, Guard: NewGuard(nil)})
		r := guarded.Check(context.Background(), target(t, site.Site{URL: "dns://" + addr + "/example.test", Timeout: time.Second}))
		require.Equal(t, ClassBlocked, r.ErrorClass, r.Error)
	})
}

// dns:///name asks the system's resolver (its first), which the guard
// leaves alone: it is the operator's own, as for every other check's
// lookups.
func TestDNSSystemResolver(t *testing.T) {
	addr := dnsServer(t)
	old := systemResolver
	systemResolver = func() (string, error) { return addr, nil }
	t.Cleanup(func() { systemResolver = old })
	p := New(Config{MaxBodyBytes: 1024, Guard: NewGuard(nil)})
	r := p.Check(context.Background(), target(t, site.Site{URL: "dns:///example.test?type=MX", Timeout: time.Second}))
	require.Empty(t, r.ErrorClass, r.Error)
	require.Equal(t, []string{"10 mail.example.test."}, r.DNSAnswers)
}
