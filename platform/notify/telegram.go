package notify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/sitewatch/sitewatch/platform/checkevent"
)

// Telegram is a Telegram chat's channel, through a bot: URL the Bot API's
// base with the chat (https://api.telegram.org?chat_id=-1001234567890, or
// chat_id=@channelname), Secret the bot's token (from @BotFather). The
// message is one readable line, as Slack's.
const Telegram = "telegram"

// TelegramAPI is the Bot API's base.
const TelegramAPI = "https://api.telegram.org"

var (
	// A chat's id (a group's or channel's is negative) or a public
	// channel's @name.
	telegramChat = regexp.MustCompile(`^(-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31})$`)
	// A bot's token: its id, a colon, and 35 letters, digits, - or _.
	telegramToken = regexp.MustCompile(`^[0-9]{1,20}:[A-Za-z0-9_-]{30,64}$`)
)

// TelegramURL is the channel URL for chat through the Bot API at api
// (TelegramAPI when empty); the error names what is wrong.
func TelegramURL(api, chat string) (string, error) {
	if api == "" {
		api = TelegramAPI
	}
	var errs []string
	if !telegramChat.MatchString(chat) {
		errs = append(errs, fmt.Sprintf("telegram %q: want a chat id (-1001234567890) or a channel's @name", chat))
	}
	u, err := url.Parse(api)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Sprintf("telegram-api %q: want the Bot API's http or https base URL, e.g. %s", api, TelegramAPI))
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return strings.TrimRight(api, "/") + "?" + url.Values{"chat_id": {chat}}.Encode(), nil
}

// ParseTelegramURL is a channel URL's Bot API base and chat.
func ParseTelegramURL(raw string) (api, chat string, err error) {
	base, query, _ := strings.Cut(raw, "?")
	q, err := url.ParseQuery(query)
	if err != nil || !telegramChat.MatchString(q.Get("chat_id")) {
		return "", "", fmt.Errorf("telegram: the channel's URL has no chat_id")
	}
	return base, q.Get("chat_id"), nil
}

// CheckTelegramToken says whether token looks like a bot's token; the
// error never holds it.
func CheckTelegramToken(token string) error {
	if !telegramToken.MatchString(token) {
		return fmt.Errorf("secret: not a Telegram bot token (want the id, a colon and the key, as @BotFather gives it)")
	}
	return nil
}

// telegramRequest is the sendMessage request of an incident event: where
// it goes (the token is in its path, so it is never logged: Send names
// only the host) and its body.
func telegramRequest(ch Channel, eventType string, incident []byte) (target string, body []byte, header http.Header, err error) {
	api, chat, err := ParseTelegramURL(ch.URL)
	if err != nil {
		return "", nil, nil, err
	}
	// https://core.telegram.org/bots/api#sendmessage: chat_id an integer or
	// an @name; text 1..4096 characters, plain (no parse_mode, so a site's
	// text is never read as markup).
	var chatID any = chat
	if n, err := strconv.ParseInt(chat, 10, 64); err == nil {
		chatID = n
	}
	// Telegram shows no :shortcode: emoji: the characters themselves.
	mark := "\U0001F534 " // red circle
	if eventType == checkevent.IncidentResolvedType {
		mark = "\u2705 " // check mark
	}
	body, err = json.Marshal(map[string]any{"chat_id": chatID, "text": cut(mark+plain(eventType, incident), 4096),
		"disable_web_page_preview": true})
	return api + "/bot" + ch.Secret + "/sendMessage", body, http.Header{}, err
}
