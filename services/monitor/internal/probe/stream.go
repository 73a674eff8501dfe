package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// checkStream checks a tcp:// or tls:// site: the host's addresses (the
// DNS phase), a connection to the first that takes one (connect), for
// tls:// a handshake that verifies the certificate for the host (TLS),
// then, when the site sends something or has regexes, its Send written
// and the reply read (TTFB: written to first byte; Transfer: first byte
// to the end). The reply is read until every must-match regex matches
// (with none: until its first bytes arrive), the server closes the
// connection, MaxBodyBytes were read, or the timeout. res holds the site,
// its start time, and the context bounds it all.
func (p *Prober) checkStream(ctx context.Context, t *Target, res Result) Result {
	s := t.Site
	start := time.Now()
	u, err := url.Parse(s.URL)
	if err != nil {
		return failed(res, start, ClassConnect, err) // validated on the way in: a row changed by hand
	}
	host, port := u.Hostname(), u.Port()

	var addrs []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else {
		t0 := time.Now()
		addrs, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		res.Phases.DNS = time.Since(t0)
		if err != nil {
			return failed(res, start, classify(ctx, err), err)
		}
	}

	t0 := time.Now()
	var conn net.Conn
	for _, ip := range addrs {
		if conn, err = p.dialer.DialContext(ctx, "tcp", net.JoinHostPort(ip.Unmap().String(), port)); err == nil {
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	res.Phases.Connect = time.Since(t0)
	if err != nil {
		return failed(res, start, classify(ctx, err), err)
	}
	defer func() { _ = conn.Close() }()
	if a, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
		res.RemoteIP = a.IP.String()
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}

	if s.Kind() == site.KindTLS {
		t0 = time.Now()
		tc := tls.Client(conn, &tls.Config{RootCAs: p.cfg.RootCAs, ServerName: host})
		err := tc.HandshakeContext(ctx)
		res.Phases.TLS = time.Since(t0)
		if err != nil {
			var certErr *tls.CertificateVerificationError
			if errors.As(err, &certErr) {
				res.TLSExpiry, res.TLSChainExpiry = expiries(certErr.UnverifiedCertificates)
			}
			return failed(res, start, classify(ctx, err), fmt.Errorf("TLS handshake: %w", err))
		}
		st := tc.ConnectionState()
		res.TLSExpiry, res.TLSChainExpiry = expiries(st.PeerCertificates)
		handshake(&res, st)
		conn = tc
	}

	if s.Send != "" {
		if _, err := io.WriteString(conn, s.Send); err != nil {
			return failed(res, start, readClass(ctx, err), fmt.Errorf("sending: %w", err))
		}
	}
	sent := time.Now()
	if !t.hasRegexes() {
		res.Duration = time.Since(start)
		return res
	}
	reply, err := p.readReply(conn, t, sent, &res)
	done := time.Now()
	res.Duration = done.Sub(start)
	res.BodyBytes = int64(len(reply))
	failed := matchAll(t, reply, &res)
	switch {
	case err != nil && len(reply) == 0:
		res.ErrorClass, res.Error = readClass(ctx, err), "reading the reply: "+err.Error()
	case failed != nil && failed.Match:
		res.ErrorClass = ClassRegex
		res.Error = fmt.Sprintf("reply does not match %q", failed.Pattern)
		if err != nil {
			res.Error += " (" + err.Error() + " after " + fmt.Sprint(len(reply)) + " bytes)"
		}
	case failed != nil:
		res.ErrorClass = ClassRegex
		res.Error = fmt.Sprintf("reply matches must-not-match %q", failed.Pattern)
	}
	return res
}

// failed is res failed with class and err, timed from start: how the
// checks of every kind but HTTP end early.
func failed(res Result, start time.Time, class string, err error) Result {
	res.Duration = time.Since(start)
	res.ErrorClass, res.Error = class, err.Error()
	return res
}

// readReply reads the reply until every must-match regex matches (with
// none, until the first bytes), the peer closes, MaxBodyBytes, or an error
// (the deadline among them), which it returns unless the reply is complete.
func (p *Prober) readReply(conn net.Conn, t *Target, sent time.Time, res *Result) ([]byte, error) {
	var reply []byte
	chunk := make([]byte, 4096)
	var first time.Time
	defer func() {
		if !first.IsZero() {
			res.Phases.TTFB = first.Sub(sent)
			res.Phases.Transfer = time.Since(first)
		}
	}()
	for {
		n, err := conn.Read(chunk[:min(len(chunk), int(p.cfg.MaxBodyBytes)-len(reply)+1)])
		if n > 0 && first.IsZero() {
			first = time.Now()
		}
		reply = append(reply, chunk[:n]...)
		if int64(len(reply)) > p.cfg.MaxBodyBytes {
			res.Truncated = true
			return reply[:p.cfg.MaxBodyBytes], nil
		}
		if n > 0 && t.replyComplete(reply) {
			return reply, nil
		}
		if errors.Is(err, io.EOF) {
			return reply, nil
		}
		if err != nil {
			return reply, err
		}
	}
}

// replyComplete: every must-match regex matches reply; with none, any
// reply at all.
func (t *Target) replyComplete(reply []byte) bool {
	for _, re := range t.mustMatch {
		if !re.Match(reply) {
			return false
		}
	}
	return true
}

// readClass classifies an error of an established connection: a timeout,
// or the connection failing (read).
func readClass(ctx context.Context, err error) string {
	var netErr net.Error
	if classify(ctx, err) == ClassTimeout || errors.As(err, &netErr) && netErr.Timeout() {
		return ClassTimeout
	}
	return ClassRead
}

// handshake records a TLS handshake's version, cipher suite and whether the
// server stapled an OCSP response.
func handshake(res *Result, st tls.ConnectionState) {
	res.TLSVersion = tls.VersionName(st.Version)
	res.TLSCipher = tls.CipherSuiteName(st.CipherSuite)
	stapled := len(st.OCSPResponse) > 0
	res.OCSPStapled = &stapled
}
