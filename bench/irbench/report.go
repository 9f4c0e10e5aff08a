package irbench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
)

// SectionName names this harness's section of bench/RESULTS.md.
const SectionName = "bench-ir"

// nativeBound is the target: an inner hop verifying the lane in
// Envoy costs at most this many times the same Envoy routing on a plain
// header.
const nativeBound = 1.10

// WriteSection writes the report section for res; command is how the run
// was started.
func WriteSection(w io.Writer, res *Result, command string) error {
	o := res.Options
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Inner hop and edge: instructions per request (callgrind)\n\n")
	p("Written by `bench/cmd/irbench` (`make bench-ir`); `make bench` keeps this section when it rewrites the rest of the file. Instruction counts, unlike the wall-clock and CPU-time tables above, do not move with the machine's other load.\n\n")
	p("- Run: started %s, took %s; %s, Envoy `%s`, `%s`.\n", res.Started.UTC().Format("2006-01-02 15:04 MST"), res.Took.Round(1e9), runtime.Version(), res.Envoy, res.Valgrind)
	p("- Command:\n\n```sh\n%s\n```\n\n", command)
	p("- Method: one Envoy 1.40 (`--concurrency 1`) per configuration and round, under `valgrind --tool=callgrind --instr-atstart=no`, from a static bootstrap built with graymesh's own `xds.BuildSidecar` for an inner sidecar (orders of a two-service mesh: its inbound listener, routes and clusters). ")
	p("After %d warm-up requests: `callgrind_control -i on PID`; then `callgrind_control -z PID`, %d requests, `callgrind_control -d PID` (count A); `-z`, %d requests, `-d` (count B). ", o.Warmup, o.Small, o.Large)
	p("Instructions per request = (B − A) / %d: what one more request costs, start-up, warm-up and per-dump overhead cancelled; every Envoy thread counted. graymesh, where a configuration asks it, runs under callgrind too and is counted the same way, over %d× the requests (%d and %d). One client, one kept-alive HTTP/1.1 connection, requests one after another, each checked to be served by gray (an anonymous request: by either). Returning callers (%s): graymesh answers each caller's first request in the warm-up, outside valgrind, and is not asked after — the edge Envoy's ext_proc stream count over the two counts must stay 0, and the counts are Envoy's alone, over %d and %d requests. %d rounds, the configurations interleaved.\n\n",
		o.Large-o.Small, o.GraymeshScale, o.Small*o.GraymeshScale, o.Large*o.GraymeshScale, returningConfig, o.Small, o.Large, o.Rounds)
	writeConfigTable(p, res)
	writeEdgeTable(p, res)
	writeReturningTable(p, res)
	writeIRTargets(p, res)
	writeIdleTable(p, res)
	_, err := io.WriteString(w, b.String())
	return err
}

// mean is a configuration's instructions per request in Envoy, averaged
// over its rounds (0 when it did not run).
func (r *Result) mean(name string) float64 { return r.average(name, Count.PerRequest) }

// graymeshMean is the mean of graymesh's instructions per request for a
// configuration that asks it (0 otherwise).
func (r *Result) graymeshMean(name string) float64 {
	return r.average(name, Count.GraymeshPerRequest)
}

// average is of over name's rounds (0 when it did not run).
func (r *Result) average(name string, of func(Count) float64) float64 {
	counts := r.Counts[name]
	if len(counts) == 0 {
		return 0
	}
	var sum float64
	for _, c := range counts {
		sum += of(c)
	}
	return sum / float64(len(counts))
}

func writeConfigTable(p func(string, ...any), res *Result) {
	rounds := res.Options.Rounds
	p("| config | what | ")
	for i := 1; i <= rounds; i++ {
		p("Envoy, round %d | ", i)
	}
	p("Envoy, mean | × H0 | graymesh, mean |\n|---|---|%s\n", strings.Repeat("---:|", rounds+3))
	floor := res.mean("H0")
	for _, c := range res.Configs {
		p("| %s | %s | ", c.Name, c.What)
		for i := 0; i < rounds; i++ {
			if i < len(res.Counts[c.Name]) {
				p("%s | ", thousands(res.Counts[c.Name][i].PerRequest()))
			} else {
				p("— | ")
			}
		}
		gm := "—"
		switch {
		case c.proofs && c.graymesh != graymeshNone:
			gm = "0 (not asked)"
		case c.graymesh != graymeshNone:
			gm = thousands(res.graymeshMean(c.Name))
		}
		p("%s | %s | %s |\n", thousands(res.mean(c.Name)), ratio(res.mean(c.Name), floor), gm)
	}
	p("\ngraymesh's figures move more from round to round than Envoy's: a Go garbage collection falls into one count or the other. graymesh runs with GODEBUG=asyncpreemptoff=1 (callgrind's signal handling trips over Go's preemption signals) and GOMAXPROCS=1 (valgrind runs one thread at a time, so the runtime's spinning threads would be counted for whole time slices).\n\n")
}

