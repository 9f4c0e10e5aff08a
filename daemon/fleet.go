package daemon

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/graymesh/graymesh/config"
)

// Fleet is a source of releases beside the config file: the Kubernetes
// API (package kube). With one, the file gives the static settings only
// (server, mesh, identity, lane, membership, tracing, services) and lists
// no release; releases arrive one change at a time through ApplyFleet,
// and the version is the fleet's, the same on every node.
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
	// effective_at: the source offers it again through ApplyFleet.
	Due(release string)
}

// FleetChange is one release's change from the fleet source.
type FleetChange struct {
	// Name is the release; Release replaces it, or removes it when nil.
	Name    string
	Release *config.Release
	// EffectiveAt and Change are the change's declaration, as the file's
	// effective_at and change.
	EffectiveAt *time.Time
	Change      config.Change
	// Version is the fleet version once the change is in force.
	Version string
}

// errFleetMode refuses local overrides in Kubernetes mode: one node must
// not drift from the fleet.
var errFleetMode = errors.New("releases come from the Kubernetes API in this mode: change the GrayRelease (graymesh release ACTION NAME --kube, or kubectl patch)")

// heldChange is one release's change waiting for its effective_at.
type heldChange struct {
	at   time.Time
	stop func() bool
}

// ApplyFleet puts one release change in force through the same gate as a
// file reload: validation, the eviction gate (unless the change declares a
// rollback), compile, xDS push, ext_proc swap. Refused, the config in
// force stays and the error says why.
//
// A change whose effective_at is still to come is checked now and held
// for its release alone (pending true): the releases in force keep their
// spec, other releases' changes go through meanwhile, and at its time the
// daemon tells the fleet (Fleet.Due), which offers the change again, so it
// passes the gate against what is in force then and carries the version
// the fleet has then. A Name "" change with no Release moves the version
// only.
func (d *Daemon) ApplyFleet(ch FleetChange) (pending bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Any newer change of the release replaces its held one.
	if h := d.held[ch.Name]; h != nil {
		h.stop()
		delete(d.held, ch.Name)
	}
	file, next, err := d.fleetNext(ch)
	if err == nil {
		if at := ch.EffectiveAt; at != nil && d.opts.Clock.Now().Before(*at) {
			if err = d.hold(ch.Name, *at, next); err == nil {
				return true, nil
			}
		} else {
			err = d.apply(next, fleetSource(ch))
		}
	}
	if err != nil {
		err = fmt.Errorf("release %s: %w", ch.Name, err)
		d.refused(sourceFleet, err, next)
		return false, err
	}
	d.file = file
	return false, nil
}

// fleetNext is the file in force with ch applied, and its effective
// config. The result carries no effective_at: holding is per release.
func (d *Daemon) fleetNext(ch FleetChange) (file, next *config.Config, err error) {
	file, err = d.file.Clone()
	if err != nil {
		return nil, nil, err
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
	next, err = effective(file, nil)
	if err == nil {
		// The history shows the change's declared time.
		next.EffectiveAt = ch.EffectiveAt
	}
	return file, next, err
}

// fleetSource names the change in the history: a change whose
// effective_at has come says so.
func fleetSource(ch FleetChange) string {
	if ch.EffectiveAt != nil {
		return sourceFleet + " (effective_at)"
	}
	return sourceFleet
}

// hold checks the change against what is in force now (refused now, it is
// refused now, as a file's pending change is) and keeps it until at. The
// caller holds mu.
func (d *Daemon) hold(name string, at time.Time, next *config.Config) error {
	cur := d.ext.Policy().Config
	if err := checkGate(cur, next); err != nil {
		return err
	}
	if err := d.compiles(next); err != nil {
		return err
	}
	h := &heldChange{at: at}
	h.stop = d.opts.Clock.AfterFunc(at.Sub(d.opts.Clock.Now()), func() {
		d.mu.Lock()
		due := d.held[name] == h
		if due {
			delete(d.held, name)
		}
		d.mu.Unlock()
		if due {
			d.opts.Fleet.Due(name)
		}
	})
	d.held[name] = h
	d.notePending(sourceFleet, at, cur, next, "release", name)
	return nil
}

// heldReleases is release → effective_at of the changes held, for GET
// /status. The caller holds mu.
func (d *Daemon) heldReleases() map[string]string {
	out := map[string]string{}
	for name, h := range d.held {
		out[name] = h.at.Format(time.RFC3339)
	}
	return out
}

// sourceFleet names Kubernetes-mode changes in the history and logs.
const sourceFleet = "kubernetes"

// fleetFile makes a freshly read static file carry the fleet's releases
// and version. A file that lists releases is refused: in this mode they
// live in the API server only, so no node can serve a stale copy.
func (d *Daemon) fleetFile(file *config.Config) error {
	if len(file.Releases) > 0 {
		return fmt.Errorf("%s lists %d releases: in Kubernetes mode releases are GrayRelease objects; the file keeps the static settings only", d.path, len(file.Releases))
	}
	if d.file != nil {
		file.Releases, file.Version = d.file.Releases, d.file.Version
	} else {
		file.Version = "0"
	}
	return nil
}
