package notify

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

// rawReceiver records each request's headers and raw body.
func rawReceiver(t *testing.T, status int) (string, <-chan request) {
	t.Helper()
	got := make(chan request, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		got <- request{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: map[string]any{"raw": string(raw)}}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// Discord's execute-webhook: content, the line, with no mention parsed.
func TestDiscordWebhook(t *testing.T) {
	url, got := receiver(t, http.StatusNoContent)
	send(t, Channel{Name: "dc", Kind: Discord, URL: url + "/api/webhooks/1/T0KEN"}, false)
	r := <-got
	require.Equal(t, "/api/webhooks/1/T0KEN", r.path)
	require.Equal(t, ":red_circle: https://shop.example.com/ is DOWN (incident 42): http_status — status 503 [eu-west, us-east]", r.body["content"])
	require.Equal(t, map[string]any{"parse": []any{}}, r.body["allowed_mentions"], "a site's text never pings anyone")
}

// A Teams Workflows webhook: a message with one Adaptive Card attachment.
func TestTeamsWorkflowsWebhook(t *testing.T) {
	url, got := receiver(t, http.StatusAccepted)
	send(t, Channel{Name: "teams", Kind: Teams, URL: url + "/workflows/x"}, true)
	r := <-got
	require.Equal(t, "message", r.body["type"])
	att := r.body["attachments"].([]any)[0].(map[string]any)
	require.Equal(t, "application/vnd.microsoft.card.adaptive", att["contentType"])
	card := att["content"].(map[string]any)
	require.Equal(t, "AdaptiveCard", card["type"])
	block := card["body"].([]any)[0].(map[string]any)
	require.Equal(t, "TextBlock", block["type"])
	require.Equal(t, "good", block["color"], "resolved")
	require.Contains(t, block["text"], "is fine again")
}

// ntfy's publish: the line as the body, title, priority and tags as
// headers, the token as bearer.
func TestNtfyPublish(t *testing.T) {
	url, got := rawReceiver(t, http.StatusOK)
	send(t, Channel{Name: "push", Kind: Ntfy, URL: url + "/sitewatch-alerts", Secret: "tk_abc"}, false)
	r := <-got
	require.Equal(t, "POST", r.method)
	require.Equal(t, "/sitewatch-alerts", r.path)
	require.Equal(t, "https://shop.example.com/ is DOWN (incident 42): http_status — status 503 [eu-west, us-east]", r.body["raw"])
	require.Equal(t, "sitewatch", r.header.Get("Title"))
	require.Equal(t, "high", r.header.Get("Priority"))
	require.Equal(t, "red_circle", r.header.Get("Tags"))
	require.Equal(t, "Bearer tk_abc", r.header.Get("Authorization"))
	require.Equal(t, "text/plain; charset=utf-8", r.header.Get("Content-Type"))

	send(t, Channel{Name: "push", Kind: Ntfy, URL: url + "/sitewatch-alerts"}, true)
	r = <-got
	require.Empty(t, r.header.Get("Authorization"))
	require.Equal(t, "green_circle", r.header.Get("Tags"))
}
