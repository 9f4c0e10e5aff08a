package gray

import (
	"net/netip"
	"time"
)

// Request is one HTTP request as any hop sees it: the single input of
// Policy.Decide, whether the caller is Envoy (through ext_proc), the
// explain CLI, the admin API or the console.
type Request struct {
	Hop Hop
	// Authorization and Cookie are the request's headers (several cookie
	// headers joined with "; ").
	Authorization string
	Cookie        string
	// IP is the client address Envoy saw (not X-Forwarded-For).
	IP netip.Addr
	// Headers holds the request headers a header matcher names, keyed by
	// lower-case name.
	Headers map[string]string
	// Membership is the membership request header's value, if any.
	Membership string
	// Lane is the lane header's value (x-graymesh-lane): the signed lane
	// an inner hop follows.
	Lane string
	// RequestID is Envoy's x-request-id.
	RequestID string
	// StressMarker is the stress marker header's value (edge only).
	StressMarker string
	// Proof is the returning caller's proof header's value (edge only).
	Proof string
	Now   time.Time
	// Asserted, when set, is taken as the verified caller instead of
	// reading a token: the explain tools use it to ask "what if this
	// subject called". ext_proc never sets it.
	Asserted *Asserted
}

// Hop says who asks for a decision.
type Hop struct {
	// Inner hops follow the lane the edge signed; the edge decides.
	Inner bool
	// Service is the service whose sidecar asks ("" for the shared edge
	// listener); it decides whether the hop can serve the lane's
	// environment or falls back.
	Service string
}

// Name is "inner" or "edge".
func (h Hop) Name() string {
	if h.Inner {
		return "inner"
	}
	return "edge"
}

// Asserted is an identity an operator states rather than proves.
type Asserted struct {
	Subject string
	Claims  map[string][]string
}
