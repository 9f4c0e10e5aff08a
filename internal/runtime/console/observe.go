package console

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

// The observed gray share comes from graymesh's own decision counter
// (graymesh_decisions_total, what /metrics serves): of the decisions made
// at the edge, the share that a release admitted to its environment. The
// console samples the counter and differences samples, so the share is
// over a window (the last minute) or since the config version in force
// took effect.

const (
	decisionsMetric = "graymesh_decisions_total"
	// stressMetric counts stress-test requests, which are not decisions
	// of callers: shown apart, never in the share.
	stressMetric = "graymesh_stress_requests_total"
	// keepSamples bounds the samples held: 10 minutes at 2 s.
	keepSamples = 300
	// freshSample is the age under which a page reuses the newest sample
	// rather than taking one.
	freshSample = time.Second
	// viewerGone is how long after a page last showed observed shares the
	// console stops sampling: an open page refreshes every 2 s, so a
	// minute without one means nobody is looking. Every node of a
	// DaemonSet runs a console; most are never opened.
	viewerGone = time.Minute
)

type sample struct {
	at      time.Time
	version string
	// edge counts the edge decisions so far; gray, per release, those it
	// admitted to its (non-stable) environment.
	edge float64
	gray map[string]float64
	// hashed counts, per release, the decisions its percentage decided
	// (admitted by it, or not selected), byPercent those it admitted;
	// named the admissions by a list or rule (whitelist, claims, cidrs,
	// headers, membership); anonymous the decisions without a usable
	// identity (no bucket to compare).
	hashed, byPercent, named map[string]float64
	anonymous                float64
	// stress counts, per release, the stress-test requests its markers
	// brought to the edge (shadow load; gray or, killed, stable).
	stress map[string]float64
	// inForce is, per release, the percentage in force when the sample
	// was taken: 0 while the release was killed.
	inForce map[string]float64
}

type observer struct {
	d       *admin.Service
	mu      sync.Mutex
	samples []sample // oldest first
	// viewed is when a page last showed observed shares (Unix ns).
	viewed atomic.Int64
}

func newObserver(d *admin.Service) *observer { return &observer{d: d} }

// sample reads the counters now.
func (o *observer) sample() {
	s := newSample(time.Now(), o.d.Config().Version)
	releases, _ := o.d.Releases(context.Background())
	for _, rs := range releases {
		s.inForce[rs.Name] = percentInForce(rs)
	}
	fams, err := o.d.Gatherer().Gather()
	if err != nil {
		return
	}
	s.read(fams)
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.samples) == keepSamples {
		o.samples = append(o.samples[:0], o.samples[1:]...)
	}
	o.samples = append(o.samples, s)
}

func newSample(at time.Time, version string) sample {
	return sample{at: at, version: version, gray: map[string]float64{}, inForce: map[string]float64{},
		hashed: map[string]float64{}, byPercent: map[string]float64{}, named: map[string]float64{}, stress: map[string]float64{}}
}

// read counts the edge's decisions and stress-test requests from the
// gathered metric families.
func (s *sample) read(fams []*dto.MetricFamily) {
	for _, f := range fams {
		name := f.GetName()
		if name != decisionsMetric && name != stressMetric {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch {
			case labels["hop"] != "edge":
			case name == stressMetric:
				s.stress[labels["release"]] += m.GetCounter().GetValue()
			default:
				s.count(labels["release"], labels["env"], labels["reason"], m.GetCounter().GetValue())
			}
		}
	}
}

// count adds v edge decisions of release, environment and reason.
func (s *sample) count(release, env, reason string, v float64) {
	s.edge += v
	admitted := env != "" && env != config.Stable && release != ""
	if admitted {
		s.gray[release] += v
	}
	switch gray.Reason(reason) {
	case gray.ReasonPercent:
		s.hashed[release] += v
		s.byPercent[release] += v
	case gray.ReasonNotSelected:
		s.hashed[release] += v
	case gray.ReasonNoIdentity, gray.ReasonInvalidToken:
		s.anonymous += v
	default:
		if admitted {
			s.named[release] += v
		}
	}
}

// due reports whether the periodic sampler should sample at now: while
// a page showing observed shares was open within viewerGone, or when the
// config version changed since the newest sample, whose counts are the
// baseline of the share since that version. Idle, a tick costs a version
// comparison, not a read of every metric.
func (o *observer) due(now time.Time) bool {
	if now.Sub(time.Unix(0, o.viewed.Load())) < viewerGone {
		return true
	}
	version := o.d.Config().Version
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.samples) == 0 || o.samples[len(o.samples)-1].version != version
}

// fresh notes that a page shows observed shares and takes a sample
// unless the newest is recent.
func (o *observer) fresh() {
	o.viewed.Store(time.Now().UnixNano())
	o.mu.Lock()
	stale := len(o.samples) == 0 || time.Since(o.samples[len(o.samples)-1].at) > freshSample
	o.mu.Unlock()
	if stale {
		o.sample()
	}
}

// share is an observed gray share: Gray of Total edge decisions, counted
// from From on; of them, Hashed were decided by the release's percentage
// (ByPercent admitted), Named admitted by a list or rule, Anonymous had no
// usable identity. Stress counts the release's stress-test requests
// apart: shadow load, in none of the other counts.
type share struct {
	Gray, Total                         float64
	Hashed, ByPercent, Named, Anonymous float64
	Stress                              float64
	From                                time.Time
}

// HashedKnown reports whether the percentage decided any caller.
func (s share) HashedKnown() bool { return s.Hashed > 0 }

// HashedPercent is the share of the callers the percentage decided that it
// admitted: what compares with the configured percentage.
func (s share) HashedPercent() float64 {
	if s.Hashed == 0 {
		return 0
	}
	return 100 * s.ByPercent / s.Hashed
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
	return share{Gray: b.gray[release] - a.gray[release], Total: b.edge - a.edge, From: a.at,
		Hashed: b.hashed[release] - a.hashed[release], ByPercent: b.byPercent[release] - a.byPercent[release],
		Named: b.named[release] - a.named[release], Anonymous: b.anonymous - a.anonymous,
		Stress: b.stress[release] - a.stress[release]}
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
func percentInForce(rs admin.ReleaseStatus) float64 {
	if rs.State == config.StateKilled {
		return 0
	}
	return rs.Percent
}
