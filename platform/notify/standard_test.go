package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sitewatch/sitewatch/platform/checkevent"
)

// A webhook with a secret is signed the Standard Webhooks way too: a real
// receiver gets webhook-id (the event id), webhook-timestamp and
// webhook-signature, which it can check by the specification alone, and
// VerifyStandard refuses a replay and a wrong secret.
func TestWebhooksAreSignedTheStandardWebhooksWay(t *testing.T) {
	type delivery struct {
		header http.Header
		body   []byte
	}
	got := make(chan delivery, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Clone(), body}
	}))
	defer srv.Close()
	// A secret in the Standard Webhooks form: "whsec_" + base64 of the key.
	key := []byte("a key of 24 random bytes")
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	before := time.Now().Unix()
	require.NoError(t, Send(ctx, Client(), Channel{Name: "hook", Kind: Webhook, URL: srv.URL, Secret: secret},
		"0190f0a2-7c2e-7000-8000-000000000001", checkevent.IncidentOpenedType, []byte(`{"incident_id":1}`)))
	d := <-got

	require.Equal(t, "0190f0a2-7c2e-7000-8000-000000000001", d.header.Get("webhook-id"))
	ts, err := strconv.ParseInt(d.header.Get("webhook-timestamp"), 10, 64)
	require.NoError(t, err)
	require.GreaterOrEqual(t, ts, before)
	// The specification: HMAC-SHA256 with the decoded key over id.timestamp.body, base64, "v1," first.
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(d.header.Get("webhook-id") + "." + d.header.Get("webhook-timestamp") + "."))
	mac.Write(d.body)
	require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), d.header.Get("webhook-signature"))
	require.True(t, Verify(secret, d.body, d.header.Get(SignatureHeader)), "the sitewatch signature still comes")

	require.NoError(t, VerifyStandard(secret, d.header, d.body, time.Now()))
	require.ErrorContains(t, VerifyStandard(secret, d.header, d.body, time.Now().Add(10*time.Minute)), "a replay")
	require.ErrorContains(t, VerifyStandard("whsec_"+base64.StdEncoding.EncodeToString([]byte("other")), d.header, d.body, time.Now()),
		"no webhook-signature matches")
	require.ErrorContains(t, VerifyStandard(secret, d.header, append(d.body, ' '), time.Now()), "no webhook-signature matches")
	require.ErrorContains(t, VerifyStandard(secret, http.Header{}, d.body, time.Now()), "no webhook-id")

	// Any other secret is the key as it is.
	plain := StandardSign("s3cret", "id", 1700000000, []byte("{}"))
	mac = hmac.New(sha256.New, []byte("s3cret"))
	mac.Write([]byte("id.1700000000.{}"))
	require.Equal(t, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)), plain)

	// Without a secret nothing is signed.
	require.NoError(t, Send(ctx, Client(), Channel{Name: "hook", Kind: Webhook, URL: srv.URL}, "id", checkevent.IncidentOpenedType, []byte(`{}`)))
	d = <-got
	require.Empty(t, d.header.Get("webhook-signature"))
	require.Empty(t, d.header.Get(SignatureHeader))
}
