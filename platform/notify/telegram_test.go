package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testBotToken = "123456789:AAE-test_token_0123456789abcdefghijkl"

// The Bot API's sendMessage: POST /bot<token>/sendMessage with the chat
// and the line as plain text; a group's id as a number, a channel's @name
// as a string.
func TestTelegramSendMessage(t *testing.T) {
	api, got := receiver(t, http.StatusOK)
	chURL, err := TelegramURL(api, "-1001234567890")
	require.NoError(t, err)
	send(t, Channel{Name: "tg", Kind: Telegram, URL: chURL, Secret: testBotToken}, false)
	r := <-got
	require.Equal(t, "POST", r.method)
	require.Equal(t, "/bot"+testBotToken+"/sendMessage", r.path)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, float64(-1001234567890), r.body["chat_id"])
	require.Equal(t, "\U0001F534 https://shop.example.com/ is DOWN (incident 42): http_status — status 503 [eu-west, us-east]", r.body["text"])
	require.Equal(t, true, r.body["disable_web_page_preview"])
	require.NotContains(t, r.body, "parse_mode", "a site's text is never read as markup")

	chURL, err = TelegramURL(api+"/", "@sitewatch_alerts")
	require.NoError(t, err)
	send(t, Channel{Name: "tg", Kind: Telegram, URL: chURL, Secret: testBotToken}, true)
	r = <-got
	require.Equal(t, "@sitewatch_alerts", r.body["chat_id"])
	require.Contains(t, r.body["text"], "\u2705 https://shop.example.com/ is fine again")
}

// A refused message (Telegram answers 4xx with a description) is an
// error naming the host and the answer, never the token in the path.
func TestTelegramErrorsNeverHoldTheToken(t *testing.T) {
	api, _ := receiver(t, http.StatusUnauthorized)
	chURL, err := TelegramURL(api, "42")
	require.NoError(t, err)
	typ, in := incidentEvent(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = Send(ctx, Client(), Channel{Name: "tg", Kind: Telegram, URL: chURL, Secret: testBotToken}, "e1", typ, in)
	require.ErrorContains(t, err, "401")
	require.NotContains(t, err.Error(), testBotToken)

	// Nobody listening: net/http's error would carry the whole URL.
	chURL, err = TelegramURL("http://127.0.0.1:1", "42")
	require.NoError(t, err)
	err = Send(ctx, Client(), Channel{Name: "tg", Kind: Telegram, URL: chURL, Secret: testBotToken}, "e1", typ, in)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "AAE-test_token")

	err = Send(ctx, Client(), Channel{Name: "tg", Kind: Telegram, URL: chURL}, "e1", typ, in)
	require.ErrorContains(t, err, "needs its key as the secret")

	// A receiver (a proxy in front of the Bot API, say) that echoes the
	// path in its answer: the answer is quoted, the token is not.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no route for "+r.URL.Path, http.StatusBadGateway)
	}))
	defer echo.Close()
	chURL, err = TelegramURL(echo.URL, "42")
	require.NoError(t, err)
	err = Send(ctx, Client(), Channel{Name: "tg", Kind: Telegram, URL: chURL, Secret: testBotToken}, "e1", typ, in)
	require.ErrorContains(t, err, "no route for /bot[secret]/sendMessage")
	require.NotContains(t, err.Error(), "AAE-test_token")
}

func TestTelegramSettings(t *testing.T) {
	for _, chat := range []string{"42", "-1001234567890", "@sitewatch_alerts"} {
		u, err := TelegramURL("", chat)
		require.NoError(t, err, chat)
		api, got, err := ParseTelegramURL(u)
		require.NoError(t, err)
		require.Equal(t, TelegramAPI, api)
		require.Equal(t, chat, got)
	}
	_, err := TelegramURL("", "@ab")
	require.ErrorContains(t, err, `telegram "@ab": want a chat id`)
	_, err = TelegramURL("ftp://x", "42")
	require.ErrorContains(t, err, `telegram-api "ftp://x"`)
	require.NoError(t, CheckTelegramToken(testBotToken))
	err = CheckTelegramToken("not-a-token")
	require.ErrorContains(t, err, "not a Telegram bot token")
	require.NotContains(t, err.Error(), "not-a-token")
}
