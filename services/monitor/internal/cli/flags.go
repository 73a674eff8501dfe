package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// siteFlags are the flags of `sites add` and `sites update`. Only the flags
// given on the command line are applied, so update changes just those.
type siteFlags struct {
	method, expect, interval, timeout, topic, regions, name, send, degradedAfter string
	failureThreshold, successThreshold, quorum, tlsWarningDays                   int
	headers, match, notMatch, channels, conditions                               listFlag
	enabled, disabled                                                            bool
	kind                                                                         string // add only
}

func (f *siteFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.method, "method", site.DefaultMethod, "HTTP method")
	fs.StringVar(&f.send, "send", "", `tcp:// and tls:// sites: text written once connected (\r, \n, \t and \\ are escapes), e.g. 'PING\r\n'; --match then matches the reply`)
	fs.Var(&f.headers, "header", "request header `Name: value`; repeat for more; --header= clears them")
	fs.StringVar(&f.expect, "expect", site.DefaultExpect, "expected status codes, e.g. 200-399, 2xx,301, 200,204")
	fs.Var(&f.match, "match", "RE2 `regex` the body must match; repeat for more (all must match); --match= clears them")
	fs.Var(&f.match, "regex", "the same as --match")
	fs.Var(&f.notMatch, "not-match", "RE2 `regex` the body must not match; repeat for more; --not-match= clears them")
	fs.Var(&f.conditions, "condition", `condition on the response, e.g. '$.status == "UP"', '$.items.length > 0', 'header.Content-Type contains "json"'; repeat for more; --condition= clears them`)
	fs.StringVar(&f.degradedAfter, "degraded-after", "", "a passing check slower than this marks the site degraded, not down, e.g. 800ms; 0 for no limit")
	fs.StringVar(&f.interval, "interval", site.DefaultInterval.String(), "time between checks, e.g. 30s, 5m")
	fs.StringVar(&f.timeout, "timeout", site.DefaultTimeout.String(), "time a check may take, body included (at most the interval)")
	fs.StringVar(&f.topic, "topic", site.DefaultTopic, "Kafka topic for this site's results")
	fs.StringVar(&f.name, "name", "", "display name shown instead of the URL (status page); --name= removes it")
	fs.StringVar(&f.regions, "regions", "", "comma-separated regions that check the site, e.g. eu-west,us-east; --regions= for every region")
	fs.IntVar(&f.failureThreshold, "failure-threshold", site.DefaultThreshold, "failed checks in a row before a region says the site is down")
	fs.IntVar(&f.successThreshold, "success-threshold", site.DefaultThreshold, "passing checks in a row before a region says it is up again")
	fs.IntVar(&f.quorum, "quorum", 0, "regions that must agree the site is down (0: a majority)")
	fs.IntVar(&f.tlsWarningDays, "tls-warning-days", site.DefaultTLSWarningDays, "open a warning when the TLS certificate expires within this many days (0: never)")
	fs.Var(&f.channels, "channel", "notification `channel` of the site's incidents; repeat for more; --channel= for the default channels")
	fs.BoolVar(&f.enabled, "enabled", false, "check the site")
	fs.BoolVar(&f.disabled, "disabled", false, "keep the site but do not check it")
}

