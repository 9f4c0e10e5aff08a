package console

import (
	"sync"
	"time"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/daemon"
)

// The observed gray share comes from graymesh's own decision counter
// (graymesh_decisions_total, what /metrics serves): of the decisions made
// at the edge, the share that a release admitted to its environment. The
// console samples the counter and differences samples, so the share is
// over a window (the last minute) or since the config version in force
// took effect.

const (
	decisionsMetric = "graymesh_decisions_total"
	// keepSamples bounds the samples held: 10 minutes at 2 s.
	keepSamples = 300
	// freshSample is the age under which a page reuses the newest sample
	// rather than taking one.
	freshSample = time.Second
)

type sample struct {
	at      time.Time
	version string
	// edge counts the edge decisions so far; gray, per release, those it
	// admitted to its (non-stable) environment.
	edge float64
	gray map[string]float64
	// inForce is, per release, the percentage in force when the sample
	// was taken: 0 while the release was killed.
	inForce map[string]float64
}

type observer struct {
	d       *daemon.Daemon
	mu      sync.Mutex
	samples []sample // oldest first
}

func newObserver(d *daemon.Daemon) *observer { return &observer{d: d} }

// sample reads the counters now.
func (o *observer) sample() {
	s := sample{at: time.Now(), version: o.d.Config().Version, gray: map[string]float64{}, inForce: map[string]float64{}}
	for _, rs := range o.d.Releases() {
		s.inForce[rs.Name] = percentInForce(rs)
	}
	fams, err := o.d.Gatherer().Gather()
	if err != nil {
		return
	}
	for _, f := range fams {
		if f.GetName() != decisionsMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["hop"] != "edge" {
				continue
			}
			v := m.GetCounter().GetValue()
			s.edge += v
			if env := labels["env"]; env != "" && env != "stable" && labels["release"] != "" {
				s.gray[labels["release"]] += v
			}
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.samples) == keepSamples {
		o.samples = append(o.samples[:0], o.samples[1:]...)
	}
	o.samples = append(o.samples, s)
}

// fresh takes a sample unless the newest is recent.
func (o *observer) fresh() {
	o.mu.Lock()
	stale := len(o.samples) == 0 || time.Since(o.samples[len(o.samples)-1].at) > freshSample
	o.mu.Unlock()
	if stale {
		o.sample()
	}
}

// share is an observed gray share: Gray of Total edge decisions, counted
// from From on.
type share struct {
	Gray, Total float64
	From        time.Time
}

// Known reports whether any decision was counted.
func (s share) Known() bool { return s.Total > 0 }

// Percent is the share in percent.
func (s share) Percent() float64 {
	if s.Total == 0 {
		return 0
	}
	return 100 * s.Gray / s.Total
}

func between(release string, a, b sample) share {
	return share{Gray: b.gray[release] - a.gray[release], Total: b.edge - a.edge, From: a.at}
}

// window is release's share over the last d.
func (o *observer) window(release string, d time.Duration) share {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.samples) < 2 {
		return share{}
	}
	last := o.samples[len(o.samples)-1]
	first := last
	for i := len(o.samples) - 2; i >= 0 && last.at.Sub(o.samples[i].at) <= d; i-- {
		first = o.samples[i]
	}
	return between(release, first, last)
}

// sinceVersion is release's share since the config version in force was
// first sampled.
func (o *observer) sinceVersion(release string) (share, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.samples) == 0 {
		return share{}, ""
	}
	last := o.samples[len(o.samples)-1]
	first := last
	for i := len(o.samples) - 2; i >= 0 && o.samples[i].version == last.version; i-- {
		first = o.samples[i]
	}
	return between(release, first, last), last.version
}

// point is one interval's observed share, for the chart.
type point struct {
	At      time.Time
	Percent float64
	Total   float64
}

// series is release's share per interval of at least step, oldest first,
// over the samples held.
func (o *observer) series(release string, step time.Duration) []point {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []point
	for i, j := 0, 1; j < len(o.samples); j++ {
		a, b := o.samples[i], o.samples[j]
		if b.at.Sub(a.at) < step {
			continue
		}
		// An interval without traffic is kept (Total 0): the chart breaks
		// its line there rather than joining across the gap.
		s := between(release, a, b)
		out = append(out, point{At: b.at, Percent: s.Percent(), Total: s.Total})
		i = j
	}
	return out
}

// targetAt is the percentage in force at a sample.
type targetAt struct {
	At      time.Time
	Percent float64
}

// targets is release's percentage in force at every sample held, oldest
// first.
func (o *observer) targets(release string) []targetAt {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]targetAt, 0, len(o.samples))
	for _, s := range o.samples {
		if p, ok := s.inForce[release]; ok {
			out = append(out, targetAt{At: s.at, Percent: p})
		}
	}
	return out
}

// percentInForce is the percentage a release admits now: none while it
// is killed, whatever its configured percentage.
func percentInForce(rs daemon.ReleaseStatus) float64 {
	if rs.State == config.StateKilled {
		return 0
	}
	return rs.Percent
}