// chainHops is the mesh demo's chain: an edge and three inner hops.
const chainHops = 3

func writeIRTargets(p func(string, ...any), res *Result) {
	h0, n1, e1 := res.mean("H0"), res.mean("N1"), res.mean("E1")+res.graymeshMean("E1")
	edge := res.mean("EDGE") + res.graymeshMean("EDGE")
	edgeBefore := res.mean("EDGE-before") + res.graymeshMean("EDGE-before")
	if edgeBefore == 0 {
		edgeBefore = edge
	}
	p("| target | bound | measured | |\n|---|---|---|---|\n")
	p("| native lane vs plain header, an inner hop's Envoy | N1 ≤ %.2f × H0 | %s (N1 %s, H0 %s) | %s |\n", nativeBound, ratio(n1, h0), thousands(n1), thousands(h0), verdict(n1 > 0 && h0 > 0, n1 <= nativeBound*h0))
	writeEdgeTargets(p, res)
	if e1 > 0 && n1 > 0 && edge > 0 {
		before, now := edgeBefore+chainHops*e1, edge+chainHops*n1
		p("| the whole 4-hop chain (4 Envoys + graymesh) vs before | ≤ %.2f × | %s (now %s, before %s) | %s |\n", chainBound, ratio(now, before), thousands(now), thousands(before), verdict(true, now <= chainBound*before))
	}
	writeReturningTargets(p, res)
	p("\n")
	writeReading(p, res)
}

// chainBound is the target for the whole chain.
const chainBound = 0.55

func verdict(measured, met bool) string {
	switch {
	case !measured:
		return "not measured"
	case met:
		return "met"
	}
	return "**missed**"
}

