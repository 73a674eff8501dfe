package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strings"
	"time"
)

// MailTarget is an e-mail channel's URL, parsed and checked.
type MailTarget struct {
	Addr     string // host:port
	Host     string
	Username string
	From     string
	To       []string
}

// ParseMailURL checks an e-mail channel's URL:
// smtp://[user@]host:port?from=ADDR&to=ADDR[,ADDR...].
func ParseMailURL(raw string) (MailTarget, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "smtp" || u.Hostname() == "" || u.Port() == "" {
		return MailTarget{}, errors.New("e-mail URL: want smtp://[user@]host:port?from=ADDR&to=ADDR")
	}
	if _, set := u.User.Password(); set {
		return MailTarget{}, fmt.Errorf("e-mail URL: no password in the URL; give it as the channel's secret")
	}
	t := MailTarget{Addr: u.Host, Host: u.Hostname(), Username: u.User.Username()}
	q := u.Query()
	from, err := mail.ParseAddress(q.Get("from"))
	if err != nil {
		return MailTarget{}, fmt.Errorf("e-mail URL: from %q: %v", q.Get("from"), err)
	}
	t.From = from.Address
	to, err := mail.ParseAddressList(q.Get("to"))
	if err != nil || len(to) == 0 {
		return MailTarget{}, fmt.Errorf("e-mail URL: to %q: want one or more addresses", q.Get("to"))
	}
	for _, a := range to {
		t.To = append(t.To, a.Address)
	}
	return t, nil
}

// sendMail delivers an incident event by SMTP: STARTTLS whenever the server
// offers it (and required unless the server is on this machine), then AUTH
// PLAIN with the channel's secret if the URL names a user.
func sendMail(ctx context.Context, roots *x509.CertPool, ch Channel, eventID, eventType string, incident []byte) error {
	t, err := ParseMailURL(ch.URL)
	if err != nil {
		return fmt.Errorf("channel %s: %w", ch.Name, err)
	}
	fail := func(step string, err error) error { return fmt.Errorf("channel %s: %s: %w", ch.Name, step, err) }
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return fail("connecting", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, t.Host)
	if err != nil {
		_ = conn.Close()
		return fail("greeting", err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Hello("sitewatch"); err != nil {
		return fail("EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: t.Host, RootCAs: roots, MinVersion: tls.VersionTLS12}); err != nil {
			return fail("STARTTLS", err)
		}
	} else if !loopback(t.Host) {
		return fail("STARTTLS", fmt.Errorf("the server at %s does not offer it; sitewatch sends no mail in clear text", t.Addr))
	}
	if t.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", t.Username, ch.Secret, t.Host)); err != nil {
			return fail("AUTH", err)
		}
	}
	if err := c.Mail(t.From); err != nil {
		return fail("MAIL FROM", err)
	}
	for _, to := range t.To {
		if err := c.Rcpt(to); err != nil {
			return fail("RCPT TO "+to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fail("DATA", err)
	}
	line := summary(eventType, incident)
	if i := strings.Index(line, ": "); i >= 0 {
		line = line[i+2:] // no emoji names in mail
	}
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@sitewatch>\r\n",
		t.From, strings.Join(t.To, ", "), mime.QEncoding.Encode("utf-8", "[sitewatch] "+line), time.Now().UTC().Format(time.RFC1123Z), eventID)
	fmt.Fprintf(&msg, "%s: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n\r\n%s\r\n",
		IdempotencyHeader, eventID, line, incident)
	if _, err := w.Write(msg.Bytes()); err != nil {
		return fail("sending the message", err)
	}
	if err := w.Close(); err != nil {
		return fail("sending the message", err)
	}
	return c.Quit()
}

func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
