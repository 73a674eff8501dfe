package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/sitewatch/sitewatch/platform/command"
	"github.com/sitewatch/sitewatch/services/monitor/internal/store"
)

// PageStore is what the pages command needs.
type PageStore interface {
	AddPage(ctx context.Context, p store.Page) error
	Pages(ctx context.Context, slug string) ([]store.Page, error)
	UpdatePage(ctx context.Context, slug string, change func(*store.Page) error) (store.Page, error)
	ImportPages(ctx context.Context, ps []store.Page) (added, replaced int, err error)
	RemovePage(ctx context.Context, slug string) error
}

// PagesUsage describes the pages command.
const PagesUsage = `usage:
  monitor pages add SLUG --title TEXT (--group 'NAME=ID,ID' ... | --sites ID,ID) [--announcement TEXT | --announcement-file FILE] [--show-urls]
  monitor pages update SLUG [any flag of add]    --group or --sites replaces every group
  monitor pages list
  monitor pages show SLUG
  monitor pages remove SLUG
  monitor pages import FILE|-   add or replace (by slug) every page of a YAML file, all or nothing
  monitor pages export [FILE|-] write every page as YAML

A status page is public: the sink serves it without a token at /status/SLUG on its public
listener (SINK_PUBLIC_ADDR), with an Atom feed of its incidents at /status/SLUG/feed.atom and
badges at /badges/SLUG/status.svg (and /badges/SITE-ID/… for each of its sites). It shows its
sites' names (a site with none is "Service ID"), states, uptime, response times, outages of
the last 90 days and maintenance (silences, with their reason); never a URL unless
--show-urls, never an error text or a region. The announcement is pinned on top: plain text,
or a small Markdown subset (paragraphs, "- " lists, **bold**, *italic*, ` + "`code`" + ` and
[links](https://…)), escaped. The YAML of import and export:

  pages:
    - slug: shop
      title: Example Shop status
      announcement: |
        Payments are slow for some customers; we are on it.
      groups:
        - name: Storefront
          sites: [1, 2]
        - name: API
          sites: [3]
`

var pageSlug = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Limits of a page, the database's among them.
const (
	maxPageTitle        = 200
	maxPageAnnouncement = 4000
	maxPageGroup        = 100
	maxPageSites        = 1000
)

// pageSpec is a page as the flags of add and update and the YAML of import
// and export give it.
type pageSpec struct {
	Slug         string          `yaml:"slug"`
	Title        string          `yaml:"title"`
	Announcement string          `yaml:"announcement,omitempty"`
	ShowURLs     bool            `yaml:"show-urls,omitempty"`
	Groups       []pageGroupSpec `yaml:"groups"`
}

type pageGroupSpec struct {
	Name  string  `yaml:"name,omitempty"`
	Sites []int64 `yaml:"sites,flow"`
}

// printable says whether s has no control character.
func printable(s string) bool {
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// page checks s and returns the page it describes; the error joins one
// error per bad field, each naming it.
func (s pageSpec) page() (store.Page, error) {
	var errs []error
	if !pageSlug.MatchString(s.Slug) {
		errs = append(errs, fmt.Errorf("slug %q: want lower-case letters, digits and '-' (at most 63), as in its address /status/SLUG", s.Slug))
	}
	switch title := strings.TrimSpace(s.Title); {
	case title == "":
		errs = append(errs, errors.New("title: required"))
	case len([]rune(title)) > maxPageTitle || !printable(title):
		errs = append(errs, fmt.Errorf("title: at most %d printable characters", maxPageTitle))
	}
	if n := len([]rune(s.Announcement)); n > maxPageAnnouncement {
		errs = append(errs, fmt.Errorf("announcement: %d characters, at most %d", n, maxPageAnnouncement))
	}
	p := store.Page{Slug: s.Slug, Title: strings.TrimSpace(s.Title), Announcement: strings.TrimSpace(s.Announcement), ShowURLs: s.ShowURLs}
	seenSite, seenGroup, total := map[int64]string{}, map[string]bool{}, 0
	for i, g := range s.Groups {
		field := fmt.Sprintf("groups[%d]", i)
		name := strings.TrimSpace(g.Name)
		switch {
		case len([]rune(name)) > maxPageGroup || !printable(name):
			errs = append(errs, fmt.Errorf("%s: name: at most %d printable characters", field, maxPageGroup))
		case seenGroup[name]:
			errs = append(errs, fmt.Errorf("%s: name %q: also an earlier group's", field, name))
		}
		seenGroup[name] = true
		if len(g.Sites) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): sites: none", field, command.Escape(name)))
		}
		for _, id := range g.Sites {
			if id <= 0 {
				errs = append(errs, fmt.Errorf("%s: sites: %d: want a positive site ID", field, id))
			} else if prev, dup := seenSite[id]; dup {
				errs = append(errs, fmt.Errorf("%s: sites: %d: also in %s", field, id, prev))
			}
			seenSite[id] = field
		}
		total += len(g.Sites)
		p.Groups = append(p.Groups, store.PageGroup{Name: name, Sites: g.Sites})
	}
	if len(s.Groups) == 0 {
		errs = append(errs, errors.New("groups: a page needs at least one site (--group 'NAME=ID,ID' or --sites ID,ID)"))
	}
	if total > maxPageSites {
		errs = append(errs, fmt.Errorf("groups: %d sites, at most %d on a page", total, maxPageSites))
	}
	return p, errors.Join(errs...)
}

