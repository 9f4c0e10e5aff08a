package analysis

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// MethodSequential is the method reports name for every sequential test.
const MethodSequential = "sequential-mixture-lr"

// Quantiles are the latency quantiles the sequential method tests: the
// median for a shift of the whole distribution, p90 and p99 for a tail
// that grows while the median stays.
var Quantiles = [...]float64{0.5, 0.9, 0.99}

// mixtureLogRatios are the log rate ratios θ = ln(ρ) the mixture averages
// over, with equal weights: gray's events (errors, or durations above a
// threshold) ρ times as likely as stable's, from +5% to ×25.
var mixtureLogRatios = [...]float64{0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2}

// minExpectedExceedances is how many stable durations above a quantile
// threshold the stable history must hold before that quantile is tested:
// a threshold read from fewer would be mostly noise.
const minExpectedExceedances = 5

// eProcess is a one-sided mixture likelihood ratio for "gray's events are
// more likely than stable's", on counts conditional on their total. In a
// window where gray served a share π of the requests that could have an
// event, and e events happened, g of them on gray: if gray and stable are
// alike, which e requests had them is a uniformly random choice, so g is
// hypergeometric, and for every ρ
//
//	E[ρ^g / (πρ + 1 − π)^e] ≤ 1
//
// (the binomial with the same mean dominates the hypergeometric in convex
// order — Hoeffding, "Probability inequalities for sums of bounded random
// variables", 1963, Theorem 4). The product over windows of that ratio is
// then a nonnegative supermartingale with initial value 1, for each ρ and
// for their average, and by Ville's inequality it ever reaches 1/α with
// probability at most α, however many windows are looked at and whenever
// one stops. This is the count-data test of Lindon, Sanden and Shirikian,
// "Rapid Regression Detection in Software Deployments through Sequential
// Testing" (KDD 2022), made conditional on each window's total so that
// neither the base rate nor the traffic need be known or constant.
type eProcess struct {
	logRatio [len(mixtureLogRatios)]float64
	// maxLog is the largest log of the mixture seen so far: its crossing
	// of the boundary is never undone.
	maxLog float64
	// events and grayEvents are the totals, for reports.
	events, grayEvents int64
}

// update adds one window: g of e events on gray, gray serving a share pi.
func (p *eProcess) update(g, e int64, pi float64) {
	if e == 0 || !(pi > 0 && pi < 1) {
		return
	}
	for i, th := range mixtureLogRatios {
		p.logRatio[i] += float64(g)*th - float64(e)*math.Log1p(pi*math.Expm1(th))
	}
	p.events += e
	p.grayEvents += g
	p.maxLog = max(p.maxLog, p.log())
}

// log is the log of the mixture: the mean of the ratios over the grid.
func (p *eProcess) log() float64 {
	m := slices.Max(p.logRatio[:])
	var sum float64
	for _, l := range p.logRatio {
		sum += math.Exp(l - m)
	}
	return m + math.Log(sum/float64(len(p.logRatio)))
}

// rejected reports whether the mixture has ever reached 1/alpha.
func (p *eProcess) rejected(alpha float64) bool { return p.maxLog >= math.Log(1/alpha) }

// pValue is the anytime-valid p-value, 1 over the largest mixture seen.
func (p *eProcess) pValue() float64 { return math.Min(1, math.Exp(-p.maxLog)) }

// Sequential judges a release's rollout window after window on merged
// evidence, holding the chance that a gray as good as stable is ever
// failed to the release's alpha over the whole rollout: every test is an
// eProcess, alpha is split over them once, in advance (docs/analysis.md).
// It keeps state; one Sequential serves one rollout of one release.
type Sequential struct {
	s        Settings
	services []string
	state    map[string]*serviceState
}

type serviceState struct {
	errors  eProcess
	latency [len(Quantiles)]eProcess
	// gray and stable are the sides' evidence over every window so far.
	gray, stable SideEvidence
	routes       map[string]*routeState // by test: a route group, or OtherRoutes
	slotOf       map[string]string      // route group → its test
}

type routeState struct {
	errors       eProcess
	gray, stable Counts
	// window is the last window's counts.
	window RouteEvidence
}

// NewSequential starts a rollout's tests on services.
func NewSequential(s Settings, services []string) *Sequential {
	q := &Sequential{s: s, services: slices.Clone(services), state: map[string]*serviceState{}}
	for _, svc := range services {
		q.state[svc] = &serviceState{routes: map[string]*routeState{}, slotOf: map[string]string{}}
	}
	return q
}

// Alphas are the shares of a release's alpha each sequential test is held
// to: alpha is split evenly over services; within a service evenly over
// the metrics run; errors give half to the service's test and half to its
// route groups, MaxRoutes shares of it whether or not that many are
// seen; latency splits evenly over Quantiles.
type Alphas struct {
	Service, Route, Quantile float64 // errors of the service, errors of one route, one quantile
}

