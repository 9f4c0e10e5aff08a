package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// Fleet is the one port a fleet source fills (package kube: the
// GrayRelease objects). With one, the file gives the static settings only
// (server, mesh, identity, lane, membership, tracing, services) and lists
// no release; releases arrive one change at a time as ReleaseChanges, the
// version is the fleet's, the same on every node, and runtime actions are
// refused, except the analysis's, which change the fleet's object.
type Fleet interface {
	// Synced reports whether the initial list has been put in force;
	// until then the node is not ready.
	Synced() bool
	// Staleness is how long the source has not been known to be current
	// (0 while its watch is healthy).
	Staleness() time.Duration
	// Status describes the source for GET /status.
	Status() map[string]any
	// Due tells the source that release's held change has reached its
	// effective_at: the source submits it again.
	Due(release string)
	// ActOnFleet changes a release on the whole fleet. Many nodes may
	// reach the same verdict at once, so it must be conditional — the
	// object changes once per target (a release already frozen is not
	// frozen again, a schedule step is taken once) — and report what it
	// did.
	ActOnFleet(ctx context.Context, a FleetAction) (outcome string, err error)
	// ReleaseFleet is release name's fleet status (the object's status and
	// the nodes' reports); nil, nil when there is no such object.
	ReleaseFleet(ctx context.Context, name string) (*FleetRelease, error)
}

// Fleet actions: the analysis's changes, as FleetAction.Kind.
const (
	FleetFreeze   = "freeze"
	FleetKill     = "kill"
	FleetRollback = "rollback" // percent 0, schedule dropped, declared rollback
	FleetAdvance  = "advance"  // take the schedule's next step
)

// FleetAction is one analysis action on a release's fleet object.
type FleetAction struct {
	Release string
	Kind    string
	// Step, for advance, is the step to take as this node sees the
	// schedule: with an analysis, the schedule in force holds every step
	// until a window passes (holdSchedule), so it is the spec's first
	// remaining step. The fleet takes it only if the object's schedule
	// still starts with it.
	Step config.Step
	// Reason is the verdict and why; the fleet adds the node's name.
	Reason string
}

// fleetTimeout bounds one fleet action: the analysis loop waits for it.
const fleetTimeout = 15 * time.Second

// errFleetMode refuses local runtime actions in Kubernetes mode: one node
// must not drift from the fleet.
var errFleetMode = errors.New("releases come from the Kubernetes API in this mode: change the GrayRelease (graymesh release ACTION NAME --kube, or kubectl patch)")

// ReleaseChange is one release's change from the fleet source.
type ReleaseChange struct {
	// Name is the release; Release replaces it, or removes it when nil. A
	// Name "" change with no Release moves the version only.
	Name    string
	Release *config.Release
	// EffectiveAt and Change are the change's declaration, as the file's
	// effective_at and change.
	EffectiveAt *time.Time
	Change      config.Change
	// Version is the fleet version once the change is in force.
	Version string
}

