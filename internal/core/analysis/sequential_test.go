package analysis

import (
	"math"
	"strings"
	"testing"
)

// TestEProcessHoldsAlphaUnderTheNull: with gray and stable alike, the
// mixture reaches 1/α in at most a share α of 2,000 runs of 200 windows
// each (500 under the race detector; within the 95% interval), at a base rate and a gray share that
// change every window; and it is no empty promise: a gray failing twice as
// often reaches it in almost every run.
func TestEProcessHoldsAlphaUnderTheNull(t *testing.T) {
	const alpha, windows = 0.1, 200
	runs := 2000
	if raceDetector {
		runs = 500
	}
	r := newSimRand(7)
	crossed := func(ratio float64) int {
		n := 0
		for run := 0; run < runs; run++ {
			var p eProcess
			for w := 0; w < windows && !p.rejected(alpha); w++ {
				base, pi := 0.005+0.05*r.Float64(), 0.05+0.9*r.Float64()
				req := int64(50 + r.IntN(500))
				g := r.binomial(req, pi)
				eg, es := r.binomial(g, base*ratio), r.binomial(req-g, base)
				p.update(eg, eg+es, float64(g)/float64(req))
			}
			if p.rejected(alpha) {
				n++
			}
		}
		return n
	}
	if k := crossed(1); func() bool { lo, _ := wilson(k, runs); return lo > alpha }() {
		t.Fatalf("A/A: %s of runs crossed 1/α, above α = %g", rateCell(k, runs), alpha)
	} else {
		t.Logf("A/A: %s of runs crossed", rateCell(k, runs))
	}
	if k := crossed(2); k < runs*95/100 {
		t.Fatalf("gray failing twice as often: only %s of runs crossed", rateCell(k, runs))
	}
}

// sequentialRun feeds a scenario's windows to a Sequential until it fails
// or n windows pass, and returns the last report and how many windows it
// took.
func sequentialRun(t *testing.T, sc simScenario, seed uint64, n int) (Report, int) {
	t.Helper()
	w := newSimWorld(sc, defaults(t))
	q := NewSequential(w.settings, []string{"shop"})
	r := newSimRand(seed)
	var rep Report
	for i := 1; i <= n; i++ {
		fleet, _ := w.window(r, false)
		if rep = q.Update(fleet); failed(rep.Verdict) {
			return rep, i
		}
	}
	return rep, n
}

func failingTest(rep Report) *TestResult {
	for _, s := range rep.Services {
		for i, t := range s.Tests {
			if failed(t.Verdict) {
				return &s.Tests[i]
			}
		}
	}
	return nil
}

// TestSequentialCatchesTailAndRouteRegressions: a gray whose median is
// unchanged but 2% of whose requests are 300 ms slower fails on its p99
// (the median test does not fail), and a route carrying 1% of the traffic
// failing 32% of its gray requests fails on that route, at 100 req/s.
func TestSequentialCatchesTailAndRouteRegressions(t *testing.T) {
	tests := []struct {
		name  string
		sc    simScenario
		check func(*TestResult) bool
	}{
		{"tail", simScenario{nodes: 1, rate: 100, grayShare: 0.1, tailShare: 0.02, tailAddMS: 300},
			func(tr *TestResult) bool { return tr.Metric == "latency" && tr.Quantile == 0.99 }},
		{"route", simScenario{nodes: 1, rate: 100, grayShare: 0.1, routeShare: 0.01, routeGrayEr: 0.32},
			func(tr *TestResult) bool { return tr.Metric == "errors" && tr.Route == simHotRoute }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, n := sequentialRun(t, tt.sc, 3, simWindows)
			tr := failingTest(rep)
			if tr == nil || !tt.check(tr) {
				t.Fatalf("after %d windows: %s — %s", n, rep.Verdict, rep.Reason)
			}
			for _, x := range rep.Services[0].Tests {
				if x.Metric == "latency" && x.Quantile == 0.5 && failed(x.Verdict) {
					t.Fatalf("the median test failed an unchanged median: %s", x.Detail)
				}
			}
			if tr.P >= tr.Alpha || tr.Statistic < tr.Boundary {
				t.Fatalf("failed without reaching the boundary: %+v", tr)
			}
		})
	}
}

