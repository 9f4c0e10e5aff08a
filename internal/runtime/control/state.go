package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// state is what graymesh keeps across restarts in its state directory: the
// version counter, the last config it put in force, and the runtime
// overrides made through the admin API.
type state struct {
	// Version counts accepted configs; it only grows.
	Version int `json:"version"`
	// ContentHash is the hash of the effective config in force (file and
	// overrides): a change of it is what makes Version grow.
	ContentHash string `json:"content"`
	// Overrides are per-release changes made through the admin API; they
	// apply on top of the file until reset.
	Overrides map[string]Override `json:"overrides,omitempty"`
	// InForce is the effective config in force, so a restart with a bad
	// or evicting file still serves the last good config.
	InForce *config.Config `json:"in_force,omitempty"`
	// Kills are when releases were killed and revived (nextKills), so a
	// restart keeps the instants message consumers decide records by.
	Kills []Kill `json:"kills,omitempty"`
}

// Override is one release's runtime change (an action), kept on top of
// the file until reset.
type Override struct {
	State   string   `json:"state,omitempty"`
	Percent *float64 `json:"percent,omitempty"`
	// Step is the last schedule step an analysis approved (absent: none
	// yet) for a release whose analysis gates its schedule.
	Step *int `json:"schedule_step,omitempty"`
}

const stateFile = "state.json"

func loadState(dir string) (*state, error) {
	st := &state{Overrides: map[string]Override{}}
	if dir == "" {
		return st, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	if st.Overrides == nil {
		st.Overrides = map[string]Override{}
	}
	if st.InForce != nil {
		// The hash follows the config's JSON form; computed again, a state
		// file written in an older form (durations as objects, Go field
		// names) matches the same config read now, so an upgrade alone
		// does not make a new version.
		st.ContentHash = contentHash(st.InForce)
	}
	return st, nil
}

// save writes the state atomically (temp file + rename).
func (st *state) save(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, stateFile))
}

// effective is the file's config with the overrides applied, validated.
// Overrides naming releases the file no longer has are ignored.
func effective(file *config.Config, overrides map[string]Override) (*config.Config, error) {
	cfg, err := file.Clone()
	if err != nil {
		return nil, err
	}
	for i := range cfg.Releases {
		o, ok := overrides[cfg.Releases[i].Name]
		holdSchedule(&cfg.Releases[i], o.Step)
		if !ok {
			continue
		}
		if o.State != "" {
			cfg.Releases[i].State = o.State
		}
		if o.Percent != nil {
			cfg.Releases[i].Percent = *o.Percent
			// An explicit percentage replaces the schedule.
			cfg.Releases[i].Schedule = nil
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// contentHash identifies an effective config's content, whatever its
// version, source or declared change.
func contentHash(c *config.Config) string { return c.EffectiveHash() }

// holdSchedule makes an analysed release's schedule wait for its analysis:
// only the steps up to step (the last one a window passed; none when nil)
// are in force, whatever their time, so a step is taken once its at has
// come and the analysis passed, and an inconclusive analysis never
// advances the ramp.
func holdSchedule(r *config.Release, step *int) {
	if r.Analysis == nil || len(r.Schedule) == 0 {
		return
	}
	n := 0
	if step != nil {
		n = min(max(*step+1, 0), len(r.Schedule))
	}
	r.Schedule, r.HeldSchedule = r.Schedule[:n], r.Schedule[n:]
}
