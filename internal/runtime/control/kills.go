package control

import (
	"slices"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
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

// nextKills is kills after next replaces cur at now: a release killed in
// next and not in cur opens a kill, one killed in cur and not in next
// closes its kill, and kills closed longer than killMemory ago are
// forgotten. At startup (cur nil) a kill kills does not hold (the config
// began killed, or the state directory did not know) opens at the zero
// time: it covers every record.
func nextKills(kills []Kill, cur, next *config.Config, now time.Time) []Kill {
	out := slices.DeleteFunc(slices.Clone(kills), func(k Kill) bool {
		return k.RevivedAt != nil && now.Sub(*k.RevivedAt) > killMemory
	})
	open := map[string]int{}
	for i, k := range out {
		if k.RevivedAt == nil {
			open[k.Release] = i
		}
	}
	killedNext := killedIn(next)
	for name := range killedNext {
		if _, ok := open[name]; ok {
			continue
		}
		k := Kill{Release: name}
		if cur != nil {
			k.KilledAt = now
		}
		out = append(out, k)
	}
	for name, i := range open {
		if !killedNext[name] {
			at := now
			out[i].RevivedAt = &at
		}
	}
	slices.SortStableFunc(out, func(a, b Kill) int { return a.KilledAt.Compare(b.KilledAt) })
	return out
}

// killedIn is the set of releases cfg kills.
func killedIn(cfg *config.Config) map[string]bool {
	out := map[string]bool{}
	if cfg == nil {
		return out
	}
	for _, r := range cfg.Releases {
		if r.State == config.StateKilled {
			out[r.Name] = true
		}
	}
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

// recordKills puts next's kills on record as of the instant they take
// effect for messages: now plus next's lane.message_kill_delay, and after
// every instant an answer of Kills vouched for (a shorter delay must not
// move a kill under an answer given). The caller holds mu.
func (p *Pipeline) recordKills(cur, next *config.Config) {
	p.killMu.Lock()
	defer p.killMu.Unlock()
	at := p.opts.Clock.Now().Add(next.Lane.MessageKillDelay.Duration)
	if !at.After(p.promised) {
		// Strictly after: a message produced at the instant vouched
		// for was decided without this kill.
		at = p.promised.Add(time.Nanosecond)
	}
	p.state.Kills = nextKills(p.state.Kills, cur, next, at)
}
