package daemon

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graymesh/graymesh/analysis"
	"github.com/graymesh/graymesh/config"
)

// fakeActor records the fleet actions asked of it.
type fakeActor struct {
	mu   sync.Mutex
	got  []FleetAction
	note string
}

func (f *fakeActor) ActOnFleet(_ context.Context, a FleetAction) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, a)
	return f.note, nil
}

func (f *fakeActor) actions() []FleetAction {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FleetAction(nil), f.got...)
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
func fleetAnalysedDaemon(t *testing.T) (*Daemon, *fakeSource, *fakeClock, *fakeActor) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "graymesh.yaml")
	write(t, path, fleetAnalysed)
	src, actor := &fakeSource{}, &fakeActor{note: "patched"}
	clock := newFakeClock(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	d := start(t, path, Options{AnalysisSource: src, Clock: clock, Fleet: fakeFleet{}, FleetActor: actor})
	r := config.Release{Name: "shop-v2", Env: "gray", Percent: 1, Schedule: []config.Step{
		{At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Percent: 10},
		{At: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Percent: 100},
	}, Analysis: &config.Analysis{Interval: config.Duration{Duration: time.Second}, MinRequests: 50, OnFail: config.ActionFreeze}}
	r.ApplyDefaults()
	if _, err := d.ApplyFleet(FleetChange{Name: r.Name, Release: &r, Version: "1"}); err != nil {
		t.Fatal(err)
	}
	return d, src, clock, actor
}

// TestFleetAnalysisFailFreezesThroughTheActor: in Kubernetes mode a fail
// verdict freezes the release through the fleet actor (the GrayRelease),
// with the verdict as the reason, and never through a local override.
func TestFleetAnalysisFailFreezesThroughTheActor(t *testing.T) {
	d, src, clock, actor := fleetAnalysedDaemon(t)
	src.set(side(400, 24, 20), side(400, 4, 20)) // +5 points
	w := judge(t, d, clock)
	if w.Verdict != analysis.Fail || w.Action != "freeze (patched)" || w.ActionError != "" {
		t.Fatalf("window %s, action %q (%s): %s", w.Verdict, w.Action, w.ActionError, w.Reason)
	}
	got := actor.actions()
	if len(got) != 1 || got[0].Release != "shop-v2" || got[0].Kind != FleetFreeze || !strings.HasPrefix(got[0].Reason, "fail — shop: errors:") {
		t.Fatalf("fleet actions %+v, want one freeze of shop-v2 with the verdict as the reason", got)
	}
	// The node itself stays as the fleet has it until the object changes.
	if s := d.Config().Releases[0].State; s != config.StateActive {
		t.Errorf("state %s: the node changed itself instead of the fleet", s)
	}
}

// TestFleetAnalysisPassAdvancesThroughTheActor: a pass asks the actor to
// take the schedule's first remaining step (the schedule is held until an
// analysis passes), naming that step so the actor takes it only once.
func TestFleetAnalysisPassAdvancesThroughTheActor(t *testing.T) {
	d, src, clock, actor := fleetAnalysedDaemon(t)
	src.set(side(500, 5, 20), side(500, 5, 20))
	w := judge(t, d, clock)
	if w.Verdict != analysis.Pass || w.Action != "advance to schedule[0] (10%) (patched)" {
		t.Fatalf("window %s, action %q (%s)", w.Verdict, w.Action, w.ActionError)
	}
	got := actor.actions()
	if len(got) != 1 || got[0].Kind != FleetAdvance || got[0].Step.Percent != 10 || !got[0].Step.At.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("fleet actions %+v, want one advance to the 10%% step", got)
	}
	if p := percent(d, clock); p != 1 {
		t.Errorf("percent %v: the node advanced itself instead of the fleet", p)
	}
}

// TestFleetAnalysisWithoutActor: without an actor, Kubernetes mode still
// refuses the local override and the window records why.
func TestFleetAnalysisWithoutActor(t *testing.T) {
	d, src, clock, _ := fleetAnalysedDaemon(t)
	d.opts.FleetActor = nil
	src.set(side(400, 24, 20), side(400, 4, 20))
	if w := judge(t, d, clock); w.ActionError != errFleetMode.Error() {
		t.Fatalf("action error %q", w.ActionError)
	}
}
