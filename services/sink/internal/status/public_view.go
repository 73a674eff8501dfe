package status

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"
)

// publicView is a public page as its template reads it.
type publicView struct {
	PublicPage
	now time.Time
}

// AnnouncementHTML is the announcement, rendered and escaped.
func (v publicView) AnnouncementHTML() template.HTML { return v.announcement }

// Updated is when the page was read, to the minute.
func (v publicView) Updated() string { return v.now.UTC().Format("2006-01-02 15:04 UTC") }

// Lasted is how long incident i lasted, or has so far.
func (v publicView) Lasted(i PublicIncident) string { return humanDuration(i.Duration(v.now)) }

// Open is the incidents not resolved yet.
func (v publicView) Open() int {
	n := 0
	for _, i := range v.Incidents {
		if i.Resolved == nil {
			n++
		}
	}
	return n
}

// barClass is a bar's colour: good from 99.9 % up, fair from 99 %, bad
// below, none without checks.
func barClass(b Bar) string {
	switch {
	case b.Uptime == nil:
		return "none"
	case *b.Uptime >= 99.9:
		return "good"
	case *b.Uptime >= 99:
		return "fair"
	}
	return "bad"
}

// barLayouts are the two rows of bars of a site: its days and its hours,
// each bar's width, the gap after it and how its time reads.
var barLayouts = map[string]struct {
	span   string
	w, gap int
	layout string
}{
	"days":  {"90 days", 4, 2, "Jan 2"},
	"hours": {"24 hours", 8, 2, "15:04 UTC"},
}

// barsSVG draws a row of bars as an SVG image, each bar coloured by its
// uptime and titled with its time and figures, the whole labelled in
// words. Written directly rather than through the template: a page of 100
// sites has 11,400 bars, and escaping each of their values costs more than
// the rest of the page (BenchmarkPublicPage). Every value is a number or
// a time in a fixed layout; the label is escaped.
func barsSVG(bars []Bar, row string) template.HTML {
	r := barLayouts[row]
	var b strings.Builder
	b.Grow(len(bars) * 96)
	fmt.Fprintf(&b, `<svg class="bars %s" viewBox="0 0 %d 30" preserveAspectRatio="none" role="img" aria-label="%s">`,
		row, len(bars)*(r.w+r.gap)-r.gap, template.HTMLEscapeString(barsLabel(bars, r.span)))
	for i, bar := range bars {
		b.WriteString(`<rect x="`)
		b.WriteString(strconv.Itoa(i * (r.w + r.gap)))
		b.WriteString(`" width="`)
		b.WriteString(strconv.Itoa(r.w))
		b.WriteString(`" height="30" class="`)
		b.WriteString(barClass(bar))
		b.WriteString(`"><title>`)
		b.WriteString(bar.Start.UTC().Format(r.layout))
		if bar.Uptime == nil {
			b.WriteString(": no checks")
		} else {
			b.WriteString(": ")
			b.WriteString(pctText(*bar.Uptime))
			b.WriteString(" up, ")
			b.WriteString(strconv.FormatInt(bar.Checks, 10))
			b.WriteString(" checks, ")
			b.WriteString(strconv.FormatFloat(bar.MeanMS, 'f', 0, 64))
			b.WriteString(" ms on average")
		}
		b.WriteString("</title></rect>")
	}
	b.WriteString("</svg>")
	return template.HTML(b.String()) // #nosec G203 -- numbers and fixed-layout times; the label is escaped
}

// pctText is a percentage as a page shows it, never rounded up to 100.
func pctText(p float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", float64(int64(p*1000))/1000), "0"), ".") + " %"
}

// barsLabel says in words what a row of bars shows, for those who cannot
// see the colours.
func barsLabel(bars []Bar, span string) string {
	count := map[string]int{}
	for _, b := range bars {
		count[barClass(b)]++
	}
	parts := []string{}
	for _, c := range []struct{ class, words string }{
		{"good", "at 99.9 % or more"}, {"fair", "at 99 to 99.9 %"}, {"bad", "below 99 %"}, {"none", "without checks"}} {
		if n := count[c.class]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, c.words))
		}
	}
	return fmt.Sprintf("Uptime over the last %s: %s", span, strings.Join(parts, ", "))
}
