package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/sitewatch/sitewatch/platform/checkevent"
	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/platform/notify"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// ChannelStore is what the channels command needs.
type ChannelStore interface {
	AddChannel(ctx context.Context, ch store.Channel) error
	Channels(ctx context.Context, name string) ([]store.Channel, error)
	UpdateChannel(ctx context.Context, name string, change func(*store.Channel) error) (store.Channel, error)
	ImportChannels(ctx context.Context, chs []store.ChannelImport) (added, replaced int, err error)
	ChannelDeliveries(ctx context.Context, name string) (store.Deliveries, error)
	RemoveChannel(ctx context.Context, name string) error
}

// ChannelsUsage describes the channels command.
const ChannelsUsage = `usage:
  monitor channels add NAME --webhook URL [--secret-file FILE] [--default]
  monitor channels add NAME --slack URL [--default]
  monitor channels add NAME --email smtp://[user@]host:587 --from ADDR --to ADDR[,ADDR] [--secret-file FILE] [--default]
  monitor channels add NAME --pagerduty https://events.pagerduty.com/v2/enqueue --secret-file ROUTING-KEY-FILE
  monitor channels add NAME --opsgenie https://api.opsgenie.com --secret-file API-KEY-FILE
  monitor channels add NAME --alertmanager http://alertmanager:9093 [--secret-file BEARER-TOKEN-FILE]
  monitor channels add NAME --discord URL | --teams URL | --ntfy https://ntfy.sh/TOPIC [--secret-file TOKEN-FILE]
  monitor channels add NAME --telegram CHAT-ID|@CHANNEL --secret-file BOT-TOKEN-FILE [--telegram-api URL]
  monitor channels update NAME [any flag of add] [--no-secret] [--default=false]
  monitor channels list
  monitor channels show NAME        settings (secrets masked) and deliveries by status
  monitor channels remove NAME
  monitor channels test NAME        send a test notification now
  monitor channels import FILE|-    add or replace (by name) every channel of a YAML file, all or nothing
  monitor channels export [FILE|-]  write every channel as YAML (no secrets; the file is 0600)

A webhook gets the incident's CloudEvent as JSON, signed: header X-Sitewatch-Signature is
"sha256=" and the hex HMAC-SHA256 of the body with the channel's secret (SITEWATCH_CHANNEL_SECRET
or --secret-file; never a flag value, which would show in ps), and the Standard Webhooks way
(webhook-id, webhook-timestamp, webhook-signature "v1,<base64 HMAC of id.timestamp.body>"; a
secret "whsec_<base64>" is that key); header Idempotency-Key is the event id. E-mail goes by
SMTP with STARTTLS (required unless the server is on this machine) and AUTH PLAIN as the URL's
user with the secret as password. PagerDuty gets Events API v2 triggers and resolves, Opsgenie
alerts created and closed, Alertmanager alerts of its v2 API with startsAt and endsAt; each
folds repeats by the incident (dedup_key, alias, labels). Discord, Teams (an Adaptive Card)
and ntfy (title, priority and tags as headers) get one readable line, as Slack does, and so
does a Telegram chat, through a bot (its token from @BotFather is the secret; the chat's id, a
group's negative, or a public channel's @name). Sites choose channels with
sites add|update --channel NAME; a site that names none uses the --default channels.

update changes only the flags given; the secret stays unless --secret-file or --no-secret is
given. The YAML of import and export:

  channels:
    - name: ops
      webhook: https://hooks.example.com/sitewatch
      secret-file: /run/secrets/ops-webhook   # read at import; export never writes secrets
      default: true
    - name: mail
      email: smtp://alerts@mail.example.com:587
      from: sitewatch@example.com
      to: [oncall@example.com]

A channel in the file that exists is replaced, keeping its secret unless the entry has a
secret-file; channels not in the file are left alone. A failed delivery is listed, with its
reason, by sink deliveries list and sent again by sink deliveries retry.
`