// specOfPage is the spec of a stored page.
func specOfPage(p store.Page) pageSpec {
	s := pageSpec{Slug: p.Slug, Title: p.Title, Announcement: p.Announcement, ShowURLs: p.ShowURLs}
	for _, g := range p.Groups {
		s.Groups = append(s.Groups, pageGroupSpec{Name: g.Name, Sites: g.Sites})
	}
	return s
}

// pageFlags are the flags of add and update.
type pageFlags struct {
	title, announcement, announcementFile, sites string
	groups                                       listFlag
	showURLs                                     bool
}

func (f *pageFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.title, "title", "", "the page's title")
	fs.Var(&f.groups, "group", "a group of sites in order, `NAME=ID,ID,…`; repeat for more, in order")
	fs.StringVar(&f.sites, "sites", "", "comma-separated site IDs under no group heading, e.g. 1,2,3")
	fs.StringVar(&f.announcement, "announcement", "", "text pinned on top (plain, or a small Markdown subset); --announcement= removes it")
	fs.StringVar(&f.announcementFile, "announcement-file", "", "file holding the announcement")
	fs.BoolVar(&f.showURLs, "show-urls", false, "show the sites' URLs on the page")
}

// parseIDs parses comma-separated site IDs.
func parseIDs(field, v string) ([]int64, error) {
	var parts []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	ids, err := command.IDs(parts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return ids, nil
}

// apply sets on s what the flags in given say; it returns the values it
// cannot parse.
func (f *pageFlags) apply(s *pageSpec, given map[string]bool) error {
	var errs []error
	if given["title"] {
		s.Title = f.title
	}
	if given["show-urls"] {
		s.ShowURLs = f.showURLs
	}
	switch {
	case given["announcement"] && given["announcement-file"]:
		errs = append(errs, errors.New("announcement, announcement-file: give one of them"))
	case given["announcement"]:
		s.Announcement = f.announcement
	case given["announcement-file"]:
		b, err := os.ReadFile(f.announcementFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("announcement-file: %w", err))
		}
		s.Announcement = string(b)
	}
	if given["group"] || given["sites"] {
		s.Groups = nil
		if given["sites"] {
			ids, err := parseIDs("sites", f.sites)
			errs = append(errs, err)
			s.Groups = append(s.Groups, pageGroupSpec{Sites: ids})
		}
		for _, g := range f.groups {
			i := strings.LastIndex(g, "=")
			if i < 0 {
				errs = append(errs, fmt.Errorf("group %q: want NAME=ID,ID,…", g))
				continue
			}
			ids, err := parseIDs("group "+g[:i], g[i+1:])
			errs = append(errs, err)
			s.Groups = append(s.Groups, pageGroupSpec{Name: g[:i], Sites: ids})
		}
	}
	return errors.Join(errs...)
}

// pageFile is the YAML of `pages import` and `pages export`.
type pageFile struct {
	Pages []pageSpec `yaml:"pages"`
}

// readPageFile reads the page file at path (- for stdin) and checks every
// page in it.
func readPageFile(path string, stdin io.Reader) ([]store.Page, error) {
	in := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer func() { _ = f.Close() }()
		in = f
	}
	var f pageFile
	if err := decodeYAML(in, &f); err != nil {
		return nil, err
	}
	if len(f.Pages) == 0 {
		return nil, errors.New("reading YAML: no pages (want a top-level `pages:` list)")
	}
	out := make([]store.Page, len(f.Pages))
	seen := map[string]int{}
	for i, spec := range f.Pages {
		p, err := spec.page()
		if j, dup := seen[spec.Slug]; dup && err == nil {
			err = fmt.Errorf("slug: also page %d's", j+1)
		}
		if err != nil {
			return nil, fmt.Errorf("page %d (%s): %w", i+1, command.Escape(spec.Slug), err)
		}
		seen[spec.Slug] = i
		out[i] = p
	}
	return out, nil
}

