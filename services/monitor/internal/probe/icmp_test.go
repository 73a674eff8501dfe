package probe

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

func TestICMPChecks(t *testing.T) {
	t.Parallel()
	if conn, _, _, err := listenICMP(netip.MustParseAddr("127.0.0.1")); err != nil {
		t.Skipf("no ICMP socket here (run as root, or with net.ipv4.ping_group_range covering the group): %v", err)
	} else {
		_ = conn.Close()
	}
	allow := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	p := New(Config{MaxBodyBytes: 1024, Guard: allow})
	check := func(p *Prober, url string) Result {
		return p.Check(context.Background(), target(t, site.Site{URL: url, Timeout: 3 * time.Second}))
	}

	r := check(p, "icmp://127.0.0.1?count=4")
	require.Empty(t, r.ErrorClass, r.Error)
	require.Equal(t, 4, r.ICMPSent)
	require.Equal(t, 4, r.ICMPReceived)
	require.Positive(t, r.RTTMin)
	require.LessOrEqual(t, r.RTTMin, r.RTTAvg)
	require.LessOrEqual(t, r.RTTAvg, r.RTTMax)
	require.Equal(t, "127.0.0.1", r.RemoteIP)

	r = check(p, "icmp://localhost")
	require.Empty(t, r.ErrorClass, r.Error)
	require.Equal(t, site.DefaultICMPCount, r.ICMPReceived, "the default count, by name")

	// Concurrent checks of one host each get their own replies.
	results := make(chan Result, 8)
	for range 8 {
		go func() { results <- check(p, "icmp://127.0.0.1?count=2") }()
	}
	for range 8 {
		r := <-results
		require.Empty(t, r.ErrorClass, r.Error)
		require.Equal(t, 2, r.ICMPReceived)
	}

	r = check(New(Config{MaxBodyBytes: 1024, Guard: NewGuard(nil)}), "icmp://127.0.0.1")
	require.Equal(t, ClassBlocked, r.ErrorClass, r.Error)
	require.Zero(t, r.ICMPSent, "nothing sent to a refused address")

	r = check(p, "icmp://no-such-host.invalid")
	require.Equal(t, ClassDNS, r.ErrorClass, r.Error)
}
