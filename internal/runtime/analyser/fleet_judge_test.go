package analyser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// memStore is a FleetStore in memory: the releases and node evidence a
// test sets, and the state as JSON with a version, as the ConfigMap keeps
// it.
type memStore struct {
	mu       sync.Mutex
	releases []FleetRelease
	evidence map[int64][]*analysis.Evidence
	state    []byte
	version  int
	saves    int
}

func (m *memStore) Releases(context.Context) ([]FleetRelease, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]FleetRelease(nil), m.releases...), nil
}

func (m *memStore) NodeEvidence(_ context.Context, _ string, k int64) ([]*analysis.Evidence, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	// Each caller gets its own copies, as from the API server.
	var out []*analysis.Evidence
	for _, e := range m.evidence[k] {
		b, _ := json.Marshal(e)
		var c analysis.Evidence
		_ = json.Unmarshal(b, &c)
		out = append(out, &c)
	}
	return out, 3, nil
}

func (m *memStore) LoadState(context.Context, string) (*FleetState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state == nil {
		return nil, nil
	}
	var st FleetState
	if err := json.Unmarshal(m.state, &st); err != nil {
		return nil, err
	}
	st.Version = fmt.Sprint(m.version)
	return &st, nil
}

func (m *memStore) SaveState(_ context.Context, _ string, st *FleetState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	fresh := m.state == nil && st.Version == ""
	if st.Version != fmt.Sprint(m.version) && !fresh {
		return ErrStateMoved
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	m.state, m.version, m.saves = b, m.version+1, m.saves+1
	st.Version = fmt.Sprint(m.version)
	return nil
}

func (m *memStore) saved(t *testing.T) FleetState {
	t.Helper()
	st, err := m.LoadState(context.Background(), "")
	if err != nil || st == nil {
		t.Fatalf("state %v %v", st, err)
	}
	return *st
}

// recordingActor records the actions; fail, when set, is its answer.
type recordingActor struct {
	mu   sync.Mutex
	got  []control.FleetAction
	fail error
}

func (a *recordingActor) ActOnFleet(_ context.Context, fa control.FleetAction) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, fa)
	if a.fail != nil {
		return "", a.fail
	}
	return "patched", nil
}

func (a *recordingActor) actions() []control.FleetAction {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]control.FleetAction(nil), a.got...)
}

var fleetStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func fleetRelease(onFail string, steps ...config.Step) FleetRelease {
	r := config.Release{Name: "shop-v2", Env: "gray", Percent: 10, Schedule: steps,
		Analysis: &config.Analysis{Interval: config.Duration{Duration: time.Second}, MinRequests: 50, OnFail: onFail}}
	r.ApplyDefaults()
	return FleetRelease{Release: r, Generation: 4}
}

// nodeEv is one node's evidence of window k: 100 gray requests, grayErr
// of them errors, and stable's; successes answered in 20 ms.
func nodeEv(k int64, grayErr, stableN, stableErr int) *analysis.Evidence {
	const grayN = 100
	e := analysis.NewEvidence(analysis.Query{Release: "shop-v2", Env: "gray", Services: []string{"shop"},
		From: WindowStart(k, time.Second), To: WindowStart(k+1, time.Second)})
	for _, s := range []struct {
		env       string
		n, errors int
	}{{"gray", grayN, grayErr}, {"stable", stableN, stableErr}} {
		for i := range s.n {
			e.Add(analysis.Sample{Service: "shop", Env: s.env, Failed: i < s.errors, Duration: 20 * time.Millisecond, Route: "/"})
		}
	}
	return e
}

// fleetRig is a judge over a store whose clock the test moves window by
// window.
type fleetRig struct {
	store *memStore
	actor *recordingActor
	now   time.Time
	// reg holds the last judge's metrics.
	reg *prometheus.Registry
}

func newFleetRig(fr FleetRelease) *fleetRig {
	return &fleetRig{store: &memStore{releases: []FleetRelease{fr}, evidence: map[int64][]*analysis.Evidence{}},
		actor: &recordingActor{}, now: fleetStart}
}

