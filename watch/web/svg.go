package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/starttls-go/starttls/watch/store"
)

// Plots are drawn as SVG on the server: coordinates are numbers this
// code computes, and every text from a peer or the store goes through
// template.HTMLEscapeString.

const (
	plotW  = 800
	plotL  = 40 // left margin for labels
	gradeH = 150
)

var grades = []string{"A+", "A", "B", "C", "D", "E", "F"}

func gradeY(g string) (float64, bool) {
	for i, x := range grades {
		if x == g {
			return 10 + float64(i)*float64(gradeH-30)/float64(len(grades)-1), true
		}
	}
	return 0, false
}

func xOf(t, since, now time.Time) float64 {
	span := now.Sub(since).Seconds()
	if span <= 0 {
		return plotL
	}
	f := t.Sub(since).Seconds() / span
	return plotL + max(0, min(1, f))*float64(plotW-plotL-10)
}

func esc(s string) string { return template.HTMLEscapeString(s) }

// gradePlot draws the worst grade of each slice of history as a step
// line; slices with runs that got no answer get a red tick at the bottom.
func gradePlot(hist []store.Bucket, since, now time.Time) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" id="grade-plot" role="img" aria-label="grade over time" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, plotW, gradeH, plotW, gradeH)
	b.WriteString(`<title>grade over time</title>`)
	for _, g := range grades {
		y, _ := gradeY(g)
		fmt.Fprintf(&b, `<text x="4" y="%.0f" class="axis">%s</text><line x1="%d" x2="%d" y1="%.0f" y2="%.0f" class="grid"/>`, y+4, esc(g), plotL, plotW-10, y, y)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis">%s</text><text x="%d" y="%d" class="axis" text-anchor="end">%s</text>`,
		plotL, gradeH-4, since.UTC().Format(time.DateOnly), plotW-10, gradeH-4, now.UTC().Format(time.DateOnly))
	var pts []string
	lastY := ""
	for _, h := range hist {
		x := xOf(h.At, since, now)
		if h.Down {
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="down"/>`, x, x, gradeH-22, gradeH-14)
		}
		y, ok := gradeY(h.Grade)
		if !ok {
			continue
		}
		if lastY != "" {
			pts = append(pts, fmt.Sprintf("%.1f,%s", x, lastY))
		}
		lastY = fmt.Sprintf("%.0f", y)
		pts = append(pts, fmt.Sprintf("%.1f,%s", x, lastY))
	}
	if len(pts) > 0 {
		pts = append(pts, fmt.Sprintf("%.1f,%s", xOf(now, since, now), lastY))
		fmt.Fprintf(&b, `<polyline class="grade-line" points="%s"/>`, strings.Join(pts, " "))
		last := pts[len(pts)-1]
		x, y, _ := strings.Cut(last, ",")
		fmt.Fprintf(&b, `<circle class="grade-dot" cx="%s" cy="%s" r="3"/>`, x, y)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped text
}

// findingPlot draws one lane per finding with a bar for each time it was
// present.
func findingPlot(spans []store.Span, since, now time.Time) template.HTML {
	lanes := []string{}
	lane := map[string]int{}
	for _, s := range spans {
		if _, ok := lane[s.Finding]; !ok {
			lane[s.Finding] = len(lanes)
			lanes = append(lanes, s.Finding)
		}
	}
	const rowH = 18
	h := 24 + rowH*max(1, len(lanes))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="plot" id="finding-plot" role="img" aria-label="findings over time" viewBox="0 0 %d %d" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, plotW, h, plotW, h)
	b.WriteString(`<title>findings over time</title>`)
	if len(lanes) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="16" class="axis">no findings in this period</text>`, plotL)
	}
	for _, s := range spans {
		y := 4 + lane[s.Finding]*rowH
		until := s.Until
		if until.IsZero() {
			until = now
		}
		x1, x2 := xOf(s.Since, since, now), xOf(until, since, now)
		fmt.Fprintf(&b, `<rect class="sev-%s" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s</title></rect>`,
			esc(s.Severity), x1, y, max(2, x2-x1), rowH-4, esc(s.Finding+" ("+s.Severity+"): "+s.Title))
	}
	for i, name := range lanes { // over the bars, so they stay readable
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="lane">%s</text>`, plotL+4, 4+i*rowH+11, esc(name))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="axis">%s</text><text x="%d" y="%d" class="axis" text-anchor="end">%s</text></svg>`,
		plotL, h-4, since.UTC().Format(time.DateOnly), plotW-10, h-4, now.UTC().Format(time.DateOnly))
	return template.HTML(b.String()) //nolint:gosec // built from numbers and escaped text
}
