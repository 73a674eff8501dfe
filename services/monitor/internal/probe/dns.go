package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// systemResolver is the address of the system's first resolver
// (/etc/resolv.conf), for dns:///name sites.
var systemResolver = func() (string, error) {
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return "", err
	}
	if len(conf.Servers) == 0 {
		return "", errors.New("no nameserver")
	}
	return net.JoinHostPort(conf.Servers[0], conf.Port), nil
}

// checkDNS checks a dns:// site: one query (UDP; again over TCP when the
// answer was truncated) to its resolver, through the guard like every
// address a check connects to, or to the system's first resolver, which is
// the operator's own. The round trip is the DNS phase; the response code
// and the answers of the type asked are recorded, then held to what the
// site expects.
func (p *Prober) checkDNS(ctx context.Context, t *Target, res Result) Result {
	q := t.dns
	start := time.Now()
	server, dialer := q.Resolver, p.dialer
	if server == "" {
		var err error
		if server, err = systemResolver(); err != nil {
			return failed(res, start, ClassDNS, fmt.Errorf("the system's resolver (/etc/resolv.conf): %w", err))
		}
		dialer = &net.Dialer{}
	}
	if host, _, err := net.SplitHostPort(server); err == nil {
		if ip, err := netip.ParseAddr(host); err == nil {
			res.RemoteIP = ip.String()
		}
	}

	msg := new(dns.Msg)
	qtype := dns.StringToType[q.Type]
	msg.SetQuestion(q.Name, qtype)
	if q.AD {
		msg.SetEdns0(1232, true) // DO: the resolver validates and says so with AD
		msg.AuthenticatedData = true
	}
	client := &dns.Client{Net: "udp", Dialer: dialer}
	if deadline, ok := ctx.Deadline(); ok {
		client.Timeout = time.Until(deadline)
	}
	r, rtt, err := client.ExchangeContext(ctx, msg, server)
	if err == nil && r.Truncated {
		client.Net = "tcp"
		var again time.Duration
		r, again, err = client.ExchangeContext(ctx, msg, server)
		rtt += again
	}
	res.Phases.DNS = rtt
	if err != nil {
		class := classify(ctx, err)
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			class = ClassTimeout
		} else if class == ClassHTTP {
			class = ClassRead // a reply that is not DNS
		}
		return failed(res, start, class, fmt.Errorf("querying %s: %w", server, err))
	}
	res.Duration = time.Since(start)
	res.DNSRCode = dns.RcodeToString[r.Rcode]
	if res.DNSRCode == "" {
		res.DNSRCode = fmt.Sprint(r.Rcode)
	}
	res.DNSAnswers = []string{}
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == qtype {
			res.DNSAnswers = append(res.DNSAnswers, answerData(rr))
		}
	}

	switch missing := missingAnswers(q, res.DNSAnswers); {
	case res.DNSRCode != q.RCode:
		res.ErrorClass = ClassDNSRCode
		res.Error = fmt.Sprintf("%s %s: rcode %s, want %s", q.Name, q.Type, res.DNSRCode, q.RCode)
	case q.RCode == "NOERROR" && len(res.DNSAnswers) == 0:
		res.ErrorClass = ClassDNSAnswer
		res.Error = fmt.Sprintf("%s: no %s record", q.Name, q.Type)
	case len(missing) > 0:
		res.ErrorClass = ClassDNSAnswer
		if q.All {
			res.Error = fmt.Sprintf("%s %s: %q not among the answers %q", q.Name, q.Type, missing, res.DNSAnswers)
		} else {
			res.Error = fmt.Sprintf("%s %s: none of %q among the answers %q", q.Name, q.Type, missing, res.DNSAnswers)
		}
	case q.AD && !r.AuthenticatedData:
		res.ErrorClass = ClassDNSSEC
		res.Error = fmt.Sprintf("%s %s: the resolver did not validate the answer (no AD flag)", q.Name, q.Type)
	}
	return res
}

// missingAnswers is what of q's expected answers got lacks: every expected
// one when none is there (any of) or those not there (all of); nil when the
// site expects none.
func missingAnswers(q site.DNSQuery, got []string) []string {
	var missing []string
	for _, want := range q.Answers {
		if !slices.Contains(got, want) {
			missing = append(missing, want)
		}
	}
	if !q.All && len(missing) < len(q.Answers) {
		return nil // any of them is enough
	}
	return missing
}

// answerData is a record's data as site.NormalizeAnswer writes an expected
// answer: what dig prints, names in lower case.
func answerData(rr dns.RR) string {
	switch r := rr.(type) {
	case *dns.A:
		return r.A.String()
	case *dns.AAAA:
		return r.AAAA.String()
	case *dns.CNAME:
		return strings.ToLower(r.Target)
	case *dns.NS:
		return strings.ToLower(r.Ns)
	case *dns.MX:
		return fmt.Sprintf("%d %s", r.Preference, strings.ToLower(r.Mx))
	case *dns.SRV:
		return fmt.Sprintf("%d %d %d %s", r.Priority, r.Weight, r.Port, strings.ToLower(r.Target))
	case *dns.SOA:
		return fmt.Sprintf("%s %s %d %d %d %d %d", strings.ToLower(r.Ns), strings.ToLower(r.Mbox), r.Serial, r.Refresh, r.Retry, r.Expire, r.Minttl)
	case *dns.TXT:
		return strings.Join(r.Txt, "")
	}
	return strings.TrimPrefix(rr.String(), rr.Header().String())
}
