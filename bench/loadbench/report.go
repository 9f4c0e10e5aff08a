package loadbench

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

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
		if s.Config == config && s.Rate == rate && (s.Kind == "fixed" || s.Kind == "ladder") {
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

// Evaluate marks each of the targets met or missed. micro and
// cache may be nil; then only the load targets are known.
func Evaluate(res *Result, micro *Micro, cache ...*Check) []Target {
	var out []Target
	p99 := res.Options.MaxP99
	p50 := res.Options.MaxP50
	ratioTarget := func(name, other string, bound float64) Target {
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
	out = append(out,
		ratioTarget("Maximum sustainable rate vs Envoy alone", "B0", 0.60),
		ratioTarget("Maximum sustainable rate vs the no-op ext_proc server", "E0", 0.95))

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
	out = append(out,
		added(fmt.Sprintf("Added p50 over B0 at %s rps", fmtRate(TargetRate)), 100*time.Microsecond, func(a agg) time.Duration { return a.p50 }),
		added(fmt.Sprintf("Added p99 over B0 at %s rps", fmtRate(TargetRate)), 300*time.Microsecond, func(a agg) time.Duration { return a.p99 }))
	cpu := Target{Name: fmt.Sprintf("graymesh CPU per request vs the no-op server's (%s rps)", fmtRate(TargetRate)), Bound: "≤ 1.10 ×", Load: true, Known: okC1 && okE1 && aE.cpu["extproc"] > 0}
	if cpu.Known {
		r := aC.cpu["extproc"] / aE.cpu["extproc"]
		cpu.Measured = fmt.Sprintf("%.2f × (graymesh %.1f µs, no-op %.1f µs)", r, aC.cpu["extproc"], aE.cpu["extproc"])
		cpu.Met = r <= 1.10
	}
	out = append(out, cpu)

	microTarget := func(name, bench string, maxNs float64, zeroAllocs bool) Target {
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
	out = append(out,
		microTarget("Decision on a cached identity", "BenchmarkCachedDecision", 1000, true),
		microTarget("Handler excluding transport", "BenchmarkHandler", 3000, false),
		microTarget("Uncached HS256 verification", "BenchmarkVerify/uncached/HS256", 10000, false),
		microTarget("Uncached RS256 verification", "BenchmarkVerify/uncached/RS256", 50000, false))
	t := Target{Name: "Token cache bounded in memory, never serves a token past its exp", Bound: "test passes"}
	if len(cache) > 0 && cache[0] != nil {
		t.Known, t.Met = true, cache[0].Passed
		t.Measured = "fails"
		if cache[0].Passed {
			t.Measured = "passes"
		}
		t.Measured += " (`" + cache[0].Command + "`)"
	}
	out = append(out, t)
	return out
}

// ReportInput is what the report is written from.
type ReportInput struct {
	Result *Result
	Micro  *Micro
	Cache  *Check
	// Command is the exact command that produced the run.
	Command string
	// Chart is the chart's path relative to the report.
	Chart string
}

// WriteReport writes bench/RESULTS.md.
func WriteReport(w io.Writer, in ReportInput) error {
	res := in.Result
	o := res.Options
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Benchmark results\n\n")
	p("Written by the load harness (`bench/cmd/loadbench`) at the end of `make bench`; do not edit by hand. Every figure here was measured by the run described below, on this machine, with the command shown.\n\n")

	p("## Machine and command\n\n")
	m := res.Machine
	p("- Machine: %d × `%s`, %s, %s, Envoy `%s`.\n", m.NumCPU, m.CPU, m.Kernel, m.Go, m.Envoy)
	p("- Cores: %s.\n", res.CPUPlan)
	var other, steal []float64
	for _, s := range res.Steps {
		other = append(other, s.OtherCPU)
		steal = append(steal, s.StealCPU)
	}
	if len(other) > 0 {
		p("- Other load: processes outside the run kept %.2f cores busy during the median step (max %.2f; `/proc/stat` user+nice+system minus the run's own processes); load average %s at the start, %s at the end.\n",
			median(other), slices.Max(other), res.LoadAvgStart, res.LoadAvgEnd)
		p("- Steal: the hypervisor took %.2f cores from this machine during the median step (max %.2f; `/proc/stat` steal). While a vCPU is stolen nothing on it runs, which shows up as latency.\n", median(steal), slices.Max(steal))
		p("- Quiet gate: before every run the harness waited for other processes to use < 0.15 cores, and re-measured once (at most %d steps per bench) every step during which other processes and steal together took > %.2f cores (waiting budget %s): it waited %s in all and re-measured %d steps (the first tries are kept in `results.json`; the tables use the second).\n",
			maxRemeasure, disturbed, o.QuietBudget, res.QuietWaited.Round(time.Second), res.Remeasured)
		if slices.Max(other) > 0.25 || slices.Max(steal) > 0.25 {
			p("  **The machine was not quiet during some steps**: their figures are pessimistic; the table of every step shows other load and steal per step, and the medians across rounds damp single bad steps.\n")
		}
	}
	p("- Run: started %s, took %s; %s, configurations interleaved (the order rotates every round).\n", res.Started.UTC().Format("2006-01-02 15:04 MST"), res.Took.Round(time.Second), plural(o.Rounds, "round"))
	p("- Command:\n\n```sh\nmake bench\n# which runs, after the micro-benchmarks:\n%s\n```\n\n", in.Command)

	p("## Configurations\n\n")
	p("One Envoy 1.40 per run, `--concurrency 1`, started from a static bootstrap the harness renders with graymesh's own `xds.Build`: the same listener, routes (`x-gray-env: gray` → `shop|gray`, anything else → `shop|stable`) and clusters in every configuration; only the HTTP filters before the router change (B0 also has no early `x-gray-*` strip, since its client sends `x-gray-env`).\n\n")
	p("| config | filter chain |\n|---|---|\n")
	for _, c := range res.Configs {
		p("| %s | %s |\n", c.Name, c.What)
	}
	p("\n")

	p("## Method\n\n")
	p("- Workload: %d callers (`user-0`…), each with its own HS256 token and its own path, sent with 9 browser-like headers (bearer token and cookies included) plus vegeta's `X-Vegeta-Seq` and `X-Vegeta-Attack`; requests go round-robin over the callers. graymesh's config: one release, blacklist, whitelist, 30%% salted percentage: %.1f%% of the callers must reach gray.\n", res.Subjects, 100*res.WantGrayShare)
	ladder := "no step-up"
	if len(o.Ladder) > 0 {
		ladder = fmt.Sprintf("a step-up (%s rps, %s each) that stops at the first step that is not sustainable", joinRates(o.Ladder), o.StepDuration)
	}
	p("- Load: open loop, [vegeta](https://github.com/tsenart/vegeta) v12 as a library, constant pacer, HTTP/1.1 keep-alive. Every run warms up (%s at %s rps: every token verified once), then runs the fixed rates (%s rps, %s each) and %s.\n",
		o.Warmup, fmtRate(float64(o.WarmupRate)), joinRates(o.Fixed), o.FixedDuration, ladder)
	mt := o.MessageTimeout
	if mt == 0 {
		mt = 50 * time.Millisecond
	}
	p("- ext_proc `message_timeout`: %s (graymesh's production default is 50 ms); past it Envoy fails open to stable, which the routing check counts as misrouted.\n", mt)
	p("- Latency is measured from each request's **scheduled** send time (vegeta's pacer: request n at start + (n+1)/rate), so a stall in the client's core or anywhere else counts (no coordinated omission). The pacer sleeps with nanosleep(2) rather than Go's timers, whose sub-millisecond wake-ups have millisecond granularity; the client's lag behind the schedule is reported per step. Percentiles are exact over all requests of a step; tables show the median across rounds.\n")
	p("- Sustainable (the issue's definition): 0 errors, routing correct, p99 < %s and ≥ 97%% of the scheduled requests sent. The maximum sustainable rate is the highest rate at and below which every step of the run was sustainable. Because a virtual machine's wake-up tail can keep p99 above that bound at any rate, the step-up runs on while steps *keep up* — the same with p50 < %s instead of the p99 bound — and the report gives both maxima (\"p99 bound\" and \"p50 bound\").\n", fmtUs(o.MaxP99), fmtUs(o.MaxP50))
	p("- CPU per request: utime+stime deltas from `/proc/<pid>/stat` over each step, per process: Envoy, the ext_proc server (graymesh or the no-op server), the upstream, and the client (this harness: vegeta and the result checks).\n")
	p("- Routing is checked in every step twice: each response's `%s` (set by the upstream) against graymesh's own decision for that caller (`gray.Policy.Decide` on the same token; all stable for E0), and Envoy's per-cluster counters (`cluster.shop|{stable,gray}.upstream_rq_total` from admin `/stats`) against the expected split. Envoy's failure counters (ext_proc `failure_mode_allowed`, `message_timeouts`, `streams_failed`, `clear_route_cache_ignored`, Lua errors) must not move.\n\n", ServedEnvHeader)

	p("## Every configuration at %s rps (medians of %s)\n\n", fmtRate(TargetRate), plural(o.Rounds, "round"))
	p("| config | p50 | p90 | p99 | p99.9 | errors | routing ok | CPU µs/req Envoy | ext_proc server | upstream | client | max rps, p99 bound (median [min–max]) | max rps, p50 bound |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range res.Configs {
		a, ok := aggregate(res, c.Name, TargetRate)
		mr, mr50 := maxRates(res, c.Name), maxRatesP50(res, c.Name)
		if !ok {
			p("| %s | — | — | — | — | — | — | — | — | — | — | %s | %s |\n", c.Name, fmtMaxRate(mr), fmtMaxRate(mr50))
			continue
		}
		p("| %s | %s | %s | %s | %s | %d | %d/%d | %s | %s | %s | %s | %s | %s |\n", c.Name,
			fmtUs(a.p50), fmtUs(a.p90), fmtUs(a.p99), fmtUs(a.p999), a.errors, a.routingOK, a.rounds,
			fmtCPU(a.cpu, "envoy"), fmtCPU(a.cpu, "extproc"), fmtCPU(a.cpu, "upstream"), fmtCPU(a.cpu, "client"), fmtMaxRate(mr), fmtMaxRate(mr50))
	}
	p("\n")

	targets := Evaluate(res, in.Micro, in.Cache)
	p("## Targets\n\n")
	p("| target | bound | measured | |\n|---|---|---|---|\n")
	for _, t := range targets {
		mark := "not measured"
		if !t.Known && t.Measured != "" {
			mark = "not measurable here"
		}
		if t.Known {
			mark = "**missed**"
			if t.Met {
				mark = "met"
			}
		}
		measured := t.Measured
		if measured == "" {
			measured = "—"
		}
		p("| %s | %s | %s | %s |\n", t.Name, t.Bound, measured, mark)
	}
	p("\nLoad targets: medians across rounds of the table above (maximum rates: median of the per-round maxima). Micro-benchmark targets: the section at the end.\n\n")

	p("## Ratios\n\n")
	p("| config | max rate × B0 (p99 bound) | × E0 (p99 bound) | max rate × B0 (p50 bound) | × E0 (p50 bound) | p50 − B0 at %s rps | p99 − B0 at %s rps | ext_proc server CPU × E0's |\n|---|---:|---:|---:|---:|---:|---:|---:|\n", fmtRate(TargetRate), fmtRate(TargetRate))
	b0, e0 := median(maxRates(res, "B0")), median(maxRates(res, "E0"))
	b050, e050 := median(maxRatesP50(res, "B0")), median(maxRatesP50(res, "E0"))
	aB, okB := aggregate(res, "B0", TargetRate)
	aE, okE := aggregate(res, "E0", TargetRate)
	for _, c := range res.Configs {
		mr, mr50 := median(maxRates(res, c.Name)), median(maxRatesP50(res, c.Name))
		a, ok := aggregate(res, c.Name, TargetRate)
		row := []string{c.Name, ratio(mr, b0), ratio(mr, e0), ratio(mr50, b050), ratio(mr50, e050), "—", "—", "—"}
		if ok && okB {
			row[5], row[6] = fmtUs(a.p50-aB.p50), fmtUs(a.p99-aB.p99)
		}
		if ok && okE && c.proc != procNone && aE.cpu["extproc"] > 0 {
			row[7] = fmt.Sprintf("%.2f", a.cpu["extproc"]/aE.cpu["extproc"])
		}
		p("| %s |\n", strings.Join(row, " | "))
	}
	p("\n")

	p("## Latency vs offered rate\n\n")
	if in.Chart != "" {
		p("![p50 and p99 latency vs offered rate, per configuration](%s)\n\n", in.Chart)
	}
	p("Every step, medians across the rounds that ran it (the step-up stops at a run's first step that does not keep up, so high rates have fewer rounds). Latency from the scheduled send time; `svc p99` is vegeta's own latency from the actual send, for comparison; `client lag p99` is how late the client sent (included in the latency columns).\n\n")
	p("| config | rps | rounds | p50 | p90 | p99 | p99.9 | svc p99 | client lag p99 | errors | late sends | routing ok | sustainable (p99) | keeps up (p50) | CPU µs/req Envoy | ext_proc server | client | other load / steal (cores) |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range res.Configs {
		for _, rate := range stepRates(res, c.Name) {
			a, _ := aggregate(res, c.Name, rate)
			p("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %d | %d | %d/%d | %d/%d | %d/%d | %s | %s | %s | %.2f / %.2f |\n", c.Name, fmtRate(float64(rate)), a.rounds,
				fmtUs(a.p50), fmtUs(a.p90), fmtUs(a.p99), fmtUs(a.p999), fmtUs(a.svcP99), fmtUs(a.lagP99), a.errors, a.late, a.routingOK, a.rounds, a.sustainable, a.rounds, a.keepsUp, a.rounds,
				fmtCPU(a.cpu, "envoy"), fmtCPU(a.cpu, "extproc"), fmtCPU(a.cpu, "client"), a.otherCPU, a.stealCPU)
		}
	}
	p("\n")

	p("## Maximum rate per round\n\nEach cell: p99 bound / p50 bound.\n\n")
	p("| config |")
	for r := 1; r <= o.Rounds; r++ {
		p(" round %d |", r)
	}
	p(" median |\n|---|")
	for r := 0; r <= o.Rounds; r++ {
		p("---:|")
	}
	p("\n")
	for _, c := range res.Configs {
		p("| %s |", c.Name)
		for r := 1; r <= o.Rounds; r++ {
			v := "—"
			for _, run := range res.Runs {
				if run.Config == c.Name && run.Round == r {
					v = fmtRate(float64(run.MaxRate)) + " / " + fmtRate(float64(run.MaxRateP50))
				}
			}
			p(" %s |", v)
		}
		p(" %s / %s |\n", fmtRate(median(maxRates(res, c.Name))), fmtRate(median(maxRatesP50(res, c.Name))))
	}
	p("\nWhat ended each run's step-up (its first step that did not keep up):\n\n")
	for _, c := range res.Configs {
		var why []string
		for _, s := range res.Steps {
			if s.Config == c.Name && !s.KeepsUp && (s.Kind == "fixed" || s.Kind == "ladder") {
				why = append(why, fmt.Sprintf("round %d at %s rps: %s", s.Round, fmtRate(float64(s.Rate)), unsustainableWhy(s, o.MaxP50)))
			}
		}
		why = firstPerRound(why)
		if len(why) == 0 {
			why = []string{"never: every step up to the top of the ladder kept up"}
		}
		p("- %s: %s.\n", c.Name, strings.Join(why, "; "))
	}
	p("\n")

	p("## Routing correctness\n\n")
	p("| config | steps checked | steps routed correctly | requests sent | gray: expected / Envoy counted | stable: expected / Envoy counted | misrouted responses | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range res.Configs {
		var n, ok, sent, mis, errs int
		var wg, gg, ws, gs int64
		for _, s := range res.Steps {
			if s.Config != c.Name {
				continue
			}
			n++
			if s.RoutingOK {
				ok++
			}
			sent += s.Sent
			mis += s.Misrouted
			errs += s.Errors
			wg += int64(s.WantGray)
			gg += s.GotGray
			ws += int64(s.WantStable)
			gs += s.GotStable
		}
		p("| %s | %d | %d | %d | %d / %d | %d / %d | %d | %d |\n", c.Name, n, ok, sent, wg, gg, ws, gs, mis, errs)
	}
	p("\nSteps past a configuration's limit may fail open (ext_proc `message_timeout` → stable) or time out; those are the steps that did not keep up.\n\n")

	writeProfile(p, res)
	writeMicro(p, in.Micro)
	_, err := io.WriteString(w, b.String())
	return err
}

func firstPerRound(why []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, w := range why {
		r, _, _ := strings.Cut(w, " at ")
		if !seen[r] {
			seen[r] = true
			out = append(out, w)
		}
	}
	return out
}

func unsustainableWhy(s Step, maxP50 time.Duration) string {
	var why []string
	expected := int(float64(s.Rate) * s.Duration.Seconds())
	if s.Errors > 0 {
		why = append(why, fmt.Sprintf("%d errors (%s)", s.Errors, strings.TrimSpace(s.FirstError)))
	}
	if !s.RoutingOK {
		why = append(why, fmt.Sprintf("routing: %d misrouted, Envoy failure counters %v", s.Misrouted, s.ProblemStats))
	}
	if s.P50 >= maxP50 {
		why = append(why, "p50 "+fmtUs(s.P50))
	}
	if s.Sent < expected*97/100 {
		why = append(why, fmt.Sprintf("client sent %d of %d", s.Sent, expected))
	}
	return strings.Join(why, ", ")
}

func stepRates(res *Result, config string) []int {
	seen := map[int]bool{}
	var out []int
	for _, s := range res.Steps {
		if s.Config == config && (s.Kind == "fixed" || s.Kind == "ladder") && !seen[s.Rate] {
			seen[s.Rate] = true
			out = append(out, s.Rate)
		}
	}
	sort.Ints(out)
	return out
}

func writeProfile(p func(string, ...any), res *Result) {
	pr := res.Profile
	p("## Where graymesh's time goes\n\n")
	if pr == nil {
		p("No profile taken in this run (every load target was met, or profiling was off).\n\n")
		return
	}
	st := pr.Step
	p("A load target was missed, so the harness ran C1 once more with `graymesh serve --pprof` (loopback) and took a CPU profile and a delta allocation profile while it served %s rps for %s (sent %d, %d errors, p50 %s, p99 %s; graymesh %.1f µs CPU per request, Envoy %.1f µs).\n\n",
		fmtRate(float64(pr.Rate)), pr.Duration, st.Sent, st.Errors, fmtUs(st.P50), fmtUs(st.P99), st.CPU["extproc"], st.CPU["envoy"])
	p("```sh\n%s\n```\n\n", strings.Join(pr.Commands, "\n"))
	perReq := func(v float64) string {
		if st.Sent == 0 || pr.Wall == 0 {
			return "—"
		}
		// The profile covers Wall of the step's Duration.
		reqs := float64(st.Sent) * pr.Wall.Seconds() / st.Duration.Seconds()
		return fmt.Sprintf("%.1f µs", v*1e6/reqs)
	}
	p("CPU sampled: %s over %s of wall time. By where the time is spent (flat time of each function, grouped):\n\n", pr.CPUTotal.Round(time.Millisecond), pr.Wall)
	p("| where | CPU | share | per request |\n|---|---:|---:|---:|\n")
	for _, c := range pr.Categories {
		p("| %s | %s | %.1f%% | %s |\n", c.Name, time.Duration(c.Value*float64(time.Second)).Round(time.Millisecond), 100*c.Frac, perReq(c.Value))
	}
	if len(pr.Cum) > 0 {
		p("\nCumulative time of the functions on the decision path (a function's own time plus its callees'):\n\n| function | CPU | share |\n|---|---:|---:|\n")
		for _, c := range pr.Cum {
			p("| %s | %s | %.1f%% |\n", c.Name, time.Duration(c.Value*float64(time.Second)).Round(time.Millisecond), 100*c.Frac)
		}
	}
	p("\nTop functions by own (flat) CPU time:\n\n| function | CPU | share |\n|---|---:|---:|\n")
	for _, c := range pr.TopFlat {
		p("| `%s` | %s | %.1f%% |\n", c.Name, time.Duration(c.Value*float64(time.Second)).Round(time.Millisecond), 100*c.Frac)
	}
	reqs := float64(st.Sent) * pr.Wall.Seconds() / st.Duration.Seconds()
	if reqs > 0 {
		p("\nAllocations in the profile window: %.1f MB, %.0f objects — about %.0f B and %.0f objects per request. Top allocation sites (bytes):\n\n", pr.AllocBytes/(1<<20), pr.AllocObjects, pr.AllocBytes/reqs, pr.AllocObjects/reqs)
		p("| function | bytes | share |\n|---|---:|---:|\n")
		for _, c := range pr.TopAlloc {
			p("| `%s` | %.1f MB | %.1f%% |\n", c.Name, c.Value/(1<<20), 100*c.Frac)
		}
	}
	p("\n")
	var own, transport, gc, sched float64
	for _, c := range pr.Categories {
		switch {
		case strings.HasPrefix(c.Name, "graymesh's own"), strings.HasPrefix(c.Name, "JWT"):
			own += c.Frac
		case strings.HasPrefix(c.Name, "gRPC"), strings.HasPrefix(c.Name, "protobuf"), strings.HasPrefix(c.Name, "syscalls"):
			transport += c.Frac
		case strings.HasPrefix(c.Name, "allocation"):
			gc += c.Frac
		case strings.HasPrefix(c.Name, "goroutine"):
			sched += c.Frac
		}
	}
	p("In short, measured above: the decision itself (graymesh's code plus token hashing and JWT work) is %.0f%% of graymesh's CPU; gRPC, HTTP/2, protobuf and the socket syscalls of one stream per request are %.0f%%; allocation and GC %.0f%%; goroutine scheduling and the rest of the runtime %.0f%%.\n\n", 100*own, 100*transport, 100*gc, 100*sched)
}

func writeMicro(p func(string, ...any), m *Micro) {
	p("## Micro-benchmarks (decision path)\n\n")
	if m == nil {
		p("Not run in this invocation (no `--micro` file).\n")
		return
	}
	p("One run, default benchtime, on the machine above (`cpu: %s`), before the load harness:\n\n```sh\n%s\n```\n\n", m.CPU, m.Command)
	p("| benchmark | ns/op | B/op | allocs/op |\n|---|---:|---:|---:|\n")
	rows := slices.Clone(m.Rows)
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Name < rows[j].Name })
	for _, r := range rows {
		mem := "— | —"
		if r.HasMem {
			mem = fmt.Sprintf("%g | %g", r.BOp, r.AllocsOp)
		}
		p("| %s | %s | %s |\n", r.Name, fmtFloat(r.NsOp), mem)
	}
	p(`
What the rows mean:

- ` + "`Bucket`, `Decide/*`, `DecideManySubjects`" + ` (gray): the pure decision on a resolved
  identity (no token work): whitelist hit, percentage bucket, anonymous with a
  header rule.
- ` + "`CachedDecision`" + ` (bench/loadbench): the decision on a cached identity through
  ` + "`gray.Policy.Decide`" + `: the verified-token cache lookup (SHA-256 of the token is
  the key) and the rules, for the harness's HS256 callers.
- ` + "`Handler`" + ` (bench/loadbench): the ext_proc handler's work between Recv and Send
  without the transport: ` + "`Extract`" + ` over the header map Envoy sends for a harness
  request, ` + "`Policy.Decide`" + ` with a warm cache, membership and fallback, ` + "`Response`" + `
  (without the metrics observer and the tracing check).
- ` + "`Verify/uncached/*`" + ` (identity): one full JWT verification per algorithm, cache
  off. ` + "`Verify/cached/*`" + `: a returning token served from the cache.
- ` + "`Extract`, `Response`" + ` (extproc): reading a realistic 15-header request;
  building the answer (4 headers set, clear_route_cache).
- ` + "`Process`" + ` (extproc): the whole handler over bufconn, one gRPC stream per
  request as Envoy does it — dominated by gRPC stream setup, not by the decision.
`)
}

func fmtUs(d time.Duration) string {
	v := float64(d) / float64(time.Microsecond)
	switch {
	case v >= 1e6 || v <= -1e6:
		return fmt.Sprintf("%.2f s", v/1e6)
	case v >= 10000 || v <= -10000:
		return fmt.Sprintf("%.1f ms", v/1000)
	case v >= 1000 || v <= -1000:
		return fmt.Sprintf("%.2f ms", v/1000)
	}
	return fmt.Sprintf("%.0f µs", v)
}

func fmtNs(ns float64) string {
	if ns >= 1000 {
		return fmt.Sprintf("%.2f µs", ns/1000)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func fmtFloat(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func fmtRate(v float64) string {
	n := int64(v + 0.5)
	s := fmt.Sprint(n)
	if n >= 1000 {
		s = fmt.Sprintf("%d,%03d", n/1000, n%1000)
	}
	return s
}

func fmtMaxRate(v []float64) string {
	if len(v) == 0 {
		return "—"
	}
	lo, hi := slices.Min(v), slices.Max(v)
	return fmt.Sprintf("%s [%s–%s]", fmtRate(median(v)), fmtRate(lo), fmtRate(hi))
}

func fmtCPU(cpu map[string]float64, role string) string {
	v, ok := cpu[role]
	if !ok {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func joinRates(r []int) string {
	if len(r) == 0 {
		return "none"
	}
	s := make([]string, len(r))
	for i, v := range r {
		s[i] = fmtRate(float64(v))
	}
	return strings.Join(s, ", ")
}
