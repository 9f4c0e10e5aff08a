package loadbench

import (
	"slices"
	"sort"
	"time"
)

// Figures across rounds: one configuration at one rate (agg), its
// per-round maximum rates, and the medians every table reads.

// agg is one configuration at one rate, across rounds: medians of the
// per-round figures, sums of the counts.
type agg struct {
	rounds              int
	p50, p90, p99, p999 time.Duration
	svcP50, svcP99      time.Duration
	lagP99              time.Duration
	cpu                 map[string]float64
	otherCPU, stealCPU  float64
	keepsUp             int
	sent, errors, late  int
	routingOK           int
	sustainable         int
	wantGray, gotGray   int64
	wantStable, gotStbl int64
}

func aggregate(res *Result, config string, rate int) (agg, bool) {
	var steps []Step
	for _, s := range res.Steps {
		if s.Config == config && s.Rate == rate && s.rated() {
			steps = append(steps, s)
		}
	}
	if len(steps) == 0 {
		return agg{}, false
	}
	a := agg{rounds: len(steps), cpu: map[string]float64{}}
	med := func(f func(Step) time.Duration) time.Duration {
		v := make([]float64, len(steps))
		for i, s := range steps {
			v[i] = float64(f(s))
		}
		return time.Duration(median(v))
	}
	a.p50 = med(func(s Step) time.Duration { return s.P50 })
	a.p90 = med(func(s Step) time.Duration { return s.P90 })
	a.p99 = med(func(s Step) time.Duration { return s.P99 })
	a.p999 = med(func(s Step) time.Duration { return s.P999 })
	a.svcP50 = med(func(s Step) time.Duration { return s.ServiceP50 })
	a.svcP99 = med(func(s Step) time.Duration { return s.ServiceP99 })
	a.lagP99 = med(func(s Step) time.Duration { return s.SendLagP99 })
	var other []float64
	for _, s := range steps {
		other = append(other, s.OtherCPU)
	}
	a.otherCPU = median(other)
	var steal []float64
	for _, s := range steps {
		steal = append(steal, s.StealCPU)
	}
	a.stealCPU = median(steal)
	for _, role := range []string{"envoy", "extproc", "upstream", "client"} {
		var v []float64
		for _, s := range steps {
			if c, ok := s.CPU[role]; ok {
				v = append(v, c)
			}
		}
		if len(v) > 0 {
			a.cpu[role] = median(v)
		}
	}
	for _, s := range steps {
		a.sent += s.Sent
		a.errors += s.Errors
		a.late += s.Late
		if s.RoutingOK {
			a.routingOK++
		}
		if s.Sustainable {
			a.sustainable++
		}
		if s.KeepsUp {
			a.keepsUp++
		}
		a.wantGray += int64(s.WantGray)
		a.gotGray += s.GotGray
		a.wantStable += int64(s.WantStable)
		a.gotStbl += s.GotStable
	}
	return a, true
}

// rated reports whether s is one of a run's fixed-rate or step-up steps,
// the ones the tables read (not the profiling run's).
func (s Step) rated() bool { return s.Kind == "fixed" || s.Kind == "ladder" }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// maxRates are a configuration's per-round maximum sustainable rates
// (p99 bound, the definition).
func maxRates(res *Result, config string) []float64 {
	return runRates(res, config, func(r Run) int { return r.MaxRate })
}

// maxRatesP50 are the per-round maximum rates under the p50 bound.
func maxRatesP50(res *Result, config string) []float64 {
	return runRates(res, config, func(r Run) int { return r.MaxRateP50 })
}

func runRates(res *Result, config string, f func(Run) int) []float64 {
	var v []float64
	for _, r := range res.Runs {
		if r.Config == config {
			v = append(v, float64(f(r)))
		}
	}
	return v
}

func stepRates(res *Result, config string) []int {
	seen := map[int]bool{}
	var out []int
	for _, s := range res.Steps {
		if s.Config == config && s.rated() && !seen[s.Rate] {
			seen[s.Rate] = true
			out = append(out, s.Rate)
		}
	}
	sort.Ints(out)
	return out
}
