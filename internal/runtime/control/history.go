package control

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/gate"
)

// historySize bounds the change history kept in memory: enough for a
// ramp's day of changes, a few hundred kilobytes at most.
const historySize = 256

// Record is one config change graymesh accepted, held for its
// effective_at, or refused: the console's ramp timeline. The history is
// kept in memory only; a restart starts it again with the startup entry.
type Record struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	// Result is "accepted", "pending" (held until EffectiveAt) or "refused".
	Result string `json:"result"`
	// Version is the config version in force after the change.
	Version     string     `json:"version,omitempty"`
	EffectiveAt *time.Time `json:"effective_at,omitempty"`
	// Releases names the releases the change touched; empty for a change
	// that touched none by name (identity, lane, services).
	Releases []string `json:"releases,omitempty"`
	// Details say what changed, one line per release field.
	Details  []string `json:"details,omitempty"`
	Rollback bool     `json:"rollback,omitempty"`
	// Reason is the change's declared reason: the operator's words for an
	// admin action, the file's change.reason for a file.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Touches reports whether the change names release, or names none.
func (c Record) Touches(release string) bool {
	return len(c.Releases) == 0 || slices.Contains(c.Releases, release)
}

// history is a bounded, newest-last list of changes.
type history struct {
	mu      sync.Mutex
	entries []Record
}

func (h *history) add(c Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.entries) == historySize {
		h.entries = slices.Delete(h.entries, 0, 1)
	}
	h.entries = append(h.entries, c)
}

// list returns the changes that touch release ("" = every change), newest
// first.
func (h *history) list(release string) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []Record{}
	for i := len(h.entries) - 1; i >= 0; i-- {
		if release == "" || h.entries[i].Touches(release) {
			out = append(out, h.entries[i])
		}
	}
	return out
}

// record adds a change from cur (nil at startup) to next.
func (p *Pipeline) record(result, source string, cur, next *config.Config, err error) {
	c := Record{At: p.opts.Clock.Now(), Source: source, Result: result}
	if next != nil {
		c.Rollback, c.Reason = next.Change.Rollback, next.Change.Reason
		c.EffectiveAt = next.EffectiveAt
		if cur != nil {
			c.Releases, c.Details = describeChange(cur, next, c.At)
		} else {
			for _, r := range next.Releases {
				c.Releases = append(c.Releases, r.Name)
			}
		}
	}
	if err != nil {
		c.Error = err.Error()
		if named := evictedReleases(err); len(named) > 0 {
			c.Releases = named
		}
	}
	if pol := p.policy.Load(); pol != nil {
		c.Version = pol.Config.Version
	}
	p.history.add(c)
}

// held says how many of r's steps wait for its analysis.
func held(r *config.Release) string {
	if len(r.HeldSchedule) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d waiting for the analysis)", len(r.HeldSchedule))
}

// describeChange lists, per release, what a person watching a ramp wants
// to see change: state, environment, percentage in force, schedule and
// the size of each rule.
func describeChange(cur, next *config.Config, at time.Time) (releases, details []string) {
	touch := func(name, format string, args ...any) {
		if !slices.Contains(releases, name) {
			releases = append(releases, name)
		}
		details = append(details, "release "+name+": "+fmt.Sprintf(format, args...))
	}
	for i := range next.Releases {
		n := &next.Releases[i]
		o := findRelease(cur, n.Name)
		if o == nil {
			touch(n.Name, "added (%s, %s%%)", n.Env, pct(n.PercentAt(at)))
			continue
		}
		if o.State != n.State {
			touch(n.Name, "state %s → %s", o.State, n.State)
		}
		if o.Env != n.Env {
			touch(n.Name, "env %s → %s", o.Env, n.Env)
		}
		if op, np := o.PercentAt(at), n.PercentAt(at); op != np {
			touch(n.Name, "percent %s → %s", pct(op), pct(np))
		}
		if len(o.Schedule) != len(n.Schedule) || len(o.HeldSchedule) != len(n.HeldSchedule) {
			touch(n.Name, "schedule %d → %d steps%s", len(o.Schedule)+len(o.HeldSchedule), len(n.Schedule)+len(n.HeldSchedule), held(n))
		}
		if o.TrafficPercent != n.TrafficPercent {
			touch(n.Name, "traffic_percent %s → %s", pct(o.TrafficPercent), pct(n.TrafficPercent))
		}
		for _, l := range []struct {
			name     string
			old, new int
		}{
			{"whitelist", len(o.Whitelist), len(n.Whitelist)}, {"blacklist", len(o.Blacklist), len(n.Blacklist)},
			{"claims", len(o.Claims), len(n.Claims)}, {"cidrs", len(o.CIDRs), len(n.CIDRs)}, {"headers", len(o.Headers), len(n.Headers)},
		} {
			if l.old != l.new {
				touch(n.Name, "%s %d → %d entries", l.name, l.old, l.new)
			}
		}
	}
	for i := range cur.Releases {
		if findRelease(next, cur.Releases[i].Name) == nil {
			touch(cur.Releases[i].Name, "removed")
		}
	}
	return releases, details
}

func findRelease(c *config.Config, name string) *config.Release {
	for i := range c.Releases {
		if c.Releases[i].Name == name {
			return &c.Releases[i]
		}
	}
	return nil
}

// pct formats a percentage without trailing zeros (30, 12.5, 0.01).
func pct(v float64) string { return fmt.Sprintf("%g", v) }

// evictedReleases names the releases of the evictions in err, in order.
// errors.As would stop at the first; the tree is walked instead.
func evictedReleases(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		switch u := e.(type) { //nolint:errorlint // walking the tree itself
		case *gate.Eviction:
			if u.Release != "" && !slices.Contains(out, u.Release) {
				out = append(out, u.Release)
			}
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			if c := u.Unwrap(); c != nil {
				walk(c)
			}
		}
	}
	walk(err)
	return out
}
