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

// ApplyFleet puts one release change in force through the same gate as a
// file reload: validation, the eviction gate (unless the change declares a
// rollback), effective_at, compile, xDS push, ext_proc swap. Refused, the
// config in force stays and the error says why.
func (d *Daemon) ApplyFleet(ch FleetChange) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	file, err := d.file.Clone()
	if err != nil {
		return err
	}
	file.Releases = slices.DeleteFunc(file.Releases, func(r config.Release) bool { return r.Name == ch.Name })
	if ch.Release != nil {
		file.Releases = append(file.Releases, *ch.Release)
	}
	// Every node orders releases the same way: by name.
	slices.SortFunc(file.Releases, func(a, b config.Release) int { return strings.Compare(a.Name, b.Name) })
	file.Version, file.EffectiveAt, file.Change = ch.Version, ch.EffectiveAt, ch.Change
	next, err := effective(file, nil)
	if err == nil {
		err = d.apply(next, sourceFleet)
	}
	if err != nil {
		err = fmt.Errorf("release %s: %w", ch.Name, err)
		d.refused(sourceFleet, err, next)
		return err
	}
	d.file = file
	return nil
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
