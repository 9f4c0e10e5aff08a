package loadbench

import (
	"fmt"
	"html"
	"io"
	"math"
	"strings"
	"time"
)

// chartColors are distinguishable line colours, one per configuration.
var chartColors = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

type series struct {
	name   string
	color  string
	points []point
}

type point struct {
	rate        float64
	p50, p99    time.Duration
	sustainable bool
}

// The chart's layout: two panels (p50, p99) side by side, legend below.
const (
	chartWidth, chartHeight = 980, 460
	panelW                  = 400
	panelH                  = 320
	panelTop                = 60
)

// WriteChart draws p50 and p99 latency against offered rate for every
// configuration as an SVG: medians across rounds, log latency axis, a
// filled marker where every round was sustainable at that rate.
func WriteChart(w io.Writer, res *Result) error {
	all := chartSeries(res)
	ax := newChartAxes(all)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n", chartWidth, chartHeight, chartWidth, chartHeight)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="24" font-size="16" text-anchor="middle">Latency vs offered rate through Envoy (medians across rounds; from scheduled send time)</text>`+"\n", chartWidth/2)
	lefts := []float64{70, 70 + panelW + 90}
	for i, title := range []string{"p50", "p99"} {
		drawPanel(p, ax, lefts[i], title, res.Options, all)
	}
	drawLegend(p, all)
	p("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// chartSeries is every configuration's medians per rate.
func chartSeries(res *Result) []series {
	var all []series
	for i, c := range res.Configs {
		s := series{name: c.Name, color: chartColors[i%len(chartColors)]}
		for _, rate := range stepRates(res, c.Name) {
			a, _ := aggregate(res, c.Name, rate)
			s.points = append(s.points, point{rate: float64(rate), p50: a.p50, p99: a.p99, sustainable: a.keepsUp == a.rounds})
		}
		all = append(all, s)
	}
	return all
}

// chartAxes maps a rate (linear, from 0) and a latency in µs (log, whole
// decades) to panel coordinates; both panels share them.
type chartAxes struct {
	xHi, xStep float64
	yLo, yHi   float64
}

func newChartAxes(all []series) chartAxes {
	maxRate, minLat, maxLat := 0.0, math.Inf(1), 0.0
	for _, s := range all {
		for _, pt := range s.points {
			maxRate = math.Max(maxRate, pt.rate)
			for _, l := range []time.Duration{pt.p50, pt.p99} {
				v := float64(l) / float64(time.Microsecond)
				if v > 0 {
					minLat, maxLat = math.Min(minLat, v), math.Max(maxLat, v)
				}
			}
		}
	}
	if maxRate == 0 {
		maxRate, minLat, maxLat = 1000, 100, 1000
	}
	maxLat = math.Min(maxLat, 1e7)
	ax := chartAxes{
		yLo:   math.Pow(10, math.Floor(math.Log10(minLat))),
		yHi:   math.Pow(10, math.Ceil(math.Log10(math.Max(maxLat, 5000)))),
		xStep: niceStep(maxRate / 6),
	}
	ax.xHi = math.Ceil(maxRate*1.02/ax.xStep) * ax.xStep
	return ax
}

func (ax chartAxes) x(left, rate float64) float64 { return left + rate/ax.xHi*panelW }

func (ax chartAxes) y(us float64) float64 {
	us = math.Min(math.Max(us, ax.yLo), ax.yHi)
	return panelTop + panelH - (math.Log10(us)-math.Log10(ax.yLo))/(math.Log10(ax.yHi)-math.Log10(ax.yLo))*panelH
}

// drawPanel draws one latency panel ("p50" or "p99") at left: grid, axes,
// the bound that panel is judged by, and every configuration's line.
func drawPanel(p func(string, ...any), ax chartAxes, left float64, title string, o Options, all []series) {
	x, y, yLo, yHi, xHi, xStep := ax.x, ax.y, ax.yLo, ax.yHi, ax.xHi, ax.xStep
	p(`<text x="%.0f" y="%d" font-size="14" text-anchor="middle">%s</text>`+"\n", left+panelW/2, panelTop-10, title)
	// Grid and ticks.
	for v := yLo; v <= yHi*1.0001; v *= 10 {
		for _, m := range []float64{1, 2, 5} {
			t := v * m
			if t > yHi*1.0001 {
				break
			}
			p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#e5e5e5"/>`+"\n", left, left+panelW, y(t), y(t))
			p(`<text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", left-6, y(t), fmtAxisUs(t))
		}
	}
	for r := 0.0; r <= xHi+1e-9; r += xStep {
		p(`<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#e5e5e5"/>`+"\n", x(left, r), x(left, r), panelTop, panelTop+panelH)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(left, r), panelTop+panelH+16, fmtRate(r))
	}
	p(`<rect x="%.1f" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", left, panelTop, panelW, panelH)
	p(`<text x="%.1f" y="%d" text-anchor="middle">offered rate (requests/s)</text>`+"\n", left+panelW/2, panelTop+panelH+34)
	p(`<text transform="translate(%.1f %d) rotate(-90)" text-anchor="middle">latency</text>`+"\n", left-52, panelTop+panelH/2)
	bound, label := o.MaxP99, "sustainable: p99 bound"
	if title == "p50" {
		bound, label = o.MaxP50, "keeps up: p50 bound"
	}
	if bound > 0 {
		b := float64(bound) / float64(time.Microsecond)
		p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#d62728" stroke-dasharray="6 4"/>`+"\n", left, left+panelW, y(b), y(b))
		p(`<text x="%.1f" y="%.1f" fill="#d62728" text-anchor="end">%s %s</text>`+"\n", left+panelW-4, y(b)-5, label, fmtAxisUs(b))
	}
	for _, s := range all {
		lat := func(pt point) float64 {
			if title == "p50" {
				return float64(pt.p50) / float64(time.Microsecond)
			}
			return float64(pt.p99) / float64(time.Microsecond)
		}
		var path []string
		for _, pt := range s.points {
			path = append(path, fmt.Sprintf("%.1f,%.1f", x(left, pt.rate), y(lat(pt))))
		}
		if len(path) > 1 {
			p(`<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"/>`+"\n", s.color, strings.Join(path, " "))
		}
		for _, pt := range s.points {
			fill := s.color
			if !pt.sustainable {
				fill = "white"
			}
			p(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="%s" stroke-width="1.5"><title>%s %s rps: %s</title></circle>`+"\n",
				x(left, pt.rate), y(lat(pt)), fill, s.color, html.EscapeString(s.name), fmtRate(pt.rate), fmtUs(time.Duration(lat(pt)*float64(time.Microsecond))))
		}
	}
}

// drawLegend names every configuration's colour below the panels.
func drawLegend(p func(string, ...any), all []series) {
	lx, ly := 70.0, float64(panelTop+panelH+52)
	for _, s := range all {
		p(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="2.5"/>`+"\n", lx, lx+22, ly, ly, s.color)
		p(`<text x="%.1f" y="%.1f" dominant-baseline="middle">%s</text>`+"\n", lx+27, ly, html.EscapeString(s.name))
		lx += 40 + 8*float64(len(s.name))
	}
	p(`<text x="%.1f" y="%.1f" dominant-baseline="middle" fill="#555">filled: kept up (p50 bound) in every round; hollow: not</text>`+"\n", lx+10, ly)
}

// niceStep rounds v up to 1, 2 or 5 × 10^k.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

func fmtAxisUs(us float64) string {
	switch {
	case us >= 1000:
		return fmt.Sprintf("%g ms", us/1000)
	default:
		return fmt.Sprintf("%g µs", us)
	}
}
