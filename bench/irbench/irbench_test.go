package irbench

import (
	"bytes"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
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
func benchSidecars(t *testing.T) (p *gray.Policy, s, anon *sidecars) {
	t.Helper()
	h := &harness{o: Options{WorkDir: t.TempDir()}, upstreams: &upstreams{stable: "127.0.0.1:9001", gray: "127.0.0.1:9002"}}
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
	return p, s, anon
}

func TestBootstraps(t *testing.T) {
	p, s, anon := benchSidecars(t)
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
	// The inner hop's variants: N1's filters; some without the strip.
	noStrip := map[string]bool{"H0": true, "H0-lane": true}
	for _, c := range innerVariants() {
		want[c.Name] = want["N1"]
		noStrip[c.Name] = strings.HasPrefix(c.Name, "H0-lane") || c.Name == "N1-nostrip" || c.Name == "N1-norules" || strings.HasPrefix(c.Name, "N1-bare")
	}
	want["H0-lane"], want["H0-lane-long"], want["H0-h2"] = want["H0"], want["H0"], want["H0"]
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
		sc := s
		if c.anonymous {
			sc = anon
		}
		b, err := sc.bootstrap(c, 9901)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		hcm := listenerHCM(t, b)
		top := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]
		if _, off := top.GetTypedPerFilterConfig()[wire.ExtProcFilterName]; off != c.anonymous || strings.HasSuffix(top.GetName(), "/anonymous") != c.anonymous {
			t.Errorf("%s: first route %s, ext_proc off on it: %v", c.Name, top.GetName(), off)
		}
		var names []string
		for _, f := range hcm.GetHttpFilters() {
			names = append(names, f.GetName())
			if f.GetConfigDiscovery() != nil {
				t.Errorf("%s: %s is not inlined", c.Name, f.GetName())
			}
			if f.GetName() == wire.ExtProcFilterName {
				ep := &extprocv3.ExternalProcessor{}
				if err := f.GetTypedConfig().UnmarshalTo(ep); err != nil {
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
			"H0":            {{SmallN: 200, LargeN: 400, Small: 200 * 170000, Large: 400 * 170000}, {SmallN: 200, LargeN: 400, Small: 200 * 170000, Large: 400 * 170000}},
			"N1":            {{SmallN: 200, LargeN: 400, Small: 200 * 180000, Large: 400 * 180000}, {SmallN: 200, LargeN: 400, Small: 200 * 182000, Large: 400 * 182000}},
			"E1":            {{SmallN: 200, LargeN: 400, Small: 200 * 430000, Large: 400 * 430000, GraymeshSmall: 200 * 250000, GraymeshLarge: 400 * 250000}},
			"EDGE":          {{SmallN: 200, LargeN: 400, Small: 200 * 430000, Large: 400 * 430000, GraymeshSmall: 200 * 200000, GraymeshLarge: 400 * 200000}},
			"EDGE-noop":     {{SmallN: 200, LargeN: 400, Small: 200 * 400000, Large: 400 * 400000, GraymeshSmall: 200 * 160000, GraymeshLarge: 400 * 160000, GCSmall: 1, GCLarge: 2}},
			"EDGE-cached":   {{SmallN: 200, LargeN: 400, Small: 200 * 420000, Large: 400 * 420000, GraymeshSmall: 200 * 96000, GraymeshLarge: 400 * 96000}},
			"EDGE-uncached": {{SmallN: 200, LargeN: 400, Small: 200 * 420000, Large: 400 * 420000, GraymeshSmall: 200 * 216000, GraymeshLarge: 400 * 216000}},
			"H0-lane":       {{SmallN: 200, LargeN: 400, Small: 200 * 175000, Large: 400 * 175000}},
			"N1-claims3":    {{SmallN: 200, LargeN: 400, Small: 200 * 187000, Large: 400 * 187000}},
			"H0-lane-long":  {{SmallN: 200, LargeN: 400, Small: 200 * 176000, Large: 400 * 176000}},
			"N1-long":       {{SmallN: 200, LargeN: 400, Small: 200 * 183000, Large: 400 * 183000}},
		},
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
		"EDGE-uncached ≤ 1.30 × EDGE-noop | 1.35× (uncached 216,000, no-op 160,000) | **missed**"} {
		if !strings.Contains(out, want) {
			t.Errorf("section lacks %q:\n%s", want, out)
		}
	}
}
