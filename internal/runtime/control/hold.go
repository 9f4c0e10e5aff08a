package control

import "time"

// fileScope is the hold scope of the file's config (and of the runtime
// overrides on top of it); a fleet release's changes are held in a scope
// named after the release, so one release's future change never holds, or
// is pulled forward by, another's.
const fileScope = ""

// noScope marks a proposal that replaces no held change.
const noScope = "\x00none"

// holds are the changes accepted to take effect later, at most one per
// scope: the one mechanism for a file's effective_at and a fleet
// release's. The pipeline's mu guards it.
type holds struct {
	clock Clock
	held  map[string]*heldChange
}

// heldChange is one scope's change waiting for its instant.
type heldChange struct {
	at   time.Time
	stop func() bool
}

// hold keeps scope's change until at, then calls due in the clock's
// goroutine (without the pipeline's lock) unless it was replaced or
// cancelled meanwhile.
func (h *holds) hold(scope string, at time.Time, due func(still func() bool)) {
	h.cancel(scope)
	if h.held == nil {
		h.held = map[string]*heldChange{}
	}
	c := &heldChange{at: at}
	c.stop = h.clock.AfterFunc(at.Sub(h.clock.Now()), func() {
		due(func() bool { return h.held[scope] == c })
	})
	h.held[scope] = c
}

// take removes scope's change if it is still c's; the caller holds the
// pipeline's lock.
func (h *holds) take(scope string, still func() bool) bool {
	if !still() {
		return false
	}
	delete(h.held, scope)
	return true
}

// cancel drops scope's held change, if any.
func (h *holds) cancel(scope string) {
	if c := h.held[scope]; c != nil {
		c.stop()
		delete(h.held, scope)
	}
}

// list is scope → instant of every held change.
func (h *holds) list() map[string]time.Time {
	out := make(map[string]time.Time, len(h.held))
	for scope, c := range h.held {
		out[scope] = c.at
	}
	return out
}
