package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// lineServer serves each connection of l with handle until the test ends.
func lineServer(t *testing.T, l net.Listener, handle func(net.Conn)) string {
	t.Helper()
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return l
}

// pingPong answers PING with +PONG, says hello first (a banner, as SMTP and
// SSH servers do), and stays silent on anything else.
func pingPong(c net.Conn) {
	_, _ = io.WriteString(c, "+HELLO sitewatch-test\r\n")
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimSpace(line) == "PING" {
			_, _ = io.WriteString(c, "+PONG\r\n")
		}
	}
}

func TestStreamChecks(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ca := testCert(t, "stream-test CA", true, now.Add(-time.Hour), now.Add(90*24*time.Hour), nil)
	leaf := testCert(t, "127.0.0.1", false, now.Add(-time.Hour), now.Add(30*24*time.Hour), &ca)
	expired := testCert(t, "127.0.0.1", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour), &ca)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	stapled := leaf
	stapled.OCSPStaple = []byte("an OCSP response, as the client sees it: stapled bytes")

	plain := lineServer(t, listen(t), pingPong)
	silent := lineServer(t, listen(t), func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	resetting := lineServer(t, listen(t), func(c net.Conn) {
		_, _ = c.Read(make([]byte, 1))    // once the check has sent
		_ = c.(*net.TCPConn).SetLinger(0) // close with RST
	})
	tlsServer := func(cert tls.Certificate, minVersion uint16) string {
		return lineServer(t, tls.NewListener(listen(t), &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: minVersion}), pingPong)
	}
	secure := tlsServer(leaf, tls.VersionTLS13)
	secureStapled := tlsServer(stapled, tls.VersionTLS12)
	secureExpired := tlsServer(expired, tls.VersionTLS12)
	closed := listen(t)
	refused := closed.Addr().String()
	require.NoError(t, closed.Close())
	_, securePort, _ := net.SplitHostPort(secure)

	allowLoopback := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})
	p := New(Config{MaxBodyBytes: 1024, Guard: allowLoopback, RootCAs: roots})

	for name, tc := range map[string]struct {
		site    site.Site
		class   string
		errText string
		check   func(t *testing.T, r Result)
	}{
		"tcp connect only": {site: site.Site{URL: "tcp://" + plain}, check: func(t *testing.T, r Result) {
			require.Equal(t, "127.0.0.1", r.RemoteIP)
			require.Positive(t, r.Phases.Connect)
			require.Zero(t, r.Phases.DNS, "an IP address needs no lookup")
			require.Zero(t, r.BodyBytes, "nothing read without regexes")
			require.Nil(t, r.OCSPStapled, "no handshake")
		}},
		"tcp banner": {site: site.Site{URL: "tcp://" + plain, MustMatch: []string{`^\+HELLO`}}, check: func(t *testing.T, r Result) {
			require.True(t, *r.RegexMatched)
			require.Positive(t, r.Phases.TTFB)
		}},
		"tcp send and expect": {site: site.Site{URL: "tcp://" + plain, Send: "PING\r\n", MustMatch: []string{`\+PONG`}, MustNotMatch: []string{"ERR"}},
			check: func(t *testing.T, r Result) {
				require.True(t, *r.RegexMatched)
				require.EqualValues(t, len("+HELLO sitewatch-test\r\n+PONG\r\n"), r.BodyBytes, "read until the regex matched")
			}},
		"tcp by name": {site: site.Site{URL: "tcp://localhost:" + strings.Split(plain, ":")[1], MustMatch: []string{"HELLO"}},
			check: func(t *testing.T, r Result) { require.True(t, *r.RegexMatched) }},
		"tcp reply does not match": {site: site.Site{URL: "tcp://" + plain, Send: "QUIT\r\n", MustMatch: []string{`\+PONG`}, Timeout: 300 * time.Millisecond},
			class: ClassRegex, errText: `reply does not match "\\+PONG"`},
		"tcp reply must not match": {site: site.Site{URL: "tcp://" + plain, MustNotMatch: []string{"HELLO"}},
			class: ClassRegex, errText: `reply matches must-not-match "HELLO"`},
		"tcp silent server":   {site: site.Site{URL: "tcp://" + silent, MustMatch: []string{"."}, Timeout: 200 * time.Millisecond}, class: ClassTimeout},
		"tcp refused":         {site: site.Site{URL: "tcp://" + refused}, class: ClassConnect, errText: "connection refused"},
		"tcp reset":           {site: site.Site{URL: "tcp://" + resetting, Send: "PING\r\n", MustMatch: []string{"."}}, class: ClassRead},
		"tcp unknown host":    {site: site.Site{URL: "tcp://no-such-host.invalid:80"}, class: ClassDNS},
		"tcp blocked address": {site: site.Site{URL: "tcp://10.255.255.1:9"}, class: ClassBlocked},
		"tls certificate": {site: site.Site{URL: "tls://" + secure}, check: func(t *testing.T, r Result) {
			require.Equal(t, "TLS 1.3", r.TLSVersion)
			require.Equal(t, "TLS_AES_128_GCM_SHA256", r.TLSCipher)
			require.False(t, *r.OCSPStapled)
			require.WithinDuration(t, leaf.Leaf.NotAfter, r.TLSExpiry, time.Second)
			require.WithinDuration(t, leaf.Leaf.NotAfter, r.TLSChainExpiry, time.Second, "the leaf expires before its CA")
			require.Positive(t, r.Phases.TLS)
		}},
		"tls send and expect": {site: site.Site{URL: "tls://" + secure, Send: "PING\n", MustMatch: []string{"PONG"}},
			check: func(t *testing.T, r Result) { require.True(t, *r.RegexMatched) }},
		"tls stapled": {site: site.Site{URL: "tls://" + secureStapled}, check: func(t *testing.T, r Result) {
			require.True(t, *r.OCSPStapled)
			require.Equal(t, "TLS 1.3", r.TLSVersion, "the newest both speak")
		}},
		"tls expired": {site: site.Site{URL: "tls://" + secureExpired}, class: ClassTLS, errText: "expired",
			check: func(t *testing.T, r Result) {
				require.WithinDuration(t, expired.Leaf.NotAfter, r.TLSExpiry, time.Second, "the expiry of a refused certificate is still reported")
			}},
		"tls wrong host name":   {site: site.Site{URL: "tls://localhost:" + securePort}, class: ClassTLS, errText: "localhost"},
		"tls on a plain port":   {site: site.Site{URL: "tls://" + plain}, class: ClassTLS},
		"tls unknown authority": {site: site.Site{URL: "tls://" + secure}, class: ClassTLS, errText: "unknown authority"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			prober := p
			if name == "tls unknown authority" {
				prober = New(Config{MaxBodyBytes: 1024, Guard: allowLoopback}) // the system's roots
			}
			if name == "tcp blocked address" {
				prober = New(Config{MaxBodyBytes: 1024, Guard: NewGuard(nil)})
			}
			s := tc.site
			if s.Timeout == 0 {
				s.Timeout = 5 * time.Second
			}
			r := prober.Check(context.Background(), target(t, s))
			require.Equal(t, tc.class, r.ErrorClass, "error: %s", r.Error)
			require.Contains(t, r.Error, tc.errText)
			require.Positive(t, r.Duration)
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// The site's timeout bounds a server that trickles a reply that never
// matches.
func TestStreamTimeoutBoundsATrickle(t *testing.T) {
	t.Parallel()
	addr := lineServer(t, listen(t), func(c net.Conn) {
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(c, "%d\n", i); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	p := New(Config{MaxBodyBytes: 1 << 20, Guard: NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})})
	r := p.Check(context.Background(), target(t, site.Site{URL: "tcp://" + addr, MustMatch: []string{"never"}, Timeout: 300 * time.Millisecond}))
	require.Equal(t, ClassRegex, r.ErrorClass, r.Error)
	require.Contains(t, r.Error, "timeout")
	require.Less(t, r.Duration, 2*time.Second)
}