// Pages runs `pages args...` and returns the process exit code.
func Pages(ctx context.Context, args []string, open func() (PageStore, error), stdout, stderr io.Writer) int {
	fail := func(cmd string, err error, code int) int {
		fmt.Fprintf(stderr, "pages %s: %v\n", cmd, err)
		return code
	}
	withStore := func(cmd string, do func(PageStore) error) int {
		st, err := open()
		if err == nil {
			err = do(st)
		}
		if err != nil {
			return fail(cmd, err, ExitError)
		}
		return ExitOK
	}
	// slugged parses SLUG [flags] into f and returns the slug and the flags given.
	slugged := func(cmd string, args []string, f *pageFlags) (string, map[string]bool, int) {
		return parseNamed("pages", cmd, "SLUG", args, f.register, stderr)
	}
	one := func(cmd string, args []string, do func(PageStore, string) error) int {
		if len(args) != 1 {
			return fail(cmd, errors.New("want exactly one SLUG"), ExitUsage)
		}
		return withStore(cmd, func(st PageStore) error { return do(st, args[0]) })
	}
	return command.Dispatch(ctx, "pages", "", PagesUsage, map[string]command.Func{
		"add": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			var f pageFlags
			slug, given, code := slugged("add", args, &f)
			if code != ExitOK {
				return code
			}
			spec := pageSpec{Slug: slug}
			err := f.apply(&spec, given)
			p, invalid := spec.page()
			if err = errors.Join(err, invalid); err != nil {
				return fail("add", fmt.Errorf("nothing written:\n  %w", err), ExitUsage)
			}
			return withStore("add", func(st PageStore) error {
				if err := st.AddPage(ctx, p); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "added page %s: /status/%s on the sink's public listener\n", p.Slug, p.Slug)
				return nil
			})
		},
		"update": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			var f pageFlags
			slug, given, code := slugged("update", args, &f)
			if code != ExitOK {
				return code
			}
			if len(given) == 0 {
				return fail("update", errors.New("nothing to change: give at least one flag"), ExitUsage)
			}
			var invalid bool
			code = withStore("update", func(st PageStore) error {
				_, err := st.UpdatePage(ctx, slug, func(p *store.Page) error {
					spec := specOfPage(*p)
					err := f.apply(&spec, given)
					next, bad := spec.page()
					if err = errors.Join(err, bad); err != nil {
						invalid = true
						return fmt.Errorf("nothing written:\n  %w", err)
					}
					*p = next
					return nil
				})
				if err == nil {
					fmt.Fprintf(stdout, "updated page %s\n", slug)
				}
				return err
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
			return withStore("list", func(st PageStore) error {
				ps, err := st.Pages(ctx, "")
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SLUG\tTITLE\tGROUPS\tSITES\tANNOUNCEMENT\tURLS")
				for _, p := range ps {
					n := 0
					for _, g := range p.Groups {
						n += len(g.Sites)
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%t\t%t\n", p.Slug, command.Escape(p.Title), len(p.Groups), n, p.Announcement != "", p.ShowURLs)
				}
				return tw.Flush()
			})
		},
		"show": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			return one("show", args, func(st PageStore, slug string) error {
				ps, err := st.Pages(ctx, slug)
				if err != nil {
					return err
				}
				p := ps[0]
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "slug:\t%s\naddress:\t/status/%s (feed /status/%s/feed.atom)\ntitle:\t%s\nshow urls:\t%t\nupdated:\t%s\n",
					p.Slug, p.Slug, p.Slug, command.Escape(p.Title), p.ShowURLs, p.Updated.UTC().Format(time.RFC3339))
				for _, g := range p.Groups {
					name := g.Name
					if name == "" {
						name = "(no heading)"
					}
					fmt.Fprintf(tw, "group:\t%s: sites %s\n", command.Escape(name), strings.Trim(fmt.Sprint(g.Sites), "[]"))
				}
				if p.Announcement != "" {
					fmt.Fprintf(tw, "announcement:\t%s\n", command.Escape(p.Announcement))
				}
				return tw.Flush()
			})
		},
		"remove": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			return one("remove", args, func(st PageStore, slug string) error {
				if err := st.RemovePage(ctx, slug); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "removed page %s\n", slug)
				return nil
			})
		},
		"import": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) != 1 {
				return fail("import", errors.New("want one FILE, or - for standard input"), ExitUsage)
			}
			ps, err := readPageFile(args[0], os.Stdin)
			if err != nil {
				return fail("import", fmt.Errorf("nothing written: %w", err), ExitUsage)
			}
			return withStore("import", func(st PageStore) error {
				added, replaced, err := st.ImportPages(ctx, ps)
				if err != nil {
					return fmt.Errorf("nothing written: %w", err)
				}
				fmt.Fprintf(stdout, "imported %d pages: %d added, %d replaced\n", len(ps), added, replaced)
				return nil
			})
		},
		"export": func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			if len(args) > 1 {
				return fail("export", errors.New("want at most one FILE"), ExitUsage)
			}
			return withStore("export", func(st PageStore) error {
				ps, err := st.Pages(ctx, "")
				if err != nil {
					return err
				}
				f := pageFile{Pages: make([]pageSpec, len(ps))}
				for i, p := range ps {
					f.Pages[i] = specOfPage(p)
				}
				return writeYAML(exportPath(args), stdout, f)
			})
		},
	}, args, stdout, stderr)
}
