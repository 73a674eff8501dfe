package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// siteFile is the YAML of `sites import` and `sites export`. Keys are the
// names the flags of `sites add` use.
type siteFile struct {
	Sites []fileSite `yaml:"sites"`
}

type fileSite struct {
	URL      string            `yaml:"url"`
	Name     string            `yaml:"name,omitempty"`
	Send     string            `yaml:"send,omitempty"` // tcp:// and tls:// sites only
	Method   string            `yaml:"method,omitempty"`
	Headers  map[string]string `yaml:"headers,omitempty"`
	Expect   string            `yaml:"expect,omitempty"`
	Match    []string          `yaml:"match,omitempty"`
	NotMatch []string          `yaml:"not-match,omitempty"`
	// Conditions on an HTTP response; DegradedAfter its time limit.
	Conditions    []string `yaml:"conditions,omitempty"`
	DegradedAfter string   `yaml:"degraded-after,omitempty"`
	Interval      string   `yaml:"interval,omitempty"`
	Timeout       string   `yaml:"timeout,omitempty"`
	Topic         string   `yaml:"topic,omitempty"`
	Regions       []string `yaml:"regions,omitempty"` // default: every region

	FailureThreshold int   `yaml:"failure-threshold,omitempty"`
	SuccessThreshold int   `yaml:"success-threshold,omitempty"`
	Quorum           int   `yaml:"quorum,omitempty"`
	TLSWarningDays   *int  `yaml:"tls-warning-days,omitempty"` // default 14; 0: never
	Enabled          *bool `yaml:"enabled,omitempty"`          // default true
}

// MaxImportBytes bounds a site file: decoding YAML takes some 30 times
// the file's size in memory, so 4 MiB (about 13,000 sites) stays near
// 120 MiB.
const MaxImportBytes = 4 << 20

// decodeYAML reads a file of at most MaxImportBytes into v, refusing keys v
// does not have.
func decodeYAML(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return fmt.Errorf("reading YAML: %w", err)
	}
	if len(data) > MaxImportBytes {
		return fmt.Errorf("reading YAML: larger than %d MiB; split it into several imports", MaxImportBytes>>20)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading YAML: %w", err)
	}
	return nil
}

// readSites parses a site file and validates every site in it. The error
// is a *site.InvalidError naming the site's position, URL and field, or a
// YAML error with its line.
func readSites(r io.Reader) ([]site.Site, error) {
	var f siteFile
	if err := decodeYAML(r, &f); err != nil {
		return nil, err
	}
	if len(f.Sites) == 0 {
		return nil, errors.New("reading YAML: no sites (want a top-level `sites:` list)")
	}
	out := make([]site.Site, len(f.Sites))
	for i, fs := range f.Sites {
		s, err := fs.site()
		if err == nil {
			s = s.WithDefaults()
			err = s.Validate()
		}
		if err != nil {
			return nil, &site.InvalidError{Index: i, URL: fs.URL, Err: err}
		}
		out[i] = s
	}
	return out, nil
}

func (fs fileSite) site() (site.Site, error) {
	s := site.Site{URL: fs.URL, Name: fs.Name, Send: fs.Send, Method: fs.Method, Headers: fs.Headers, Expect: fs.Expect,
		MustMatch: fs.Match, MustNotMatch: fs.NotMatch, Conditions: fs.Conditions, Topic: fs.Topic, Regions: fs.Regions, Enabled: fs.Enabled == nil || *fs.Enabled,
		FailureThreshold: fs.FailureThreshold, SuccessThreshold: fs.SuccessThreshold, Quorum: fs.Quorum, TLSWarningDays: site.DefaultTLSWarningDays}
	if fs.TLSWarningDays != nil {
		s.TLSWarningDays = *fs.TLSWarningDays
	}
	var errs []error
	var err error
	if fs.Interval != "" {
		s.Interval, err = parseDuration("interval", fs.Interval)
		errs = append(errs, err)
	}
	if fs.Timeout != "" {
		s.Timeout, err = parseDuration("timeout", fs.Timeout)
		errs = append(errs, err)
	}
	if fs.DegradedAfter != "" {
		s.DegradedAfter, err = parseLimit("degraded-after", fs.DegradedAfter)
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

func toFile(s site.Site) fileSite {
	enabled := s.Enabled
	f := fileSite{URL: s.URL, Name: s.Name, Send: s.Send, Method: s.Method, Headers: maps.Clone(s.Headers), Expect: s.Expect,
		Match: s.MustMatch, NotMatch: s.MustNotMatch, Conditions: s.Conditions, Interval: duration(s.Interval), Timeout: duration(s.Timeout),
		Topic: s.Topic, Regions: s.Regions, Enabled: &enabled,
		FailureThreshold: s.FailureThreshold, SuccessThreshold: s.SuccessThreshold, Quorum: s.Quorum, TLSWarningDays: &s.TLSWarningDays}
	if s.Kind() != site.KindHTTP {
		f.Method, f.Expect = "", "" // only http(s) has them; the defaults on import
	}
	if s.DegradedAfter > 0 {
		f.DegradedAfter = duration(s.DegradedAfter)
	}
	return f
}

// siteFileOf is the site file of sites.
func siteFileOf(sites []site.Site) siteFile {
	f := siteFile{Sites: make([]fileSite, len(sites))}
	for i, s := range sites {
		f.Sites[i] = toFile(s)
	}
	return f
}

// writeYAML writes v as YAML to the file at path, created or truncated
// with mode 0600 (exports hold credentials: header values, webhook URLs),
// or to stdout when path is empty.
func writeYAML(path string, stdout io.Writer, v any) (err error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	if path == "" {
		_, err := stdout.Write(buf.Bytes())
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	// A file that existed keeps its mode through O_TRUNC: make it private too.
	if err := f.Chmod(0o600); err != nil {
		_ = f.Close()
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// channelFile is the YAML of `channels import` and `channels export`.
type channelFile struct {
	Channels []channelSpec `yaml:"channels"`
}

// readChannelFile reads the channel file at path (- for stdin) and checks
// every channel in it. A relative secret-file is read from the file's
// directory. The error names the channel's position, name and field.
func readChannelFile(path string, stdin io.Reader) ([]store.ChannelImport, error) {
	in, dir := stdin, "."
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer func() { _ = f.Close() }()
		in, dir = f, filepath.Dir(path)
	}
	var f channelFile
	if err := decodeYAML(in, &f); err != nil {
		return nil, err
	}
	if len(f.Channels) == 0 {
		return nil, errors.New("reading YAML: no channels (want a top-level `channels:` list)")
	}
	out := make([]store.ChannelImport, len(f.Channels))
	seen := map[string]int{}
	for i, spec := range f.Channels {
		if spec.SecretFile != "" && !filepath.IsAbs(spec.SecretFile) {
			spec.SecretFile = filepath.Join(dir, spec.SecretFile)
		}
		ch, err := spec.channel()
		if j, dup := seen[spec.Name]; dup && err == nil {
			err = fmt.Errorf("name: also channel %d's", j+1)
		}
		if err != nil {
			return nil, fmt.Errorf("channel %d (%s): %w", i+1, command.Escape(spec.Name), err)
		}
		seen[spec.Name] = i
		out[i] = store.ChannelImport{Channel: ch, KeepSecret: spec.SecretFile == ""}
	}
	return out, nil
}

// duration prints d the way people write it: 30s, 5m, 1h30m.
func duration(d time.Duration) string {
	s := d.String()
	for _, suffix := range []string{"m0s", "h0m"} {
		if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
			s = s[:len(s)-len(suffix)+1]
		}
	}
	return s
}
