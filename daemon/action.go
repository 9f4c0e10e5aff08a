package daemon

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/graymesh/graymesh/config"
	"github.com/graymesh/graymesh/gray"
)

// Action is one runtime change to a release, as POST
// /v1/releases/NAME/ACTION and the console ask for it.
type Action struct {
	Release string
	// Kind is freeze, unfreeze, revive, kill, percent or reset.
	Kind string
	// Percent is the percentage a percent action sets.
	Percent float64
	// Rollback declares the change a rollback: it may then move gray
	// subjects back to stable.
	Rollback bool
	// Reason is the operator's reason, recorded in the history.
	Reason string
	// Source names who asked, as the history shows it: "admin" (the
	// admin API and the CLI, the default) or "console".
	Source string
}

// ActionKinds are the actions, in the order the admin API lists them.
var ActionKinds = []string{"freeze", "unfreeze", "kill", "revive", "percent", "reset"}

// errBadAction marks an action that cannot be understood (HTTP 400/404).
var errBadAction = errors.New("bad action")

// maxReason bounds a reason: a sentence, not a document.
const maxReason = 500

// ParseAction reads an action from the admin API's path values and query
// (value, rollback, reason). reset is a rollback unless rollback=false.
func ParseAction(release, kind string, q url.Values) (Action, error) {
	a := Action{Release: release, Kind: kind, Rollback: q.Get("rollback") == "true", Reason: q.Get("reason")}
	switch kind {
	case "freeze", "unfreeze", "revive", "kill":
	case "reset":
		a.Rollback = a.Rollback || q.Get("rollback") == ""
	case "percent":
		v, err := strconv.ParseFloat(q.Get("value"), 64)
		if err != nil {
			return Action{}, fmt.Errorf("%w: percent needs ?value=0..100", errBadAction)
		}
		a.Percent = v
	default:
		return Action{}, fmt.Errorf("%w: unknown action %q: freeze, unfreeze, kill, revive, percent, reset", errBadAction, kind)
	}
	if len(a.Reason) > maxReason {
		return Action{}, fmt.Errorf("%w: reason longer than %d bytes", errBadAction, maxReason)
	}
	return a, nil
}

// change is what the action does to a release's override.
func (a Action) change() func(*override) {
	switch a.Kind {
	case "freeze":
		return func(o *override) { o.State = config.StateFrozen }
	case "unfreeze", "revive":
		return func(o *override) { o.State = config.StateActive }
	case "kill":
		return func(o *override) { o.State = config.StateKilled }
	case "reset":
		return func(o *override) { *o = override{} }
	case "percent":
		v := a.Percent
		return func(o *override) { o.Percent = &v }
	}
	return nil
}

// declaration is the change declaration an action puts in force. An
// action given no reason records none: the change's source already says
// where it came from.
func (a Action) declaration() config.Change {
	return config.Change{Rollback: a.Rollback, Reason: a.Reason}
}

// Act applies an action through the same gate as every change: an
// evicting change without Rollback is refused and the config in force
// stays. It returns the release as it stands after.
func (d *Daemon) Act(a Action) (ReleaseStatus, error) {
	change := a.change()
	if change == nil {
		return ReleaseStatus{}, fmt.Errorf("%w: unknown action %q", errBadAction, a.Kind)
	}
	source := a.Source
	if source == "" {
		source = "admin"
	}
	if err := d.override(a.Release, change, source, a.declaration()); err != nil {
		return ReleaseStatus{}, err
	}
	for _, rs := range d.releases() {
		if rs.Name == a.Release {
			return rs, nil
		}
	}
	return ReleaseStatus{}, fmt.Errorf("%w: %q", errNoRelease, a.Release)
}

// Preview is what an action would do, without doing it: the blast radius
// POST /v1/diff reports for the config the action would put in force
// (subjects moving each way, evictions, whether it would be refused).
func (d *Daemon) Preview(a Action, sample int) (gray.Report, error) {
	change := a.change()
	if change == nil {
		return gray.Report{}, fmt.Errorf("%w: unknown action %q", errBadAction, a.Kind)
	}
	d.mu.Lock()
	if findRelease(d.file, a.Release) == nil {
		d.mu.Unlock()
		return gray.Report{}, fmt.Errorf("%w: %q", errNoRelease, a.Release)
	}
	overrides := make(map[string]override, len(d.state.Overrides)+1)
	for k, v := range d.state.Overrides {
		overrides[k] = v
	}
	o := overrides[a.Release]
	change(&o)
	overrides[a.Release] = o
	next, err := effective(d.file, overrides)
	d.mu.Unlock()
	if err != nil {
		return gray.Report{}, err
	}
	next.Change = a.declaration()
	next.Source = fmt.Sprintf("%s %s", a.Kind, a.Release)
	return d.report(next, sample, d.opts.Clock.Now()), nil
}

// report diffs next against the config in force at at, as POST /v1/diff
// answers it.
func (d *Daemon) report(next *config.Config, sample int, at time.Time) gray.Report {
	rep := gray.NewReport(d.ext.Policy().Config, next, sample, at)
	rep.Old.File = "config in force (" + d.path + ")"
	return rep
}
