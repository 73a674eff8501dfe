package probe

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrBlocked is the guard refusing an address.
var ErrBlocked = errors.New("address not allowed")

// guardControl is a net.Dialer Control hook: it sees the address actually
// being dialled, after DNS, for the first request and every redirect, so
// neither a redirect nor a DNS answer that changes can get round it.
func guardControl(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBlocked, address, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s: not an IP address", ErrBlocked, address)
	}
	ip = ip.Unmap()
	if ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
		return fmt.Errorf("%w: %s is a private, loopback or link-local address", ErrBlocked, ip)
	}
	return nil
}
