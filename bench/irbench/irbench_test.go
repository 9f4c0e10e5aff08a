package irbench

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/header_mutation/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/internal/core/gray"
	"github.com/graymesh/graymesh/xds"
)

// listenerHCM is the HTTP connection manager of the first listener of a
// rendered bootstrap.
func listenerHCM(t *testing.T, bootstrap []byte) *hcmv3.HttpConnectionManager {
	t.Helper()
	boot := &bootstrapv3.Bootstrap{}
	if err := protojson.Unmarshal(bootstrap, boot); err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if err := boot.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
		t.Fatal(err)
	}
	return hcm
}

// TestBootstraps renders every configuration's bootstrap (Envoy's own
// validation passes) and checks the filter chain each one measures.
// benchSidecars writes the bench configs and builds their resources: the
// mesh's and the anonymous split's (lanes signed).
func benchSidecars(t *testing.T) (p *gray.Policy, s, anon, ret *sidecars) {
	t.Helper()
	h := &harness{o: Options{WorkDir: t.TempDir()}, upstreams: &upstreams{stable: "127.0.0.1:9001", gray: "127.0.0.1:9002"}, version: "1"}
	path, err := h.writeConfig()
	if err != nil {
		t.Fatal(err)
	}
	if p, err = gray.Load(path); err != nil {
		t.Fatal(err)
	}
	if s, err = newSidecars(p.Plan); err != nil {
		t.Fatal(err)
	}
	anonPlan, err := gray.Load(h.anonymousPath)
	if err != nil {
		t.Fatal(err)
	}
	if anon, err = newSidecars(anonPlan.Plan.Signed(time.Now())); err != nil {
		t.Fatal(err)
	}
	if ret, err = h.returningSidecars(time.Now()); err != nil {
		t.Fatal(err)
	}
	return p, s, anon, ret
}

// afterProofRoutes checks that a returning config's edge routes start
// with its proof routes (stable with no release, the release's stable
// and gray), of config version 1, ext_proc off, then the arrival route of
// a request with a proof, and returns the routes after those.
func afterProofRoutes(t *testing.T, name string, routes []*routev3.Route) []*routev3.Route {
	t.Helper()
	var proofs []string
	for _, r := range routes {
		if !strings.HasPrefix(r.GetName(), edgeService+"/proof:") {
			break
		}
		if _, off := r.GetTypedPerFilterConfig()[wire.ExtProcFilterName]; !off {
			t.Errorf("%s: proof route %s asks graymesh", name, r.GetName())
		}
		version := ""
		for _, m := range r.GetMatch().GetHeaders() {
			if m.GetName() == wire.HeaderProofDecision {
				version, _, _ = strings.Cut(m.GetStringMatch().GetExact(), "/")
			}
		}
		if !strings.HasPrefix(version, "1-") {
			t.Errorf("%s: proof route %s matches proof version %q, want 1-<config hash> (a fresh graymesh's in file mode)", name, r.GetName(), version)
		}
		proofs = append(proofs, r.GetName())
	}
	if len(proofs) != 3 {
		t.Errorf("%s: proof routes %v, want 3", name, proofs)
	}
	// Then the route a request with a proof arrives on, which asks
	// graymesh (xds.withArrivalRoutes).
	if arrival := routes[len(proofs)]; arrival.GetName() != edgeService+"/default-with-proof" {
		t.Errorf("%s: after the proof routes %s, want the arrival route of a request with a proof", name, arrival.GetName())
	}
	return routes[len(proofs)+1:]
}

