package gate

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
)

// A config change evicts when it can move a subject who is gray now — admitted
// to a release's environment by the config in force — back to stable (or to
// another release's environment). Such a change must be declared a rollback
// (change: {rollback: true, reason: …}) to take effect; see docs/config.md.
//
// Two comparisons are made here and they differ on purpose:
//
//   - EvictionsAt reads the rules and reports every change that CAN evict
//     someone, whoever the callers are (claims, addresses and headers
//     included). It is the gate.
//   - DiffAt measures how many subjects DO move, by deciding synthetic
//     identity-only subjects under both configs. It is the report.

// Eviction is one change that can move subjects who are gray now to stable.
type Eviction struct {
	// Release is the release the change is about; "" for a change to the
	// identity, membership or lane settings, which affects every release.
	Release string
	// Rule is the rule of the table (Rules) that refuses the change.
	Rule Rule
	// Field names what changed: "percent", "salt", "whitelist",
	// "claims[0]", "schedule[2]", "order", "identity.device_cookie"…
	Field string
	// Detail says how, e.g. `percent lowered 30 → 20 (10.00% of subjects
	// leave gray)`.
	Detail string
}

// Error reads "release NAME: rule ID: detail", or "rule ID: detail" for a
// change that affects every release: the shape of the CRD's CEL messages.
func (e *Eviction) Error() string {
	msg := "rule " + string(e.Rule) + ": " + e.Detail
	if e.Release == "" {
		return msg
	}
	return "release " + e.Release + ": " + msg
}

// Evictions is EvictionsAt with the change applied now.
func Evictions(old, new *config.Config) []error {
	return EvictionsAt(old, new, time.Now())
}

// EvictionsAt returns one *Eviction per change from old to new that can move
// a currently-gray subject to stable, in release order (releases of old in
// its order, then releases new adds) and, within a release, in rule order.
// Identity, membership and lane changes, which touch every release, come
// first.
//
// at is when new is applied; a later new.EffectiveAt postpones it. The
// percentage compared is the one in force at that moment (the last schedule
// step at or before it, else percent), and every later schedule step of new
// must not lower it.
//
// Not evictions: raising a percentage, adding whitelist entries, claim
// values, wider CIDRs or header matchers, removing blacklist entries, adding
// a release behind the others, freezing and unfreezing. Killing a release is
// not an eviction either, although it moves everyone it admitted to stable:
// state: killed is the emergency stop and must never wait for a rollback
// declaration. Changes to a release that is killed in either config evict
// nobody (no one is gray through it, or everyone leaves anyway). Freezing is
// the other emergency stop and is never held back, even with membership
// off, when it sends the release's subjects to stable until unfrozen.
//
// The rules are compared as if no subject held a membership token: tokens
// can be lost (cleared cookies, services that do not send the header back),
// so a rule change that tokens would cover is still reported. Changes that
// invalidate tokens (membership turned off, its cookie or header renamed,
// the lane key changed) are evictions of their own, and so are changes
// that make tokens valid now unverifiable (a key removed or replaced, an
// algorithm no longer allowed, an issuer or audience set or changed) or
// re-key subjects (subject_claim): such callers become anonymous or someone
// else. Adding a key, and removing an issuer or audience, evict nobody.
func EvictionsAt(old, new *config.Config, at time.Time) []error {
	var errs []error
	for _, c := range changes(old, new, new.TakesEffect(at)) {
		if c.evicts {
			errs = append(errs, &Eviction{Release: c.release, Rule: c.rule, Field: c.field, Detail: c.detail})
		}
	}
	return errs
}

// change is one difference between two configs. field names what
// changed, detail says how (the message without its prefixes); rule is the
// rule that refuses the change when it evicts.
type change struct {
	release, field, detail string
	rule                   Rule
	evicts                 bool
}

// changes compares old and new as applied at te.
func changes(old, new *config.Config, te time.Time) []change {
	var out []change
	if anyAdmits(old, te) {
		out = append(out, identityChanges(old, new)...)
		out = append(out, membershipChanges(old, new)...)
	}
	for i := range old.Releases {
		o := &old.Releases[i]
		n := findRelease(new, o.Name)
		if n == nil {
			out = append(out, change{release: o.Name, field: "release", detail: "removed", rule: ReleaseRemoved, evicts: o.AdmitsAt(te)})
			continue
		}
		out = append(out, releaseChanges(o, n, te, new.Membership.Enabled)...)
		out = append(out, orderChanges(old, new, n, te)...)
	}
	for i := range new.Releases {
		n := &new.Releases[i]
		if findRelease(old, n.Name) != nil {
			continue
		}
		out = append(out, change{release: n.Name, field: "release", detail: "added"})
		out = append(out, orderChanges(old, new, n, te)...)
	}
	return out
}

// releaseChanges compares two versions of one release, in rule order.
// membership says whether the new config has membership tokens on.
func releaseChanges(o, n *config.Release, te time.Time, membership bool) []change {
	out := slices.Concat(
		stateChanges(o, n, te, membership),
		listChanges(o, n),
		claimChanges(o, n),
		cidrChanges(o, n),
		headerChanges(o, n),
		percentChanges(o, n, te),
		scheduleChanges(o, n, te),
		trafficChanges(o, n),
	)
	// Nobody is gray through a release killed now, and killing is the
	// emergency stop: neither case asks for a rollback declaration.
	if o.State == config.StateKilled || n.State == config.StateKilled {
		for i := range out {
			out[i].evicts = false
		}
	}
	return out
}

