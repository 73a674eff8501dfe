package notify

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/sitewatch/sitewatch/platform/checkevent"
)

// Channel kinds for the chat and push services teams use besides Slack:
// each gets one readable line (summary), as Slack does.
const (
	// Discord: URL a channel's webhook (https://discord.com/api/webhooks/…).
	Discord = "discord"
	// Teams: URL a Microsoft Teams Workflows webhook ("When a Teams webhook
	// request is received"): the line in an Adaptive Card.
	Teams = "teams"
	// Ntfy: URL a topic (https://ntfy.sh/TOPIC, or a server of one's own);
	// Secret, if any, an access token.
	Ntfy = "ntfy"
)

// chatRequest is the request that gives an incident event to one of the
// chat and push services: its body and headers.
func chatRequest(ch Channel, eventType string, incident []byte) (body []byte, header http.Header, err error) {
	text := plain(eventType, incident)
	resolved := eventType == checkevent.IncidentResolvedType
	header = http.Header{}
	switch ch.Kind {
	case Discord:
		// https://discord.com/developers/docs/resources/webhook#execute-webhook
		// content: at most 2,000 characters; no pings from a site's text.
		body, err = json.Marshal(map[string]any{"content": cut(":"+summary(eventType, incident), 2000),
			"username": "sitewatch", "allowed_mentions": map[string]any{"parse": []string{}}})
	case Teams:
		// https://adaptivecards.io/explorer/ in a Workflows message.
		color := "attention"
		if resolved {
			color = "good"
		}
		card := map[string]any{"type": "AdaptiveCard", "version": "1.4",
			"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
			"body":    []any{map[string]any{"type": "TextBlock", "text": text, "wrap": true, "weight": "Bolder", "color": color}}}
		body, err = json.Marshal(map[string]any{"type": "message", "attachments": []any{
			map[string]any{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}}})
	case Ntfy:
		// https://docs.ntfy.sh/publish/: the message as the body, the rest in headers.
		body = []byte(text)
		header.Set("Title", "sitewatch")
		header.Set("Tags", map[bool]string{true: "green_circle", false: "red_circle"}[resolved])
		header.Set("Priority", map[bool]string{true: "default", false: "high"}[resolved])
		header.Set("Content-Type", "text/plain; charset=utf-8")
		if ch.Secret != "" {
			header.Set("Authorization", "Bearer "+ch.Secret)
		}
	default:
		return nil, nil, fmt.Errorf("unknown kind %q", ch.Kind)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the notification: %w", err)
	}
	return body, header, nil
}
