package porttest

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPortsLieBelowTheEphemeralRangeAndAreNeverHandedTwice(t *testing.T) {
	low := ephemeralLow()
	seen := map[int]bool{}
	for range 50 {
		p := Port(t)
		require.Less(t, p, low, "below the range the kernel picks local ports of connections from")
		require.GreaterOrEqual(t, p, low-window)
		require.False(t, seen[p], "port %d handed out twice", p)
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		require.NoError(t, err, "a port handed out can be listened on")
		require.NoError(t, l.Close())
	}
}

func TestAPortSomethingListensOnIsSkipped(t *testing.T) {
	// Something listens on every port of a small window but one.
	const low, width = 21000, 40
	free := -1
	for p := low - width; p < low; p++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue // taken already: just as good
		}
		if free < 0 {
			free = p
			require.NoError(t, l.Close())
			continue
		}
		t.Cleanup(func() { _ = l.Close() })
	}
	require.GreaterOrEqual(t, free, 0, "one port of the window was free to leave open")
	p, err := pick(low, width)
	require.NoError(t, err)
	require.Equal(t, free, p, "the only port of the window nothing listens on")
	p, err = pick(low, width)
	require.NoError(t, err)
	require.GreaterOrEqual(t, p, low, "handed out once, it is not handed again: with the window full the kernel chooses")
}
