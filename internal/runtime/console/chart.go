package console

import (
	"fmt"
	"strings"
	"time"
)

// chart is the observed gray share over the samples held, drawn as SVG by
// the template (attributes only: the CSP allows no inline style): the
// observed share as one polyline per run of intervals with traffic
// (broken where there was none), the percentage that was in force at each
// sample as a step line (0 while the release was killed), and labelled
// axes.
type chart struct {
	Width, Height int
	// Left, Right, Top and Bottom bound the plot area inside the axes.
	Left, Right, Top, Bottom float64
	// Segments are the observed polylines' points attributes; Dots the
	// same points, drawn so that a single interval shows too.
	Segments []string
	Dots     []dot
	// Target is the in-force percentage's step line (points attribute).
	Target string
	// YTicks and XTicks label the axes.
	YTicks, XTicks []tick
	// Span is how much time the x axis covers.
	Span string
	// Summary says the same in words, for screen readers and for anyone
	// who does not read charts.
	Summary string
	Empty   bool
}

type dot struct{ X, Y float64 }

// tick is an axis label at a position (y for the y axis, x for the x).
type tick struct {
	At    float64
	Label string
}

const (
	chartWidth  = 600
	chartHeight = 160
	chartSpan   = keepSamples * 2 * time.Second
	// chartMinSpan is the shortest x axis.
	chartMinSpan = time.Minute
	// The plot's margins leave room for the axes' labels.
	chartLeft, chartRight, chartTop, chartBottom = 40.0, 8.0, 8.0, 22.0
	// chartStep is the shortest interval one point covers.
	chartStep = 4 * time.Second
)

func newChart(pts []point, targets []targetAt) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Empty: !anyTraffic(pts),
		Left: chartLeft, Right: chartWidth - chartRight, Top: chartTop, Bottom: chartHeight - chartBottom}
	y := func(p float64) float64 { return c.Top + (c.Bottom-c.Top)*(1-p/100) }
	end := time.Now()
	// The x axis covers the samples held (a minute at least), so the first
	// minutes of a graymesh draw across the chart rather than in a corner.
	span := chartMinSpan
	if len(pts) > 0 {
		span = max(span, end.Sub(pts[0].At)+chartStep)
	}
	span = min(span, chartSpan)
	start := end.Add(-span)
	x := func(t time.Time) float64 { return c.Left + (c.Right-c.Left)*float64(t.Sub(start))/float64(span) }
	c.Span = roughly(span)
	for _, p := range []float64{0, 50, 100} {
		c.YTicks = append(c.YTicks, tick{At: y(p), Label: fmt.Sprintf("%g%%", p)})
	}
	for _, f := range []float64{0, 0.5, 1} {
		label := "now"
		if f < 1 {
			label = "−" + roughly(time.Duration(float64(span)*(1-f)))
		}
		c.XTicks = append(c.XTicks, tick{At: c.Left + (c.Right-c.Left)*f, Label: label})
	}
	c.Target = targetLine(targets, start, end, x, y)
	if c.Empty {
		c.Summary = "No interval with edge decisions yet."
		return c
	}
	var seg strings.Builder
	lo, hi := 100.0, 0.0
	var last point
	for _, p := range pts {
		if p.At.Before(start) {
			continue
		}
		if p.Total == 0 {
			// No traffic in this interval: the line breaks here.
			flush(&c, &seg)
			continue
		}
		fmt.Fprintf(&seg, "%.1f,%.1f ", x(p.At), y(p.Percent))
		c.Dots = append(c.Dots, dot{X: x(p.At), Y: y(p.Percent)})
		lo, hi, last = min(lo, p.Percent), max(hi, p.Percent), p
	}
	flush(&c, &seg)
	c.Summary = fmt.Sprintf("Observed gray share per interval: between %.1f%% and %.1f%%; latest %.1f%% of %s edge decisions.",
		lo, hi, last.Percent, count(last.Total))
	return c
}

func anyTraffic(pts []point) bool {
	for _, p := range pts {
		if p.Total > 0 {
			return true
		}
	}
	return false
}

// flush ends the current observed segment.
func flush(c *chart, seg *strings.Builder) {
	if s := strings.TrimSpace(seg.String()); s != "" {
		c.Segments = append(c.Segments, s)
	}
	seg.Reset()
}

// targetLine is the step line of the percentage in force at each sample,
// from the chart's start (or the first sample) to now.
func targetLine(targets []targetAt, start, end time.Time, x func(time.Time) float64, y func(float64) float64) string {
	var b strings.Builder
	prev, have := 0.0, false
	for _, t := range targets {
		at := t.At
		if at.Before(start) {
			prev, have = t.Percent, true
			continue
		}
		if !have {
			prev, have = t.Percent, true
			fmt.Fprintf(&b, "%.1f,%.1f ", x(at), y(prev))
		}
		if t.Percent != prev {
			fmt.Fprintf(&b, "%.1f,%.1f %.1f,%.1f ", x(at), y(prev), x(at), y(t.Percent))
			prev = t.Percent
		}
	}
	if !have {
		return ""
	}
	if b.Len() == 0 {
		fmt.Fprintf(&b, "%.1f,%.1f ", x(start), y(prev))
	}
	fmt.Fprintf(&b, "%.1f,%.1f", x(end), y(prev))
	return b.String()
}
