package lease

import (
	"strings"
	"syscall"
	"time"
)

// tcpUserTimeout is Linux's TCP_USER_TIMEOUT socket option (not in package syscall).
const tcpUserTimeout = 0x12

// userTimeout sets TCP_USER_TIMEOUT on the lease connection's socket: data
// unacknowledged for d fails the connection, where TCP would retransmit for
// many minutes.
func userTimeout(d time.Duration) func(network, address string, rc syscall.RawConn) error {
	return func(network, _ string, rc syscall.RawConn) error {
		if !strings.HasPrefix(network, "tcp") {
			return nil // a Unix socket has no TCP timeouts
		}
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, int(d.Milliseconds()))
		}); err != nil {
			return err
		}
		return serr
	}
}
