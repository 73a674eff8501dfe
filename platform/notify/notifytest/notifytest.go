// Package notifytest gives tests a real SMTP server of their own, on
// loopback, that records the mail it is given, with STARTTLS when asked.
package notifytest

import (
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/textproto"
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
