// Package porttest gives tests TCP ports for servers they start themselves.
package porttest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// Port returns a port on 127.0.0.1 that nothing listens on and that the
// kernel does not hand out as the local end of outgoing connections: it
// lies below the ephemeral range (net.ipv4.ip_local_port_range). A port
// taken from 127.0.0.1:0 lies inside that range, and so does a fixed one
// such as 59192: any client connecting anywhere meanwhile may hold it, and
// the server then fails to bind ("Address already in use"), as a private
// Kafka broker of a test once did twice in a row. No port is handed out
// twice by one test binary.
func Port(t testing.TB) int {
	t.Helper()
	p, err := pick(ephemeralLow(), window)
	if err != nil {
		t.Fatalf("choosing a port for a test server: %v", err)
	}
	return p
}

// Addr is Port as "127.0.0.1:port".
func Addr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(Port(t)))
}

// window is how many ports below the ephemeral range Port chooses from.
const window = 10000

// pick tries the ports of [low-width, low) from a random one on, skipping
// those handed out before and those something listens on; with none left
// there it lets the kernel choose.
func pick(low, width int) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	from := max(low-width, 1024)
	if n := low - from; n > 0 {
		start := rand.IntN(n)
		for i := range n {
			p := from + (start+i)%n
			if handed[p] {
				continue
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				continue
			}
			_ = l.Close()
			handed[p] = true
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("listening on 127.0.0.1:0: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ephemeralLow reads the low end of Linux's ephemeral port range; elsewhere,
// or if it cannot be read, it assumes Linux's default, 32768.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low <= 0 {
		return 32768
	}
	return low
}