func (r *fleetRig) judge(identity string) *FleetJudge {
	r.reg = prometheus.NewRegistry()
	j := NewFleetJudge(r.store, r.actor, identity, slog.New(slog.DiscardHandler), r.reg)
	j.now = func() time.Time { return r.now }
	return j
}

// window is the index of the window in progress.
func (r *fleetRig) window() int64 { return WindowIndex(r.now, time.Second) }

// TestFleetJudgeMergesEveryNodesEvidence: the verdict is the fleet's. Gray
// fails on one node only (24 of its 100 gray requests, the other two
// nodes' gray healthy): one window is judged on the three nodes' merged
// evidence, records 3 of 3 nodes, 300 gray requests, the test's
// statistic and boundary, and the analyser that acted, and the release is
// frozen by one action.
func TestFleetJudgeMergesEveryNodesEvidence(t *testing.T) {
	rig := newFleetRig(fleetRelease(config.ActionFreeze))
	j := rig.judge("node-1")
	j.Round(context.Background()) // starts the rollout at the window in progress
	k := rig.window()
	rig.store.evidence[k] = []*analysis.Evidence{nodeEv(k, 24, 900, 9), nodeEv(k, 1, 900, 9), nodeEv(k, 1, 900, 9)}
	rig.now = rig.now.Add(2 * time.Second)
	j.Round(context.Background())
	st := rig.store.saved(t)
	if len(st.Windows) != 1 || st.Pending != nil {
		t.Fatalf("state %+v", st)
	}
	w := st.Windows[0]
	if w.Verdict != analysis.Fail || w.Nodes != 3 || w.NodesReporting != 3 || w.ActedBy != "node-1" || w.Action != "freeze (patched)" {
		t.Fatalf("window %+v", w)
	}
	if s := w.Services[0]; s.Gray.Requests != 300 || s.Gray.Errors != 26 || s.Stable.Requests != 2700 {
		t.Fatalf("merged sides %+v / %+v", s.Gray, s.Stable)
	}
	if tst := w.Services[0].Tests[0]; tst.Statistic < tst.Boundary || tst.Boundary <= 0 {
		t.Fatalf("errors test %+v: the statistic should have crossed its boundary", tst)
	}
	got := rig.actor.actions()
	if len(got) != 1 || got[0].Kind != control.FleetFreeze || !strings.Contains(got[0].Reason, "(3 of 3 nodes)") {
		t.Fatalf("actions %+v", got)
	}
	// Judged once: another round in the same window does nothing.
	j.Round(context.Background())
	if n := len(rig.actor.actions()); n != 1 {
		t.Fatalf("%d actions after a second round", n)
	}
	// On /metrics, once, under the fleet's names.
	want := `
# HELP graymesh_fleet_analysis_nodes Nodes in the last window of a release: merged (their evidence judged) and reporting (publishing evidence of the release at all).
# TYPE graymesh_fleet_analysis_nodes gauge
graymesh_fleet_analysis_nodes{kind="merged",release="shop-v2"} 3
graymesh_fleet_analysis_nodes{kind="reporting",release="shop-v2"} 3
# HELP graymesh_fleet_analysis_verdicts_total Analysis windows judged, by release and verdict (pass, inconclusive, fail, critical).
# TYPE graymesh_fleet_analysis_verdicts_total counter
graymesh_fleet_analysis_verdicts_total{release="shop-v2",verdict="fail"} 1
`
	if err := promtestutil.GatherAndCompare(rig.reg, strings.NewReader(want),
		"graymesh_fleet_analysis_verdicts_total", "graymesh_fleet_analysis_nodes"); err != nil {
		t.Error(err)
	}
}

// TestFleetAndNodeMetricsShareARegistry: in --kube-role=all the node's
// analysis and the fleet analyser count on one /metrics.
func TestFleetAndNodeMetricsShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(reg, nodePrefix)
	newFleetMetrics(reg)
}

