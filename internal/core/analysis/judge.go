package analysis

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// Verdict is the outcome of one window.
type Verdict string

// Verdicts, from best to worst.
const (
	Pass         Verdict = "pass"
	Inconclusive Verdict = "inconclusive"
	Fail         Verdict = "fail"
	Critical     Verdict = "critical"
)

// Verdicts lists every verdict, best first.
var Verdicts = []Verdict{Pass, Inconclusive, Fail, Critical}

func (v Verdict) rank() int {
	for i, w := range Verdicts {
		if v == w {
			return i
		}
	}
	return len(Verdicts)
}

func worst(a, b Verdict) Verdict {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// minLatencySamples is the fewest successful requests per side the latency
// test runs on.
const minLatencySamples = 10

// Settings are a release's analysis settings, resolved.
type Settings struct {
	// Method is config.MethodSequential or config.MethodFixed.
	Method      string
	MinRequests int
	Alpha       float64
	Errors      bool
	// ErrorTolerance and ErrorCritical are percentage points of error
	// rate gray may have above stable; ErrorCritical 0 is off.
	ErrorTolerance, ErrorCritical float64
	Latency                       bool
	// LatencyTolerance is a percentage of stable's median.
	LatencyTolerance float64
	MinEffect        time.Duration
	// LatencyCritical 0 is off.
	LatencyCritical time.Duration
}

// SettingsFrom resolves a validated config analysis.
func SettingsFrom(a *config.Analysis) Settings {
	val := func(p *float64, def float64) float64 {
		if p == nil {
			return def
		}
		return *p
	}
	return Settings{
		Method:           a.Method,
		MinRequests:      a.MinRequests,
		Alpha:            a.Alpha,
		Errors:           a.Uses(config.MetricErrors),
		ErrorTolerance:   val(a.Errors.Tolerance, config.DefaultErrorTolerance),
		ErrorCritical:    val(a.Errors.Critical, config.DefaultErrorCritical),
		Latency:          a.Uses(config.MetricLatency),
		LatencyTolerance: val(a.Latency.Tolerance, config.DefaultLatencyTolerance),
		MinEffect:        a.Latency.MinEffect.Duration,
		LatencyCritical:  a.Latency.Critical.Duration,
	}
}

func (s Settings) tests() int {
	n := 0
	if s.Errors {
		n++
	}
	if s.Latency {
		n++
	}
	return n
}

// Report is the judgement of one window: the verdict, the one line that
// says why, and every service's sides and tests.
type Report struct {
	Verdict  Verdict         `json:"verdict"`
	Reason   string          `json:"reason"`
	Services []ServiceReport `json:"services"`
}

// ServiceReport is one service's part of a window.
type ServiceReport struct {
	Service string      `json:"service"`
	Gray    SideSummary `json:"gray"`
	Stable  SideSummary `json:"stable"`
	// GrayRequestShare and GrayCallerShare are the percentages of the
	// service's requests and distinct callers that gray served.
	GrayRequestShare float64      `json:"gray_request_share"`
	GrayCallerShare  *float64     `json:"gray_caller_share,omitempty"`
	Verdict          Verdict      `json:"verdict"`
	Reason           string       `json:"reason"`
	Tests            []TestResult `json:"tests,omitempty"`
}

// SideSummary is one side as a report shows it; latencies in milliseconds
// over successful requests (NaN-free: 0 when there are none).
type SideSummary struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	P50       float64 `json:"p50_ms"`
	P90       float64 `json:"p90_ms"`
	P99       float64 `json:"p99_ms"`
	Callers   int     `json:"callers"`
}

// TestResult is one test on one service.
type TestResult struct {
	Metric    string  `json:"metric"`
	Method    string  `json:"method"`
	Statistic float64 `json:"statistic"`
	P         float64 `json:"p"`
	// Alpha is this test's share of the release's alpha.
	Alpha float64 `json:"alpha"`
	// Effect is gray minus stable: percentage points of error rate, or the
	// Hodges–Lehmann shift in milliseconds.
	Effect float64 `json:"effect"`
	// Threshold is the effect above which a significant result fails;
	// Critical the one from which it is critical (0: off).
	Threshold float64 `json:"threshold"`
	Critical  float64 `json:"critical,omitempty"`
	Verdict   Verdict `json:"verdict"`
	Detail    string  `json:"detail"`
	// Route and Quantile say which route group or latency quantile a
	// sequential test is on ("" and 0: the whole service, the median of
	// the fixed-window test).
	Route    string  `json:"route,omitempty"`
	Quantile float64 `json:"quantile,omitempty"`
	// Boundary is the log of 1/Alpha a sequential test's Statistic (the
	// log of its e-value) must reach to be significant.
	Boundary float64 `json:"boundary,omitempty"`
}

// Judge judges one window. A service side under the sample gate makes the
// window inconclusive, never a pass; otherwise each test fails only when
// gray is both significantly worse than stable (p below its share of
// alpha, Bonferroni over every test of the window) and worse by more than
// the tolerance. The window's verdict is the worst of its services'.
func Judge(s Settings, obs *Observations) Report {
	rep := Report{Verdict: Pass}
	if obs == nil || len(obs.Services) == 0 {
		return Report{Verdict: Inconclusive, Reason: "no service to compare"}
	}
	alpha := s.Alpha / float64(max(1, s.tests()*len(obs.Services)))
	for _, o := range obs.Services {
		sr := judgeService(s, alpha, o)
		if sr.Verdict.rank() > rep.Verdict.rank() || rep.Reason == "" {
			rep.Reason = sr.Service + ": " + sr.Reason
		}
		rep.Verdict = worst(rep.Verdict, sr.Verdict)
		rep.Services = append(rep.Services, sr)
	}
	return rep
}

