// Package notify sends incident notifications to a channel: a generic
// webhook (the CloudEvent as JSON, signed with HMAC-SHA256 so receivers can
// verify it, with the event id as idempotency key) or a Slack-compatible
// incoming webhook. The sink's notifier delivers with it; the monitor's
// `channels test` sends a test notification with it.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sitewatch/sitewatch/platform/checkevent"
)

// Channel kinds.
const (
	Webhook = "webhook"
	Slack   = "slack"
	Email   = "email" // URL smtp://user@host:port?from=a@example.com&to=b@example.com,c@example.com; Secret the password
)

// Header names of a webhook delivery.
const (
	SignatureHeader   = "X-Sitewatch-Signature" // "sha256=" + hex HMAC-SHA256 of the body with the channel's secret
	IdempotencyHeader = "Idempotency-Key"       // the event id: the same notification always carries the same key
)

// Channel is where notifications go.
type Channel struct {
	Name   string
	Kind   string
	URL    string
	Secret string
}

// Sign is the signature header's value for body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature is body's signature with secret, for
// receivers.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// Send delivers one incident event to ch. An error says the receiver did
// not take it (the delivery is retried); it never holds the secret.
func Send(ctx context.Context, client *http.Client, ch Channel, eventID, eventType string, incident []byte) error {
	if ch.Kind == Email {
		return sendMail(ctx, rootCAs(client), ch, eventID, eventType, incident)
	}
	var body []byte
	var err error
	switch ch.Kind {
	case Webhook:
		body, err = json.Marshal(map[string]any{"specversion": "1.0", "id": eventID, "type": eventType,
			"source": checkevent.IncidentSource, "datacontenttype": "application/json", "data": json.RawMessage(incident)})
	case Slack:
		body, err = json.Marshal(map[string]string{"text": slackText(eventType, incident)})
	default:
		return fmt.Errorf("channel %s: unknown kind %q", ch.Name, ch.Kind)
	}
	if err != nil {
		return fmt.Errorf("channel %s: encoding the notification: %w", ch.Name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ch.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("channel %s: %w", ch.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sitewatch-notifier")
	req.Header.Set(IdempotencyHeader, eventID)
	if ch.Kind == Webhook {
		req.Header.Set("Content-Type", "application/cloudevents+json")
		if ch.Secret != "" {
			req.Header.Set(SignatureHeader, Sign(ch.Secret, body))
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		// The URL of an incoming webhook is a credential: the error names
		// the host only (net/http's would carry the whole URL).
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("channel %s: POST to %s: %w", ch.Name, req.URL.Host, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("channel %s: receiver answered %s: %s", ch.Name, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// slackText is one line a person reads in a chat.
func slackText(eventType string, incident []byte) string {
	return ":" + summary(eventType, incident)
}

// summary says what happened in one line; it starts with an emoji name
// and its closing colon ("red_circle: ...").
func summary(eventType string, incident []byte) string {
	var in checkevent.Incident
	if err := json.Unmarshal(incident, &in); err != nil {
		return "bell: sitewatch: " + eventType
	}
	what := map[string]string{checkevent.KindDown: "is DOWN", checkevent.KindStale: "is not being checked",
		checkevent.KindWarning: "needs attention"}[in.Kind]
	if eventType == checkevent.IncidentResolvedType {
		return fmt.Sprintf("large_green_circle: %s is fine again (%s incident %d resolved: %s)", in.URL, in.Kind, in.IncidentID, in.Resolution)
	}
	text := fmt.Sprintf("red_circle: %s %s (incident %d)", in.URL, what, in.IncidentID)
	if in.ErrorClass != "" {
		text += ": " + in.ErrorClass
		if in.Error != "" {
			text += " — " + in.Error
		}
	}
	if len(in.Regions) > 0 {
		text += " [" + strings.Join(in.Regions, ", ") + "]"
	}
	return text
}

// rootCAs is the pool of CAs client trusts (nil: the system's), which
// e-mail's STARTTLS trusts too: one setting for every channel.
func rootCAs(client *http.Client) *x509.CertPool {
	if t, ok := client.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
		return t.TLSClientConfig.RootCAs
	}
	return nil
}

// Client is the HTTP client for deliveries: a bounded time per attempt.
func Client() *http.Client { return &http.Client{Timeout: 10 * time.Second} }
