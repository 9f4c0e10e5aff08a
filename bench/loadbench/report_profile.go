package loadbench

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// The report's last two sections: where graymesh's time went (from the
// profile, when one was taken) and the micro-benchmarks.

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
