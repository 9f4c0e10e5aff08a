// Package lanequeue carries graymesh's lane through message queues. A
// producer puts the lane its request brought into the message's headers
// (Inject, with laneprop's context); a consumer asks Follower which
// environment the message's lane names, and Processes whether its own
// consumer takes the message or leaves it to another environment's:
//
//	what gray produces, gray consumes; what stable produces, stable
//	consumes; gray's messages fall back to stable while no gray consumer
//	is live; a forged, expired or killed lane is stable.
//
// No sidecar stands between a broker and a consumer, so the consumer
// checks the lane itself, as a sidecar's Envoy does: with the public keys
// graymesh publishes and the kills in force, both read from graymesh's
// GET /v1/lanes (Follower keeps them fresh: a key rotation and a kill
// reach consumers within one refresh). It needs no admin token.
package lanequeue

import (
	"context"

	"github.com/graymesh/graymesh/internal/contract/wire"
	"github.com/graymesh/graymesh/laneprop"
)

// Stable is the environment every message without a valid lane goes to.
const Stable = "stable"

// Header is the message header the lane travels in: the same name as the
// HTTP header, so a consumer's own HTTP calls pass it on unchanged.
const Header = wire.HeaderLane

// Headers is what Inject writes to: a message's headers.
type Headers interface{ Set(key, value string) }

// Inject puts the lane ctx carries (laneprop.FromContext) into h; a
// context without a lane writes nothing, and the message is stable's.
func Inject(ctx context.Context, h Headers) {
	if l := laneprop.FromContext(ctx); l != "" {
		h.Set(Header, l)
	}
}

// Decision is which environment a message's lane names, and why.
type Decision struct {
	Env     string `json:"env"`
	Release string `json:"release,omitempty"`
	// Reason is the inner hops' (wire.ReasonLane, ReasonLaneMissing,
	// ReasonLaneRefused, ReasonKilled).
	Reason string `json:"reason"`
	// Stress marks a stress-test message: shadow load, whichever
	// environment processes it.
	Stress bool `json:"stress,omitempty"`
	// Problem says why a lane was refused.
	Problem string `json:"problem,omitempty"`
}

// ConsumerOf is the environment whose consumer takes a message d decided:
// the message's environment's while it has a live consumer (live says
// which do), stable's otherwise, so none is left unconsumed.
func ConsumerOf(d Decision, live func(env string) bool) string {
	if d.Env == Stable || live(d.Env) {
		return d.Env
	}
	return Stable
}

// Processes reports whether a consumer of env takes a message d decided:
// ConsumerOf, seen from one consumer (its own environment is live).
func Processes(env string, d Decision, live func(env string) bool) bool {
	switch {
	case d.Env == env:
		return true
	case env == Stable:
		return !live(d.Env)
	}
	return false
}
