// Package notifytest gives tests a real SMTP server of their own, on
// loopback, that records the mail it is given.
package notifytest

import (
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
}

// SMTPServer speaks enough of RFC 5321 (EHLO, AUTH PLAIN, MAIL, RCPT,
// DATA, QUIT) for a real client to deliver to it.
type SMTPServer struct {
	Addr string

	mu    sync.Mutex
	mails []Mail
}

// StartSMTP starts a server closed when the test ends.
func StartSMTP(t testing.TB) *SMTPServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("starting the test SMTP server: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	s := &SMTPServer{Addr: l.Addr().String()}
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
		switch strings.ToUpper(strings.Fields(line + " x")[0]) {
		case "EHLO", "HELO":
			_ = tp.PrintfLine("250-test\r\n250 AUTH PLAIN")
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
			m = Mail{Auth: m.Auth}
			_ = tp.PrintfLine("250 queued")
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default:
			_ = tp.PrintfLine("250 ok")
		}
	}
}