// propose splices the change into the file in force. A change whose
// effective_at is still to come is checked now and held for its release
// alone: the releases in force keep their spec, other releases' changes go
// through meanwhile, and at its time the pipeline tells the fleet
// (Fleet.Due), which submits the change again, so it passes the gate
// against what is in force then and carries the version the fleet has
// then.
func (ch ReleaseChange) propose(p *Pipeline) (*proposal, error) {
	prop := &proposal{source: SourceFleet, putSource: SourceFleet, scope: ch.Name, replaces: ch.Name,
		holdAt: ch.EffectiveAt, logAttrs: []any{"release", ch.Name}}
	if ch.EffectiveAt != nil {
		prop.putSource = SourceFleet + " (effective_at)"
	}
	prop.describe = func(err error) error { return fmt.Errorf("release %s: %w", ch.Name, err) }
	prop.due = func(still func() bool, _ *config.Config) {
		p.mu.Lock()
		due := p.holds.take(ch.Name, still)
		p.mu.Unlock()
		if due {
			p.opts.Fleet.Due(ch.Name)
		}
	}
	file, err := p.file.Clone()
	if err != nil {
		return prop, err
	}
	if ch.Name != "" {
		file.Releases = slices.DeleteFunc(file.Releases, func(r config.Release) bool { return r.Name == ch.Name })
		if ch.Release != nil {
			file.Releases = append(file.Releases, *ch.Release)
		}
	}
	// Every node orders releases the same way: by name.
	slices.SortFunc(file.Releases, func(a, b config.Release) int { return strings.Compare(a.Name, b.Name) })
	file.Version, file.EffectiveAt, file.Change = ch.Version, nil, ch.Change
	next, err := effective(file, nil)
	if err != nil {
		return prop, err
	}
	// The history shows the change's declared time; holding is per
	// release, never through the file's effective_at.
	next.EffectiveAt = ch.EffectiveAt
	prop.next = next
	prop.commit = func(held bool) {
		// A held change stays out of the file in force: other releases'
		// changes are built without it.
		if !held {
			p.file = file
		}
	}
	return prop, nil
}

// actOnFleet hands an analysis action to the fleet; every other runtime
// action is refused in Kubernetes mode. No lock is held: the fleet's call
// is network I/O, and the change comes back through the fleet's watch.
func (p *Pipeline) actOnFleet(a Action) (Result, error) {
	if a.Source != SourceAnalysis {
		return Result{}, errFleetMode
	}
	fa := FleetAction{Release: a.Release, Kind: a.Kind, Reason: a.FleetReason}
	if fa.Reason == "" {
		fa.Reason = a.Reason
	}
	if a.Kind == FleetAdvance {
		steps := p.FileSchedule(a.Release)
		if a.Step < 0 || a.Step >= len(steps) {
			return Result{}, fmt.Errorf("%w: release %s has no schedule step %d", errBadAction, a.Release, a.Step)
		}
		fa.Step = steps[a.Step]
	}
	ctx, cancel := context.WithTimeout(context.Background(), fleetTimeout)
	defer cancel()
	note, err := p.opts.Fleet.ActOnFleet(ctx, fa)
	return Result{Note: note}, err
}

// fleetFile makes a freshly read static file carry the fleet's releases
// and version. A file that lists releases is refused: in this mode they
// live in the API server only, so no node can serve a stale copy.
func (p *Pipeline) fleetFile(file *config.Config) error {
	if len(file.Releases) > 0 {
		return fmt.Errorf("%s lists %d releases: in Kubernetes mode releases are GrayRelease objects; the file keeps the static settings only", p.opts.Path, len(file.Releases))
	}
	if p.file != nil {
		file.Releases, file.Version = p.file.Releases, p.file.Version
	} else {
		file.Version = "0"
	}
	return nil
}

// ReleaseFleet is release name's fleet status; ErrNoFleet in file mode.
func (p *Pipeline) ReleaseFleet(ctx context.Context, name string) (*FleetRelease, error) {
	if p.opts.Fleet == nil {
		return nil, ErrNoFleet
	}
	return p.opts.Fleet.ReleaseFleet(ctx, name)
}

// FleetStatus describes the fleet source for GET /status (nil in file
// mode).
func (p *Pipeline) FleetStatus() map[string]any {
	if p.opts.Fleet == nil {
		return nil
	}
	return p.opts.Fleet.Status()
}

// FleetMode reports Kubernetes mode, and whether its initial list is in
// force.
func (p *Pipeline) FleetMode() (on, synced bool) {
	if p.opts.Fleet == nil {
		return false, true
	}
	return true, p.opts.Fleet.Synced()
}

// ErrNoFleet answers a fleet question in file mode.
var ErrNoFleet = errors.New("no fleet view: graymesh runs in file mode (the fleet status exists in Kubernetes mode, serve --kube)")
