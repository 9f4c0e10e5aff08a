package console

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/runtime/admin"
	"github.com/graymesh/graymesh/internal/runtime/daemon"
)

// TestReleasePageShowsAnalysisWindows renders the release page with an
// analysis answer: one row per window and service, the verdict in words,
// and for a fleet's window the nodes merged, the analyser that acted and
// the errors test's statistic against its boundary.
func TestReleasePageShowsAnalysisWindows(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 28, 10, 0, 5, 0, time.UTC)
	st := &admin.AnalysisStatus{
		Release: "shop-v2", Env: "gray", Services: []string{"shop"},
		Settings: &config.Analysis{Interval: config.Duration{Duration: 5 * time.Second}},
		Windows: []admin.Window{
			{Index: 7, To: at, Action: "freeze", FleetWindow: admin.FleetWindow{Nodes: 3, NodesReporting: 4, ActedBy: "node-2"},
				Report: analysis.Report{Verdict: analysis.Fail, Reason: "error rate: gray 6.0% vs stable 1.0%",
					Services: []analysis.ServiceReport{{Service: "shop",
						Tests:  []analysis.TestResult{{Metric: "errors", Statistic: 5.123, Boundary: 4.38}},
						Gray:   analysis.SideSummary{Requests: 400, Errors: 24, P50: 12, P99: 40},
						Stable: analysis.SideSummary{Requests: 900, Errors: 9, P50: 11, P99: 38}}}}},
			{Index: 6, To: at.Add(-5 * time.Second), Action: "hold", Error: "analysis source unavailable",
				Report: analysis.Report{Verdict: analysis.Inconclusive, Reason: "no observations"}},
		},
	}
	var buf bytes.Buffer
	err = pages["release"].ExecuteTemplate(&buf, "layout", view{Title: "Release shop-v2", Page: releaseView{
		releaseRow: releaseRow{ReleaseStatus: admin.ReleaseStatus{Name: "shop-v2"}}, Analysis: st, AnalysisStatus: 200,
	}})
	if err != nil {
		t.Fatal(err)
	}
	page := buf.String()
	for _, want := range []string{
		"Every 5s graymesh compares gray with stable on shop",
		"#7 10:00:05", "400 / 24 / 12 ms / 40 ms", "900 / 9 / 11 ms / 38 ms",
		`<strong class="verdict-fail">fail</strong> error rate: gray 6.0% vs stable 1.0%`, "freeze",
		"fleet: 3 of 4 nodes' evidence, judged and acted on by node-2", "errors: statistic 5.12, boundary 4.38",
		"#6 10:00:00", "analysis source unavailable", `<strong class="verdict-inconclusive">inconclusive</strong>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("release page lacks %q", want)
		}
	}
}

// A schedule an analysis gates is held step by step: adding one is a
// change (not "no release field changed"), and the pages show every step
// still to come and what it waits for.
func TestHeldScheduleIsShownWithWhatItWaitsFor(t *testing.T) {
	cfg := strings.Replace(testConfig, "percent: 30}", "percent: 5, analysis: {interval: 1s, min_requests: 50, on_fail: freeze}}", 1)
	f := newFixtureWith(t, cfg, daemon.Options{}, Options{})
	f.login()
	past, next := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339), time.Now().Add(3*time.Hour).UTC().Format(time.RFC3339)
	scheduled := strings.Replace(cfg, "percent: 5,", "percent: 5, schedule: [{at: "+past+", percent: 10}, {at: "+next+", percent: 50}],", 1)
	must(t, os.WriteFile(f.path, []byte(scheduled), 0o600))
	must(t, f.d.Reload())
	if h := f.d.Pipeline().History("shop-v2"); len(h) == 0 || !strings.Contains(strings.Join(h[0].Details, "\n"), "schedule") {
		t.Fatalf("adding a held schedule is recorded as %+v", h)
	}
	_, page := f.do("GET", "/ui/live/releases", nil, nil)
	for _, want := range []string{"before step 1 of 2", "next: <strong>10%</strong>", "waits for a passing analysis window"} {
		if !strings.Contains(page, want) {
			t.Errorf("releases page lacks %q", want)
		}
	}
	_, page = f.do("GET", "/ui/live/releases/shop-v2", nil, nil)
	if strings.Contains(page, "no release field changed") || strings.Count(page, "waits for") < 2 || strings.Contains(page, "last step reached") {
		t.Errorf("the release page does not show the held steps and what they wait for:\n%s", page)
	}
}
