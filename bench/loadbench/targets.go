package loadbench

import (
	"fmt"
	"time"
)

// The targets, each evaluated from a run (load targets) or from
// the micro-benchmarks and the token-cache test (the others).

// TargetRate is the rate the latency and CPU targets are read at.
const TargetRate = 1000

// Check is a pass/fail check run by the bench, such as the token-cache test.
type Check struct {
	Command string
	Output  string
	Passed  bool
}

// Target is one of the targets, evaluated.
type Target struct {
	Name     string
	Bound    string
	Measured string
	Met      bool
	// Load targets come from the harness; the others from go test.
	Load bool
	// Known is false when the run did not measure what the target needs.
	Known bool
}

// Evaluate marks each of the targets met or missed. micro and
// cache may be nil; then only the load targets are known.
func Evaluate(res *Result, micro *Micro, cache ...*Check) []Target {
	out := []Target{
		ratioTarget(res, "Maximum sustainable rate vs Envoy alone", "B0", 0.60),
		ratioTarget(res, "Maximum sustainable rate vs the no-op ext_proc server", "E0", 0.95),
	}
	out = append(out, targetRateTargets(res)...)
	out = append(out,
		microTarget(micro, "Decision on a cached identity", "BenchmarkCachedDecision", 1000, true),
		microTarget(micro, "Handler excluding transport", "BenchmarkHandler", 3000, false),
		microTarget(micro, "Uncached HS256 verification", "BenchmarkVerify/uncached/HS256", 10000, false),
		microTarget(micro, "Uncached RS256 verification", "BenchmarkVerify/uncached/RS256", 50000, false))
	return append(out, cacheTarget(cache...))
}

// ratioTarget compares C1's maximum sustainable rate with other's: under
// the p99 bound (the target) and, for information, under the p50 bound.
func ratioTarget(res *Result, name, other string, bound float64) Target {
	p99 := res.Options.MaxP99
	p50 := res.Options.MaxP50
	t := Target{Name: name, Bound: fmt.Sprintf("C1 ≥ %.2f × %s (p99 < %s)", bound, other, fmtUs(p99)), Load: true}
	strictO, strictC := maxRates(res, other), maxRates(res, "C1")
	relaxO, relaxC := maxRatesP50(res, other), maxRatesP50(res, "C1")
	if len(strictO) == 0 || len(strictC) == 0 {
		return t
	}
	o, c := median(strictO), median(strictC)
	relaxed := ""
	if ro, rc := median(relaxO), median(relaxC); ro > 0 {
		verdict := "missed"
		if rc/ro >= bound {
			verdict = "met"
		}
		relaxed = fmt.Sprintf("; with p50 < %s instead: %.2f (C1 %s / %s %s rps), %s", fmtUs(p50), rc/ro, fmtRate(rc), other, fmtRate(ro), verdict)
	}
	if o == 0 {
		// The reference itself never met the bound: no ratio exists.
		t.Measured = fmt.Sprintf("no ratio: %s never met p99 < %s, not even at the lowest rate%s", other, fmtUs(p99), relaxed)
		return t
	}
	t.Known = true
	t.Measured = fmt.Sprintf("%.2f (C1 %s rps / %s %s rps)%s", c/o, fmtRate(c), other, fmtRate(o), relaxed)
	t.Met = c/o >= bound
	return t
}

// targetRateTargets are the targets read at TargetRate: latency added over
// Envoy alone, and graymesh's CPU against the no-op server's.
func targetRateTargets(res *Result) []Target {
	aB, okB := aggregate(res, "B0", TargetRate)
	aC, okC1 := aggregate(res, "C1", TargetRate)
	aE, okE1 := aggregate(res, "E0", TargetRate)
	added := func(name string, bound time.Duration, f func(agg) time.Duration) Target {
		t := Target{Name: name, Bound: "≤ " + fmtUs(bound), Load: true, Known: okB && okC1}
		if t.Known {
			d := f(aC) - f(aB)
			t.Measured = fmt.Sprintf("%s (C1 %s − B0 %s)", fmtUs(d), fmtUs(f(aC)), fmtUs(f(aB)))
			t.Met = d <= bound
		}
		return t
	}
	cpu := Target{Name: fmt.Sprintf("graymesh CPU per request vs the no-op server's (%s rps)", fmtRate(TargetRate)), Bound: "≤ 1.10 ×", Load: true, Known: okC1 && okE1 && aE.cpu["extproc"] > 0}
	if cpu.Known {
		r := aC.cpu["extproc"] / aE.cpu["extproc"]
		cpu.Measured = fmt.Sprintf("%.2f × (graymesh %.1f µs, no-op %.1f µs)", r, aC.cpu["extproc"], aE.cpu["extproc"])
		cpu.Met = r <= 1.10
	}
	return []Target{
		added(fmt.Sprintf("Added p50 over B0 at %s rps", fmtRate(TargetRate)), 100*time.Microsecond, func(a agg) time.Duration { return a.p50 }),
		added(fmt.Sprintf("Added p99 over B0 at %s rps", fmtRate(TargetRate)), 300*time.Microsecond, func(a agg) time.Duration { return a.p99 }),
		cpu,
	}
}

// microTarget reads one micro-benchmark against its bound.
func microTarget(micro *Micro, name, bench string, maxNs float64, zeroAllocs bool) Target {
	t := Target{Name: name, Bound: "≤ " + fmtNs(maxNs)}
	if zeroAllocs {
		t.Bound += " and 0 allocs/op"
	}
	row, ok := micro.Find(bench)
	t.Known = ok
	if ok {
		t.Measured = fmt.Sprintf("%s, %g allocs/op (`%s`)", fmtNs(row.NsOp), row.AllocsOp, bench)
		t.Met = row.NsOp <= maxNs && (!zeroAllocs || row.AllocsOp == 0)
	}
	return t
}

// cacheTarget is the token-cache test's verdict.
func cacheTarget(cache ...*Check) Target {
	t := Target{Name: "Token cache bounded in memory, never serves a token past its exp", Bound: "test passes"}
	if len(cache) > 0 && cache[0] != nil {
		t.Known, t.Met = true, cache[0].Passed
		t.Measured = "fails"
		if cache[0].Passed {
			t.Measured = "passes"
		}
		t.Measured += " (`" + cache[0].Command + "`)"
	}
	return t
}
