package notify

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/notify/notifytest"
	"github.com/sitewatch/sitewatch/platform/tlstest"
)

func TestEmailChannelSendsOneMailWithTheIdempotencyKey(t *testing.T) {
	srv := notifytest.StartSMTP(t)
	ch := Channel{Name: "mail", Kind: Email, Secret: "p4ss",
		URL: "smtp://alerts@" + srv.Addr + "?from=sitewatch@example.com&to=oncall@example.com,boss@example.com"}
	incident := []byte(`{"schema_version":1,"incident_id":7,"site_id":3,"url":"https://shop.example.com/","kind":"down","state":"opened","error_class":"connect","regions":["eu-west","us-east"]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, Send(ctx, Client(), ch, "0191c3a5-7b1e-7c3d-8e2f-123456789abc", checkevent.IncidentOpenedType, incident))
	got := srv.Last()
	require.Equal(t, "alerts\x00p4ss", got.Auth, "AUTH PLAIN with the channel's secret")
	require.Contains(t, got.From, "<sitewatch@example.com>")
	require.Len(t, got.To, 2)
	msg, err := textproto.NewReader(bufio.NewReader(strings.NewReader(got.Data))).ReadMIMEHeader()
	require.NoError(t, err)
	require.Equal(t, "0191c3a5-7b1e-7c3d-8e2f-123456789abc", msg.Get(IdempotencyHeader))
	require.Contains(t, msg.Get("Subject"), "https://shop.example.com/ is DOWN")
	require.Contains(t, got.Data, "eu-west, us-east")
}

func TestEmailURLsAreChecked(t *testing.T) {
	for raw, want := range map[string]string{
		"http://h:25?from=a@b&to=c@d":               "want smtp://",
		"smtp://h?from=a@b&to=c@d":                  "want smtp://",
		"smtp://u:pw@h:25?from=a@b&to=c@d":          "no password in the URL",
		"smtp://h:25?from=nobody&to=c@d":            `from "nobody"`,
		"smtp://h:25?from=a@example.com&to=":        "want one or more addresses",
		"smtp://mail.example.com:587?from=x@y.z&to": "want one or more addresses",
	} {
		_, err := ParseMailURL(raw)
		require.ErrorContains(t, err, want, raw)
	}
	ok, err := ParseMailURL("smtp://u@mail.example.com:587?from=a@example.com&to=b@example.com,c@example.com")
	require.NoError(t, err)
	require.Equal(t, []string{"b@example.com", "c@example.com"}, ok.To)
}

// A server that offers no STARTTLS gets mail only when it is on this
// machine (the refusal itself would need a server elsewhere: the rule is
// unit-tested).
func TestClearTextMailOnlyToThisMachine(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv := notifytest.StartSMTP(t)
	_, port, _ := net.SplitHostPort(srv.Addr)
	// "localhost" resolves to this machine but names no loopback IP literal:
	// still loopback for the rule.
	err := Send(ctx, Client(), Channel{Name: "m", Kind: Email, URL: "smtp://localhost:" + port + "?from=a@example.com&to=b@example.com"},
		"id", checkevent.IncidentOpenedType, []byte(`{}`))
	require.NoError(t, err)
	require.False(t, loopback("mail.example.com"))
	require.True(t, loopback("::1"))
}

// STARTTLS for real: the server's certificate is made by openssl for
// localhost; mail goes only once the client verified it, and the password
// only inside TLS.
func TestMailGoesByVerifiedSTARTTLS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca := tlstest.NewCA(t, "smtp-test")
	pair := ca.Server(t, "smtp", "localhost")
	cert, err := tls.X509KeyPair([]byte(pair.CertPEM), []byte(pair.KeyPEM))
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM([]byte(ca.CertPEM)))
	srv := notifytest.StartSMTPTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	_, port, err := net.SplitHostPort(srv.Addr)
	require.NoError(t, err)
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	send := func(client *http.Client, host string) error {
		ch := Channel{Name: "mail", Kind: Email, Secret: "p4ss",
			URL: "smtp://alerts@" + net.JoinHostPort(host, port) + "?from=sitewatch@example.com&to=oncall@example.com"}
		return Send(ctx, client, ch, "0191c3a5-7b1e-7c3d-8e2f-123456789abc", checkevent.IncidentOpenedType, []byte(`{"url":"https://a.example/"}`))
	}

	require.NoError(t, send(trusting, "localhost"))
	got := srv.Last()
	require.True(t, got.TLS, "the mail went inside TLS")
	require.Equal(t, "alerts\x00p4ss", got.Auth)

	err = send(Client(), "localhost")
	require.ErrorContains(t, err, "channel mail: STARTTLS: tls: failed to verify certificate: x509: certificate signed by unknown authority")
	err = send(trusting, "127.0.0.1")
	require.ErrorContains(t, err, "channel mail: STARTTLS: tls: failed to verify certificate: x509: cannot validate certificate for 127.0.0.1")
	require.Len(t, srv.Mails(), 1, "nothing sent to a server that was not verified")
	require.NotContains(t, err.Error(), "p4ss")
}

// A webhook's URL may be its credential (Slack's are): a failed delivery's
// error names the host only.
func TestWebhookErrorsCarryNoURLPath(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, kind := range []string{Webhook, Slack} {
		err = Send(ctx, Client(), Channel{Name: "hook", Kind: kind, URL: "http://" + addr + "/services/T0KEN?key=S3CRET"},
			"id", checkevent.IncidentOpenedType, []byte(`{}`))
		require.ErrorContains(t, err, "channel hook: POST to "+addr+": dial tcp "+addr)
		require.NotContains(t, err.Error(), "T0KEN")
		require.NotContains(t, err.Error(), "S3CRET")
	}
}