// TestFleetJudgeAdvancesEachStepOnce: passing windows take the object's
// first remaining step; the next window is judged against the object as
// the step left it, so each step is taken once.
func TestFleetJudgeAdvancesEachStepOnce(t *testing.T) {
	steps := []config.Step{{At: fleetStart.Add(-time.Hour), Percent: 40}, {At: fleetStart.Add(-time.Hour), Percent: 60}}
	rig := newFleetRig(fleetRelease(config.ActionFreeze, steps...))
	j := rig.judge("node-0")
	j.Round(context.Background())
	for i := range 3 {
		k := rig.window()
		rig.store.evidence[k] = []*analysis.Evidence{nodeEv(k, 1, 400, 4), nodeEv(k, 1, 400, 4)}
		rig.now = rig.now.Add(time.Second + time.Second/2)
		j.Round(context.Background())
		// The object as the patch left it: the step taken, the rest kept.
		if got := rig.actor.actions(); len(got) == i+1 {
			fr := fleetRelease(config.ActionFreeze, steps[min(i+1, len(steps)):]...)
			fr.Release.Percent = got[i].Step.Percent
			rig.store.releases = []FleetRelease{fr}
		}
		rig.now = WindowStart(rig.window(), time.Second).Add(time.Second / 10)
	}
	got := rig.actor.actions()
	if len(got) != 2 || got[0].Step.Percent != 40 || got[1].Step.Percent != 60 {
		t.Fatalf("actions %+v, want the 40%% then the 60%% step, once each", got)
	}
	st := rig.store.saved(t)
	if last := st.Windows[len(st.Windows)-1]; last.Verdict != analysis.Pass || last.Action != actNone+": no schedule step left" {
		t.Fatalf("last window %+v", last)
	}
}

// TestFleetJudgeSuccessorTakesThePendingActionNotASecond: an analyser that
// recorded a window's verdict and its action, then died before the
// action's patch, leaves the action pending; its successor takes that same
// action (a no-op on the object if the patch had landed) and judges no
// window twice: the test carries on from the state saved.
func TestFleetJudgeSuccessorTakesThePendingActionNotASecond(t *testing.T) {
	rig := newFleetRig(fleetRelease(config.ActionKill))
	first := rig.judge("node-0")
	first.Round(context.Background())
	k := rig.window()
	rig.store.evidence[k] = []*analysis.Evidence{nodeEv(k, 30, 900, 9), nodeEv(k, 30, 900, 9)}
	rig.now = rig.now.Add(2 * time.Second)
	// The first analyser dies during its patch.
	rig.actor.fail = context.Canceled
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	first.Round(ctx)
	st := rig.store.saved(t)
	if st.Pending == nil || st.Pending.Kind != control.FleetKill || st.Window != k {
		t.Fatalf("state after the crash %+v: the action should be pending", st)
	}
	testBefore := string(st.Test)
	rig.actor.fail = nil
	second := rig.judge("node-2")
	second.Round(context.Background())
	got := rig.actor.actions()
	if len(got) != 2 || got[1].Kind != control.FleetKill || got[1].Reason != got[0].Reason {
		t.Fatalf("actions %+v: the successor should take the same kill once", got)
	}
	st = rig.store.saved(t)
	if st.Pending != nil || len(st.Windows) != 1 || st.Windows[0].Action != "kill (patched)" || string(st.Test) != testBefore {
		t.Fatalf("state after the handover %+v", st)
	}
}

// TestFleetJudgeSecondAnalyserNeverActs: two analysers at once (a stale
// leader not yet aware it lost): the record is saved conditionally, so
// the one whose save finds it moved neither records nor acts.
func TestFleetJudgeSecondAnalyserNeverActs(t *testing.T) {
	rig := newFleetRig(fleetRelease(config.ActionKill))
	a, b := rig.judge("node-0"), rig.judge("node-1")
	a.Round(context.Background())
	b.Round(context.Background()) // both have read the state
	k := rig.window()
	rig.store.evidence[k] = []*analysis.Evidence{nodeEv(k, 30, 900, 9)}
	rig.now = rig.now.Add(2 * time.Second)
	a.Round(context.Background())
	b.Round(context.Background())
	if got := rig.actor.actions(); len(got) != 1 {
		t.Fatalf("actions %+v, want one kill", got)
	}
	if st := rig.store.saved(t); len(st.Windows) != 1 || st.Windows[0].ActedBy != "node-0" {
		t.Fatalf("windows %+v", st.Windows)
	}
}