// writeReading says what the figures mean, from the figures.
func writeReading(p func(string, ...any), res *Result) {
	h0, n1, fresh, bag := res.mean("H0"), res.mean("N1"), res.mean("N1-fresh"), res.mean("N1-baggage")
	e1Envoy, e1Graymesh := res.mean("E1"), res.graymeshMean("E1")
	p("What the figures say:\n\n")
	if e1Envoy > 0 && n1 > 0 {
		p("- An inner hop now costs %s instructions per request, all in Envoy; before, %s in Envoy plus %s in graymesh (E1): %s of before. A chain is the edge once and an inner hop three times: now EDGE + 3 × N1, before EDGE-before + 3 × E1 (Envoy and graymesh each).\n",
			thousands(n1), thousands(e1Envoy), thousands(e1Graymesh), ratio(n1, e1Envoy+e1Graymesh))
	}
	if h0 > 0 && n1 > 0 {
		p("- The lane check itself (N1 − H0) is %s instructions: carrying the lane's header, the x-gray-* strip, jwt_authn's per-request work around a cached token (its cache is keyed by the whole token and used only under a named provider, hence requires_any [graymesh_lane, allow_missing_or_failed]), the two claims copied to headers, and the route picked a second time after they are set.\n", thousands(n1-h0))
	}
	writeInnerReading(p, res)
	if anon, edge := res.mean("EDGE-anonymous"), res.mean("EDGE")+res.graymeshMean("EDGE"); anon > 0 && h0 > 0 && edge > 0 {
		p("- An anonymous request the edge's Envoy splits itself (EDGE-anonymous, `mesh.native_traffic_split`) costs %s instructions, all in Envoy, graymesh not asked: %s Envoy alone routing on a plain header (H0), %s the edge asking graymesh (EDGE, Envoy %s + graymesh %s).\n",
			thousands(anon), ratio(anon, h0), ratio(anon, edge), thousands(res.mean("EDGE")), thousands(res.graymeshMean("EDGE")))
	}
	writeReturningReading(p, res)
	if fresh > 0 && n1 > 0 {
		p("- A lane Envoy has not seen costs %s more (N1-fresh − N1): an Ed25519 verification. One lane per environment, release, version and window keeps that to once per sidecar per window; a lane per request would put it on every hop of every request.\n", thousands(fresh-n1))
	}
	if bag > 0 && n1 > 0 {
		p("- Carrying the lane as a baggage member, which OpenTelemetry propagates with no help, would cost %s more per hop for the Lua step that pulls it out (N1-baggage − N1). So the lane has its own header (x-graymesh-lane); services add graymesh's laneprop propagator to their OpenTelemetry propagators, or forward the header as they forward traceparent.\n", thousands(bag-n1))
	}
	p("\n")
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// thousands formats n with thousands separators.
func thousands(n float64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := fmt.Sprintf("%.0f", n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		return "−" + s
	}
	return s
}

// The edge targets: graymesh's instructions per request at the
// edge, as a multiple of the naive no-op ext_proc server's.
const (
	edgeCachedBound   = 0.85
	edgeUncachedBound = 1.30
)

// writeEdgeTable compares the edge's ext_proc servers, the graymesh
// process against the no-op server's.
func writeEdgeTable(p func(string, ...any), res *Result) {
	noop := res.graymeshMean("EDGE-noop")
	if noop == 0 {
		return
	}
	rounds := res.Options.Rounds
	p("The edge's ext_proc server alone (the process Envoy's ext_proc filter calls), instructions per request; Envoy's side beside it (it changes with what the filter sends); peak RSS (VmHWM from `/proc/PID/status`) of the server in one more run of the same requests outside valgrind, same environment:\n\n| config | ")
	for i := 1; i <= rounds; i++ {
		p("server, round %d | ", i)
	}
	p("server, mean | × EDGE-noop | Envoy, mean | GCs in the counts (A/B per round) | server VmHWM | outside valgrind: GCs, allocated per request |\n|---|%s\n", strings.Repeat("---:|", rounds+6))
	for _, name := range []string{"EDGE-noop", "EDGE-cached", "EDGE-uncached", firstSeenConfig} {
		counts := res.Counts[name]
		if len(counts) == 0 {
			continue
		}
		p("| %s | ", name)
		for i := 0; i < rounds; i++ {
			if i < len(counts) {
				p("%s | ", thousands(counts[i].GraymeshPerRequest()))
			} else {
				p("— | ")
			}
		}
		rss, outside := "—", "—"
		if kb := res.RSS[name]; kb > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(kb)/1024)
		}
		if o := res.Outside[name]; o.Requests > 0 && o.Bytes > 0 {
			outside = fmt.Sprintf("%.0f GCs in %d requests, %.0f B", o.GCs, o.Requests, o.Bytes/float64(o.Requests))
		}
		var gcs []string
		for _, c := range counts {
			if c.GCSmall < 0 || c.GCLarge < 0 {
				gcs = append(gcs, "? (no symbols)")
				continue
			}
			gcs = append(gcs, fmt.Sprintf("%d/%d", c.GCSmall, c.GCLarge))
		}
		p("%s | %s | %s | %s | %s | %s |\n", thousands(res.graymeshMean(name)), ratio(res.graymeshMean(name), noop), thousands(res.mean(name)), strings.Join(gcs, ", "), rss, outside)
	}
	p("\nBoth servers sit behind the same edge listener as graymesh pushes it, so Envoy sends the no-op server, too, only the headers graymesh's decision reads (forward_rules) and no request attributes (the bench config has no cidrs rule). The no-op server runs grpc-go's defaults and Go's default GOGC (100); graymesh `serve` its own settings (stream workers, GC target 400). A count in which the server began no garbage collection carries no share of one: such a figure is what a request costs between collections; the run outside valgrind says how many collections graymesh made over the same number of requests, and how much it allocated in that time per request (its background work — metrics sampling, the config watch, the /metrics reads that take these figures — included).\n")
	if m := res.CachedDecision; m != nil {
		p("\nThe cached decision alone (`gray.Policy.Decide` on a cached HS256 identity; wall-clock ns/op, which moves with the machine's load): %.0f ns/op, %.0f B/op, %.0f allocs/op, from\n\n```sh\n%s\n```\n", m.NsOp, m.BOp, m.AllocsOp, res.CachedDecisionCommand)
	}
	p("\n")
}

func writeEdgeTargets(p func(string, ...any), res *Result) {
	noop, cached, uncached := res.graymeshMean("EDGE-noop"), res.graymeshMean("EDGE-cached"), res.graymeshMean("EDGE-uncached")
	if noop == 0 {
		return
	}
	if cached > 0 {
		p("| graymesh edge, token cached, vs the naive no-op server (the server process) | EDGE-cached ≤ %.2f × EDGE-noop | %s (cached %s, no-op %s) | %s |\n", edgeCachedBound, ratio(cached, noop), thousands(cached), thousands(noop), verdict(true, cached <= edgeCachedBound*noop))
	}
	if uncached > 0 {
		p("| graymesh edge, uncached HS256, vs the naive no-op server | EDGE-uncached ≤ %.2f × EDGE-noop | %s (uncached %s, no-op %s) | %s |\n", edgeUncachedBound, ratio(uncached, noop), thousands(uncached), thousands(noop), verdict(true, uncached <= edgeUncachedBound*noop))
	}
	if m := res.CachedDecision; m != nil {
		p("| cached decision | 0 allocs/op | %.0f allocs/op | %s |\n", m.AllocsOp, verdict(true, m.AllocsOp == 0))
	}
}
