package control

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gate"
)

// Action is one runtime change to a release: an operator's (POST
// /v1/releases/NAME/ACTION, the console) or the analysis's. It is kept as
// an override in the state directory, on top of the file, until reset.
type Action struct {
	Release string
	// Kind is one of ActionKinds, or, from the analysis, rollback or
	// advance.
	Kind string
	// Percent is the percentage a percent action sets.
	Percent float64
	// Step, for advance, is the index of the file's schedule step to take.
	Step int
	// Rollback declares the change a rollback: it may then move gray
	// subjects back to stable.
	Rollback bool
	// Reason is the declared reason, recorded in the history; FleetReason,
	// when set, is what a fleet object records instead (the fleet adds
	// which node acted).
	Reason      string
	FleetReason string
	// Source names who asked, as the history shows it: SourceAdmin (the
	// default), SourceConsole or SourceAnalysis.
	Source string
}

// ActionKinds are the operators' actions, in the order the admin API
// lists them.
var ActionKinds = []string{"freeze", "unfreeze", "kill", "revive", "percent", "reset"}

// ErrNoRelease answers an action on a release the config does not have.
var ErrNoRelease = errors.New("no such release")

// errBadAction marks an action that cannot be understood.
var errBadAction = errors.New("bad action")

// IsBadAction reports an action that cannot be understood (as opposed to
// one refused by the gate).
func IsBadAction(err error) bool { return errors.Is(err, errBadAction) }

// change is what the action does to a release's override.
func (a Action) change() func(*Override) {
	switch a.Kind {
	case "freeze":
		return func(o *Override) { o.State = config.StateFrozen }
	case "unfreeze", "revive":
		return func(o *Override) { o.State = config.StateActive }
	case "kill":
		return func(o *Override) { o.State = config.StateKilled }
	case "reset":
		return func(o *Override) { *o = Override{} }
	case "percent":
		v := a.Percent
		return func(o *Override) { o.Percent = &v }
	case FleetRollback:
		return func(o *Override) { zero := 0.0; o.Percent, o.Step = &zero, nil }
	case FleetAdvance:
		step := a.Step
		return func(o *Override) { o.Step = &step }
	}
	return nil
}

// declaration is the change declaration an action puts in force. An
// action given no reason records none: the change's source already says
// where it came from.
func (a Action) declaration() config.Change {
	return config.Change{Rollback: a.Rollback || a.Kind == FleetRollback, Reason: a.Reason}
}

func (a Action) source() string {
	if a.Source == "" {
		return SourceAdmin
	}
	return a.Source
}

// propose is the file in force with the action's override on top. The
// overrides change at once (the state saved with the config in force
// carries them) and are put back if the change is refused.
func (a Action) propose(p *Pipeline) (*proposal, error) {
	prop := &proposal{source: a.source(), putSource: a.source(), scope: fileScope, replaces: noScope, due: p.fileDue(a.source())}
	overrides, err := p.withAction(a)
	if err != nil {
		return prop, err
	}
	next, err := effective(p.file, overrides)
	if err != nil {
		return prop, err
	}
	next.Change = a.declaration()
	prop.next, prop.holdAt = next, next.EffectiveAt
	old := p.state.Overrides
	p.state.Overrides = overrides
	prop.undo = func() { p.state.Overrides = old }
	return prop, nil
}

// withAction is the overrides with a applied. The caller holds mu.
func (p *Pipeline) withAction(a Action) (map[string]Override, error) {
	change := a.change()
	if change == nil {
		return nil, fmt.Errorf("%w: unknown action %q", errBadAction, a.Kind)
	}
	if findRelease(p.file, a.Release) == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoRelease, a.Release)
	}
	overrides := maps.Clone(p.state.Overrides)
	if overrides == nil {
		overrides = map[string]Override{}
	}
	o := overrides[a.Release]
	change(&o)
	if o == (Override{}) {
		delete(overrides, a.Release)
	} else {
		overrides[a.Release] = o
	}
	return overrides, nil
}