var channelName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// channelSpec is a channel as the flags of add and update and the YAML of
// import and export give it; the YAML keys are the flags' names.
type channelSpec struct {
	Name    string `yaml:"name"`
	Webhook string `yaml:"webhook,omitempty"`
	Slack   string `yaml:"slack,omitempty"`
	Email   string `yaml:"email,omitempty"` // smtp://[user@]host:port
	// The alerting tools: each its API's URL, the key in secret-file.
	PagerDuty    string `yaml:"pagerduty,omitempty"`
	Opsgenie     string `yaml:"opsgenie,omitempty"`
	Alertmanager string `yaml:"alertmanager,omitempty"`
	// The chat and push services besides Slack: each its webhook or topic URL.
	Discord string `yaml:"discord,omitempty"`
	Teams   string `yaml:"teams,omitempty"`
	Ntfy    string `yaml:"ntfy,omitempty"`
	// A Telegram chat's id or @name, and the Bot API's base (default
	// https://api.telegram.org).
	Telegram    string   `yaml:"telegram,omitempty"`
	TelegramAPI string   `yaml:"telegram-api,omitempty"`
	From        string   `yaml:"from,omitempty"`
	To          []string `yaml:"to,omitempty"`
	SecretFile  string   `yaml:"secret-file,omitempty"`
	Default     bool     `yaml:"default,omitempty"`
}

// kindURL is one kind's URL field of a channelSpec; the kind's name is
// its flag's and its YAML key's.
type kindURL struct {
	kind string
	url  *string
}

// urls are s's URL fields, one per kind of channel.
func (s *channelSpec) urls() []kindURL {
	return []kindURL{{notify.Webhook, &s.Webhook}, {notify.Slack, &s.Slack}, {notify.Email, &s.Email},
		{notify.PagerDuty, &s.PagerDuty}, {notify.Opsgenie, &s.Opsgenie}, {notify.Alertmanager, &s.Alertmanager},
		{notify.Discord, &s.Discord}, {notify.Teams, &s.Teams}, {notify.Ntfy, &s.Ntfy}, {notify.Telegram, &s.Telegram}}
}

// channel checks s and returns the channel it describes, its secret read
// from SecretFile (or empty). The error joins one error per bad field,
// each naming it.
func (s channelSpec) channel() (store.Channel, error) {
	ch := store.Channel{Name: s.Name, IsDefault: s.Default}
	var errs []error
	if !channelName.MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("name %q: want lower-case letters, digits, '-' and '_' (at most 63)", s.Name))
	}
	given := 0
	for _, k := range s.urls() {
		if *k.url != "" {
			given++
			ch.Kind, ch.URL = k.kind, *k.url
		}
	}
	switch {
	case given != 1:
		errs = append(errs, errors.New("kind: give one of webhook URL, slack URL, email smtp://HOST:PORT, pagerduty URL, opsgenie URL, "+
			"alertmanager URL, discord URL, teams URL, ntfy URL or telegram CHAT"))
	case s.Email != "":
		u, err := url.Parse(s.Email)
		if err != nil || u.RawQuery != "" {
			errs = append(errs, errors.New("email: want smtp://[user@]host:port, with from and to given apart"))
			break
		}
		q := url.Values{"from": {s.From}, "to": {strings.Join(s.To, ",")}}
		ch.Kind, ch.URL = notify.Email, s.Email+"?"+q.Encode()
		if _, err := notify.ParseMailURL(ch.URL); err != nil {
			errs = append(errs, err)
		}
	case s.Telegram != "":
		u, err := notify.TelegramURL(s.TelegramAPI, s.Telegram)
		if err != nil {
			errs = append(errs, err)
		}
		ch.URL = u
	default:
		field := ch.Kind
		// The URL itself may be a credential (incoming webhooks): never echoed.
		if u, err := url.Parse(ch.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: want an http or https URL", field))
		} else if u.User != nil {
			errs = append(errs, fmt.Errorf("%s: no user or password in the URL; give a secret-file", field))
		}
	}
	if s.Email == "" && (s.From != "" || len(s.To) > 0) {
		errs = append(errs, errors.New("from, to: only for an email channel"))
	}
	if s.Telegram == "" && s.TelegramAPI != "" {
		errs = append(errs, errors.New("telegram-api: only for a telegram channel"))
	}
	if s.SecretFile != "" {
		b, err := os.ReadFile(s.SecretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret-file: %w", err))
		}
		ch.Secret = strings.TrimSpace(string(b))
		if err == nil && s.Telegram != "" {
			errs = append(errs, notify.CheckTelegramToken(ch.Secret))
		}
	}
	return ch, errors.Join(errs...)
}

// keyNeeded says what a channel of kind needs as its secret, when it
// cannot work without one.
func keyNeeded(kind string) error {
	if !notify.NeedsSecret(kind) {
		return nil
	}
	what := map[string]string{notify.PagerDuty: "the integration's routing key", notify.Opsgenie: "the API key",
		notify.Telegram: "the bot's token"}[kind]
	return fmt.Errorf("secret: a %s channel needs %s (SITEWATCH_CHANNEL_SECRET or --secret-file)", kind, what)
}

