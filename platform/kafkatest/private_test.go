package kafkatest

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/porttest"
)

// A port that is the local end of a client's connection cannot be bound by
// a server: scripts/kafka.sh says so before starting the broker, instead of
// letting it die at start-up with the reason deep in its log.
func TestKafkaShRefusesAPortAConnectionHolds(t *testing.T) {
	Config(t) // skips under -short
	srv, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = srv.Close() })
	held := porttest.Port(t)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: held}}
	conn, err := d.Dial("tcp", srv.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	peer, err := srv.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { _ = peer.Close() })

	b := &PrivateBroker{t: t}
	b.configure(PrivateOptions{})
	b.env = append(b.env, "SITEWATCH_KAFKA_CONTROLLER_PORT="+strconv.Itoa(held)) // the last value wins
	err = b.run("up")
	t.Cleanup(func() { _ = b.run("down") })
	require.Error(t, err)
	require.Contains(t, err.Error(), "port "+strconv.Itoa(held)+" is in use by another process or connection")
}
