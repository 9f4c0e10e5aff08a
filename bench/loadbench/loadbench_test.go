package loadbench

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// TestBootstrapsDifferOnlyInFilters renders every configuration's Envoy
// bootstrap and checks they validate and are identical once the HTTP
// filters (and, for B0, the early x-gray-* strip) are set aside.
func TestBootstrapsDifferOnlyInFilters(t *testing.T) {
	p, secret := benchPolicy(t)
	var ref *bootstrapv3.Bootstrap
	filters := map[string][]string{}
	for _, c := range Configs() {
		b, err := bootstrap(c, p.Config, secret, "127.0.0.1:18081", 9901)
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		boot := &bootstrapv3.Bootstrap{}
		if err := protojson.Unmarshal(b, boot); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if err := boot.ValidateAll(); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		f := boot.StaticResources.Listeners[0].FilterChains[0].Filters[0]
		hcm := &hcmv3.HttpConnectionManager{}
		if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
			t.Fatal(err)
		}
		for _, hf := range hcm.HttpFilters {
			filters[c.Name] = append(filters[c.Name], hf.Name)
		}
		if c.clientEnv != (len(hcm.EarlyHeaderMutationExtensions) == 0) {
			t.Errorf("%s: early x-gray-* strip present = %v", c.Name, len(hcm.EarlyHeaderMutationExtensions) > 0)
		}
		hcm.HttpFilters, hcm.EarlyHeaderMutationExtensions = nil, nil
		if err := f.GetTypedConfig().MarshalFrom(hcm); err != nil {
			t.Fatal(err)
		}
		boot.Node = nil
		if ref == nil {
			ref = boot
		} else if !proto.Equal(ref, boot) {
			t.Errorf("%s: listener, routes or clusters differ from %s's", c.Name, Configs()[0].Name)
		}
	}
	want := map[string]string{
		"B0": "envoy.filters.http.router",
		"E0": "envoy.filters.http.ext_proc envoy.filters.http.router",
		"L1": "envoy.filters.http.jwt_authn envoy.filters.http.lua envoy.filters.http.router",
		"C1": "envoy.filters.http.ext_proc envoy.filters.http.router",
	}
	for name, w := range want {
		if got := strings.Join(filters[name], " "); got != w {
			t.Errorf("%s filters: %s, want %s", name, got, w)
		}
	}
}

func TestLuaMirrorsTheRelease(t *testing.T) {
	p, _ := benchPolicy(t)
	src, err := luaFilterSource(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`local SALT = "shop-v2-loadbench"`, "local BASIS_POINTS = 3000", `["user-1"] = true`, `local BLACKLIST = {["user-3"] = true, }`, "function envoy_on_request"} {
		if !strings.Contains(src, want) {
			t.Errorf("Lua source lacks %q", want)
		}
	}
	cfg := *p.Config
	cfg.Releases = append([]config.Release(nil), cfg.Releases...)
	cfg.Releases[0].CIDRs = []string{"10.0.0.0/8"}
	if _, err := luaFilterSource(&cfg); err == nil {
		t.Error("a release with rules the Lua filter does not mirror was accepted")
	}
	if got := luaString("a\"b\\c\x00"); got != `"a\034b\092c\000"` {
		t.Errorf("luaString: %s", got)
	}
}

func TestParseStatTicks(t *testing.T) {
	stat := "4242 (envoy (main) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 9 0 123 456 789"
	got, err := parseStatTicks(stat)
	if err != nil || got != 1234+567 {
		t.Fatalf("got %d, %v", got, err)
	}
	if _, err := parseStatTicks("garbage"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestQuantile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i))
	}
	for q, want := range map[float64]time.Duration{0.5: 500, 0.9: 900, 0.99: 990, 0.999: 999, 1: 1000} {
		if got := quantile(d, q); got != want {
			t.Errorf("q%v = %d, want %d", q, got, want)
		}
	}
	if quantile(nil, 0.5) != 0 {
		t.Error("empty")
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 2, 3}) != 2.5 {
		t.Error("median")
	}
}

