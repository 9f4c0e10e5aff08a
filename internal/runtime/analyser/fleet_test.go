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

// fakeFleetNode records what a node publishes and answers the fleet's
// windows.
type fakeFleetNode struct {
	mu        sync.Mutex
	published map[int64]*analysis.Evidence
	windows   []Window
}

func (f *fakeFleetNode) PublishEvidence(_ context.Context, _ string, k int64, e *analysis.Evidence) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.published[k] = e
	return nil
}

func (f *fakeFleetNode) FleetWindows(context.Context, string) ([]Window, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Window(nil), f.windows...), nil
}

// TestFleetNodePublishesAndNeverActs: in Kubernetes mode a node whose own
// slice shows gray failing neither judges nor acts: it publishes its
// evidence of the aligned window for the fleet analyser, asks nothing of
// the fleet actor, changes nothing locally, and shows the fleet
// analyser's windows as the release's analysis.
func TestFleetNodePublishesAndNeverActs(t *testing.T) {
	d, src, clock, actor := fleetAnalysedRig(t)
	node := &fakeFleetNode{published: map[int64]*analysis.Evidence{},
		windows: []Window{{Index: 7, FleetWindow: FleetWindow{Nodes: 3, NodesReporting: 3, ActedBy: "node-2"}}}}
	d.a.UseFleet(node)
	src.Set(analysistest.Side(400, 24, 20), analysistest.Side(400, 4, 20)) // +5 points on this node
	from := clock.Now()
	clock.Advance(time.Second)
	d.a.Window(context.Background(), "shop-v2", from, clock.Now())
	k := WindowIndex(clock.Now(), time.Second)
	if err := d.a.Publish(context.Background(), "shop-v2", k, time.Second); err != nil {
		t.Fatal(err)
	}
	e := node.published[k]
	if e == nil || e.Services["shop"].Gray.Errors != 24 || !e.From.Equal(WindowStart(k, time.Second)) || !e.To.Equal(WindowStart(k+1, time.Second)) {
		t.Fatalf("published %+v, want window %d's evidence with gray's 24 errors", e, k)
	}
	if got := actor.actions(); len(got) != 0 {
		t.Fatalf("the node acted on its own slice: %+v", got)
	}
	if s := d.pipe.Config().Releases[0].State; s != config.StateActive {
		t.Errorf("state %s: the node changed itself", s)
	}
	st, ok := d.a.Status("shop-v2", 0)
	if !ok || len(st.Windows) != 1 || st.Windows[0].ActedBy != "node-2" || st.Windows[0].Nodes != 3 {
		t.Fatalf("status %+v, want the fleet analyser's window", st)
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