// Preview is what an action would do, without doing it: the blast radius
// POST /v1/diff reports for the config the action would put in force
// (subjects moving each way, evictions, whether it would be refused).
func (p *Pipeline) Preview(a Action, sample int) (gate.Report, error) {
	p.mu.Lock()
	overrides, err := p.withAction(a)
	var next *config.Config
	if err == nil {
		next, err = effective(p.file, overrides)
	}
	p.mu.Unlock()
	if err != nil {
		return gate.Report{}, err
	}
	next.Change = a.declaration()
	next.Source = fmt.Sprintf("%s %s", a.Kind, a.Release)
	return p.report(next, sample, p.opts.Clock.Now()), nil
}

// Diff is POST /v1/diff: a candidate file (already parsed), with the
// runtime overrides on top as a reload would see it, against the config
// in force at at.
func (p *Pipeline) Diff(file *config.Config, sample int, at time.Time) (gate.Report, error) {
	p.mu.Lock()
	next, err := effective(file, p.state.Overrides)
	p.mu.Unlock()
	if err != nil {
		return gate.Report{}, fmt.Errorf("%s with admin overrides: %w", file.Source, err)
	}
	next.Version = file.Version
	return p.report(next, sample, at), nil
}

// report diffs next against the config in force at at.
func (p *Pipeline) report(next *config.Config, sample int, at time.Time) gate.Report {
	rep := gate.NewReport(p.Config(), next, sample, at)
	rep.Old.File = "config in force (" + p.opts.Path + ")"
	return rep
}

// OverrideOf is release's runtime override (zero when none).
func (p *Pipeline) OverrideOf(release string) Override {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.state.Overrides[release]
}

// FileSchedule is release's whole schedule in the file (or the fleet's
// object), before an analysis holds it.
func (p *Pipeline) FileSchedule(release string) []config.Step {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r := findRelease(p.file, release); r != nil {
		return r.Schedule
	}
	return nil
}

// ReleaseStatus is one release as it stands now.
type ReleaseStatus struct {
	Name  string `json:"name"`
	Env   string `json:"env"`
	State string `json:"state"`
	// Percent is the percentage in force now (the schedule's current step
	// when there is one).
	Percent        float64 `json:"percent"`
	TrafficPercent float64 `json:"traffic_percent,omitempty"`
	// ScheduleStep is the index of the schedule step in force (-1 before
	// the first step or without a schedule); ScheduleSteps counts them.
	ScheduleStep  int       `json:"schedule_step"`
	ScheduleSteps int       `json:"schedule_steps"`
	Whitelist     int       `json:"whitelist"`
	Blacklist     int       `json:"blacklist"`
	Override      *Override `json:"override,omitempty"`
}

// Releases is every release in force, as it stands now.
func (p *Pipeline) Releases() []ReleaseStatus {
	cfg := p.Config()
	now := p.opts.Clock.Now()
	p.mu.Lock()
	overrides := p.state.Overrides
	p.mu.Unlock()
	out := []ReleaseStatus{}
	for i := range cfg.Releases {
		r := &cfg.Releases[i]
		rs := ReleaseStatus{Name: r.Name, Env: r.Env, State: r.State, Percent: r.PercentAt(now), TrafficPercent: r.TrafficPercent,
			ScheduleStep: r.StepAt(now), ScheduleSteps: len(r.Schedule) + len(r.HeldSchedule), Whitelist: len(r.Whitelist), Blacklist: len(r.Blacklist)}
		if o, ok := overrides[r.Name]; ok {
			rs.Override = &o
		}
		out = append(out, rs)
	}
	return out
}

// Release is one release as it stands now.
func (p *Pipeline) Release(name string) (ReleaseStatus, error) {
	for _, rs := range p.Releases() {
		if rs.Name == name {
			return rs, nil
		}
	}
	return ReleaseStatus{}, fmt.Errorf("%w: %q", ErrNoRelease, name)
}
