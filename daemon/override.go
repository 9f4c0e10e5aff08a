// Runtime overrides: per-release changes (freeze, kill, percentage,
// schedule step) made through the admin API, the console or the analysis,
// kept in the state directory on top of the file.

package daemon

import (
	"errors"
	"fmt"

	"github.com/graymesh/graymesh/config"
)

// Override changes one release at runtime (freeze, kill, percentage). The
// change persists in the state directory and stays on top of the file
// until reset. Evicting changes need rollback.
func (d *Daemon) Override(release string, change func(*override), rollback bool) error {
	return d.override(release, change, "admin", config.Change{Rollback: rollback})
}

// override is Override by source ("admin", "analysis") with the change's
// declaration (rollback and the reason), which the history records.
func (d *Daemon) override(release string, change func(*override), source string, decl config.Change) error {
	if d.opts.Fleet != nil {
		return errFleetMode
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	found := false
	for _, r := range d.file.Releases {
		found = found || r.Name == release
	}
	if !found {
		return fmt.Errorf("%w: %q", errNoRelease, release)
	}
	overrides := map[string]override{}
	for k, v := range d.state.Overrides {
		overrides[k] = v
	}
	o := overrides[release]
	change(&o)
	if o == (override{}) {
		delete(overrides, release)
	} else {
		overrides[release] = o
	}
	next, err := effective(d.file, overrides)
	if err == nil {
		next.Change = decl
		old := d.state.Overrides
		d.state.Overrides = overrides
		if err = d.apply(next, source); err != nil {
			d.state.Overrides = old
		}
	}
	if err != nil {
		d.refused(source, err, next)
	}
	return err
}

// overrideOf is release's runtime override (zero when none).
func (d *Daemon) overrideOf(release string) override {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.state.Overrides[release]
}

// fileSchedule is release's whole schedule in the config file, before an
// analysis holds it.
func (d *Daemon) fileSchedule(release string) []config.Step {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.file.Releases {
		if r.Name == release {
			return r.Schedule
		}
	}
	return nil
}

var errNoRelease = errors.New("no such release")
