package notify

import (
	"bufio"
	"context"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/notify/notifytest"
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
