package daemon

import (
	"context"
	"time"

	"github.com/graymesh/graymesh/config"
)

// FleetActor changes a release on the whole fleet, in Kubernetes mode:
// there local overrides are refused (one node must not drift), so the
// analysis acts by changing the release's GrayRelease object instead,
// which every node then puts in force from its watch (package kube).
//
// Many nodes judge the same release on their own logs and may reach the
// same verdict at once: ActOnFleet must be conditional, so the object
// changes once per target (a release already frozen is not frozen again,
// a schedule step is taken once), and report what it did.
type FleetActor interface {
	ActOnFleet(ctx context.Context, a FleetAction) (outcome string, err error)
}

// Fleet actions: the analysis's changes, as FleetAction.Kind.
const (
	FleetFreeze   = "freeze"
	FleetKill     = "kill"
	FleetRollback = "rollback" // percent 0, schedule dropped, declared rollback
	FleetAdvance  = "advance"  // take the schedule's next step
)

// FleetAction is one analysis action on a release.
type FleetAction struct {
	Release string
	Kind    string
	// Step, for advance, is the step to take as this node sees the
	// schedule: with an analysis, the schedule in force holds every step
	// until a window passes (holdSchedule), so it is the spec's first
	// remaining step. The actor takes it only if the object's schedule
	// still starts with it.
	Step config.Step
	// Reason is the verdict and why; the actor adds the node's name.
	Reason string
}

// fleetTimeout bounds one fleet action: the analysis loop waits for it.
const fleetTimeout = 15 * time.Second

// changeRelease makes an analysis action: through the overrides in file
// mode, as a change of the fleet's object in Kubernetes mode (where the
// overrides are refused). It returns a note on what the fleet actor did,
// "" in file mode.
func (a *analyser) changeRelease(fa FleetAction, local func(*override), decl config.Change) (string, error) {
	if a.d.opts.Fleet == nil {
		return "", a.d.override(fa.Release, local, "analysis", decl)
	}
	if a.d.opts.FleetActor == nil {
		return "", errFleetMode
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	return a.d.opts.FleetActor.ActOnFleet(ctx, fa)
}