func TestBootstraps(t *testing.T) {
	p, s, anon, ret := benchSidecars(t)
	want := map[string][]string{
		"H0":            {"envoy.filters.http.router"},
		"N1":            {xds.LaneFilterName, "envoy.filters.http.router"},
		"N1-fresh":      {xds.LaneFilterName, "envoy.filters.http.router"},
		"N1-baggage":    {"envoy.filters.http.lua", xds.LaneFilterName, "envoy.filters.http.router"},
		"E1":            {wire.ExtProcFilterName, "envoy.filters.http.router"},
		"EDGE":          {wire.ExtProcFilterName, "envoy.filters.http.router"},
		"EDGE-before":   {wire.ExtProcFilterName, "envoy.filters.http.router"},
		"EDGE-noop":     {wire.ExtProcFilterName, "envoy.filters.http.router"},
		"EDGE-cached":   {wire.ExtProcFilterName, "envoy.filters.http.router"},
		"EDGE-uncached": {wire.ExtProcFilterName, "envoy.filters.http.router"},
		// The filter stays; the anonymous route turns it off.
		"EDGE-anonymous": {wire.ExtProcFilterName, "envoy.filters.http.router"},
	}
	// The proof check and route cache clearing (jwt_authn) and the binding
	// (header_mutation) before ext_proc.
	proofChain := []string{"graymesh.proof", "graymesh.proof_bound", wire.ExtProcFilterName, "envoy.filters.http.router"}
	want[returningConfig], want[firstSeenConfig], want[anonymousConfig], want["EDGE-returning-nocel"], want[noProofConfig] = proofChain, proofChain, proofChain, proofChain, proofChain
	want["EDGE-returning-noextproc"] = []string{"graymesh.proof", "graymesh.proof_bound", "envoy.filters.http.router"}
	// The inner hop's variants: N1's filters; some without the strip.
	noStrip := map[string]bool{"H0": true, "H0-lane": true, "H0-returning": true}
	for _, c := range innerVariants() {
		want[c.Name] = want["N1"]
		noStrip[c.Name] = strings.HasPrefix(c.Name, "H0-lane") || c.Name == "N1-nostrip" || c.Name == "N1-norules" || strings.HasPrefix(c.Name, "N1-bare")
	}
	want["H0-lane"], want["H0-lane-long"], want["H0-h2"], want["H0-returning"] = want["H0"], want["H0"], want["H0"], want["H0"]
	noStrip["H0-h2"] = true
	n1 := Configs()[1]
	first, err := s.bootstrap(n1, 9901)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// No configuration's build changes what the next one starts from.
		if again, err := s.bootstrap(n1, 9901); err != nil || !bytes.Equal(again, first) {
			t.Errorf("N1 rendered after every configuration differs from the first (%v)", err)
		}
	}()
	for _, c := range Configs() {
		b, err := (&harness{sidecars: s, anonymous: anon, returning: ret}).sidecarsOf(c).bootstrap(c, 9901)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		hcm := listenerHCM(t, b)
		routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
		if c.returning {
			routes = afterProofRoutes(t, c.Name, routes)
		}
		top := routes[0]
		if _, off := top.GetTypedPerFilterConfig()[wire.ExtProcFilterName]; off != (c.anonymous || c.returning) || strings.HasSuffix(top.GetName(), "/anonymous") != (c.anonymous || c.returning) {
			t.Errorf("%s: first route %s, ext_proc off on it: %v", c.Name, top.GetName(), off)
		}
		var names []string
		for _, f := range hcm.GetHttpFilters() {
			names = append(names, f.GetName())
			if f.GetConfigDiscovery() != nil {
				t.Errorf("%s: %s is not inlined", c.Name, f.GetName())
			}
			if f.GetName() == wire.ExtProcFilterName {
				ep, err := extProcConfig(f)
				if err != nil {
					t.Fatal(err)
				}
				if c.Name == "E1" && (ep.GetForwardRules() != nil || len(ep.GetRequestAttributes()) == 0) {
					t.Error("E1 must forward every header (the lane of before is in baggage) and source.address, as before")
				}
				hop := ep.GetGrpcService().GetInitialMetadata()[0].GetValue()
				if (hop == wire.HopEdge) != c.edge {
					t.Errorf("%s asks graymesh as hop %s", c.Name, hop)
				}
			}
		}
		if strings.Join(names, " ") != strings.Join(want[c.Name], " ") {
			t.Errorf("%s: filters %v, want %v", c.Name, names, want[c.Name])
		}
		if strips := len(hcm.GetEarlyHeaderMutationExtensions()) > 0; strips == noStrip[c.Name] {
			t.Errorf("%s: strips x-gray-*: %v", c.Name, strips)
		}
	}
	if _, err := p.Lanes.Verify(p.Lanes.Sign("gray", "shop-v2", "1", time.Now()), time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestCallersGoGray: every caller's token verifies, with the token cache
// on and off, and admits the caller to gray at the edge, as the harness
// checks on every response.
func TestCallersGoGray(t *testing.T) {
	h := &harness{o: Options{WorkDir: t.TempDir()}, upstreams: &upstreams{stable: "127.0.0.1:9001", gray: "127.0.0.1:9002"}}
	path, err := h.writeConfig()
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := callerTokens(3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []string{path, h.noCachePath} {
		p, err := gray.Load(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range tokens {
			o := p.Decide(gray.Request{Authorization: "Bearer " + tok, Hop: gray.Hop{Service: edgeService}, Now: time.Now()})
			if o.Env != "gray" || o.Caller.Subject == "" {
				t.Fatalf("%s: decided %+v, want a verified caller in gray", cfg, o.Decision)
			}
		}
	}
}

// TestReturningCallersGoGray: under the returning config an HS256
// caller is admitted to gray and handed a proof of config version 1 that
// names it, which the policy routes on when it comes back with it — what
// the harness checks of the real graymesh in EDGE-returning's warm-up.
func TestReturningCallersGoGray(t *testing.T) {
	h := &harness{o: Options{WorkDir: t.TempDir()}, upstreams: &upstreams{stable: "127.0.0.1:9001", gray: "127.0.0.1:9002"}, version: "1"}
	if _, err := h.writeConfig(); err != nil {
		t.Fatal(err)
	}
	p, err := h.returningPolicy()
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := callerTokens(3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range tokens {
		o := p.Decide(gray.Request{Authorization: "Bearer " + tok, Hop: gray.Hop{Service: edgeService}, Now: time.Now()})
		if o.Env != "gray" || o.Proof == "" {
			t.Fatalf("caller %d: decided %+v, proof %q; want gray with a proof", i, o.Decision, o.Proof)
		}
		pr, err := p.Lanes.VerifyProof(o.Proof, time.Now())
		if err != nil || !strings.HasSuffix("Bearer "+tok, pr.Token) || pr.Version != p.Plan.ProofVersion || pr.Env != "gray" || pr.Release != "shop-v2" {
			t.Fatalf("caller %d: proof %+v (%v)", i, pr, err)
		}
		// The attribution configurations' proofs say the same (no caller
		// hash: no analysis reads the bench mesh's access log).
		if mine, err := p.Lanes.VerifyProof(signedProof(p, "user-"+strconv.Itoa(i), "Bearer "+tok, time.Now()), time.Now()); err != nil ||
			mine.Token != pr.Token || mine.Env != pr.Env || mine.Release != pr.Release || mine.Version != pr.Version || mine.CallerHash != pr.CallerHash || pr.CallerHash != "" {
			t.Fatalf("caller %d: the harness signs %+v (%v), graymesh %+v", i, mine, err, pr)
		}
		back := p.Decide(gray.Request{Authorization: "Bearer " + tok, Proof: o.Proof, Hop: gray.Hop{Service: edgeService}, Now: time.Now()})
		if back.Env != "gray" || back.Reason != gray.ReasonProof {
			t.Fatalf("caller %d back with its proof: %+v", i, back.Decision)
		}
	}
}

// TestConstantBinding: EDGE-returning binds the proof to the token with
// the CEL expression graymesh pushes; EDGE-returning-nocel with "true".
func TestConstantBinding(t *testing.T) {
	_, _, _, ret := benchSidecars(t)
	for _, c := range Configs() {
		if c.Name != returningConfig && c.Name != "EDGE-returning-nocel" {
			continue
		}
		b, err := ret.bootstrap(c, 9901)
		if err != nil {
			t.Fatal(err)
		}
		value := ""
		for _, f := range listenerHCM(t, b).GetHttpFilters() {
			if f.GetName() == proofBoundFilter {
				hm := &headermutationv3.HeaderMutation{}
				if err := f.GetTypedConfig().UnmarshalTo(hm); err != nil {
					t.Fatal(err)
				}
				value = hm.GetMutations().GetRequestMutations()[0].GetAppend().GetHeader().GetValue()
			}
		}
		if cel := strings.HasPrefix(value, "%CEL("); cel != (c.Name == returningConfig) || (!cel && value != "true") {
			t.Errorf("%s: x-gray-proof-bound %q", c.Name, value)
		}
	}
}

// TestMixBudgetBelowCarrying is the budget with the figures of a real
// run (bench-ir at f771689), where the mix's goal on H0 leaves a returning
// caller less than carrying its token and proof costs.
func TestMixBudgetBelowCarrying(t *testing.T) {
	one := func(envoy, graymesh uint64) []Count {
		return []Count{{SmallN: 1, LargeN: 2, Small: envoy, Large: 2 * envoy, GraymeshSmall: graymesh, GraymeshLarge: 2 * graymesh}}
	}
	res := &Result{Counts: map[string][]Count{
		"H0": one(174943, 0), "N1": one(205565, 0), "H0-returning": one(210641, 0),
		"EDGE": one(409968, 122852), "EDGE-cached": one(450727, 91977),
		anonymousConfig: one(196990, 0), firstSeenConfig: one(450412, 514018),
	}}
	var b strings.Builder
	writeMixBudget(func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }, res)
	// First-seen floor 409,968 + 91,977 = 501,945; on H0 (227,426 −
	// 17,494 − 50,195) / 0.8 = 199,671; on EDGE (266,410 − 17,494 −
	// 50,195) / 0.8 = 248,402; as measured (266,410 − 19,699 − 96,443) /
	// 0.8 = 187,835.
	for _, want := range []string{
		"(501,945:",
		"Mix ≤ 1.30× H0 leaves it 199,671 (1.14× H0, 0.97× N1): below H0-returning: out of reach while a first-seen caller goes through ext_proc.",
		"Mix ≤ 0.50× EDGE leaves it 248,402: not below H0-returning;",
		"(196,990, 964,430), 187,835: below H0-returning: out of reach at these costs.",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("budget lacks %q:\n%s", want, b.String())
		}
	}
}

func TestSumCounters(t *testing.T) {
	if n, err := sumCounters("http.inbound.ext_proc.streams_started: 3\nhttp.x.ext_proc.streams_started: 4\n"); err != nil || n != 7 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := sumCounters(""); err == nil {
		t.Fatal("no counter read as 0 streams")
	}
}

func TestParseTotal(t *testing.T) {
	dump := "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 44907987\nfn=(1) main\n10 5\ntotals: 44908090\n"
	if n, err := parseTotal(strings.NewReader(dump)); err != nil || n != 44908090 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := parseTotal(strings.NewReader(dump[:strings.Index(dump, "totals")])); err == nil {
		t.Fatal("a dump without its totals line (still being written) read as complete")
	}
}

func TestParseGCStarts(t *testing.T) {
	dump := "fn=(1) main\ncfn=(2) runtime.gcStart\ncalls=2 10\n5 100\ncfn=(3) runtime.mallocgc\ncalls=7 3\n1 1\nfn=(4) other\ncfn=(2)\ncalls=1 4\n1 1\n"
	if n, err := parseGCStarts(strings.NewReader(dump)); err != nil || n != 3 {
		t.Fatalf("%d %v, want 3", n, err)
	}
	named := "fn=(7) runtime.gcStart\n1 5\nfn=(1) main\ncfn=(7)\ncalls=4 1\n1 1\n"
	if n, err := parseGCStarts(strings.NewReader(named)); err != nil || n != 4 {
		t.Fatalf("named by fn=: %d %v, want 4", n, err)
	}
	if n, err := parseGCStarts(strings.NewReader("fn=(1) 0x0000000000401000\ncfn=(2) 0x0000000000402000\ncalls=1 1\n1 1\n")); err != nil || n != -1 {
		t.Fatalf("stripped: %d %v, want -1", n, err)
	}
	if v := metricValue("# HELP x\ngo_gc_duration_seconds_count 12\ngo_gc_duration_seconds_sum 0.1\n", "go_gc_duration_seconds_count"); v != 12 {
		t.Fatalf("metric %v", v)
	}
	if kb, err := parseVMHWM("Name:\tx\nVmHWM:\t   24588 kB\nVmRSS:\t 1 kB\n"); err != nil || kb != 24588 {
		t.Fatalf("VmHWM %d %v", kb, err)
	}
}

func TestWriteSection(t *testing.T) {
	res := &Result{
		Options: Options{Warmup: 50, Small: 200, Large: 400, Rounds: 2, GraymeshScale: 1},
		Envoy:   "envoy", Valgrind: "valgrind-3.19.0", Configs: Configs(),
		Counts: map[string][]Count{
			"H0":             {{SmallN: 200, LargeN: 400, Small: 200 * 170000, Large: 400 * 170000}, {SmallN: 200, LargeN: 400, Small: 200 * 170000, Large: 400 * 170000}},
			"N1":             {{SmallN: 200, LargeN: 400, Small: 200 * 180000, Large: 400 * 180000}, {SmallN: 200, LargeN: 400, Small: 200 * 182000, Large: 400 * 182000}},
			"E1":             {{SmallN: 200, LargeN: 400, Small: 200 * 430000, Large: 400 * 430000, GraymeshSmall: 200 * 250000, GraymeshLarge: 400 * 250000}},
			"EDGE":           {{SmallN: 200, LargeN: 400, Small: 200 * 430000, Large: 400 * 430000, GraymeshSmall: 200 * 200000, GraymeshLarge: 400 * 200000}},
			"EDGE-noop":      {{SmallN: 200, LargeN: 400, Small: 200 * 400000, Large: 400 * 400000, GraymeshSmall: 200 * 160000, GraymeshLarge: 400 * 160000, GCSmall: 1, GCLarge: 2}},
			"EDGE-cached":    {{SmallN: 200, LargeN: 400, Small: 200 * 420000, Large: 400 * 420000, GraymeshSmall: 200 * 96000, GraymeshLarge: 400 * 96000}},
			"EDGE-uncached":  {{SmallN: 200, LargeN: 400, Small: 200 * 420000, Large: 400 * 420000, GraymeshSmall: 200 * 216000, GraymeshLarge: 400 * 216000}},
			"H0-lane":        {{SmallN: 200, LargeN: 400, Small: 200 * 175000, Large: 400 * 175000}},
			"N1-claims3":     {{SmallN: 200, LargeN: 400, Small: 200 * 187000, Large: 400 * 187000}},
			"EDGE-anonymous": {{SmallN: 200, LargeN: 400, Small: 200 * 190000, Large: 400 * 190000}},
			"H0-lane-long":   {{SmallN: 200, LargeN: 400, Small: 200 * 176000, Large: 400 * 176000}},
			"N1-long":        {{SmallN: 200, LargeN: 400, Small: 200 * 183000, Large: 400 * 183000}},
			// graymesh not asked: no graymesh count, no ext_proc stream.
			"EDGE-returning":        {{SmallN: 200, LargeN: 400, Small: 200 * 220000, Large: 400 * 220000}},
			"EDGE-anonymous-proofs": {{SmallN: 200, LargeN: 400, Small: 200 * 200000, Large: 400 * 200000}},
			"H0-returning":          {{SmallN: 200, LargeN: 400, Small: 200 * 180000, Large: 400 * 180000}},
			"EDGE-returning-nocel":  {{SmallN: 200, LargeN: 400, Small: 200 * 212000, Large: 400 * 212000}},
			"EDGE-firstseen":        {{SmallN: 200, LargeN: 400, Small: 200 * 500000, Large: 400 * 500000, GraymeshSmall: 200 * 1000000, GraymeshLarge: 400 * 1000000, Streams: 600}},
			noProofConfig:           {{SmallN: 200, LargeN: 400, Small: 200 * 470000, Large: 400 * 470000, GraymeshSmall: 200 * 150000, GraymeshLarge: 400 * 150000, Streams: 600}},
		},
		TokenBytes: 190, ProofBytes: 260,
		LaneBytes: 251, LongLaneBytes: 258,
		RSS:     map[string]uint64{"EDGE-cached": 70 * 1024},
		Outside: map[string]OutsideRun{"EDGE-cached": {Requests: 600, GCs: 1, Bytes: 600 * 1500}},
	}
	var b bytes.Buffer
	if err := WriteSection(&b, res, "bin/irbench"); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, `\n`) {
		t.Errorf("section has an escaped newline:\n%s", out)
	}
	for _, want := range []string{"| N1 |", "180,000 | 182,000 | 181,000 | 1.06× | — |", "N1 ≤ 1.10 × H0 | 1.06×", "| met |", "bin/irbench", "(B − A) / 200",
		"| E1 |", "430,000 | — | 430,000 | 2.53× | 250,000 |",
		// chain before: 430k + 200k + 3 × 680k = 2,670k; now: 630k + 3 × 181k = 1,173k
		"0.44× (now 1,173,000, before 2,670,000)",
		"5,000 is only carrying the lane (H0-lane − H0)", "the lane is 251 bytes", "fits in 1.10× H0 only if it costs at most 12,000; the check proper (N1 − H0-lane) is 6,000", "(N1-claims3 − N1): 6,000",
		"was 258 bytes", "carrying it cost 1,000 more than carrying today's 251 bytes", "with it 2,000 more: N1-long 183,000, 1.08× H0",

		"| EDGE-cached | 96,000 | — | 96,000 | 0.60× | 420,000 | 0/0 | 70.0 MiB | 1 GCs in 600 requests, 1500 B |",
		"EDGE-cached ≤ 0.85 × EDGE-noop | 0.60× (cached 96,000, no-op 160,000) | met",
		"EDGE-uncached ≤ 1.30 × EDGE-noop | 1.35× (uncached 216,000, no-op 160,000) | **missed**",

		// The returning callers: mix Envoy 0.8 × 220k + 0.1 × 200k + 0.1 ×
		// 500k = 246k, graymesh 0.1 × 1,000k = 100k.
		"| EDGE-returning | 80% | 220,000 | 0 (not asked) | 220,000 | 1.29× | 1.22× | 0.35× | 0 (0 in 600) |",
		"| EDGE-anonymous-proofs | 10% | 200,000 | 0 (not asked) | 200,000 | 1.18× | 1.10× | 0.32× | 0 (0 in 600) |",
		"| EDGE-firstseen | 10% | 500,000 | 1,000,000 | 1,500,000 | 8.82× | 8.29× | 2.38× | 1 (600 in 600) |",
		"| **mix** | 100% | 246,000 | 100,000 | 346,000 | 2.04× | 1.91× | 0.55× | 0.1 (100 per 1,000 requests) |",
		"Its first-seen tenth is 43% of it, its returning eight tenths 51%.",
		"220,000 | — | 220,000 | 1.29× | 0 (not asked) |",
		"EDGE-returning ≤ 1.25 × N1 | 1.22× (returning 220,000, N1 181,000) | met",
		"mix ≤ 1.30 × H0 | 2.04× (mix 346,000 = Envoy 246,000 + graymesh 100,000, H0 170,000) | **missed**",
		"mix ≤ 0.50 × EDGE | 0.55× (mix 346,000, EDGE 630,000) | **missed**",
		"0.34× (889,000) of turn 2 (2,640,000, the figure of before); 0.76× of today (EDGE + 3 × N1: 1,173,000)",
		"its HS256 token, 190 bytes, which Envoy does not verify, and its proof, 260 bytes",
		"10,000 more than EDGE-anonymous",
		"Where a returning caller's 50,000 over H0 go (attribution): carrying its token and proof (and the accept header the mix's requests send) through Envoy, which nothing reads (H0-returning − H0), 10,000; the CEL binding (EDGE-returning − EDGE-returning-nocel), 8,000;",
		"(EDGE-returning-nocel − H0-returning) — 32,000.",
		"| EDGE-returning-noproof (a caller that does not send its proof back) | — | 470,000 | 150,000 | 620,000 | 3.65× | 3.43× | 0.98× | 1 (600 in 600) |",
		"costs 470,000 in Envoy and 150,000 in graymesh", "EDGE-cached, the same callers without returning callers on, costs 420,000 in Envoy and 96,000 in graymesh",
		// The returning caller's budget: first-seen floor EDGE's Envoy
		// 430k + EDGE-cached's graymesh 96k = 526k; on H0 (1.3 × 170k −
		// 17k − 52.6k) / 0.8 = 189,250, on EDGE (0.5 × 630k − 17k −
		// 52.6k) / 0.8 = 306,750, on EDGE as measured (315k − 20k −
		// 150k) / 0.8 = 181,250.
		"first-seen caller, which item 1 sends through ext_proc, at EDGE's Envoy plus EDGE-cached's graymesh (526,000:",
		"(H0-returning, 180,000). Mix ≤ 1.30× H0 leaves it 189,250 (1.11× H0, 1.05× N1): not below H0-returning. Mix ≤ 0.50× EDGE leaves it 306,750: not below H0-returning; with the anonymous and first-seen requests as measured (200,000, 1,500,000), 181,250: not below H0-returning.",
		returningCommand} {
		if !strings.Contains(out, want) {
			t.Errorf("section lacks %q:\n%s", want, out)
		}
	}
}