// SplitAlpha is the split of s.Alpha over n services.
func SplitAlpha(s Settings, n int) Alphas {
	perMetric := s.Alpha / float64(max(1, n)) / float64(max(1, s.tests()))
	return Alphas{Service: perMetric / 2, Route: perMetric / 2 / MaxRoutes, Quantile: perMetric / float64(len(Quantiles))}
}

// UpdateSettings replaces the thresholds and actions read each window; the
// tests and their alpha split are kept, as a rollout's guarantee needs.
func (q *Sequential) UpdateSettings(s Settings) {
	alpha, errs, lat := q.s.Alpha, q.s.Errors, q.s.Latency
	q.s = s
	q.s.Alpha, q.s.Errors, q.s.Latency = alpha, errs, lat
}

// Update adds one window's evidence (every node's, merged) to the tests
// and judges the rollout so far. A test fails once its mixture has reached
// its boundary and the effect over the rollout is beyond tolerance; the
// window passes when no test fails and each side of each service served
// at least MinRequests requests in it; else it is inconclusive.
func (q *Sequential) Update(e *Evidence) Report {
	if e == nil {
		return Report{Verdict: Inconclusive, Reason: "no evidence"}
	}
	return q.update(e, []*Evidence{e})
}

// UpdateNodes is Update on one window of several nodes, each node's counts
// tested as a stratum of its own: the same sums as on the merge when every
// node serves the same gray share, and still exact when shares and the
// nodes' own error rates both differ (where the merged totals can lean
// one way: Simpson's paradox). The report shows the merge.
func (q *Sequential) UpdateNodes(nodes []*Evidence) (Report, error) {
	merged, err := Merge(nodes...)
	if err != nil {
		return Report{Verdict: Inconclusive, Reason: err.Error()}, err
	}
	return q.update(merged, nodes), nil
}

func (q *Sequential) update(merged *Evidence, nodes []*Evidence) Report {
	if len(q.services) == 0 {
		return Report{Verdict: Inconclusive, Reason: "no service to compare"}
	}
	alphas := SplitAlpha(q.s, len(q.services))
	rep := Report{Verdict: Pass}
	for _, name := range q.services {
		var strata []*ServiceEvidence
		for _, n := range nodes {
			if se := n.Services[name]; se != nil {
				strata = append(strata, se)
			}
		}
		se := merged.Services[name]
		if se == nil {
			se = &ServiceEvidence{}
		}
		sr := q.service(name, se, strata, alphas)
		if sr.Verdict.rank() > rep.Verdict.rank() || rep.Reason == "" {
			rep.Reason = sr.Service + ": " + sr.Reason
		}
		rep.Verdict = worst(rep.Verdict, sr.Verdict)
		rep.Services = append(rep.Services, sr)
	}
	return rep
}

// service updates one service's tests with its strata (nodes) and judges
// it; se is their merge.
func (q *Sequential) service(name string, se *ServiceEvidence, strata []*ServiceEvidence, alphas Alphas) ServiceReport {
	st := q.state[name]
	sr := ServiceReport{Service: name, Gray: summarizeEvidence(&se.Gray), Stable: summarizeEvidence(&se.Stable), Verdict: Pass}
	if total := se.Gray.Requests + se.Stable.Requests; total > 0 {
		sr.GrayRequestShare = 100 * float64(se.Gray.Requests) / float64(total)
	}
	if all := se.Callers.Count(); all > 0 {
		callerShare := 100 * float64(sr.Gray.Callers) / float64(all)
		sr.GrayCallerShare = &callerShare
	}
	if q.s.Errors {
		st.assignRoutes(se.Routes)
		for _, n := range strata {
			st.errors.update(n.Gray.Errors, n.Gray.Errors+n.Stable.Errors, share(n.Gray.Requests, n.Stable.Requests))
			for slot, r := range st.bySlot(n.Routes) {
				st.routes[slot].errors.update(r.Gray.Errors, r.Gray.Errors+r.Stable.Errors, share(r.Gray.Requests, r.Stable.Requests))
			}
		}
		st.addRoutes(se.Routes)
	}
	if q.s.Latency {
		st.updateLatency(strata)
	}
	st.gray.merge(&se.Gray)
	st.stable.merge(&se.Stable)
	if q.s.Errors {
		sr.Tests = append(sr.Tests, q.errorTest(&st.errors, "", alphas.Service,
			RouteEvidence{Counts{st.gray.Requests, st.gray.Errors}, Counts{st.stable.Requests, st.stable.Errors}},
			RouteEvidence{Counts{se.Gray.Requests, se.Gray.Errors}, Counts{se.Stable.Requests, se.Stable.Errors}}))
		for _, r := range slices.Sorted(maps.Keys(st.routes)) {
			rs := st.routes[r]
			sr.Tests = append(sr.Tests, q.errorTest(&rs.errors, r, alphas.Route, RouteEvidence{rs.gray, rs.stable}, rs.window))
		}
	}
	if q.s.Latency {
		for i, quant := range Quantiles {
			sr.Tests = append(sr.Tests, q.latencyTest(&st.latency[i], quant, alphas.Quantile,
				[2]*Histogram{&st.gray.Latency, &st.stable.Latency}, [2]*Histogram{&se.Gray.Latency, &se.Stable.Latency}))
		}
	}
	sr.Reason = "no test found gray worse than stable"
	for _, t := range sr.Tests {
		if t.Verdict.rank() > sr.Verdict.rank() {
			sr.Reason = t.Name() + ": " + t.Detail
		}
		sr.Verdict = worst(sr.Verdict, t.Verdict)
	}
	if sr.Verdict == Pass {
		for _, g := range []struct {
			name string
			n    int64
		}{{"gray", se.Gray.Requests}, {"stable", se.Stable.Requests}} {
			if g.n < int64(q.s.MinRequests) {
				sr.Verdict = Inconclusive
				sr.Reason = fmt.Sprintf("%s served %d requests in this window; at least %d needed to pass", g.name, g.n, q.s.MinRequests)
				break
			}
		}
	}
	return sr
}

