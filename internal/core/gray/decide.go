package gray

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/graymesh/graymesh/internal/contract/config"
	"github.com/graymesh/graymesh/internal/core/identity"
)

// Outcome is everything a hop needs to act on one request.
type Outcome struct {
	Decision
	// Caller is who the request says it is; empty at inner hops, which
	// do not read identity.
	Caller identity.Caller
	// Lane replaces the request's lane header when SetLane is true; ""
	// removes it. The edge always sets it (dropping any lane the client
	// sent, adding its own); an inner hop drops a lane it does not honour.
	Lane    string
	SetLane bool
	// LaneProblem says why an inner hop refused the lane ("" otherwise).
	LaneProblem string
	// Membership is a fresh membership token to hand the caller on the
	// response ("" when none).
	Membership string
	// Proof is a fresh proof of the decision to hand the caller on the
	// response, for Envoy to route its later requests on ("" when none).
	Proof string
	// Stress marks a stress-test request: at the edge, one carrying a
	// verified marker for a release of the config (reason stress, or
	// killed: stable serves it, still as shadow load); at an inner hop,
	// one whose lane says so. Every hop tells its service (HeaderStress),
	// so shadow data stays apart wherever the request is served.
	Stress bool
	// StressProblem says why the edge ignored a stress marker, as one of
	// a few codes (malformed, bad-signature, expired, unknown-key,
	// no-lane-key, unknown-release); "" when none came or it verified.
	StressProblem string
}

// Decide is graymesh's one decision entry point. The edge resolves the
// caller and decides by the rules (membership first) and signs the lane;
// an inner hop honours the signed lane exactly as its Envoy does when it
// verifies the lane itself (explain and any ext_proc inner hop ask here).
// Either way the hop's own service may lack the chosen environment, which
// Fallback then says.
func (p *Policy) Decide(r Request) Outcome {
	var o Outcome
	if r.Hop.Inner {
		token := r.Lane
		if !p.takesLaneFrom(r.IP) {
			// The sidecar's listener removes a lane that arrives from
			// outside lane.mesh_cidrs before its lane check runs.
			token = ""
		}
		o.Decision, o.Stress, o.LaneProblem = p.follow(token, r.Now)
		if o.Reason != ReasonLane && r.Lane != "" {
			// Do not pass on a lane that is not honoured.
			o.SetLane = true
		}
	} else {
		o.Caller = p.caller(r)
		if d, ok := p.byProof(r, o.Caller); ok {
			// What the edge's Envoy does with it (explain asks here).
			o.Decision = d
		} else {
			f := p.facts(r, o.Caller)
			f.Stress, o.StressProblem = p.stressRelease(r)
			o.Decision = p.Engine.Decide(&f)
			// A verified marker names a release of the config, which
			// decides the request (Engine.stress).
			o.Stress = f.Stress != ""
			o.Membership = p.membershipFor(o.Decision, o.Caller, r.Now)
			o.Proof = p.proofFor(&o, r)
		}
		if p.Lanes != nil {
			// Whatever lane the client sent is replaced by ours, or
			// removed when nothing was decided.
			o.SetLane = true
			switch {
			case o.Stress && o.Env == config.Stable:
				// Killed: the lane names no release, or the inner
				// hops' kill routes would drop it, and the stress mark
				// with it, at the next hop.
				o.Lane = p.Lanes.SignStressLane(o.Env, "", o.Version, r.Now)
			case o.Stress:
				o.Lane = p.Lanes.SignStressLane(o.Env, o.Release, o.Version, r.Now)
			case o.Env != "":
				o.Lane = p.Lanes.Sign(o.Env, o.Release, o.Version, r.Now)
			}
		}
	}
	o.Fallback = p.fallbackFor(r.Hop.Service, o.Env)
	return o
}

// stressRelease is the release the request's stress marker loads, or why
// the marker is ignored: forged, expired, or sent where no lane key signs
// markers. A request without a marker gets neither.
func (p *Policy) stressRelease(r Request) (string, string) {
	if r.StressMarker == "" {
		return "", ""
	}
	if p.Lanes == nil {
		return "", "no-lane-key"
	}
	s, err := p.Lanes.VerifyStress(r.StressMarker, r.Now)
	if err != nil {
		return "", strings.TrimPrefix(err.Error(), "lane-")
	}
	if !p.Engine.Has(s.Release) {
		return "", "unknown-release"
	}
	return s.Release, ""
}

