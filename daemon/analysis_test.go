package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graymesh/graymesh/analysis"
	"github.com/graymesh/graymesh/config"
)

const analysed = `
lane: {key: "daemon-test-lane-key-0123456789abcdef"}
membership: {enabled: true}
releases:
  - name: shop-v2
    env: gray
    percent: 1
    schedule:
      - {at: 2026-01-01T00:00:00Z, percent: 10}
      - {at: 2026-01-01T00:01:00Z, percent: 50}
      - {at: 2030-01-01T00:00:00Z, percent: 100}
    analysis: {interval: 1s, min_requests: 50, on_fail: freeze}
services:
  - name: shop
    environments: {stable: ["127.0.0.1:9101"], gray: ["127.0.0.1:9102"]}
`

// fakeSource answers every window with the observations it holds.
type fakeSource struct {
	mu  sync.Mutex
	obs *analysis.Observations
	err error
}

func (f *fakeSource) set(gray, stable analysis.Side) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.obs = &analysis.Observations{Services: []analysis.Observation{{Service: "shop", Gray: gray, Stable: stable}}}
}

func (f *fakeSource) Collect(context.Context, analysis.Query) (*analysis.Observations, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.obs, f.err
}

func side(n, errs int, ms float64) analysis.Side {
	s := analysis.Side{Requests: n, Errors: errs}
	for i := 0; i < n-errs; i++ {
		s.Latencies = append(s.Latencies, ms+float64(i%7)*0.1)
	}
	return s
}

func analysedDaemon(t *testing.T, cfg string) (*Daemon, *fakeSource, *fakeClock) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	write(t, path, cfg)
	src := &fakeSource{}
	clock := newFakeClock(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	return start(t, path, Options{AnalysisSource: src, Clock: clock}), src, clock
}

// judge runs one window of shop-v2 and returns its record.
func judge(t *testing.T, d *Daemon, clock *fakeClock) Window {
	t.Helper()
	from := clock.Now()
	clock.Advance(time.Second)
	d.analyser.window(context.Background(), "shop-v2", from, clock.Now())
	st, ok := d.analyser.status("shop-v2", 1)
	if !ok || len(st.Windows) != 1 {
		t.Fatalf("no window recorded: %+v", st)
	}
	return st.Windows[0]
}

func percent(d *Daemon, clock *fakeClock) float64 {
	return d.Config().Releases[0].PercentAt(clock.Now())
}

func TestAnalysisWalksTheScheduleOnlyOnPasses(t *testing.T) {
	d, src, clock := analysedDaemon(t, analysed)
	// Two steps are due by time, but none is taken before a window passes.
	if p := percent(d, clock); p != 1 {
		t.Fatalf("percent at start %v, want 1 (the schedule waits for the analysis)", p)
	}
	src.set(side(10, 0, 20), side(500, 0, 20)) // too little gray traffic
	for i := 0; i < 3; i++ {
		if w := judge(t, d, clock); w.Verdict != analysis.Inconclusive || w.Action != actHold {
			t.Fatalf("window %d: %s, %s", i, w.Verdict, w.Action)
		}
	}
	if p := percent(d, clock); p != 1 {
		t.Fatalf("inconclusive windows moved the percentage to %v", p)
	}
	src.set(side(500, 5, 20), side(500, 5, 20))
	for _, want := range []float64{10, 50} {
		w := judge(t, d, clock)
		if w.Verdict != analysis.Pass || !strings.HasPrefix(w.Action, actAdvance) || w.ActionError != "" {
			t.Fatalf("pass: %s, %s (%s)", w.Verdict, w.Action, w.ActionError)
		}
		if p := percent(d, clock); p != want {
			t.Fatalf("percent %v after %q, want %v", p, w.Action, want)
		}
	}
	// The last step is not due yet: a pass holds.
	if w := judge(t, d, clock); !strings.Contains(w.Action, "schedule[2] is not due before 2030-01-01T00:00:00Z") {
		t.Fatalf("action %q", w.Action)
	}
	if st := d.lastReload.Load(); st.Source != "analysis" || !strings.Contains(st.Reason, "advance to schedule[1] (50%)") {
		t.Fatalf("last change %+v", st)
	}
}

