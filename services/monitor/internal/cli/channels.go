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
	RemoveChannel(ctx context.Context, name string) error
}

// ChannelsUsage describes the channels command.
const ChannelsUsage = `usage:
  monitor channels add NAME --webhook URL [--secret-file FILE] [--default]
  monitor channels add NAME --slack URL [--default]
  monitor channels add NAME --email smtp://[user@]host:587 --from ADDR --to ADDR[,ADDR] [--secret-file FILE] [--default]
  monitor channels list
  monitor channels remove NAME
  monitor channels test NAME        send a test notification now

A webhook gets the incident's CloudEvent as JSON, signed: header X-Sitewatch-Signature is
"sha256=" and the hex HMAC-SHA256 of the body with the channel's secret (SITEWATCH_CHANNEL_SECRET
or --secret-file; never a flag value, which would show in ps); header Idempotency-Key is the
event id. E-mail goes by SMTP with STARTTLS (required unless the server is on this machine) and
AUTH PLAIN as the URL's user with the secret as password. Sites choose channels with sites add|update --channel NAME; a site that names none
uses the --default channels.
`

var channelName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

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
	return command.Dispatch(ctx, "channels", "", ChannelsUsage, map[string]command.Func{
		"add": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			fs := flag.NewFlagSet("channels add", flag.ContinueOnError)
			fs.SetOutput(stderr)
			webhook := fs.String("webhook", "", "URL of a generic webhook")
			slack := fs.String("slack", "", "URL of a Slack-compatible incoming webhook")
			email := fs.String("email", "", "SMTP server as smtp://[user@]host:port")
			from := fs.String("from", "", "sender address of e-mail notifications")
			to := fs.String("to", "", "comma-separated recipients of e-mail notifications")
			secretFile := fs.String("secret-file", "", "file holding the webhook's signing secret")
			isDefault := fs.Bool("default", false, "used by every site that names no channels")
			if len(args) == 0 || strings.HasPrefix(args[0], "-") {
				return fail("add", errors.New("want a NAME first"), ExitUsage)
			}
			name := args[0]
			if err := fs.Parse(args[1:]); err != nil {
				return ExitUsage
			}
			ch := store.Channel{Name: name, IsDefault: *isDefault, Secret: os.Getenv("SITEWATCH_CHANNEL_SECRET")}
			var errs []error
			if !channelName.MatchString(name) {
				errs = append(errs, fmt.Errorf("name %q: want lower-case letters, digits, '-' and '_'", name))
			}
			given := 0
			for _, v := range []string{*webhook, *slack, *email} {
				if v != "" {
					given++
				}
			}
			switch {
			case given != 1:
				errs = append(errs, errors.New("give one of --webhook URL, --slack URL or --email smtp://HOST:PORT"))
			case *webhook != "":
				ch.Kind, ch.URL = notify.Webhook, *webhook
			case *slack != "":
				ch.Kind, ch.URL = notify.Slack, *slack
			default:
				q := url.Values{"from": {*from}, "to": {*to}}
				ch.Kind, ch.URL = notify.Email, *email+"?"+q.Encode()
				if _, err := notify.ParseMailURL(ch.URL); err != nil {
					errs = append(errs, err)
				}
			}
			if u, err := url.Parse(ch.URL); ch.Kind != notify.Email && ch.URL != "" &&
				(err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
				errs = append(errs, fmt.Errorf("url %q: want an http or https URL", ch.URL))
			}
			if *secretFile != "" {
				b, err := os.ReadFile(*secretFile)
				if err != nil {
					errs = append(errs, fmt.Errorf("secret-file: %w", err))
				}
				ch.Secret = strings.TrimSpace(string(b))
			}
			if err := errors.Join(append(errs, command.NoArgs(fs.Args()))...); err != nil {
				return fail("add", fmt.Errorf("nothing written:\n  %w", err), ExitUsage)
			}
			return withStore("add", func(st ChannelStore) error {
				if err := st.AddChannel(ctx, ch); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "added channel %s (%s)\n", ch.Name, ch.Kind)
				return nil
			})
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
				fmt.Fprintln(tw, "NAME\tKIND\tURL\tSIGNED\tDEFAULT\tSITES")
				for _, c := range chs {
					// The URL of an incoming webhook is itself a credential: host only.
					host := "?"
					if u, err := url.Parse(c.URL); err == nil {
						host = u.Scheme + "://" + u.Host + "/…"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%t\t%d\n", c.Name, c.Kind, host, c.Secret != "", c.IsDefault, c.Sites)
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
				if err := notify.Send(ctx, notify.Client(), notify.Channel{Name: c.Name, Kind: c.Kind, URL: c.URL, Secret: c.Secret},
					ev.EventID, checkevent.IncidentOpenedType, payload); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "sent a test notification to %s\n", c.Name)
				return nil
			})
		},
	}, args, stdout, stderr)
}
