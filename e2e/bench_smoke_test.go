package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/bench/loadbench"
)

// TestBenchSmoke runs the load harness (bench/) briefly: every
// configuration once, one low rate, through the real Envoy. It asserts
// what must hold at any speed — zero errors and routing confirmed both
// per response and by Envoy's per-cluster counters — never timings.
func TestBenchSmoke(t *testing.T) {
	self := filepath.Join(t.TempDir(), "loadbench")
	build := exec.Command("go", "build", "-o", self, "./bench/cmd/loadbench")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building loadbench: %v\n%s", err, out)
	}
	var log bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := loadbench.RunBench(ctx, loadbench.Options{
		Envoy: envoyBin, Graymesh: filepath.Join(binDir, "graymesh"), Self: self, WorkDir: t.TempDir(),
		Rounds: 1, Fixed: []int{200}, Ladder: []int{}, FixedDuration: 2 * time.Second,
		Warmup: time.Second, WarmupRate: 300, Subjects: 300,
		// Timings are not asserted. A generous ext_proc budget keeps a busy
		// machine from failing a slow decision open to stable, which the
		// routing check would count as misrouted; nothing is pinned, so the
		// processes can use whichever core is free.
		MaxP99: time.Second, MessageTimeout: 2 * time.Second,
		Pin: false, Profile: "never", QuietBudget: -1, Log: &log,
	})
	t.Log("\n" + log.String())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, s := range res.Steps {
		seen[s.Config] = true
		if s.Sent == 0 || s.Errors != 0 {
			t.Errorf("%s: sent %d, %d errors (%s)", s.Config, s.Sent, s.Errors, s.FirstError)
		}
		if !s.RoutingOK || s.Misrouted != 0 {
			t.Errorf("%s: routing wrong: %d misrouted responses; gray want %d, Envoy counted %d; stable want %d, counted %d; failure counters %v",
				s.Config, s.Misrouted, s.WantGray, s.GotGray, s.WantStable, s.GotStable, s.ProblemStats)
		}
		// Every configuration but E0 sends the 30% (+ whitelist) to gray.
		if s.Config != "E0" && (s.WantGray < s.Sent/5 || s.WantGray > s.Sent/2) {
			t.Errorf("%s: %d of %d to gray: the workload is not exercising the split", s.Config, s.WantGray, s.Sent)
		}
	}
	for _, c := range loadbench.Configs() {
		if !seen[c.Name] {
			t.Errorf("configuration %s did not run", c.Name)
		}
	}
	// The report and chart render from the run.
	var report, chart bytes.Buffer
	if err := loadbench.WriteReport(&report, loadbench.ReportInput{Result: res, Command: "smoke", Chart: "latency.svg"}); err != nil {
		t.Fatal(err)
	}
	if err := loadbench.WriteChart(&chart, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report.String(), "| C1 |") || !strings.HasPrefix(chart.String(), "<svg") {
		t.Errorf("report or chart incomplete")
	}
	if t.Failed() {
		_ = os.WriteFile(filepath.Join(t.TempDir(), "RESULTS.md"), report.Bytes(), 0o644)
		t.Log(report.String())
	}
}
