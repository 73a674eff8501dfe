package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sitewatch/sitewatch/services/monitor/internal/site"
)

// siteFile is the YAML of `sites import` and `sites export`. Keys are the
// names the flags of `sites add` use.
type siteFile struct {
	Sites []fileSite `yaml:"sites"`
}

type fileSite struct {
	URL      string            `yaml:"url"`
	Method   string            `yaml:"method,omitempty"`
	Headers  map[string]string `yaml:"headers,omitempty"`
	Expect   string            `yaml:"expect,omitempty"`
	Match    []string          `yaml:"match,omitempty"`
	NotMatch []string          `yaml:"not-match,omitempty"`
	Interval string            `yaml:"interval,omitempty"`
	Timeout  string            `yaml:"timeout,omitempty"`
	Topic    string            `yaml:"topic,omitempty"`
	Regions  []string          `yaml:"regions,omitempty"` // default: every region

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

// readSites parses a site file and validates every site in it. The error
// is a *site.InvalidError naming the site's position, URL and field, or a
// YAML error with its line.
func readSites(r io.Reader) ([]site.Site, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxImportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading YAML: %w", err)
	}
	if len(data) > MaxImportBytes {
		return nil, fmt.Errorf("reading YAML: larger than %d MiB; split it into several imports", MaxImportBytes>>20)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f siteFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading YAML: %w", err)
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
	s := site.Site{URL: fs.URL, Method: fs.Method, Headers: fs.Headers, Expect: fs.Expect,
		MustMatch: fs.Match, MustNotMatch: fs.NotMatch, Topic: fs.Topic, Regions: fs.Regions, Enabled: fs.Enabled == nil || *fs.Enabled,
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
	return s, errors.Join(errs...)
}

func toFile(s site.Site) fileSite {
	enabled := s.Enabled
	return fileSite{URL: s.URL, Method: s.Method, Headers: maps.Clone(s.Headers), Expect: s.Expect,
		Match: s.MustMatch, NotMatch: s.MustNotMatch, Interval: duration(s.Interval), Timeout: duration(s.Timeout),
		Topic: s.Topic, Regions: s.Regions, Enabled: &enabled,
		FailureThreshold: s.FailureThreshold, SuccessThreshold: s.SuccessThreshold, Quorum: s.Quorum, TLSWarningDays: &s.TLSWarningDays}
}

// writeSites writes sites as a site file.
func writeSites(w io.Writer, sites []site.Site) error {
	f := siteFile{Sites: make([]fileSite, len(sites))}
	for i, s := range sites {
		f.Sites[i] = toFile(s)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return fmt.Errorf("encoding YAML: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
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
