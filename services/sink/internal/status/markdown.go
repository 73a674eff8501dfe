package status

import (
	"html"
	"html/template"
	"net/url"
	"strings"
)

// announcementHTML renders a page's announcement, plain text or a small
// Markdown subset: paragraphs split by blank lines, a block whose lines
// all start with "- " or "* " as a list, **bold**, *italic*, `code` and
// [text](https://…) links (http and https only). Everything else is
// text, escaped: an operator's typo cannot break or script the page.
func announcementHTML(src string) template.HTML {
	var b strings.Builder
	src = strings.ReplaceAll(src, "\r\n", "\n")
	for _, block := range strings.Split(src, "\n\n") {
		var lines []string
		for _, l := range strings.Split(block, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			continue
		}
		list := true
		for _, l := range lines {
			list = list && (strings.HasPrefix(l, "- ") || strings.HasPrefix(l, "* "))
		}
		if list {
			b.WriteString("<ul>")
			for _, l := range lines {
				b.WriteString("<li>" + inline(strings.TrimSpace(l[2:])) + "</li>")
			}
			b.WriteString("</ul>")
			continue
		}
		for i, l := range lines {
			lines[i] = inline(l)
		}
		b.WriteString("<p>" + strings.Join(lines, "<br>") + "</p>")
	}
	return template.HTML(b.String()) // #nosec G203 -- every piece of src is escaped above
}

// inline renders a line's emphasis, code and links, escaping the rest.
func inline(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		rest := s[i:]
		switch {
		case strings.HasPrefix(rest, "`"):
			if end := strings.Index(rest[1:], "`"); end > 0 {
				b.WriteString("<code>" + html.EscapeString(rest[1:1+end]) + "</code>")
				i += end + 2
				continue
			}
		case strings.HasPrefix(rest, "**"):
			if end := strings.Index(rest[2:], "**"); end > 0 {
				b.WriteString("<strong>" + inline(rest[2:2+end]) + "</strong>")
				i += end + 4
				continue
			}
		case strings.HasPrefix(rest, "*"):
			if end := strings.Index(rest[1:], "*"); end > 0 && rest[1] != ' ' {
				b.WriteString("<em>" + inline(rest[1:1+end]) + "</em>")
				i += end + 2
				continue
			}
		case strings.HasPrefix(rest, "["):
			if text, after, ok := strings.Cut(rest[1:], "]("); ok && !strings.Contains(text, "]") {
				if target, _, ok := strings.Cut(after, ")"); ok && safeLink(target) {
					b.WriteString(`<a href="` + html.EscapeString(target) + `" rel="nofollow noopener noreferrer">` + inline(text) + "</a>")
					i += 1 + len(text) + 2 + len(target) + 1
					continue
				}
			}
		}
		// One character, escaped: up to the next one that may start markup.
		n := strings.IndexAny(rest[1:], "`*[")
		if n < 0 {
			n = len(rest) - 1
		}
		b.WriteString(html.EscapeString(rest[:n+1]))
		i += n + 1
	}
	return b.String()
}

// safeLink says whether target is an absolute http or https URL.
func safeLink(target string) bool {
	u, err := url.Parse(target)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && !strings.ContainsAny(target, " \"'<>")
}
