package analyser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// FleetJudge is the one analyser of a fleet (Kubernetes mode): per release
// and aligned window it merges every node's evidence, runs the rollout's
// sequential test on it node by node (analysis.Sequential.UpdateNodes),
// records the window and acts on the verdict through the fleet's object,
// once. Exactly one process may run it (the one-per-fleet role), and its
// state — the test's running statistics, the last window judged, the
// action under way — is persisted after every window, so a successor
// continues the same rollout: no window is judged twice into the test,
// none is skipped, and an action is taken once (below).
type FleetJudge struct {
	store    FleetStore
	actor    FleetActor
	identity string
	log      *slog.Logger
	now      func() time.Time
	// states caches what this process last saved per release; a save that
	// finds the record moved (another analyser) drops it.
	states map[string]*FleetState
	// prometheus, when set, replaces the Prometheus of every release with
	// source prometheus (tests).
	prometheus analysis.EvidenceSource
	// metrics are the graymesh_fleet_analysis_* series (nil: none).
	metrics *metrics
}

// FleetRelease is one release as the fleet's object has it now.
type FleetRelease struct {
	// Release is the object's spec as graymesh's release: with a
	// fleet's analysis the schedule holds the steps not yet taken, so the
	// next step is Schedule[0].
	Release    config.Release
	Generation int64
}

// FleetStore is the fleet analyser's view of the fleet and its memory.
type FleetStore interface {
	// Releases is every release of the fleet.
	Releases(ctx context.Context) ([]FleetRelease, error)
	// NodeEvidence is every node's published evidence of release's window
	// index, and how many nodes publish evidence of release at all.
	NodeEvidence(ctx context.Context, release string, index int64) (nodes []*analysis.Evidence, reporting int, err error)
	// LoadState is release's persisted state; nil, nil when none.
	LoadState(ctx context.Context, release string) (*FleetState, error)
	// SaveState persists st if the record is still the one st was read
	// from or last saved as (st.Version), and updates st.Version; else
	// ErrStateMoved.
	SaveState(ctx context.Context, release string, st *FleetState) error
}

// FleetActor changes a release on the whole fleet (kube.Actor): a
// preconditioned patch that does nothing when the object already is where
// the action leads.
type FleetActor interface {
	ActOnFleet(ctx context.Context, a control.FleetAction) (string, error)
}

// ErrStateMoved is SaveState's answer when another analyser saved since:
// this one is no longer the fleet's, or not alone.
var ErrStateMoved = errors.New("the fleet analysis state was changed by another analyser")

// maxFleetWindows is how many window records the persisted state keeps.
const maxFleetWindows = 30

// FleetState is what the fleet analyser persists per release after every
// window.
type FleetState struct {
	// Rollout is what the running test was started on (env, method,
	// source, interval); a change of it starts a new rollout.
	Rollout  string   `json:"rollout"`
	Services []string `json:"services,omitempty"`
	// Window is the index of the last window judged; Test the sequential
	// test after it (absent before the first window with evidence).
	Window int64           `json:"window"`
	Test   json.RawMessage `json:"test,omitempty"`
	// Windows are the records, oldest first; Next numbers the next one.
	Windows []Window `json:"windows"`
	Next    int      `json:"next"`
	// Pending is the last window's action, written before it is taken: a
	// successor finding it takes the same action (which is a no-op when
	// it was taken), never a second one.
	Pending *PendingAction `json:"pending,omitempty"`
	// Version is the store's version of the record (not persisted).
	Version string `json:"-"`
}

// PendingAction is an action decided and recorded but maybe not yet
// taken.
type PendingAction struct {
	Record    int       `json:"record"`
	Kind      string    `json:"kind"`
	StepAt    time.Time `json:"step_at,omitzero"`
	StepPct   float64   `json:"step_percent,omitempty"`
	Reason    string    `json:"reason"`
	Described string    `json:"described"`
}