// specOf is the spec of a stored channel, without its secret.
func specOf(c store.Channel) channelSpec {
	s := channelSpec{Name: c.Name, Default: c.IsDefault}
	switch c.Kind {
	case notify.Email:
		base, query, _ := strings.Cut(c.URL, "?")
		s.Email = base
		if q, err := url.ParseQuery(query); err == nil {
			s.From = q.Get("from")
			for _, to := range strings.Split(q.Get("to"), ",") {
				if to = strings.TrimSpace(to); to != "" {
					s.To = append(s.To, to)
				}
			}
		}
	case notify.Telegram:
		if api, chat, err := notify.ParseTelegramURL(c.URL); err == nil {
			s.Telegram = chat
			if api != notify.TelegramAPI {
				s.TelegramAPI = api
			}
		}
	default:
		for _, k := range s.urls() {
			if k.kind == c.Kind {
				*k.url = c.URL
			}
		}
	}
	return s
}

// channelFlags are the flags of add and update.
type channelFlags struct {
	spec     channelSpec
	to       string
	noSecret bool
}

func (f *channelFlags) register(fs *flag.FlagSet, update bool) {
	fs.StringVar(&f.spec.Webhook, "webhook", "", "URL of a generic webhook")
	fs.StringVar(&f.spec.Slack, "slack", "", "URL of a Slack-compatible incoming webhook")
	fs.StringVar(&f.spec.Email, "email", "", "SMTP server as smtp://[user@]host:port")
	fs.StringVar(&f.spec.PagerDuty, "pagerduty", "", "PagerDuty's Events API v2 URL, https://events.pagerduty.com/v2/enqueue (the routing key is the secret)")
	fs.StringVar(&f.spec.Opsgenie, "opsgenie", "", "Opsgenie's API, https://api.opsgenie.com or https://api.eu.opsgenie.com (the API key is the secret)")
	fs.StringVar(&f.spec.Alertmanager, "alertmanager", "", "Alertmanager's URL, e.g. http://alertmanager:9093 (a bearer token, if any, is the secret)")
	fs.StringVar(&f.spec.Discord, "discord", "", "URL of a Discord channel's webhook")
	fs.StringVar(&f.spec.Teams, "teams", "", "URL of a Microsoft Teams Workflows webhook (When a Teams webhook request is received)")
	fs.StringVar(&f.spec.Ntfy, "ntfy", "", "URL of an ntfy topic, e.g. https://ntfy.sh/my-alerts (an access token, if any, is the secret)")
	fs.StringVar(&f.spec.Telegram, "telegram", "", "a Telegram chat's id (a group's is negative) or a public channel's @name (the bot's token is the secret)")
	fs.StringVar(&f.spec.TelegramAPI, "telegram-api", "", "the Telegram Bot API's base URL (default "+notify.TelegramAPI+")")
	fs.StringVar(&f.spec.From, "from", "", "sender address of e-mail notifications")
	fs.StringVar(&f.to, "to", "", "comma-separated recipients of e-mail notifications")
	fs.StringVar(&f.spec.SecretFile, "secret-file", "", "file holding the webhook's signing secret or the SMTP password")
	fs.BoolVar(&f.spec.Default, "default", false, "used by every site that names no channels")
	if update {
		fs.BoolVar(&f.noSecret, "no-secret", false, "remove the channel's secret")
	}
}

// apply sets on s what the flags in given say.
func (f *channelFlags) apply(s *channelSpec, given map[string]bool) {
	mine, flags := s.urls(), f.spec.urls()
	if slices.ContainsFunc(flags, func(k kindURL) bool { return given[k.kind] }) {
		// A new kind replaces the old one; two given: channel() says so.
		for i := range mine {
			*mine[i].url = *flags[i].url
		}
	}
	if s.Email == "" {
		s.From, s.To = "", nil
	}
	if s.Telegram == "" {
		s.TelegramAPI = ""
	}
	if given["telegram-api"] {
		s.TelegramAPI = f.spec.TelegramAPI
	}
	if given["from"] {
		s.From = f.spec.From
	}
	if given["to"] {
		s.To = nil
		for _, a := range strings.Split(f.to, ",") {
			if a = strings.TrimSpace(a); a != "" {
				s.To = append(s.To, a)
			}
		}
	}
	if given["secret-file"] {
		s.SecretFile = f.spec.SecretFile
	}
	if given["default"] {
		s.Default = f.spec.Default
	}
}

