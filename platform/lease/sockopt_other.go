//go:build !linux

package lease

import (
	"syscall"
	"time"
)

// userTimeout is a no-op where TCP_USER_TIMEOUT does not exist; keepalives
// still find a vanished peer.
func userTimeout(time.Duration) func(network, address string, rc syscall.RawConn) error { return nil }
