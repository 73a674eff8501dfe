package probe

import (
	"crypto/tls"
	"net"
	"net/http/httptrace"
	"sync"
	"time"
)

type tracerKey struct{}

// tracer collects one check's phases over all its requests (redirects
// included). Dials to several addresses may run at once, hence the mutex.
type tracer struct {
	mu                               sync.Mutex
	phases                           Phases
	dnsStart, connStart, tlsStart    time.Time
	wrote, firstByte                 time.Time
	remoteIP                         string
	redirects                        int
	tlsLeafExpiry, tlsEarliestExpiry time.Time
}

func (tr *tracer) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		DNSStart: func(httptrace.DNSStartInfo) { tr.mark(&tr.dnsStart) },
		DNSDone:  func(httptrace.DNSDoneInfo) { tr.add(&tr.phases.DNS, &tr.dnsStart) },
		ConnectStart: func(string, string) {
			tr.mu.Lock()
			if tr.connStart.IsZero() { // parallel dials: time from the first
				tr.connStart = time.Now()
			}
			tr.mu.Unlock()
		},
		ConnectDone: func(_, _ string, err error) {
			if err == nil {
				tr.add(&tr.phases.Connect, &tr.connStart)
			}
		},
		TLSHandshakeStart: func() { tr.mark(&tr.tlsStart) },
		TLSHandshakeDone: func(st tls.ConnectionState, err error) {
			tr.add(&tr.phases.TLS, &tr.tlsStart)
			if err == nil && len(st.PeerCertificates) > 0 {
				leaf, earliest := expiries(st.PeerCertificates)
				tr.mu.Lock()
				tr.tlsLeafExpiry, tr.tlsEarliestExpiry = leaf, earliest
				tr.mu.Unlock()
			}
		},
		GotConn: func(info httptrace.GotConnInfo) {
			if addr, ok := info.Conn.RemoteAddr().(*net.TCPAddr); ok {
				tr.mu.Lock()
				tr.remoteIP = addr.IP.String()
				tr.mu.Unlock()
			}
		},
		WroteRequest: func(httptrace.WroteRequestInfo) { tr.mark(&tr.wrote) },
		GotFirstResponseByte: func() {
			now := time.Now()
			tr.mu.Lock()
			if !tr.wrote.IsZero() {
				tr.phases.TTFB += now.Sub(tr.wrote)
				tr.wrote = time.Time{}
			}
			tr.firstByte = now
			tr.mu.Unlock()
		},
	}
}

func (tr *tracer) mark(t *time.Time) {
	tr.mu.Lock()
	*t = time.Now()
	tr.mu.Unlock()
}

// add adds the time since *start to *d and clears *start.
func (tr *tracer) add(d *time.Duration, start *time.Time) {
	tr.mu.Lock()
	if !start.IsZero() {
		*d += time.Since(*start)
		*start = time.Time{}
	}
	tr.mu.Unlock()
}

func (tr *tracer) setRedirects(n int) {
	tr.mu.Lock()
	tr.redirects = n
	tr.mu.Unlock()
}

// fill copies what was traced into res; done is when the body was read.
func (tr *tracer) fill(res *Result, done time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	res.Phases = tr.phases
	if !tr.firstByte.IsZero() {
		res.Phases.Transfer = done.Sub(tr.firstByte)
	}
	res.RemoteIP, res.Redirects = tr.remoteIP, tr.redirects
	res.TLSExpiry, res.TLSChainExpiry = tr.tlsLeafExpiry, tr.tlsEarliestExpiry
}
