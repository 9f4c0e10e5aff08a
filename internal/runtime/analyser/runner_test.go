package analyser

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/core/analysis/analysistest"
	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/internal/runtime/control/clocktest"
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

// rig is a runner on a pipeline with no sink but the runner's own.
type rig struct {
	pipe *control.Pipeline
	a    *Runner
}

func start(t *testing.T, cfg string, src analysis.Source, clock control.Clock, fleet control.Fleet) *rig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	a := New(log, prometheus.NewRegistry(), src)
	p, err := control.New(control.Options{Path: path, Clock: clock, Fleet: fleet, Log: log, Changed: a.ConfigChanged}, a.Sink())
	if err != nil {
		t.Fatal(err)
	}
	a.Attach(p)
	return &rig{pipe: p, a: a}
}

func analysedRig(t *testing.T, cfg string) (*rig, *analysistest.Source, *clocktest.Clock) {
	t.Helper()
	src := &analysistest.Source{}
	clock := clocktest.New(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	return start(t, cfg, src, clock, nil), src, clock
}

// judge runs one window of shop-v2 and returns its record.
func judge(t *testing.T, d *rig, clock *clocktest.Clock) Window {
	t.Helper()
	from := clock.Now()
	clock.Advance(time.Second)
	d.a.Window(context.Background(), "shop-v2", from, clock.Now())
	st, ok := d.a.Status("shop-v2", 1)
	if !ok || len(st.Windows) != 1 {
		t.Fatalf("no window recorded: %+v", st)
	}
	return st.Windows[0]
}

func percent(d *rig, clock *clocktest.Clock) float64 {
	return d.pipe.Config().Releases[0].PercentAt(clock.Now())
}

func TestAnalysisWalksTheScheduleOnlyOnPasses(t *testing.T) {
	d, src, clock := analysedRig(t, analysed)
	// Two steps are due by time, but none is taken before a window passes.
	if p := percent(d, clock); p != 1 {
		t.Fatalf("percent at start %v, want 1 (the schedule waits for the analysis)", p)
	}
	src.Set(analysistest.Side(10, 0, 20), analysistest.Side(500, 0, 20)) // too little gray traffic
	for i := 0; i < 3; i++ {
		if w := judge(t, d, clock); w.Verdict != analysis.Inconclusive || w.Action != actHold {
			t.Fatalf("window %d: %s, %s", i, w.Verdict, w.Action)
		}
	}
	if p := percent(d, clock); p != 1 {
		t.Fatalf("inconclusive windows moved the percentage to %v", p)
	}
	src.Set(analysistest.Side(500, 5, 20), analysistest.Side(500, 5, 20))
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
	if st := d.pipe.Last(); st.Source != "analysis" || !strings.Contains(st.Reason, "advance to schedule[1] (50%)") {
		t.Fatalf("last change %+v", st)
	}
}

func TestAnalysisFailFreezesAndCriticalKills(t *testing.T) {
	d, src, clock := analysedRig(t, analysed)
	src.Set(analysistest.Side(400, 24, 20), analysistest.Side(400, 4, 20)) // +5 points
	w := judge(t, d, clock)
	if w.Verdict != analysis.Fail || w.Action != config.ActionFreeze || w.ActionError != "" {
		t.Fatalf("window %s, action %s (%s): %s", w.Verdict, w.Action, w.ActionError, w.Reason)
	}
	if s := d.pipe.Config().Releases[0].State; s != config.StateFrozen {
		t.Fatalf("state %s after a fail", s)
	}
	if st := d.pipe.Last(); st.Source != "analysis" || !strings.Contains(st.Reason, "analysis of shop-v2: fail — shop: errors:") {
		t.Fatalf("last change %+v", st)
	}
	if w := judge(t, d, clock); w.Action != "none: already frozen" {
		t.Fatalf("second fail: %s", w.Action)
	}
	src.Set(analysistest.Side(400, 160, 20), analysistest.Side(400, 4, 20)) // +39 points
	if w := judge(t, d, clock); w.Verdict != analysis.Critical || w.Action != config.ActionKill {
		t.Fatalf("critical window: %s, %s", w.Verdict, w.Action)
	}
	if s := d.pipe.Config().Releases[0].State; s != config.StateKilled {
		t.Fatalf("state %s after a critical verdict", s)
	}
	if w := judge(t, d, clock); w.Action != "none: release is killed" {
		t.Fatalf("after the kill: %s", w.Action)
	}
}

func TestAnalysisRollbackIsDeclared(t *testing.T) {
	d, src, clock := analysedRig(t, strings.Replace(analysed, "on_fail: freeze", "on_fail: rollback", 1))
	src.Set(analysistest.Side(500, 5, 20), analysistest.Side(500, 5, 20))
	judge(t, d, clock) // advance to 10%
	src.Set(analysistest.Side(400, 0, 70), analysistest.Side(400, 0, 20))
	w := judge(t, d, clock)
	if w.Verdict != analysis.Fail || w.Action != config.ActionRollback || !strings.Contains(w.Reason, "latency") {
		t.Fatalf("window %s %s: %s (%s)", w.Verdict, w.Action, w.Reason, w.ActionError)
	}
	if p := percent(d, clock); p != 0 {
		t.Fatalf("percent %v after the rollback", p)
	}
	if st := d.pipe.Last(); st.Result != "accepted" || !strings.Contains(st.Reason, "latency") {
		t.Fatalf("last change %+v", st)
	}
}

func TestAnalysisSourceDownIsInconclusive(t *testing.T) {
	for _, method := range []string{config.MethodSequential, config.MethodFixed} {
		t.Run(method, func(t *testing.T) {
			d, src, clock := analysedRig(t, strings.Replace(analysed, "analysis: {", "analysis: {method: "+method+", ", 1))
			src.SetErr(fmt.Errorf("%w: prometheus at 127.0.0.1:9 refused", analysis.ErrNoSource))
			w := judge(t, d, clock)
			if w.Verdict != analysis.Inconclusive || w.Action != actHold || !strings.Contains(w.Error, "refused") {
				t.Fatalf("window %+v", w)
			}
			if p := percent(d, clock); p != 1 {
				t.Fatalf("percent %v", p)
			}
		})
	}
}
