// Package cli is the monitor's `sites` command: add, list, show, update,
// remove, import and export the sites the monitor checks. Every input is
// validated before anything is written, and errors name the field at fault.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// Exit codes, as every sitewatch command has them.
const (
	ExitOK    = command.ExitOK
	ExitError = command.ExitError // the command was fine but failed (database down, no such site)
	ExitUsage = command.ExitUsage // the command or its input is wrong; nothing was written
)

// SiteStore is what the sites command needs.
type SiteStore interface {
	AddSites(ctx context.Context, sites []site.Site) ([]site.Site, error)
	Sites(ctx context.Context, enabledOnly bool) ([]site.Site, error)
	Site(ctx context.Context, id int64) (site.Site, error)
	UpdateSite(ctx context.Context, id int64, change func(*site.Site)) (site.Site, error)
	RemoveSite(ctx context.Context, id int64) error
	SetSiteChannels(ctx context.Context, id int64, names []string) error
	SiteChannels(ctx context.Context, id int64) ([]string, error)
	RotatePingToken(ctx context.Context, id int64) (string, error)
}

// Usage describes the sites command.
const Usage = `usage:
  monitor sites add URL [flags]        add a site (flags below); URL is what to check:
                                         http(s)://host/path  a request: status, body, timings
                                         tcp://host:port      a connection (and --send, --match)
                                         tls://host:port      the same over TLS: certificate
                                                              (expiry, chain, host name), version, cipher
                                         dns://[resolver]/name[?type=MX&answer=10+mx.example.com]
                                                              a query: rcode, answers (any, or
                                                              &answers=all), &ad=1 for DNSSEC;
                                                              dns:///name asks the system's resolver
                                         grpc://host:port[/service], grpcs:// over TLS
                                                              the standard health check: SERVING
                                         icmp://host[?count=N]  N echo requests (3): loss, round trips
                                         heartbeat://name[?grace=D]  the job reports in: a ping
                                                              (POST /ping/<token> on a monitor's
                                                              -ping-addr) at least every interval,
                                                              late by at most the grace (1m); /start,
                                                              /fail and /<exit status> too; the token
                                                              is printed once
  monitor sites add NAME --kind heartbeat   the same as heartbeat://NAME
  monitor sites update ID [flags]      change only the given fields
  monitor sites list                   one line per site
  monitor sites show ID                one site, as YAML
  monitor sites remove ID
  monitor sites ping-token ID          give a heartbeat site a new ping token (the old one stops working)
  monitor sites import FILE|-          add every site of a YAML file, all or nothing
  monitor sites export [FILE|-]        write every site as YAML

flags of add and update:
  --send TEXT           tcp and tls: text written once connected (\r \n \t \\ escapes); the
                        reply is read until every --match regex matches (with none: its first bytes)
  --method M            HTTP method (GET)
  --header 'Name: v'    request header; repeat for more; --header= clears
  --expect CODES        expected status codes: 200-399 (default), 2xx,301, 200,204
  --match RE            RE2 regex the body must match; repeat for more; --match= clears (alias --regex)
  --not-match RE        RE2 regex the body must not match; repeat for more
  --condition EXPR      http(s): a condition on the response, checked after the status and regexes;
                        repeat for more; --condition= clears. A JSON path, an operator
                        (== != < <= > >= contains) and a JSON literal, or header.Name:
                          '$.status == "UP"'  '$.items.length > 0'  '$.checks[0].latency_ms < 300'
                          '$.error == null' (absent or null)  'header.Content-Type contains "json"'
  --degraded-after D    a passing check slower than D marks the site degraded, not down (0: no limit)
  --interval D          time between checks (1m; at least 1s)
  --timeout D           time a check may take, body included (10s; at most the interval)
  --topic T             Kafka topic of the results (sitewatch.checks)
  --regions R1,R2       regions that check the site (default: every region); --regions= resets
  --failure-threshold N failed checks in a row before a region says down (2)
  --success-threshold N passing checks in a row before it says up again (2)
  --quorum N            regions that must agree the site is down (0: a majority)
  --tls-warning-days N  warn when the certificate expires within N days (14; 0: never)
  --channel NAME        notification channel; repeat for more; --channel= for the defaults
  --enabled, --disabled check the site or not
`