// Name says which test t is: its metric, and its route group or quantile
// when it has one ("errors", "errors on /cart", "latency p99").
func (t TestResult) Name() string {
	switch {
	case t.Route != "":
		return t.Metric + " on " + t.Route
	case t.Quantile > 0:
		return fmt.Sprintf("%s p%g", t.Metric, 100*t.Quantile)
	}
	return t.Metric
}

// share is gray's share of the requests, NaN when either side has none
// (such a window says nothing about the difference).
func share(gray, stable int64) float64 {
	if gray <= 0 || stable <= 0 {
		return math.NaN()
	}
	return float64(gray) / float64(gray+stable)
}

// assignRoutes gives each route group of a window its test, up to
// MaxRoutes of them; groups first seen after MaxRoutes-1 others are tested
// together as OtherRoutes. Groups are taken in name order so that which
// ones share does not depend on map order.
func (st *serviceState) assignRoutes(routes map[string]*RouteEvidence) {
	for _, name := range slices.Sorted(maps.Keys(routes)) {
		if _, ok := st.slotOf[name]; ok {
			continue
		}
		slot := name
		if len(st.routes) >= MaxRoutes-1 || name == OtherRoutes {
			slot = OtherRoutes
		}
		st.slotOf[name] = slot
		if st.routes[slot] == nil {
			st.routes[slot] = &routeState{}
		}
	}
}

// bySlot is routes' counts summed per test (assignRoutes has seen them).
func (st *serviceState) bySlot(routes map[string]*RouteEvidence) map[string]*RouteEvidence {
	out := map[string]*RouteEvidence{}
	for name, r := range routes {
		slot := st.slotOf[name]
		if out[slot] == nil {
			out[slot] = &RouteEvidence{}
		}
		out[slot].Gray.add(r.Gray)
		out[slot].Stable.add(r.Stable)
	}
	return out
}

// addRoutes records a window's route counts: the window's, and the
// rollout's.
func (st *serviceState) addRoutes(routes map[string]*RouteEvidence) {
	for _, rs := range st.routes {
		rs.window = RouteEvidence{}
	}
	for slot, r := range st.bySlot(routes) {
		rs := st.routes[slot]
		rs.window = *r
		rs.gray.add(r.Gray)
		rs.stable.add(r.Stable)
	}
}

// updateLatency adds a window's durations to each quantile's test: the
// events are successful requests slower than stable's quantile over the
// windows before this one. The threshold is fixed before the window's
// durations are seen, so the test stays valid whatever stable's
// distribution does over time.
func (st *serviceState) updateLatency(strata []*ServiceEvidence) {
	hist := &st.stable.Latency
	for i, quant := range Quantiles {
		if float64(hist.Count())*(1-quant) < minExpectedExceedances {
			continue
		}
		b := hist.QuantileBucket(quant)
		for _, n := range strata {
			gray, stable := &n.Gray.Latency, &n.Stable.Latency
			g, s := gray.Above(b), stable.Above(b)
			st.latency[i].update(int64(g), int64(g+s), share(int64(gray.Count()), int64(stable.Count())))
		}
	}
}

