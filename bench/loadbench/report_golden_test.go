package loadbench

import (
	"bytes"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/testing/golden"
)

// goldenResult is a synthetic run that reaches every section of the
// report: two rounds, a ladder that stops, a disturbed machine, a misrouted
// step, a profile, micro-benchmarks and the cache check.
func goldenResult() (*Result, *Micro, *Check) {
	o := Options{Rounds: 2, Fixed: []int{500, 1000}, Ladder: []int{2000, 3000}, FixedDuration: 3 * time.Second, StepDuration: 2 * time.Second,
		Warmup: time.Second, WarmupRate: 1000, MaxP99: 5 * time.Millisecond, MaxP50: 5 * time.Millisecond, QuietBudget: 3 * time.Minute}
	res := &Result{Options: o, Configs: Configs(), Subjects: 1000, WantGrayShare: 0.3,
		Started: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Took: 754 * time.Second,
		Machine: Machine{CPU: "Test CPU @ 2.0GHz", Kernel: "Linux 6.1.0", Go: "go1.26 linux/amd64", Envoy: "1.40.0", NumCPU: 2},
		CPUPlan: "Envoy on core 0, the rest on core 1", LoadAvgStart: "0.10 0.20 0.30", LoadAvgEnd: "1.10 1.20 1.30",
		QuietWaited: 12 * time.Second, Remeasured: 1}
	for ci, c := range res.Configs {
		for round := 1; round <= 2; round++ {
			run := Run{Config: c.Name, Round: round, RoutingOK: true}
			rates := []int{500, 1000, 2000, 3000}
			for ri, rate := range rates {
				kind := "fixed"
				if rate > 1000 {
					kind = "ladder"
				}
				lat := time.Duration(200+50*ci+40*round+300*ri) * time.Microsecond
				if ci == 0 && ri == 3 {
					lat = 6 * time.Millisecond
				}
				s := Step{Config: c.Name, Round: round, Kind: kind, Rate: rate, Duration: 2 * time.Second, Sent: 2 * rate,
					P50: lat, P90: lat * 3 / 2, P99: lat * 3, P999: lat * 5, SendLagP99: 30 * time.Microsecond, ServiceP50: lat / 2, ServiceP99: lat * 2,
					CPU:      map[string]float64{"envoy": 40 + float64(ci), "extproc": 30 + 2*float64(ci), "upstream": 20, "client": 50},
					OtherCPU: 0.05 * float64(round), StealCPU: 0.01 * float64(ci), RoutingOK: true,
					WantGray: rate * 6 / 10, GotGray: int64(rate * 6 / 10), WantStable: rate * 14 / 10, GotStable: int64(rate * 14 / 10)}
				s.Sustainable = s.P99 < o.MaxP99
				s.KeepsUp = s.P50 < o.MaxP50
				if ci == 2 && round == 2 && ri == 3 {
					s.RoutingOK, s.KeepsUp, s.Sustainable, s.Misrouted = false, false, false, 7
					s.Errors, s.FirstError, s.Sent = 3, " context deadline exceeded ", 5000
					s.ProblemStats = map[string]int{"message_timeouts": 3}
					s.OtherCPU = 0.4
				}
				res.Steps = append(res.Steps, s)
				if s.Sustainable && (ri == 0 || run.MaxRate == rates[ri-1]) {
					run.MaxRate = rate
				}
				if s.KeepsUp && (ri == 0 || run.MaxRateP50 == rates[ri-1]) {
					run.MaxRateP50 = rate
				}
				run.RoutingOK = run.RoutingOK && s.RoutingOK
			}
			res.Runs = append(res.Runs, run)
		}
	}
	res.Discarded = []Step{res.Steps[0]}
	res.Profile = &Profile{Rate: 1000, Duration: 10 * time.Second, Step: res.Steps[1],
		Commands: []string{"go tool pprof -top cpu.pprof", "go tool pprof -sample_index=alloc_space -top alloc.pprof"},
		CPUTotal: 3 * time.Second, Wall: 8 * time.Second,
		Categories: []Share{{"graymesh's own code", 0.9, 0.3}, {"JWT and hashing", 0.3, 0.1}, {"gRPC and HTTP/2", 0.9, 0.3}, {"allocation and GC", 0.6, 0.2}, {"goroutine scheduling", 0.3, 0.1}},
		Cum:        []Share{{"gray.(*Policy).Decide", 1.2, 0.4}},
		TopFlat:    []Share{{"runtime.mallocgc", 0.3, 0.1}},
		AllocBytes: 64 << 20, AllocObjects: 800000, TopAlloc: []Share{{"google.golang.org/protobuf/proto.Marshal", 16 << 20, 0.25}}}
	micro := &Micro{Command: "go test -run='^$' -bench=. -benchmem ./internal/core/gray", CPU: "Test CPU @ 2.0GHz", Rows: []BenchRow{
		{Pkg: "github.com/graymesh/graymesh/internal/core/identity", Name: "BenchmarkVerify/uncached/HS256", NsOp: 4321, BOp: 2048, AllocsOp: 30, HasMem: true},
		{Pkg: "github.com/graymesh/graymesh/bench/loadbench", Name: "BenchmarkCachedDecision", NsOp: 812.5, BOp: 0, AllocsOp: 0, HasMem: true},
		{Pkg: "github.com/graymesh/graymesh/bench/loadbench", Name: "BenchmarkHandler", NsOp: 2500, BOp: 512, AllocsOp: 9, HasMem: true},
		{Pkg: "github.com/graymesh/graymesh/internal/core/gray", Name: "BenchmarkBucket", NsOp: 35.25},
	}}
	cache := &Check{Command: "go test -count=1 -run '^TestCacheHonoursExpAndBound$' ./internal/core/identity", Output: "ok", Passed: true}
	return res, micro, cache
}

// TestReportGolden pins bench/RESULTS.md's format: the report and the
// chart of a synthetic run must not change unless the golden files do.
func TestReportGolden(t *testing.T) {
	golden.Own(t, "testdata/*.golden.*")
	res, micro, cache := goldenResult()
	var report, chart bytes.Buffer
	if err := WriteReport(&report, ReportInput{Result: res, Micro: micro, Cache: cache, Command: "bin/loadbench --rounds 2", Chart: "latency.svg"}); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/report.golden.md", report.Bytes())
	if err := WriteChart(&chart, res); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/chart.golden.svg", chart.Bytes())
	// Without the optional inputs the report says what is missing.
	res.Profile = nil
	report.Reset()
	if err := WriteReport(&report, ReportInput{Result: res, Command: "bin/loadbench"}); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/report-minimal.golden.md", report.Bytes())
}
