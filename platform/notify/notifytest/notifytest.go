// Package notifytest gives tests a real SMTP server of their own, on
// loopback, that records the mail it is given, with STARTTLS when asked
// (certificates made by openssl).
package notifytest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Mail is one message the server accepted.
type Mail struct {
	Auth string   // "user\x00password" as AUTH PLAIN sent it
	From string   // the MAIL FROM line
	To   []string // the RCPT TO lines
	Data string   // headers and body
	TLS  bool     // the session had switched to TLS by STARTTLS
}

// SMTPServer speaks enough of RFC 5321 (EHLO, AUTH PLAIN, MAIL, RCPT,
// DATA, QUIT) for a real client to deliver to it.
type SMTPServer struct {
	Addr string

	tls *tls.Config // offer STARTTLS, and require it before AUTH and MAIL

	mu    sync.Mutex
	mails []Mail
}

// StartSMTP starts a server closed when the test ends.
func StartSMTP(t testing.TB) *SMTPServer { return start(t, nil) }

// StartSMTPTLS starts a server that offers STARTTLS with cfg and refuses
// AUTH and MAIL before it.
func StartSMTPTLS(t testing.TB, cfg *tls.Config) *SMTPServer { return start(t, cfg) }

func start(t testing.TB, cfg *tls.Config) *SMTPServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("starting the test SMTP server: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	s := &SMTPServer{Addr: l.Addr().String(), tls: cfg}
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

// Mails returns the messages accepted so far.
func (s *SMTPServer) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// Last returns the last message accepted (zero if none).
func (s *SMTPServer) Last() Mail {
	m := s.Mails()
	if len(m) == 0 {
		return Mail{}
	}
	return m[len(m)-1]
}

func (s *SMTPServer) serve(conn net.Conn) {
	defer func() { _ = conn.Close() }()
	tp := textproto.NewConn(conn)
	_ = tp.PrintfLine("220 test ESMTP")
	var m Mail
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		if s.tls != nil && !m.TLS && (verb == "AUTH" || verb == "MAIL") {
			_ = tp.PrintfLine("530 5.7.0 Must issue a STARTTLS command first")
			continue
		}
		switch verb {
		case "EHLO", "HELO":
			if s.tls != nil && !m.TLS {
				_ = tp.PrintfLine("250-test\r\n250-STARTTLS\r\n250 AUTH PLAIN")
			} else {
				_ = tp.PrintfLine("250-test\r\n250 AUTH PLAIN")
			}
		case "STARTTLS":
			if s.tls == nil || m.TLS {
				_ = tp.PrintfLine("502 not offered")
				continue
			}
			_ = tp.PrintfLine("220 go ahead")
			tconn := tls.Server(conn, s.tls)
			if err := tconn.Handshake(); err != nil {
				return // the client did not trust us: it hangs up
			}
			conn, tp = tconn, textproto.NewConn(tconn)
			m = Mail{TLS: true} // RFC 3207: the session starts over
		case "AUTH":
			parts := strings.Fields(line)
			b, _ := base64.StdEncoding.DecodeString(parts[len(parts)-1])
			m.Auth = strings.TrimPrefix(string(b), "\x00")
			_ = tp.PrintfLine("235 ok")
		case "MAIL":
			m.From = line
			_ = tp.PrintfLine("250 ok")
		case "RCPT":
			m.To = append(m.To, line)
			_ = tp.PrintfLine("250 ok")
		case "DATA":
			_ = tp.PrintfLine("354 go on")
			b, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			m.Data = string(b)
			s.mu.Lock()
			s.mails = append(s.mails, m)
			s.mu.Unlock()
			m = Mail{Auth: m.Auth, TLS: m.TLS}
			_ = tp.PrintfLine("250 queued")
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default:
			_ = tp.PrintfLine("250 ok")
		}
	}
}

// ServerTLS makes, with openssl, a CA and a certificate it signs for
// hosts (DNS names or IP addresses), and returns the server's TLS config
// and a pool trusting the CA.
func ServerTLS(t testing.TB, hosts ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	dir := t.TempDir()
	var sans []string
	for _, h := range hosts {
		if net.ParseIP(h) != nil {
			sans = append(sans, "IP:"+h)
		} else {
			sans = append(sans, "DNS:"+h)
		}
	}
	ext := filepath.Join(dir, "ext.cnf")
	if err := os.WriteFile(ext, []byte("subjectAltName="+strings.Join(sans, ",")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	key := []string{"-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"}
	for _, args := range [][]string{
		append([]string{"req", "-x509", "-days", "1", "-subj", "/CN=sitewatch test CA", "-keyout", p("ca.key"), "-out", p("ca.pem")}, key...),
		append([]string{"req", "-subj", "/CN=" + hosts[0], "-keyout", p("srv.key"), "-out", p("srv.csr")}, key...),
		{"x509", "-req", "-days", "1", "-in", p("srv.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
			"-extfile", ext, "-out", p("srv.pem")},
	} {
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %s: %v\n%s", args[0], err, out)
		}
	}
	cert, err := tls.LoadX509KeyPair(p("srv.pem"), p("srv.key"))
	if err != nil {
		t.Fatalf("loading the test certificate: %v", err)
	}
	ca, err := os.ReadFile(p("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		t.Fatal("the test CA is not PEM")
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, roots
}