func judgeService(s Settings, alpha float64, o Observation) ServiceReport {
	// A source need not sort its samples; percentiles and medians need it.
	o.Gray.Latencies, o.Stable.Latencies = sorted(o.Gray.Latencies), sorted(o.Stable.Latencies)
	sr := ServiceReport{Service: o.Service, Gray: summarize(o.Gray), Stable: summarize(o.Stable), Verdict: Pass}
	if total := o.Gray.Requests + o.Stable.Requests; total > 0 {
		sr.GrayRequestShare = 100 * float64(o.Gray.Requests) / float64(total)
	}
	if o.Callers > 0 {
		share := 100 * float64(o.Gray.Callers) / float64(o.Callers)
		sr.GrayCallerShare = &share
	}
	for _, g := range []struct {
		name string
		n    int
	}{{"gray", o.Gray.Requests}, {"stable", o.Stable.Requests}} {
		if g.n < s.MinRequests {
			sr.Verdict = Inconclusive
			sr.Reason = fmt.Sprintf("%s served %d requests; at least %d needed", g.name, g.n, s.MinRequests)
			return sr
		}
	}
	if s.Errors {
		sr.Tests = append(sr.Tests, errorTest(s, alpha, o))
	}
	if s.Latency {
		sr.Tests = append(sr.Tests, latencyTest(s, alpha, o))
	}
	sr.Reason = "no test found gray worse than stable"
	for _, t := range sr.Tests {
		if t.Verdict.rank() > sr.Verdict.rank() {
			sr.Reason = t.Metric + ": " + t.Detail
		}
		sr.Verdict = worst(sr.Verdict, t.Verdict)
	}
	return sr
}

func summarize(s Side) SideSummary {
	out := SideSummary{Requests: s.Requests, Errors: s.Errors, Callers: s.Callers}
	if s.Requests > 0 {
		out.ErrorRate = 100 * float64(s.Errors) / float64(s.Requests)
	}
	if len(s.Latencies) > 0 {
		out.P50, out.P90, out.P99 = Percentile(s.Latencies, 0.5), Percentile(s.Latencies, 0.9), Percentile(s.Latencies, 0.99)
	}
	return out
}

func errorTest(s Settings, alpha float64, o Observation) TestResult {
	g, st := o.Gray, o.Stable
	pt := MoreFailures(g.Errors, g.Requests, st.Errors, st.Requests)
	effect := 100 * (float64(g.Errors)/float64(g.Requests) - float64(st.Errors)/float64(st.Requests))
	t := TestResult{Metric: config.MetricErrors, Method: pt.Method, Statistic: pt.Statistic, P: pt.P, Alpha: alpha,
		Effect: effect, Threshold: s.ErrorTolerance, Critical: s.ErrorCritical}
	t.Verdict, t.Detail = verdict(t, "points", fmt.Sprintf("gray %.2f%% vs stable %.2f%% errors", rate(g), rate(st)))
	return t
}

func rate(s Side) float64 { return 100 * float64(s.Errors) / float64(s.Requests) }

func latencyTest(s Settings, alpha float64, o Observation) TestResult {
	g, st := o.Gray.Latencies, o.Stable.Latencies
	t := TestResult{Metric: config.MetricLatency, Method: MethodMannWhitney, P: 1, Alpha: alpha,
		Critical: float64(s.LatencyCritical) / float64(time.Millisecond)}
	if len(g) < minLatencySamples || len(st) < minLatencySamples {
		t.Verdict = Inconclusive
		t.Detail = fmt.Sprintf("%d and %d successful requests (gray, stable); at least %d a side needed", len(g), len(st), minLatencySamples)
		return t
	}
	stableMedian := Median(st)
	t.Threshold = math.Max(float64(s.MinEffect)/float64(time.Millisecond), s.LatencyTolerance/100*stableMedian)
	res, err := Slower(g, st)
	if err != nil {
		t.Verdict, t.Detail = Pass, "no difference to test: "+err.Error()
		return t
	}
	t.Statistic, t.P, t.Effect = res.U, res.P, res.Shift
	t.Verdict, t.Detail = verdict(t, "ms", fmt.Sprintf("gray median %.1fms vs stable %.1fms", Median(g), stableMedian))
	return t
}

// verdict applies the rule shared by every test: significant and beyond
// the threshold fails, beyond the critical level is critical.
func verdict(t TestResult, unit, sides string) (Verdict, string) {
	significant := t.P < t.Alpha
	switch {
	case significant && t.Critical > 0 && t.Effect >= t.Critical:
		return Critical, fmt.Sprintf("%s: +%.2f %s ≥ critical %.2f (p%s < %.3g)", sides, t.Effect, unit, t.Critical, pval(t.P), t.Alpha)
	case significant && t.Effect > t.Threshold:
		return Fail, fmt.Sprintf("%s: +%.2f %s > tolerance %.2f (p%s < %.3g)", sides, t.Effect, unit, t.Threshold, pval(t.P), t.Alpha)
	case significant:
		return Pass, fmt.Sprintf("%s: %+.2f %s within tolerance %.2f (p%s)", sides, t.Effect, unit, t.Threshold, pval(t.P))
	}
	return Pass, fmt.Sprintf("%s: %+.2f %s, not significant (p%s ≥ %.3g)", sides, t.Effect, unit, pval(t.P), t.Alpha)
}

func sorted(x []float64) []float64 {
	if slices.IsSorted(x) {
		return x
	}
	x = slices.Clone(x)
	slices.Sort(x)
	return x
}

// pval prints "=p"; below double precision's reach, "<1e-15" instead of
// a meaningless 0.
func pval(p float64) string {
	if p < 1e-15 {
		return "<1e-15"
	}
	return fmt.Sprintf("=%.3g", p)
}
