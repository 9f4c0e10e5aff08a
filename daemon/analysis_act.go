package daemon

import (
	"fmt"
	"time"

	"github.com/graymesh/graymesh/analysis"
	"github.com/graymesh/graymesh/config"
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
func (a *analyser) act(r *config.Release, w *Window, now time.Time) (action, errText string) {
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
func (a *analyser) advance(r *config.Release, now time.Time) (string, error) {
	steps := a.d.fileSchedule(r.Name)
	o := a.d.overrideOf(r.Name)
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
	fa := FleetAction{Release: r.Name, Kind: FleetAdvance, Step: steps[next], Reason: fmt.Sprintf("%s — %s", analysis.Pass, action)}
	note, err := a.changeRelease(fa, func(o *override) { o.Step = &next }, config.Change{Reason: "analysis: " + action})
	return withNote(action, note), err
}

// apply takes a fail or critical verdict's configured action.
func (a *analyser) apply(r *config.Release, action string, w *Window) (string, error) {
	reason := fmt.Sprintf("analysis of %s: %s — %s", r.Name, w.Verdict, w.Reason)
	var change func(*override)
	rollback, kind := false, action
	switch action {
	case config.ActionNone:
		return actNone + " (on_fail: none)", nil
	case config.ActionFreeze:
		if r.State == config.StateFrozen {
			return actNone + ": already frozen", nil
		}
		change = func(o *override) { o.State = config.StateFrozen }
	case config.ActionKill:
		change = func(o *override) { o.State = config.StateKilled }
	case config.ActionRollback:
		if r.PercentAt(a.d.opts.Clock.Now()) == 0 && r.TrafficPercent == 0 {
			return actNone + ": already rolled back", nil
		}
		zero := 0.0
		change = func(o *override) { o.Percent, o.Step = &zero, nil }
		rollback, kind = true, FleetRollback
	}
	fa := FleetAction{Release: r.Name, Kind: kind, Reason: fmt.Sprintf("%s — %s", w.Verdict, w.Reason)}
	note, err := a.changeRelease(fa, change, config.Change{Rollback: rollback, Reason: reason})
	return withNote(action, note), err
}

// withNote adds what the fleet actor did to an action's record.
func withNote(action, note string) string {
	if note == "" {
		return action
	}
	return action + " (" + note + ")"
}

func trimFloat(f float64) string { return fmt.Sprintf("%g", f) }