// NewFleetJudge is the fleet analyser; identity names it in every window
// it records and every patch it sends. Each window it judges is counted on
// reg (graymesh_fleet_analysis_*), when not nil.
func NewFleetJudge(store FleetStore, actor FleetActor, identity string, log *slog.Logger, reg prometheus.Registerer) *FleetJudge {
	j := &FleetJudge{store: store, actor: actor, identity: identity, log: log.With("component", "fleet-analysis"),
		now: time.Now, states: map[string]*FleetState{}}
	if reg != nil {
		j.metrics = newFleetMetrics(reg)
	}
	return j
}

// fleetTick is how often the analyser looks for windows that are due.
const fleetTick = 250 * time.Millisecond

// Run judges every due window of every analysed release until ctx is
// done: the one-per-fleet role runs it while it holds the role.
func (j *FleetJudge) Run(ctx context.Context) {
	j.log.Info("fleet analyser started", "identity", j.identity)
	defer j.log.Info("fleet analyser stopped", "identity", j.identity)
	t := time.NewTicker(fleetTick)
	defer t.Stop()
	for {
		j.Round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Round judges what is due now, release by release.
func (j *FleetJudge) Round(ctx context.Context) {
	rels, err := j.store.Releases(ctx)
	if err != nil {
		j.log.Warn("listing releases", "error", err)
		return
	}
	for i := range rels {
		if rels[i].Release.Analysis == nil {
			continue
		}
		if err := j.release(ctx, &rels[i]); err != nil && ctx.Err() == nil {
			j.log.Warn("fleet analysis", "release", rels[i].Release.Name, "error", err)
			delete(j.states, rels[i].Release.Name) // read it afresh next round
		}
	}
}

// publishGrace is how long after a window's end the analyser waits for the
// nodes' evidence of it: a quarter of the interval, from half a second to
// five.
func publishGrace(interval time.Duration) time.Duration {
	return min(max(interval/4, 500*time.Millisecond), 5*time.Second)
}

// maxCatchUp bounds the windows one round judges for a release (an
// analyser taking over after a long gap judges the rest next rounds).
const maxCatchUp = 8

// release finishes an action under way, then judges each due window in
// order, one at a time, stopping after one that acted: the next window is
// judged against the object the action made.
func (j *FleetJudge) release(ctx context.Context, fr *FleetRelease) error {
	st, err := j.state(ctx, fr)
	if err != nil || st == nil {
		return err
	}
	if st.Pending != nil {
		return j.finish(ctx, fr, st)
	}
	iv := fr.Release.Analysis.Interval.Duration
	for range maxCatchUp {
		k := st.Window + 1
		if j.now().Before(WindowStart(k+1, iv).Add(publishGrace(iv))) {
			return nil
		}
		acted, err := j.judge(ctx, fr, st, k)
		if err != nil || acted {
			return err
		}
	}
	return nil
}

// state is release's state, loaded once and kept; a new rollout's when
// what the test was started on changed.
func (j *FleetJudge) state(ctx context.Context, fr *FleetRelease) (*FleetState, error) {
	name := fr.Release.Name
	st := j.states[name]
	if st == nil {
		var err error
		if st, err = j.store.LoadState(ctx, name); err != nil {
			return nil, err
		}
		if st == nil {
			st = &FleetState{}
		}
		j.states[name] = st
	}
	if key := rolloutKey(&fr.Release); st.Rollout != key {
		// A new rollout: a new test with the whole alpha, from the window
		// in progress; the records stay.
		j.log.Info("fleet analysis rollout starts", "release", name, "rollout", key)
		st.Rollout, st.Services, st.Test, st.Pending = key, nil, nil, nil
		st.Window = WindowIndex(j.now(), fr.Release.Analysis.Interval.Duration) - 1
		if err := j.store.SaveState(ctx, name, st); err != nil {
			return nil, err
		}
	}
	return st, nil
}

func rolloutKey(r *config.Release) string {
	a := r.Analysis
	return fmt.Sprintf("env=%s method=%s source=%s interval=%s services=%v", r.Env, a.Method, a.Source, a.Interval.Duration, a.Services)
}

// judge judges window k into st, records it with its action pending,
// saves, then takes the action; true when it acted.
func (j *FleetJudge) judge(ctx context.Context, fr *FleetRelease, st *FleetState, k int64) (bool, error) {
	r := &fr.Release
	iv := r.Analysis.Interval.Duration
	from, to := WindowStart(k, iv), WindowStart(k+1, iv)
	w := Window{From: from, To: to, State: r.State, Percent: r.Percent, Step: -1,
		FleetWindow: FleetWindow{Generation: fr.Generation, ActedBy: j.identity}}
	test, err := j.evaluate(ctx, r, st, k, &w)
	if err != nil {
		return false, err
	}
	pending := fleetDecision(r, &w, j.now())
	w.Action = pending.Described
	st.Window, st.Test = k, test
	st.Next++
	w.Index = st.Next
	st.Windows = append(st.Windows, w)
	if len(st.Windows) > maxFleetWindows {
		st.Windows = slices.Clone(st.Windows[len(st.Windows)-maxFleetWindows:])
	}
	if pending.Kind != "" {
		pending.Record = w.Index
		st.Pending = &pending
	}
	if err := j.store.SaveState(ctx, r.Name, st); err != nil {
		return false, err
	}
	j.metrics.observe(r.Name, &w)
	j.log.Info("fleet analysis verdict", "release", r.Name, "window", w.Index, "index", k, "nodes", w.Nodes,
		"nodes_reporting", w.NodesReporting, "verdict", w.Verdict, "reason", w.Reason, "action", w.Action)
	if st.Pending == nil {
		return false, nil
	}
	return true, j.finish(ctx, fr, st)
}

// evaluate merges the nodes' evidence of window k into w's report and
// returns the test after it (st's unchanged when the window had none).
func (j *FleetJudge) evaluate(ctx context.Context, r *config.Release, st *FleetState, k int64, w *Window) (json.RawMessage, error) {
	all, reporting, err := j.store.NodeEvidence(ctx, r.Name, k)
	if err != nil {
		return nil, err
	}
	// A node still serving an earlier env of the release judged other
	// requests: its evidence does not count (Merge would refuse it).
	nodes := slices.DeleteFunc(all, func(e *analysis.Evidence) bool { return e.Release != r.Name || e.Env != r.Env })
	w.Nodes, w.NodesReporting = len(nodes), reporting
	if len(nodes) == 0 {
		w.Report = analysis.Report{Verdict: analysis.Inconclusive, Reason: "no node published evidence of this window"}
		w.Error = fmt.Sprintf("no evidence from any of %d reporting nodes", reporting)
		return st.Test, nil
	}
	services := r.Analysis.Services
	if len(services) == 0 {
		services = evidenceServices(nodes)
	}
	s := analysis.SettingsFrom(r.Analysis)
	test := analysis.NewSequential(s, services)
	if st.Test != nil && slices.Equal(st.Services, services) {
		if test, err = analysis.RestoreSequential(s, st.Test); err != nil {
			return nil, err
		}
		test.UpdateSettings(s)
	}
	st.Services = services
	if r.Analysis.Source == config.SourcePrometheus {
		// Prometheus has the whole fleet's window: the nodes' evidence
		// only said which services they analyse.
		q := analysis.Query{Release: r.Name, Env: r.Env, Services: services, From: w.From, To: w.To}
		ev, err := j.prometheusEvidence(ctx, r.Analysis, q)
		if err != nil {
			w.Error = err.Error()
			w.Report = analysis.Report{Verdict: analysis.Inconclusive, Reason: "no observations: " + err.Error()}
			return st.Test, nil
		}
		w.Report = test.Update(ev)
	} else if w.Report, err = test.UpdateNodes(nodes); err != nil {
		w.Error = err.Error()
		return st.Test, nil
	}
	b, err := json.Marshal(test)
	return b, err
}

// prometheusEvidence is window q read from an analysis's Prometheus.
func (j *FleetJudge) prometheusEvidence(ctx context.Context, a *config.Analysis, q analysis.Query) (*analysis.Evidence, error) {
	if j.prometheus != nil {
		return j.prometheus.CollectEvidence(ctx, q)
	}
	src, err := prometheusSource(a)
	if err != nil {
		return nil, err
	}
	return src.CollectEvidence(ctx, q)
}

// evidenceServices is every service the nodes' evidence holds, in order:
// each node's evidence lists every service it analyses.
func evidenceServices(nodes []*analysis.Evidence) []string {
	set := map[string]bool{}
	for _, n := range nodes {
		for s := range n.Services {
			set[s] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// finish takes st's pending action (again, when a predecessor may have
// taken it: the actor's preconditions make that a no-op), records its
// outcome and clears it.
func (j *FleetJudge) finish(ctx context.Context, fr *FleetRelease, st *FleetState) error {
	p := st.Pending
	fa := control.FleetAction{Release: fr.Release.Name, Kind: p.Kind, Reason: p.Reason,
		Step: config.Step{At: p.StepAt, Percent: p.StepPct}}
	note, actErr := j.actor.ActOnFleet(ctx, fa)
	for i := range st.Windows {
		if w := &st.Windows[i]; w.Index == p.Record {
			w.Action, w.ActionError = withNote(p.Described, note), ""
			if actErr != nil {
				w.ActionError = actErr.Error()
			}
		}
	}
	if actErr != nil && ctx.Err() != nil {
		return actErr // cancelled: the successor takes it
	}
	st.Pending = nil
	return j.store.SaveState(ctx, fr.Release.Name, st)
}

// fleetDecision is what window w's verdict does to release r as the
// fleet's object has it: the Described action, and the fleet action's
// Kind ("" when nothing is sent).
func fleetDecision(r *config.Release, w *Window, now time.Time) PendingAction {
	reason := fmt.Sprintf("%s — %s (%d of %d nodes)", w.Verdict, w.Reason, w.Nodes, w.NodesReporting)
	switch {
	case r.State == config.StateKilled:
		return PendingAction{Described: actNone + ": release is killed"}
	case w.Verdict == analysis.Inconclusive:
		return PendingAction{Described: actHold}
	case w.Verdict == analysis.Pass:
		return fleetAdvance(r, w, now)
	case w.Verdict == analysis.Fail:
		return fleetApply(r, r.Analysis.OnFail, reason)
	}
	return fleetApply(r, r.Analysis.OnCritical, reason)
}

// fleetAdvance is a passing window's step: the first one left in the
// object's schedule, once its at has come.
func fleetAdvance(r *config.Release, w *Window, now time.Time) PendingAction {
	switch {
	case len(r.Schedule) == 0:
		return PendingAction{Described: actNone + ": no schedule step left"}
	case r.State == config.StateFrozen:
		return PendingAction{Described: actNone + ": release is frozen"}
	}
	next := r.Schedule[0]
	if next.At.After(now) {
		return PendingAction{Described: fmt.Sprintf("%s: the next step is not due before %s", actHold, next.At.UTC().Format(time.RFC3339))}
	}
	d := fmt.Sprintf("%s to %s%%", actAdvance, trimFloat(next.Percent))
	return PendingAction{Kind: control.FleetAdvance, StepAt: next.At, StepPct: next.Percent, Described: d,
		Reason: fmt.Sprintf("%s — %s (%d of %d nodes)", analysis.Pass, d, w.Nodes, w.NodesReporting)}
}

// fleetApply is a fail's or critical's configured action.
func fleetApply(r *config.Release, action, reason string) PendingAction {
	p := PendingAction{Described: action, Reason: reason}
	switch action {
	case config.ActionNone:
		return PendingAction{Described: actNone + " (on_fail: none)"}
	case config.ActionFreeze:
		if r.State == config.StateFrozen {
			return PendingAction{Described: actNone + ": already frozen"}
		}
		p.Kind = control.FleetFreeze
	case config.ActionKill:
		p.Kind = control.FleetKill
	case config.ActionRollback:
		if r.Percent == 0 && len(r.Schedule) == 0 {
			return PendingAction{Described: actNone + ": already rolled back"}
		}
		p.Kind = control.FleetRollback
	}
	return p
}