// Channels runs `channels args...` and returns the process exit code.
func Channels(ctx context.Context, args []string, open func() (ChannelStore, error), stdout, stderr io.Writer) int {
	fail := func(cmd string, err error, code int) int {
		fmt.Fprintf(stderr, "channels %s: %v\n", cmd, err)
		return code
	}
	withStore := func(cmd string, do func(ChannelStore) error) int {
		st, err := open()
		if err == nil {
			err = do(st)
		}
		if err != nil {
			return fail(cmd, err, ExitError)
		}
		return ExitOK
	}
	// named parses NAME [flags] into f and returns the name and the flags given.
	named := func(cmd string, args []string, update bool, f *channelFlags) (string, map[string]bool, int) {
		return parseNamed("channels", cmd, "NAME", args, func(fs *flag.FlagSet) { f.register(fs, update) }, stderr)
	}
	return command.Dispatch(ctx, "channels", "", ChannelsUsage, map[string]command.Func{
		"add": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			var f channelFlags
			name, given, code := named("add", args, false, &f)
			if code != ExitOK {
				return code
			}
			spec := channelSpec{Name: name}
			f.apply(&spec, given)
			ch, err := spec.channel()
			if err != nil {
				return fail("add", fmt.Errorf("nothing written:\n  %w", err), ExitUsage)
			}
			if spec.SecretFile == "" {
				ch.Secret = os.Getenv("SITEWATCH_CHANNEL_SECRET")
				if ch.Kind == notify.Telegram && ch.Secret != "" {
					if err := notify.CheckTelegramToken(ch.Secret); err != nil {
						return fail("add", fmt.Errorf("nothing written:\n  %w", err), ExitUsage)
					}
				}
			}
			if ch.Secret == "" {
				if err := keyNeeded(ch.Kind); err != nil {
					return fail("add", fmt.Errorf("nothing written:\n  %w", err), ExitUsage)
				}
			}
			return withStore("add", func(st ChannelStore) error {
				if err := st.AddChannel(ctx, ch); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "added channel %s (%s)\n", ch.Name, ch.Kind)
				return nil
			})
		},
		"update": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			var f channelFlags
			name, given, code := named("update", args, true, &f)
			if code != ExitOK {
				return code
			}
			if len(given) == 0 {
				return fail("update", errors.New("nothing to change: give at least one flag"), ExitUsage)
			}
			if given["secret-file"] && f.noSecret {
				return fail("update", errors.New("secret-file, no-secret: give one of them"), ExitUsage)
			}
			var invalid bool
			code = withStore("update", func(st ChannelStore) error {
				ch, err := st.UpdateChannel(ctx, name, func(c *store.Channel) error {
					spec := specOf(*c)
					f.apply(&spec, given)
					next, err := spec.channel()
					if err != nil {
						invalid = true
						return fmt.Errorf("nothing written:\n  %w", err)
					}
					switch {
					case f.noSecret:
						next.Secret = ""
					case spec.SecretFile == "":
						next.Secret = c.Secret
					}
					if next.Secret == "" {
						if err := keyNeeded(next.Kind); err != nil {
							invalid = true
							return fmt.Errorf("nothing written:\n  %w", err)
						}
					}
					*c = next
					return nil
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "updated channel %s (%s)\n", ch.Name, ch.Kind)
				return nil
			})
			if invalid {
				return ExitUsage
			}
			return code
		},
		"list": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) > 0 {
				return fail("list", errors.New("takes no arguments"), ExitUsage)
			}
			return withStore("list", func(st ChannelStore) error {
				chs, err := st.Channels(ctx, "")
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tKIND\tURL\tSECRET\tDEFAULT\tSITES")
				for _, c := range chs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%t\t%d\n", c.Name, c.Kind, command.Escape(maskedURL(c)), c.Secret != "", c.IsDefault, c.Sites)
				}
				return tw.Flush()
			})
		},
		"show": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) != 1 {
				return fail("show", errors.New("want exactly one NAME"), ExitUsage)
			}
			return withStore("show", func(st ChannelStore) error {
				chs, err := st.Channels(ctx, args[0])
				if err != nil {
					return err
				}
				d, err := st.ChannelDeliveries(ctx, args[0])
				if err != nil {
					return err
				}
				c, spec := chs[0], specOf(chs[0])
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "name:\t%s\nkind:\t%s\nurl:\t%s\n", c.Name, c.Kind, command.Escape(maskedURL(c)))
				if c.Kind == notify.Email {
					fmt.Fprintf(tw, "from:\t%s\nto:\t%s\n", command.Escape(spec.From), command.Escape(strings.Join(spec.To, ", ")))
				}
				secret := "none"
				if c.Secret != "" {
					secret = "set (never shown)"
				}
				fmt.Fprintf(tw, "secret:\t%s\ndefault:\t%t\nsites:\t%d\n", secret, c.IsDefault, c.Sites)
				fmt.Fprintf(tw, "deliveries:\t%d delivered, %d pending, %d failed, %d silenced\n", d.Delivered, d.Pending, d.Failed, d.Silenced)
				if d.LastFailedAt != nil && d.LastError != nil {
					fmt.Fprintf(tw, "last failure:\t%s: %s\n", d.LastFailedAt.UTC().Format(time.RFC3339), command.Escape(*d.LastError))
				}
				return tw.Flush()
			})
		},
		"remove": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) != 1 {
				return fail("remove", errors.New("want exactly one NAME"), ExitUsage)
			}
			return withStore("remove", func(st ChannelStore) error {
				if err := st.RemoveChannel(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "removed channel %s\n", args[0])
				return nil
			})
		},
		"test": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) != 1 {
				return fail("test", errors.New("want exactly one NAME"), ExitUsage)
			}
			return withStore("test", func(st ChannelStore) error {
				chs, err := st.Channels(ctx, args[0])
				if err != nil {
					return err
				}
				c := chs[0]
				ev := checkevent.Incident{SchemaVersion: checkevent.IncidentSchemaVersion, EventID: uuid.NewString(),
					URL: "https://example.com/sitewatch-test", Kind: checkevent.KindDown, State: "opened",
					OpenedAt: time.Now().UTC(), ErrorClass: "test", Error: "a test notification from monitor channels test"}
				payload, err := json.Marshal(ev)
				if err != nil {
					return err
				}
				ch := notify.Channel{Name: c.Name, Kind: c.Kind, URL: c.URL, Secret: c.Secret}
				if err := notify.Send(ctx, notify.Client(), ch, ev.EventID, checkevent.IncidentOpenedType, payload); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "sent a test notification to %s\n", c.Name)
				if c.Kind == notify.PagerDuty || c.Kind == notify.Opsgenie || c.Kind == notify.Alertmanager {
					// The alerting tools keep an alert open until resolved: resolve the test's.
					at := time.Now().UTC()
					ev.EventID, ev.State, ev.ResolvedAt, ev.Resolution = uuid.NewString(), "resolved", &at, "test"
					if payload, err = json.Marshal(ev); err != nil {
						return err
					}
					if err := notify.Send(ctx, notify.Client(), ch, ev.EventID, checkevent.IncidentResolvedType, payload); err != nil {
						return fmt.Errorf("resolving the test alert: %w", err)
					}
					fmt.Fprintf(stdout, "and resolved it\n")
				}
				return nil
			})
		},
		"import": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) != 1 {
				return fail("import", errors.New("want one FILE, or - for standard input"), ExitUsage)
			}
			chs, err := readChannelFile(args[0], os.Stdin)
			if err != nil {
				return fail("import", fmt.Errorf("nothing written: %w", err), ExitUsage)
			}
			return withStore("import", func(st ChannelStore) error {
				added, replaced, err := st.ImportChannels(ctx, chs)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "imported %d channels: %d added, %d replaced\n", len(chs), added, replaced)
				return nil
			})
		},
		"export": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) > 1 {
				return fail("export", errors.New("want at most one FILE"), ExitUsage)
			}
			return withStore("export", func(st ChannelStore) error {
				chs, err := st.Channels(ctx, "")
				if err != nil {
					return err
				}
				f := channelFile{Channels: make([]channelSpec, len(chs))}
				for i, c := range chs {
					f.Channels[i] = specOf(c)
				}
				// An incoming webhook's URL is a credential: the file is its owner's only.
				return writeYAML(exportPath(args), stdout, f)
			})
		},
	}, args, stdout, stderr)
}

// maskedURL is a channel's URL as list and show print it: the URL of an
// incoming webhook is itself a credential, so only its scheme and host;
// an e-mail server's with its user.
func maskedURL(c store.Channel) string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "?"
	}
	if c.Kind == notify.Email {
		return (&url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host}).String()
	}
	if c.Kind == notify.Telegram {
		// The chat is no secret (the bot's token is): say which one.
		if _, chat, err := notify.ParseTelegramURL(c.URL); err == nil {
			return u.Scheme + "://" + u.Host + " chat " + chat
		}
	}
	return u.Scheme + "://" + u.Host + "/…"
}