func TestAnalysisFailFreezesAndCriticalKills(t *testing.T) {
	d, src, clock := analysedDaemon(t, analysed)
	src.set(side(400, 24, 20), side(400, 4, 20)) // +5 points
	w := judge(t, d, clock)
	if w.Verdict != analysis.Fail || w.Action != config.ActionFreeze || w.ActionError != "" {
		t.Fatalf("window %s, action %s (%s): %s", w.Verdict, w.Action, w.ActionError, w.Reason)
	}
	if s := d.Config().Releases[0].State; s != config.StateFrozen {
		t.Fatalf("state %s after a fail", s)
	}
	if st := d.lastReload.Load(); st.Source != "analysis" || !strings.Contains(st.Reason, "analysis of shop-v2: fail — shop: errors:") {
		t.Fatalf("last change %+v", st)
	}
	if w := judge(t, d, clock); w.Action != "none: already frozen" {
		t.Fatalf("second fail: %s", w.Action)
	}
	src.set(side(400, 160, 20), side(400, 4, 20)) // +39 points
	if w := judge(t, d, clock); w.Verdict != analysis.Critical || w.Action != config.ActionKill {
		t.Fatalf("critical window: %s, %s", w.Verdict, w.Action)
	}
	if s := d.Config().Releases[0].State; s != config.StateKilled {
		t.Fatalf("state %s after a critical verdict", s)
	}
	if w := judge(t, d, clock); w.Action != "none: release is killed" {
		t.Fatalf("after the kill: %s", w.Action)
	}
}

func TestAnalysisRollbackIsDeclared(t *testing.T) {
	d, src, clock := analysedDaemon(t, strings.Replace(analysed, "on_fail: freeze", "on_fail: rollback", 1))
	src.set(side(500, 5, 20), side(500, 5, 20))
	judge(t, d, clock) // advance to 10%
	src.set(side(400, 0, 70), side(400, 0, 20))
	w := judge(t, d, clock)
	if w.Verdict != analysis.Fail || w.Action != config.ActionRollback || !strings.Contains(w.Reason, "latency") {
		t.Fatalf("window %s %s: %s (%s)", w.Verdict, w.Action, w.Reason, w.ActionError)
	}
	if p := percent(d, clock); p != 0 {
		t.Fatalf("percent %v after the rollback", p)
	}
	if st := d.lastReload.Load(); st.Result != "accepted" || !strings.Contains(st.Reason, "latency") {
		t.Fatalf("last change %+v", st)
	}
}

func TestAnalysisSourceDownIsInconclusive(t *testing.T) {
	cfg := strings.Replace(analysed, "analysis: {", "analysis: {source: prometheus, prometheus_url: \"http://127.0.0.1:9/\", ", 1)
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	write(t, path, cfg)
	clock := newFakeClock(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	d := start(t, path, Options{Clock: clock})
	w := judge(t, d, clock)
	if w.Verdict != analysis.Inconclusive || w.Action != actHold || !strings.Contains(w.Error, "not built yet") {
		t.Fatalf("window %+v", w)
	}
	if p := percent(d, clock); p != 1 {
		t.Fatalf("percent %v", p)
	}
}

func TestAnalysisEndpoint(t *testing.T) {
	d, src, clock := analysedDaemon(t, analysed)
	src.set(side(500, 5, 20), side(500, 5, 20))
	judge(t, d, clock)
	judge(t, d, clock)
	h := d.AdminHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/releases/shop-v2/analysis?windows=1", nil))
	var st AnalysisStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %v: %s", rec.Code, err, rec.Body)
	}
	if len(st.Windows) != 1 || st.Windows[0].Index != 2 || st.ScheduleSteps != 3 || st.Windows[0].Services[0].Gray.Requests != 500 {
		t.Fatalf("status %+v", st)
	}
	for _, path := range []string{"/v1/releases/nope/analysis", "/v1/releases/shop-v2/analysis?windows=x"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code == http.StatusOK {
			t.Errorf("%s answered 200", path)
		}
	}
}