// TestSequentialPassNeedsTheGateAndNoRejection: a healthy gray passes only
// once each side of the window reached min_requests; a fail stays a fail
// in the windows after it, however healthy they look.
func TestSequentialPassNeedsTheGateAndNoRejection(t *testing.T) {
	s := defaults(t)
	w := newSimWorld(simScenario{nodes: 1, rate: 100, grayShare: 0.1}, s)
	thin := newSimWorld(simScenario{nodes: 1, rate: 10, grayShare: 0.1}, s) // 30 gray requests a window
	q := NewSequential(s, []string{"shop"})
	r := newSimRand(5)
	fleet, _ := thin.window(r, false)
	if rep := q.Update(fleet); rep.Verdict != Inconclusive || !strings.Contains(rep.Reason, "at least 100 needed to pass") {
		t.Fatalf("thin window: %s — %s", rep.Verdict, rep.Reason)
	}
	fleet, _ = w.window(r, false)
	if rep := q.Update(fleet); rep.Verdict != Pass {
		t.Fatalf("healthy window: %s — %s", rep.Verdict, rep.Reason)
	}
	bad := newSimWorld(simScenario{nodes: 1, rate: 100, grayShare: 0.1, errPoints: 20}, s)
	fleet, _ = bad.window(r, false)
	if rep := q.Update(fleet); !failed(rep.Verdict) {
		t.Fatalf("+20 points: %s — %s", rep.Verdict, rep.Reason)
	}
	for i := 0; i < 3; i++ {
		fleet, _ = w.window(r, false)
		if rep := q.Update(fleet); !failed(rep.Verdict) {
			t.Fatalf("healthy window %d after a fail: %s", i, rep.Verdict)
		}
	}
	if rep := q.Update(nil); rep.Verdict != Inconclusive {
		t.Fatalf("no evidence: %s", rep.Verdict)
	}
}

// TestSplitAlpha pins the split docs/analysis.md states.
func TestSplitAlpha(t *testing.T) {
	s := defaults(t)
	a := SplitAlpha(s, 2)
	near(t, "service errors", a.Service, 0.05/2/2/2, 1e-15)
	near(t, "one route", a.Route, 0.05/2/2/2/MaxRoutes, 1e-15)
	near(t, "one quantile", a.Quantile, 0.05/2/2/3, 1e-15)
	// Every test of every service together: alpha.
	near(t, "total", 2*(a.Service+MaxRoutes*a.Route+float64(len(Quantiles))*a.Quantile), 0.05, 1e-15)
	s.Latency = false
	near(t, "errors only", SplitAlpha(s, 1).Service, 0.05/2, 1e-15)
	if math.IsNaN(share(0, 5)) == false {
		t.Fatal("a window with no gray request has a share")
	}
}

// TestUpdateNodesStratifies: node A serves half its requests on gray and
// fails 10% of them on both sides, node B serves almost only stable and
// fails 0.5%: gray is as good as stable on each node, but in the fleet's
// totals gray's error rate is 9.9% against stable's 3.7%. Tested on the
// merge the release fails; tested node by node it passes.
func TestUpdateNodesStratifies(t *testing.T) {
	s := defaults(t)
	s.Latency = false
	node := func(grayN, grayErr, stableN, stableErr int64) *Evidence {
		e := NewEvidence(Query{Release: "r", Env: "gray", Services: []string{"shop"}})
		e.Services["shop"].Gray = SideEvidence{Requests: grayN, Errors: grayErr}
		e.Services["shop"].Stable = SideEvidence{Requests: stableN, Errors: stableErr}
		return e
	}
	a, b := node(5000, 500, 5000, 500), node(50, 0, 9950, 50)
	merged, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if rep := NewSequential(s, []string{"shop"}).Update(merged); !failed(rep.Verdict) {
		t.Fatalf("the merged totals did not lean: %s — %s", rep.Verdict, rep.Reason)
	}
	rep, err := NewSequential(s, []string{"shop"}).UpdateNodes([]*Evidence{a, b})
	if err != nil || rep.Verdict != Pass {
		t.Fatalf("node by node: %s — %s (%v)", rep.Verdict, rep.Reason, err)
	}
	if g := rep.Services[0].Gray; g.Requests != 5050 || g.Errors != 500 {
		t.Fatalf("the report is not the merge: %+v", g)
	}
}
