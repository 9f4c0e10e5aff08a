package loadbench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// bench/RESULTS.md: WriteReport writes the sections in order; each section
// is one function. The tables' figures come from aggregate.go, the
// targets from targets.go.

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
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Benchmark results\n\n")
	p("Written by the load harness (`bench/cmd/loadbench`) at the end of `make bench`; do not edit by hand. Every figure here was measured by the run described below, on this machine, with the command shown.\n\n")
	writeMachine(p, res, in.Command)
	writeConfigs(p, res)
	writeMethod(p, res)
	writeTargetRate(p, res)
	writeTargets(p, Evaluate(res, in.Micro, in.Cache))
	writeRatios(p, res)
	writeSteps(p, res, in.Chart)
	writeMaxRates(p, res)
	writeRouting(p, res)
	writeProfile(p, res)
	writeMicro(p, in.Micro)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeMachine describes the machine, the other load on it and the command.
func writeMachine(p func(string, ...any), res *Result, command string) {
	o := res.Options
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
	p("- Command:\n\n```sh\nmake bench\n# which runs, after the micro-benchmarks:\n%s\n```\n\n", command)
}

// writeConfigs lists the configurations and their filter chains.
func writeConfigs(p func(string, ...any), res *Result) {
	p("## Configurations\n\n")
	p("One Envoy 1.40 per run, `--concurrency 1`, started from a static bootstrap the harness renders with graymesh's own `xds.Build`: the same listener, routes (`x-gray-env: gray` → `shop|gray`, anything else → `shop|stable`) and clusters in every configuration; only the HTTP filters before the router change (B0 also has no early `x-gray-*` strip, since its client sends `x-gray-env`).\n\n")
	p("| config | filter chain |\n|---|---|\n")
	for _, c := range res.Configs {
		p("| %s | %s |\n", c.Name, c.What)
	}
	p("\n")
}

// writeMethod says how load was sent and what was measured.
func writeMethod(p func(string, ...any), res *Result) {
	o := res.Options
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
}

// writeTargetRate is every configuration at TargetRate.
func writeTargetRate(p func(string, ...any), res *Result) {
	o := res.Options
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
}

// writeTargets is the table of the targets.
func writeTargets(p func(string, ...any), targets []Target) {
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
}

// writeRatios compares every configuration with B0 and E0.
func writeRatios(p func(string, ...any), res *Result) {
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
}

// writeSteps is every step, with the chart above it.
func writeSteps(p func(string, ...any), res *Result, chart string) {
	p("## Latency vs offered rate\n\n")
	if chart != "" {
		p("![p50 and p99 latency vs offered rate, per configuration](%s)\n\n", chart)
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
}

// writeMaxRates is each round's maximum rates and what ended each step-up.
func writeMaxRates(p func(string, ...any), res *Result) {
	o := res.Options
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
			if s.Config == c.Name && !s.KeepsUp && s.rated() {
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
}

// writeRouting sums the routing checks per configuration.
func writeRouting(p func(string, ...any), res *Result) {
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