// apply sets on s the fields whose flags are in given, and returns every
// value that cannot be parsed, each a *site.FieldError.
func (f *siteFlags) apply(s *site.Site, given map[string]bool) error {
	var errs []error
	if given["method"] {
		s.Method = strings.ToUpper(f.method)
	}
	if given["header"] {
		s.Headers = nil
		for _, h := range f.headers.values() {
			name, value, ok := strings.Cut(h, ":")
			if !ok {
				errs = append(errs, &site.FieldError{Field: "header", Value: h, Msg: "want Name: value"})
				continue
			}
			if s.Headers == nil {
				s.Headers = map[string]string{}
			}
			s.Headers[strings.TrimSpace(name)] = strings.TrimSpace(value)
		}
	}
	if given["expect"] {
		s.Expect = f.expect
	}
	if given["send"] {
		v, err := unescape(f.send)
		if err != nil {
			errs = append(errs, &site.FieldError{Field: "send", Value: f.send, Msg: err.Error()})
		}
		s.Send = v
	}
	if given["match"] || given["regex"] {
		s.MustMatch = f.match.values()
	}
	if given["not-match"] {
		s.MustNotMatch = f.notMatch.values()
	}
	if given["condition"] {
		s.Conditions = f.conditions.values()
	}
	if given["degraded-after"] {
		d, err := parseLimit("degraded-after", f.degradedAfter)
		errs = append(errs, err)
		s.DegradedAfter = d
	}
	for _, d := range []struct {
		name string
		raw  string
		to   *time.Duration
	}{{"interval", f.interval, &s.Interval}, {"timeout", f.timeout, &s.Timeout}} {
		if given[d.name] {
			v, err := parseDuration(d.name, d.raw)
			errs = append(errs, err)
			*d.to = v
		}
	}
	if given["name"] {
		s.Name = strings.TrimSpace(f.name)
	}
	if given["topic"] {
		s.Topic = f.topic
	}
	for _, n := range []struct {
		name string
		v    int
		to   *int
	}{{"failure-threshold", f.failureThreshold, &s.FailureThreshold}, {"success-threshold", f.successThreshold, &s.SuccessThreshold},
		{"quorum", f.quorum, &s.Quorum}, {"tls-warning-days", f.tlsWarningDays, &s.TLSWarningDays}} {
		if !given[n.name] {
			continue
		}
		if n.v < 0 || (n.v == 0 && strings.HasSuffix(n.name, "threshold")) {
			errs = append(errs, &site.FieldError{Field: n.name, Value: fmt.Sprint(n.v), Msg: "must be positive"})
			continue
		}
		*n.to = n.v
	}
	if given["regions"] {
		s.Regions = nil
		for _, r := range strings.Split(f.regions, ",") {
			if r = strings.TrimSpace(r); r != "" {
				s.Regions = append(s.Regions, r)
			}
		}
	}
	switch {
	case given["enabled"] && given["disabled"]:
		errs = append(errs, &site.FieldError{Field: "enabled", Value: "--enabled --disabled", Msg: "give one of them"})
	case given["enabled"]:
		s.Enabled = f.enabled
	case given["disabled"]:
		s.Enabled = !f.disabled
	}
	return errors.Join(errs...)
}

// parseDuration parses a duration given on purpose: zero or less is an
// error, not "use the default".
func parseDuration(field, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, &site.FieldError{Field: field, Value: v, Msg: "not a duration; use a number with a unit, e.g. 30s, 5m, 1h"}
	}
	if d <= 0 {
		return 0, &site.FieldError{Field: field, Value: v, Msg: "must be positive"}
	}
	return d, nil
}

// parseLimit is parseDuration where 0 means no limit.
func parseLimit(field, v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	return parseDuration(field, v)
}

// listFlag collects a repeated flag; an empty value stands for "none".
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ", ") }

func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func (l listFlag) values() []string {
	var out []string
	for _, v := range l {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// unescape turns the escapes \r, \n, \t and \\ of a --send value into
// the bytes they name; any other backslash is an error, so a typo is not sent.
func unescape(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			b.WriteByte(v[i])
			continue
		}
		if i+1 == len(v) {
			return "", errors.New(`ends in a lone \ (write \\ for a backslash)`)
		}
		i++
		switch v[i] {
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case '\\':
			b.WriteByte('\\')
		default:
			return "", fmt.Errorf(`unknown escape \%c: want \r, \n, \t or \\`, v[i])
		}
	}
	return b.String(), nil
}

// parseNamed parses "NAME [flags]", the arguments of `group cmd` (add and
// update of channels and pages): the name (what it is called in the
// error: NAME, SLUG) and the flags given. code is ExitOK, or ExitUsage
// once the problem is printed.
func parseNamed(group, cmd, what string, args []string, register func(*flag.FlagSet), stderr io.Writer) (name string, given map[string]bool, code int) {
	fs := flag.NewFlagSet(group+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	register(fs)
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "%s %s: want a %s first\n", group, cmd, what)
		return "", nil, ExitUsage
	}
	if err := fs.Parse(args[1:]); err != nil {
		return "", nil, ExitUsage
	}
	if err := command.NoArgs(fs.Args()); err != nil {
		fmt.Fprintf(stderr, "%s %s: %v\n", group, cmd, err)
		return "", nil, ExitUsage
	}
	given = map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	return args[0], given, ExitOK
}

// exportPath is where export writes: the FILE argument, or "" (standard
// output) for none or "-".
func exportPath(args []string) string {
	if len(args) == 1 && args[0] != "-" {
		return args[0]
	}
	return ""
}