// Env is what the command talks to: open is called only once the input is
// known to be valid.
type Env struct {
	Open   func() (SiteStore, error)
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// PingURL is the monitors' ping listener as heartbeat jobs reach it
	// (https://ping.example.com), printed with new ping tokens; empty
	// prints a placeholder.
	PingURL string
}

// pingURL is the URL a heartbeat job calls with token.
func (env Env) pingURL(token string) string {
	base := env.PingURL
	if base == "" {
		base = "http://MONITOR:PING_PORT"
	}
	return strings.TrimSuffix(base, "/") + "/ping/" + token
}

// Sites runs `sites args...` and returns the process exit code.
func Sites(ctx context.Context, args []string, env Env) int {
	cmds := map[string]command.Func{}
	for name, run := range map[string]func(context.Context, []string, Env) int{
		"add": add, "update": update, "list": list, "ls": list, "show": show,
		"remove": remove, "rm": remove, "import": importSites, "export": exportSites, "ping-token": rotatePingToken,
	} {
		cmds[name] = func(ctx context.Context, args []string, _, _ io.Writer) int { return run(ctx, args, env) }
	}
	return command.Dispatch(ctx, "sites", "", Usage, cmds, args, env.Stdout, env.Stderr)
}

// failure reports err of command cmd and returns its exit code: a site
// that failed validation is a usage error, anything else a failure.
func failure(env Env, cmd string, err error) int {
	var invalid *site.InvalidError
	var field *site.FieldError
	if errors.As(err, &invalid) || errors.As(err, &field) {
		if invalid != nil {
			err = invalid
		}
		fmt.Fprintf(env.Stderr, "sites %s: invalid site, nothing written:\n  %s\n", cmd,
			strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return ExitUsage
	}
	fmt.Fprintf(env.Stderr, "sites %s: %v\n", cmd, err)
	return ExitError
}

// parseSiteFlags parses the flags of add and update and returns the
// positional arguments and which flags were given.
func parseSiteFlags(cmd string, args []string, f *siteFlags, env Env) ([]string, map[string]bool, bool) {
	fs := flag.NewFlagSet("sites "+cmd, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	f.register(fs)
	if cmd == "add" {
		fs.StringVar(&f.kind, "kind", "", "heartbeat: NAME is a heartbeat's name (heartbeat://NAME); the other kinds are named by the URL's scheme")
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return nil, nil, false
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	return pos, given, true
}

func add(ctx context.Context, args []string, env Env) int {
	var f siteFlags
	pos, given, ok := parseSiteFlags("add", args, &f, env)
	if !ok {
		return ExitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintf(env.Stderr, "sites add: want exactly one URL, got %d arguments\n%s", len(pos), Usage)
		return ExitUsage
	}
	s := site.Site{URL: pos[0], Enabled: true, TLSWarningDays: site.DefaultTLSWarningDays}
	if given["kind"] {
		switch {
		case f.kind != site.KindHeartbeat:
			fmt.Fprintf(env.Stderr, "sites add: --kind %q: want heartbeat; the other kinds are named by the URL's scheme (https://, tcp://, dns://...)\n", f.kind)
			return ExitUsage
		case !strings.Contains(s.URL, "://"):
			s.URL = "heartbeat://" + s.URL
		case s.Kind() != site.KindHeartbeat:
			fmt.Fprintf(env.Stderr, "sites add: --kind heartbeat with a %s:// URL: give the heartbeat's name, or heartbeat://NAME\n", s.Kind())
			return ExitUsage
		}
	}
	err := f.apply(&s, given)
	if err == nil {
		s = s.WithDefaults()
		err = s.Validate()
	}
	if err != nil {
		return failure(env, "add", &site.InvalidError{Index: -1, URL: s.URL, Err: err})
	}
	st, err := env.Open()
	if err != nil {
		return failure(env, "add", err)
	}
	added, err := st.AddSites(ctx, []site.Site{s})
	if err != nil {
		return failure(env, "add", err)
	}
	if given["channel"] {
		if err := st.SetSiteChannels(ctx, added[0].ID, f.channels.values()); err != nil {
			return failure(env, "add", fmt.Errorf("site %d added, its channels not set: %w", added[0].ID, err))
		}
	}
	fmt.Fprintf(env.Stdout, "added site %d: %s every %s\n", added[0].ID, added[0].URL, added[0].Interval)
	printPingTokens(env, added)
	return ExitOK
}

// printPingTokens shows the ping token of each new heartbeat site: the
// only time it is shown (the database keeps its hash).
func printPingTokens(env Env, sites []site.Site) {
	for _, s := range sites {
		if s.PingToken != "" {
			fmt.Fprintf(env.Stdout, "site %d (%s): ping token %s\n  its job calls: curl -fsS -m 10 --retry 5 -X POST %s\n"+
				"  (shown once: keep it secret; monitor sites ping-token %d makes a new one)\n", s.ID, s.URL, s.PingToken, env.pingURL(s.PingToken), s.ID)
			if env.PingURL == "" {
				fmt.Fprintln(env.Stdout, "  (MONITOR:PING_PORT stands for a monitor's -ping-addr; give -ping-url or MONITOR_PING_URL to print it)")
			}
		}
	}
}

func rotatePingToken(ctx context.Context, args []string, env Env) int {
	return onSite(ctx, "ping-token", args, env, func(st SiteStore, id int64) error {
		token, err := st.RotatePingToken(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "site %d: new ping token %s (the old one no longer works)\n  its job calls: curl -fsS -m 10 --retry 5 -X POST %s\n",
			id, token, env.pingURL(token))
		return nil
	})
}

func update(ctx context.Context, args []string, env Env) int {
	var f siteFlags
	pos, given, ok := parseSiteFlags("update", args, &f, env)
	if !ok {
		return ExitUsage
	}
	if len(pos) != 1 {
		fmt.Fprintf(env.Stderr, "sites update: want exactly one site ID, got %d arguments\n%s", len(pos), Usage)
		return ExitUsage
	}
	id, ok := parseID(env, "update", pos[0])
	if !ok {
		return ExitUsage
	}
	if len(given) == 0 {
		fmt.Fprintf(env.Stderr, "sites update: nothing to change; give at least one flag\n%s", Usage)
		return ExitUsage
	}
	// Flags that do not parse are refused before the database is touched.
	if err := f.apply(&site.Site{}, given); err != nil {
		return failure(env, "update", &site.InvalidError{Index: -1, Err: err})
	}
	st, err := env.Open()
	if err != nil {
		return failure(env, "update", err)
	}
	updated, err := st.UpdateSite(ctx, id, func(s *site.Site) { _ = f.apply(s, given) })
	if err != nil {
		return failure(env, "update", err)
	}
	if given["channel"] {
		if err := st.SetSiteChannels(ctx, id, f.channels.values()); err != nil {
			return failure(env, "update", err)
		}
	}
	fmt.Fprintf(env.Stdout, "updated site %d: %s every %s\n", updated.ID, updated.URL, updated.Interval)
	return ExitOK
}

func list(ctx context.Context, args []string, env Env) int {
	if len(args) != 0 {
		fmt.Fprintf(env.Stderr, "sites list: takes no arguments\n%s", Usage)
		return ExitUsage
	}
	sites, err := allSites(ctx, env)
	if err != nil {
		return failure(env, "list", err)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tURL\tMETHOD\tINTERVAL\tTIMEOUT\tEXPECT\tREGEXES\tTOPIC\tREGIONS\tENABLED")
	for _, s := range sites {
		regions := "all"
		if len(s.Regions) > 0 {
			regions = strings.Join(s.Regions, ",")
		}
		method, expect := s.Method, s.Expect
		if s.Kind() != site.KindHTTP {
			method, expect = "-", "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\n", s.ID, command.Escape(s.URL), method, duration(s.Interval),
			duration(s.Timeout), expect, command.Escape(regexSummary(s)), s.Topic, regions, s.Enabled)
	}
	_ = tw.Flush()
	return ExitOK
}

// regexSummary is "+must -mustnot ..." or "-".
func regexSummary(s site.Site) string {
	var parts []string
	for _, re := range s.MustMatch {
		parts = append(parts, "+"+re)
	}
	for _, re := range s.MustNotMatch {
		parts = append(parts, "-"+re)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func show(ctx context.Context, args []string, env Env) int {
	return onSite(ctx, "show", args, env, func(st SiteStore, id int64) error {
		s, err := st.Site(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "# site %d, updated %s (header values that look like credentials masked; export shows them)\n",
			s.ID, s.Updated.UTC().Format("2006-01-02 15:04:05Z"))
		s.Headers = maskCredentials(s.Headers)
		if err := writeYAML("", env.Stdout, siteFileOf([]site.Site{s})); err != nil {
			return err
		}
		channels, err := st.SiteChannels(ctx, id)
		if err != nil {
			return err
		}
		if len(channels) == 0 {
			channels = []string{"(the default channels)"}
		}
		fmt.Fprintf(env.Stdout, "# channels: %s\n", strings.Join(channels, ", "))
		return nil
	})
}

// credentialHeader matches header names whose values are secrets.
var credentialHeader = regexp.MustCompile(`(?i)(authorization|cookie|token|secret|password|api[-_]?key|auth)`)

// maskCredentials returns headers with the values of credential-like
// headers replaced, for output read over shoulders and pasted into tickets.
func maskCredentials(headers map[string]string) map[string]string {
	out := make(map[string]string, len(headers))
	for k, v := range headers {
		if credentialHeader.MatchString(k) {
			v = "xxxxx"
		}
		out[k] = v
	}
	return out
}

func remove(ctx context.Context, args []string, env Env) int {
	return onSite(ctx, "remove", args, env, func(st SiteStore, id int64) error {
		if err := st.RemoveSite(ctx, id); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "removed site %d\n", id)
		return nil
	})
}

// onSite runs a command whose only argument is a site ID.
func onSite(ctx context.Context, cmd string, args []string, env Env, do func(SiteStore, int64) error) int {
	if len(args) != 1 {
		fmt.Fprintf(env.Stderr, "sites %s: want exactly one site ID\n%s", cmd, Usage)
		return ExitUsage
	}
	id, ok := parseID(env, cmd, args[0])
	if !ok {
		return ExitUsage
	}
	st, err := env.Open()
	if err == nil {
		err = do(st, id)
	}
	if err != nil {
		return failure(env, cmd, err)
	}
	return ExitOK
}

func importSites(ctx context.Context, args []string, env Env) int {
	if len(args) != 1 {
		fmt.Fprintf(env.Stderr, "sites import: want one FILE, or - for standard input\n%s", Usage)
		return ExitUsage
	}
	in := env.Stdin
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			fmt.Fprintf(env.Stderr, "sites import: %v\n", err)
			return ExitUsage
		}
		defer func() { _ = f.Close() }()
		in = f
	}
	sites, err := readSites(in)
	if err != nil {
		failure(env, "import", err)
		return ExitUsage // the file is wrong, not the database
	}
	st, err := env.Open()
	if err != nil {
		return failure(env, "import", err)
	}
	added, err := st.AddSites(ctx, sites)
	if err != nil {
		return failure(env, "import", err)
	}
	fmt.Fprintf(env.Stdout, "imported %d sites (ids %d..%d)\n", len(added), added[0].ID, added[len(added)-1].ID)
	printPingTokens(env, added)
	return ExitOK
}

func exportSites(ctx context.Context, args []string, env Env) int {
	if len(args) > 1 {
		fmt.Fprintf(env.Stderr, "sites export: want at most one FILE\n%s", Usage)
		return ExitUsage
	}
	sites, err := allSites(ctx, env)
	if err != nil {
		return failure(env, "export", err)
	}
	// Headers may hold credentials: the file is for its owner only.
	if err := writeYAML(exportPath(args), env.Stdout, siteFileOf(sites)); err != nil {
		return failure(env, "export", err)
	}
	return ExitOK
}

// allSites opens the store and lists every site, enabled or not.
func allSites(ctx context.Context, env Env) ([]site.Site, error) {
	st, err := env.Open()
	if err != nil {
		return nil, err
	}
	return st.Sites(ctx, false)
}

func parseID(env Env, cmd, arg string) (int64, bool) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		fmt.Fprintf(env.Stderr, "sites %s: ID %q: want a positive integer (see `monitor sites list`)\n", cmd, arg)
		return 0, false
	}
	return id, true
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("add URL --match R" as well as "add --match R URL").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
