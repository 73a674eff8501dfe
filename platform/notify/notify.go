// Package notify sends incident notifications to a channel: a generic
// webhook (the CloudEvent as JSON, signed with HMAC-SHA256 so receivers can
// verify it, also the Standard Webhooks way, with the event id as
// idempotency key) or a Slack-compatible
// incoming webhook. The sink's notifier delivers with it; the monitor's
// `channels test` sends a test notification with it.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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

	// The Standard Webhooks headers (standardwebhooks.com), sent with a
	// secret as well: the event id, the Unix time of the attempt, and
	// "v1," + base64 HMAC-SHA256 of "id.timestamp.body" (StandardSign), so a
	// receiver can refuse a replayed delivery by its time and id.
	StandardIDHeader        = "webhook-id"
	StandardTimestampHeader = "webhook-timestamp"
	StandardSignatureHeader = "webhook-signature"
)

// StandardTolerance is how old (or early) a delivery's timestamp may be
// for VerifyStandard.
const StandardTolerance = 5 * time.Minute

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

// standardKey is the HMAC key of secret: a "whsec_" secret (the Standard
// Webhooks form) is base64 after its prefix; any other is its bytes.
func standardKey(secret string) []byte {
	if rest, ok := strings.CutPrefix(secret, "whsec_"); ok {
		if key, err := base64.StdEncoding.DecodeString(rest); err == nil {
			return key
		}
	}
	return []byte(secret)
}

// StandardSign is the Standard Webhooks signature header's value of a
// delivery: "v1," + base64 HMAC-SHA256 of "id.timestamp.body".
func StandardSign(secret, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, standardKey(secret))
	fmt.Fprintf(mac, "%s.%d.", id, timestamp)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// VerifyStandard reports whether a delivery's Standard Webhooks headers
// are right for body, for receivers: one of the space-separated
// signatures matches, and the timestamp is within StandardTolerance of
// now (older is a replay).
func VerifyStandard(secret string, header http.Header, body []byte, now time.Time) error {
	id, ts := header.Get(StandardIDHeader), header.Get(StandardTimestampHeader)
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return errors.New("no webhook-id or webhook-timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > StandardTolerance || d < -StandardTolerance {
		return fmt.Errorf("webhook-timestamp %s is %s from now: a replay or a wrong clock", ts, d.Round(time.Second))
	}
	want := StandardSign(secret, id, sec, body)
	for _, sig := range strings.Fields(header.Get(StandardSignatureHeader)) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return nil
		}
	}
	return errors.New("no webhook-signature matches")
}

// Send delivers one incident event to ch. An error says the receiver did
// not take it (the delivery is retried); it never holds the secret.
func Send(ctx context.Context, client *http.Client, ch Channel, eventID, eventType string, incident []byte) error {
	return redact(deliver(ctx, client, ch, eventID, eventType, incident), ch.Secret)
}

// redact takes secret out of err's text: a receiver's answer, quoted in
// the error, may echo what it was sent (a Telegram bot's token travels in
// the path, a key in the body).
func redact(err error, secret string) error {
	if err == nil || len(secret) < 6 {
		return err
	}
	msg := err.Error()
	for _, s := range []string{secret, url.PathEscape(secret), url.QueryEscape(secret)} {
		msg = strings.ReplaceAll(msg, s, "[secret]")
	}
	if msg == err.Error() {
		return err
	}
	return errors.New(msg)
}

func deliver(ctx context.Context, client *http.Client, ch Channel, eventID, eventType string, incident []byte) error {
	if ch.Kind == Email {
		return sendMail(ctx, rootCAs(client), ch, eventID, eventType, incident)
	}
	var body []byte
	var err error
	target, extra := ch.URL, http.Header{}
	switch ch.Kind {
	case Discord, Teams, Ntfy:
		body, extra, err = chatRequest(ch, eventType, incident)
	case PagerDuty, Opsgenie, Alertmanager, Telegram:
		if NeedsSecret(ch.Kind) && ch.Secret == "" {
			return fmt.Errorf("channel %s: a %s channel needs its key as the secret (monitor channels update %s --secret-file FILE)", ch.Name, ch.Kind, ch.Name)
		}
		if ch.Kind == Telegram {
			target, body, extra, err = telegramRequest(ch, eventType, incident)
		} else {
			target, body, extra, err = providerRequest(ch, eventType, incident)
		}
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("channel %s: %w", ch.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range extra {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", "sitewatch-notifier")
	req.Header.Set(IdempotencyHeader, eventID)
	if ch.Kind == Webhook {
		req.Header.Set("Content-Type", "application/cloudevents+json")
		if ch.Secret != "" {
			req.Header.Set(SignatureHeader, Sign(ch.Secret, body))
			now := time.Now().Unix()
			req.Header.Set(StandardIDHeader, eventID)
			req.Header.Set(StandardTimestampHeader, strconv.FormatInt(now, 10))
			req.Header.Set(StandardSignatureHeader, StandardSign(ch.Secret, eventID, now, body))
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
