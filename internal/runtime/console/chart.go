package console

import (
	"fmt"
	"strings"
	"time"
)

// chart is the observed gray share over the samples held, drawn as an SVG
// polyline by the template (attributes only: the CSP allows no inline
// style), with the configured percentage as a reference line.
type chart struct {
	Width, Height int
	// Points is the polyline's points attribute; Dots the same points,
	// drawn so that a single interval shows too.
	Points string
	Dots   []dot
	// ConfiguredY is the y of the configured percentage.
	ConfiguredY float64
	// Span is how much time the x axis covers.
	Span string
	// Summary says the same in words, for screen readers and for anyone
	// who does not read charts.
	Summary string
	Empty   bool
}

type dot struct{ X, Y float64 }

const (
	chartWidth  = 600
	chartHeight = 120
	chartSpan   = keepSamples * 2 * time.Second
	// chartMinSpan is the shortest x axis; chartPad keeps the dots inside.
	chartMinSpan = time.Minute
	chartPad     = 6
	// chartStep is the shortest interval one point covers.
	chartStep = 4 * time.Second
)

func newChart(pts []point, configured float64) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Empty: len(pts) == 0}
	y := func(p float64) float64 { return chartPad + float64(chartHeight-2*chartPad)*(1-p/100) }
	c.ConfiguredY = y(configured)
	end := time.Now()
	// The x axis covers the samples held (a minute at least), so the first
	// minutes of a graymesh draw across the chart rather than in a corner.
	span := chartMinSpan
	if !c.Empty {
		span = max(span, end.Sub(pts[0].At)+chartStep)
	}
	span = min(span, chartSpan)
	c.Span = roughly(span)
	if c.Empty {
		c.Summary = "No interval with edge decisions yet."
		return c
	}
	start := end.Add(-span)
	var b strings.Builder
	lo, hi := 100.0, 0.0
	for _, p := range pts {
		if p.At.Before(start) {
			continue
		}
		x := chartPad + float64(chartWidth-2*chartPad)*float64(p.At.Sub(start))/float64(span)
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y(p.Percent))
		c.Dots = append(c.Dots, dot{X: x, Y: y(p.Percent)})
		lo, hi = min(lo, p.Percent), max(hi, p.Percent)
	}
	c.Points = strings.TrimSpace(b.String())
	last := pts[len(pts)-1]
	c.Summary = fmt.Sprintf("Observed gray share per interval: between %.1f%% and %.1f%%; latest %.1f%% of %s edge decisions.",
		lo, hi, last.Percent, count(last.Total))
	return c
}
