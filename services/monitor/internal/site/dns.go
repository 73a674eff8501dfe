package site

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// KindDNS is dns://[resolver[:port]]/name?type=MX: a query and its answer.
const KindDNS = "dns"

// DNSTypes are the record types a dns:// site may ask for.
var DNSTypes = []string{"A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV"}

// maxAnswers bounds the expected answers of a dns:// site.
const maxAnswers = 32

// DNSQuery is what a dns:// site asks and expects, from its URL:
//
//	dns://[resolver[:port]]/name[?type=T][&rcode=R][&answer=A...][&answers=all][&ad=1]
//
// An empty resolver (dns:///name) is the system's (/etc/resolv.conf). type
// is one of DNSTypes (A); rcode the expected response code (NOERROR); each
// answer an expected record in the form dig prints its data ("10
// mail.example.com." for MX, an address for A); answers=all wants every
// answer given, not any of them; ad=1 wants the resolver's DNSSEC
// validation (the AD flag).
type DNSQuery struct {
	Resolver string // host:port, or "" for the system's resolver
	Name     string // fully qualified, lower case
	Type     string
	RCode    string
	Answers  []string // normalised (NormalizeAnswer)
	All      bool
	AD       bool
}

// ParseDNS parses a dns:// URL, saying what is wrong in terms of it.
func ParseDNS(raw string) (DNSQuery, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return DNSQuery{}, fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != KindDNS {
		return DNSQuery{}, fmt.Errorf("not a dns:// URL")
	}
	q := DNSQuery{Type: "A", RCode: "NOERROR"}
	if h := u.Hostname(); h != "" {
		port := u.Port()
		if port == "" {
			port = "53"
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return DNSQuery{}, fmt.Errorf("port must be 1..65535")
		}
		q.Resolver = net.JoinHostPort(h, port)
	} else if u.Port() != "" {
		return DNSQuery{}, fmt.Errorf("a port needs a resolver: dns://resolver:%s/name", u.Port())
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" || strings.Contains(name, "/") {
		return DNSQuery{}, fmt.Errorf("want dns://[resolver]/name, e.g. dns://9.9.9.9/example.com?type=MX or dns:///example.com")
	}
	if _, ok := dns.IsDomainName(name); !ok || len(dns.Fqdn(name)) > 254 {
		return DNSQuery{}, fmt.Errorf("%q is not a domain name", name)
	}
	q.Name = strings.ToLower(dns.Fqdn(name))
	if u.Fragment != "" || u.User != nil {
		return DNSQuery{}, fmt.Errorf("want dns://[resolver]/name?query, no user or fragment")
	}
	values, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return DNSQuery{}, fmt.Errorf("query: %v", err)
	}
	for key, vs := range values {
		if key != "answer" && len(vs) > 1 {
			return DNSQuery{}, fmt.Errorf("%s given %d times", key, len(vs))
		}
		v := vs[0]
		switch key {
		case "type":
			q.Type = strings.ToUpper(v)
			if !slices.Contains(DNSTypes, q.Type) {
				return DNSQuery{}, fmt.Errorf("type %q: want one of %s", v, strings.Join(DNSTypes, ", "))
			}
		case "rcode":
			q.RCode = strings.ToUpper(v)
			if _, ok := dns.StringToRcode[q.RCode]; !ok {
				return DNSQuery{}, fmt.Errorf("rcode %q: want a response code such as NOERROR, NXDOMAIN, SERVFAIL", v)
			}
		case "answers":
			if v != "any" && v != "all" {
				return DNSQuery{}, fmt.Errorf("answers %q: want any or all", v)
			}
			q.All = v == "all"
		case "ad":
			if v != "1" && v != "0" {
				return DNSQuery{}, fmt.Errorf("ad %q: want 1 (DNSSEC validated) or 0", v)
			}
			q.AD = v == "1"
		case "answer":
		default:
			return DNSQuery{}, fmt.Errorf("unknown parameter %q: want type, rcode, answer, answers or ad", key)
		}
	}
	if len(values["answer"]) > maxAnswers {
		return DNSQuery{}, fmt.Errorf("at most %d answers", maxAnswers)
	}
	for _, a := range values["answer"] {
		n, err := NormalizeAnswer(q.Type, a)
		if err != nil {
			return DNSQuery{}, fmt.Errorf("answer %q: %v", a, err)
		}
		q.Answers = append(q.Answers, n)
	}
	if len(q.Answers) > 0 && q.RCode != "NOERROR" {
		return DNSQuery{}, fmt.Errorf("answers with rcode %s: a response with answers is NOERROR", q.RCode)
	}
	return q, nil
}

// NormalizeAnswer puts one record's data of type typ in the form its
// answers are compared in: what dig prints, names fully qualified and in
// lower case, addresses canonical.
func NormalizeAnswer(typ, data string) (string, error) {
	f := strings.Fields(data)
	name := func(s string) string { return strings.ToLower(dns.Fqdn(s)) }
	want := func(n int, form string) error {
		if len(f) != n {
			return fmt.Errorf("want %s", form)
		}
		return nil
	}
	switch typ {
	case "A", "AAAA":
		ip, err := netip.ParseAddr(strings.TrimSpace(data))
		if err != nil || ip.Is4() != (typ == "A") {
			return "", fmt.Errorf("want an IPv%s address", map[bool]string{true: "4", false: "6"}[typ == "A"])
		}
		return ip.String(), nil
	case "CNAME", "NS":
		if err := want(1, "a host name"); err != nil {
			return "", err
		}
		return name(f[0]), nil
	case "MX":
		if err := want(2, `"preference host", e.g. "10 mail.example.com"`); err != nil {
			return "", err
		}
		return f[0] + " " + name(f[1]), nil
	case "SRV":
		if err := want(4, `"priority weight port target"`); err != nil {
			return "", err
		}
		return strings.Join(f[:3], " ") + " " + name(f[3]), nil
	case "SOA":
		if err := want(7, `"ns mbox serial refresh retry expire minttl"`); err != nil {
			return "", err
		}
		return name(f[0]) + " " + name(f[1]) + " " + strings.Join(f[2:], " "), nil
	case "TXT":
		if data == "" {
			return "", fmt.Errorf("want the text")
		}
		return data, nil
	}
	return "", fmt.Errorf("type %q has no answer form", typ)
}
