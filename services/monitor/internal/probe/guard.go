package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// ErrBlocked is the guard refusing an address.
var ErrBlocked = errors.New("address not allowed")

// specialPurpose are the ranges a check never connects to unless an
// allow-list admits them: private, loopback, link-local, shared (CGNAT,
// where cloud metadata services live too), documentation, benchmarking,
// reserved, multicast and broadcast addresses, and the IPv6 forms that
// embed an IPv4 address (so none of the above can be reached through
// them): IPv4-compatible, NAT64, 6to4 and Teredo. IPv4-mapped addresses
// are unmapped and judged as IPv4.
var specialPurpose = mustPrefixes(
	// IPv4 (RFC 6890 and its updates)
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
	"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
	// IPv6
	"::/96", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
	"2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)

func mustPrefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// Guard decides which addresses a check may connect to.
type Guard struct {
	allow []netip.Prefix
}

// NewGuard returns a guard that refuses every special-purpose address but
// those in allow (for monitoring internal targets on purpose).
func NewGuard(allow []netip.Prefix) *Guard { return &Guard{allow: allow} }

// ParseNets parses a comma-separated list of CIDRs ("10.0.0.0/8, fd00::/8");
// an empty list is none.
func ParseNets(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("%q: want a CIDR such as 10.0.0.0/8 or fd00::/8", part)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Allowed reports why ip may not be connected to, or nil.
func (g *Guard) Allowed(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, p := range g.allow {
		if p.Contains(ip) {
			return nil
		}
	}
	for _, p := range specialPurpose {
		if p.Contains(ip) {
			return fmt.Errorf("%w: %s is a private or special-purpose address (%s); allow it with MONITOR_ALLOW_NETS", ErrBlocked, ip, p)
		}
	}
	return nil
}

// control is a net.Dialer Control hook: it sees the address actually
// being dialled, after DNS, for the first request and every redirect, so
// neither a redirect nor a DNS answer that changes can get round it.
func (g *Guard) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBlocked, address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s: not an IP address", ErrBlocked, address)
	}
	return g.Allowed(ip)
}
