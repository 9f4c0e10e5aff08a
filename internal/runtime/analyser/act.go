package analyser

import (
	"fmt"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/analysis"
	"github.com/graymesh/graymesh/internal/runtime/control"
)

// Actions a window can take, as its record names them.
const (
	actNone    = "none"
	actHold    = "hold"
	actAdvance = "advance"
)

// act applies the verdict of w to release r (the config in force) through
// the overrides, exactly as the admin API's freeze, kill and percent do:
//
//   - pass: the next schedule step, once its at has come; else nothing;
//   - inconclusive: hold (the schedule never advances on no evidence);
//   - fail: on_fail (freeze, a declared rollback, kill or none);
//   - critical: on_critical (kill by default).
//
// A killed release is left alone, and a frozen one is never advanced.
func (a *Runner) act(r *config.Release, w *Window, now time.Time) (action, errText string) {
	if r.State == config.StateKilled {
		return actNone + ": release is killed", ""
	}
	var err error
	switch w.Verdict {
	case analysis.Inconclusive:
		return actHold, ""
	case analysis.Pass:
		action, err = a.advance(r, now)
	case analysis.Fail:
		action, err = a.apply(r, r.Analysis.OnFail, w)
	case analysis.Critical:
		action, err = a.apply(r, r.Analysis.OnCritical, w)
	}
	if err != nil {
		errText = err.Error()
	}
	return action, errText
}

// advance takes the next schedule step after a passing window.
func (a *Runner) advance(r *config.Release, now time.Time) (string, error) {
	steps := a.pipe.FileSchedule(r.Name)
	o := a.pipe.OverrideOf(r.Name)
	switch {
	case len(steps) == 0:
		return actNone + ": no schedule", nil
	case o.Percent != nil:
		return actNone + ": the percentage was set by hand (release percent)", nil
	case r.State == config.StateFrozen:
		return actNone + ": release is frozen", nil
	}
	// The step in force is the last one an analysis approved.
	next := r.StepAt(now) + 1
	if next >= len(steps) {
		return actNone + ": schedule complete", nil
	}
	if at := steps[next].At; at.After(now) {
		return fmt.Sprintf("%s: schedule[%d] is not due before %s", actHold, next, at.UTC().Format(time.RFC3339)), nil
	}
	action := fmt.Sprintf("%s to schedule[%d] (%s%%)", actAdvance, next, trimFloat(steps[next].Percent))
	res, err := a.pipe.Submit(control.Action{Release: r.Name, Kind: control.FleetAdvance, Step: next, Source: control.SourceAnalysis,
		Reason: "analysis: " + action, FleetReason: fmt.Sprintf("%s — %s", analysis.Pass, action)})
	return withNote(action, res.Note), err
}

// apply takes a fail or critical verdict's configured action.
func (a *Runner) apply(r *config.Release, action string, w *Window) (string, error) {
	reason := fmt.Sprintf("analysis of %s: %s — %s", r.Name, w.Verdict, w.Reason)
	kind := action
	switch action {
	case config.ActionNone:
		return actNone + " (on_fail: none)", nil
	case config.ActionFreeze:
		if r.State == config.StateFrozen {
			return actNone + ": already frozen", nil
		}
		kind = control.FleetFreeze
	case config.ActionKill:
		kind = control.FleetKill
	case config.ActionRollback:
		if r.PercentAt(a.pipe.Clock().Now()) == 0 && r.TrafficPercent == 0 {
			return actNone + ": already rolled back", nil
		}
		kind = control.FleetRollback
	}
	res, err := a.pipe.Submit(control.Action{Release: r.Name, Kind: kind, Source: control.SourceAnalysis,
		Reason: reason, FleetReason: fmt.Sprintf("%s — %s", w.Verdict, w.Reason)})
	return withNote(action, res.Note), err
}

// withNote adds what the fleet actor did to an action's record.
func withNote(action, note string) string {
	if note == "" {
		return action
	}
	return action + " (" + note + ")"
}

func trimFloat(f float64) string { return fmt.Sprintf("%g", f) }