// caller verifies the request's token (or takes an asserted identity).
func (p *Policy) caller(r Request) identity.Caller {
	if a := r.Asserted; a != nil {
		return identity.Caller{Subject: a.Subject, Claims: a.Claims}
	}
	return p.Verifier.FromRequest(r.Authorization, r.Cookie)
}

// facts are what the rules see: the verified caller, the request's
// address and headers, and the release a verified membership names.
func (p *Policy) facts(r Request, c identity.Caller) Facts {
	f := Facts{
		Subject:      c.Subject,
		Claims:       c.Claims,
		DeviceID:     c.DeviceID,
		InvalidToken: c.Problem != "",
		IP:           r.IP,
		Headers:      r.Headers,
		Now:          r.Now,
		RequestID:    r.RequestID,
	}
	if p.membershipOn() {
		token := r.Membership
		if token == "" {
			token = identity.CookieValue(r.Cookie, p.Config.Membership.Cookie)
		}
		if token != "" {
			if m, err := p.Lanes.VerifyMember(token, bucketKey(c), r.Now); err == nil {
				f.Member = m.Release
			}
		}
	}
	return f
}

// takesLaneFrom reports whether an inner hop honours a lane arriving from
// ip: always without lane.mesh_cidrs, or when ip is unknown (an explain
// that names no address); otherwise when one of the ranges holds it.
func (p *Policy) takesLaneFrom(ip netip.Addr) bool {
	if p.Plan == nil || len(p.Plan.Mesh.LaneSources) == 0 || !ip.IsValid() {
		return true
	}
	ip = ip.Unmap()
	return slices.ContainsFunc(p.Plan.Mesh.LaneSources, func(s netip.Prefix) bool { return s.Contains(ip) })
}

// follow is the decision of an inner hop: it never re-decides. It honours
// the lane if its signature and expiry check out and its release is not
// killed (for it: Plan.KillStops), and otherwise serves stable and says why — the routes graymesh
// pushes to an inner sidecar (plan.Service.InnerRoutes) say the same.
func (p *Policy) follow(token string, now time.Time) (Decision, bool, string) {
	stable := Decision{Env: config.Stable, Reason: ReasonLaneMissing, Bucket: NoBucket, Version: p.Engine.version}
	if token == "" || p.Lanes == nil {
		// No lane names an environment: stable serves by default, and
		// the hop is told none (as the sidecar's default route).
		stable.Env = ""
		return stable, false, ""
	}
	l, err := p.Lanes.Verify(token, now)
	if err != nil {
		stable.Reason = ReasonLaneRefused
		return stable, false, err.Error()
	}
	if p.Engine.state(l.Release) == config.StateKilled && p.Plan.KillStops(l.Version) {
		// A kill reaches lanes already travelling, not only new decisions
		// — with fleet versions, only those issued before this node's
		// version: a newer lane comes from where the kill was lifted.
		// The version stays the lane's, as the sidecar's route leaves it.
		stable.Release, stable.Rule, stable.Reason, stable.Version = l.Release, "state", ReasonKilled, l.Version
		return stable, l.Stress, ""
	}
	return Decision{Env: l.Env, Release: l.Release, Reason: ReasonLane, Bucket: NoBucket, Version: l.Version}, l.Stress, ""
}

// fallbackFor names why service cannot serve env itself ("" when it can,
// when env is stable, or when service is not a configured service).
func (p *Policy) fallbackFor(service, env string) string {
	if s := p.Plan.Service(service); s != nil {
		return s.FallbackFor(env)
	}
	return ""
}

// membershipFor returns a membership token to hand the caller when d newly
// admits it to a release ("" when membership is off, the caller has no
// identity, or d is not a fresh admission).
func (p *Policy) membershipFor(d Decision, c identity.Caller, now time.Time) string {
	if !p.membershipOn() || d.Env == "" || d.Env == config.Stable {
		return ""
	}
	switch d.Reason {
	case ReasonWhitelist, ReasonClaim, ReasonCIDR, ReasonHeader, ReasonPercent:
	default:
		return ""
	}
	key := bucketKey(c)
	if key == "" {
		return ""
	}
	return p.Lanes.SignMember(d.Release, d.Env, d.Version, key, now, p.Config.Membership.TTL.Duration)
}