// changeList collects the changes of one release.
type changeList struct {
	release string
	out     []change
}

// refuse adds a change that evicts, refused by rule.
func (l *changeList) refuse(rule Rule, field, format string, args ...any) {
	l.refuseIf(true, rule, field, format, args...)
}

// refuseIf adds a change that evicts, refused by rule, when evicts is set.
func (l *changeList) refuseIf(evicts bool, rule Rule, field, format string, args ...any) {
	l.out = append(l.out, change{release: l.release, field: field, detail: fmt.Sprintf(format, args...), rule: rule, evicts: evicts})
}

// note adds a change that evicts nobody.
func (l *changeList) note(field, format string, args ...any) {
	l.out = append(l.out, change{release: l.release, field: field, detail: fmt.Sprintf(format, args...)})
}

// stateChanges reports a new state or environment.
func stateChanges(o, n *config.Release, te time.Time, membership bool) []change {
	l := changeList{release: n.Name}
	if o.State != n.State {
		switch {
		case n.State == config.StateKilled:
			l.note("state", "state %s → killed: everyone it admitted goes to stable (kill switch: allowed without rollback)", o.State)
		case o.State == config.StateKilled:
			l.note("state", "state killed → %s: the release admits again", n.State)
		case n.State == config.StateFrozen && membership:
			l.note("state", "state %s → frozen: no new subject enters %s; members keep it", o.State, n.Env)
		case n.State == config.StateFrozen:
			l.note("state", "state %s → frozen: membership is off, so everyone it admitted goes to stable until unfrozen (emergency stop: allowed without rollback)", o.State)
		default:
			l.note("state", "state %s → %s", o.State, n.State)
		}
	}
	if o.Env != n.Env {
		l.refuseIf(o.AdmitsAt(te), EnvChanged, "env", "env changed %s → %s", o.Env, n.Env)
	}
	return l.out
}

// listChanges compares the blacklist and the whitelist.
func listChanges(o, n *config.Release) []change {
	l := changeList{release: n.Name}
	for _, s := range n.Blacklist {
		if !slices.Contains(o.Blacklist, s) {
			l.refuse(BlacklistAdded, "blacklist", "blacklist gained %q", s)
		}
	}
	for _, s := range o.Blacklist {
		if !slices.Contains(n.Blacklist, s) {
			l.note("blacklist", "blacklist entry %q removed", s)
		}
	}
	for _, s := range o.Whitelist {
		if !slices.Contains(n.Whitelist, s) {
			if slices.Contains(o.Blacklist, s) {
				l.note("whitelist", "whitelist entry %q removed (it was blacklisted)", s)
			} else {
				l.refuse(WhitelistRemoved, "whitelist", "whitelist entry %q removed", s)
			}
		}
	}
	for _, s := range n.Whitelist {
		if !slices.Contains(o.Whitelist, s) {
			l.note("whitelist", "whitelist gained %q", s)
		}
	}
	return l.out
}

// orderChanges reports releases of new that n now precedes although they
// did not in old, when their environments differ: a subject both admit
// moved from the later release's environment to n's.
func orderChanges(old, new *config.Config, n *config.Release, te time.Time) []change {
	if !n.AdmitsAt(te) {
		return nil
	}
	var out []change
	on := findRelease(old, n.Name)
	after := false
	for i := range new.Releases {
		m := &new.Releases[i]
		if m.Name == n.Name {
			after = true
			continue
		}
		if !after {
			continue
		}
		om := findRelease(old, m.Name)
		if om == nil || !om.AdmitsAt(te) || om.Env == n.Env {
			continue
		}
		verb := "added"
		switch {
		case on != nil && on.State == config.StateKilled:
			verb = "reactivated"
		case on != nil && releaseIndex(old, on.Name) < releaseIndex(old, m.Name):
			continue // n already came first
		case on != nil:
			verb = "moved"
		}
		out = append(out, change{release: n.Name, field: "order", rule: OrderChanged, evicts: true,
			detail: fmt.Sprintf("%s before %s, whose env is %s: subjects both admit move from %s to %s", verb, m.Name, om.Env, om.Env, n.Env)})
	}
	return out
}

func anyAdmits(cfg *config.Config, t time.Time) bool {
	return slices.ContainsFunc(cfg.Releases, func(r config.Release) bool { return r.AdmitsAt(t) })
}

func findRelease(cfg *config.Config, name string) *config.Release {
	if i := releaseIndex(cfg, name); i >= 0 {
		return &cfg.Releases[i]
	}
	return nil
}

func releaseIndex(cfg *config.Config, name string) int {
	return slices.IndexFunc(cfg.Releases, func(r config.Release) bool { return r.Name == name })
}

// pct formats a percentage without trailing zeros: 30, 33.33, 0.5.
func pct(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) }