func TestParseMicro(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/graymesh/graymesh/internal/core/gray
cpu: Intel(R) Xeon(R) Processor
BenchmarkDecide/percent-2         	 8062180	       146.9 ns/op	       0 B/op	       0 allocs/op
BenchmarkBucket-2   	30000000	        38.70 ns/op
PASS
`
	m, err := ParseMicro(strings.NewReader(out), "cmd")
	if err != nil {
		t.Fatal(err)
	}
	r, ok := m.Find("BenchmarkDecide/percent")
	if !ok || r.NsOp != 146.9 || !r.HasMem || r.AllocsOp != 0 || r.Pkg != "github.com/graymesh/graymesh/internal/core/gray" {
		t.Fatalf("%+v %v", r, ok)
	}
	if r, ok := m.Find("BenchmarkBucket"); !ok || r.HasMem {
		t.Fatalf("%+v", r)
	}
	if m.CPU != "Intel(R) Xeon(R) Processor" {
		t.Fatal(m.CPU)
	}
}

func TestParseTop(t *testing.T) {
	out := `File: graymesh
Type: cpu
Duration: 7s, Total samples = 1.50s (21.43%)
Showing nodes accounting for 1.50s, 100% of 1.50s total
      flat  flat%   sum%        cum   cum%
     0.50s 33.33% 33.33%      0.50s 33.33%  internal/runtime/syscall.Syscall6
     100ms  6.67% 40.00%      1.20s 80.00%  google.golang.org/grpc.(*Server).serveStreams.func2.1
   12.50MB 10.00% 50.00%    12.50MB 10.00%  github.com/graymesh/graymesh/extproc.Response
`
	rows, header := parseTop(out)
	if len(rows) != 3 || !strings.Contains(header, "Duration: 7s") {
		t.Fatalf("%d rows, header %q", len(rows), header)
	}
	if rows[0].flat != 0.5 || rows[1].flat != 0.1 || rows[1].cum != 1.2 || rows[2].flat != 12.5*(1<<20) {
		t.Fatalf("%+v", rows)
	}
	for fn, want := range map[string]string{
		"internal/runtime/syscall/linux.Syscall6":             "syscalls",
		"google.golang.org/grpc.(*Server).serveStreams.func2": "gRPC",
		"github.com/graymesh/graymesh/extproc.Response":       "graymesh",
		"runtime.mallocgc":     "allocation",
		"runtime.findRunnable": "goroutine",
		"crypto/sha256.block":  "JWT",
	} {
		if got := cpuCategory(fn); !strings.HasPrefix(got, want) {
			t.Errorf("%s: %s", fn, got)
		}
	}
}

// TestReportAndChart renders a report and a chart from a synthetic run.
func TestReportAndChart(t *testing.T) {
	res := &Result{Options: Options{Rounds: 2, Fixed: []int{1000}, Ladder: []int{3000}, MaxP99: 5 * time.Millisecond, Warmup: time.Second, WarmupRate: 1000}, Configs: Configs(), Subjects: 10}
	for _, c := range res.Configs {
		for round := 1; round <= 2; round++ {
			for _, rate := range []int{1000, 3000} {
				lat := time.Duration(300+100*round) * time.Microsecond
				res.Steps = append(res.Steps, Step{Config: c.Name, Round: round, Kind: "fixed", Rate: rate, Duration: time.Second, Sent: rate,
					P50: lat, P90: lat, P99: 2 * lat, P999: 3 * lat, RoutingOK: true, Sustainable: rate < 3000,
					CPU: map[string]float64{"envoy": 40, "extproc": 30, "upstream": 20, "client": 50}})
			}
			res.Runs = append(res.Runs, Run{Config: c.Name, Round: round, MaxRate: 1000 * round, RoutingOK: true})
		}
	}
	var report, chart bytes.Buffer
	if err := WriteReport(&report, ReportInput{Result: res, Command: "bin/loadbench", Chart: "latency.svg"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| C1-nocache |", "## Targets", "Maximum sustainable rate vs Envoy alone", "1.00 (C1 1,500 rps / B0 1,500 rps)", "latency.svg"} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if err := WriteChart(&chart, res); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&chart)
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v", err)
		}
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatalf("results.json: %v", err)
	}
}
