package control

import (
	"slices"
	"time"

	"github.com/graymesh/graymesh/internal/core/gray"
)

// Kill is when a release was killed on this node and, once revived, when
// that was: the instants the kill took effect for queue messages (now, or
// lane.message_kill_delay later). A message consumer decides a record by the kill in force when
// the record was produced, not when it reads it: two consumers that read
// the kill at different moments still agree on every record (GET
// /v1/lanes).
type Kill struct {
	Release string `json:"release"`
	// KilledAt is when the kill came into force here; zero: before
	// anything this node recorded (killed in the config it started with,
	// with no state directory that knew better).
	KilledAt time.Time `json:"killed_at,omitzero"`
	// RevivedAt, when set, ends the kill.
	RevivedAt *time.Time `json:"revived_at,omitempty"`
}

// killMemory is how long a revived release's kill is remembered: a record
// produced while it was killed and consumed later than this is decided by
// the state then in force.
const killMemory = time.Hour

// nextKills is kills once killed (the plan's killed releases, in config
// order) are in force at now: a release killed and without an open kill
// opens one, an open kill of a release no longer killed closes, and kills
// closed longer than killMemory ago are forgotten. At startup a kill not
// on record (the config began killed, or the state directory did not
// know) opens at the zero time: it covers every record.
func nextKills(kills []Kill, killed []string, startup bool, now time.Time) []Kill {
	out := slices.DeleteFunc(slices.Clone(kills), func(k Kill) bool {
		return k.RevivedAt != nil && now.Sub(*k.RevivedAt) > killMemory
	})
	isOpen := func(name string) bool {
		return slices.ContainsFunc(out, func(k Kill) bool { return k.Release == name && k.RevivedAt == nil })
	}
	for i := range out {
		if out[i].RevivedAt == nil && !slices.Contains(killed, out[i].Release) {
			at := now
			out[i].RevivedAt = &at
		}
	}
	for _, name := range killed {
		if isOpen(name) {
			continue
		}
		k := Kill{Release: name}
		if !startup {
			k.KilledAt = now
		}
		out = append(out, k)
	}
	slices.SortStableFunc(out, func(a, b Kill) int { return a.KilledAt.Compare(b.KilledAt) })
	return out
}

// Kills are the kills this node remembers, and the instant they are true
// of: every kill in force at asOf is among them. Reading both under one
// lock with the pipeline's recording them is what makes that hold. With
// lane.message_kill_delay, asOf is that far ahead of now, and the kill
// recorded next after it: the answer holds for that long. asOf never goes
// back (a shorter delay answers the instant already vouched for).
func (p *Pipeline) Kills() (kills []Kill, asOf time.Time) {
	p.killMu.Lock()
	defer p.killMu.Unlock()
	var delay time.Duration
	if pol := p.policy.Load(); pol != nil {
		delay = pol.Config.Lane.MessageKillDelay.Duration
	}
	if asOf = p.opts.Clock.Now().Add(delay); asOf.After(p.promised) {
		p.promised = asOf
	}
	return slices.Clone(p.state.Kills), p.promised
}

// recordKills puts the kills of next (the policy about to be in force) on record as of the instant they take
// effect for messages: now plus next's lane.message_kill_delay, and after
// every instant an answer of Kills vouched for (a shorter delay must not
// move a kill under an answer given). The caller holds mu.
func (p *Pipeline) recordKills(next *gray.Policy) {
	p.killMu.Lock()
	defer p.killMu.Unlock()
	at := p.opts.Clock.Now().Add(next.Config.Lane.MessageKillDelay.Duration)
	if !at.After(p.promised) {
		// Strictly after: a message produced at the instant vouched
		// for was decided without this kill.
		at = p.promised.Add(time.Nanosecond)
	}
	var killed []string
	if next.Plan != nil {
		killed = next.Plan.Killed
	}
	p.state.Kills = nextKills(p.state.Kills, killed, p.policy.Load() == nil, at)
}
