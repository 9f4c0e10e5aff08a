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
	// Points is the polyline's points attribute.
	Points string
	// ConfiguredY is the y of the configured percentage.
	ConfiguredY float64
	// Span is how much time the x axis covers.
	Span string
	// Summary says the same in words, for screen readers and for anyone
	// who does not read charts.
	Summary string
	Empty   bool
}

const (
	chartWidth  = 600
	chartHeight = 120
	chartSpan   = keepSamples * 2 * time.Second
	// chartStep is the shortest interval one point covers.
	chartStep = 4 * time.Second
)

func newChart(pts []point, configured float64) chart {
	c := chart{Width: chartWidth, Height: chartHeight, Span: roughly(chartSpan), Empty: len(pts) == 0}
	y := func(p float64) float64 { return float64(chartHeight) * (1 - p/100) }
	c.ConfiguredY = y(configured)
	if c.Empty {
		c.Summary = "No interval with edge decisions yet."
		return c
	}
	end := time.Now()
	start := end.Add(-chartSpan)
	var b strings.Builder
	lo, hi := 100.0, 0.0
	for _, p := range pts {
		x := float64(chartWidth) * float64(p.At.Sub(start)) / float64(chartSpan)
		if x < 0 {
			continue
		}
		fmt.Fprintf(&b, "%.1f,%.1f ", x, y(p.Percent))
		lo, hi = min(lo, p.Percent), max(hi, p.Percent)
	}
	c.Points = strings.TrimSpace(b.String())
	last := pts[len(pts)-1]
	c.Summary = fmt.Sprintf("Observed gray share per interval: between %.1f%% and %.1f%%; latest %.1f%% of %s edge decisions.",
		lo, hi, last.Percent, count(last.Total))
	return c
}