func (q *Sequential) errorTest(p *eProcess, route string, alpha float64, rollout, window RouteEvidence) TestResult {
	t := TestResult{Metric: config.MetricErrors, Method: MethodSequential, Route: route, Statistic: p.log(),
		Boundary: math.Log(1 / alpha), P: p.pValue(), Alpha: alpha, Threshold: q.s.ErrorTolerance, Critical: q.s.ErrorCritical}
	g, s := rollout.Gray, rollout.Stable
	if g.Requests > 0 && s.Requests > 0 {
		t.Effect = countRate(g) - countRate(s)
	}
	windowEffect := math.NaN()
	if min(window.Gray.Requests, window.Stable.Requests) >= int64(q.s.MinRequests) {
		windowEffect = countRate(window.Gray) - countRate(window.Stable)
	}
	sides := fmt.Sprintf("gray %.2f%% of %d vs stable %.2f%% of %d errors over the rollout", countRate(g), g.Requests, countRate(s), s.Requests)
	t.Verdict, t.Detail = sequentialVerdict(t, p.rejected(alpha), windowEffect, "points", sides)
	return t
}

func countRate(c Counts) float64 {
	if c.Requests == 0 {
		return 0
	}
	return 100 * float64(c.Errors) / float64(c.Requests)
}

// latencyTest is one quantile's test: rollout holds gray's and stable's
// histograms over every window so far, window the last one's.
func (q *Sequential) latencyTest(p *eProcess, quant, alpha float64, rollout, window [2]*Histogram) TestResult {
	t := TestResult{Metric: config.MetricLatency, Method: MethodSequential, Quantile: quant, Statistic: p.log(),
		Boundary: math.Log(1 / alpha), P: p.pValue(), Alpha: alpha, Critical: float64(q.s.LatencyCritical) / float64(time.Millisecond)}
	gray, stable := rollout[0], rollout[1]
	if gray.Count() == 0 || stable.Count() == 0 {
		t.Verdict, t.Detail = Pass, "no successful request on a side yet"
		return t
	}
	g, s := gray.Quantile(quant), stable.Quantile(quant)
	t.Effect = g - s
	t.Threshold = math.Max(float64(q.s.MinEffect)/float64(time.Millisecond), q.s.LatencyTolerance/100*s)
	windowEffect := math.NaN()
	if min(window[0].Count(), window[1].Count()) >= uint64(q.s.MinRequests) {
		windowEffect = window[0].Quantile(quant) - window[1].Quantile(quant)
	}
	sides := fmt.Sprintf("gray p%g %.1fms vs stable %.1fms over the rollout", 100*quant, g, s)
	t.Verdict, t.Detail = sequentialVerdict(t, p.rejected(alpha), windowEffect, "ms", sides)
	return t
}

// sequentialVerdict is verdict's rule for a sequential test, the mixture
// having reached its boundary standing for significance. Once it has, a
// window whose own effect reaches the critical level (with at least
// min_requests a side) is critical too, so a release that turns much worse
// late is not diluted by its healthy past.
func sequentialVerdict(t TestResult, rejected bool, windowEffect float64, unit, sides string) (Verdict, string) {
	stat := fmt.Sprintf("log e-value %.2f, boundary %.2f", t.Statistic, t.Boundary)
	switch {
	case rejected && t.Critical > 0 && t.Effect >= t.Critical:
		return Critical, fmt.Sprintf("%s: +%.2f %s ≥ critical %.2f (%s reached)", sides, t.Effect, unit, t.Critical, stat)
	case rejected && t.Critical > 0 && windowEffect >= t.Critical:
		return Critical, fmt.Sprintf("%s; this window +%.2f %s ≥ critical %.2f (%s reached)", sides, windowEffect, unit, t.Critical, stat)
	case rejected && t.Effect > t.Threshold:
		return Fail, fmt.Sprintf("%s: +%.2f %s > tolerance %.2f (%s reached)", sides, t.Effect, unit, t.Threshold, stat)
	case rejected:
		return Pass, fmt.Sprintf("%s: %+.2f %s within tolerance %.2f (%s reached)", sides, t.Effect, unit, t.Threshold, stat)
	}
	return Pass, fmt.Sprintf("%s: %+.2f %s, boundary not reached (%s)", sides, t.Effect, unit, stat)
}

func summarizeEvidence(s *SideEvidence) SideSummary {
	out := SideSummary{Requests: int(s.Requests), Errors: int(s.Errors), Callers: s.Callers.Count()}
	if s.Requests > 0 {
		out.ErrorRate = 100 * float64(s.Errors) / float64(s.Requests)
	}
	if s.Latency.Count() > 0 {
		out.P50, out.P90, out.P99 = s.Latency.Quantile(0.5), s.Latency.Quantile(0.9), s.Latency.Quantile(0.99)
	}
	return out
}