// TestFleetJudgeNoEvidenceHolds: a window no node published is
// inconclusive and says so; it holds and leaves the test as it was.
func TestFleetJudgeNoEvidenceHolds(t *testing.T) {
	rig := newFleetRig(fleetRelease(config.ActionKill, config.Step{At: fleetStart.Add(-time.Hour), Percent: 50}))
	j := rig.judge("node-0")
	j.Round(context.Background())
	rig.now = rig.now.Add(2 * time.Second)
	j.Round(context.Background())
	st := rig.store.saved(t)
	if len(st.Windows) != 1 || st.Windows[0].Verdict != analysis.Inconclusive || st.Windows[0].Action != actHold ||
		!strings.Contains(st.Windows[0].Error, "no evidence") || st.Test != nil {
		t.Fatalf("state %+v", st)
	}
	if len(rig.actor.actions()) != 0 {
		t.Fatal("acted on no evidence")
	}
}

// promEvidence is a Prometheus as the fleet judge sees it: the fleet's
// window, or an error.
type promEvidence struct {
	ev    func(q analysis.Query) *analysis.Evidence
	err   error
	asked []analysis.Query
}

func (p *promEvidence) CollectEvidence(_ context.Context, q analysis.Query) (*analysis.Evidence, error) {
	p.asked = append(p.asked, q)
	if p.err != nil {
		return nil, p.err
	}
	return p.ev(q), nil
}

// TestFleetJudgeReadsPrometheusOnce: with source prometheus the judge asks
// Prometheus for the fleet's window once — the nodes only list their
// services, so three nodes do not triple the counts — and a Prometheus
// that cannot answer makes the window inconclusive with its reason, never
// a pass.
func TestFleetJudgeReadsPrometheusOnce(t *testing.T) {
	fr := fleetRelease(config.ActionKill, config.Step{At: fleetStart.Add(-time.Hour), Percent: 50})
	fr.Release.Analysis.Source, fr.Release.Analysis.PrometheusURL = config.SourcePrometheus, "http://127.0.0.1:9"
	rig := newFleetRig(fr)
	prom := &promEvidence{ev: func(q analysis.Query) *analysis.Evidence {
		e := nodeEv(WindowIndex(q.From, time.Second), 1, 900, 9)
		e.From, e.To = q.From, q.To
		return e
	}}
	j := rig.judge("node-0")
	j.prometheus = prom
	j.Round(context.Background())
	listing := func(k int64) *analysis.Evidence {
		return analysis.NewEvidence(analysis.Query{Release: "shop-v2", Env: "gray", Services: []string{"shop"},
			From: WindowStart(k, time.Second), To: WindowStart(k+1, time.Second)})
	}
	k := rig.window()
	rig.store.evidence[k] = []*analysis.Evidence{listing(k), listing(k), listing(k)}
	rig.now = rig.now.Add(2 * time.Second)
	j.Round(context.Background())
	st := rig.store.saved(t)
	if len(st.Windows) != 1 || st.Windows[0].Verdict != analysis.Pass || len(prom.asked) != 1 {
		t.Fatalf("windows %+v, %d queries", st.Windows, len(prom.asked))
	}
	if q := prom.asked[0]; !q.From.Equal(WindowStart(k, time.Second)) || !q.To.Equal(WindowStart(k+1, time.Second)) || len(q.Services) != 1 {
		t.Fatalf("query %+v, want window %d of shop", q, k)
	}
	if s := st.Windows[0].Services[0]; s.Gray.Requests != 100 || s.Stable.Requests != 900 {
		t.Fatalf("sides %+v / %+v: Prometheus's window counted once", s.Gray, s.Stable)
	}

	prom.err = errors.New("prometheus unreachable: connection refused")
	k = st.Window + 1
	rig.store.evidence[k] = []*analysis.Evidence{listing(k)}
	rig.now = rig.now.Add(time.Second)
	j.Round(context.Background())
	st = rig.store.saved(t)
	last := st.Windows[len(st.Windows)-1]
	if last.Verdict != analysis.Inconclusive || !strings.Contains(last.Error, "prometheus unreachable") || last.Action != actHold {
		t.Fatalf("window with Prometheus down %+v", last)
	}
}
