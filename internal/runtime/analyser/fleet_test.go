package analyser

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/core/analysis/analysistest"
	"github.com/graymesh/graymesh/internal/runtime/control"
	"github.com/graymesh/graymesh/internal/runtime/control/clocktest"
)

// fakeActor is a fleet that records the analysis's actions asked of it.
type fakeActor struct {
	mu   sync.Mutex
	got  []control.FleetAction
	note string
}

func (*fakeActor) Synced() bool             { return true }
func (*fakeActor) Staleness() time.Duration { return 0 }
func (*fakeActor) Status() map[string]any   { return nil }
func (*fakeActor) Due(string)               {}
func (*fakeActor) ReleaseFleet(context.Context, string) (*control.FleetRelease, error) {
	return nil, nil
}

func (f *fakeActor) ActOnFleet(_ context.Context, a control.FleetAction) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, a)
	return f.note, nil
}

func (f *fakeActor) actions() []control.FleetAction {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]control.FleetAction(nil), f.got...)
}

// fleetAnalysed is the analysed config's static part, for Kubernetes mode.
const fleetAnalysed = `
lane: {key: "daemon-test-lane-key-0123456789abcdef"}
membership: {enabled: true}
services:
  - name: shop
    environments: {stable: ["127.0.0.1:9101"], gray: ["127.0.0.1:9102"]}
`

// fleetAnalysedDaemon is a Kubernetes-mode daemon with shop-v2 (the
// analysed release, on_fail: freeze) put in force as its object would be.
func fleetAnalysedRig(t *testing.T) (*rig, *analysistest.Source, *clocktest.Clock, *fakeActor) {
	t.Helper()
	src, actor := &analysistest.Source{}, &fakeActor{note: "patched"}
	clock := clocktest.New(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	d := start(t, fleetAnalysed, src, clock, actor)
	r := config.Release{Name: "shop-v2", Env: "gray", Percent: 1, Schedule: []config.Step{
		{At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Percent: 10},
		{At: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Percent: 100},
	}, Analysis: &config.Analysis{Interval: config.Duration{Duration: time.Second}, MinRequests: 50, OnFail: config.ActionFreeze}}
	r.ApplyDefaults()
	if _, err := d.pipe.Submit(control.ReleaseChange{Name: r.Name, Release: &r, Version: "1"}); err != nil {
		t.Fatal(err)
	}
	return d, src, clock, actor
}

// TestFleetAnalysisFailFreezesThroughTheActor: in Kubernetes mode a fail
// verdict freezes the release through the fleet actor (the GrayRelease),
// with the verdict as the reason, and never through a local override.
func TestFleetAnalysisFailFreezesThroughTheActor(t *testing.T) {
	d, src, clock, actor := fleetAnalysedRig(t)
	src.Set(analysistest.Side(400, 24, 20), analysistest.Side(400, 4, 20)) // +5 points
	w := judge(t, d, clock)
	if w.Verdict != analysis.Fail || w.Action != "freeze (patched)" || w.ActionError != "" {
		t.Fatalf("window %s, action %q (%s): %s", w.Verdict, w.Action, w.ActionError, w.Reason)
	}
	got := actor.actions()
	if len(got) != 1 || got[0].Release != "shop-v2" || got[0].Kind != control.FleetFreeze || !strings.HasPrefix(got[0].Reason, "fail — shop: errors:") {
		t.Fatalf("fleet actions %+v, want one freeze of shop-v2 with the verdict as the reason", got)
	}
	// The node itself stays as the fleet has it until the object changes.
	if s := d.pipe.Config().Releases[0].State; s != config.StateActive {
		t.Errorf("state %s: the node changed itself instead of the fleet", s)
	}
}

// TestFleetAnalysisPassAdvancesThroughTheActor: a pass asks the actor to
// take the schedule's first remaining step (the schedule is held until an
// analysis passes), naming that step so the actor takes it only once.
func TestFleetAnalysisPassAdvancesThroughTheActor(t *testing.T) {
	d, src, clock, actor := fleetAnalysedRig(t)
	src.Set(analysistest.Side(500, 5, 20), analysistest.Side(500, 5, 20))
	w := judge(t, d, clock)
	if w.Verdict != analysis.Pass || w.Action != "advance to schedule[0] (10%) (patched)" {
		t.Fatalf("window %s, action %q (%s)", w.Verdict, w.Action, w.ActionError)
	}
	got := actor.actions()
	if len(got) != 1 || got[0].Kind != control.FleetAdvance || got[0].Step.Percent != 10 || !got[0].Step.At.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("fleet actions %+v, want one advance to the 10%% step", got)
	}
	if p := percent(d, clock); p != 1 {
		t.Errorf("percent %v: the node advanced itself instead of the fleet", p)
	}
}

// TestFleetAnalysisRefusesOperators: in Kubernetes mode an operator's
// action on one node is refused (one node must not drift from the fleet);
// only the analysis's actions reach the fleet.
func TestFleetAnalysisRefusesOperators(t *testing.T) {
	d, _, _, actor := fleetAnalysedRig(t)
	if _, err := d.pipe.Submit(control.Action{Release: "shop-v2", Kind: "kill", Source: control.SourceAdmin}); err == nil || !strings.Contains(err.Error(), "GrayRelease") {
		t.Fatalf("an admin kill in Kubernetes mode: %v", err)
	}
	if len(actor.actions()) != 0 {
		t.Fatalf("an operator's action reached the fleet: %+v", actor.actions())
	}
}
