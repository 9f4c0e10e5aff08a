package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/runtime/admin"
)

func analysisServer(t *testing.T, st admin.AnalysisStatus) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/releases/shop-v2/analysis" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestAnalysisCommandShowsEveryPart(t *testing.T) {
	a := &config.Analysis{}
	a.ApplyDefaults()
	share := 41.5
	st := admin.AnalysisStatus{Release: "shop-v2", Env: "gray", Services: []string{"shop"}, Settings: a, State: "frozen", Percent: 30, ScheduleStep: -1,
		Windows: []admin.Window{{Index: 7, From: time.Unix(0, 0), To: time.Unix(30, 0), ConfigVersion: "4", State: "active", Percent: 30,
			Report: analysis.Report{Verdict: analysis.Fail, Reason: "shop: errors: gray 6.00% vs stable 1.00% errors: +5.00 points > tolerance 1.00 (p=1e-05 < 0.025)",
				Services: []analysis.ServiceReport{{Service: "shop", Gray: analysis.SideSummary{Requests: 400, Errors: 24, ErrorRate: 6, P50: 12},
					Stable: analysis.SideSummary{Requests: 900, Errors: 9, ErrorRate: 1}, GrayRequestShare: 30.8, GrayCallerShare: &share, Verdict: analysis.Fail,
					Tests: []analysis.TestResult{{Metric: "errors", Method: analysis.MethodZ, Statistic: 4.2, P: 1e-5, Alpha: 0.025, Effect: 5, Threshold: 1, Critical: 20, Verdict: analysis.Fail}}}}},
			Action: "freeze", FleetWindow: admin.FleetWindow{Generation: 5, Nodes: 3, NodesReporting: 3, ActedBy: "node-1"}}}}
	url := analysisServer(t, st)
	code, out, errOut := runCLI("analysis", "shop-v2", "--admin", url)
	if code != 0 {
		t.Fatalf("code %d: %s", code, errOut)
	}
	for _, want := range []string{"release shop-v2 → gray: state frozen", "window 7", "verdict: FAIL — shop: errors:", "action:  freeze",
		"400", "24 (6.00%)", "gray served 30.8% of requests, 41.5% of distinct callers (configured 30%)",
		"two-proportion-z", "threshold 1.00", "critical 20.00", "→ fail",
		"fleet:   evidence of 3 of 3 reporting nodes merged; judged and acted on by node-1 (GrayRelease generation 5)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// --until returns at once when a shown window has the verdict, and
	// fails after its timeout when none does.
	if code, _, _ := runCLI("analysis", "shop-v2", "--admin", url, "--until", "fail,critical", "--timeout", "1s"); code != 0 {
		t.Fatalf("--until fail: code %d", code)
	}
	if code, _, errOut := runCLI("analysis", "shop-v2", "--admin", url, "--until", "pass", "--timeout", "100ms"); code != 1 || !strings.Contains(errOut, "no window judged pass") {
		t.Fatalf("--until pass: code %d, %s", code, errOut)
	}
	if code, _, _ := runCLI("analysis", "shop-v2", "--admin", url, "--until", "great"); code == 0 {
		t.Fatal("an unknown verdict was accepted")
	}
	if code, _, errOut := runCLI("analysis", "nope", "--admin", url); code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("unknown release: code %d, %s", code, errOut)
	}
}

// windowsServer answers like the admin API, its windows trimmed to the
// latest ?windows=N when asked.
func windowsServer(t *testing.T, st admin.AnalysisStatus) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := st
		if n, err := strconv.Atoi(r.URL.Query().Get("windows")); err == nil && n < len(out.Windows) {
			out.Windows = out.Windows[len(out.Windows)-n:]
		}
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A fail judged before the latest five windows (the release already
// frozen by it) still ends --until fail, and is shown.
func TestAnalysisUntilSeesOlderWindows(t *testing.T) {
	a := &config.Analysis{}
	a.ApplyDefaults()
	st := admin.AnalysisStatus{Release: "shop-v2", Env: "gray", Services: []string{"shop"}, Settings: a, State: "frozen", Percent: 10, ScheduleStep: -1}
	for i := 1; i <= 7; i++ {
		w := admin.Window{Index: i, From: time.Unix(int64(5*i), 0), To: time.Unix(int64(5*i+5), 0), State: "frozen",
			Report: analysis.Report{Verdict: analysis.Inconclusive, Reason: "too few requests"}, Action: "hold"}
		if i == 1 {
			w.State, w.Verdict, w.Reason, w.Action = "active", analysis.Fail, "shop: errors: gray 9.00% vs stable 0.00%", "freeze"
		}
		st.Windows = append(st.Windows, w)
	}
	url := windowsServer(t, st)
	code, out, errOut := runCLI("analysis", "shop-v2", "--admin", url, "--until", "fail", "--timeout", "1s")
	if code != 0 {
		t.Fatalf("--until fail with the fail 7 windows back: code %d: %s", code, errOut)
	}
	for _, want := range []string{"window 1 ", "verdict: FAIL", "action:  freeze", "window 3 ", "window 7 "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "window 2 ") {
		t.Errorf("window 2 is neither among the latest 5 nor the match:\n%s", out)
	}
	code, out, errOut = runCLI("analysis", "shop-v2", "--admin", url, "--until", "fail", "--json", "--windows", "2")
	var got admin.AnalysisStatus
	if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil {
		t.Fatalf("--json: code %d, %v: %s", code, err, errOut)
	}
	var indexes []int
	for _, w := range got.Windows {
		indexes = append(indexes, w.Index)
	}
	if !slices.Equal(indexes, []int{1, 6, 7}) {
		t.Errorf("--json --windows 2 showed windows %v, want the match and the latest two: [1 6 7]", indexes)
	}
}
