package status

import (
	"fmt"
	"html/template"
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

// barRects draws bars in a row, each w wide with a gap after it, titled
// with its time (in layout) and uptime.
func barRects(bars []Bar, w, gap float64, layout string) []Rect {
	out := make([]Rect, len(bars))
	for i, b := range bars {
		title := b.Start.UTC().Format(layout) + ": no checks"
		if b.Uptime != nil {
			title = fmt.Sprintf("%s: %s up, %d checks, %.0f ms on average", b.Start.UTC().Format(layout), pctText(*b.Uptime), b.Checks, b.MeanMS)
		}
		out[i] = Rect{X: float64(i) * (w + gap), W: w, H: 30, Class: barClass(b), Title: title}
	}
	return out
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
